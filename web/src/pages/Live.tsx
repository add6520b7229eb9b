import { useEffect, useState } from 'react'
import { Badge, Card, Col, List, Row, Statistic } from 'antd'
import { get, liveSocket, num, Schemas, url, yuan } from '../api'
import { useT } from '../i18n'
import { when } from '../labels'

export default function Live() {
  const { t } = useT()
  const [feed, setFeed] = useState<Schemas['OrderEvent'][]>([])
  const [stats, setStats] = useState<{ orders: number; revenue: number }>({ orders: 0, revenue: 0 })
  const [state, setState] = useState('closed')
  useEffect(() => {
    get(url('/live'))
      .then((l) => {
        setFeed(l.feed.map((f) => f.data))
        setStats({ orders: l.live_orders, revenue: l.live_revenue_fen })
      })
      .catch(() => {})
    return liveSocket(
      ['orders', 'metrics', 'etl'],
      (e) => {
        if (e.topic === 'orders') setFeed((f) => [e.data, ...f].slice(0, 100))
        if (e.topic === 'metrics') setStats({ orders: e.data.live_orders, revenue: e.data.live_revenue_fen })
      },
      setState,
    )
  }, [])
  return (
    <Row gutter={[12, 12]}>
      <Col xs={12} md={6}>
        <Card size="small">
          <Statistic title={t.liveOrders} value={num(stats.orders)} data-testid="live-orders" />
        </Card>
      </Col>
      <Col xs={12} md={6}>
        <Card size="small">
          <Statistic title={t.revenue} value={yuan(stats.revenue, 1)} />
        </Card>
      </Col>
      <Col xs={24}>
        <Card title={t.feed} size="small" extra={<Badge status={state === 'open' ? 'success' : 'default'} text={state === 'open' ? t.connected : t.disconnected} />}>
          <List
            size="small"
            data-testid="live-feed"
            dataSource={feed}
            renderItem={(o) => (
              <List.Item>
                {when(o.order_time)} · {t.store} {o.store_id} · {o.customer_id ? `${t.customer} #${o.customer_id}` : '—'} · {yuan(o.total_fen, 1)}
              </List.Item>
            )}
          />
        </Card>
      </Col>
    </Row>
  )
}
