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
}
export const dict = { zh, en }
export type T = typeof zh
export const I18n = createContext<{ t: T; lang: Lang; setLang: (l: Lang) => void }>({ t: zh, lang: 'zh', setLang: () => {} })
export const useT = () => useContext(I18n)
