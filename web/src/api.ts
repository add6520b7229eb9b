// The API client: the key lives in localStorage; every call sends it as a Bearer token.
export type Json = any // eslint-disable-line @typescript-eslint/no-explicit-any

const KEY = 'c360.key'

export function getKey(): string | null {
  return localStorage.getItem(KEY)
}
export function setKey(k: string | null) {
  if (k) localStorage.setItem(KEY, k)
  else localStorage.removeItem(KEY)
}

export class ApiError extends Error {
  code: string
  status: number
  constructor(status: number, code: string, message: string) {
    super(message)
    this.code = code
    this.status = status
  }
}

export async function api<T = Json>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`/api/v1${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${getKey() ?? ''}`, ...(init?.headers ?? {}) },
  })
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw new ApiError(res.status, body.code ?? 'error', body.message ?? res.statusText)
  return body as T
}

export const yuan = (fen: number | null | undefined, digits = 0) =>
  fen == null ? '-' : `¥${(fen / 100).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits })}`
export const pct = (x: number | null | undefined) => (x == null ? '-' : `${(x * 100).toFixed(0)}%`)
export const num = (x: number | null | undefined, d = 0) =>
  x == null ? '-' : x.toLocaleString(undefined, { maximumFractionDigits: d })

/// A WebSocket that resubscribes after a reconnect from the last sequence number it saw, so it
/// misses nothing.
export function liveSocket(topics: string[], onEvent: (e: Json) => void, onState?: (s: string) => void) {
  let since: number | null = null
  let ws: WebSocket | null = null
  let closed = false
  let retry = 500
  const open = () => {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    ws = new WebSocket(`${proto}://${location.host}/ws?key=${encodeURIComponent(getKey() ?? '')}`)
    ws.onopen = () => {
      retry = 500
      onState?.('open')
      ws?.send(JSON.stringify({ type: 'subscribe', topics, since }))
    }
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data)
      if (e.type === 'subscribed' && since == null) since = e.head
      if (e.type === 'event') {
        since = e.seq
        onEvent(e)
      }
    }
    ws.onclose = () => {
      onState?.('closed')
      if (!closed) setTimeout(open, (retry = Math.min(retry * 2, 10000)))
    }
  }
  open()
  return () => {
    closed = true
    ws?.close()
  }
}
