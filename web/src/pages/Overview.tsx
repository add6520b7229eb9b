import { Alert, Card, Col, Row, Skeleton, Statistic } from 'antd'
import ReactECharts from 'echarts-for-react'
import { num, pct, yuan } from '../api'
import { useT } from '../i18n'
import { useApi } from './useApi'

export default function Overview() {
  const { t } = useT()
  const { data, error } = useApi('/overview')
  if (error) return <Alert type="error" message={error} />
  if (!data) return <Skeleton active />
  const k = data.kpi ?? {}
  const c = data.customers ?? {}
  const cards: [string, string, string][] = [
    [t.customersN, num(c.customers), 'kpi-customers'],
    [t.orders, num(k.orders), 'kpi-orders'],
    [t.revenue, yuan(k.revenue_fen), 'kpi-revenue'],
    [t.avgTicket, yuan(k.avg_ticket_fen, 1), 'kpi-ticket'],
    [t.active90, num(c.active_90d), 'kpi-active'],
    [t.repeat, c.customers ? pct(c.repeat_customers / c.customers) : '-', 'kpi-repeat'],
    [t.clv, yuan(data.clv?.clv_12m_fen), 'kpi-clv'],
    [t.liveOrders, num(data.live?.orders), 'kpi-live'],
  ]
  const months = (data.monthly ?? []).map((m: { month: string }) => m.month)
  return (
    <>
      <Row gutter={[12, 12]}>
        {cards.map(([title, value, id]) => (
          <Col xs={12} md={6} key={id}>
            <Card size="small">
              <Statistic title={title} value={value} data-testid={id} />
            </Card>
          </Col>
        ))}
      </Row>
      <Row gutter={[12, 12]} style={{ marginTop: 12 }}>
        <Col xs={24} lg={16}>
          <Card title={t.monthly} size="small">
            <ReactECharts
              style={{ height: 300 }}
              option={{
                tooltip: { trigger: 'axis' },
                legend: { data: [t.orders, t.revenue] },
                xAxis: { type: 'category', data: months },
                yAxis: [{ type: 'value' }, { type: 'value' }],
                series: [
                  { name: t.orders, type: 'bar', data: data.monthly.map((m: { orders: number }) => m.orders) },
                  { name: t.revenue, type: 'line', yAxisIndex: 1, data: data.monthly.map((m: { revenue_fen: number }) => m.revenue_fen / 100) },
                ],
              }}
            />
          </Card>
        </Col>
        <Col xs={24} lg={8}>
          <Card title={t.tiers} size="small">
            <ReactECharts
              style={{ height: 300 }}
              option={{
                tooltip: { trigger: 'item' },
                series: [{ type: 'pie', radius: ['40%', '70%'], data: data.tiers.map((x: { tier: string; customers: number }) => ({ name: x.tier, value: x.customers })) }],
              }}
            />
          </Card>
        </Col>
      </Row>
    </>
  )
}
