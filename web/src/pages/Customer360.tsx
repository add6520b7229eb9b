import { useEffect, useState } from 'react'
import { Alert, Button, Card, Col, Descriptions, Empty, List, Progress, Rate, Row, Segmented, Skeleton, Space, Statistic, Table, Tag, Typography } from 'antd'
import ReactECharts from 'echarts-for-react'
import { get, isCustomerEvent, liveSocket, num, numOf, pct, Row as Cells, Schemas, strOf, url, yuan } from '../api'
import { useT } from '../i18n'
import { label, when } from '../labels'
import { useApi } from './useApi'

export default function Customer360({ id, onBack }: { id: number; onBack: () => void }) {
  const { t, lang } = useT()
  const prof = useApi(url('/customers/{id}', { id }))
  const tl = useApi(url('/customers/{id}/timeline', { id }, { limit: 30 }))
  const prefs = useApi(url('/customers/{id}/preferences', { id }))
  const emo = useApi(url('/customers/{id}/emotion', { id }))
  const [dp, setDp] = useState<Schemas['DaypartCode'] | null>(null)
  const recs = useApi(url('/customers/{id}/recommendations', { id }, { k: 8, daypart: dp }))
  const net = useApi(url('/customers/{id}/network', { id }))
  const preds = useApi(url('/customers/{id}/predictions', { id }, { type: 'clv' }))
  const [insight, setInsight] = useState<Schemas['Insight'] | null>(null)
  const [insightErr, setInsightErr] = useState<string | null>(null)
  const [live, setLive] = useState<Schemas['LiveView'] | null>(null)
  useEffect(() => {
    setInsight(null)
    return liveSocket([`customer:${id}`], (e) => isCustomerEvent(e) && setLive(e.data))
  }, [id])
  useEffect(() => {
    if (insight) genInsight()
  }, [lang]) // eslint-disable-line react-hooks/exhaustive-deps
  const genInsight = () =>
    get(url('/customers/{id}/insights', { id }, { lang }))
      .then((r) => (setInsight(r.insight), setInsightErr(null)))
      .catch((e: Error) => setInsightErr(e.message))
  if (prof.error) return <Alert type="error" message={prof.error} action={<Button onClick={onBack}>{t.back}</Button>} />
  if (!prof.data) return <Skeleton active />
  const pr = prof.data.profile
  const n = (col: string) => numOf(pr, col)
  const s = (col: string) => strOf(pr, col)
  const g = prof.data.geo
  const score = (live ?? prof.data.live)?.score
  const products = (prefs.data?.products ?? []).slice(0, 8)
  const dayparts: Record<string, number> = {}
  for (const x of prefs.data?.time ?? []) {
    const d = strOf(x, 'daypart') ?? '-'
    dayparts[d] = (dayparts[d] ?? 0) + (numOf(x, 'orders') ?? 0)
  }
  const metric = (m: string) => (preds.data?.predictions ?? []).find((r) => strOf(r, 'metric') === m)
  const nextDays = score?.prediction?.next_order_days ?? numOf(metric('next_order_days'), 'value')
  const asOf = strOf(metric('next_order_days'), 'as_of')
  const nextDate = nextDays != null && asOf ? new Date(Date.parse(asOf) + nextDays * 86400000).toISOString().slice(0, 10) : '-'
  const overdue = score?.prediction?.overdue ?? numOf(metric('overdue'), 'value')
  const churn = n('p_churn_90d')
  const growth = n('value_growth')
  const nw = net.data?.network
  type TimelineRow = { key: string; order_time: string | null; store: string | number | null; channel: string | null; daypart: string | null; total_fen: number | null; items: number | null }
  const timeline: TimelineRow[] = [
    ...(tl.data?.live_orders ?? []).map((o) => ({ key: o.order_no, order_time: o.order_time, store: o.store_id, channel: 'live', daypart: null, total_fen: o.total_fen, items: null })),
    ...(tl.data?.orders ?? []).map((o: Cells) => ({
      key: strOf(o, 'order_no') ?? strOf(o, 'order_id') ?? '',
      order_time: strOf(o, 'order_time'),
      store: strOf(o, 'store_name') ?? numOf(o, 'store_id'),
      channel: strOf(o, 'channel'),
      daypart: strOf(o, 'daypart'),
      total_fen: numOf(o, 'total_fen'),
      items: numOf(o, 'items'),
    })),
  ]
  return (
    <Space direction="vertical" style={{ width: '100%' }} size={12}>
      <Space wrap>
        <Button onClick={onBack}>← {t.back}</Button>
        <Typography.Title level={4} style={{ margin: 0 }} data-testid="customer-title">
          {t.customer} #{n('customer_id')}
        </Typography.Title>
        <Tag color="volcano">{label(lang, 'tier', score?.rfm.tier ?? s('tier'))}</Tag>
        <Tag color="gold">{label(lang, 'rfmClass', score?.rfm.class ?? s('rfm_class'))}</Tag>
        <Tag>{label(lang, 'lifecycle', score?.lifecycle ?? s('lifecycle'))}</Tag>
        {live && <Tag color="green" data-testid="live-tag">{t.live}</Tag>}
      </Space>
      <Row gutter={[12, 12]}>
        <Col xs={24} lg={12}>
          <Card title={t.profile} size="small">
            <Descriptions size="small" column={{ xs: 1, sm: 2 }} data-testid="profile">
              <Descriptions.Item label={t.phone}>{s('phone_masked') ?? '-'}</Descriptions.Item>
              <Descriptions.Item label={t.orders}>{num(live?.orders ?? n('order_count'))}</Descriptions.Item>
              <Descriptions.Item label={t.spend}>{yuan(live?.spend_fen ?? n('total_spend_fen'))}</Descriptions.Item>
              <Descriptions.Item label={t.avgTicket}>{yuan(n('avg_order_fen'))}</Descriptions.Item>
              <Descriptions.Item label="R / F / M">{score ? `${score.rfm.r} / ${score.rfm.f} / ${score.rfm.m}` : `${n('r_score')} / ${n('f_score')} / ${n('m_score')}`}</Descriptions.Item>
              <Descriptions.Item label={t.lastOrder}>{when(s('last_order_time'))}</Descriptions.Item>
              <Descriptions.Item label={t.homeStore}>{numOf(g, 'home_store_id') ?? '-'} {strOf(g, 'home_city') ?? ''}</Descriptions.Item>
              <Descriptions.Item label={t.km}>{num(numOf(g, 'avg_km_from_home'), 1)}</Descriptions.Item>
              <Descriptions.Item label={t.channel}>{prof.data.channels.map((c) => `${label(lang, 'orderChannel', strOf(c, 'channel'))} ${pct(numOf(c, 'share'))}`).join(' · ')}</Descriptions.Item>
              <Descriptions.Item label={t.consent}>
                <span data-testid="consent">
                  {(['wechat', 'sms', 'push'] as const).map((ch) => {
                    const v = (pr as Record<string, unknown>)[`consent_${ch}`]
                    return <Tag key={ch} color={v === true ? 'green' : 'default'}>{label(lang, 'msgChannel', ch)} {v === true ? '✓' : '✗'}</Tag>
                  })}
                </span>
              </Descriptions.Item>
              <Descriptions.Item label={t.holidayLift}>{num(numOf(prefs.data?.holiday, 'holiday_lift'), 2)}</Descriptions.Item>
            </Descriptions>
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={t.predictions} size="small" data-testid="predictions">
            <Row gutter={12}>
              <Col span={12}>
                <Statistic title={t.pAlive} value={pct(score?.prediction?.p_alive ?? n('p_alive'))} />
              </Col>
              <Col span={12}>
                <Statistic title={t.churn} value={pct(churn)} />
                <Progress percent={Math.round((churn ?? 0) * 100)} showInfo={false} status={(churn ?? 0) > 0.6 ? 'exception' : 'normal'} />
              </Col>
              <Col span={12}>
                <Statistic title={t.expPurchases} value={num(score?.prediction?.expected_purchases ?? n('expected_purchases_365d'), 2)} />
              </Col>
              <Col span={12}>
                <Statistic title={t.clv} value={yuan(score?.prediction?.clv_fen ?? n('clv_12m_fen'))} />
              </Col>
              <Col span={12}>
                <Statistic title={t.valueGrowth} value={growth == null ? '-' : pct(growth)} />
              </Col>
              <Col span={12}>
                <Statistic title={t.nextVisit} value={nextDate} data-testid="next-visit" />
              </Col>
              <Col span={12}>
                <Statistic title={t.overdue} value={pct(overdue)} />
              </Col>
            </Row>
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={t.preferences} size="small">
            {products.length ? (
              <ReactECharts opts={{ renderer: 'svg' }}
                style={{ height: 300 }}
                option={{
                  tooltip: {},
                  grid: [
                    { left: 100, right: 10, top: 10, height: 150 },
                    { left: 100, right: 10, top: 195, height: 90 },
                  ],
                  xAxis: [{ type: 'value', gridIndex: 0 }, { type: 'value', gridIndex: 1 }],
                  yAxis: [
                    { type: 'category', gridIndex: 0, inverse: true, data: products.map((x) => strOf(x, 'name')) },
                    { type: 'category', gridIndex: 1, inverse: true, data: Object.keys(dayparts).map((d) => label(lang, 'daypart', d)) },
                  ],
                  series: [
                    { name: t.product, type: 'bar', xAxisIndex: 0, yAxisIndex: 0, data: products.map((x) => numOf(x, 'qty')) },
                    { name: t.daypart, type: 'bar', xAxisIndex: 1, yAxisIndex: 1, data: Object.values(dayparts), itemStyle: { color: '#fa8c16' } },
                  ],
                }}
              />
            ) : (
              <Empty />
            )}
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card
            title={t.recommendations}
            size="small"
            data-testid="recommendations"
          >
            <Segmented size="small" style={{ marginBottom: 8 }} value={dp ?? 'usual'} onChange={(v) => setDp(v === 'usual' ? null : (v as Schemas['DaypartCode']))} options={(['usual', 'breakfast', 'lunch', 'dinner'] satisfies ('usual' | Schemas['DaypartCode'])[]).map((d) => ({ value: d, label: label(lang, 'daypart', d) }))} />
            <br />
            {(recs.data?.items ?? []).map((r) => (
              <Tag key={r.product_id} color={r.bought_before ? 'volcano' : 'blue'} data-testid="rec-item" style={{ marginBottom: 4 }}>
                {r.name} · {t[r.reason] ?? r.reason}
              </Tag>
            ))}
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card
            title={t.insight}
            size="small"
            extra={
              <Button type="primary" size="small" onClick={genInsight} data-testid="insight-button">
                {t.genInsight}
              </Button>
            }
          >
            {insightErr && <Alert type="error" message={insightErr} />}
            {insight ? (
              <List
                size="small"
                data-testid="insight"
                dataSource={[insight.value, insight.churn_risk, insight.marketing, insight.product_strategy]}
                renderItem={(x) => (
                  <List.Item>
                    <Typography.Text strong>{x.title}</Typography.Text>
                    {lang === 'zh' ? '：' : ': '}
                    {x.text}
                  </List.Item>
                )}
              />
            ) : (
              <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} />
            )}
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={t.sentiment} size="small">
            <Space>
              <Rate disabled allowHalf value={numOf(emo.data?.summary, 'avg_rating') ?? 0} />
              <span>
                {num(numOf(emo.data?.summary, 'avg_rating'), 1)} · {num(numOf(emo.data?.summary, 'reviews'))} {t.reviews} · {t.sentiment} {num(numOf(emo.data?.summary, 'avg_sentiment'), 2)}
              </span>
            </Space>
            <div data-testid="customer-aspects">
              {(emo.data?.aspects ?? []).map((a) => (
                <Tag key={a.aspect} color={a.score >= 0 ? 'green' : 'red'}>
                  {label(lang, 'aspect', a.aspect)} {a.score.toFixed(2)}
                </Tag>
              ))}
            </div>
            {nw && (
              <Typography.Text type="secondary" data-testid="customer-network">
                {t.influence} #{numOf(nw, 'influence_rank')} · {t.communities} #{numOf(nw, 'community')} ({numOf(nw, 'community_size')}) · {t.shares} {numOf(nw, 'shares_sent')}
              </Typography.Text>
            )}
            <List
              size="small"
              dataSource={(emo.data?.reviews ?? []).slice(0, 5)}
              renderItem={(r) => (
                <List.Item>
                  <Rate disabled count={5} value={numOf(r, 'rating') ?? 0} style={{ fontSize: 12 }} /> {strOf(r, 'content') || '—'}
                </List.Item>
              )}
            />
          </Card>
        </Col>
        <Col xs={24}>
          <Card title={t.timeline} size="small">
            <Table
              size="small"
              rowKey="key"
              data-testid="timeline"
              scroll={{ x: true }}
              pagination={{ pageSize: 10 }}
              dataSource={timeline}
              columns={[
                { title: t.lastOrder, dataIndex: 'order_time', render: (v: string | null) => when(v) },
                { title: t.store, dataIndex: 'store' },
                { title: t.channel, dataIndex: 'channel', render: (v: string | null) => label(lang, 'orderChannel', v) },
                { title: t.daypart, dataIndex: 'daypart', render: (v: string | null) => label(lang, 'daypart', v) },
                { title: t.spend, dataIndex: 'total_fen', render: (v: number | null) => yuan(v, 1) },
                { title: t.product, dataIndex: 'items' },
              ]}
            />
          </Card>
        </Col>
      </Row>
    </Space>
  )
}
