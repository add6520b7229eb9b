//! Step 9: the data-quality report — completeness, validity, duplicates and referential
//! integrity per table — computed with SQL on the snapshot about to be committed, and stored
//! in `dq_report` inside the same commit.

use std::sync::Arc;

use c360_warehouse::arrow::array::{Float64Builder, StringBuilder};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Session, Txn, Warehouse};
use indicatif::ProgressBar;

use crate::error::Result;
use crate::report::EtlReport;

/// (table, check, SQL giving one number, detail)
///
/// No check joins: a join of two large tables needs a sort of each (or a hash table of one),
/// and those operators competed for the budget with the aggregates above them until one that
/// could not spill failed (at 10M orders). A reference between tables is instead one grouped
/// aggregate over both, `UNION ALL`-ed with a flag saying which side a row came from (`f`):
/// per key, how many rows each side has. A grouped aggregate spills, and it is the only
/// operator in its query that holds memory.
const CHECKS: &[(&str, &str, &str, &str)] = &[
    ("fact_orders", "rows", "SELECT COUNT(*) FROM fact_orders", "orders loaded"),
    ("fact_orders", "duplicate_keys", "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM fact_orders GROUP BY order_key) g", "must be 0"),
    (
        "fact_orders",
        "duplicate_order_no",
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM fact_orders WHERE order_no <> '' GROUP BY source, store_id, order_no) t",
        "same store and order number loaded twice; must be 0",
    ),
    (
        "fact_orders",
        "completeness_customer",
        "SELECT AVG(CASE WHEN customer_key IS NULL OR customer_key LIKE 'PAY:%' THEN 0.0 ELSE 1.0 END) FROM fact_orders",
        "share of orders naming a member or user (the rest are anonymous, some with a payment account)",
    ),
    (
        "fact_orders",
        "capture_rate",
        "SELECT AVG(CASE WHEN customer_id IS NULL THEN 0.0 ELSE 1.0 END) FROM orders",
        "share of orders tied to a known customer, payment accounts included (the capture rate)",
    ),
    (
        "fact_orders",
        "ri_store",
        "SELECT CAST(SUM(CASE WHEN k IS NOT NULL AND nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT k, SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT store_id AS k, 1 AS f FROM fact_orders UNION ALL SELECT store_id, 0 FROM stores) u GROUP BY k) g WHERE nf > 0",
        "share of orders whose store exists",
    ),
    (
        "fact_orders",
        "ri_customer",
        "SELECT CAST(SUM(CASE WHEN k IS NULL OR nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT k, SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT customer_key AS k, 1 AS f FROM fact_orders WHERE customer_key IS NULL OR customer_key NOT LIKE 'PAY:%' UNION ALL SELECT source_key, 0 FROM customer_keys) u GROUP BY k) g WHERE nf > 0",
        "share of orders whose member or user key resolves (the rest wait for their member/user row)",
    ),
    (
        "fact_orders",
        "validity_amounts",
        "SELECT AVG(CASE WHEN v = 0 THEN 1.0 ELSE 0.0 END) FROM (SELECT SUM(v) AS v, SUM(f) AS nf, COUNT(*) - SUM(f) AS ni FROM (SELECT order_key AS k, total_fen + discount_fen AS v, 1 AS f FROM fact_orders UNION ALL SELECT order_key, -amount_fen, 0 FROM fact_order_items) u GROUP BY k) g WHERE nf > 0 AND ni > 0",
        "share of orders whose total + discount equals the sum of their items",
    ),
    (
        "fact_orders",
        "orders_without_items",
        "SELECT COALESCE(SUM(nf), 0) FROM (SELECT SUM(f) AS nf, COUNT(*) - SUM(f) AS ni FROM (SELECT order_key AS k, 1 AS f FROM fact_orders UNION ALL SELECT order_key, 0 FROM fact_order_items) u GROUP BY k) g WHERE ni = 0",
        "orders whose items were all quarantined",
    ),
    ("fact_order_items", "rows", "SELECT COUNT(*) FROM fact_order_items", "items loaded"),
    ("fact_order_items", "duplicate_keys", "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM fact_order_items GROUP BY item_key) g", "must be 0"),
    (
        "fact_order_items",
        "ri_order",
        "SELECT CAST(SUM(CASE WHEN nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT order_key AS k, 1 AS f FROM fact_order_items UNION ALL SELECT order_key, 0 FROM fact_orders) u GROUP BY k) g WHERE nf > 0",
        "share of items whose order exists",
    ),
    (
        "fact_order_items",
        "ri_product",
        "SELECT CAST(SUM(CASE WHEN nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT product_id AS k, 1 AS f FROM fact_order_items UNION ALL SELECT product_id, 0 FROM products) u GROUP BY k) g WHERE nf > 0",
        "share of items whose product exists",
    ),
    ("customers", "rows", "SELECT COUNT(*) FROM customers", "resolved customers"),
    ("customers", "completeness_phone", "SELECT AVG(CASE WHEN phone_hash IS NULL THEN 0.0 ELSE 1.0 END) FROM customers", "share with a usable phone"),
    ("customers", "completeness_gender", "SELECT AVG(CASE WHEN gender IS NULL THEN 0.0 ELSE 1.0 END) FROM customers", "share with gender"),
    ("customers", "completeness_birth_year", "SELECT AVG(CASE WHEN birth_year IS NULL THEN 0.0 ELSE 1.0 END) FROM customers", "share with birth year"),
    ("customers", "cross_channel", "SELECT AVG(CASE WHEN member_count > 0 AND wx_user_count > 0 THEN 1.0 ELSE 0.0 END) FROM customers", "share linked across POS and mini-program"),
    ("customer_behavior_tracks_raw", "rows", "SELECT COUNT(*) FROM customer_behavior_tracks_raw", "events loaded"),
    (
        "customer_behavior_tracks_raw",
        "ri_customer",
        "SELECT CAST(SUM(CASE WHEN k IS NOT NULL AND nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT k, SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT customer_key AS k, 1 AS f FROM customer_behavior_tracks_raw UNION ALL SELECT source_key, 0 FROM customer_keys) u GROUP BY k) g WHERE nf > 0",
        "share of events whose user is known (the rest wait for their user row)",
    ),
    (
        "customer_emotion_raw",
        "ri_customer",
        "SELECT CAST(SUM(CASE WHEN k IS NOT NULL AND nd > 0 THEN nf ELSE 0 END) AS DOUBLE) / SUM(nf) FROM (SELECT k, SUM(f) AS nf, COUNT(*) - SUM(f) AS nd FROM (SELECT customer_key AS k, 1 AS f FROM customer_emotion_raw UNION ALL SELECT source_key, 0 FROM customer_keys) u GROUP BY k) g WHERE nf > 0",
        "share of reviews whose user is known",
    ),
    ("customer_behavior_tracks_raw", "duplicate_keys", "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM customer_behavior_tracks_raw GROUP BY event_key) g", "must be 0"),
    ("customer_emotion_raw", "rows", "SELECT COUNT(*) FROM customer_emotion_raw", "reviews loaded"),
    ("customer_emotion_raw", "completeness_content", "SELECT AVG(CASE WHEN content IS NULL THEN 0.0 ELSE 1.0 END) FROM customer_emotion_raw", "share of reviews with text"),
    ("customer_shares_raw", "rows", "SELECT COUNT(*) FROM customer_shares_raw", "shares loaded"),
    ("stores", "completeness_location", "SELECT AVG(CASE WHEN lat IS NULL THEN 0.0 ELSE 1.0 END) FROM stores", "share of stores with coordinates"),
];

/// The source entities a check needs (any one of them); a check whose entities the chain does
/// not provide is not scored but reported as not applicable.
fn needs(table: &str, check: &str) -> &'static [&'static str] {
    const ITEMS: &[&str] = &["order_items", "wx_order_items"];
    match (table, check) {
        ("fact_orders", "ri_store") | ("stores", _) => &["stores"],
        ("fact_orders", "validity_amounts" | "orders_without_items") | ("fact_order_items", _) => {
            ITEMS
        }
        ("customer_behavior_tracks_raw", _) => &["events"],
        ("customer_shares_raw", _) => &["shares"],
        ("customers", "cross_channel") => &["wx_users"],
        _ => &[],
    }
}

/// What the quality step's queries may hold in memory. Every check is written so that it can
/// spill: repeats and references are counted with a grouped aggregate (which spills), never
/// with an ungrouped `COUNT(DISTINCT …)` (whose set of values cannot) or a join.
pub const MEMORY: usize = 768 << 20;

pub async fn report(
    cfg: &crate::EtlConfig,
    wh: &Warehouse,
    txn: &mut Txn,
    run: &EtlReport,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c360_warehouse::arrow::array::{Array, Float64Array};
    use c360_warehouse::arrow::compute::cast;
    use c360_warehouse::arrow::datatypes::DataType;
    // Whole-table checks at any size: operators spill past the budget instead of growing.
    let sess = Session::bounded(wh, txn.staged().clone(), cfg.quality_memory).await?;
    let (mut t, mut c, mut v, mut d) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    let loaded = c360_core::sources::loaded(&txn.staged().notes);
    let rss = crate::report::RssPeak::start();
    for (table, check, sql, detail) in CHECKS {
        let need = needs(table, check);
        if !need.is_empty() && !c360_core::sources::any(loaded.as_ref(), need) {
            t.append_value(*table);
            c.append_value(format!("{check}:not_applicable"));
            v.append_value(0.0);
            d.append_value(format!(
                "not scored: the source contract provides no {}",
                need.join(" or ")
            ));
            continue;
        }
        let t0 = std::time::Instant::now();
        if let Some(r) = &rss {
            r.take_mib();
        }
        let b = sess.query(sql).await?;
        tracing::debug!(
            table,
            check,
            ms = t0.elapsed().as_millis() as u64,
            peak_mib = rss.as_ref().map_or(0, |r| r.take_mib()),
            "quality check"
        );
        let val = b
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| cast(b.column(0), &DataType::Float64))
            .transpose()?
            .and_then(|a| {
                let a = a
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("a cast to Float64 gives a Float64Array")
                    .clone();
                (!a.is_null(0)).then(|| a.value(0))
            })
            .unwrap_or(0.0);
        t.append_value(*table);
        c.append_value(*check);
        v.append_value(val);
        d.append_value(*detail);
        pb.inc(1);
    }
    // This run's validity per step: loaded rows against extracted rows, and quarantines.
    for s in &run.steps {
        t.append_value(format!("run:{}", s.name));
        c.append_value("quarantined");
        v.append_value(s.quarantined as f64);
        d.append_value(format!(
            "extracted {} loaded {} (quarantine rows name table, row, field, reason)",
            s.extracted, s.loaded
        ));
    }
    let b = RecordBatch::try_new(
        tables::schema("dq_report"),
        vec![
            Arc::new(t.finish()),
            Arc::new(c.finish()),
            Arc::new(v.finish()),
            Arc::new(d.finish()),
        ],
    )?;
    let n = b.num_rows() as u64;
    txn.replace("dq_report", vec![b])?;
    Ok((CHECKS.len() as u64, n))
}
