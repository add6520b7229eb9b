//! The per-snapshot serving index: what a profile page reads, computed once per warehouse
//! version and kept on disk, so a server's memory does not grow with the number of customers.
//!
//! For each per-customer view ([`VIEWS`]) the index holds, under `_serving/v<version>/` in the
//! warehouse:
//! - `<view>.parquet`, the view's rows sorted by customer (zstd, page statistics): the session
//!   scans it in place of recomputing the view, for lists, audiences and campaigns;
//! - `<view>.pix`, the same rows keyed by customer for point lookups: each customer's rows as
//!   one JSON array, followed by the sorted customer ids and their byte offsets. It is read
//!   through a memory map, so a lookup is one binary search and one slice, and only the pages
//!   a lookup touches are resident.
//!
//! and `live.bin`, every customer's state for a live re-score ([`crate::profile::LiveProfile`])
//! as fixed-width records sorted by customer id, also memory-mapped.
//!
//! The ETL builds the index right after it commits a version; a server that finds none (an
//! older warehouse, or an ETL killed before it) builds it itself. A build writes into a fresh
//! temporary directory, fsyncs every file and renames the directory into place, so a reader
//! sees a whole index or none; two builders racing for one version both finish and one rename
//! wins. The warehouse's garbage collection removes the index of a version it removes.
//!
//! This is not a query engine: anything but "this customer's rows of this view" goes through
//! the session.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use c360_warehouse::{Session, Warehouse, SERVING_DIR};
use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;
use serde_json::Value;

use crate::profile::{Features, LiveProfile};
use crate::{CoreError, CoreResult};

/// The per-customer views a profile page reads.
pub const VIEWS: [&str; 6] = [
    "v_customer_360",
    "v_customer_geo",
    "v_customer_channel",
    "v_customer_products",
    "v_customer_time",
    "v_customer_holiday",
];

const MAGIC: &[u8; 8] = b"C360PIX1";
const TRAILER: usize = 32;
const LIVE_MAGIC: &[u8; 8] = b"C360LIV1";
/// Words (8 bytes) of one live record.
const LIVE_WORDS: usize = 19;
const LIVE_FILE: &str = "live.bin";

/// The keyed file of every customer's orders, newest first, each with its store name, its
/// items as text and its local day number (`day`), for a timeline read without scanning the
/// fact tables.
pub const ORDERS: &str = "customer_orders";
const ORDERS_SQL: &str = "SELECT o.customer_id, o.order_id, o.order_no, o.order_time, o.store_id, \
     st.name AS store_name, o.channel, o.status, o.total_fen, o.discount_fen, o.daypart, o.holiday, \
     it.items, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT) AS day \
     FROM orders o LEFT JOIN stores st ON o.store_id = st.store_id \
     LEFT JOIN (SELECT i.order_id, string_agg(pr.name || '×' || CAST(i.qty AS VARCHAR), '、') AS items \
                FROM order_items i JOIN products pr ON i.product_id = pr.product_id GROUP BY i.order_id) it \
       ON it.order_id = o.order_id \
     WHERE o.customer_id IS NOT NULL ORDER BY o.customer_id, o.order_time DESC, o.order_id";

fn io(p: &Path) -> impl Fn(std::io::Error) -> CoreError + '_ {
    move |e| CoreError::Internal(format!("{}: {e}", p.display()))
}

/// The index directory of one warehouse version.
pub fn dir_of(wh: &Warehouse, version: u64) -> PathBuf {
    wh.root.join(SERVING_DIR).join(format!("v{version:08}"))
}

/// One view's rows keyed by customer, read through a memory map.
pub struct KeyedRows {
    map: memmap2::Mmap,
    n: usize,
    ids_at: usize,
    offs_at: usize,
}

impl KeyedRows {
    /// Opens a `.pix` file, checking its trailer and that its sections fit in the file.
    pub fn open(path: &Path) -> CoreResult<KeyedRows> {
        let f = File::open(path).map_err(io(path))?;
        // SAFETY: index files are written once into a temporary directory and renamed into
        // place; nothing writes to them afterwards (a rebuild writes a new directory), so the
        // mapped bytes do not change under the reader.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io(path))?;
        let bad = |why: &str| CoreError::Internal(format!("{}: {why}", path.display()));
        let len = map.len();
        if len < TRAILER || &map[len - TRAILER..len - 24] != MAGIC {
            return Err(bad("not a serving index (no trailer)"));
        }
        let word = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let (n, ids_at, offs_at) = (
            word(len - 24) as usize,
            word(len - 16) as usize,
            word(len - 8) as usize,
        );
        let fits = n
            .checked_mul(8)
            .and_then(|b| ids_at.checked_add(b))
            .is_some_and(|end| end == offs_at)
            && (n + 1)
                .checked_mul(8)
                .and_then(|b| offs_at.checked_add(b))
                .is_some_and(|end| end == len - TRAILER);
        if !fits {
            return Err(bad("sections do not fit the file"));
        }
        let k = KeyedRows {
            map,
            n,
            ids_at,
            offs_at,
        };
        if k.offset(n) as usize != ids_at {
            return Err(bad("row data does not end where the ids start"));
        }
        Ok(k)
    }

    fn id(&self, i: usize) -> i64 {
        let at = self.ids_at + 8 * i;
        i64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes"))
    }

    fn offset(&self, i: usize) -> u64 {
        let at = self.offs_at + 8 * i;
        u64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes"))
    }

    fn find(&self, id: i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id(mid).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Number of customers with rows.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn contains(&self, id: i64) -> bool {
        self.find(id).is_some()
    }

    /// The customer's rows as the JSON array text the build wrote (None: no rows).
    pub fn raw(&self, id: i64) -> Option<&[u8]> {
        let i = self.find(id)?;
        let (a, b) = (self.offset(i) as usize, self.offset(i + 1) as usize);
        self.map.get(a..b)
    }

    /// The customer's rows as JSON objects (empty: no rows).
    pub fn rows(&self, id: i64) -> CoreResult<Vec<Value>> {
        match self.raw(id) {
            None => Ok(Vec::new()),
            Some(b) => Ok(serde_json::from_slice(b)?),
        }
    }
}

/// The serving index of one snapshot.
pub struct ServingIndex {
    pub dir: PathBuf,
    views: Vec<(&'static str, KeyedRows)>,
    orders: KeyedRows,
    live: LiveRecords,
}

impl ServingIndex {
    /// Opens the index in `dir` (every view's `.pix`; the Parquet files are opened by
    /// [`ServingIndex::register`]).
    pub fn open(dir: &Path) -> CoreResult<ServingIndex> {
        let mut views = Vec::with_capacity(VIEWS.len());
        for v in VIEWS {
            views.push((v, KeyedRows::open(&dir.join(format!("{v}.pix")))?));
            let pq = dir.join(format!("{v}.parquet"));
            if !pq.is_file() {
                return Err(CoreError::Internal(format!("{} is missing", pq.display())));
            }
        }
        Ok(ServingIndex {
            dir: dir.to_path_buf(),
            views,
            orders: KeyedRows::open(&dir.join(format!("{ORDERS}.pix")))?,
            live: LiveRecords::open(&dir.join(LIVE_FILE))?,
        })
    }

    /// One view's keyed rows (an unknown view is a bug in the caller).
    pub fn view(&self, view: &str) -> CoreResult<&KeyedRows> {
        self.views
            .iter()
            .find(|(v, _)| *v == view)
            .map(|(_, k)| k)
            .ok_or_else(|| CoreError::Internal(format!("{view} is not in the serving index")))
    }

    /// A customer's rows of one of [`VIEWS`].
    pub fn rows(&self, view: &str, customer_id: i64) -> CoreResult<Vec<Value>> {
        self.view(view)?.rows(customer_id)
    }

    /// A customer's orders in this snapshot, newest first (see [`ORDERS`]).
    pub fn orders(&self, customer_id: i64) -> CoreResult<Vec<Value>> {
        self.orders.rows(customer_id)
    }

    /// One customer's live re-score state as this snapshot left it (None: no paid order).
    pub fn live(&self, customer_id: i64) -> Option<LiveProfile> {
        self.live.get(customer_id)
    }

    /// Customers with a live re-score state.
    pub fn live_len(&self) -> usize {
        self.live.n
    }

    /// Bytes of the index files (mapped, not resident: the kernel pages them in on demand).
    pub fn mapped_bytes(&self) -> usize {
        self.views.iter().map(|(_, k)| k.map.len()).sum::<usize>()
            + self.orders.map.len()
            + self.live.map.len()
    }

    /// Makes the session read each view from its sorted Parquet file instead of recomputing it.
    pub async fn register(&self, sess: &Session) -> CoreResult<()> {
        for v in VIEWS {
            let path = self.dir.join(format!("{v}.parquet"));
            sess.ctx.deregister_table(v)?;
            sess.ctx
                .register_parquet(
                    v,
                    path.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Opens the index of the session's version, building it first if there is none (or the one
/// on disk does not open), and makes the session read the views from it.
pub async fn open_or_build(wh: &Warehouse, sess: &Session) -> CoreResult<Arc<ServingIndex>> {
    let dir = dir_of(wh, sess.manifest.version);
    let idx = match ServingIndex::open(&dir) {
        Ok(i) => i,
        Err(e) => {
            if dir.exists() {
                tracing::warn!(error = %e, "the serving index does not open; rebuilding it");
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            build(wh, sess).await?;
            ServingIndex::open(&dir)?
        }
    };
    idx.register(sess).await?;
    Ok(Arc::new(idx))
}

/// Builds the index of the session's version unless it exists. Returns its directory.
pub async fn build(wh: &Warehouse, sess: &Session) -> CoreResult<PathBuf> {
    let version = sess.manifest.version;
    let fin = dir_of(wh, version);
    if fin.exists() {
        return Ok(fin);
    }
    let parent = wh.root.join(SERVING_DIR);
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = parent.join(format!(".v{version:08}.{}.{nonce}.tmp", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let started = std::time::Instant::now();
    let built = async {
        let mut customers = 0;
        for v in VIEWS {
            let sql = format!("SELECT * FROM {v} ORDER BY customer_id NULLS LAST");
            let n = build_keyed(sess, v, &sql, &tmp, true).await?;
            if v == VIEWS[0] {
                customers = n;
            }
        }
        build_keyed(sess, ORDERS, ORDERS_SQL, &tmp, false).await?;
        let bases = crate::profile::live_profiles(sess).await?;
        write_live(&tmp.join(LIVE_FILE), bases.as_slice())?;
        File::open(&tmp)
            .and_then(|d| d.sync_all())
            .map_err(io(&tmp))?;
        CoreResult::Ok(customers)
    }
    .await;
    let customers = match built {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, &fin) {
        let _ = fs::remove_dir_all(&tmp);
        // Another builder renamed its index into place first: that one serves.
        if !fin.exists() {
            return Err(io(&fin)(e));
        }
    }
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(io(&parent))?;
    tracing::info!(
        version,
        customers,
        ms = started.elapsed().as_millis() as u64,
        "serving index built"
    );
    Ok(fin)
}

/// Writes the rows of `sql` (sorted by customer) as `<view>.pix` in `dir`, and as
/// `<view>.parquet` when `parquet`, streaming: one record batch and one customer's rows in
/// hand. Returns how many customers have rows.
async fn build_keyed(
    sess: &Session,
    view: &str,
    sql: &str,
    dir: &Path,
    parquet: bool,
) -> CoreResult<usize> {
    let df = sess.ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await?;
    let pq_path = dir.join(format!("{view}.parquet"));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| CoreError::Internal(e.to_string()))?,
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let mut pq = if parquet {
        Some(
            ArrowWriter::try_new(
                File::create(&pq_path).map_err(io(&pq_path))?,
                schema,
                Some(props),
            )
            .map_err(|e| CoreError::Internal(e.to_string()))?,
        )
    } else {
        None
    };
    let pix_path = dir.join(format!("{view}.pix"));
    let mut pix =
        BufWriter::with_capacity(1 << 20, File::create(&pix_path).map_err(io(&pix_path))?);
    let mut ids: Vec<i64> = Vec::new();
    let mut offs: Vec<u64> = vec![0];
    let mut at = 0u64;
    let mut cur: Option<i64> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut flush = |cur: i64, buf: &mut Vec<u8>, pix: &mut BufWriter<File>| -> CoreResult<()> {
        buf.push(b']');
        pix.write_all(buf).map_err(io(&pix_path))?;
        at += buf.len() as u64;
        ids.push(cur);
        offs.push(at);
        buf.clear();
        Ok(())
    };
    while let Some(b) = stream.next().await {
        let b = b?;
        if let Some(pq) = pq.as_mut() {
            pq.write(&b)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
        }
        let idc = b
            .column_by_name("customer_id")
            .ok_or_else(|| CoreError::Internal(format!("{view} has no customer_id")))?;
        let idc = datafusion::arrow::compute::cast(idc, &DataType::Int64)?;
        let idc = idc
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64 gives an Int64Array");
        let rows = crate::json::rows(std::slice::from_ref(&b))?;
        for (i, row) in rows.iter().enumerate() {
            if idc.is_null(i) {
                continue;
            }
            let id = idc.value(i);
            match cur {
                Some(c) if c == id => buf.push(b','),
                Some(c) => {
                    if id < c {
                        return Err(CoreError::Internal(format!(
                            "{view}: customer {id} after {c}: the sort did not hold"
                        )));
                    }
                    flush(c, &mut buf, &mut pix)?;
                    buf.push(b'[');
                }
                None => buf.push(b'['),
            }
            cur = Some(id);
            serde_json::to_writer(&mut buf, row)?;
        }
    }
    if let Some(c) = cur {
        flush(c, &mut buf, &mut pix)?;
    }
    if let Some(pq) = pq {
        let file = pq
            .into_inner()
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        file.sync_all().map_err(io(&pq_path))?;
    }
    let n = ids.len();
    let ids_at = at;
    for id in &ids {
        pix.write_all(&id.to_le_bytes()).map_err(io(&pix_path))?;
    }
    let offs_at = ids_at + 8 * n as u64;
    for o in &offs {
        pix.write_all(&o.to_le_bytes()).map_err(io(&pix_path))?;
    }
    pix.write_all(MAGIC).map_err(io(&pix_path))?;
    for w in [n as u64, ids_at, offs_at] {
        pix.write_all(&w.to_le_bytes()).map_err(io(&pix_path))?;
    }
    let file = pix
        .into_inner()
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    file.sync_all().map_err(io(&pix_path))?;
    Ok(n)
}

/// Every customer's live re-score state, fixed-width little-endian records sorted by customer
/// id, read through a memory map.
struct LiveRecords {
    map: memmap2::Mmap,
    n: usize,
}

impl LiveRecords {
    fn open(path: &Path) -> CoreResult<LiveRecords> {
        let f = File::open(path).map_err(io(path))?;
        // SAFETY: as for `KeyedRows::open`, the file never changes once renamed into place.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io(path))?;
        let len = map.len();
        let bad = |why: &str| CoreError::Internal(format!("{}: {why}", path.display()));
        if len < 16 || &map[len - 16..len - 8] != LIVE_MAGIC {
            return Err(bad("not a live state file (no trailer)"));
        }
        let n = u64::from_le_bytes(map[len - 8..].try_into().expect("8 bytes")) as usize;
        if n.checked_mul(LIVE_WORDS * 8) != Some(len - 16) {
            return Err(bad("records do not fit the file"));
        }
        Ok(LiveRecords { map, n })
    }

    fn word(&self, i: usize, w: usize) -> [u8; 8] {
        let at = (i * LIVE_WORDS + w) * 8;
        self.map[at..at + 8].try_into().expect("8 bytes")
    }

    fn get(&self, id: i64) -> Option<LiveProfile> {
        let (mut lo, mut hi) = (0usize, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match i64::from_le_bytes(self.word(mid, 0)).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let at = mid * LIVE_WORDS * 8;
                    return Some(decode_live(&self.map[at..at + LIVE_WORDS * 8]));
                }
            }
        }
        None
    }
}

/// None as the bit pattern no value written here has.
const NONE_I64: i64 = i64::MIN;

fn encode_live(p: &LiveProfile, out: &mut Vec<u8>) {
    let f = &p.features;
    let opt_f = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
    let words: [u64; LIVE_WORDS] = [
        f.customer_id as u64,
        f.recency.to_bits(),
        f.tenure.to_bits(),
        f.orders.to_bits(),
        f.spend.to_bits(),
        f.orders_90.to_bits(),
        f.orders_prev_90.to_bits(),
        f.spend_365.to_bits(),
        f.wx_share.to_bits(),
        f.stores.to_bits(),
        f.refunds.to_bits(),
        opt_f(f.last_gap),
        f.city_id.unwrap_or(NONE_I64) as u64,
        f.home_store_id.unwrap_or(NONE_I64) as u64,
        p.summary.x.to_bits(),
        p.summary.t_x.to_bits(),
        p.summary.t.to_bits(),
        p.mean_value_fen.to_bits(),
        p.as_of as u64,
    ];
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

fn decode_live(b: &[u8]) -> LiveProfile {
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let f = |i: usize| f64::from_bits(w(i));
    // u64::MAX is a NaN no computation here produces: the mark of None.
    let opt_f = |i: usize| (w(i) != u64::MAX).then(|| f(i));
    let opt_i = |i: usize| Some(w(i) as i64).filter(|v| *v != NONE_I64);
    LiveProfile {
        features: Features {
            customer_id: w(0) as i64,
            recency: f(1),
            tenure: f(2),
            orders: f(3),
            spend: f(4),
            orders_90: f(5),
            orders_prev_90: f(6),
            spend_365: f(7),
            wx_share: f(8),
            stores: f(9),
            refunds: f(10),
            last_gap: opt_f(11),
            city_id: opt_i(12),
            home_store_id: opt_i(13),
        },
        summary: c360_analytics::clv::Summary {
            x: f(14),
            t_x: f(15),
            t: f(16),
        },
        mean_value_fen: f(17),
        as_of: w(18) as i64,
    }
}

/// Writes the live states (sorted by customer id, as [`crate::profile::live_profiles`] gives
/// them) and fsyncs the file.
fn write_live(path: &Path, bases: &[LiveProfile]) -> CoreResult<()> {
    if bases
        .windows(2)
        .any(|w| w[0].features.customer_id >= w[1].features.customer_id)
    {
        return Err(CoreError::Internal(
            "live states are not sorted by customer".into(),
        ));
    }
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io(path))?);
    let mut rec = Vec::with_capacity(LIVE_WORDS * 8);
    for p in bases {
        rec.clear();
        encode_live(p, &mut rec);
        w.write_all(&rec).map_err(io(path))?;
    }
    w.write_all(LIVE_MAGIC).map_err(io(path))?;
    w.write_all(&(bases.len() as u64).to_le_bytes())
        .map_err(io(path))?;
    let f = w
        .into_inner()
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn profile(id: i64, some: bool) -> LiveProfile {
        LiveProfile {
            features: Features {
                customer_id: id,
                recency: 3.5,
                tenure: 400.0,
                orders: 7.0,
                spend: 12345.0,
                orders_90: 2.0,
                orders_prev_90: 1.0,
                spend_365: 9000.25,
                wx_share: 0.5,
                stores: 2.0,
                refunds: 0.0,
                last_gap: some.then_some(-0.0),
                city_id: some.then_some(-4),
                home_store_id: some.then_some(0),
            },
            summary: c360_analytics::clv::Summary {
                x: 6.0,
                t_x: 300.0,
                t: 399.0,
            },
            mean_value_fen: 1763.571,
            as_of: 20_400,
        }
    }

    #[test]
    fn live_states_read_back_exactly_and_only_for_their_customers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LIVE_FILE);
        let bases: Vec<LiveProfile> = (0..1000)
            .map(|i| profile(i * 3 - 700, i % 2 == 0))
            .collect();
        write_live(&path, &bases).unwrap();
        let r = LiveRecords::open(&path).unwrap();
        assert_eq!(r.n, 1000);
        for p in &bases {
            let got = r.get(p.features.customer_id).unwrap();
            assert_eq!(format!("{got:?}"), format!("{p:?}"));
        }
        assert!(r.get(-701).is_none() && r.get(3).is_none() && r.get(i64::MAX).is_none());
        // Unsorted input is refused; a cut file does not open.
        let mut unsorted = bases.clone();
        unsorted.swap(3, 4);
        assert!(write_live(&dir.path().join("u.bin"), &unsorted).is_err());
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 8)
            .unwrap();
        assert!(LiveRecords::open(&path).is_err());
    }
}
