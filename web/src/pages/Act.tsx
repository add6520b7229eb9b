import { useState } from 'react'
import { Alert, App, Button, Card, Col, Descriptions, Form, Input, InputNumber, Modal, Row, Select, Space, Table, Tabs, Tag, Typography } from 'antd'
import ReactECharts from 'echarts-for-react'
import { fixed, num, pct, post, PostBody, put, Schemas, url, yuan } from '../api'
import { useT } from '../i18n'
import { auditAction, auditTarget, label } from '../labels'
import { useApi } from './useApi'

const STATUS_COLOR: Record<Schemas['CampaignStatus'], string> = { draft: 'default', running: 'green', paused: 'orange', completed: 'blue', cancelled: 'red' }

function Results({ id }: { id: number }) {
  const { t, lang } = useT()
  const r = useApi(url('/campaigns/{id}/results', { id }))
  if (r.error) return <Alert type="error" message={r.error} />
  if (!r.data) return null
  const d = r.data
  if (!d.arms.length || !d.window || !d.srm || !d.uplift) return <Alert type="info" message={d.note ?? t.noData} />
  const curve = d.uplift.curve
  return (
    <Space direction="vertical" style={{ width: '100%' }} data-testid="campaign-results">
      <Space wrap>
        <Tag>{t.window}: {d.window.from} → {d.window.to}</Tag>
        <Tag color={d.window.complete ? 'green' : 'orange'}>{d.window.complete ? t.complete : t.inProgress}</Tag>
        <Tag color={d.srm.mismatch ? 'red' : 'green'} data-testid="srm-tag">{t.srm} p={fixed(d.srm.p_value, 3)}</Tag>
        <Tag>{t.holdout}: {num(d.holdout)} · {t.globalHoldout}: {num(d.global_holdout)}</Tag>
      </Space>
      <Table
        size="small"
        rowKey="arm"
        scroll={{ x: true }}
        pagination={false}
        dataSource={d.arms}
        columns={[
          { title: t.arm, dataIndex: 'arm', render: (v: string) => label(lang, 'arm', v) },
          { title: t.members, dataIndex: 'members', render: (v: number) => num(v) },
          {
            title: t.incrementalRevenue,
            render: (_: unknown, a: Schemas['ArmResult']) => (
              <span data-testid="incremental">
                {yuan(a.incremental_revenue_fen)} <Typography.Text type="secondary">[{yuan(a.incremental_revenue_ci[0])}, {yuan(a.incremental_revenue_ci[1])}]</Typography.Text>
              </span>
            ),
          },
          { title: t.chanceToWin, render: (_: unknown, a: Schemas['ArmResult']) => pct(a.revenue_per_member_cuped.chance_to_win) },
          { title: t.holmP, render: (_: unknown, a: Schemas['ArmResult']) => fixed(a.holm_p_revenue, 3) },
          { title: t.retentionLift, render: (_: unknown, a: Schemas['ArmResult']) => (a.retention.diff == null ? '-' : `${(a.retention.diff * 100).toFixed(1)} ${t.points}`) },
          { title: t.redemptions, render: (_: unknown, a: Schemas['ArmResult']) => `${num(a.redemptions)} (${t.atStore} ${num(a.redeemed_at_pos)} / ${t.miniProgram} ${num(a.redeemed_in_mini_program)})` },
          { title: t.discountCost, render: (_: unknown, a: Schemas['ArmResult']) => yuan(a.discount_cost_fen) },
          { title: t.roi, render: (_: unknown, a: Schemas['ArmResult']) => fixed(a.roi, 2) },
          {
            title: t.guardrails,
            render: (_: unknown, a: Schemas['ArmResult']) =>
              Object.entries(a.guardrails).map(([k, v]) => (
                <Tag key={k} color={v === 'violated' ? 'red' : v === 'ok' ? 'green' : 'default'}>
                  {label(lang, 'guardrail', k)}: {label(lang, 'guardStatus', String(v))}
                </Tag>
              )),
          },
        ]}
      />
      {d.variants.map((v) => (
        <Alert
          key={v.arm}
          type="info"
          data-testid="variant-vs"
          message={`${label(lang, 'arm', v.arm)} ${t.versus} ${label(lang, 'arm', v.against)}: ${yuan(v.revenue_per_member_cuped.diff)} / ${t.members} [${yuan(v.revenue_per_member_cuped.ci[0])}, ${yuan(v.revenue_per_member_cuped.ci[1])}] · ${t.chanceToWin} ${pct(v.revenue_per_member_cuped.chance_to_win)} · ${t.holmP} ${fixed(v.holm_p_revenue, 3)}`}
        />
      ))}
      <Card size="small" title={`${t.uplift} · ${t.qini} ${fixed(d.uplift.qini_coefficient, 3)}`}>
        <ReactECharts opts={{ renderer: 'svg' }}
          style={{ height: 240 }}
          option={{
            tooltip: { trigger: 'axis' },
            grid: { left: 50, right: 10, top: 20, bottom: 30 },
            xAxis: { type: 'value', max: 1, axisLabel: { formatter: (v: number) => `${Math.round(v * 100)}%` } },
            yAxis: { type: 'value', axisLabel: { formatter: (v: number) => yuan(v) } },
            series: [
              { name: t.model, type: 'line', showSymbol: false, data: curve.map((p) => [p.share, p.gain]) },
              { name: t.random, type: 'line', showSymbol: false, lineStyle: { type: 'dashed' }, data: [[0, 0], [1, curve.length ? (curve[curve.length - 1].gain ?? 0) : 0]] },
            ],
          }}
        />
      </Card>
    </Space>
  )
}

/// Edits a suggested spec before it is stored: name, channel, dates, holdout, coupon, cap, quiet
/// hours, and an optional B arm with a different coupon.
/** The editor's fields (money in yuan; the spec keeps fen). */
type EditorFields = {
  name: string
  channel: Schemas['Channel']
  start: string
  end: string
  holdout_pct: number
  discount: number
  b_discount?: number | null
  frequency_cap: number
  quiet_start: number
  quiet_end: number
}

function CampaignEditor({ spec, onClose, onSaved }: { spec: Schemas['CampaignSpec']; onClose: () => void; onSaved: () => void }) {
  const { t, lang } = useT()
  const [form] = Form.useForm()
  const [err, setErr] = useState<string | null>(null)
  const save = async () => {
    const v: EditorFields = await form.validateFields()
    const offer = { ...spec.offer, discount_fen: Math.round(v.discount * 100) }
    const body: PostBody<'/campaigns'> = {
      ...spec,
      name: v.name,
      channel: v.channel,
      start: v.start,
      end: v.end,
      holdout_pct: v.holdout_pct,
      frequency_cap: v.frequency_cap,
      quiet_start: v.quiet_start,
      quiet_end: v.quiet_end,
      offer,
      variants: v.b_discount ? [{ name: 'A', weight: 1 }, { name: 'B', weight: 1, offer: { ...offer, discount_fen: Math.round(v.b_discount * 100) } }] : [],
    }
    try {
      await post('/campaigns', body)
      onSaved()
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Modal open title={t.createCampaign} onOk={save} onCancel={onClose} okButtonProps={{ 'data-testid': 'save-campaign' } as React.ComponentProps<typeof Button>}>
      {err && <Alert type="error" message={err} data-testid="campaign-error" style={{ marginBottom: 8 }} />}
      <Form
        form={form}
        layout="vertical"
        size="small"
        initialValues={{
          name: spec.name,
          channel: spec.channel,
          start: spec.start,
          end: spec.end,
          holdout_pct: spec.holdout_pct,
          discount: (spec.offer.discount_fen ?? 0) / 100,
          frequency_cap: spec.frequency_cap,
          quiet_start: spec.quiet_start,
          quiet_end: spec.quiet_end,
        }}
      >
        <Form.Item name="name" label={t.name} rules={[{ required: true }]}>
          <Input data-testid="campaign-name" />
        </Form.Item>
        <Space wrap>
          <Form.Item name="channel" label={t.channel}>
            <Select style={{ width: 110 }} options={(['wechat', 'sms', 'push'] satisfies Schemas['Channel'][]).map((c) => ({ value: c, label: label(lang, 'msgChannel', c) }))} />
          </Form.Item>
          <Form.Item name="start" label={t.start}>
            <Input style={{ width: 120 }} />
          </Form.Item>
          <Form.Item name="end" label={t.end}>
            <Input style={{ width: 120 }} />
          </Form.Item>
        </Space>
        <Space wrap>
          <Form.Item name="discount" label={`${t.offer} (¥)`}>
            <InputNumber min={0} max={1000} />
          </Form.Item>
          <Form.Item name="b_discount" label={t.variantB}>
            <InputNumber min={0} max={1000} data-testid="variant-b" />
          </Form.Item>
          <Form.Item name="holdout_pct" label={`${t.holdout} %`}>
            <InputNumber min={0} max={50} data-testid="holdout-pct" />
          </Form.Item>
        </Space>
        <Space wrap>
          <Form.Item name="frequency_cap" label={t.frequencyCap}>
            <InputNumber min={1} max={10} />
          </Form.Item>
          <Form.Item name="quiet_start" label={t.quietHours}>
            <InputNumber min={0} max={23} />
          </Form.Item>
          <Form.Item name="quiet_end" label="→">
            <InputNumber min={0} max={23} />
          </Form.Item>
        </Space>
      </Form>
    </Modal>
  )
}

/// All campaigns together against the global holdout, over the campaigns' dates.
function Program({ campaigns }: { campaigns: Schemas['Campaign'][] }) {
  const { t } = useT()
  const live = campaigns.filter((c) => c.status !== 'draft' && c.status !== 'cancelled')
  const from = live.map((c) => c.spec.start).sort()[0]
  const to = live.map((c) => c.spec.end).sort().reverse()[0]
  const p = useApi(from ? url('/campaigns/program', null, { from, to }) : null)
  if (!from || !p.data) return null
  const d = p.data
  const e = d.revenue_per_customer_cuped
  return (
    <Alert
      type="info"
      data-testid="program"
      style={{ marginBottom: 8 }}
      message={`${t.program} ${d.from} → ${d.to}: ${yuan(d.incremental_revenue_fen)} [${yuan(d.incremental_revenue_ci[0])}, ${yuan(d.incremental_revenue_ci[1])}] · ${t.chanceToWin} ${pct(e.chance_to_win)} · ${t.globalHoldout} ${num(d.global_holdout)} / ${num(d.customers)} · ${t.srm} p=${fixed(d.srm.p_value, 3)}`}
    />
  )
}

function Campaigns({ canWrite }: { canWrite: boolean }) {
  const { t, lang } = useT()
  const { message } = App.useApp()
  const list = useApi(url('/campaigns'))
  const sugg = useApi(url('/campaigns/suggestions'))
  const [open, setOpen] = useState<number | null>(null)
  const [editing, setEditing] = useState<Schemas['CampaignSpec'] | null>(null)
  const act = async (change: () => Promise<unknown>) => {
    try {
      await change()
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
              { title: t.rfmClass, dataIndex: 'rfm_class', render: (v: string) => label(lang, 'rfmClass', v) },
              { title: t.goal, render: (_: unknown, s: Schemas['Suggestion']) => (lang === 'zh' ? s.goal_zh : s.goal_en) },
              { title: t.count, dataIndex: 'customers', render: (v: number) => num(v) },
              { title: t.churn, dataIndex: 'avg_churn', render: (v: number) => pct(v) },
              { title: t.clv, dataIndex: 'clv_fen', render: (v: number) => yuan(v) },
              { title: t.offer, render: (_: unknown, s: Schemas['Suggestion']) => `${yuan(s.spec.offer.discount_fen)} · ${t.favouriteItem}` },
              {
                title: '',
                render: (_: unknown, s: Schemas['Suggestion']) =>
                  canWrite && (
                    <Button size="small" data-testid="create-campaign" onClick={() => setEditing(s.spec)}>
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
          <Program campaigns={list.data?.campaigns ?? []} />
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
              { title: t.status, dataIndex: 'status', render: (v: Schemas['CampaignStatus']) => <Tag color={STATUS_COLOR[v]}>{t[v]}</Tag> },
              { title: t.count, dataIndex: 'audience_size', render: (v: number) => num(v) },
              { title: t.schedule, render: (_: unknown, c: Schemas['Campaign']) => `${c.spec.start} → ${c.spec.end}` },
              { title: t.channel, render: (_: unknown, c: Schemas['Campaign']) => label(lang, 'msgChannel', c.spec.channel) },
              {
                title: '',
                render: (_: unknown, c: Schemas['Campaign']) => (
                  <Space size={4} wrap>
                    {canWrite && c.status === 'draft' && (
                      <Button size="small" type="primary" data-testid="launch" onClick={() => act(() => post('/campaigns/{id}/launch', null, { id: c.campaign_id }))}>
                        {t.launch}
                      </Button>
                    )}
                    {canWrite && c.status === 'running' && <Button size="small" onClick={() => act(() => post('/campaigns/{id}/status', { action: 'pause' }, { id: c.campaign_id }))}>{t.pause}</Button>}
                    {canWrite && c.status === 'paused' && <Button size="small" onClick={() => act(() => post('/campaigns/{id}/status', { action: 'resume' }, { id: c.campaign_id }))}>{t.resume}</Button>}
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
      {editing && (
        <CampaignEditor
          spec={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null)
            list.reload()
          }}
        />
      )}
    </Row>
  )
}

function Service() {
  const { t, lang } = useT()
  const tickets = useApi(url('/service/tickets', null, { limit: 30 }))
  const [msg, setMsg] = useState('')
  const [diag, setDiag] = useState<Schemas['Diagnosis'] | null>(null)
  const [err, setErr] = useState<string | null>(null)
  const run = async () => {
    try {
      setErr(null)
      setDiag(await post('/service/diagnose', { message: msg }))
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  const sol = (r: Schemas['Resolution']) => (lang === 'zh' ? r.solution_zh : r.solution_en)
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
                {diag.probabilities.map((p) => `${t[p.cause as keyof typeof t] ?? p.cause} ${pct(p.p)}`).join(' · ')}
              </Descriptions.Item>
              <Descriptions.Item label={t.solution}>{sol(diag.resolution)}</Descriptions.Item>
              <Descriptions.Item label={t.compensation}>
                {yuan(diag.resolution.compensation_fen)} ({label(lang, 'compensation', diag.resolution.compensation_kind)}){diag.resolution.escalate ? ` · ${t.escalate}` : ''}
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
              { title: t.cause, render: (_: unknown, r: Schemas['TicketView']) => <Tag>{t[r.predicted_cause as keyof typeof t] ?? r.predicted_cause} {pct(r.confidence)}</Tag> },
              { title: t.compensation, render: (_: unknown, r: Schemas['TicketView']) => yuan(r.resolution.compensation_fen) },
              { title: t.solution, width: 220, ellipsis: true, render: (_: unknown, r: Schemas['TicketView']) => sol(r.resolution) },
            ]}
          />
        </Card>
      </Col>
    </Row>
  )
}

function Experiments({ canWrite }: { canWrite: boolean }) {
  const { t, lang } = useT()
  const list = useApi(url('/experiments'))
  const [open, setOpen] = useState<number | null>(null)
  const [plan, setPlan] = useState<Schemas['Plan'] | null>(null)
  const [err, setErr] = useState<string | null>(null)
  const [form] = Form.useForm()
  const res = useApi(open != null ? url('/experiments/{id}/results', { id: open }) : null)
  const create = async () => {
    const v: PostBody<'/experiments'> = await form.validateFields()
    try {
      setErr(null)
      setPlan(await post('/experiments', v))
      list.reload()
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <Card size="small" title={t.experiments}>
      {canWrite && (
        <Form form={form} layout="inline" size="small" initialValues={{ design: 'store', metric: 'revenue' }} style={{ marginBottom: 8, rowGap: 8 }}>
          <Form.Item name="name" rules={[{ required: true }]}>
            <Input placeholder={t.name} style={{ width: 140 }} data-testid="exp-name" />
          </Form.Item>
          <Form.Item name="hypothesis">
            <Input placeholder={t.hypothesis} style={{ width: 160 }} />
          </Form.Item>
          <Form.Item name="design">
            <Select style={{ width: 120 }} options={[{ value: 'store', label: t.storeDesign }, { value: 'switchback', label: t.switchback }]} />
          </Form.Item>
          <Form.Item name="start" rules={[{ required: true }]}>
            <Input placeholder="YYYY-MM-DD" style={{ width: 110 }} data-testid="exp-start" />
          </Form.Item>
          <Form.Item name="end" rules={[{ required: true }]}>
            <Input placeholder="YYYY-MM-DD" style={{ width: 110 }} data-testid="exp-end" />
          </Form.Item>
          <Button type="primary" onClick={create} data-testid="exp-create">
            {t.plan}
          </Button>
        </Form>
      )}
      {err && <Alert type="error" message={err} />}
      {plan && (
        <Alert
          type="info"
          data-testid="exp-plan"
          message={`#${plan.experiment_id}: ${plan.stores} ${t.store} × ${plan.days} ${t.days} · ${t.mde} ${num(plan.mde_abs == null ? null : plan.mde_abs / 100, 0)} ¥/${t.storeDay} (${pct(plan.mde_rel)})`}
          style={{ marginBottom: 8 }}
        />
      )}
      <Table
        size="small"
        rowKey="experiment_id"
        scroll={{ x: true }}
        pagination={false}
        dataSource={list.data?.experiments ?? []}
        columns={[
          { title: '#', dataIndex: 'experiment_id' },
          { title: t.name, render: (_: unknown, e: Schemas['Experiment']) => e.spec?.name },
          { title: t.design, render: (_: unknown, e: Schemas['Experiment']) => label(lang, 'design', e.spec?.design) },
          { title: t.schedule, render: (_: unknown, e: Schemas['Experiment']) => `${e.spec?.start} → ${e.spec?.end}` },
          { title: '', render: (_: unknown, e: Schemas['Experiment']) => <Button size="small" onClick={() => setOpen(e.experiment_id)}>{t.results}</Button> },
        ]}
      />
      {res.data && (
        <Descriptions size="small" column={1} style={{ marginTop: 8 }}>
          <Descriptions.Item label={t.effect}>
            {num(res.data.result.diff, 1)} [{num(res.data.result.ci_low, 1)}, {num(res.data.result.ci_high, 1)}] · p={fixed(res.data.result.p_value, 3)}
          </Descriptions.Item>
          <Descriptions.Item label={t.chanceToWin}>{pct(res.data.chance_to_win)}</Descriptions.Item>
          <Descriptions.Item label={t.design}>{label(lang, 'analysis', res.data.spec.design)}</Descriptions.Item>
        </Descriptions>
      )}
    </Card>
  )
}

function Audit() {
  const { t, lang } = useT()
  const a = useApi(url('/audit', null, { limit: 200 }))
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
        { title: t.action, dataIndex: 'action', render: (v: string) => auditAction(lang, v) },
        { title: t.target, dataIndex: 'target', render: (v: string) => auditTarget(lang, v) },
        { title: t.outcome, dataIndex: 'outcome', render: (v: string) => <Tag color={v === 'ok' ? 'green' : v === 'denied' ? 'red' : 'orange'}>{label(lang, 'outcome', v)}</Tag> },
      ]}
    />
  )
}

function Journeys({ canWrite }: { canWrite: boolean }) {
  const { t, lang } = useT()
  const { message } = App.useApp()
  const list = useApi(url('/journeys'))
  const [open, setOpen] = useState<string>('miss_you')
  const sends = useApi(url('/journeys/{kind}/sends', { kind: open }, { limit: 50 }))
  if (list.error) return <Alert type="error" message={list.error} />
  const toggle = async (kind: string, on: boolean) => {
    try {
      await put('/journeys/{kind}', {
        enabled: on, channel: 'wechat', holdout_pct: 10, cooldown_days: 30,
        offer: { kind: 'favourite_item', discount_fen: 500, daypart: 'usual' },
      }, { kind })
      list.reload()
    } catch (e) {
      message.error((e as Error).message)
    }
  }
  const total = (c: Record<string, number>, status: string) =>
    Object.entries(c).filter(([k]) => k.endsWith(`/${status}`)).reduce((a, [, v]) => a + v, 0)
  return (
    <Space direction="vertical" style={{ width: '100%' }}>
      <Table size="small" rowKey="kind" pagination={false} scroll={{ x: true }} data-testid="journeys" dataSource={list.data?.journeys ?? []}
        columns={[
          { title: t.name, key: 'k', render: (_: unknown, j) => <a onClick={() => setOpen(j.kind)}>{label(lang, 'journey', j.kind)}</a> },
          { title: t.status, key: 'e', render: (_: unknown, j) => <Tag color={j.spec?.enabled ? 'green' : 'default'}>{j.spec?.enabled ? t.enabled : t.off}</Tag> },
          ...['planned', 'not_sent', 'capped', 'cooldown', 'cancelled', 'no_consent'].map((s) => ({
            title: label(lang, 'sendStatus', s), key: s, render: (_: unknown, j: { counts: Record<string, number> }) => num(total(j.counts, s)),
          })),
          ...(canWrite ? [{ title: '', key: 'a', render: (_: unknown, j: { kind: string; spec?: { enabled: boolean } | null }) => (
            <Button size="small" onClick={() => toggle(j.kind, !j.spec?.enabled)}>{j.spec?.enabled ? t.turnOff : t.turnOn}</Button>
          ) }] : []),
        ]} />
      <Card size="small" title={`${label(lang, 'journey', open)} · ${t.sends}`}>
        <Table size="small" rowKey="trigger_key" pagination={false} scroll={{ x: true }} dataSource={sends.data?.sends ?? []}
          columns={[
            { title: t.customer, dataIndex: 'customer_id', key: 'c' },
            { title: t.arm, dataIndex: 'arm', key: 'a', render: (v: string) => label(lang, 'arm', v) },
            { title: t.status, dataIndex: 'status', key: 's', render: (v: string) => label(lang, 'sendStatus', v) },
            { title: t.sendAt, dataIndex: 'send_at', key: 't', render: (v: string) => v.slice(0, 16) },
            { title: t.offer, dataIndex: 'discount_fen', key: 'o', render: (v: number | null) => yuan(v) },
          ]} />
      </Card>
    </Space>
  )
}

export default function Act({ role }: { role?: string }) {
  const { t } = useT()
  const items = [
    { key: 'campaigns', label: t.campaigns, children: <Campaigns canWrite={!!role} /> },
    { key: 'experiments', label: t.experiments, children: <Experiments canWrite={!!role} /> },
    { key: 'service', label: t.service, children: <Service /> },
    { key: 'journeys', label: t.journeys, children: <Journeys canWrite={role === 'admin' || role === 'analyst'} /> },
  ]
  if (role === 'admin') items.push({ key: 'audit', label: t.audit, children: <Audit /> })
  return <Tabs items={items} destroyInactiveTabPane />
}
