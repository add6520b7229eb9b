//! Step 10: the analytics refresh hook, run after the load commits. For now it computes RFM
//! (quintile scores, the eight Chinese value classes and the four tiers) into
//! `customer_segmentation`; the analytics crate will plug its models in here.
//!
//! Rules, stated once: scores are NTILE(5) over customers with at least one paid order, ties
//! broken by customer id (so equal values may straddle a tile edge); R scores recent buyers high.
//! "High" in the eight classes means a score above the mean score 3. Tiers: 核心客户 R,F,M ≥ 4;
//! 活跃客户 R,F ≥ 3; 机会客户 R ≥ 3 or M ≥ 4; otherwise 沉睡/新客户.

use c360_warehouse::arrow::compute::cast;
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Session, Warehouse};
use indicatif::ProgressBar;

use crate::Result;

const RFM_SQL: &str = "
WITH base AS (
  SELECT k.customer_id,
         to_unixtime(MAX(o.order_time)) AS last_ts,
         COUNT(*) AS frequency,
         SUM(o.total_fen) AS monetary_fen
  FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key
  WHERE o.status = 'paid'
  GROUP BY k.customer_id),
asof AS (SELECT to_unixtime(MAX(order_time)) AS t, MAX(order_time) AS at FROM fact_orders),
scored AS (
  SELECT b.customer_id,
         CAST(FLOOR((a.t - b.last_ts) / 86400) AS BIGINT) AS recency_days,
         b.frequency, b.monetary_fen,
         CAST(a.at AS DATE) AS as_of
  FROM base b CROSS JOIN asof a),
q AS (
  SELECT *,
    NTILE(5) OVER (ORDER BY recency_days DESC, customer_id) AS r_score,
    NTILE(5) OVER (ORDER BY frequency, customer_id) AS f_score,
    NTILE(5) OVER (ORDER BY monetary_fen, customer_id) AS m_score
  FROM scored)
SELECT customer_id, recency_days, frequency, monetary_fen, r_score, f_score, m_score,
  CASE
    WHEN r_score > 3 AND f_score > 3 AND m_score > 3 THEN '重要价值客户'
    WHEN r_score > 3 AND f_score <= 3 AND m_score > 3 THEN '重要发展客户'
    WHEN r_score <= 3 AND f_score > 3 AND m_score > 3 THEN '重要保持客户'
    WHEN r_score <= 3 AND f_score <= 3 AND m_score > 3 THEN '重要挽留客户'
    WHEN r_score > 3 AND f_score > 3 THEN '一般价值客户'
    WHEN r_score > 3 THEN '一般发展客户'
    WHEN f_score > 3 THEN '一般保持客户'
    ELSE '一般挽留客户'
  END AS rfm_class,
  CASE
    WHEN r_score >= 4 AND f_score >= 4 AND m_score >= 4 THEN '核心客户'
    WHEN r_score >= 3 AND f_score >= 3 THEN '活跃客户'
    WHEN r_score >= 3 OR m_score >= 4 THEN '机会客户'
    ELSE '沉睡/新客户'
  END AS tier,
  as_of
FROM q ORDER BY customer_id";

/// Casts query output onto a table's declared schema, column by column.
pub fn conform(batches: Vec<RecordBatch>, table: &str) -> Result<Vec<RecordBatch>> {
    let schema = (tables::def(table).unwrap().schema)();
    batches
        .into_iter()
        .map(|b| {
            let cols = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(schema.clone(), cols)?)
        })
        .collect()
}

pub async fn refresh(
    cfg: &crate::EtlConfig,
    wh: &Warehouse,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let sess = Session::open(wh).await?;
    let rows = conform(sess.query(RFM_SQL).await?, "customer_segmentation")?;
    let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
    pb.set_position(n);
    crate::fail_point(cfg, "refresh_commit")?;
    let mut txn = wh.begin(run_id)?;
    txn.replace("customer_segmentation", rows)?;
    txn.note("segmentation_run", serde_json::json!(run_id));
    txn.commit()?;
    Ok((n, n))
}
