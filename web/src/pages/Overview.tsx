import { Alert, Card, Col, Row, Skeleton, Statistic } from 'antd'
import ReactECharts from 'echarts-for-react'
import { num, numOf, pct, strOf, url, yuan } from '../api'
import { useT } from '../i18n'
import { useApi } from './useApi'

export default function Overview() {
  const { t } = useT()
  const { data, error } = useApi(url('/overview'))
  if (error) return <Alert type="error" message={error} />
  if (!data) return <Skeleton active />
  const k = data.kpi
  const c = data.customers
  const customers = numOf(c, 'customers')
  const repeat = numOf(c, 'repeat_customers')
  const cards: [string, string, string][] = [
    [t.customersN, num(customers), 'kpi-customers'],
    [t.orders, num(numOf(k, 'orders')), 'kpi-orders'],
    [t.revenue, yuan(numOf(k, 'revenue_fen')), 'kpi-revenue'],
    [t.avgTicket, yuan(numOf(k, 'avg_ticket_fen'), 1), 'kpi-ticket'],
    [t.active90, num(numOf(c, 'active_90d')), 'kpi-active'],
    [t.repeat, customers && repeat != null ? pct(repeat / customers) : '-', 'kpi-repeat'],
    [t.clv, yuan(numOf(data.clv, 'clv_12m_fen')), 'kpi-clv'],
    [t.liveOrders, num(data.live.orders), 'kpi-live'],
  ]
  const months = data.monthly.map((m) => strOf(m, 'month'))
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
                  { name: t.orders, type: 'bar', data: data.monthly.map((m) => numOf(m, 'orders')) },
                  { name: t.revenue, type: 'line', yAxisIndex: 1, data: data.monthly.map((m) => (numOf(m, 'revenue_fen') ?? 0) / 100) },
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
                series: [{ type: 'pie', radius: ['40%', '70%'], data: data.tiers.map((x) => ({ name: strOf(x, 'tier'), value: numOf(x, 'customers') })) }],
              }}
            />
          </Card>
        </Col>
      </Row>
    </>
  )
}
