// The dashboard in headless Debian Chromium via playwright-core (no browser download).
// Driven by crates/server/tests/it/e2e.rs, which starts a server on loopback with data and keys.
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { chromium } from 'playwright-core'

const url = process.env.C360_URL
const adminKey = process.env.C360_ADMIN_KEY
const managerKey = process.env.C360_MANAGER_KEY
const customer = process.env.C360_CUSTOMER
const customers = Number(process.env.C360_CUSTOMERS)
const store = Number(process.env.C360_STORE)
const shots = process.env.C360_SHOTS
mkdirSync(shots, { recursive: true })

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const step = (s) => console.log(`e2e: ${s}`)

// Every word a page shows: its text, and the text of its charts (drawn as SVG).
// (The language switch names the other language: it is left out.)
const shownText = (page) =>
  page.evaluate(() => {
    const sw = document.querySelector('[data-testid="lang-switch"]')
    if (sw) sw.style.display = 'none'
    const text = [document.body.innerText, ...[...document.querySelectorAll('svg text')].map((e) => e.textContent)].join('\n')
    if (sw) sw.style.display = ''
    return text
  })
// Terms a Chinese analytics page keeps in Latin letters: the brand, model and method names,
// the R/F/M letters, the A/B arms, p values and the file formats and query language named.
const LATIN_TERMS = new Set(['c360', 'RFM', 'R', 'F', 'M', 'AI', 'A', 'B', 'p', 'PageRank', 'Qini', 'Holm', 'CUPED', 'Welch', 't', 'SQL', 'CSV', 'Parquet'])
// What a page shows in the wrong language once the chain's own names (products, stores, cities,
// campaigns, devices, key names) and customers' words (reviews, ticket messages) are set aside.
function foreign(text, lang, names) {
  let rest = text
  for (const n of names) rest = rest.split(n).join(' ')
  if (lang === 'zh') return [...new Set((rest.match(/[A-Za-z][A-Za-z0-9]*/g) ?? []).filter((w) => !LATIN_TERMS.has(w)))]
  return [...new Set((rest.match(/[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+/g) ?? []))]
}
let current = null
try {
  // A phone-sized screen.
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'zh-CN' })
  const page = await ctx.newPage()
  current = page
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(url)

  step('a wrong key is refused with the API message')
  await page.getByTestId('api-key').fill('c360_wrong')
  await page.getByTestId('login').click()
  await page.getByText('missing or unknown API key').waitFor()

  step('log in')
  await page.getByTestId('api-key').fill(adminKey)
  await page.getByTestId('login').click()
  await page.getByTestId('kpi-customers').waitFor()
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 15000 }).catch(() => {})
  const kpi = await page.getByTestId('kpi-customers').innerText()
  assert.equal(Number(kpi.replace(/[^0-9]/g, '')), customers, `customers KPI ${kpi}`)
  assert.equal(await page.getByTestId('app-title').innerText(), 'c360')
  // The capture rate: a share between the orders named by a member/user and all of them.
  const capture = Number((await page.getByTestId('kpi-capture').innerText()).replace(/[^0-9.]/g, ''))
  assert.ok(capture > 0 && capture <= 100, `capture rate ${capture}%`)
  await page.getByTestId('capture').locator('svg').first().waitFor()
  const width = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(width <= 400, `no sideways scrolling on a phone (page is ${width}px wide)`)
  await page.screenshot({ path: `${shots}/overview-phone.png`, fullPage: true })

  step('segments show the RFM grid')
  await page.goto(`${url}#/segments`)
  await page.getByTestId('rfm-grid').locator('svg').first().waitFor()

  step('customers list and open one')
  await page.goto(`${url}#/customers`)
  await page.getByTestId('customer-search').locator('input').fill(customer)
  await page.getByTestId('customer-search').locator('input').press('Enter')
  await page.getByTestId(`customer-${customer}`).click()
  await page.getByTestId('customer-title').waitFor()
  assert.match(await page.getByTestId('customer-title').innerText(), new RegExp(`#${customer}`))
  await page.getByTestId('timeline').locator('tbody tr.ant-table-row').first().waitFor()
  await page.getByTestId('predictions').getByText('活跃概率').waitFor()

  step('recommendations with reasons, and the daypart switch')
  await page.getByTestId('rec-item').first().waitFor()
  const recs = await page.getByTestId('rec-item').count()
  assert.ok(recs >= 5, `${recs} recommendations`)

  step('AI insight, in Chinese then English')
  await page.getByTestId('insight-button').click()
  await page.getByTestId('insight').getByText('客户价值').waitFor()
  await page.getByTestId('lang-switch').click()
  await page.getByTestId('insight').getByText('Value', { exact: true }).waitFor()
  await page.getByTestId('predictions').getByText('P(alive)').waitFor()
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en')
  await page.screenshot({ path: `${shots}/customer-en-phone.png`, fullPage: true })

  step('behaviour funnel, sentiment by aspect and the network')
  await page.goto(`${url}#/dimensions`)
  await page.getByTestId('funnel-table').locator('tbody tr.ant-table-row').first().waitFor()
  const segRows = await page.getByTestId('funnel-table').locator('tbody tr.ant-table-row').count()
  assert.ok(segRows >= 2, `funnel by tier has ${segRows} rows`)
  await page.getByRole('tab', { name: 'Sentiment' }).click()
  await page.getByTestId('aspects').locator('svg').first().waitFor()
  await page.getByRole('tab', { name: 'Network' }).click()
  await page.getByTestId('influencers').locator('tbody tr.ant-table-row').first().waitFor()
  const w2 = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(w2 <= 400, `dimensions page fits a phone (${w2}px)`)
  await page.screenshot({ path: `${shots}/dimensions-phone.png`, fullPage: true })

  step('a campaign from a segment: create, launch, results; service diagnosis; audit trail')
  await page.goto(`${url}#/act`)
  await page.getByTestId('suggestions').locator('tbody tr.ant-table-row').first().waitFor()
  await page.getByTestId('create-campaign').first().click()
  // A bad holdout is refused by the API with the field named; then an A/B campaign is saved.
  await page.getByTestId('holdout-pct').fill('0')
  await page.getByTestId('save-campaign').click()
  await page.getByTestId('campaign-error').getByText('holdout_pct').waitFor()
  await page.getByTestId('holdout-pct').fill('20')
  await page.getByTestId('variant-b').fill('8')
  await page.getByTestId('save-campaign').click()
  await page.getByTestId('launch').first().waitFor()
  const made = await page.evaluate(async () => {
    const r = await fetch('/api/v1/campaigns', { headers: { authorization: `Bearer ${localStorage.getItem('c360.key')}` } })
    return (await r.json()).campaigns.map((c) => [c.campaign_id, c.spec.holdout_pct, c.spec.variants.length])
  })
  console.log(`e2e: campaigns ${JSON.stringify(made)}`)
  assert.deepEqual(made, [[1, 20, 2]], 'the edited spec was saved')
  await page.getByTestId('launch').first().click()
  await page.getByTestId('show-results').first().waitFor()
  await page.getByTestId('show-results').first().click()
  await page.getByTestId('srm-tag').waitFor()
  await page.getByTestId('program').waitFor()
  await page.getByTestId('variant-vs').getByText('B vs A').waitFor()
  await page.getByTestId('incremental').first().waitFor()
  const w3 = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(w3 <= 400, `campaigns page fits a phone (${w3}px)`)
  await page.screenshot({ path: `${shots}/campaigns-phone.png`, fullPage: true })
  await page.getByRole('tab', { name: 'Tests' }).click()
  await page.getByTestId('exp-name').fill('HD03 price test')
  await page.getByTestId('exp-start').fill('2025-09-01')
  await page.getByTestId('exp-end').fill('2025-09-21')
  await page.getByTestId('exp-create').click()
  await page.getByTestId('exp-plan').getByText('MDE').waitFor()
  await page.getByRole('tab', { name: 'Service' }).click()
  await page.getByTestId('tickets').locator('tbody tr.ant-table-row').first().waitFor()
  await page.getByTestId('ticket-text').fill('优惠券用不了，结账没减')
  await page.getByTestId('diagnose').click()
  await page.getByTestId('diagnosis').getByText('Coupon failure', { exact: true }).waitFor()
  await page.screenshot({ path: `${shots}/service-phone.png`, fullPage: true })
  await page.getByRole('tab', { name: 'Audit' }).click()
  await page.getByTestId('audit').getByText('campaign: launch').first().waitFor()
  step('menu engineering: quadrants, attach rates and launches')
  await page.goto(`${url}#/menu`)
  await page.getByTestId('menu-items').locator('tbody tr.ant-table-row').first().waitFor()
  const menuRows = await page.getByTestId('menu-items').locator('tbody tr.ant-table-row').count()
  const menuApi = await page.evaluate(async () => (await (await fetch('/api/v1/menu', { headers: { authorization: `Bearer ${localStorage.getItem('c360.key')}` } })).json()).items.length)
  assert.equal(menuRows, menuApi, 'one row per item')
  await page.getByTestId('menu-matrix').locator('svg').first().waitFor()

  step('audiences: build and preview, save, compare two, open one')
  await page.goto(`${url}#/audiences`)
  await page.getByTestId('audience-builder').waitFor()
  await page.getByTestId('audience-preview').click()
  await page.getByTestId('audience-size').waitFor()
  const shownSize = Number((await page.getByTestId('audience-size').innerText()).replace(/[^0-9]/g, ''))
  const apiSize = await page.evaluate(async () => {
    const r = await fetch('/api/v1/audiences/preview', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${localStorage.getItem('c360.key')}` },
      body: JSON.stringify({ name: 'x', rule: { all: [{ field: { field: 'tier', op: 'in', values: ['核心客户'] } }] } }),
    })
    return (await r.json()).size
  })
  assert.ok(shownSize > 0 && shownSize === apiSize, `preview shows ${shownSize}, the API ${apiSize}`)
  await page.getByTestId('audience-preview-result').locator('tbody tr.ant-table-row').first().waitFor()
  await page.getByTestId('audience-name-input').fill('核心客户人群')
  await page.getByTestId('audience-save').click()
  await page.getByTestId('audience-list').getByText('核心客户人群').waitFor()
  await page.evaluate(async () => {
    await fetch('/api/v1/audiences', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${localStorage.getItem('c360.key')}` },
      body: JSON.stringify({ name: '午餐常客', rule: { bought: { daypart: 'lunch', min_times: 2 } } }),
    })
  })
  await page.reload()
  await page.getByTestId('audience-list').getByText('午餐常客').waitFor()
  const boxes = page.getByTestId('audience-list').locator('tr.ant-table-row input.ant-checkbox-input')
  await boxes.nth(0).check({ force: true })
  await boxes.nth(1).check({ force: true })
  await page.getByTestId('audience-overlap').locator('svg').first().waitFor()
  await page.getByTestId('audience-name').first().click()
  await page.getByTestId('audience-detail').locator('tbody tr.ant-table-row').first().waitFor()
  await page.screenshot({ path: `${shots}/audiences-phone.png`, fullPage: true })

  step('the dashboard speaks one language at a time')
  const names = await page.evaluate(async (id) => {
    const get = async (p) => (await fetch(`/api/v1${p}`, { headers: { authorization: `Bearer ${localStorage.getItem('c360.key')}` } })).json()
    const rows = async (dim) => (await get(`/compare/${dim}`)).rows.map((r) => r.name)
    const out = [...(await rows('product')), ...(await rows('store')), ...(await rows('city'))]
    out.push(...(await get(`/customers/${id}/recommendations?k=8`)).items.map((r) => r.name))
    out.push(...(await get(`/customers/${id}/preferences`)).products.map((r) => r.name))
    out.push(...(await get(`/customers/${id}/timeline?limit=30`)).orders.map((r) => r.store_name))
    out.push(...(await get(`/customers/${id}/emotion`)).reviews.map((r) => r.content))
    out.push(...(await get('/service/tickets?limit=30')).tickets.map((r) => r.message))
    out.push(...(await get('/campaigns')).campaigns.map((c) => c.name))
    out.push(...(await get('/experiments')).experiments.map((e) => e.spec?.name))
    out.push(...(await get('/network?limit=15')).cascades.map((c) => c.campaign))
    out.push(...(await get('/audit?limit=200')).entries.map((e) => e.actor))
    out.push((await get('/me')).name)
    out.push(...(await get('/audiences')).audiences.map((a) => a.audience.spec.name))
    return out.filter((x) => typeof x === 'string' && x.length > 0)
  }, customer)
  names.sort((a, b) => b.length - a.length)
  const views = [
    ['overview', async () => page.getByTestId('kpi-customers').waitFor()],
    ['segments', async () => page.getByTestId('rfm-grid').locator('svg').first().waitFor()],
    ['customers', async () => page.getByTestId('customers-table').locator('tbody tr.ant-table-row').first().waitFor()],
    [`customer/${customer}`, async () => {
      await page.getByTestId('timeline').locator('tbody tr.ant-table-row').first().waitFor()
      await page.getByTestId('rec-item').first().waitFor()
      await page.getByTestId('insight-button').click()
      await page.getByTestId('insight').waitFor()
    }],
    ['distributions', async () => page.getByTestId('city-map').locator('svg').first().waitFor()],
    ['dimensions', async () => page.getByTestId('funnel-table').locator('tbody tr.ant-table-row').first().waitFor(), ['sentiment', 'network']],
    ['act', async () => {
      await page.getByTestId('show-results').first().click()
      await page.getByTestId('campaign-results').waitFor()
    }, ['experiments', 'service', 'journeys', 'audit']],
    ['live', async () => page.getByTestId('live-orders').waitFor()],
    ['menu', async () => {
      await page.getByTestId('menu-items').locator('tbody tr.ant-table-row').first().waitFor()
      await page.getByTestId('menu-matrix').locator('svg').first().waitFor()
    }],
    ['audiences', async () => {
      await page.getByTestId('audience-list').locator('tbody tr.ant-table-row').first().waitFor()
      await page.getByTestId('audience-preview').click()
      await page.getByTestId('audience-preview-result').locator('tbody tr.ant-table-row').first().waitFor()
    }],
  ]
  const wrong = []
  for (const lang of ['zh', 'en']) {
    if ((await page.evaluate(() => document.documentElement.lang)).startsWith('zh') !== (lang === 'zh')) await page.getByTestId('lang-switch').click()
    for (const [view, ready, tabs] of views) {
      await page.goto(`${url}#/${view}`)
      await ready()
      await page.waitForTimeout(300)
      const found = foreign(await shownText(page), lang, names)
      if (found.length) wrong.push(`${lang} #/${view}: ${found.join(' | ')}`)
      for (const tab of tabs ?? []) {
        await page.locator(`[data-node-key="${tab}"]`).click()
        await page.waitForTimeout(500)
        if (tab === 'service') await page.getByTestId('tickets').locator('tbody tr.ant-table-row').first().waitFor()
        if (tab === 'audit') await page.getByTestId('audit').locator('tbody tr.ant-table-row').first().waitFor()
        if (tab === 'journeys') await page.getByTestId('journeys').locator('tbody tr.ant-table-row').first().waitFor()
        const f = foreign(await shownText(page), lang, names)
        if (f.length) wrong.push(`${lang} #/${view} ${tab}: ${f.join(' | ')}`)
      }
      if (lang === 'zh' && view.startsWith('customer/')) await page.screenshot({ path: `${shots}/customer-zh-phone.png`, fullPage: true })
    }
  }
  assert.deepEqual(wrong, [], `words in the other language:\n${wrong.join('\n')}`)
  await page.goto(`${url}#/customer/${customer}`)
  await page.getByTestId('customer-title').waitFor()

  step('offline: reload shows the last data')
  // Let the service worker take over this page so it caches the answers.
  await page.reload()
  await page.getByTestId('customer-title').waitFor()
  await page.getByTestId('timeline').locator('tbody tr.ant-table-row').first().waitFor()
  assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller), 'service worker controls the page')
  await ctx.setOffline(true)
  await page.reload()
  await page.getByTestId('offline-banner').waitFor()
  await page.getByTestId('customer-title').waitFor()
  await page.getByTestId('timeline').locator('tbody tr.ant-table-row').first().waitFor()
  assert.match(await page.getByTestId('customer-title').innerText(), new RegExp(`#${customer}`))
  await page.screenshot({ path: `${shots}/customer-offline.png`, fullPage: true })
  await ctx.setOffline(false)

  step('answers are cached per key, and logout forgets them all')
  const answerCaches = () => page.evaluate(async () => (await caches.keys()).filter((n) => n.startsWith('c360-data-')).sort())
  const adminCaches = await answerCaches()
  assert.equal(adminCaches.length, 1, `one answer cache for the admin's key: ${adminCaches}`)
  await page.getByTestId('logout').click()
  await page.getByTestId('api-key').waitFor()
  for (let i = 0; i < 50 && (await answerCaches()).length > 0; i++) await page.waitForTimeout(100)
  assert.deepEqual(await answerCaches(), [], 'logout deletes every cached answer')
  assert.equal(await page.evaluate(() => localStorage.getItem('c360.me')), null, 'logout forgets who was logged in')
  await page.goto(url)
  await page.getByTestId('api-key').fill(managerKey)
  await page.getByTestId('login').click()
  await page.getByTestId('kpi-customers').waitFor()
  for (let i = 0; i < 50 && (await answerCaches()).length === 0; i++) await page.waitForTimeout(100)
  const managerCaches = await answerCaches()
  assert.equal(managerCaches.length, 1, `the manager's answers in their own cache: ${managerCaches}`)
  assert.notEqual(managerCaches[0], adminCaches[0], "the manager's cache is not the admin's")
  assert.deepEqual(errors, [], 'no page errors')
  await ctx.close()

  step("a store manager sees only their store's customers")
  const desk = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  const p2 = await desk.newPage()
  current = p2
  await p2.goto(url)
  await p2.getByTestId('api-key').fill(managerKey)
  await p2.getByTestId('login').click()
  await p2.getByTestId('kpi-customers').waitFor()
  const managerKpi = Number((await p2.getByTestId('kpi-customers').innerText()).replace(/[^0-9]/g, ''))
  assert.ok(managerKpi > 0 && managerKpi < customers, `manager sees ${managerKpi} of ${customers}`)
  const list = await p2.evaluate(async () => {
    const r = await fetch('/api/v1/customers?page_size=200', { headers: { authorization: `Bearer ${localStorage.getItem('c360.key')}` } })
    return r.json()
  })
  assert.ok(list.items.length > 0 && list.items.every((c) => c.home_store_id === store))
  await p2.screenshot({ path: `${shots}/overview-desktop-manager.png`, fullPage: true })

  step('live feed receives a posted order over the WebSocket')
  await p2.goto(`${url}#/live`)
  await p2.getByText('已连接').waitFor()
  const r = await fetch(`${url}api/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({ order_no: 'E2E-1', store_id: store, customer_id: Number(customer), total_fen: 3300 }),
  })
  assert.equal(r.status, 201)
  await p2.getByTestId('live-feed').getByText('¥33.0').waitFor()
  assert.equal((await p2.getByTestId('live-orders').innerText()).replace(/[^0-9]/g, ''), '1')
  await desk.close()
  step('all checks passed')
} catch (e) {
  if (current) await current.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {})
  throw e
} finally {
  await browser.close()
}
