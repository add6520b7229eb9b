import { Alert, Card, Col, Row, Skeleton } from 'antd'
import ReactECharts from 'echarts-for-react'
import { numOf, strOf, url, yuan } from '../api'
import { useT } from '../i18n'
import { label } from '../labels'
import { useApi } from './useApi'

export default function Distributions() {
  const { t, lang } = useT()
  const city = useApi(url('/compare/{dim}', { dim: 'city' }))
  const product = useApi(url('/compare/{dim}', { dim: 'product' }))
  const daypart = useApi(url('/compare/{dim}', { dim: 'daypart' }))
  const store = useApi(url('/compare/{dim}', { dim: 'store' }))
  const err = city.error || product.error || daypart.error || store.error
  if (err) return <Alert type="error" message={err} />
  if (!city.data || !product.data || !daypart.data || !store.data) return <Skeleton active />
  const cities = city.data.rows.map((c) => ({
    name: strOf(c, 'name') ?? '',
    orders: numOf(c, 'orders'),
    value: [numOf(c, 'lon') ?? 0, numOf(c, 'lat') ?? 0, numOf(c, 'revenue_fen') ?? 0],
  }))
  type Point = { data: (typeof cities)[number] }
  const maxRev = Math.max(1, ...cities.map((c) => c.value[2]))
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={14}>
        <Card title={t.map} size="small" data-testid="city-map">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 420 }}
            option={{
              tooltip: { formatter: (p: Point) => `${p.data.name}<br/>${t.revenue} ${yuan(p.data.value[2])}<br/>${t.orders} ${p.data.orders}` },
              xAxis: { type: 'value', min: 95, max: 135, name: t.longitude },
              yAxis: { type: 'value', min: 18, max: 48, name: t.latitude },
              series: [
                {
                  type: 'scatter',
                  data: cities,
                  symbolSize: (v: number[]) => 6 + 40 * Math.sqrt(v[2] / maxRev),
                  label: { show: true, formatter: (p: Point) => p.data.name, position: 'right', fontSize: 10 },
                  itemStyle: { color: '#d4380d', opacity: 0.7 },
                },
              ],
            }}
          />
        </Card>
      </Col>
      <Col xs={24} lg={10}>
        <Card title={t.daypart} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 420 }}
            option={{
              tooltip: { trigger: 'axis' },
              xAxis: { type: 'category', data: daypart.data.rows.map((r) => label(lang, 'daypart', strOf(r, 'name'))) },
              yAxis: [{ type: 'value' }, { type: 'value' }],
              series: [
                { name: t.orders, type: 'bar', data: daypart.data.rows.map((r) => numOf(r, 'orders')) },
                { name: t.avgTicket, type: 'line', yAxisIndex: 1, data: daypart.data.rows.map((r) => ((numOf(r, 'avg_ticket_fen') ?? 0) / 100).toFixed(1)) },
              ],
            }}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.product} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 480 }}
            option={{
              tooltip: {},
              grid: { left: 120 },
              xAxis: { type: 'value' },
              yAxis: { type: 'category', inverse: true, data: product.data.rows.map((r) => strOf(r, 'name')) },
              series: [{ name: t.revenue, type: 'bar', data: product.data.rows.map((r) => (numOf(r, 'revenue_fen') ?? 0) / 100) }],
            }}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.store} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 480 }}
            option={{
              tooltip: {},
              grid: { left: 140 },
              xAxis: { type: 'value' },
              yAxis: { type: 'category', inverse: true, data: store.data.rows.slice(0, 20).map((r) => strOf(r, 'name')) },
              series: [{ name: t.revenue, type: 'bar', data: store.data.rows.slice(0, 20).map((r) => (numOf(r, 'revenue_fen') ?? 0) / 100) }],
            }}
          />
        </Card>
      </Col>
    </Row>
  )
}
