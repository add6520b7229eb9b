import { useEffect, useState } from 'react'
import { Alert, Button, Card, Col, Descriptions, Empty, List, Progress, Rate, Row, Segmented, Skeleton, Space, Statistic, Table, Tag, Typography } from 'antd'
import ReactECharts from 'echarts-for-react'
import { api, Json, liveSocket, num, pct, yuan } from '../api'
import { useT } from '../i18n'
import { useApi } from './useApi'

export default function Customer360({ id, onBack }: { id: number; onBack: () => void }) {
  const { t, lang } = useT()
  const prof = useApi(`/customers/${id}`)
  const tl = useApi(`/customers/${id}/timeline?limit=30`)
  const prefs = useApi(`/customers/${id}/preferences`)
  const emo = useApi(`/customers/${id}/emotion`)
  const [dp, setDp] = useState<string | null>(null)
  const recs = useApi(`/customers/${id}/recommendations?k=8${dp ? `&daypart=${dp}` : ''}`)
  const net = useApi(`/customers/${id}/network`)
  const [insight, setInsight] = useState<Json | null>(null)
  const [insightErr, setInsightErr] = useState<string | null>(null)
  const [live, setLive] = useState<Json | null>(null)
  useEffect(() => {
    setInsight(null)
    return liveSocket([`customer:${id}`], (e) => setLive(e.data))
  }, [id])
  useEffect(() => {
    if (insight) genInsight()
  }, [lang]) // eslint-disable-line react-hooks/exhaustive-deps
  const genInsight = () =>
    api(`/customers/${id}/insights?lang=${lang}`)
      .then((r) => (setInsight(r.insight), setInsightErr(null)))
      .catch((e) => setInsightErr(e.message))
  if (prof.error) return <Alert type="error" message={prof.error} action={<Button onClick={onBack}>{t.back}</Button>} />
  if (!prof.data) return <Skeleton active />
  const p = prof.data.profile
  const g = prof.data.geo ?? {}
  const score = (live ?? prof.data.live)?.score
  const products = (prefs.data?.products ?? []).slice(0, 8)
  const dayparts: Record<string, number> = {}
  for (const x of prefs.data?.time ?? []) dayparts[x.daypart] = (dayparts[x.daypart] ?? 0) + x.orders
  return (
    <Space direction="vertical" style={{ width: '100%' }} size={12}>
      <Space wrap>
        <Button onClick={onBack}>← {t.back}</Button>
        <Typography.Title level={4} style={{ margin: 0 }} data-testid="customer-title">
          {t.customer} #{p.customer_id}
        </Typography.Title>
        <Tag color="volcano">{score?.rfm?.tier ?? p.tier}</Tag>
        <Tag color="gold">{score?.rfm?.class ?? p.rfm_class}</Tag>
        <Tag>{score?.lifecycle ?? p.lifecycle}</Tag>
        {live && <Tag color="green" data-testid="live-tag">live</Tag>}
      </Space>
      <Row gutter={[12, 12]}>
        <Col xs={24} lg={12}>
          <Card title={t.profile} size="small">
            <Descriptions size="small" column={{ xs: 1, sm: 2 }} data-testid="profile">
              <Descriptions.Item label={t.phone}>{p.phone_masked ?? '-'}</Descriptions.Item>
              <Descriptions.Item label={t.orders}>{num(live?.orders ?? p.order_count)}</Descriptions.Item>
              <Descriptions.Item label={t.spend}>{yuan(live?.spend_fen ?? p.total_spend_fen)}</Descriptions.Item>
              <Descriptions.Item label={t.avgTicket}>{yuan(p.avg_order_fen)}</Descriptions.Item>
              <Descriptions.Item label="R / F / M">{score ? `${score.rfm.r} / ${score.rfm.f} / ${score.rfm.m}` : `${p.r_score} / ${p.f_score} / ${p.m_score}`}</Descriptions.Item>
              <Descriptions.Item label={t.lastOrder}>{p.last_order_time?.slice(0, 16)}</Descriptions.Item>
              <Descriptions.Item label={t.homeStore}>{g.home_store_id ?? '-'} {g.home_city ?? ''}</Descriptions.Item>
              <Descriptions.Item label={t.km}>{num(g.avg_km_from_home, 1)}</Descriptions.Item>
              <Descriptions.Item label={t.channel}>{(prof.data.channels ?? []).map((c: Json) => `${c.channel} ${pct(c.share)}`).join(' · ')}</Descriptions.Item>
              <Descriptions.Item label={t.holidayLift}>{num(prefs.data?.holiday?.holiday_lift, 2)}</Descriptions.Item>
            </Descriptions>
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={t.predictions} size="small" data-testid="predictions">
            <Row gutter={12}>
              <Col span={12}>
                <Statistic title={t.pAlive} value={pct(score?.prediction?.p_alive ?? p.p_alive)} />
              </Col>
              <Col span={12}>
                <Statistic title={t.churn} value={pct(p.p_churn_90d)} />
                <Progress percent={Math.round((p.p_churn_90d ?? 0) * 100)} showInfo={false} status={p.p_churn_90d > 0.6 ? 'exception' : 'normal'} />
              </Col>
              <Col span={12}>
                <Statistic title={t.expPurchases} value={num(score?.prediction?.expected_purchases ?? p.expected_purchases_365d, 2)} />
              </Col>
              <Col span={12}>
                <Statistic title={t.clv} value={yuan(score?.prediction?.clv_fen ?? p.clv_12m_fen)} />
              </Col>
              <Col span={12}>
                <Statistic title={t.valueGrowth} value={p.value_growth == null ? '-' : pct(p.value_growth)} />
              </Col>
            </Row>
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={t.preferences} size="small">
            {products.length ? (
              <ReactECharts
                style={{ height: 300 }}
                option={{
                  tooltip: {},
                  grid: [
                    { left: 100, right: 10, top: 10, height: 150 },
                    { left: 100, right: 10, top: 195, height: 90 },
                  ],
                  xAxis: [{ type: 'value', gridIndex: 0 }, { type: 'value', gridIndex: 1 }],
                  yAxis: [
                    { type: 'category', gridIndex: 0, inverse: true, data: products.map((x: Json) => x.name) },
                    { type: 'category', gridIndex: 1, inverse: true, data: Object.keys(dayparts) },
                  ],
                  series: [
                    { name: t.product, type: 'bar', xAxisIndex: 0, yAxisIndex: 0, data: products.map((x: Json) => x.qty) },
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
            <Segmented size="small" style={{ marginBottom: 8 }} value={dp ?? 'usual'} onChange={(v) => setDp(v === 'usual' ? null : (v as string))} options={['usual', 'breakfast', 'lunch', 'dinner']} />
            <br />
            {(recs.data?.items ?? []).map((r: Json) => (
              <Tag key={r.product_id} color={r.bought_before ? 'volcano' : 'blue'} data-testid="rec-item" style={{ marginBottom: 4 }}>
                {r.name} · {t[r.reason as keyof typeof t] ?? r.reason}
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
                renderItem={(s: Json) => (
                  <List.Item>
                    <Typography.Text strong>{s.title}</Typography.Text>：{s.text}
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
              <Rate disabled allowHalf value={emo.data?.summary?.avg_rating ?? 0} />
              <span>
                {num(emo.data?.summary?.avg_rating, 1)} · {num(emo.data?.summary?.reviews)} {t.reviews} · {t.sentiment} {num(emo.data?.summary?.avg_sentiment, 2)}
              </span>
            </Space>
            <div data-testid="customer-aspects">
              {(emo.data?.aspects ?? []).map((a: Json) => (
                <Tag key={a.aspect} color={a.score >= 0 ? 'green' : 'red'}>
                  {a.aspect} {a.score.toFixed(2)}
                </Tag>
              ))}
            </div>
            {net.data?.network && (
              <Typography.Text type="secondary" data-testid="customer-network">
                {t.influence} #{net.data.network.influence_rank} · {t.communities} #{net.data.network.community} ({net.data.network.community_size}) · {t.shares} {net.data.network.shares_sent}
              </Typography.Text>
            )}
            <List
              size="small"
              dataSource={(emo.data?.reviews ?? []).slice(0, 5)}
              renderItem={(r: Json) => (
                <List.Item>
                  <Rate disabled count={5} value={r.rating} style={{ fontSize: 12 }} /> {r.content || '—'}
                </List.Item>
              )}
            />
          </Card>
        </Col>
        <Col xs={24}>
          <Card title={t.timeline} size="small">
            <Table
              size="small"
              rowKey={(r: Json) => r.order_no ?? r.order_id}
              data-testid="timeline"
              scroll={{ x: true }}
              pagination={{ pageSize: 10 }}
              dataSource={[...(tl.data?.live_orders ?? []).map((o: Json) => ({ ...o, channel: 'live' })), ...(tl.data?.orders ?? [])]}
              columns={[
                { title: t.lastOrder, dataIndex: 'order_time', render: (v: string) => v?.slice(0, 16) },
                { title: t.store, dataIndex: 'store_name', render: (v: string, r: Json) => v ?? r.store_id },
                { title: t.channel, dataIndex: 'channel' },
                { title: t.daypart, dataIndex: 'daypart' },
                { title: t.spend, dataIndex: 'total_fen', render: (v: number) => yuan(v, 1) },
                { title: t.product, dataIndex: 'items' },
              ]}
            />
          </Card>
        </Col>
      </Row>
    </Space>
  )
}
