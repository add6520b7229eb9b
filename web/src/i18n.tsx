import { createContext, useContext } from 'react'

export type Lang = 'zh' | 'en'

const zh = {
  title: 'c360 客户画像', login: '登录', apiKey: 'API 密钥', loginHint: '输入管理员发放的 API 密钥（c360 apikey create）', logout: '退出',
  overview: '总览', segments: '客户分群', customers: '客户', distributions: '分布', live: '实时',
  customersN: '客户数', orders: '订单数', revenue: '营业额', avgTicket: '客单价', clv: '未来12个月价值', active90: '90天活跃',
  repeat: '复购客户', liveOrders: '实时订单', monthly: '月度趋势', tiers: '客户层级', rfmClasses: 'RFM 八类', rfmGrid: 'RFM 网格（R×F）',
  lifecycle: '生命周期', clusters: '聚类', search: '客户号或手机尾号', tier: '层级', rfmClass: 'RFM 类别', spend: '消费',
  lastOrder: '最近下单', churn: '流失概率', profile: '客户档案', timeline: '订单时间线', predictions: '预测', preferences: '偏好',
  sentiment: '评价情感', recommendations: '推荐', insight: 'AI 洞察', genInsight: '生成洞察', buyAgain: '再次购买', tryNext: '推荐尝试',
  pAlive: '活跃概率', expPurchases: '预计年购买次数', expSpend: '预计客单价', valueGrowth: '价值增长', daypart: '时段', product: '商品',
  city: '城市', store: '门店', map: '城市地图', reviews: '评价', rating: '评分', noData: '暂无数据', offline: '离线：显示最近一次数据',
  feed: '实时订单流', connected: '已连接', disconnected: '未连接', back: '返回', customer: '客户', phone: '手机', channel: '渠道',
  holidayLift: '节假日倍数', geo: '地理', homeStore: '常去门店', km: '距常去门店平均公里', segmentName: '分群', count: '人数',
  avgSpend: '平均消费', language: 'English',
  insightsTab: '行为·情感·社交', behaviour: '行为路径', network: '社交网络', funnel: '转化漏斗（菜单→商品→购物车→支付）', sessions: '会话',
  conversion: '转化率', bounce: '跳出率', paths: '路径', exits: '未支付会话的离开页面', aspects: '各维度情感', storesWorst: '门店（情感由低到高）',
  ties: '关系', communities: '社群', seeds: '推广种子客户', influencers: '影响力排名', shares: '分享', reach: '触达', cascades: '分享传播链',
  campaign: '活动', depth: '层数', menu: '菜单', item: '商品', cart: '购物车', pay: '支付', reason: '理由', addToCart: '加购后推荐',
  buy_again: '常买', add_on: '搭配', similar_taste: '口味相近', popular: '门店热销', new_item: '新品', influence: '影响力',
  actTab: '营销·实验·客服', campaigns: '营销活动', suggestions: '按分群推荐的活动', goal: '目标', offer: '优惠', favouriteItem: '最爱单品·常用时段',
  createCampaign: '创建草稿', name: '名称', status: '状态', schedule: '时间', launch: '发布', pause: '暂停', resume: '恢复', results: '效果',
  draft: '草稿', running: '进行中', paused: '已暂停', completed: '已完成', cancelled: '已取消', window: '评估窗口', complete: '已完整', inProgress: '进行中',
  holdout: '对照组', globalHoldout: '全局对照', arm: '组', members: '人数', incrementalRevenue: '增量营收 [95%]', chanceToWin: '胜出概率',
  retentionLift: '留存提升', redemptions: '核销', miniProgram: '小程序', discountCost: '优惠成本', guardrails: '护栏指标', uplift: '增益模型（Qini 曲线）',
  model: '模型', random: '随机', experiments: '实验', design: '设计', effect: '效果（每店每天）', service: '客服', diagnose: '诊断',
  ticketHint: '输入顾客留言，例如：外卖等了一个多小时还没到', cause: '问题', probabilities: '各问题概率', solution: '处理方案', compensation: '补偿',
  escalate: '建议人工跟进', openTickets: '待处理工单', message: '留言', audit: '审计', time: '时间', actor: '操作人', action: '操作', target: '对象', outcome: '结果',
  late_order: '送餐超时', wrong_item: '餐品错漏', coupon_failure: '优惠券失败', quality_complaint: '品质投诉',
}
const en: typeof zh = {
  title: 'c360 Customer 360', login: 'Log in', apiKey: 'API key', loginHint: 'Enter the API key your admin issued (c360 apikey create)', logout: 'Log out',
  overview: 'Overview', segments: 'Segments', customers: 'Customers', distributions: 'Distributions', live: 'Live',
  customersN: 'Customers', orders: 'Orders', revenue: 'Revenue', avgTicket: 'Avg ticket', clv: '12-month value', active90: 'Active in 90 days',
  repeat: 'Repeat customers', liveOrders: 'Live orders', monthly: 'Monthly trend', tiers: 'Tiers', rfmClasses: 'RFM classes', rfmGrid: 'RFM grid (R×F)',
  lifecycle: 'Lifecycle', clusters: 'Clusters', search: 'Customer id or phone tail', tier: 'Tier', rfmClass: 'RFM class', spend: 'Spend',
  lastOrder: 'Last order', churn: 'Churn risk', profile: 'Profile', timeline: 'Timeline', predictions: 'Predictions', preferences: 'Preferences',
  sentiment: 'Sentiment', recommendations: 'Recommendations', insight: 'AI insight', genInsight: 'Generate insight', buyAgain: 'Buy again', tryNext: 'Try next',
  pAlive: 'P(alive)', expPurchases: 'Expected purchases / year', expSpend: 'Expected ticket', valueGrowth: 'Value growth', daypart: 'Daypart', product: 'Product',
  city: 'City', store: 'Store', map: 'City map', reviews: 'Reviews', rating: 'Rating', noData: 'No data', offline: 'Offline: showing the last data',
  feed: 'Live order feed', connected: 'connected', disconnected: 'disconnected', back: 'Back', customer: 'Customer', phone: 'Phone', channel: 'Channel',
  holidayLift: 'Holiday lift', geo: 'Geography', homeStore: 'Home store', km: 'Avg km from home store', segmentName: 'Segment', count: 'Customers',
  avgSpend: 'Avg spend', language: '中文',
  insightsTab: 'Behaviour · sentiment · network', behaviour: 'Behaviour', network: 'Network', funnel: 'Funnel (menu → item → cart → pay)', sessions: 'Sessions',
  conversion: 'Conversion', bounce: 'Bounce', paths: 'Path', exits: 'Where unpaid sessions left', aspects: 'Sentiment by aspect', storesWorst: 'Stores (lowest sentiment first)',
  ties: 'Ties', communities: 'Communities', seeds: 'Campaign seeds', influencers: 'Most influential', shares: 'Shares', reach: 'Reach', cascades: 'Share cascades',
  campaign: 'Campaign', depth: 'Depth', menu: 'Menu', item: 'Item', cart: 'Cart', pay: 'Pay', reason: 'Reason', addToCart: 'With the cart',
  buy_again: 'Buys often', add_on: 'Goes with', similar_taste: 'Similar taste', popular: 'Popular here', new_item: 'New', influence: 'Influence',
  actTab: 'Campaigns · tests · service', campaigns: 'Campaigns', suggestions: 'Suggested from segments', goal: 'Goal', offer: 'Offer', favouriteItem: 'favourite item, usual daypart',
  createCampaign: 'Create draft', name: 'Name', status: 'Status', schedule: 'Schedule', launch: 'Launch', pause: 'Pause', resume: 'Resume', results: 'Results',
  draft: 'draft', running: 'running', paused: 'paused', completed: 'completed', cancelled: 'cancelled', window: 'Window', complete: 'complete', inProgress: 'in progress',
  holdout: 'Holdout', globalHoldout: 'Global holdout', arm: 'Arm', members: 'Members', incrementalRevenue: 'Incremental revenue [95%]', chanceToWin: 'Chance to win',
  retentionLift: 'Retention lift', redemptions: 'Redemptions', miniProgram: 'mini-program', discountCost: 'Discount cost', guardrails: 'Guardrails', uplift: 'Uplift model (Qini curve)',
  model: 'Model', random: 'Random', experiments: 'Tests', design: 'Design', effect: 'Effect (per store-day)', service: 'Service', diagnose: 'Diagnose',
  ticketHint: "The customer's message, e.g. 外卖等了一个多小时还没到", cause: 'Problem', probabilities: 'Probabilities', solution: 'Solution', compensation: 'Compensation',
  escalate: 'escalate to a person', openTickets: 'Open tickets', message: 'Message', audit: 'Audit', time: 'Time', actor: 'Actor', action: 'Action', target: 'Target', outcome: 'Outcome',
  late_order: 'Late order', wrong_item: 'Wrong item', coupon_failure: 'Coupon failure', quality_complaint: 'Quality complaint',
}
export const dict = { zh, en }
export type T = typeof zh
export const I18n = createContext<{ t: T; lang: Lang; setLang: (l: Lang) => void }>({ t: zh, lang: 'zh', setLang: () => {} })
export const useT = () => useContext(I18n)
