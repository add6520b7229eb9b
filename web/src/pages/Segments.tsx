import { Alert, Card, Col, Row, Skeleton, Table } from 'antd'
import ReactECharts from 'echarts-for-react'
import { num, numOf, Row as Cells, strOf, url, yuan } from '../api'
import { useT } from '../i18n'
import { clusterTraits, Kind, label } from '../labels'
import { useApi } from './useApi'

export default function Segments() {
  const { t, lang } = useT()
  const { data, error } = useApi(url('/segments'))
  if (error) return <Alert type="error" message={error} />
  if (!data) return <Skeleton active />
  const grid = data.rfm_grid
  const max = Math.max(1, ...grid.map((g) => numOf(g, 'customers') ?? 0))
  const cols = (kind: Kind | null) => [
    { title: t.segmentName, dataIndex: 'name', key: 'name', render: (v: string) => (kind ? label(lang, kind, v) : `#${v}`) },
    { title: t.count, dataIndex: 'customers', key: 'c', render: (v: number) => num(v) },
    { title: t.avgSpend, dataIndex: 'avg_spend_fen', key: 's', render: (v: number) => yuan(v) },
    { title: t.orders, dataIndex: 'avg_orders', key: 'o', render: (v: number) => num(v, 1) },
  ]
  const explain: Record<string, string> = {}
  ;(data.cluster_explanations?.traits ?? []).forEach((d, i) => (explain[String(i)] = d ? clusterTraits(lang, d.share, d.traits) : ''))
  const bar = (rows: Cells[], kind: Kind) => ({
    tooltip: {},
    grid: { left: 110 },
    xAxis: { type: 'value' },
    yAxis: { type: 'category', data: rows.map((r) => label(lang, kind, strOf(r, 'name'))), inverse: true },
    series: [{ type: 'bar', data: rows.map((r) => numOf(r, 'customers')) }],
  })
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={12}>
        <Card title={t.rfmGrid} size="small" data-testid="rfm-grid">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 320 }}
            option={{
              tooltip: { formatter: (p: { value: number[] }) => `R${p.value[0] + 1} F${p.value[1] + 1}: ${p.value[2]}` },
              xAxis: { type: 'category', name: 'R', data: [1, 2, 3, 4, 5] },
              yAxis: { type: 'category', name: 'F', data: [1, 2, 3, 4, 5] },
              visualMap: { min: 0, max, calculable: true, orient: 'horizontal', left: 'center', bottom: 0 },
              series: [{ type: 'heatmap', label: { show: true }, data: grid.map((g) => [(numOf(g, 'r_score') ?? 0) - 1, (numOf(g, 'f_score') ?? 0) - 1, numOf(g, 'customers')]) }],
              grid: { bottom: 70 },
            }}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.rfmClasses} size="small">
          <ReactECharts opts={{ renderer: 'svg' }} style={{ height: 320 }} option={bar(data.rfm_classes, 'rfmClass')} />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.tiers} size="small">
          <Table size="small" rowKey="name" pagination={false} columns={cols('tier')} dataSource={data.tiers} scroll={{ x: true }} />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.lifecycle} size="small">
          <Table size="small" rowKey="name" pagination={false} columns={cols('lifecycle')} dataSource={data.lifecycle} scroll={{ x: true }} />
        </Card>
      </Col>
      <Col xs={24}>
        <Card title={t.clusters} size="small">
          <Table
            size="small"
            rowKey="name"
            pagination={false}
            scroll={{ x: true }}
            columns={[...cols(null), { title: '', key: 'x', render: (_: unknown, r: Cells) => explain[strOf(r, 'name') ?? ''] ?? '' }]}
            dataSource={data.clusters}
          />
        </Card>
      </Col>
    </Row>
  )
}
