import { useState } from 'react'
import { Alert, App, Button, Card, Col, Descriptions, Input, Row, Space, Table, Tabs, Tag, Typography } from 'antd'
import ReactECharts from 'echarts-for-react'
import { api, Json, num, pct, yuan } from '../api'
import { useT } from '../i18n'
import { useApi } from './useApi'

const STATUS_COLOR: Record<string, string> = { draft: 'default', running: 'green', paused: 'orange', completed: 'blue', cancelled: 'red' }

function Results({ id }: { id: number }) {
  const { t } = useT()
  const r = useApi(`/campaigns/${id}/results`)
  if (r.error) return <Alert type="error" message={r.error} />
  if (!r.data) return null
  const d = r.data
  if (!d.arms) return <Alert type="info" message={d.note ?? t.noData} />
  const curve: Json[] = d.uplift?.curve ?? []
  return (
    <Space direction="vertical" style={{ width: '100%' }} data-testid="campaign-results">
      <Space wrap>
        <Tag>{t.window}: {d.window.from} → {d.window.to}</Tag>
        <Tag color={d.window.complete ? 'green' : 'orange'}>{d.window.complete ? t.complete : t.inProgress}</Tag>
        <Tag color={d.srm.mismatch ? 'red' : 'green'} data-testid="srm-tag">SRM p={d.srm.p_value.toFixed(3)}</Tag>
        <Tag>{t.holdout}: {num(d.holdout)} · {t.globalHoldout}: {num(d.global_holdout)}</Tag>
      </Space>
      <Table
        size="small"
        rowKey="arm"
        scroll={{ x: true }}
        pagination={false}
        dataSource={d.arms}
        columns={[
          { title: t.arm, dataIndex: 'arm' },
          { title: t.members, dataIndex: 'members', render: (v: number) => num(v) },
          {
            title: t.incrementalRevenue,
            render: (_: unknown, a: Json) => (
              <span data-testid="incremental">
                {yuan(a.incremental_revenue_fen)} <Typography.Text type="secondary">[{yuan(a.incremental_revenue_ci[0])}, {yuan(a.incremental_revenue_ci[1])}]</Typography.Text>
              </span>
            ),
          },
          { title: t.chanceToWin, render: (_: unknown, a: Json) => pct(a.revenue_per_member_cuped.chance_to_win) },
          { title: 'p (Holm)', render: (_: unknown, a: Json) => a.holm_p_revenue.toFixed(3) },
          { title: t.retentionLift, render: (_: unknown, a: Json) => `${(a.retention.diff * 100).toFixed(1)} pt` },
          { title: t.redemptions, render: (_: unknown, a: Json) => `${num(a.redemptions)} (POS ${num(a.redeemed_at_pos)} / ${t.miniProgram} ${num(a.redeemed_in_mini_program)})` },
          { title: t.discountCost, render: (_: unknown, a: Json) => yuan(a.discount_cost_fen) },
          { title: 'ROI', render: (_: unknown, a: Json) => (a.roi == null ? '-' : a.roi.toFixed(2)) },
          {
            title: t.guardrails,
            render: (_: unknown, a: Json) =>
              Object.entries(a.guardrails).map(([k, v]) => (
                <Tag key={k} color={v === 'violated' ? 'red' : v === 'ok' ? 'green' : 'default'}>
                  {k}: {String(v)}
                </Tag>
              )),
          },
        ]}
      />
      <Card size="small" title={`${t.uplift} · Qini ${d.uplift.qini_coefficient.toFixed(3)}`}>
        <ReactECharts
          style={{ height: 240 }}
          option={{
            tooltip: { trigger: 'axis' },
            grid: { left: 50, right: 10, top: 20, bottom: 30 },
            xAxis: { type: 'value', max: 1, axisLabel: { formatter: (v: number) => `${Math.round(v * 100)}%` } },
            yAxis: { type: 'value', axisLabel: { formatter: (v: number) => yuan(v) } },
            series: [
              { name: t.model, type: 'line', showSymbol: false, data: curve.map((p) => [p.share, p.gain]) },
              { name: t.random, type: 'line', showSymbol: false, lineStyle: { type: 'dashed' }, data: [[0, 0], [1, curve.length ? curve[curve.length - 1].gain : 0]] },
            ],
          }}
        />
      </Card>
    </Space>
  )
}

function Campaigns({ canWrite }: { canWrite: boolean }) {
  const { t, lang } = useT()
  const { message } = App.useApp()
  const list = useApi('/campaigns')
  const sugg = useApi('/campaigns/suggestions')
  const [open, setOpen] = useState<number | null>(null)
  const act = async (path: string, body?: Json) => {
    try {
      await api(path, { method: 'POST', body: body ? JSON.stringify(body) : undefined })
      list.reload()
    } catch (e) {
      message.error((e as Error).message)
    }
  }
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24}>
        <Card size="small" title={t.suggestions}>
          {sugg.error && <Alert type="error" message={sugg.error} />}
          <Table
            size="small"
            rowKey="rfm_class"
            scroll={{ x: true }}
            pagination={false}
            data-testid="suggestions"
            dataSource={sugg.data?.suggestions ?? []}
            columns={[
              { title: t.rfmClass, dataIndex: 'rfm_class' },
              { title: t.goal, render: (_: unknown, s: Json) => (lang === 'zh' ? s.goal_zh : s.goal_en) },
              { title: t.count, dataIndex: 'customers', render: (v: number) => num(v) },
              { title: t.churn, dataIndex: 'avg_churn', render: (v: number) => pct(v) },
              { title: t.clv, dataIndex: 'clv_fen', render: (v: number) => yuan(v) },
              { title: t.offer, render: (_: unknown, s: Json) => `${yuan(s.spec.offer.discount_fen)} · ${t.favouriteItem}` },
              {
                title: '',
                render: (_: unknown, s: Json) =>
                  canWrite && (
                    <Button size="small" data-testid="create-campaign" onClick={() => act('/campaigns', s.spec)}>
                      {t.createCampaign}
                    </Button>
                  ),
              },
            ]}
          />
        </Card>
      </Col>
      <Col xs={24}>
        <Card size="small" title={t.campaigns}>
          <Table
            size="small"
            rowKey="campaign_id"
            scroll={{ x: true }}
            pagination={{ pageSize: 10 }}
            data-testid="campaigns"
            dataSource={list.data?.campaigns ?? []}
            columns={[
              { title: '#', dataIndex: 'campaign_id' },
              { title: t.name, dataIndex: 'name' },
              { title: t.status, dataIndex: 'status', render: (v: string) => <Tag color={STATUS_COLOR[v]}>{t[v as keyof typeof t] ?? v}</Tag> },
              { title: t.count, dataIndex: 'audience_size', render: (v: number) => num(v) },
              { title: t.schedule, render: (_: unknown, c: Json) => `${c.spec.start} → ${c.spec.end}` },
              { title: t.channel, render: (_: unknown, c: Json) => c.spec.channel },
              {
                title: '',
                render: (_: unknown, c: Json) => (
                  <Space size={4} wrap>
                    {canWrite && c.status === 'draft' && (
                      <Button size="small" type="primary" data-testid="launch" onClick={() => act(`/campaigns/${c.campaign_id}/launch`)}>
                        {t.launch}
                      </Button>
                    )}
                    {canWrite && c.status === 'running' && <Button size="small" onClick={() => act(`/campaigns/${c.campaign_id}/status`, { action: 'pause' })}>{t.pause}</Button>}
                    {canWrite && c.status === 'paused' && <Button size="small" onClick={() => act(`/campaigns/${c.campaign_id}/status`, { action: 'resume' })}>{t.resume}</Button>}
                    {c.status !== 'draft' && (
                      <Button size="small" data-testid="show-results" onClick={() => setOpen(open === c.campaign_id ? null : c.campaign_id)}>
                        {t.results}
                      </Button>
                    )}
                  </Space>
                ),
              },
            ]}
          />
          {open != null && <Results id={open} />}
        </Card>
      </Col>
    </Row>
  )
}

function Service() {
  const { t, lang } = useT()
  const tickets = useApi('/service/tickets?limit=30')
  const [msg, setMsg] = useState('')
  const [diag, setDiag] = useState<Json | null>(null)
  const [err, setErr] = useState<string | null>(null)
  const run = async () => {
    try {
      setErr(null)
      setDiag(await api('/service/diagnose', { method: 'POST', body: JSON.stringify({ message: msg }) }))
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  const sol = (r: Json) => (lang === 'zh' ? r.solution_zh : r.solution_en)
  return (
    <Row gutter={[12, 12]}>
      <Col xs={24} lg={10}>
        <Card size="small" title={t.diagnose}>
          <Input.TextArea rows={3} value={msg} onChange={(e) => setMsg(e.target.value)} placeholder={t.ticketHint} data-testid="ticket-text" />
          <Button type="primary" style={{ marginTop: 8 }} onClick={run} disabled={!msg.trim()} data-testid="diagnose">
            {t.diagnose}
          </Button>
          {err && <Alert type="error" message={err} />}
          {diag && (
            <Descriptions size="small" column={1} style={{ marginTop: 8 }} data-testid="diagnosis">
              <Descriptions.Item label={t.cause}>
                <Tag color="red">{t[diag.predicted_cause as keyof typeof t] ?? diag.predicted_cause}</Tag>
              </Descriptions.Item>
              <Descriptions.Item label={t.probabilities}>
                {diag.probabilities.map((p: Json) => `${t[p.cause as keyof typeof t] ?? p.cause} ${pct(p.p)}`).join(' · ')}
              </Descriptions.Item>
              <Descriptions.Item label={t.solution}>{sol(diag.resolution)}</Descriptions.Item>
              <Descriptions.Item label={t.compensation}>
                {yuan(diag.resolution.compensation_fen)} ({diag.resolution.compensation_kind}){diag.resolution.escalate ? ` · ${t.escalate}` : ''}
              </Descriptions.Item>
            </Descriptions>
          )}
        </Card>
      </Col>
      <Col xs={24} lg={14}>
        <Card size="small" title={`${t.openTickets} (${tickets.data?.total ?? '-'})`}>
          {tickets.error && <Alert type="error" message={tickets.error} />}
          <Table
            size="small"
            rowKey="ticket_key"
            scroll={{ x: true }}
            pagination={{ pageSize: 8 }}
            data-testid="tickets"
            dataSource={tickets.data?.tickets ?? []}
            columns={[
              { title: t.message, dataIndex: 'message', width: 140, ellipsis: true },
              { title: t.cause, render: (_: unknown, r: Json) => <Tag>{t[r.predicted_cause as keyof typeof t] ?? r.predicted_cause} {pct(r.confidence)}</Tag> },
              { title: t.compensation, render: (_: unknown, r: Json) => yuan(r.resolution.compensation_fen) },
              { title: t.solution, width: 220, ellipsis: true, render: (_: unknown, r: Json) => sol(r.resolution) },
            ]}
          />
        </Card>
      </Col>
    </Row>
  )
}

function Experiments() {
  const { t } = useT()
  const list = useApi('/experiments')
  const [open, setOpen] = useState<number | null>(null)
  const res = useApi(open != null ? `/experiments/${open}/results` : null)
  return (
    <Card size="small" title={t.experiments}>
      <Table
        size="small"
        rowKey="experiment_id"
        scroll={{ x: true }}
        pagination={false}
        dataSource={list.data?.experiments ?? []}
        columns={[
          { title: '#', dataIndex: 'experiment_id' },
          { title: t.name, render: (_: unknown, e: Json) => e.spec?.name },
          { title: t.design, render: (_: unknown, e: Json) => e.spec?.design },
          { title: t.schedule, render: (_: unknown, e: Json) => `${e.spec?.start} → ${e.spec?.end}` },
          { title: '', render: (_: unknown, e: Json) => <Button size="small" onClick={() => setOpen(e.experiment_id)}>{t.results}</Button> },
        ]}
      />
      {res.data && (
        <Descriptions size="small" column={1} style={{ marginTop: 8 }}>
          <Descriptions.Item label={t.effect}>
            {num(res.data.result.diff, 1)} [{num(res.data.result.ci_low, 1)}, {num(res.data.result.ci_high, 1)}] · p={res.data.result.p_value.toFixed(3)}
          </Descriptions.Item>
          <Descriptions.Item label={t.chanceToWin}>{pct(res.data.chance_to_win)}</Descriptions.Item>
          <Descriptions.Item label={t.design}>{res.data.analysis}</Descriptions.Item>
        </Descriptions>
      )}
    </Card>
  )
}

function Audit() {
  const { t } = useT()
  const a = useApi('/audit?limit=200')
  if (a.error) return <Alert type="error" message={a.error} />
  return (
    <Table
      size="small"
      rowKey="seq"
      scroll={{ x: true }}
      data-testid="audit"
      dataSource={a.data?.entries ?? []}
      columns={[
        { title: '#', dataIndex: 'seq' },
        { title: t.time, dataIndex: 'at', render: (v: string) => v?.slice(0, 19).replace('T', ' ') },
        { title: t.actor, dataIndex: 'actor' },
        { title: t.action, dataIndex: 'action' },
        { title: t.target, dataIndex: 'target' },
        { title: t.outcome, dataIndex: 'outcome', render: (v: string) => <Tag color={v === 'ok' ? 'green' : v === 'denied' ? 'red' : 'orange'}>{v}</Tag> },
      ]}
    />
  )
}

export default function Act({ role }: { role?: string }) {
  const { t } = useT()
  const items = [
    { key: 'campaigns', label: t.campaigns, children: <Campaigns canWrite={!!role} /> },
    { key: 'experiments', label: t.experiments, children: <Experiments /> },
    { key: 'service', label: t.service, children: <Service /> },
  ]
  if (role === 'admin') items.push({ key: 'audit', label: t.audit, children: <Audit /> })
  return <Tabs items={items} destroyInactiveTabPane />
}
