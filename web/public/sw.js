// c360 service worker: the app shell cache-first, API answers network-first with the last good
// answer kept for offline viewing. Nothing is fetched from anywhere but this origin.
//
// API answers are kept per key: each key's answers live in their own cache, named by a hash of
// the Authorization header (never the key itself), and are only ever served to a request with
// the same header. Logging out (a 'logout' message from the page) deletes every answer cache, so
// the next person on this device sees nothing of the last one's.
const SHELL = 'c360-shell-v2'
const DATA_PREFIX = 'c360-data-'

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(['/', '/index.html', '/manifest.webmanifest', '/icon.svg'])))
  self.skipWaiting()
})

const dropAnswers = () =>
  caches.keys().then((names) => Promise.all(names.filter((n) => n.startsWith(DATA_PREFIX) || n === 'c360-data-v1').map((n) => caches.delete(n))))

self.addEventListener('activate', (e) => {
  // Older versions kept every key's answers in one cache: drop it with the old shell.
  e.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n === 'c360-data-v1' || (n.startsWith('c360-shell-') && n !== SHELL)).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'logout') e.waitUntil(dropAnswers())
})

/** The answer cache of the key a request carries, or null without one. */
async function cacheFor(req) {
  const auth = req.headers.get('authorization')
  if (!auth) return null
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(auth))
  const hex = Array.from(new Uint8Array(digest).slice(0, 12), (b) => b.toString(16).padStart(2, '0')).join('')
  return DATA_PREFIX + hex
}

const offline = () =>
  new Response(JSON.stringify({ code: 'offline', message: 'offline and not cached' }), {
    status: 503,
    headers: { 'content-type': 'application/json' },
  })

self.addEventListener('fetch', (e) => {
  const req = e.request
  const url = new URL(req.url)
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname === '/ws') return
  if (url.pathname.startsWith('/api/')) {
    e.respondWith(
      cacheFor(req).then((name) =>
        fetch(req)
          .then((res) => {
            if (res.ok && name) {
              const copy = res.clone()
              caches.open(name).then((c) => c.put(req, copy))
            }
            return res
          })
          .catch(() => (name ? caches.open(name).then((c) => c.match(req)).then((hit) => hit || offline()) : offline())),
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
    caches.match(req, { cacheName: SHELL }).then(
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
