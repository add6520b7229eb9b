// Saved audiences (人群): build one from profile and behaviour conditions, preview its size and
// a sample, save it; see each one's versions and size over time, export it, expand it by
// lookalike; tick several to compare their overlap.
import { useState } from 'react'
import { Alert, App, Button, Card, Col, Input, InputNumber, Radio, Row, Select, Skeleton, Space, Table, Tag } from 'antd'
import ReactECharts from 'echarts-for-react'
import { getKey, num, post, Schemas, url, yuan } from '../api'
import { useT } from '../i18n'
import { label } from '../labels'
import { useApi } from './useApi'

type Spec = Schemas['AudienceSpec']
type Rule = Schemas['Rule']
type Cond =
  | { type: 'field'; field: string; op: Schemas['Op']; values: (string | number)[] }
  | { type: 'bought'; sku?: string; daypart?: string; within_days?: number; min_times: number }

const NUMBER_OPS: Schemas['Op'][] = ['ge', 'gt', 'le', 'lt', 'eq', 'ne', 'is_null', 'not_null']
const TEXT_OPS: Schemas['Op'][] = ['in', 'not_in', 'eq', 'ne', 'is_null', 'not_null']

function ruleOf(conds: Cond[], mode: 'all' | 'any'): Rule {
  const leaves: Rule[] = conds.map((c) =>
    c.type === 'field'
      ? { field: { field: c.field, op: c.op, values: c.values } }
      : { bought: { sku: c.sku ?? null, daypart: c.daypart ?? null, within_days: c.within_days ?? null, min_times: c.min_times } },
  )
  return mode === 'all' ? { all: leaves } : { any: leaves }
}

/** Downloads an export with the key (a plain link could not send it). */
async function download(id: number, format: 'csv' | 'parquet') {
  const res = await fetch(`/api/v1/audiences/${id}/export?format=${format}`, { headers: { authorization: `Bearer ${getKey() ?? ''}` } })
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).message ?? res.statusText)
  const a = document.createElement('a')
  a.href = URL.createObjectURL(await res.blob())
  a.download = `audience-${id}.${format}`
  a.click()
  URL.revokeObjectURL(a.href)
}

export default function Audiences({ stores }: { stores?: number[] }) {
  const { t, lang } = useT()
  const { message } = App.useApp()
  const list = useApi(url('/audiences'))
  const fields = useApi(url('/audiences/fields'))
  const [name, setName] = useState('')
  const [mode, setMode] = useState<'all' | 'any'>('all')
  const [conds, setConds] = useState<Cond[]>([{ type: 'field', field: 'tier', op: 'in', values: ['核心客户'] }])
  const [preview, setPreview] = useState<Schemas['Preview'] | null>(null)
  const [busy, setBusy] = useState(false)
  const [selected, setSelected] = useState<number[]>([])
  const [open, setOpen] = useState<number | null>(null)
  const [lookSize, setLookSize] = useState(500)
  const detail = useApi(open != null ? url('/audiences/{id}', { id: open }) : null)
  const overlap = useApi(selected.length >= 2 ? url('/audiences/overlap', null, { ids: selected.join(',') }) : null)
  if (list.error) return <Alert type="error" message={list.error} />
  if (!list.data || !fields.data) return <Skeleton active />
  const f = fields.data
  const kindOf = (field: string) => f.fields.find((x) => x.name === field)?.kind ?? 'number'
  const spec = (): Spec => ({ name: name || t.newAudience, store_ids: stores ?? [], rule: ruleOf(conds, mode), description: '' })
  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true)
    try {
      await fn()
    } catch (e) {
      message.error((e as Error).message)
    } finally {
      setBusy(false)
    }
  }
  const setCond = (i: number, c: Cond) => setConds(conds.map((x, j) => (j === i ? c : x)))
  const names: Record<number, string> = {}
  list.data.audiences.forEach((r) => (names[r.audience.audience_id] = r.audience.spec.name))

  const condRow = (c: Cond, i: number) => {
    const remove = <Button size="small" onClick={() => setConds(conds.filter((_, j) => j !== i))}>{t.remove}</Button>
    if (c.type === 'bought')
      return (
        <Space wrap key={i} data-testid="cond-bought">
          <Tag>{t.bought}</Tag>
          <Select style={{ minWidth: 140 }} allowClear placeholder={t.anyProduct} value={c.sku} onChange={(v) => setCond(i, { ...c, sku: v })}
            options={f.products.map((p) => ({ value: p.sku, label: p.name }))} />
          <Select style={{ minWidth: 100 }} allowClear placeholder={t.anyTime} value={c.daypart} onChange={(v) => setCond(i, { ...c, daypart: v })}
            options={f.dayparts.map((d) => ({ value: d, label: label(lang, 'daypart', d) }))} />
          <InputNumber min={1} max={3650} placeholder={t.withinDays} value={c.within_days} onChange={(v) => setCond(i, { ...c, within_days: v ?? undefined })} />
          <InputNumber min={1} max={1000} addonBefore={t.atLeast} value={c.min_times} onChange={(v) => setCond(i, { ...c, min_times: v ?? 1 })} />
          {remove}
        </Space>
      )
    const kind = kindOf(c.field)
    const known = f.values[c.field]
    const noValue = c.op === 'is_null' || c.op === 'not_null'
    const many = c.op === 'in' || c.op === 'not_in'
    return (
      <Space wrap key={i} data-testid="cond-field">
        <Select style={{ minWidth: 150 }} value={c.field}
          onChange={(v) => setCond(i, { type: 'field', field: v, op: kindOf(v) === 'text' ? 'in' : 'ge', values: [] })}
          options={f.fields.map((x) => ({ value: x.name, label: label(lang, 'field', x.name) }))} />
        <Select style={{ minWidth: 90 }} value={c.op} onChange={(v) => setCond(i, { ...c, op: v, values: [] })}
          options={(kind === 'text' ? TEXT_OPS : NUMBER_OPS).map((o) => ({ value: o, label: label(lang, 'op', o) }))} />
        {!noValue && kind === 'number' && (
          <InputNumber placeholder={t.value} value={c.values[0] as number | undefined} onChange={(v) => setCond(i, { ...c, values: v == null ? [] : [v] })} />
        )}
        {!noValue && kind === 'text' && known && (
          <Select style={{ minWidth: 160 }} mode={many ? 'multiple' : undefined} value={many ? c.values : c.values[0]}
            onChange={(v) => setCond(i, { ...c, values: Array.isArray(v) ? v : [v] })}
            options={known.map((k) => ({ value: k, label: label(lang, c.field === 'lifecycle' ? 'lifecycle' : c.field === 'tier' ? 'tier' : 'rfmClass', k) }))} />
        )}
        {!noValue && kind === 'text' && !known && (
          <Input style={{ width: 140 }} placeholder={t.value} value={String(c.values[0] ?? '')} onChange={(e) => setCond(i, { ...c, values: [e.target.value] })} />
        )}
        {remove}
      </Space>
    )
  }

  const sampleCols = [
    { title: t.customer, dataIndex: 'customer_id', key: 'id' },
    { title: t.tier, dataIndex: 'tier', key: 'tier', render: (v: string) => label(lang, 'tier', v) },
    { title: t.lifecycle, dataIndex: 'lifecycle', key: 'lc', render: (v: string) => label(lang, 'lifecycle', v) },
    { title: t.orders, dataIndex: 'order_count', key: 'o' },
    { title: t.clv, dataIndex: 'clv_12m_fen', key: 'clv', render: (v: number) => yuan(v) },
  ]
  const d = detail.data
  const o = overlap.data
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={10}>
        <Card title={t.audienceList} size="small" data-testid="audience-list" extra={<span style={{ fontSize: 12 }}>{t.selectHint}</span>}>
          <Table
            size="small"
            rowKey={(r) => r.audience.audience_id}
            pagination={false}
            scroll={{ x: true }}
            rowSelection={{ selectedRowKeys: selected, onChange: (k) => setSelected(k.map(Number)) }}
            dataSource={list.data.audiences}
            columns={[
              { title: t.name, key: 'n', render: (_: unknown, r) => <a data-testid="audience-name" onClick={() => setOpen(r.audience.audience_id)}>{r.audience.spec.name}</a> },
              { title: t.kind, key: 'k', render: (_: unknown, r) => label(lang, 'audienceKind', r.audience.kind) },
              { title: t.size, key: 's', render: (_: unknown, r) => num(r.last_size) },
              { title: t.asOf, key: 'a', render: (_: unknown, r) => r.last_as_of ?? '-' },
            ]}
          />
        </Card>
      </Col>
      <Col xs={24} lg={14}>
        <Card title={t.newAudience} size="small" data-testid="audience-builder">
          <Space direction="vertical" style={{ width: '100%' }}>
            <Input data-testid="audience-name-input" placeholder={t.name} value={name} onChange={(e) => setName(e.target.value)} maxLength={100} />
            <Radio.Group value={mode} onChange={(e) => setMode(e.target.value)}>
              <Radio value="all">{t.matchAll}</Radio>
              <Radio value="any">{t.matchAny}</Radio>
            </Radio.Group>
            {conds.map(condRow)}
            <Space wrap>
              <Button size="small" onClick={() => setConds([...conds, { type: 'field', field: 'p_churn_90d', op: 'ge', values: [0.5] }])}>{t.addField}</Button>
              <Button size="small" data-testid="add-bought" onClick={() => setConds([...conds, { type: 'bought', min_times: 1, daypart: 'lunch' }])}>{t.addBought}</Button>
              <Button type="primary" data-testid="audience-preview" loading={busy} onClick={() => act(async () => setPreview(await post('/audiences/preview', spec())))}>{t.previewBtn}</Button>
              <Button data-testid="audience-save" loading={busy} disabled={!name}
                onClick={() => act(async () => {
                  await post('/audiences', spec())
                  message.success(t.saved)
                  list.reload()
                })}>{t.saveBtn}</Button>
            </Space>
            {preview && (
              <div data-testid="audience-preview-result">
                <Space><Tag color="orange" data-testid="audience-size">{t.size} {num(preview.size)}</Tag><span>{t.asOf} {preview.as_of}</span></Space>
                <Table size="small" rowKey={(r) => String(r.customer_id)} pagination={false} scroll={{ x: true }} columns={sampleCols} dataSource={preview.sample as Record<string, unknown>[]} />
              </div>
            )}
          </Space>
        </Card>
      </Col>
      {d && (
        <Col xs={24} lg={12}>
          <Card title={d.audience.spec.name} size="small" data-testid="audience-detail"
            extra={<Tag color="orange">{t.size} {num(d.size)}</Tag>}>
            <Space wrap style={{ marginBottom: 8 }}>
              <Button size="small" data-testid="export-csv" onClick={() => act(() => download(d.audience.audience_id, 'csv'))}>{t.exportCsv}</Button>
              <Button size="small" onClick={() => act(() => download(d.audience.audience_id, 'parquet'))}>{t.exportParquet}</Button>
              <InputNumber size="small" min={1} max={1000000} value={lookSize} onChange={(v) => setLookSize(v ?? 1)} addonBefore={t.lookalikeSize} />
              <Button size="small" data-testid="lookalike" onClick={() => act(async () => {
                await post('/audiences/{id}/lookalike', { name: `${d.audience.spec.name} · ${t.lookalike}`, size: lookSize }, { id: d.audience.audience_id })
                list.reload()
              })}>{t.expand}</Button>
            </Space>
            <ReactECharts opts={{ renderer: 'svg' }} style={{ height: 180 }} option={{
              title: { text: t.sizeOverTime, textStyle: { fontSize: 12 } },
              tooltip: { trigger: 'axis' },
              xAxis: { type: 'category', data: d.sizes.map((x) => x.as_of) },
              yAxis: { type: 'value' },
              series: [{ type: 'line', data: d.sizes.map((x) => x.size) }],
            }} />
            <Table size="small" rowKey="version" pagination={false} scroll={{ x: true }} dataSource={d.versions}
              columns={[
                { title: t.version, dataIndex: 'version', key: 'v' },
                { title: t.name, key: 'n', render: (_: unknown, v) => v.spec.name },
                { title: t.changedBy, dataIndex: 'changed_by', key: 'b' },
                { title: t.time, key: 't', render: (_: unknown, v) => v.changed_at.slice(0, 16).replace('T', ' ') },
              ]} />
          </Card>
        </Col>
      )}
      {o && (
        <Col xs={24} lg={12}>
          <Card title={t.overlap} size="small" data-testid="audience-overlap">
            <ReactECharts opts={{ renderer: 'svg' }} style={{ height: 260 }} option={{
              tooltip: {},
              grid: { left: 100, bottom: 60 },
              xAxis: { type: 'category', data: o.audience_ids.map((i) => names[i] ?? String(i)) },
              yAxis: { type: 'category', data: o.audience_ids.map((i) => names[i] ?? String(i)) },
              visualMap: { min: 0, max: Math.max(1, ...o.sizes), orient: 'horizontal', left: 'center', bottom: 0, show: false },
              series: [{ type: 'heatmap', label: { show: true }, data: o.intersections.flatMap((row, i) => row.map((v, j) => [j, i, v])) }],
            }} />
          </Card>
        </Col>
      )}
    </Row>
  )
}
