import { useEffect, useState } from 'react'
import { Alert, App as AntApp, Button, ConfigProvider, Grid, Layout, Menu, Space, Tag, Typography } from 'antd'
import zhCN from 'antd/locale/zh_CN'
import enUS from 'antd/locale/en_US'
import { forgetSession, get, getKey, liveSocket, Principal, url } from './api'
import { DataVersion } from './pages/useApi'
import { dict, I18n, Lang } from './i18n'
import { label } from './labels'
import Login from './pages/Login'
import Overview from './pages/Overview'
import Segments from './pages/Segments'
import Customers from './pages/Customers'
import Customer360 from './pages/Customer360'
import Distributions from './pages/Distributions'
import Live from './pages/Live'
import Dimensions from './pages/Dimensions'
import Act from './pages/Act'
import Audiences from './pages/Audiences'
import MenuPage from './pages/Menu'

type Route = { page: string; id?: number }

function parseHash(): Route {
  const h = location.hash.replace(/^#\/?/, '')
  const [page, id] = h.split('/')
  return { page: page || 'overview', id: id ? Number(id) : undefined }
}

export default function App() {
  const [lang, setLangState] = useState<Lang>((localStorage.getItem('c360.lang') as Lang) || 'zh')
  const [me, setMe] = useState<Principal | null>(null)
  const [authed, setAuthed] = useState(!!getKey())
  const [route, setRoute] = useState<Route>(parseHash())
  const [online, setOnline] = useState(navigator.onLine)
  const [dataVersion, setDataVersion] = useState(0)
  const screens = Grid.useBreakpoint()
  const t = dict[lang]
  const setLang = (l: Lang) => {
    localStorage.setItem('c360.lang', l)
    setLangState(l)
  }
  // The page's language follows the dashboard's, after a reload too (screen readers, fonts).
  useEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en'
  }, [lang])
  useEffect(() => {
    const f = () => setRoute(parseHash())
    const on = () => setOnline(true)
    const off = () => setOnline(false)
    window.addEventListener('hashchange', f)
    window.addEventListener('online', on)
    window.addEventListener('offline', off)
    return () => {
      window.removeEventListener('hashchange', f)
      window.removeEventListener('online', on)
      window.removeEventListener('offline', off)
    }
  }, [])
  useEffect(() => {
    if (!authed) return
    get(url('/me'))
      .then((m) => {
        setMe(m)
        localStorage.setItem('c360.me', JSON.stringify(m))
      })
      .catch((e) => {
        if (e.status === 401) {
          forgetSession()
          setAuthed(false)
        } else {
          const cached = localStorage.getItem('c360.me')
          if (cached) setMe(JSON.parse(cached))
        }
      })
  }, [authed])

  // A new snapshot from the ETL: refetch whatever is on screen.
  useEffect(() => {
    if (!authed) return
    return liveSocket(['etl'], () => setDataVersion((v) => v + 1))
  }, [authed])

  const go = (page: string, id?: number) => {
    location.hash = id != null ? `#/${page}/${id}` : `#/${page}`
  }
  const items = [
    { key: 'overview', label: t.overview },
    { key: 'segments', label: t.segments },
    { key: 'customers', label: t.customers },
    { key: 'distributions', label: t.distributions },
    { key: 'dimensions', label: t.insightsTab },
    { key: 'menu', label: t.menuTab },
    { key: 'audiences', label: t.audiences },
    { key: 'act', label: t.actTab },
    { key: 'live', label: t.live },
  ]
  const mobile = !screens.md
  let body
  if (!authed) body = <Login onDone={() => setAuthed(true)} />
  else if (route.page === 'customer' && route.id != null) body = <Customer360 id={route.id} onBack={() => go('customers')} />
  else if (route.page === 'segments') body = <Segments />
  else if (route.page === 'customers') body = <Customers onOpen={(id) => go('customer', id)} />
  else if (route.page === 'distributions') body = <Distributions />
  else if (route.page === 'live') body = <Live />
  else if (route.page === 'act') body = <Act role={me?.role} />
  else if (route.page === 'menu') body = <MenuPage />
  else if (route.page === 'audiences') body = <Audiences stores={me?.stores ?? undefined} />
  else if (route.page === 'dimensions') body = <Dimensions onOpen={(id) => go('customer', id)} />
  else body = <Overview />

  return (
    <I18n.Provider value={{ t, lang, setLang }}>
      <ConfigProvider locale={lang === 'zh' ? zhCN : enUS} theme={{ token: { colorPrimary: '#d4380d' } }}>
        <AntApp>
          <Layout style={{ minHeight: '100vh' }}>
            <Layout.Header style={{ display: 'flex', alignItems: 'center', gap: 12, padding: mobile ? '0 8px' : '0 24px', flexWrap: 'nowrap' }}>
              <Typography.Title level={4} style={{ color: '#fff', margin: 0, whiteSpace: 'nowrap' }} data-testid="app-title">
                {mobile ? 'c360' : t.title}
              </Typography.Title>
              {authed && (
                <Menu
                  theme="dark"
                  mode="horizontal"
                  selectedKeys={[route.page === 'customer' ? 'customers' : route.page]}
                  items={items}
                  onClick={(e) => go(e.key)}
                  style={{ flex: 1, minWidth: 0 }}
                />
              )}
              <Space style={{ marginLeft: 'auto' }}>
                {me && !mobile && <Tag color="orange">{me.name} · {label(lang, 'role', me.role)}</Tag>}
                <Button size="small" data-testid="lang-switch" onClick={() => setLang(lang === 'zh' ? 'en' : 'zh')}>
                  {t.language}
                </Button>
                {authed && (
                  <Button
                    size="small"
                    data-testid="logout"
                    onClick={() => {
                      forgetSession()
                      setAuthed(false)
                      setMe(null)
                    }}
                  >
                    {t.logout}
                  </Button>
                )}
              </Space>
            </Layout.Header>
            <Layout.Content style={{ padding: mobile ? 8 : 24 }}>
              {!online && <Alert type="warning" showIcon message={t.offline} style={{ marginBottom: 12 }} data-testid="offline-banner" />}
              <DataVersion.Provider value={dataVersion}>{body}</DataVersion.Provider>
            </Layout.Content>
          </Layout>
        </AntApp>
      </ConfigProvider>
    </I18n.Provider>
  )
}
