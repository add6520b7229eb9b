//! The warehouse's part of an erasure (PIPL art. 47, requested through `c360_core::privacy`):
//! every table's rows about the erased customers are removed, or made anonymous where the row is
//! the chain's own business record (an order stays a sale, without its customer or payer), in
//! one transaction under a new manifest; the refresh then rebuilds the derived tables, the
//! serving index and the audience bitmaps without them, every older version (with its files
//! and serving index) is purged, and the requests are marked done and audited.
//!
//! It runs inside every ETL run (a request made through the API completes at the next run) and
//! alone (`c360 privacy erase`, `c360 privacy apply`). A kill midway leaves the requests
//! pending and the previous snapshot whole: the next attempt does it all again.

use std::collections::HashSet;
use std::sync::Arc;

use c360_metastore::Metastore;
use c360_warehouse::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use c360_warehouse::arrow::compute::filter_record_batch;
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{Txn, Warehouse, WriterLock};
use serde_json::{json, Value};

use crate::error::Result;

/// What an edit of a batch returns (the warehouse's result: edits run inside its rewrite).
type Edit = c360_warehouse::Result<Option<RecordBatch>>;

/// What erasure removes: the erased customers' ids and every source id of theirs.
#[derive(Debug, Default, Clone)]
pub struct Erased {
    pub ids: HashSet<i64>,
    pub keys: HashSet<String>,
}

impl Erased {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.keys.is_empty()
    }
}

/// The pending erasures and the ids and keys they cover.
pub async fn pending(
    meta: &Metastore,
) -> Result<(Vec<c360_core::privacy::PrivacyRequest>, Erased)> {
    let reqs = c360_core::privacy::pending_erasures(&meta.db).await?;
    let keys = meta
        .db
        .fetch_all(
            "SELECT e.source_key FROM erased_keys e JOIN privacy_requests r ON r.request_id = e.request_id \
             WHERE r.kind = 'erase' AND r.status = 'pending'",
        )
        .await?
        .iter()
        .filter_map(|row| c360_db::get_text(row, "source_key"))
        .collect();
    let ids = reqs.iter().map(|r| r.customer_id).collect();
    Ok((reqs, Erased { ids, keys }))
}

fn strings<'a>(b: &'a RecordBatch, col: &str) -> Option<&'a StringArray> {
    b.column_by_name(col)?
        .as_any()
        .downcast_ref::<StringArray>()
}

fn ints<'a>(b: &'a RecordBatch, col: &str) -> Option<&'a Int64Array> {
    b.column_by_name(col)?.as_any().downcast_ref::<Int64Array>()
}

/// `b` without the rows `hit` names; None when it names none.
fn drop_rows(b: &RecordBatch, hit: impl Fn(usize) -> bool) -> Edit {
    let keep: Vec<bool> = (0..b.num_rows()).map(|i| !hit(i)).collect();
    if keep.iter().all(|k| *k) {
        return Ok(None);
    }
    Ok(Some(filter_record_batch(b, &BooleanArray::from(keep))?))
}

/// `b` with text column `col` emptied (NULL) where it names an erased key; None when it names none.
fn null_keys(b: &RecordBatch, col: &str, keys: &HashSet<String>) -> Edit {
    let Some(a) = strings(b, col) else {
        return Ok(None);
    };
    let hit = |i: usize| a.is_valid(i) && keys.contains(a.value(i));
    if !(0..a.len()).any(hit) {
        return Ok(None);
    }
    let col_new: StringArray = (0..a.len())
        .map(|i| (a.is_valid(i) && !hit(i)).then(|| a.value(i)))
        .collect();
    let idx = b.schema().index_of(col)?;
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols[idx] = Arc::new(col_new);
    Ok(Some(RecordBatch::try_new(b.schema(), cols)?))
}

/// The first edit's result fed to the second; None when neither changed anything.
fn then(
    b: &RecordBatch,
    first: Option<RecordBatch>,
    second: impl FnOnce(&RecordBatch) -> Edit,
) -> Edit {
    let base = first.as_ref().unwrap_or(b);
    Ok(second(base)?.or(first))
}

/// Removes the erased customers from every table staged in `txn`. Returns rows removed and
/// made anonymous per table.
pub fn scrub(txn: &mut Txn, e: &Erased) -> Result<Value> {
    let mut out = serde_json::Map::new();
    if e.is_empty() {
        return Ok(Value::Object(out));
    }
    let (ids, keys) = (&e.ids, &e.keys);
    let by_key = |col: &'static str| {
        move |b: &RecordBatch| -> Edit {
            let Some(a) = strings(b, col) else {
                return Ok(None);
            };
            drop_rows(b, |i| a.is_valid(i) && keys.contains(a.value(i)))
        }
    };
    let by_id = |col: &'static str| {
        move |b: &RecordBatch| -> Edit {
            let Some(a) = ints(b, col) else {
                return Ok(None);
            };
            drop_rows(b, |i| a.is_valid(i) && ids.contains(&a.value(i)))
        }
    };
    let mut note = |t: &str, (files, removed): (u64, u64)| {
        out.insert(
            t.to_string(),
            json!({"files": files, "rows_removed": removed}),
        );
    };
    // Who they are.
    note("customers", txn.rewrite("customers", by_id("customer_id"))?);
    note(
        "customer_keys",
        txn.rewrite("customer_keys", |b| {
            then(b, by_id("customer_id")(b)?, by_key("source_key"))
        })?,
    );
    note(
        "payer_links",
        txn.rewrite("payer_links", |b| {
            let Some(p) = strings(b, "payer_hash") else {
                return Ok(None);
            };
            then(
                b,
                drop_rows(b, |i| {
                    keys.contains(&format!("{}:{}", crate::extract::PAYER_PREFIX, p.value(i)))
                })?,
                by_key("customer_key"),
            )
        })?,
    );
    // What they did: orders stay as anonymous sales; the rest is theirs alone.
    note(
        "fact_orders",
        txn.rewrite("fact_orders", |b| null_keys(b, "customer_key", keys))?,
    );
    for t in [
        "customer_behavior_tracks_raw",
        "customer_emotion_raw",
        "service_tickets_raw",
    ] {
        note(t, txn.rewrite(t, by_key("customer_key"))?);
    }
    note(
        "customer_shares_raw",
        txn.rewrite("customer_shares_raw", |b| {
            then(b, by_key("customer_key")(b)?, |x| {
                null_keys(x, "to_customer_key", keys)
            })
        })?,
    );
    note(
        "customer_ties_raw",
        txn.rewrite("customer_ties_raw", |b| {
            then(b, by_key("customer_key")(b)?, |x| {
                null_keys(x, "other_key", keys)
            })
        })?,
    );
    // Their rows the ETL refused (masked values, but theirs).
    let refused: HashSet<String> = keys
        .iter()
        .filter_map(|k| {
            let (p, id) = k.split_once(':')?;
            let t = match p {
                "M" => "members",
                "U" => "wx_users",
                _ => return None,
            };
            Some(format!("{t}\u{0}{id}"))
        })
        .collect();
    note(
        "quarantine",
        txn.rewrite("quarantine", |b| {
            let (Some(t), Some(r)) = (strings(b, "source_table"), strings(b, "row_id")) else {
                return Ok(None);
            };
            drop_rows(b, |i| {
                refused.contains(&format!("{}\u{0}{}", t.value(i), r.value(i)))
            })
        })?,
    );
    // What was derived about them (the refresh rebuilds these too; nothing waits for it).
    for t in [
        "review_sentiment",
        "customer_sessions",
        "customer_network",
        "customer_segmentation",
        "customer_predictions",
    ] {
        note(t, txn.rewrite(t, by_id("customer_id"))?);
    }
    note(
        "network_cascades",
        txn.rewrite("network_cascades", by_id("root_customer_id"))?,
    );
    Ok(Value::Object(out))
}

/// After the snapshot without them is published and refreshed: purges every older version and
/// marks the requests done.
pub(crate) async fn finish(
    wh: &Warehouse,
    lock: &WriterLock,
    meta: &Metastore,
    reqs: &[c360_core::privacy::PrivacyRequest],
    mut detail: Value,
) -> Result<()> {
    if reqs.is_empty() {
        return Ok(());
    }
    let purged = wh.purge_superseded(lock)?;
    detail["versions_purged"] = json!(purged);
    detail["manifest_version"] = json!(wh.current()?.version);
    c360_core::privacy::complete(meta, reqs, &detail, "etl").await?;
    tracing::info!(requests = reqs.len(), "erasures completed");
    Ok(())
}

/// Completes the pending erasures now, without reading the sources: one commit, the refresh,
/// the purge. Returns how many requests were completed.
pub async fn apply(cfg: &crate::config::EtlConfig) -> Result<usize> {
    let wh = Warehouse::open(&cfg.warehouse)?;
    let lock = wh.lock()?;
    let meta = Metastore::open(&cfg.metastore()).await?;
    let (reqs, erased) = pending(&meta).await?;
    if reqs.is_empty() {
        return Ok(0);
    }
    let run_id = meta.start_run().await?;
    let r: Result<Value> = async {
        let mut txn = wh.begin_locked(&lock, run_id)?;
        // The identity run this snapshot carries stays the one it was.
        let detail = scrub(&mut txn, &erased)?;
        txn.commit()?;
        let pb = indicatif::ProgressBar::hidden();
        crate::refresh::refresh(cfg, &wh, &lock, run_id, &pb).await?;
        crate::refresh_audiences(&wh, &meta).await;
        Ok(detail)
    }
    .await;
    match r {
        Ok(detail) => {
            let v = wh.current()?.version;
            meta.finish_run(run_id, "ok", v, &json!({"erasure": detail}).to_string())
                .await?;
            finish(&wh, &lock, &meta, &reqs, detail).await?;
            Ok(reqs.len())
        }
        Err(e) => {
            let _ = meta.finish_run(run_id, "failed", 0, &e.to_string()).await;
            Err(e)
        }
    }
}
