import { useState } from 'react'
import { Alert, Button, Card, Input, Space, Typography } from 'antd'
import { get, setKey, url } from '../api'
import { useT } from '../i18n'

export default function Login({ onDone }: { onDone: () => void }) {
  const { t } = useT()
  const [key, setK] = useState('')
  const [err, setErr] = useState<string | null>(null)
  const submit = async () => {
    setKey(key.trim())
    try {
      await get(url('/me'))
      setErr(null)
      onDone()
    } catch (e) {
      setKey(null)
      setErr((e as Error).message)
    }
  }
  return (
    <Card style={{ maxWidth: 420, margin: '48px auto' }} title={t.login}>
      <Space direction="vertical" style={{ width: '100%' }}>
        <Typography.Text type="secondary">{t.loginHint}</Typography.Text>
        <Input.Password placeholder={t.apiKey} value={key} onChange={(e) => setK(e.target.value)} onPressEnter={submit} data-testid="api-key" />
        {err && <Alert type="error" message={err} />}
        <Button type="primary" block onClick={submit} data-testid="login">
          {t.login}
        </Button>
      </Space>
    </Card>
  )
}
