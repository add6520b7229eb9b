// c360 service worker: the app shell cache-first, API answers network-first with the last good
// answer kept for offline viewing. Nothing is fetched from anywhere but this origin.
const SHELL = 'c360-shell-v1'
const DATA = 'c360-data-v1'

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(['/', '/index.html', '/manifest.webmanifest', '/icon.svg'])))
  self.skipWaiting()
})

self.addEventListener('activate', (e) => {
  e.waitUntil(self.clients.claim())
})

self.addEventListener('fetch', (e) => {
  const req = e.request
  const url = new URL(req.url)
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname === '/ws') return
  if (url.pathname.startsWith('/api/')) {
    e.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone()
            caches.open(DATA).then((c) => c.put(req, copy))
          }
          return res
        })
        .catch(() =>
          caches.match(req, { cacheName: DATA }).then(
            (hit) =>
              hit ||
              new Response(JSON.stringify({ code: 'offline', message: 'offline and not cached' }), {
                status: 503,
                headers: { 'content-type': 'application/json' },
              }),
          ),
        ),
    )
    return
  }
  // Pages: network first (a new build shows at once), the cached shell offline.
  if (req.mode === 'navigate') {
    e.respondWith(
      fetch(req)
        .then((res) => {
          const copy = res.clone()
          caches.open(SHELL).then((c) => c.put('/index.html', copy))
          return res
        })
        .catch(() => caches.match('/index.html', { cacheName: SHELL })),
    )
    return
  }
  // Static files: cache first (hashed asset names never change), index.html for app routes.
  e.respondWith(
    caches.match(req).then(
      (hit) =>
        hit ||
        fetch(req)
          .then((res) => {
            if (res.ok) {
              const copy = res.clone()
              caches.open(SHELL).then((c) => c.put(req, copy))
            }
            return res
          })
          .catch(() => caches.match('/index.html')),
    ),
  )
})
