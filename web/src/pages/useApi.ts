import { createContext, useContext, useEffect, useState } from 'react'
import { get, GetRoute, Got, Url } from '../api'

/// Bumped when the server announces a new warehouse snapshot (an ETL run): every view refetches.
export const DataVersion = createContext(0)

/// Fetches `u` (a URL made by `url(route, …)`, re-fetching when it changes); `data` is the route's
/// documented answer; `reload` fetches again.
export function useApi<R extends GetRoute>(u: Url<R> | null) {
  const [data, setData] = useState<Got<R> | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState(false)
  const [n, setN] = useState(0)
  const version = useContext(DataVersion)
  useEffect(() => {
    if (!u) return
    let live = true
    setLoading(true)
    get(u)
      .then((d) => live && (setData(d), setError(null)))
      .catch((e: Error) => live && setError(e.message))
      .finally(() => live && setLoading(false))
    return () => {
      live = false
    }
  }, [u, n, version])
  return { data, error, loading, reload: () => setN((x) => x + 1) }
}
