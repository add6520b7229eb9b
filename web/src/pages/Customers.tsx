import { useState } from 'react'
import { Alert, Card, Input, Select, Space, Table, Tag } from 'antd'
import { num, numOf, pct, Row, Schemas, url, yuan } from '../api'
import { useT } from '../i18n'
import { label } from '../labels'
import { useApi } from './useApi'

const TIERS: Schemas['Tier'][] = ['核心客户', '活跃客户', '机会客户', '沉睡/新客户']
const CLASSES: Schemas['RfmClass'][] = ['重要价值客户', '重要发展客户', '重要保持客户', '重要挽留客户', '一般价值客户', '一般发展客户', '一般保持客户', '一般挽留客户']

export default function Customers({ onOpen }: { onOpen: (id: number) => void }) {
  const { t, lang } = useT()
  const [q, setQ] = useState('')
  const [tier, setTier] = useState<Schemas['Tier'] | undefined>()
  const [cls, setCls] = useState<Schemas['RfmClass'] | undefined>()
  const [page, setPage] = useState(1)
  const [size, setSize] = useState(20)
  const [sort, setSort] = useState<Schemas['CustomerSort']>('total_spend_fen')
  const { data, error, loading } = useApi(url('/customers', null, { page, page_size: size, sort, q, tier, rfm_class: cls }))
  return (
    <Card size="small">
      <Space wrap style={{ marginBottom: 12 }}>
        <Input.Search placeholder={t.search} allowClear onSearch={(v) => (setQ(v.trim()), setPage(1))} style={{ width: 220 }} data-testid="customer-search" />
        <Select allowClear placeholder={t.tier} style={{ width: 140 }} value={tier} onChange={(v) => (setTier(v), setPage(1))} options={TIERS.map((x) => ({ value: x, label: label(lang, 'tier', x) }))} />
        <Select allowClear placeholder={t.rfmClass} style={{ width: 160 }} value={cls} onChange={(v) => (setCls(v), setPage(1))} options={CLASSES.map((x) => ({ value: x, label: label(lang, 'rfmClass', x) }))} />
        <Select
          style={{ width: 160 }}
          value={sort}
          onChange={(v) => setSort(v)}
          options={[
            { value: 'total_spend_fen', label: t.spend },
            { value: 'order_count', label: t.orders },
            { value: 'last_order_time', label: t.lastOrder },
            { value: 'clv_12m_fen', label: t.clv },
            { value: 'p_churn_90d', label: t.churn },
          ]}
        />
      </Space>
      {error && <Alert type="error" message={error} />}
      <Table<Row>
        size="small"
        rowKey="customer_id"
        data-testid="customers-table"
        loading={loading}
        dataSource={data?.items ?? []}
        scroll={{ x: true }}
        onRow={(r) => ({ onClick: () => onOpen(numOf(r, 'customer_id') ?? 0), style: { cursor: 'pointer' } })}
        pagination={{ current: page, pageSize: size, total: data?.total ?? 0, showSizeChanger: true, onChange: (p, s) => (setPage(p), setSize(s)) }}
        columns={[
          { title: t.customer, dataIndex: 'customer_id', render: (v: number) => <a data-testid={`customer-${v}`}>{v}</a> },
          { title: t.phone, dataIndex: 'phone_masked' },
          { title: t.tier, dataIndex: 'tier', render: (v: string) => <Tag color="volcano">{label(lang, 'tier', v)}</Tag> },
          { title: t.rfmClass, dataIndex: 'rfm_class', render: (v: string) => label(lang, 'rfmClass', v) },
          { title: t.orders, dataIndex: 'order_count', render: (v: number) => num(v) },
          { title: t.spend, dataIndex: 'total_spend_fen', render: (v: number) => yuan(v) },
          { title: t.clv, dataIndex: 'clv_12m_fen', render: (v: number) => yuan(v) },
          { title: t.churn, dataIndex: 'p_churn_90d', render: (v: number) => pct(v) },
          { title: t.lastOrder, dataIndex: 'last_order_time', render: (v: string) => v?.slice(0, 10) },
        ]}
      />
    </Card>
  )
}
