//! The server's state: one warehouse snapshot with its per-customer views and models, the live
//! changes since it (re-scored customers, counters), the keys, the push hub and the answer cache.

use std::collections::HashMap;
use std::sync::Arc;

use c360_db::{get_i64, get_text};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::{auth, hub, queue};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use c360_core::profile::LiveProfile;
use c360_warehouse::{Session, Warehouse};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::Duration;
use tokio::sync::RwLock;

/// How the server is set up (the CLI fills it from flags, `C360_*` env and defaults).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub warehouse: PathBuf,
    /// Metastore URL (SQLite file in the warehouse by default, or PostgreSQL).
    pub metastore: String,
    /// How often to look for a new warehouse snapshot (an ETL run elsewhere).
    pub poll: Duration,
    /// The LLM behind AI insights; `None` uses the offline rule-based writer.
    pub llm: Option<c360_insights::llm::LlmConfig>,
    /// Per-key rate limits and other bounds.
    pub limits: Limits,
}

/// What one key may ask of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests a second per key, on average (0: no limit).
    pub requests_per_sec: f64,
    /// Requests a key may send at once above the average.
    pub burst: f64,
    /// LLM calls (insights not in the cache) a minute per key (0: no limit).
    pub llm_per_min: f64,
    /// The stream log keeps events this long …
    pub stream_max_age: Duration,
    /// … and at most this many.
    pub stream_max_rows: i64,
    /// A request still running after this answers 503 `timeout`.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait (within the timeout) for a free slot.
    pub max_in_flight: usize,
    /// Customers per slice when the server builds a serving index it does not find (what the
    /// build holds grows with the slice; `C360_SLICE_CUSTOMERS`).
    pub index_slice_customers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests_per_sec: 100.0,
            burst: 200.0,
            llm_per_min: 20.0,
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
            stream_max_rows: 1_000_000,
            request_timeout: Duration::from_secs(60),
            max_in_flight: 512,
            index_slice_customers: c360_core::slice::SLICE_CUSTOMERS,
        }
    }
}

/// How often the key table is re-read, so a revoked key stops working on every server within a
/// second (and its WebSockets close).
pub const KEY_POLL: Duration = Duration::from_millis(400);

/// One committed warehouse version, with the models its refresh stored.
pub struct Snapshot {
    pub sess: Session,
    pub version: u64,
    pub models: Option<c360_core::profile::StoredModels>,
    /// Day number after the last order in this snapshot (live orders are after it).
    pub end_day: i64,
    /// Per-customer views of this snapshot, on disk and keyed by customer id (the session reads
    /// the same views from the index's sorted Parquet files).
    pub index: Arc<c360_core::serving::ServingIndex>,
    /// Ids an ingested order may name.
    pub stores: std::collections::HashSet<i64>,
    pub products: std::collections::HashSet<i64>,
    /// The day each store opened (orders before it cannot be theirs).
    pub store_opened: HashMap<i64, chrono::NaiveDate>,
    /// The recommender, trained on first use.
    pub recs: tokio::sync::OnceCell<Arc<c360_core::recs::RecModel>>,
    /// The customer-service diagnosis model, trained on first use.
    pub service: tokio::sync::OnceCell<Arc<c360_analytics::service::ServiceModel>>,
    /// The stored sentiment model this snapshot names, read on first use.
    pub sentiment: tokio::sync::OnceCell<SentimentModel>,
    /// The source entities loaded so far (None: a warehouse from before source contracts).
    pub loaded: Option<std::collections::BTreeSet<String>>,
    /// The warehouse the snapshot is a version of (saved audiences cache their members beside
    /// its serving index).
    pub wh: c360_warehouse::Warehouse,
    /// Products by id with their sku and category, read on first use (live audience rules).
    pub catalog: tokio::sync::OnceCell<Arc<c360_core::audience::Catalog>>,
    /// Saved audiences' members at this snapshot with the live orders since, by (audience,
    /// version).
    pub audiences: tokio::sync::Mutex<HashMap<(i64, i64), crate::routes::audiences::LiveMembers>>,
    /// Customers erased since this snapshot was built (their warehouse part pending): not found
    /// through any per-customer read, from the moment the request is accepted.
    pub erased: std::sync::RwLock<std::collections::HashSet<i64>>,
}

/// A stored sentiment model and its card.
pub type SentimentModel = Arc<(
    c360_analytics::sentiment::Sentiment,
    c360_core::sentiment::ModelCard,
)>;

/// The per-customer views a profile page reads (see [`c360_core::serving`]).
pub const PER_CUSTOMER_VIEWS: [&str; 6] = c360_core::serving::VIEWS;

impl Snapshot {
    /// One customer's state as this snapshot left it (None: no paid order in it), read from
    /// the serving index.
    pub async fn live_base(&self, id: i64) -> ApiResult<Option<LiveProfile>> {
        if self.is_erased(id) {
            return Ok(None);
        }
        Ok(self.index.live(id)?)
    }

    /// The customers erased after this snapshot was built, in id order.
    pub fn erased_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .erased
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether the customer was erased after this snapshot was built.
    pub fn is_erased(&self, id: i64) -> bool {
        self.erased
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&id)
    }

    /// Whether the customer id exists in this snapshot (every customer has a 360 row).
    pub fn has_customer(&self, id: i64) -> ApiResult<bool> {
        Ok(!self.is_erased(id) && self.index.view("v_customer_360")?.contains(id)?)
    }

    /// A customer's rows of one of [`PER_CUSTOMER_VIEWS`], as JSON objects (a binary search in
    /// the snapshot's serving index).
    pub fn rows_of(&self, view: &str, customer_id: i64) -> ApiResult<Vec<Value>> {
        if self.is_erased(customer_id) {
            return Ok(vec![]);
        }
        Ok(self.index.rows(view, customer_id)?)
    }
}

/// Live counters since the snapshot, per store.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LiveStats {
    pub orders: i64,
    pub revenue_fen: i64,
    pub by_store: HashMap<i64, (i64, i64)>,
}

impl LiveStats {
    /// (orders, revenue in fen) since the snapshot in `stores` (None: the chain); the caller's
    /// stores come from `authz::stores`.
    pub fn in_stores(&self, stores: Option<&[i64]>) -> (i64, i64) {
        match stores {
            None => (self.orders, self.revenue_fen),
            Some(sc) => self
                .by_store
                .iter()
                .filter(|(k, _)| sc.contains(k))
                .fold((0, 0), |a, (_, v)| {
                    (a.0.saturating_add(v.0), a.1.saturating_add(v.1))
                }),
        }
    }
}

pub struct Inner {
    pub cfg: ServeConfig,
    pub meta: c360_metastore::Metastore,
    snap: RwLock<Option<Arc<Snapshot>>>,
    keys: RwLock<HashMap<String, Principal>>,
    /// When the keys were last re-read for an unknown key (at most once a second, so a
    /// stream of wrong keys cannot turn into a stream of metastore reads).
    keys_read: StdMutex<std::time::Instant>,
    /// Bumped whenever the key table changes; WebSockets watch it to close on revocation.
    keys_changed: tokio::sync::watch::Sender<u64>,
    tickets: auth::Tickets,
    /// Nonces of redeemed tickets with their expiry (a ticket opens one socket).
    used_tickets: StdMutex<HashMap<String, u64>>,
    rate: auth::RateLimiter,
    llm_rate: auth::RateLimiter,
    /// Slots for requests in flight (`Limits::max_in_flight`).
    pub in_flight: tokio::sync::Semaphore,
    hub: hub::Hub,
    /// Bumped on every change; cached answers from an older generation are misses.
    generation: AtomicU64,
    cache: StdMutex<Cache>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Customers re-scored since the snapshot.
    live: tokio::sync::Mutex<HashMap<i64, LiveProfile>>,
    stats: StdMutex<LiveStats>,
    pub llm: Option<c360_insights::llm::LlmClient>,
    /// Live orders and events waiting for the group committer (`crate::ingest`).
    pub ingest: queue::Queue,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// A handle that does not keep the state alive (what a background task holds, so the state
/// and its task end together).
#[derive(Clone)]
pub struct WeakState(std::sync::Weak<Inner>);

impl WeakState {
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

/// Cached answers by key: (generation, answer, its size as JSON), and the sizes' total.
#[derive(Default)]
struct Cache {
    map: HashMap<String, (u64, Arc<Value>, usize)>,
    bytes: usize,
}

impl Cache {
    /// Keeps `v` unless it alone is over a sixteenth of `max_bytes`; when the new entry would
    /// pass either bound, everything cached before is dropped first (answers are cheap to
    /// recompute and a snapshot change makes them all stale at once anyway).
    fn put(&mut self, key: String, gen: u64, v: Arc<Value>, max_entries: usize, max_bytes: usize) {
        let bytes = serde_json::to_vec(&*v).map_or(usize::MAX, |b| b.len()) + key.len();
        if bytes > max_bytes / 16 {
            return;
        }
        if let Some((_, _, old)) = self.map.remove(&key) {
            self.bytes -= old;
        }
        if self.map.len() >= max_entries || self.bytes + bytes > max_bytes {
            self.map.clear();
            self.bytes = 0;
        }
        self.map.insert(key, (gen, v, bytes));
        self.bytes += bytes;
    }
}

const CACHE_MAX: usize = 20_000;
/// The answer cache's bound in bytes (answers as JSON); a single answer over a sixteenth of it
/// is not kept.
const CACHE_BYTES: usize = 128 << 20;

/// The largest order total a live row may carry (what a hot dog chain's till can ring up).
pub use c360_model::MAX_ORDER_FEN;

impl AppState {
    pub async fn open(cfg: ServeConfig) -> ApiResult<AppState> {
        let meta = c360_metastore::Metastore::open(&cfg.metastore).await?;
        let keys = auth::load_keys(&meta).await?;
        let ticket_secret = meta.generated_secret("ws_ticket_secret").await?;
        let hub = hub::Hub::open(meta.clone()).await?;
        let llm = match &cfg.llm {
            Some(c) => Some(
                c360_insights::llm::LlmClient::new(c.clone())
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let limits = cfg.limits.clone();
        let s = AppState(Arc::new(Inner {
            cfg,
            meta,
            snap: RwLock::new(None),
            keys: RwLock::new(keys),
            keys_read: StdMutex::new(std::time::Instant::now()),
            keys_changed: tokio::sync::watch::Sender::new(0),
            tickets: auth::Tickets::new(ticket_secret.expose()),
            used_tickets: StdMutex::new(HashMap::new()),
            rate: auth::RateLimiter::new(limits.requests_per_sec, limits.burst),
            in_flight: tokio::sync::Semaphore::new(limits.max_in_flight.max(1)),
            llm_rate: auth::RateLimiter::new(
                limits.llm_per_min / 60.0,
                (limits.llm_per_min / 4.0).max(1.0),
            ),
            hub,
            generation: AtomicU64::new(1),
            cache: StdMutex::new(Cache::default()),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            live: tokio::sync::Mutex::new(HashMap::new()),
            stats: StdMutex::new(LiveStats::default()),
            llm,
            ingest: queue::Queue::default(),
        }));
        s.reload().await?;
        Ok(s)
    }

    pub fn inner(&self) -> &Inner {
        &self.0
    }
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.0))
    }
    pub fn hub(&self) -> &hub::Hub {
        &self.0.hub
    }

    pub async fn principal(&self, key: &str) -> Option<Principal> {
        let h = auth::hash_key(key);
        if let Some(p) = auth::find_key(&*self.0.keys.read().await, &h) {
            return Some(p.clone());
        }
        // A key created by the CLI since start-up.
        {
            let mut last = self
                .0
                .keys_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() < Duration::from_secs(1) {
                return None;
            }
            *last = std::time::Instant::now();
        }
        self.refresh_keys().await.ok()?;
        auth::find_key(&*self.0.keys.read().await, &h).cloned()
    }

    /// Re-reads the key table; when it changed (a key created or revoked, by this server or any
    /// other process on the metastore), swaps it in and wakes the WebSockets. Returns whether
    /// it changed.
    pub async fn refresh_keys(&self) -> ApiResult<bool> {
        let fresh = auth::load_keys(&self.0.meta).await?;
        let same = {
            let cur = self.0.keys.read().await;
            cur.len() == fresh.len()
                && fresh.iter().all(|(h, p)| {
                    cur.get(h)
                        .is_some_and(|c| c.role == p.role && c.stores == p.stores)
                })
        };
        if same {
            return Ok(false);
        }
        *self.0.keys.write().await = fresh;
        self.0.keys_changed.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// Whether the key with this hash is still live (a WebSocket asks after a key change).
    pub async fn key_is_live(&self, key_hash: &str) -> bool {
        self.0.keys.read().await.contains_key(key_hash)
    }

    /// Wakes on every change of the key table.
    pub fn watch_keys(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.keys_changed.subscribe()
    }

    /// A WebSocket ticket for the caller's key (see [`auth::Tickets`]).
    pub fn issue_ticket(&self, p: &Principal) -> String {
        self.0.tickets.issue(&p.key_hash, unix_now())
    }

    /// The caller a ticket was issued to, once: a ticket already used, expired, forged or
    /// of a key revoked since is refused.
    pub async fn redeem_ticket(&self, ticket: &str) -> Option<Principal> {
        let now = unix_now();
        let keys = self.0.keys.read().await;
        let r = self.0.tickets.check(ticket, now, &keys)?;
        {
            let mut used = self
                .0
                .used_tickets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            used.retain(|_, exp| *exp >= now);
            if used.insert(r.nonce.clone(), r.expires).is_some() {
                return None;
            }
        }
        keys.get(&r.key_hash).cloned()
    }

    /// Counts one request against the caller's key: 429 with the wait when over the limit.
    pub fn admit(&self, p: &Principal) -> ApiResult<()> {
        take(&self.0.rate, p, "requests")
    }

    /// Counts one LLM call against the caller's key.
    pub fn admit_llm(&self, p: &Principal) -> ApiResult<()> {
        take(&self.0.llm_rate, p, "LLM insights")
    }

    /// The sentiment model snapshot `s` names, read from the warehouse once; `no_data` for a
    /// snapshot refreshed before models were stored (the next ETL run stores one).
    pub async fn sentiment_model(&self, s: &Snapshot) -> ApiResult<SentimentModel> {
        s.sentiment
            .get_or_try_init(|| async {
                let wh = Warehouse::open(&self.0.cfg.warehouse)?;
                match c360_core::sentiment::load(&wh, &s.sess.manifest.notes)? {
                    Some(m) => Ok(Arc::new(m)),
                    None => Err(ApiError::NoData),
                }
            })
            .await
            .cloned()
    }

    /// The current snapshot, or `no_data` before the first ETL run.
    pub async fn snapshot(&self) -> ApiResult<Arc<Snapshot>> {
        self.0.snap.read().await.clone().ok_or(ApiError::NoData)
    }

    /// Opens the newest warehouse version if it differs from the loaded one. Returns whether
    /// the snapshot changed. Live overlays before the new snapshot's end are dropped (the ETL
    /// has loaded those orders from the sources).
    pub async fn reload(&self) -> ApiResult<bool> {
        let wh = match Warehouse::open(&self.0.cfg.warehouse) {
            Ok(w) => w,
            Err(_) => return Ok(false),
        };
        let Ok(m) = wh.current() else {
            return Ok(false);
        };
        if m.tables.is_empty() {
            return Ok(false);
        }
        let version = m.version;
        if let Some(s) = self.0.snap.read().await.as_ref() {
            if s.version == version {
                return Ok(false);
            }
        }
        let sess = Session::open(&wh).await?;
        // An ETL killed between its warehouse commit and applying its identity changes left
        // them staged: this snapshot carries them, so they take effect now.
        if let Err(e) = self
            .0
            .meta
            .settle_identity(
                c360_metastore::committed_identity_run(&sess.manifest.watermarks),
                false,
            )
            .await
        {
            tracing::warn!(error = %e, "identity changes of the new snapshot could not be applied yet");
        }
        let models = c360_core::profile::StoredModels::from_notes(&sess.manifest.notes);
        let loaded = c360_core::sources::loaded(&sess.manifest.notes);
        let end_day = sess
            .scalar_i64(
                "SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) + 1 FROM fact_orders",
            )
            .await?;
        let index =
            c360_core::serving::open_or_build(&wh, &sess, self.0.cfg.limits.index_slice_customers)
                .await?;
        tracing::info!(
            version,
            customers = index.view("v_customer_360").map_or(0, |v| v.len()),
            live = index.live_len(),
            disk_mb = index.disk_bytes() >> 20,
            "serving index opened"
        );
        let ids = |sql: &'static str| {
            let sess = &sess;
            async move {
                let mut out = std::collections::HashSet::new();
                for b in sess.query(sql).await? {
                    let c = datafusion::arrow::compute::cast(
                        b.column(0),
                        &datafusion::arrow::datatypes::DataType::Int64,
                    )?;
                    let c = c
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::Int64Array>()
                        .expect("int64");
                    out.extend(c.iter().flatten());
                }
                ApiResult::Ok(out)
            }
        };
        let stores = ids("SELECT store_id FROM stores").await?;
        let products = ids("SELECT product_id FROM products").await?;
        let mut store_opened = HashMap::new();
        for b in sess
            .query("SELECT store_id, CAST(open_date AS VARCHAR) AS d FROM stores WHERE open_date IS NOT NULL")
            .await?
        {
            use datafusion::arrow::array::{Array, Int64Array, StringArray};
            use datafusion::arrow::datatypes::DataType;
            let id = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)?;
            let d = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)?;
            let (Some(id), Some(d)) = (
                id.as_any().downcast_ref::<Int64Array>(),
                d.as_any().downcast_ref::<StringArray>(),
            ) else {
                continue;
            };
            for i in 0..b.num_rows() {
                if id.is_null(i) || d.is_null(i) {
                    continue;
                }
                if let Ok(day) = chrono::NaiveDate::parse_from_str(d.value(i), "%Y-%m-%d") {
                    store_opened.insert(id.value(i), day);
                }
            }
        }
        // Erasures accepted whose warehouse part this snapshot may not carry yet.
        let erased = c360_core::privacy::pending_erased_ids(&self.0.meta.db).await?;
        let snap = Arc::new(Snapshot {
            erased: std::sync::RwLock::new(erased),
            sess,
            version,
            models,
            end_day,
            index,
            stores,
            products,
            store_opened,
            recs: tokio::sync::OnceCell::new(),
            service: tokio::sync::OnceCell::new(),
            sentiment: tokio::sync::OnceCell::new(),
            loaded,
            wh: wh.clone(),
            catalog: tokio::sync::OnceCell::new(),
            audiences: tokio::sync::Mutex::new(HashMap::new()),
        });
        *self.0.snap.write().await = Some(snap.clone());
        self.0.live.lock().await.clear();
        *self
            .0
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = LiveStats::default();
        self.replay_live_orders().await?;
        self.bump();
        Ok(true)
    }

    /// Takes an erased customer out of what this server serves at once: the snapshot's
    /// per-customer reads, their live re-score, every cached answer.
    pub async fn forget_customer(&self, id: i64) {
        if let Some(s) = self.0.snap.read().await.as_ref() {
            s.erased
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id);
            s.audiences.lock().await.clear();
        }
        self.0.live.lock().await.remove(&id);
        self.bump();
    }

    /// Invalidates every cached answer.
    pub fn bump(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A cached typed answer for `key` (which must include the caller's scope): `f` builds the
    /// `T` on a miss, and it is kept serialised.
    pub async fn answer<T, F, Fut>(&self, key: String, f: F) -> ApiResult<Answer<T>>
    where
        T: serde::Serialize,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ApiResult<T>>,
    {
        let v = self
            .cached(key, || async move {
                serde_json::to_value(f().await?).map_err(|e| ApiError::Internal(e.to_string()))
            })
            .await?;
        Ok(Answer(v, std::marker::PhantomData))
    }

    /// A cached JSON answer for `key` (which must include the caller's scope), computing it on a
    /// miss. Any change since it was cached makes it a miss.
    pub async fn cached<F, Fut>(&self, key: String, f: F) -> ApiResult<Arc<Value>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ApiResult<Value>>,
    {
        let gen = self.0.generation.load(Ordering::SeqCst);
        if let Some((g, v, _)) = self
            .0
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map
            .get(&key)
        {
            if *g == gen {
                self.0.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v.clone());
            }
        }
        self.0.cache_misses.fetch_add(1, Ordering::Relaxed);
        let v = Arc::new(f().await?);
        self.0
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(key, gen, v.clone(), CACHE_MAX, CACHE_BYTES);
        Ok(v)
    }

    pub fn live_stats(&self) -> LiveStats {
        self.0
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Tells subscribers that a new warehouse snapshot is being served.
pub async fn announce_snapshot(st: &AppState) -> ApiResult<()> {
    let s = st.snapshot().await?;
    let customers = s
        .sess
        .scalar_i64("SELECT COUNT(*) FROM customer_segmentation")
        .await?;
    let orders = s
        .sess
        .scalar_i64("SELECT COUNT(*) FROM fact_orders")
        .await?;
    st.hub()
        .publish(
            "etl",
            None,
            json!({"version": s.version, "customers": customers, "orders": orders}),
        )
        .await?;
    Ok(())
}

impl AppState {
    fn inner_live(&self) -> &tokio::sync::Mutex<HashMap<i64, c360_core::profile::LiveProfile>> {
        &self.inner().live
    }

    /// Ok when the snapshot holds the source entities a view needs (any one of `any_of`);
    /// else `not_in_sources` naming them.
    pub async fn needs(&self, view: &str, any_of: &[&str]) -> ApiResult<()> {
        let s = self.snapshot().await?;
        Ok(c360_core::sources::require_any(
            s.loaded.as_ref(),
            view,
            any_of,
        )?)
    }

    /// Every customer re-scored since the snapshot, with their live profile.
    pub async fn live_profiles(&self) -> Vec<(i64, LiveProfile)> {
        self.inner_live()
            .lock()
            .await
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// The customer's live profile: their re-score since the snapshot, if any.
    pub async fn live_profile(&self, id: i64) -> Option<LiveProfile> {
        self.inner_live().lock().await.get(&id).cloned()
    }

    /// The live re-score of a customer (None unless an order arrived since the snapshot).
    pub async fn live_view(&self, id: i64) -> Option<LiveView> {
        let s = self.snapshot().await.ok()?;
        let live = self.inner_live().lock().await;
        live.get(&id).map(|lp| LiveView::of(&s, lp))
    }

    /// Re-applies the orders received since the snapshot (after a restart or a new snapshot),
    /// without publishing them again.
    /// Re-applies the live orders after the snapshot. A row that cannot be applied (written
    /// before today's bounds, naming a store the snapshot lacks, or failing to apply) is moved
    /// to `live_quarantine` with its reason, so one poisoned row cannot stop the server from
    /// starting. Returns how many were applied.
    pub async fn replay_live_orders(&self) -> ApiResult<usize> {
        let s = self.snapshot().await?;
        let rows = self
            .inner()
            .meta
            .fetch(
                "SELECT order_no, customer_id, store_id, order_time, day, total_fen, items, received_at, received_by FROM live_orders WHERE day >= ? ORDER BY order_time, order_no",
                &[s.end_day.into()],
            )
            .await?;
        let (first, last) = (
            c360_model::Day::of(c360_core::query::FIRST_DAY).0,
            c360_model::Day::of(c360_core::query::LAST_DAY).0,
        );
        let mut applied = 0;
        let mut poisoned: Vec<(String, Value, String)> = Vec::new();
        for r in &rows {
            let order_no = get_text(r, "order_no").unwrap_or_default();
            let checked = (|| {
                let store = get_i64(r, "store_id").ok_or("store_id: missing".to_string())?;
                if !s.stores.contains(&store) {
                    return Err(format!("store_id: {store} is not a store of the snapshot"));
                }
                let total = get_i64(r, "total_fen").ok_or("total_fen: missing".to_string())?;
                if !(1..=MAX_ORDER_FEN).contains(&total) {
                    return Err(format!("total_fen: {total} is not in 1..={MAX_ORDER_FEN}"));
                }
                let day = get_i64(r, "day").ok_or("day: missing".to_string())?;
                if !(first..=last).contains(&day) {
                    return Err(format!("day: {day} is outside {first}..={last}"));
                }
                Ok((store, total, day))
            })();
            let why = match checked {
                Ok((store, total, day)) => {
                    match self
                        .apply_live_order(&s, get_i64(r, "customer_id"), store, day, total)
                        .await
                    {
                        Ok(_) => {
                            applied += 1;
                            continue;
                        }
                        Err(e) => format!("could not be applied: {e}"),
                    }
                }
                Err(why) => why,
            };
            let row = json!({
                "order_no": order_no, "customer_id": get_i64(r, "customer_id"),
                "store_id": get_i64(r, "store_id"), "order_time": get_text(r, "order_time"),
                "day": get_i64(r, "day"), "total_fen": get_i64(r, "total_fen"),
                "items": get_text(r, "items"), "received_at": get_text(r, "received_at"),
                "received_by": get_text(r, "received_by"),
            });
            poisoned.push((order_no, row, why));
        }
        if !poisoned.is_empty() {
            tracing::warn!(
                rows = poisoned.len(),
                "live orders that cannot be applied were moved to live_quarantine"
            );
            let meta = &self.inner().meta;
            let at = chrono::Utc::now().to_rfc3339();
            let mut tx = meta.begin().await?;
            for (order_no, row, why) in &poisoned {
                tx.execute(
                    "DELETE FROM live_quarantine WHERE kind = 'order' AND row_key = ?",
                    &[order_no.as_str().into()],
                )
                .await?;
                tx.execute(
                    "INSERT INTO live_quarantine (kind, row_key, row_json, reason, at) VALUES ('order', ?, ?, ?, ?)",
                    &[order_no.as_str().into(), row.to_string().into(), why.as_str().into(), at.as_str().into()],
                )
                .await?;
                tx.execute(
                    "DELETE FROM live_orders WHERE order_no = ?",
                    &[order_no.as_str().into()],
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(applied)
    }

    /// How many live rows sit in quarantine (reported by the health check).
    pub async fn live_quarantined(&self) -> ApiResult<i64> {
        Ok(self
            .inner()
            .meta
            .fetch("SELECT COUNT(*) AS n FROM live_quarantine", &[])
            .await?
            .first()
            .and_then(|r| get_i64(r, "n"))
            .unwrap_or(0))
    }

    /// Counts the order in the live stats and, for a known customer, re-scores them from the
    /// stored models (no refit). Returns the new live profile.
    pub async fn apply_live_order(
        &self,
        s: &Snapshot,
        customer: Option<i64>,
        store: i64,
        day: i64,
        total_fen: i64,
    ) -> ApiResult<Option<LiveView>> {
        let rescored = self.rescore(s, customer, day, total_fen).await?;
        let v = rescored.as_ref().map(|r| r.2.clone());
        self.count_live_order(store, total_fen, rescored).await;
        Ok(v)
    }

    /// The customer's profile with one more order, without keeping it: (customer, profile, what
    /// the API shows of it). None for an anonymous order or a customer with no paid order in the snapshot.
    pub async fn rescore(
        &self,
        s: &Snapshot,
        customer: Option<i64>,
        day: i64,
        total_fen: i64,
    ) -> ApiResult<Option<(i64, LiveProfile, LiveView)>> {
        let Some(c) = customer else { return Ok(None) };
        let known = self.inner_live().lock().await.get(&c).cloned();
        let before = match known {
            Some(p) => Some(p),
            None => s.live_base(c).await?,
        };
        let Some(before) = before else {
            // A customer with no paid order in the snapshot: nothing to re-score from yet.
            return Ok(None);
        };
        let after = c360_core::profile::apply_order(&before, day, total_fen as f64);
        let v = LiveView::of(s, &after);
        Ok(Some((c, after, v)))
    }

    /// Counts a stored order in the live counters and keeps its re-score (once it is durable).
    /// Orders are counted one at a time under the hub's write lock, so a re-score is never
    /// computed from a profile another order is about to replace.
    pub async fn count_live_order(
        &self,
        store: i64,
        total_fen: i64,
        rescored: Option<(i64, LiveProfile, LiveView)>,
    ) {
        {
            let mut st = self
                .inner()
                .stats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            st.orders = st.orders.saturating_add(1);
            st.revenue_fen = st.revenue_fen.saturating_add(total_fen);
            let e = st.by_store.entry(store).or_default();
            e.0 = e.0.saturating_add(1);
            e.1 = e.1.saturating_add(total_fen);
        }
        if let Some((c, after, _)) = rescored {
            self.inner_live().lock().await.insert(c, after);
        }
    }

    /// Orders received live for one customer (newest first).
    pub async fn live_orders_of(&self, id: i64) -> ApiResult<Vec<LiveOrderRow>> {
        let s = self.snapshot().await?;
        let rows = self
            .inner()
            .meta
            .fetch(
                "SELECT order_no, store_id, order_time, total_fen FROM live_orders WHERE customer_id = ? AND day >= ? ORDER BY order_time DESC",
                &[id.into(), s.end_day.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LiveOrderRow {
                order_no: c360_db::get_text(r, "order_no").unwrap_or_default(),
                store_id: get_i64(r, "store_id").unwrap_or_default(),
                order_time: c360_db::get_text(r, "order_time").unwrap_or_default(),
                total_fen: get_i64(r, "total_fen").unwrap_or_default(),
            })
            .collect())
    }
}

/// An order received live (since the snapshot), as a customer's timeline lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LiveOrderRow {
    pub order_no: String,
    pub store_id: i64,
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub order_time: String,
    pub total_fen: i64,
}

/// A customer's live re-score: their figures with the orders received since the snapshot, and
/// the scores the stored models give them (no refit).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LiveView {
    pub home_store_id: Option<i64>,
    pub orders: f64,
    pub spend_fen: f64,
    pub recency_days: f64,
    /// The day number (days since 1970-01-01) the figures are as of.
    pub as_of_day: i64,
    /// None when the snapshot has no fitted models.
    pub score: Option<c360_core::profile::LiveScore>,
}

impl LiveView {
    pub(crate) fn of(s: &Snapshot, p: &LiveProfile) -> LiveView {
        LiveView {
            home_store_id: p.features.home_store_id,
            orders: p.features.orders,
            spend_fen: p.features.spend,
            recency_days: p.features.recency,
            as_of_day: p.as_of,
            score: s.models.as_ref().map(|m| m.score(p)),
        }
    }
}

/// One token of `limiter` for the caller's key, or 429 with the whole seconds to wait.
fn take(limiter: &auth::RateLimiter, p: &Principal, what: &'static str) -> ApiResult<()> {
    limiter
        .admit(&p.key_hash, std::time::Instant::now())
        .map_err(|wait| ApiError::TooManyRequests {
            what,
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The key of `Authorization: Bearer KEY`, the only place a key is read from.
fn key_of(parts: &Parts) -> Option<String> {
    let v = parts.headers.get("authorization")?.to_str().ok()?;
    let k = v.strip_prefix("Bearer ")?.trim();
    (!k.is_empty()).then(|| k.to_string())
}

/// The `ticket` query parameter of a WebSocket upgrade.
fn ticket_of(parts: &Parts) -> Option<String> {
    parts.uri.query()?.split('&').find_map(|kv| {
        kv.strip_prefix("ticket=")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The authorization gate checked the key already and left the caller here.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        if parts.uri.path() == "/ws" {
            // Browsers cannot set headers on a WebSocket: it presents a ticket instead.
            if let Some(t) = ticket_of(parts) {
                return state.redeem_ticket(&t).await.ok_or(ApiError::Unauthorized);
            }
        }
        let key = key_of(parts).ok_or(ApiError::Unauthorized)?;
        state.principal(&key).await.ok_or(ApiError::Unauthorized)
    }
}

/// A handler's answer: a `T` serialised once, shared from the cache (its schema is `T`'s).
pub struct Answer<T>(Arc<Value>, std::marker::PhantomData<T>);

impl<T> axum::response::IntoResponse for Answer<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(&*self.0).into_response()
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn measured(c: &Cache) -> usize {
        c.map
            .iter()
            .map(|(k, (_, v, _))| serde_json::to_vec(&**v).unwrap().len() + k.len())
            .sum()
    }

    #[test]
    fn the_answer_cache_never_holds_more_than_its_bounds() {
        let mut c = Cache::default();
        let (entries, bytes) = (50, 16 << 10);
        for i in 0..2_000usize {
            // Answers of every size from a few bytes to past the single-answer cap.
            let v = Arc::new(json!({ "pad": "x".repeat((i * 37) % 1_400) }));
            c.put(format!("k{}", i % 300), 1, v, entries, bytes);
            assert!(c.bytes <= bytes, "{} bytes held", c.bytes);
            assert!(c.map.len() <= entries);
            assert_eq!(c.bytes, measured(&c), "the count is of what is held");
        }
        // One answer over a sixteenth of the bound is served, never kept.
        let big = Arc::new(json!({ "pad": "x".repeat(bytes / 16) }));
        c.put("big".into(), 1, big, entries, bytes);
        assert!(!c.map.contains_key("big"));
        // A replaced key is counted once.
        let mut c = Cache::default();
        for _ in 0..10 {
            c.put("same".into(), 1, Arc::new(json!([1, 2, 3])), entries, bytes);
        }
        assert_eq!(c.map.len(), 1);
        assert_eq!(c.bytes, measured(&c));
    }
}
