//! The per-snapshot serving index: what a profile page reads, computed once per warehouse
//! version and kept on disk, so a server's memory does not grow with the number of customers.
//!
//! For each per-customer view ([`VIEWS`]) the index holds, under `_serving/v<version>/` in the
//! warehouse:
//! - `<view>.parquet`, the view's rows sorted by customer (zstd, page statistics): the session
//!   scans it in place of recomputing the view, for lists, audiences and campaigns;
//! - `<view>.pix`, the same rows keyed by customer for point lookups: each customer's rows as
//!   one JSON array of value arrays, followed by the sorted customer ids, their byte offsets
//!   and the column names (stored once, not per row). A reader
//!   holds every 128th id; a lookup is a search in that sample and three positioned reads
//!   (a block of ids, two offsets, the rows), so a server's memory does not grow with the
//!   index and the kernel's page cache keeps what is hot;
//!
//! the same keyed files of every customer's orders, page events and reviews (a customer's
//! timeline, behaviour and emotion read without scanning the fact tables), and `live.bin`,
//! every customer's state for a live re-score ([`crate::profile::LiveProfile`]) as fixed-width
//! records sorted by customer id, read the same way.
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
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;
use serde_json::Value;

use crate::profile::{Features, LiveProfile};
use crate::query::ScalarValue;
use crate::slice::{slices, Slice, SLICE_CUSTOMERS};
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

const MAGIC: &[u8; 8] = b"C360PIX2";
/// Magic, row count, and where the ids, offsets and column names start.
const TRAILER: usize = 40;
const LIVE_MAGIC: &[u8; 8] = b"C360LIV1";
/// Words (8 bytes) of one live record.
const LIVE_WORDS: usize = 19;
const LIVE_FILE: &str = "live.bin";

/// The keyed file of every customer's orders, newest first, each with its store name, its
/// items as text and its local day number (`day`): a timeline, and the order half of a
/// customer's behaviour, are read without scanning the fact tables.
pub const ORDERS: &str = "customer_orders";
/// The keyed files of every customer's page events and reviews, newest first. `{w}` is the
/// build's slice of customers (a predicate on `customer_id` with its bounds bound as `$1` and
/// `$2`, see [`Slice`]).
const EVENTS_SQL: &str =
    "SELECT * FROM customer_behavior_tracks WHERE customer_id IS NOT NULL AND {w}";
const REVIEWS_SQL: &str = "SELECT * FROM customer_emotion WHERE customer_id IS NOT NULL AND {w}";
/// One keyed fact file of the index.
struct Fact {
    /// The file's name.
    file: &'static str,
    /// The warehouse view its rows stand in for in a customer's slice
    /// ([`ServingIndex::customer_facts`]).
    view: &'static str,
    /// The stored table under the view (its row count sizes the file's slices).
    table: &'static str,
    /// The query of its rows (`{w}`: the slice) and their order.
    sql: &'static str,
    order: &'static str,
}

const FACTS: [Fact; 3] = [
    Fact {
        file: ORDERS,
        view: "orders",
        table: "fact_orders",
        sql: ORDERS_SQL,
        order: "customer_id, order_time DESC, order_id",
    },
    Fact {
        file: "customer_events",
        view: "customer_behavior_tracks",
        table: "customer_behavior_tracks_raw",
        sql: EVENTS_SQL,
        order: "customer_id, event_time DESC, track_id",
    },
    Fact {
        file: "customer_reviews",
        view: "customer_emotion",
        table: "customer_emotion_raw",
        sql: REVIEWS_SQL,
        order: "customer_id, created_at DESC, emotion_id",
    },
];
/// Fact rows one slice of a keyed fact file holds, per customer of a view's slice: a fact file
/// is cut finer than the views when customers have many rows (23M page events over 2M
/// customers: 12 slices of events where the views take 4). Its rows are sorted in memory.
const FACT_ROWS_PER_CUSTOMER: u64 = 4;
/// A slice's items are aggregated from its own orders only (`o2`), so the per-order item
/// texts a slice holds grow with the slice, not with the whole chain.
const ORDERS_SQL: &str = "SELECT o.customer_id, o.order_id, o.order_no, o.order_time, o.store_id, \
     st.name AS store_name, o.channel, o.status, o.total_fen, o.discount_fen, o.daypart, o.holiday, \
     it.items, it.product_ids, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT) AS day \
     FROM orders o LEFT JOIN stores st ON o.store_id = st.store_id \
     LEFT JOIN (SELECT i.order_id, \
                  string_agg(pr.name || '×' || CAST(i.qty AS VARCHAR), '、') AS items, \
                  string_agg(CAST(i.product_id AS VARCHAR), ',') AS product_ids \
                FROM order_items i JOIN products pr ON i.product_id = pr.product_id \
                JOIN (SELECT order_id FROM orders WHERE customer_id IS NOT NULL AND {w}) o2 \
                  ON i.order_id = o2.order_id \
                GROUP BY i.order_id) it \
       ON it.order_id = o.order_id \
     WHERE o.customer_id IS NOT NULL AND {w}";

fn io(p: &Path) -> impl Fn(std::io::Error) -> CoreError + '_ {
    move |e| CoreError::Internal(format!("{}: {e}", p.display()))
}

/// The index directory of one warehouse version.
pub fn dir_of(wh: &Warehouse, version: u64) -> PathBuf {
    wh.root.join(SERVING_DIR).join(format!("v{version:08}"))
}

/// Ids per block of the sparse in-memory sample a lookup starts from.
const BLOCK: usize = 128;

/// Reads `len` bytes at `at` (positioned: no shared cursor, so lookups run concurrently).
fn read_at(f: &File, path: &Path, at: u64, len: usize) -> CoreResult<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, at).map_err(io(path))?;
    Ok(buf)
}

fn words(b: &[u8]) -> impl Iterator<Item = u64> + '_ {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
}

/// `n` strictly increasing ids in a file, the i-th in the first 8 bytes of the `stride` bytes
/// at `at + i * stride` (an id array, or records that start with their id). Memory holds every
/// [`BLOCK`]-th id; a lookup reads the one block that can hold the id.
struct SparseIds {
    at: u64,
    stride: usize,
    n: usize,
    /// Every BLOCK-th id, in order.
    sample: Vec<i64>,
}

/// Where a lookup found its id: the id's index, and the block read (`j`-th element holds it).
struct Found {
    index: usize,
    block: Vec<u8>,
    j: usize,
}

impl SparseIds {
    /// Reads every id once, in order: takes the sample and checks the order.
    fn scan(file: &File, path: &Path, at: u64, stride: usize, n: usize) -> CoreResult<SparseIds> {
        let mut sample = Vec::with_capacity(n / BLOCK + 1);
        let mut prev = i64::MIN;
        let chunk = ((1 << 20) / stride).max(1);
        let mut i = 0;
        while i < n {
            let m = chunk.min(n - i);
            let b = read_at(file, path, at + (i * stride) as u64, m * stride)?;
            for (j, e) in b.chunks_exact(stride).enumerate() {
                let id = i64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
                if i + j > 0 && id <= prev {
                    return Err(CoreError::Internal(format!(
                        "{}: ids are not strictly increasing",
                        path.display()
                    )));
                }
                if (i + j) % BLOCK == 0 {
                    sample.push(id);
                }
                prev = id;
            }
            i += m;
        }
        Ok(SparseIds {
            at,
            stride,
            n,
            sample,
        })
    }

    fn find(&self, file: &File, path: &Path, id: i64) -> CoreResult<Option<Found>> {
        let b = self.sample.partition_point(|s| *s <= id);
        if b == 0 {
            return Ok(None);
        }
        let start = (b - 1) * BLOCK;
        let m = BLOCK.min(self.n - start);
        let block = read_at(
            file,
            path,
            self.at + (start * self.stride) as u64,
            m * self.stride,
        )?;
        let ids: Vec<i64> = block
            .chunks_exact(self.stride)
            .map(|e| i64::from_le_bytes(e[..8].try_into().expect("8 bytes")))
            .collect();
        Ok(ids.binary_search(&id).ok().map(|j| Found {
            index: start + j,
            block,
            j,
        }))
    }
}

/// One view's rows keyed by customer. Memory holds every [`BLOCK`]-th id only; a lookup
/// reads one block of ids, two offsets and the rows with positioned reads, so what a server
/// holds does not grow with the index (the kernel's page cache keeps the hot parts).
pub struct KeyedRows {
    file: File,
    path: PathBuf,
    ids_at: u64,
    offs_at: u64,
    ids: SparseIds,
    /// The column names, once per file (each row is stored as an array of values).
    names: Vec<String>,
    bytes: u64,
}

impl KeyedRows {
    /// Opens a `.pix` file, checking its trailer, that its sections fit in the file and that
    /// its ids are strictly increasing.
    pub fn open(path: &Path) -> CoreResult<KeyedRows> {
        let file = File::open(path).map_err(io(path))?;
        let bad = |why: &str| CoreError::Internal(format!("{}: {why}", path.display()));
        let len = file.metadata().map_err(io(path))?.len();
        if len < TRAILER as u64 {
            return Err(bad("not a serving index (no trailer)"));
        }
        let t = read_at(&file, path, len - TRAILER as u64, TRAILER)?;
        if &t[..8] != MAGIC {
            return Err(bad("not a serving index (no trailer)"));
        }
        let w: Vec<u64> = words(&t[8..]).collect();
        let (n, ids_at, offs_at, names_at) = (w[0], w[1], w[2], w[3]);
        let end = len - TRAILER as u64;
        let fits = n
            .checked_mul(8)
            .and_then(|b| ids_at.checked_add(b))
            .is_some_and(|e| e == offs_at)
            && (n + 1)
                .checked_mul(8)
                .and_then(|b| offs_at.checked_add(b))
                .is_some_and(|e| e == names_at)
            && names_at <= end;
        if !fits {
            return Err(bad("sections do not fit the file"));
        }
        let names: Vec<String> =
            serde_json::from_slice(&read_at(&file, path, names_at, (end - names_at) as usize)?)
                .map_err(|e| bad(&format!("column names: {e}")))?;
        let n = n as usize;
        let ids = SparseIds::scan(&file, path, ids_at, 8, n)?;
        let last = read_at(&file, path, offs_at + 8 * n as u64, 8)?;
        if words(&last).next() != Some(ids_at) {
            return Err(bad("row data does not end where the ids start"));
        }
        Ok(KeyedRows {
            file,
            path: path.to_path_buf(),
            ids_at,
            offs_at,
            ids,
            names,
            bytes: len,
        })
    }

    fn find(&self, id: i64) -> CoreResult<Option<usize>> {
        Ok(self.ids.find(&self.file, &self.path, id)?.map(|f| f.index))
    }

    /// Number of customers with rows.
    pub fn len(&self) -> usize {
        self.ids.n
    }

    pub fn is_empty(&self) -> bool {
        self.ids.n == 0
    }

    pub fn contains(&self, id: i64) -> CoreResult<bool> {
        Ok(self.find(id)?.is_some())
    }

    /// The customer's rows as the JSON text the build wrote, an array of arrays of values in
    /// the file's column order (None: no rows).
    pub fn raw(&self, id: i64) -> CoreResult<Option<Vec<u8>>> {
        let Some(i) = self.find(id)? else {
            return Ok(None);
        };
        let o = read_at(&self.file, &self.path, self.offs_at + 8 * i as u64, 16)?;
        let o: Vec<u64> = words(&o).collect();
        if o[0] > o[1] || o[1] > self.ids_at {
            return Err(CoreError::Internal(format!(
                "{}: offsets of customer {id} are out of order",
                self.path.display()
            )));
        }
        Ok(Some(read_at(
            &self.file,
            &self.path,
            o[0],
            (o[1] - o[0]) as usize,
        )?))
    }

    /// The customer's rows as JSON objects (empty: no rows).
    pub fn rows(&self, id: i64) -> CoreResult<Vec<Value>> {
        let Some(b) = self.raw(id)? else {
            return Ok(Vec::new());
        };
        let rows: Vec<Vec<Value>> = serde_json::from_slice(&b)?;
        rows.into_iter()
            .map(|r| {
                if r.len() != self.names.len() {
                    return Err(CoreError::Internal(format!(
                        "{}: a row of customer {id} has {} values for {} columns",
                        self.path.display(),
                        r.len(),
                        self.names.len()
                    )));
                }
                Ok(Value::Object(self.names.iter().cloned().zip(r).collect()))
            })
            .collect()
    }
}

/// The serving index of one snapshot.
pub struct ServingIndex {
    pub dir: PathBuf,
    views: Vec<(&'static str, KeyedRows)>,
    /// The keyed fact files in [`FACTS`] order, with the Arrow schema of their rows (known once
    /// [`ServingIndex::register`] has planned their queries).
    facts: Vec<(KeyedRows, Option<SchemaRef>)>,
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
            facts: FACTS
                .iter()
                .map(|f| Ok((KeyedRows::open(&dir.join(format!("{}.pix", f.file)))?, None)))
                .collect::<CoreResult<_>>()?,
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
        self.facts[0].0.rows(customer_id)
    }

    /// A session over one customer's facts alone: each of `tables` (`orders`,
    /// `customer_behavior_tracks`, `customer_emotion`) registered as an in-memory table of
    /// this customer's rows from the index, with the warehouse view's columns (the orders
    /// table has the timeline's). The same SQL a warehouse session runs answers the same,
    /// without scanning the fact tables.
    pub fn customer_facts(&self, customer_id: i64, tables: &[&str]) -> CoreResult<Session> {
        use datafusion::arrow::json::ReaderBuilder;
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::datasource::MemTable;
        let ctx = datafusion::prelude::SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(1),
        );
        for t in tables {
            let i = FACTS
                .iter()
                .position(|f| f.view == *t)
                .ok_or_else(|| CoreError::Internal(format!("{t} is not a keyed fact")))?;
            let (rows, schema) = &self.facts[i];
            let schema = schema
                .clone()
                .ok_or_else(|| CoreError::Internal("the serving index is not registered".into()))?;
            let mut dec = ReaderBuilder::new(schema.clone()).build_decoder()?;
            dec.serialize(&rows.rows(customer_id)?)?;
            let batch = dec
                .flush()?
                .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
            ctx.register_table(*t, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
        }
        Ok(Session {
            ctx,
            manifest: Default::default(),
        })
    }

    /// One customer's live re-score state as this snapshot left it (None: no paid order).
    pub fn live(&self, customer_id: i64) -> CoreResult<Option<LiveProfile>> {
        self.live.get(customer_id)
    }

    /// Customers with a live re-score state.
    pub fn live_len(&self) -> usize {
        self.live.ids.n
    }

    /// Bytes of the index files on disk (read on demand, not held).
    pub fn disk_bytes(&self) -> u64 {
        self.views.iter().map(|(_, k)| k.bytes).sum::<u64>()
            + self.facts.iter().map(|(k, _)| k.bytes).sum::<u64>()
            + self.live.bytes
    }

    /// Makes the session read each view from its sorted Parquet file instead of recomputing
    /// it, and learns the schemas of the keyed facts' rows from the session.
    pub async fn register(&mut self, sess: &Session) -> CoreResult<()> {
        for (i, f) in FACTS.iter().enumerate() {
            let df = sess
                .ctx
                .sql(&sorted_sql(sess, &Slice::ALL.apply(f.sql, 1), f.order).await?)
                .await?;
            self.facts[i].1 = Some(Arc::new(df.schema().as_arrow().clone()));
        }
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

/// Opens the index of the session's version, building it first (`per_slice` customers at a
/// time) if there is none (or the one on disk does not open), and makes the session read the
/// views from it.
pub async fn open_or_build(
    wh: &Warehouse,
    sess: &Session,
    per_slice: usize,
) -> CoreResult<Arc<ServingIndex>> {
    let dir = dir_of(wh, sess.manifest.version);
    let mut idx = match ServingIndex::open(&dir) {
        Ok(i) => i,
        Err(e) => {
            if dir.exists() {
                tracing::warn!(error = %e, "the serving index does not open; rebuilding it");
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            build_sliced(wh, sess, None, per_slice).await?;
            ServingIndex::open(&dir)?
        }
    };
    idx.register(sess).await?;
    Ok(Arc::new(idx))
}

/// Builds the index of the session's version unless it exists, each view and keyed fact file
/// [`SLICE_CUSTOMERS`] customers at a time (see [`crate::slice`]). Returns its directory.
/// `bases`: every customer's live state if the caller has it (the refresh computed its parts);
/// otherwise it is computed from the session.
pub async fn build(
    wh: &Warehouse,
    sess: &Session,
    bases: Option<&crate::profile::LiveBases>,
) -> CoreResult<PathBuf> {
    build_sliced(wh, sess, bases, SLICE_CUSTOMERS).await
}

/// [`build`] with `per_slice` customers per slice (the index is the same whatever the slices).
pub async fn build_sliced(
    wh: &Warehouse,
    sess: &Session,
    bases: Option<&crate::profile::LiveBases>,
    per_slice: usize,
) -> CoreResult<PathBuf> {
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
    let rss = crate::rss::RssPeak::start();
    let built = async {
        let slices = slices(sess, per_slice).await?;
        let mut customers = 0;
        // Each file's time and peak resident memory (C360_LOG=c360_core::serving=debug).
        let part = |file: &str, slices: usize, clock: std::time::Instant| {
            tracing::debug!(
                file,
                slices,
                ms = clock.elapsed().as_millis() as u64,
                peak_mib = rss.as_ref().map_or(0, |r| r.take_mib()),
                "serving index part"
            )
        };
        for v in VIEWS {
            let clock = std::time::Instant::now();
            let sqls = if v == HOLIDAY && slices.len() > 1 {
                holiday_slices(sess, &slices).await?
            } else {
                slices.iter().map(|s| s.view_sql(v)).collect()
            };
            let n = build_keyed(sess, v, &sqls, "customer_id", &tmp, true).await?;
            if v == VIEWS[0] {
                customers = n;
            }
            part(v, slices.len(), clock);
        }
        let n_customers = sess
            .scalar_i64("SELECT COUNT(*) FROM customers")
            .await?
            .max(0) as u64;
        for f in FACTS {
            let clock = std::time::Instant::now();
            let rows = crate::slice::rows_of(sess, f.table).await?;
            let rows_per_slice = (per_slice as u64).saturating_mul(FACT_ROWS_PER_CUSTOMER);
            let per = crate::slice::per_rows(per_slice, n_customers, rows, rows_per_slice);
            let fact_slices = crate::slice::slices(sess, per).await?;
            let sqls: Vec<_> = fact_slices
                .iter()
                .map(|s| (s.apply(f.sql, 1), s.params().to_vec()))
                .collect();
            build_keyed(sess, f.file, &sqls, f.order, &tmp, false).await?;
            part(f.file, fact_slices.len(), clock);
        }
        let clock = std::time::Instant::now();
        let computed;
        let bases = match bases {
            Some(b) => b,
            None => {
                computed = crate::profile::live_profiles(sess).await?;
                &computed
            }
        };
        write_live(&tmp.join(LIVE_FILE), bases.as_slice())?;
        part(LIVE_FILE, 1, clock);
        File::open(&tmp)
            .and_then(|d| d.sync_all())
            .map_err(io(&tmp))?;
        CoreResult::Ok((customers, slices.len()))
    }
    .await;
    let (customers, slices) = match built {
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
        slices,
        ms = started.elapsed().as_millis() as u64,
        "serving index built"
    );
    Ok(fin)
}

/// `inner`'s rows sorted by `order` (names of its columns), each string column copied into an
/// array of its own before the sort: a string read from Parquet is a view into the page it
/// came from, so a slice's rows, filtered out of every page, would otherwise keep every page
/// they were filtered from (the whole chain's events) alive in the sort's buffer.
async fn sorted_sql(sess: &Session, inner: &str, order: &str) -> CoreResult<String> {
    let df = sess.ctx.sql(inner).await?;
    let cols: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let q = format!("\"{}\"", f.name().replace('"', "\"\""));
            match f.data_type() {
                DataType::Utf8View => format!("arrow_cast(s.{q}, 'Utf8') AS {q}"),
                _ => format!("s.{q}"),
            }
        })
        .collect();
    Ok(format!(
        "SELECT {} FROM ({inner}) s ORDER BY {order}",
        cols.join(", ")
    ))
}

/// The per-customer holiday view, whose rows depend on a chain-wide ratio.
const HOLIDAY: &str = "v_customer_holiday";

/// `v_customer_holiday` a slice at a time: its chain-wide ratio (`pool` in the view) is a ratio
/// of sums over every customer, so it is summed slice by slice from `v_customer_holiday_base`
/// first, then each slice's rows get the view's formula with that ratio bound as `$1` (a
/// slice of the view itself would recompute the ratio over every customer in each slice).
async fn holiday_slices(
    sess: &Session,
    slices: &[Slice],
) -> CoreResult<Vec<(String, Vec<ScalarValue>)>> {
    // Σ holiday orders, Σ holiday days, Σ other orders, Σ other days (None: no customer).
    let mut sums: [Option<i64>; 4] = [None; 4];
    for s in slices {
        let sql = format!(
            "SELECT SUM(holiday_orders), SUM(holiday_days), SUM(other_orders), SUM(other_days) \
             FROM v_customer_holiday_base WHERE {}",
            s.predicate("customer_id", 1)
        );
        for b in sess.query_with(&sql, s.params().to_vec()).await? {
            for (k, sum) in sums.iter_mut().enumerate() {
                for v in crate::cols::col_i64(&b, k)?.into_iter().flatten() {
                    *sum = Some(sum.unwrap_or(0) + v);
                }
            }
        }
    }
    // As the view computes it: (CAST(Σh AS DOUBLE) / Σhd) / (CAST(Σo AS DOUBLE) / Σod).
    let lift = match sums {
        [Some(h), Some(hd), Some(o), Some(od)] => {
            Some((h as f64 / hd as f64) / (o as f64 / od as f64))
        }
        _ => None,
    };
    Ok(slices
        .iter()
        .map(|s| {
            (
                format!(
                    "SELECT x.customer_id, x.holiday_orders, x.holiday_days, x.other_orders, x.other_days, \
                       CASE WHEN x.expected > 0 THEN x.holiday_orders / x.expected END AS holiday_lift_raw, \
                       (x.holiday_orders + 3.0 * CAST($1 AS DOUBLE)) / (x.expected + 3.0) AS holiday_lift \
                     FROM v_customer_holiday_base x WHERE {}",
                    s.predicate("x.customer_id", 2)
                ),
                [vec![ScalarValue::Float64(lift)], s.params().to_vec()].concat(),
            )
        })
        .collect())
}

/// Writes the rows of `sqls` (each sorted by customer, each slice's customers after the one
/// before's) as `<view>.pix` in `dir`, and as `<view>.parquet` when `parquet`, streaming: one
/// record batch and one customer's rows in hand. Returns how many customers have rows.
async fn build_keyed(
    sess: &Session,
    view: &str,
    sqls: &[(String, Vec<ScalarValue>)],
    order: &str,
    dir: &Path,
    parquet: bool,
) -> CoreResult<usize> {
    let (first, _) = sqls
        .first()
        .ok_or_else(|| CoreError::Internal(format!("{view}: no slices")))?;
    let first = sorted_sql(sess, first, order).await?;
    // The file's schema is the view's (each slice's query differs only in its filter, and the
    // holiday view's in where its chain-wide ratio comes from).
    let schema = Arc::new(sess.ctx.sql(&first).await?.schema().as_arrow().clone());
    let pq_path = dir.join(format!("{view}.parquet"));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| CoreError::Internal(e.to_string()))?,
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut pq = if parquet {
        Some(
            ArrowWriter::try_new(
                File::create(&pq_path).map_err(io(&pq_path))?,
                schema.clone(),
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
    for (sql, params) in sqls {
        let mut df = sess.ctx.sql(&sorted_sql(sess, sql, order).await?).await?;
        if !params.is_empty() {
            df = df.with_param_values(params.clone())?;
        }
        let mut stream = df.execute_stream().await?;
        while let Some(b) = stream.next().await {
            // The slice's batch with the file's schema (a filter can only narrow what a
            // column may hold, never its type).
            let b = datafusion::arrow::record_batch::RecordBatch::try_new(
                schema.clone(),
                b?.columns().to_vec(),
            )?;
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
                // Values only, in column order: the names are stored once, after the offsets.
                buf.push(b'[');
                for (k, name) in names.iter().enumerate() {
                    if k > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut buf, row.get(name).unwrap_or(&Value::Null))?;
                }
                buf.push(b']');
            }
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
    let names_at = offs_at + 8 * (n as u64 + 1);
    pix.write_all(&serde_json::to_vec(&names)?)
        .map_err(io(&pix_path))?;
    pix.write_all(MAGIC).map_err(io(&pix_path))?;
    for w in [n as u64, ids_at, offs_at, names_at] {
        pix.write_all(&w.to_le_bytes()).map_err(io(&pix_path))?;
    }
    let file = pix
        .into_inner()
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    file.sync_all().map_err(io(&pix_path))?;
    Ok(n)
}

/// Every customer's live re-score state, fixed-width little-endian records sorted by customer
/// id; memory holds every [`BLOCK`]-th id, a lookup reads one block of records.
struct LiveRecords {
    file: File,
    path: PathBuf,
    ids: SparseIds,
    bytes: u64,
}

const LIVE_REC: usize = LIVE_WORDS * 8;

impl LiveRecords {
    fn open(path: &Path) -> CoreResult<LiveRecords> {
        let file = File::open(path).map_err(io(path))?;
        let len = file.metadata().map_err(io(path))?.len() as usize;
        let bad = |why: &str| CoreError::Internal(format!("{}: {why}", path.display()));
        if len < 16 {
            return Err(bad("not a live state file (no trailer)"));
        }
        let t = read_at(&file, path, (len - 16) as u64, 16)?;
        if &t[..8] != LIVE_MAGIC {
            return Err(bad("not a live state file (no trailer)"));
        }
        let n = words(&t[8..]).next().unwrap_or(0) as usize;
        if n.checked_mul(LIVE_REC) != Some(len - 16) {
            return Err(bad("records do not fit the file"));
        }
        Ok(LiveRecords {
            ids: SparseIds::scan(&file, path, 0, LIVE_REC, n)?,
            file,
            path: path.to_path_buf(),
            bytes: len as u64,
        })
    }

    fn get(&self, id: i64) -> CoreResult<Option<LiveProfile>> {
        Ok(self
            .ids
            .find(&self.file, &self.path, id)?
            .map(|f| decode_live(&f.block[f.j * LIVE_REC..(f.j + 1) * LIVE_REC])))
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
        assert_eq!(r.ids.n, 1000);
        for p in &bases {
            let got = r.get(p.features.customer_id).unwrap().unwrap();
            assert_eq!(format!("{got:?}"), format!("{p:?}"));
        }
        for missing in [-701, 3, i64::MIN, i64::MAX] {
            assert!(r.get(missing).unwrap().is_none(), "{missing}");
        }
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
