import { useState } from 'react'
import { Alert, Card, Col, Row, Segmented, Skeleton, Statistic, Table } from 'antd'
import ReactECharts from 'echarts-for-react'
import { num, numOf, pct, Row as Cells, Schemas, strOf, url, yuan } from '../api'
import { useT } from '../i18n'
import { label } from '../labels'
import { useApi } from './useApi'

type CaptureBy = Schemas['CaptureBy']

/** The capture rate: the share of paid orders tied to a known customer, by channel, daypart,
 *  store or day, and how much of it only the payment account made known. */
function Capture() {
  const { t, lang } = useT()
  const [by, setBy] = useState<CaptureBy>('channel')
  const c = useApi(url('/capture', null, { by }))
  const rowsOf = c.data?.rows ?? []
  const name = (r: Cells) => {
    const k = strOf(r, 'key')
    if (by === 'channel' || by === 'source') return label(lang, 'orderChannel', k)
    if (by === 'daypart') return label(lang, 'daypart', k)
    if (by === 'store') return strOf(r, 'name') ?? k ?? '-'
    return k ?? '-'
  }
  const shown = by === 'day' ? rowsOf.slice(-60) : rowsOf
  // Share of the orders known only through their payment account.
  const viaPayment = (r: Cells) => (numOf(r, 'via_payment') ?? 0) / Math.max(1, numOf(r, 'orders') ?? 0)
  return (
    <Card title={t.capture} size="small" data-testid="capture">
      <Segmented
        size="small"
        value={by}
        onChange={(v) => setBy(v as CaptureBy)}
        options={(['channel', 'daypart', 'store', 'day'] satisfies CaptureBy[]).map((b) => ({ value: b, label: t[`captureBy_${b}`] }))}
      />
      {c.error && <Alert type="error" message={c.error} />}
      {!c.data ? (
        <Skeleton active />
      ) : by === 'store' ? (
        <Table
          size="small"
          rowKey={(r: Cells) => strOf(r, 'key') ?? ''}
          data-testid="capture-table"
          scroll={{ x: true }}
          pagination={{ pageSize: 10 }}
          dataSource={rowsOf}
          columns={[
            { title: t.store, render: (_: unknown, r: Cells) => name(r) },
            { title: t.orders, dataIndex: 'orders', render: (v: number) => num(v) },
            { title: t.capture, dataIndex: 'capture_rate', render: (v: number) => pct(v) },
            { title: t.viaPayment, render: (_: unknown, r: Cells) => pct(viaPayment(r)) },
          ]}
        />
      ) : (
        <ReactECharts opts={{ renderer: 'svg' }}
          style={{ height: 260 }}
          option={{
            tooltip: { trigger: 'axis' },
            legend: { data: [t.capture, t.viaPayment] },
            grid: { left: 45, right: 10, top: 35, bottom: 30 },
            xAxis: { type: 'category', data: shown.map(name) },
            yAxis: { type: 'value', max: 1, axisLabel: { formatter: (v: number) => `${Math.round(v * 100)}%` } },
            series: [
              { name: t.capture, type: by === 'day' ? 'line' : 'bar', showSymbol: false, data: shown.map((r) => numOf(r, 'capture_rate')) },
              { name: t.viaPayment, type: by === 'day' ? 'line' : 'bar', showSymbol: false, data: shown.map(viaPayment) },
            ],
          }}
        />
      )}
    </Card>
  )
}

export default function Overview() {
  const { t, lang } = useT()
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
    [t.capture, pct(numOf(data.capture, 'capture_rate')), 'kpi-capture'],
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
            <ReactECharts opts={{ renderer: 'svg' }}
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
            <ReactECharts opts={{ renderer: 'svg' }}
              style={{ height: 300 }}
              option={{
                tooltip: { trigger: 'item' },
                series: [{ type: 'pie', radius: ['40%', '70%'], data: data.tiers.map((x) => ({ name: label(lang, 'tier', strOf(x, 'tier')), value: numOf(x, 'customers') })) }],
              }}
            />
          </Card>
        </Col>
        <Col xs={24}>
          <Capture />
        </Col>
      </Row>
    </>
  )
}
