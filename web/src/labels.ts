// Words for the codes the API answers with (tiers, RFM classes, lifecycle stages, dayparts,
// channels, pages, aspects (by column or by the API's Chinese name), features, statuses, audit actions), in the dashboard's language.
// The API keeps its codes stable; only the dashboard turns them into words, so a Chinese page
// shows no English code and an English page no Chinese one (checked in a real browser by
// web/e2e/dashboard.mjs). A code without a word shows as it is, so a new code is visible, not lost.
import type { Lang } from './i18n'

type Words = Record<string, string>
type Kinds = {
  tier: Words
  rfmClass: Words
  lifecycle: Words
  daypart: Words
  orderChannel: Words
  msgChannel: Words
  page: Words
  aspect: Words
  funnelBy: Words
  feature: Words
  guardrail: Words
  guardStatus: Words
  compensation: Words
  design: Words
  analysis: Words
  arm: Words
  role: Words
  outcome: Words
  resource: Words
  verb: Words
  field: Words
  op: Words
  audienceKind: Words
  journey: Words
  sendStatus: Words
  quadrant: Words
  category: Words
}

const zh: Kinds = {
  tier: { 核心客户: '核心客户', 活跃客户: '活跃客户', 机会客户: '机会客户', '沉睡/新客户': '沉睡/新客户' },
  rfmClass: {
    重要价值客户: '重要价值客户', 重要发展客户: '重要发展客户', 重要保持客户: '重要保持客户', 重要挽留客户: '重要挽留客户',
    一般价值客户: '一般价值客户', 一般发展客户: '一般发展客户', 一般保持客户: '一般保持客户', 一般挽留客户: '一般挽留客户',
  },
  lifecycle: { new: '新客', won_back: '已召回', dormant: '沉睡', growing: '成长期', declining: '衰退期', mature: '成熟期' },
  daypart: { breakfast: '早餐', lunch: '午餐', afternoon: '下午茶', dinner: '晚餐', late_night: '夜宵', usual: '常用时段' },
  orderChannel: { pos: '门店', pickup: '自提', delivery: '外送', dine_in: '堂食', other: '其他', wx: '小程序', live: '实时' },
  msgChannel: { wechat: '微信订阅消息', sms: '短信', push: '推送' },
  page: { home: '首页', menu: '菜单', item: '商品', cart: '购物车', pay: '支付', order_status: '订单状态', coupon: '优惠券', profile: '我的', exit: '离开' },
  aspect: { taste: '口味', service: '服务', price: '价格', environment: '环境', speed: '速度', hygiene: '卫生', 口味: '口味', 服务: '服务', 价格: '价格', 环境: '环境', 速度: '速度', 卫生: '卫生' },
  funnelBy: { none: '全部', tier: '层级', rfm_class: 'RFM 类别', lifecycle: '生命周期', cluster: '聚类', device: '设备', all: '全部' },
  feature: { recency: '距上次消费', frequency: '消费频次', spend: '消费额', avg_order: '客单价', online_share: '小程序占比', stores: '去过的门店数', tenure: '客龄' },
  guardrail: { refund_rate: '退款率', orders_per_member: '人均订单' },
  guardStatus: { ok: '正常', inconclusive: '未定', violated: '超限' },
  compensation: { coupon: '优惠券', refund: '退款', coupon_reissue: '补发优惠券', apology: '致歉' },
  design: { store: '门店随机', switchback: '轮换' },
  analysis: {
    store: '按门店均值，用实验前数据做 CUPED 修正，门店间 Welch 检验',
    switchback: '同店实验日减对照日均值（扣除日固定效应），门店间配对 t 检验',
  },
  arm: { treatment: '实验组', holdout: '对照组', global_holdout: '全局对照', none: '不参与', A: 'A 组', B: 'B 组' },
  role: { admin: '管理员', analyst: '分析师', store_manager: '店长' },
  outcome: { ok: '成功', denied: '无权限', rejected: '被拒绝', error: '出错' },
  resource: {
    audit: '审计', behavior: '行为', campaign: '营销活动', campaigns: '营销活动', compare: '对比', customer: '客户', customers: '客户',
    event: '事件', experiment: '实验', experiments: '实验', health: '健康检查', live: '实时', me: '身份', network: '社交网络',
    order: '订单', overview: '总览', recommendations: '推荐', segments: '分群', sentiment: '情感', service: '客服', stream: '推送', ws: '推送',
    audience: '人群', audiences: '人群', journey: '自动旅程', journeys: '自动旅程', menu: '菜单分析',
  },
  verb: {
    read: '查看', create: '创建', launch: '发布', settings: '设置', status: '变更状态', list: '列出', program: '整体效果', suggest: '推荐',
    insights: '生成洞察', ingest: '写入', ingest_batch: '批量写入', score: '打分', diagnose: '诊断', tickets: '查看工单', subscribe: '订阅', ticket: '连接',
    preview: '预览', update: '修改', archive: '归档', export: '导出', fire: '触发',
  },
  field: {
    gender: '性别', birth_year: '出生年份', member_count: '会员卡数', wx_user_count: '小程序账号数', register_store_id: '开卡门店',
    order_count: '订单数', total_spend_fen: '累计消费（分）', avg_order_fen: '客单价（分）', wx_orders: '小程序订单数', store_count: '去过门店数',
    recency_days: '距上次消费天数', frequency: '消费频次', monetary_fen: '消费额（分）', r_score: '近度分', f_score: '频度分', m_score: '额度分',
    rfm_class: 'RFM 类别', tier: '层级', rfm_segment: 'RFM 分段', lifecycle: '生命周期', cluster: '聚类', value_growth: '价值增长',
    home_city_id: '常住城市', home_store_id: '常去门店', p_alive: '活跃概率', expected_purchases_365d: '预计年购买次数',
    expected_spend_fen: '预计客单价（分）', clv_12m_fen: '未来12个月价值（分）', p_churn_90d: '90天流失概率', next_order_days: '预计几天后光顾',
    overdue: '逾期程度', avg_rating: '平均评分', review_count: '评价数', event_count: '浏览事件数', session_count: '会话数',
  },
  op: { eq: '等于', ne: '不等于', lt: '小于', le: '不大于', gt: '大于', ge: '不小于', in: '属于', not_in: '不属于', is_null: '为空', not_null: '不为空' },
  audienceKind: { rule: '规则', sql: 'SQL 查询', lookalike: '相似扩展' },
  journey: { welcome: '新客欢迎', miss_you: '逾期想念召回', big_spender: '大额消费感谢', recovery: '客诉补救' },
  sendStatus: { planned: '待发送', not_sent: '对照不发送', capped: '频控拦截', cooldown: '冷却期内', cancelled: '已回店取消', sent: '已发送', no_consent: '未获授权' },
  quadrant: { star: '明星', plowhorse: '耕马（畅销低利）', puzzle: '谜题（高利滞销）', dog: '瘦狗' },
  category: { 热狗: '热狗', 小食: '小食', 饮品: '饮品', 套餐: '套餐' },
}

const en: Kinds = {
  tier: { 核心客户: 'Core', 活跃客户: 'Active', 机会客户: 'Opportunity', '沉睡/新客户': 'Dormant / new' },
  rfmClass: {
    重要价值客户: 'Top value', 重要发展客户: 'Top to develop', 重要保持客户: 'Top to keep', 重要挽留客户: 'Top to win back',
    一般价值客户: 'Value', 一般发展客户: 'To develop', 一般保持客户: 'To keep', 一般挽留客户: 'To win back',
  },
  lifecycle: { new: 'New', won_back: 'Won back', dormant: 'Dormant', growing: 'Growing', declining: 'Declining', mature: 'Mature' },
  daypart: { breakfast: 'Breakfast', lunch: 'Lunch', afternoon: 'Afternoon', dinner: 'Dinner', late_night: 'Late night', usual: 'Usual time' },
  orderChannel: { pos: 'In store', pickup: 'Pickup', delivery: 'Delivery', dine_in: 'Dine-in', other: 'Other', wx: 'Mini-program', live: 'Live' },
  msgChannel: { wechat: 'WeChat message', sms: 'SMS', push: 'Push' },
  page: { home: 'Home', menu: 'Menu', item: 'Item', cart: 'Cart', pay: 'Pay', order_status: 'Order status', coupon: 'Coupons', profile: 'Me', exit: 'Left' },
  aspect: { taste: 'Taste', service: 'Service', price: 'Price', environment: 'Setting', speed: 'Speed', hygiene: 'Hygiene', 口味: 'Taste', 服务: 'Service', 价格: 'Price', 环境: 'Setting', 速度: 'Speed', 卫生: 'Hygiene' },
  funnelBy: { none: 'All', tier: 'Tier', rfm_class: 'RFM class', lifecycle: 'Lifecycle', cluster: 'Cluster', device: 'Device', all: 'All' },
  feature: { recency: 'days since last order', frequency: 'orders', spend: 'spend', avg_order: 'avg ticket', online_share: 'mini-program share', stores: 'stores visited', tenure: 'tenure' },
  guardrail: { refund_rate: 'Refund rate', orders_per_member: 'Orders per member' },
  guardStatus: { ok: 'ok', inconclusive: 'inconclusive', violated: 'violated' },
  compensation: { coupon: 'coupon', refund: 'refund', coupon_reissue: 'coupon reissued', apology: 'apology' },
  design: { store: 'Stores', switchback: 'Switchback' },
  analysis: {
    store: 'per-store means with CUPED on the pre-period, Welch across stores',
    switchback: 'within-store treated-day minus control-day means after day fixed effects, paired t across stores',
  },
  arm: { treatment: 'Treatment', holdout: 'Holdout', global_holdout: 'Global holdout', none: 'not in any arm', A: 'A', B: 'B' },
  role: { admin: 'admin', analyst: 'analyst', store_manager: 'store manager' },
  outcome: { ok: 'ok', denied: 'denied', rejected: 'rejected', error: 'error' },
  resource: {
    audit: 'audit', behavior: 'behaviour', campaign: 'campaign', campaigns: 'campaigns', compare: 'comparison', customer: 'customer', customers: 'customers',
    event: 'event', experiment: 'test', experiments: 'tests', health: 'health', live: 'live', me: 'identity', network: 'network',
    order: 'order', overview: 'overview', recommendations: 'recommendations', segments: 'segments', sentiment: 'sentiment', service: 'service', stream: 'push', ws: 'push',
    audience: 'audience', audiences: 'audiences', journey: 'journey', journeys: 'journeys', menu: 'menu',
  },
  verb: {
    read: 'read', create: 'create', launch: 'launch', settings: 'settings', status: 'change status', list: 'list', program: 'program effect', suggest: 'suggest',
    insights: 'insight', ingest: 'ingest', ingest_batch: 'ingest batch', score: 'score', diagnose: 'diagnose', tickets: 'tickets', subscribe: 'subscribe', ticket: 'connect',
    preview: 'preview', update: 'update', archive: 'archive', export: 'export', fire: 'fire',
  },
  field: {
    gender: 'Gender', birth_year: 'Birth year', member_count: 'Member cards', wx_user_count: 'Mini-program accounts', register_store_id: 'Sign-up store',
    order_count: 'Orders', total_spend_fen: 'Total spend (fen)', avg_order_fen: 'Avg ticket (fen)', wx_orders: 'Mini-program orders', store_count: 'Stores visited',
    recency_days: 'Days since last order', frequency: 'Frequency', monetary_fen: 'Monetary (fen)', r_score: 'R score', f_score: 'F score', m_score: 'M score',
    rfm_class: 'RFM class', tier: 'Tier', rfm_segment: 'RFM segment', lifecycle: 'Lifecycle', cluster: 'Cluster', value_growth: 'Value growth',
    home_city_id: 'Home city', home_store_id: 'Home store', p_alive: 'P(alive)', expected_purchases_365d: 'Expected orders / year',
    expected_spend_fen: 'Expected ticket (fen)', clv_12m_fen: '12-month value (fen)', p_churn_90d: '90-day churn', next_order_days: 'Days to next visit',
    overdue: 'Overdue', avg_rating: 'Avg rating', review_count: 'Reviews', event_count: 'Page events', session_count: 'Sessions',
  },
  op: { eq: 'is', ne: 'is not', lt: 'below', le: 'at most', gt: 'above', ge: 'at least', in: 'is one of', not_in: 'is none of', is_null: 'is empty', not_null: 'is set' },
  audienceKind: { rule: 'Rules', sql: 'SQL query', lookalike: 'Lookalike' },
  journey: { welcome: 'Welcome', miss_you: 'Miss you (overdue)', big_spender: 'Big-spender thanks', recovery: 'Service recovery' },
  sendStatus: { planned: 'planned', not_sent: 'held out', capped: 'capped', cooldown: 'cooling down', cancelled: 'came back', sent: 'sent', no_consent: 'no consent' },
  quadrant: { star: 'Star', plowhorse: 'Plowhorse', puzzle: 'Puzzle', dog: 'Dog' },
  category: { 热狗: 'Hot dogs', 小食: 'Sides', 饮品: 'Drinks', 套餐: 'Combos' },
}

const words: Record<Lang, Kinds> = { zh, en }
export type Kind = keyof Kinds

/** The word for `code` of `kind` in `lang`; the code itself when there is none. */
export function label(lang: Lang, kind: Kind, code: string | null | undefined): string {
  if (code == null || code === '') return '-'
  return words[lang][kind][code] ?? code
}

/** An audit action (`campaign.launch`) as words: "发布营销活动" / "campaign: launch". */
export function auditAction(lang: Lang, code: string): string {
  const [res, verb] = code.split('.')
  const r = words[lang].resource[res]
  const v = verb == null ? undefined : words[lang].verb[verb]
  if (!r || !v) return code
  return lang === 'zh' ? `${v}${r}` : `${r}: ${v}`
}

/** An audit target (`campaign:1`) as words: "营销活动 1" / "campaign 1". */
export function auditTarget(lang: Lang, target: string): string {
  const m = /^([a-z_]+):(.*)$/.exec(target)
  const r = m ? words[lang].resource[m[1]] : undefined
  return m && r ? `${r} ${m[2]}` : target
}

/** A moment as the dashboard shows it: `2025-09-13 07:50` (minutes), or the day alone. */
export function when(ts: string | null | undefined, to: 'minute' | 'day' = 'minute'): string {
  if (!ts) return '-'
  return ts.slice(0, to === 'day' ? 10 : 16).replace('T', ' ')
}

/** A k-means cluster's distinguishing features as words (from the structured note). */
export function clusterTraits(lang: Lang, share: number, traits: { feature: string; z: number }[]): string {
  const pctText = `${Math.round(share * 100)}%`
  if (!traits.length) return lang === 'zh' ? `${pctText} 的客户，各项接近平均` : `${pctText} of customers, close to average on every feature`
  const parts = traits.map(({ feature, z }) => {
    const f = label(lang, 'feature', feature)
    const sd = `${z > 0 ? '+' : ''}${z.toFixed(1)}`
    return lang === 'zh' ? `${f}${z > 0 ? '高' : '低'}（${sd} 标准差）` : `${z > 0 ? 'high' : 'low'} ${f} (${sd} sd)`
  })
  return lang === 'zh' ? `${pctText} 的客户：${parts.join('，')}` : `${pctText} of customers: ${parts.join(', ')}`
}
