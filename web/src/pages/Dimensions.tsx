import { useState } from 'react'
import { Alert, Card, Col, Row, Segmented, Skeleton, Table, Tabs, Tag } from 'antd'
import ReactECharts from 'echarts-for-react'
import { num, numOf, pct, Row as Cells, Schemas, strOf, url } from '../api'
import { useT } from '../i18n'
import { Kind, label } from '../labels'
import { useApi } from './useApi'

const ASPECTS = ['taste', 'service', 'price', 'environment', 'speed', 'hygiene']

const SEGMENT_KIND: Partial<Record<Schemas['FunnelBy'], Kind>> = { none: 'funnelBy', tier: 'tier', rfm_class: 'rfmClass', lifecycle: 'lifecycle' }

function Behaviour() {
  const { t, lang } = useT()
  const [by, setBy] = useState<Schemas['FunnelBy']>('tier')
  const funnel = useApi(url('/behavior/funnel', null, { by }))
  const paths = useApi(url('/behavior/paths', null, { limit: 10 }))
  if (funnel.error || paths.error) return <Alert type="error" message={funnel.error || paths.error} />
  const segs = funnel.data?.segments ?? []
  const steps = funnel.data?.steps ?? []
  const kind = SEGMENT_KIND[by]
  const segName = (s: string) => (s === '(unknown)' ? t.unknown : kind ? label(lang, kind, s) : by === 'cluster' ? `#${s}` : s)
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24}>
        <Card title={t.funnel} size="small">
          <Segmented size="small" value={by} onChange={(v) => setBy(v as Schemas['FunnelBy'])} options={(['none', 'tier', 'lifecycle', 'device'] satisfies Schemas['FunnelBy'][]).map((b) => ({ value: b, label: label(lang, 'funnelBy', b) }))} />
          {!funnel.data ? (
            <Skeleton active />
          ) : (
            <>
              <ReactECharts opts={{ renderer: 'svg' }}
                style={{ height: 300 }}
                data-testid="funnel-chart"
                option={{
                  tooltip: { trigger: 'axis' },
                  legend: { type: 'scroll' },
                  grid: { left: 40, right: 10, top: 40, bottom: 30 },
                  xAxis: { type: 'category', data: steps.map((s) => t[s as keyof typeof t] ?? s) },
                  yAxis: { type: 'value', max: 1, axisLabel: { formatter: (v: number) => `${Math.round(v * 100)}%` } },
                  series: segs.map((s) => ({
                    name: segName(s.segment),
                    type: 'line',
                    data: s.funnel.reached.map((r) => r / Math.max(1, s.funnel.sessions)),
                  })),
                }}
              />
              <Table
                size="small"
                rowKey="segment"
                data-testid="funnel-table"
                scroll={{ x: true }}
                pagination={false}
                dataSource={segs}
                columns={[
                  { title: t.segmentName, dataIndex: 'segment', render: (v: string) => segName(v) },
                  { title: t.sessions, render: (_: unknown, r: Schemas['SegmentFunnel']) => num(r.funnel.sessions) },
                  ...steps.map((s, i) => ({
                    title: `${t[s as keyof typeof t] ?? s} ↓`,
                    render: (_: unknown, r: Schemas['SegmentFunnel']) => pct(r.funnel.drop_off[i]),
                  })),
                  { title: t.conversion, render: (_: unknown, r: Schemas['SegmentFunnel']) => pct(r.funnel.overall_conversion) },
                  { title: t.bounce, render: (_: unknown, r: Schemas['SegmentFunnel']) => pct(r.bounce_rate) },
                ]}
              />
            </>
          )}
        </Card>
      </Col>
      <Col xs={24} lg={14}>
        <Card title={t.paths} size="small">
          <Table
            size="small"
            rowKey="path"
            scroll={{ x: true }}
            pagination={false}
            dataSource={paths.data?.paths ?? []}
            columns={[
              { title: t.paths, dataIndex: 'path', render: (v: string) => v.split('>').map((p, i) => <Tag key={i}>{label(lang, 'page', p)}</Tag>) },
              { title: t.sessions, dataIndex: 'sessions', render: (v: number) => num(v) },
              { title: t.conversion, dataIndex: 'conversion', render: (v: number) => pct(v) },
            ]}
          />
        </Card>
      </Col>
      <Col xs={24} lg={10}>
        <Card title={t.exits} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 260 }}
            option={{
              tooltip: {},
              series: [{ type: 'pie', radius: ['35%', '65%'], data: (paths.data?.exits ?? []).map((e) => ({ name: label(lang, 'page', e.page), value: e.sessions })) }],
            }}
          />
        </Card>
      </Col>
    </Row>
  )
}

function Sentiment() {
  const { t, lang } = useT()
  const s = useApi(url('/sentiment'))
  if (s.error) return <Alert type="error" message={s.error} />
  if (!s.data) return <Skeleton active />
  const names = s.data.aspects
  const total = s.data.total
  const trend = s.data.trend
  const fixed = (v: number | null) => (v == null ? null : Number(v.toFixed(2)))
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={10}>
        <Card title={t.aspects} size="small" data-testid="aspects">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 280 }}
            option={{
              tooltip: {},
              grid: { left: 50, right: 10, top: 10, bottom: 30 },
              xAxis: { type: 'value', min: -1, max: 1 },
              yAxis: { type: 'category', data: names.map((a) => label(lang, 'aspect', a.column)) },
              series: [
                {
                  type: 'bar',
                  data: names.map((a) => ({
                    value: fixed(numOf(total, a.column)),
                    itemStyle: { color: (numOf(total, a.column) ?? 0) >= 0 ? '#52c41a' : '#f5222d' },
                  })),
                },
              ],
            }}
          />
          {num(numOf(total, 'reviews'))} {t.reviews} · {t.sentiment} {num(numOf(total, 'sentiment'), 2)}
        </Card>
      </Col>
      <Col xs={24} lg={14}>
        <Card title={t.monthly} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 300 }}
            option={{
              tooltip: { trigger: 'axis' },
              legend: { type: 'scroll' },
              grid: { left: 40, right: 10, top: 40, bottom: 30 },
              xAxis: { type: 'category', data: trend.map((r) => strOf(r, 'month')) },
              yAxis: { type: 'value', min: -1, max: 1 },
              series: names.map((a) => ({ name: label(lang, 'aspect', a.column), type: 'line', smooth: true, connectNulls: true, data: trend.map((r) => fixed(numOf(r, a.column))) })),
            }}
          />
        </Card>
      </Col>
      <Col xs={24}>
        <Card title={t.storesWorst} size="small">
          <Table
            size="small"
            rowKey="store_id"
            scroll={{ x: true }}
            pagination={{ pageSize: 10 }}
            dataSource={s.data.stores}
            columns={[
              { title: t.store, dataIndex: 'name', render: (v: string | null, r: Cells) => v ?? numOf(r, 'store_id') },
              { title: t.reviews, dataIndex: 'reviews' },
              { title: t.sentiment, dataIndex: 'sentiment', render: (v: number) => num(v, 2) },
              ...ASPECTS.map((c) => ({ title: label(lang, 'aspect', c), dataIndex: c, render: (v: number | null) => (v == null ? '-' : <Tag color={v >= 0 ? 'green' : 'red'}>{v.toFixed(2)}</Tag>) })),
            ]}
          />
        </Card>
      </Col>
    </Row>
  )
}

function Network({ onOpen }: { onOpen: (id: number) => void }) {
  const { t, lang } = useT()
  const n = useApi(url('/network', null, { limit: 15 }))
  if (n.error) return <Alert type="error" message={n.error} />
  if (!n.data) return <Skeleton active />
  const sm = n.data.summary
  const open = (r: Cells) => ({ onClick: () => onOpen(numOf(r, 'customer_id') ?? numOf(r, 'root_customer_id') ?? 0), style: { cursor: 'pointer' } })
  return (
    <Row gutter={[12, 12]}>
      {sm && (
        <Col xs={24}>
          <Tag>{t.customersN} {num(sm.customers)}</Tag>
          <Tag>{t.ties} {num(sm.ties)}</Tag>
          <Tag>{t.communities} {num(sm.communities)} ({t.modularity} {num(sm.modularity, 2)})</Tag>
          <Tag color="volcano">
            {t.seeds}: {num(sm.seeds?.expected_spread_greedy, 1)} {t.versus} PageRank {num(sm.seeds?.expected_spread_top_pagerank, 1)}
          </Tag>
        </Col>
      )}
      <Col xs={24} lg={12}>
        <Card title={t.influencers} size="small">
          <Table
            size="small"
            rowKey="customer_id"
            data-testid="influencers"
            scroll={{ x: true }}
            pagination={false}
            onRow={open}
            dataSource={n.data.influencers}
            columns={[
              { title: '#', dataIndex: 'influence_rank' },
              { title: t.customer, dataIndex: 'customer_id' },
              { title: 'PageRank ‰', dataIndex: 'pagerank', render: (v: number) => (v * 1000).toFixed(3) },
              { title: t.communities, dataIndex: 'community' },
              { title: t.shares, dataIndex: 'shares_sent' },
              { title: t.reach, dataIndex: 'cascade_reach' },
              { title: t.tier, dataIndex: 'tier', render: (v: string) => label(lang, 'tier', v) },
            ]}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.seeds} size="small">
          <Table
            size="small"
            rowKey="customer_id"
            scroll={{ x: true }}
            pagination={false}
            onRow={open}
            dataSource={n.data.seeds}
            columns={[
              { title: '#', dataIndex: 'seed_rank' },
              { title: t.customer, dataIndex: 'customer_id' },
              { title: t.reach, dataIndex: 'seed_spread', render: (v: number) => num(v, 1) },
              { title: 'PageRank #', dataIndex: 'influence_rank' },
            ]}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.communities} size="small">
          <ReactECharts opts={{ renderer: 'svg' }}
            style={{ height: 260 }}
            option={{
              tooltip: {},
              xAxis: { type: 'category', data: n.data.communities.map((c) => `#${numOf(c, 'community')}`) },
              yAxis: { type: 'value' },
              series: [{ type: 'bar', name: t.count, data: n.data.communities.map((c) => numOf(c, 'members')) }],
            }}
          />
        </Card>
      </Col>
      <Col xs={24} lg={12}>
        <Card title={t.cascades} size="small">
          <Table
            size="small"
            rowKey={(r: Cells) => `${strOf(r, 'campaign')}-${numOf(r, 'root_customer_id')}`}
            scroll={{ x: true }}
            pagination={false}
            onRow={open}
            dataSource={n.data.cascades.slice(0, 10)}
            columns={[
              { title: t.campaign, dataIndex: 'campaign' },
              { title: t.customer, dataIndex: 'root_customer_id' },
              { title: t.reach, dataIndex: 'reached' },
              { title: t.depth, dataIndex: 'depth' },
              { title: t.paths, dataIndex: 'longest_path', render: (v: string | null) => (v ? (JSON.parse(v) as number[]).join(' → ') : '—') },
            ]}
          />
        </Card>
      </Col>
    </Row>
  )
}

export default function Dimensions({ onOpen }: { onOpen: (id: number) => void }) {
  const { t } = useT()
  return (
    <Tabs
      data-testid="dimensions"
      items={[
        { key: 'behaviour', label: t.behaviour, children: <Behaviour /> },
        { key: 'sentiment', label: t.sentiment, children: <Sentiment /> },
        { key: 'network', label: t.network, children: <Network onOpen={onOpen} /> },
      ]}
    />
  )
}
