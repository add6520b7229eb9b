// Menu engineering: each item by popularity (share of units) and margin (price − unit cost),
// in four quadrants, with its attach rate to the hot dog; and what each launch took from the
// rest of the menu.
import { Alert, Card, Col, Row, Skeleton, Table, Tag } from 'antd'
import ReactECharts from 'echarts-for-react'
import { pct, url, yuan } from '../api'
import { useT } from '../i18n'
import { label } from '../labels'
import { useApi } from './useApi'

const COLOR: Record<string, string> = { star: '#389e0d', plowhorse: '#d48806', puzzle: '#1677ff', dog: '#8c8c8c' }

export default function Menu() {
  const { t, lang } = useT()
  const m = useApi(url('/menu'))
  if (m.error) return <Alert type="error" message={m.error} />
  if (!m.data) return <Skeleton active />
  const d = m.data
  const quadrant = (q: string | null | undefined) => (q ? <Tag color={COLOR[q]}>{label(lang, 'quadrant', q)}</Tag> : '-')
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={12}>
        <Card title={t.menuMatrix} size="small" data-testid="menu-matrix">
          <ReactECharts opts={{ renderer: 'svg' }} style={{ height: 340 }} option={{
            tooltip: { formatter: (p: { data: { name: string; value: number[] } }) => `${p.data.name}<br/>${pct(p.data.value[0])} · ${yuan(p.data.value[1])}` },
            xAxis: { type: 'value', name: t.popularity, axisLabel: { formatter: (v: number) => pct(v) } },
            yAxis: { type: 'value', name: t.margin, axisLabel: { formatter: (v: number) => yuan(v) } },
            series: [{
              type: 'scatter',
              symbolSize: 12,
              data: d.items.filter((i) => i.margin_fen != null).map((i) => ({
                name: i.name, value: [i.mix, i.margin_fen], itemStyle: { color: COLOR[i.quadrant ?? 'dog'] },
              })),
              label: { show: true, formatter: (p: { data: { name: string } }) => p.data.name, position: 'right', fontSize: 9 },
              markLine: { silent: true, symbol: 'none', lineStyle: { type: 'dashed' }, label: { show: false },
                data: [{ xAxis: d.popularity_line }, ...(d.margin_line_fen != null ? [{ yAxis: d.margin_line_fen }] : [])] },
            }],
          }} />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.launches} size="small" data-testid="menu-launches">
          <Table size="small" rowKey="launched" pagination={false} scroll={{ x: true }} dataSource={d.launches}
            columns={[
              { title: t.item, key: 'n', render: (_: unknown, l) => l.names.join(lang === 'zh' ? '、' : ', ') },
              { title: t.launched, dataIndex: 'launched', key: 'l' },
              { title: t.newItemPerOrder, key: 'p', render: (_: unknown, l) => yuan(l.new_items_per_order_fen, 2) },
              { title: t.cannibalised, key: 'c', render: (_: unknown, l) => `${pct(l.cannibalised)} [${pct(l.cannibalised_low)}, ${pct(l.cannibalised_high)}]` },
              { title: t.fromSameCategory, key: 's', render: (_: unknown, l) => l.by_category.map((x) => `${label(lang, 'category', x.category)} ${yuan(x.before_fen - x.after_fen, 2)}`).join(lang === 'zh' ? '；' : '; ') },
            ]} />
        </Card>
      </Col>
      <Col xs={24}>
        <Card title={t.menuItems} size="small">
          <Table size="small" rowKey="product_id" pagination={false} scroll={{ x: true }} data-testid="menu-items" dataSource={d.items}
            columns={[
              { title: t.item, dataIndex: 'name', key: 'n' },
              { title: t.quadrant, key: 'q', render: (_: unknown, i) => quadrant(i.quadrant) },
              { title: t.popularity, key: 'm', render: (_: unknown, i) => pct(i.mix) },
              { title: t.price, key: 'p', render: (_: unknown, i) => yuan(i.price_fen) },
              { title: t.unitCost, key: 'c', render: (_: unknown, i) => yuan(i.cost_fen) },
              { title: t.margin, key: 'g', render: (_: unknown, i) => yuan(i.margin_fen) },
              { title: t.attachRate, key: 'a', render: (_: unknown, i) => pct(i.attach_rate) },
            ]} />
        </Card>
      </Col>
    </Row>
  )
}
