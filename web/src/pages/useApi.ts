import { createContext, useContext, useEffect, useState } from 'react'
import { api, Json } from '../api'

/// Bumped when the server announces a new warehouse snapshot (an ETL run): every view refetches.
export const DataVersion = createContext(0)

/// Fetches `path` (re-fetching when it changes); `reload` fetches again.
export function useApi<T = Json>(path: string | null) {
  const [data, setData] = useState<T | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [loading, setLoading] = useState(false)
  const [n, setN] = useState(0)
  const version = useContext(DataVersion)
  useEffect(() => {
    if (!path) return
    let live = true
    setLoading(true)
    api<T>(path)
      .then((d) => live && (setData(d), setError(null)))
      .catch((e) => live && setError(e.message))
      .finally(() => live && setLoading(false))
    return () => {
      live = false
    }
  }, [path, n, version])
  return { data, error, loading, reload: () => setN((x) => x + 1) }
}
