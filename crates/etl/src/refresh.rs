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

    // Lifetime value: fit BG/NBD + Gamma-Gamma on every customer, predict each in closed form.
    let (summaries, end_day) = customer_summaries(&sess).await?;
    let mut preds = Vec::new();
    let mut models_note = serde_json::Value::Null;
    if summaries.iter().filter(|s| s.s.x > 0.0).count() >= 20 {
        match fit_models(&summaries, end_day, false) {
            Ok(m) => {
                preds = prediction_batches(&m, &summaries, end_day)?;
                models_note = serde_json::to_value(&m).unwrap_or_default();
            }
            Err(e) => tracing::warn!(error = %e, "lifetime value models not fitted"),
        }
    }
    crate::fail_point(cfg, "refresh_commit")?;
    let mut txn = wh.begin(run_id)?;
    txn.replace("customer_segmentation", rows)?;
    txn.replace("customer_predictions", preds)?;
    txn.note("segmentation_run", serde_json::json!(run_id));
    txn.note("models", models_note);
    txn.commit()?;
    Ok((n, n))
}

fn prediction_batches(
    m: &FittedModels,
    rows: &[CustomerSummary],
    end_day: i64,
) -> Result<Vec<RecordBatch>> {
    use c360_warehouse::arrow::array::{
        Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    };
    use rayon::prelude::*;
    let preds: Vec<Prediction> = rows
        .par_iter()
        .map(|r| predict(m, &r.s, r.mean_value_fen))
        .collect();
    let (mut id, mut model, mut metric, mut hz, mut val, mut asof) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Date32Builder::new(),
    );
    let as_of = (end_day - 1) as i32;
    for (r, p) in rows.iter().zip(&preds) {
        for (mo, me, h, v) in [
            ("bgnbd", "p_alive", None, p.p_alive),
            (
                "bgnbd",
                "expected_purchases",
                Some(HORIZON_DAYS as i64),
                p.expected_purchases,
            ),
            (
                "gamma_gamma",
                "expected_spend_fen",
                None,
                p.expected_spend_fen,
            ),
            ("bgnbd_gg", "clv_fen", Some(360), p.clv_fen),
        ] {
            id.append_value(r.customer_id);
            model.append_value(mo);
            metric.append_value(me);
            hz.append_option(h);
            val.append_value(v);
            asof.append_value(as_of);
        }
    }
    let schema = (tables::def("customer_predictions").unwrap().schema)();
    Ok(vec![RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(id.finish()),
            std::sync::Arc::new(model.finish()),
            std::sync::Arc::new(metric.finish()),
            std::sync::Arc::new(hz.finish()),
            std::sync::Arc::new(val.finish()),
            std::sync::Arc::new(asof.finish()),
        ],
    )?])
}

/// Per-customer purchase summary in days, lifetimes-style: purchases are counted per calendar
/// day (Asia/Shanghai), x = purchase days - 1, t_x = last - first purchase day, T = end of the
/// observation (the day after the last order in the warehouse) - first purchase day, mv = mean
/// value of the repeat purchase days in fen.
pub const SUMMARY_SQL: &str = "
WITH d AS (
  SELECT k.customer_id, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT) AS day, SUM(o.total_fen) AS v
  FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key
  WHERE o.status = 'paid' GROUP BY k.customer_id, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT)),
f AS (SELECT customer_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) AS n FROM d GROUP BY customer_id),
m AS (SELECT d.customer_id, AVG(CAST(d.v AS DOUBLE)) AS mv FROM d JOIN f ON d.customer_id = f.customer_id
      WHERE d.day > f.first_day GROUP BY d.customer_id),
e AS (SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) + 1 AS end_day FROM fact_orders)
SELECT f.customer_id, f.n - 1 AS x, f.last_day - f.first_day AS t_x, e.end_day - f.first_day AS t,
       COALESCE(m.mv, 0.0) AS mv, e.end_day
FROM f CROSS JOIN e LEFT JOIN m ON f.customer_id = m.customer_id ORDER BY f.customer_id";

/// One customer's row of [`SUMMARY_SQL`].
#[derive(Debug, Clone)]
pub struct CustomerSummary {
    pub customer_id: i64,
    pub s: c360_analytics::clv::Summary,
    pub mean_value_fen: f64,
}

pub async fn customer_summaries(sess: &Session) -> Result<(Vec<CustomerSummary>, i64)> {
    use c360_warehouse::arrow::array::{Float64Array, Int64Array};
    use c360_warehouse::arrow::datatypes::DataType;
    let mut out = Vec::new();
    let mut end_day = 0;
    for b in sess.query(SUMMARY_SQL).await? {
        let col = |i: usize, t: &DataType| cast(b.column(i), t);
        let id = col(0, &DataType::Int64)?;
        let x = col(1, &DataType::Float64)?;
        let tx = col(2, &DataType::Float64)?;
        let t = col(3, &DataType::Float64)?;
        let mv = col(4, &DataType::Float64)?;
        let ed = col(5, &DataType::Int64)?;
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let f = |a: &std::sync::Arc<dyn c360_warehouse::arrow::array::Array>| {
            a.as_any().downcast_ref::<Float64Array>().unwrap().clone()
        };
        let (x, tx, t, mv) = (f(&x), f(&tx), f(&t), f(&mv));
        end_day = ed.as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        for i in 0..b.num_rows() {
            out.push(CustomerSummary {
                customer_id: id.value(i),
                s: c360_analytics::clv::Summary {
                    x: x.value(i),
                    t_x: tx.value(i),
                    t: t.value(i),
                },
                mean_value_fen: mv.value(i),
            });
        }
    }
    Ok((out, end_day))
}

/// Fitted population models, stored in the manifest notes so a new order can update one
/// customer's predictions without a refit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FittedModels {
    pub bgnbd: c360_analytics::clv::BgNbd,
    pub pareto_nbd: Option<c360_analytics::clv::ParetoNbd>,
    /// Fitted on spend in yuan.
    pub gamma_gamma: c360_analytics::clv::GammaGamma,
    pub customers: usize,
    pub end_day: i64,
    pub time_unit: String,
}

/// Horizon of the expected-purchase and CLV predictions, and the monthly discount rate.
pub const HORIZON_DAYS: f64 = 365.0;
pub const MONTHLY_DISCOUNT: f64 = 0.01;

pub fn fit_models(
    rows: &[CustomerSummary],
    end_day: i64,
    with_pareto: bool,
) -> std::result::Result<FittedModels, c360_analytics::clv::FitError> {
    use c360_analytics::clv::{BgNbd, GammaGamma, ParetoNbd};
    let s: Vec<_> = rows.iter().map(|r| r.s).collect();
    let bgnbd = BgNbd::fit(&s)?;
    let spend: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.s.x > 0.0 && r.mean_value_fen > 0.0)
        .map(|r| (r.s.x, r.mean_value_fen / 100.0))
        .collect();
    let gamma_gamma = GammaGamma::fit(&spend)?;
    let pareto_nbd = if with_pareto {
        Some(ParetoNbd::fit(&s)?)
    } else {
        None
    };
    Ok(FittedModels {
        bgnbd,
        pareto_nbd,
        gamma_gamma,
        customers: rows.len(),
        end_day,
        time_unit: "day".into(),
    })
}

/// Per-customer predictions from fitted parameters (closed form; microseconds per customer).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Prediction {
    pub p_alive: f64,
    pub expected_purchases: f64,
    pub expected_purchases_pareto: Option<f64>,
    pub expected_spend_fen: f64,
    pub clv_fen: f64,
}

pub fn predict(
    m: &FittedModels,
    s: &c360_analytics::clv::Summary,
    mean_value_fen: f64,
) -> Prediction {
    let spend_yuan = m.gamma_gamma.expected_spend(
        s.x,
        if s.x > 0.0 {
            mean_value_fen / 100.0
        } else {
            0.0
        },
    );
    Prediction {
        p_alive: m.bgnbd.p_alive(s),
        expected_purchases: m.bgnbd.expected_purchases(s, HORIZON_DAYS),
        expected_purchases_pareto: m.pareto_nbd.map(|p| p.expected_purchases(s, HORIZON_DAYS)),
        expected_spend_fen: spend_yuan * 100.0,
        clv_fen: c360_analytics::clv::clv(
            |t| m.bgnbd.expected_purchases(s, t),
            spend_yuan * 100.0,
            12,
            MONTHLY_DISCOUNT,
        ),
    }
}
