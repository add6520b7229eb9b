//! Lifetime-value models over per-customer purchase summaries: the summary query (lifetimes
//! style, per calendar day in Asia/Shanghai), fitting BG/NBD (+ Pareto/NBD) and Gamma-Gamma, and
//! the closed-form predictions a refresh writes and a live order re-scores with.

use c360_warehouse::arrow::compute::cast;
use c360_warehouse::Session;

use crate::CoreResult as Result;

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
        let id = id
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        let f = |a: &std::sync::Arc<dyn c360_warehouse::arrow::array::Array>| {
            a.as_any()
                .downcast_ref::<Float64Array>()
                .expect("a cast to Float64 gives a Float64Array")
                .clone()
        };
        let (x, tx, t, mv) = (f(&x), f(&tx), f(&t), f(&mv));
        end_day = ed
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array")
            .value(0);
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
    /// The ridge on the log-parameters the fit needed, if any: 0 when the plain maximum
    /// likelihood converged; [`FIT_RIDGE`] when the data have no finite maximum (see
    /// `c360_analytics::clv`), which the refresh reports.
    #[serde(default)]
    pub ridge: f64,
}

/// The ridge a fit falls back to when plain maximum likelihood does not converge (the value
/// `lifetimes` users are advised to try first).
pub const FIT_RIDGE: f64 = 0.001;

/// Horizon of the expected-purchase and CLV predictions, and the monthly discount rate.
pub const HORIZON_DAYS: f64 = 365.0;
pub const MONTHLY_DISCOUNT: f64 = 0.01;

pub fn fit_models(
    rows: &[CustomerSummary],
    end_day: i64,
    with_pareto: bool,
) -> std::result::Result<FittedModels, c360_analytics::clv::FitError> {
    match fit_models_with(rows, end_day, with_pareto, 0.0) {
        Err(c360_analytics::clv::FitError::NotConverged(_)) => {
            fit_models_with(rows, end_day, with_pareto, FIT_RIDGE)
        }
        r => r,
    }
}

fn fit_models_with(
    rows: &[CustomerSummary],
    end_day: i64,
    with_pareto: bool,
    ridge: f64,
) -> std::result::Result<FittedModels, c360_analytics::clv::FitError> {
    use c360_analytics::clv::{BgNbd, GammaGamma, ParetoNbd};
    let s: Vec<_> = rows.iter().map(|r| r.s).collect();
    let bgnbd = BgNbd::fit_with(&s, ridge)?;
    let spend: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.s.x > 0.0 && r.mean_value_fen > 0.0)
        .map(|r| (r.s.x, r.mean_value_fen / 100.0))
        .collect();
    let gamma_gamma = GammaGamma::fit_with(&spend, ridge)?;
    let pareto_nbd = if with_pareto {
        Some(ParetoNbd::fit_with(&s, ridge)?)
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
        ridge,
    })
}

/// Per-customer predictions from fitted parameters (closed form; microseconds per customer).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Prediction {
    pub p_alive: f64,
    pub expected_purchases: f64,
    pub expected_purchases_pareto: Option<f64>,
    pub expected_spend_fen: f64,
    pub clv_fen: f64,
    /// Days from the observation end to the next order if the customer is alive and orders
    /// within [`HORIZON_DAYS`] (the median of their own posterior wait, BG/NBD; how likely that
    /// is, is `p_alive` and `expected_purchases`).
    pub next_order_days: f64,
    /// Chance an alive customer with their cadence would have ordered since their last order:
    /// near 1 is overdue for them (a lapse rule of the customer's own, not one fixed number).
    pub overdue: f64,
}

pub fn predict(
    m: &FittedModels,
    s: &c360_analytics::clv::Summary,
    mean_value_fen: f64,
) -> Prediction {
    predict_with(m, s, mean_value_fen, &curve(m, s))
}

/// The horizons a prediction needs: the end of each of the 12 months of the CLV, then
/// [`HORIZON_DAYS`].
const HORIZONS: [f64; 13] = [
    30.0,
    60.0,
    90.0,
    120.0,
    150.0,
    180.0,
    210.0,
    240.0,
    270.0,
    300.0,
    330.0,
    360.0,
    HORIZON_DAYS,
];

/// BG/NBD's expected purchases at [`HORIZONS`] (one pass of the series for all of them).
fn curve(m: &FittedModels, s: &c360_analytics::clv::Summary) -> [f64; 13] {
    let mut out = [0.0; 13];
    m.bgnbd.expected_purchases_at(s, &HORIZONS, &mut out);
    out
}

fn predict_with(
    m: &FittedModels,
    s: &c360_analytics::clv::Summary,
    mean_value_fen: f64,
    curve: &[f64; 13],
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
        expected_purchases: curve[12],
        expected_purchases_pareto: m.pareto_nbd.map(|p| p.expected_purchases(s, HORIZON_DAYS)),
        expected_spend_fen: spend_yuan * 100.0,
        clv_fen: c360_analytics::clv::clv_of_curve(
            &curve[..12],
            spend_yuan * 100.0,
            MONTHLY_DISCOUNT,
        ),
        next_order_days: m.bgnbd.median_wait_within(s, HORIZON_DAYS),
        overdue: m.bgnbd.overdue(s),
    }
}

/// [`predict`] for many customers, in parallel. The expected-purchase curve is p_alive times a
/// curve of (x, T) alone ([`BgNbd::if_alive_at`]): that series runs once per distinct (x, T)
/// (tens of thousands at a million customers, against hundreds of thousands of distinct
/// (x, t_x, T)), and each customer scales it by their own p_alive and spend.
///
/// [`BgNbd::if_alive_at`]: c360_analytics::clv::BgNbd::if_alive_at
pub fn predict_many(m: &FittedModels, rows: &[CustomerSummary]) -> Vec<Prediction> {
    use rayon::prelude::*;
    use std::collections::HashMap;
    let mut distinct: HashMap<(u64, u64), u32> = HashMap::new();
    let mut uniq: Vec<(f64, f64)> = Vec::new();
    let ix: Vec<u32> = rows
        .iter()
        .map(|r| {
            *distinct
                .entry((r.s.x.to_bits(), r.s.t.to_bits()))
                .or_insert_with(|| {
                    uniq.push((r.s.x, r.s.t));
                    (uniq.len() - 1) as u32
                })
        })
        .collect();
    drop(distinct);
    let variants = m.bgnbd.variants();
    // Per variant, per distinct (x, T): the curve if alive.
    let alive: Vec<Vec<[f64; 13]>> = variants
        .iter()
        .map(|(_, v)| {
            uniq.par_iter()
                .map(|&(x, t)| {
                    let mut out = [0.0; 13];
                    v.if_alive_at(x, t, &HORIZONS, &mut out);
                    out
                })
                .collect()
        })
        .collect();
    rows.par_iter()
        .zip(ix.par_iter())
        .map(|(r, &i)| {
            let mut c = [0.0; 13];
            c360_analytics::clv::BgNbd::from_alive_curves(
                &variants,
                &r.s,
                alive.iter().map(|curves| &curves[i as usize][..]),
                &mut c,
            );
            predict_with(m, &r.s, r.mean_value_fen, &c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use c360_analytics::clv::{BgNbd, GammaGamma, Summary};

    /// The one-pass curve and the shared curves of `predict_many` give what the per-horizon
    /// closed forms give, customer by customer.
    #[test]
    fn predictions_from_one_pass_match_the_closed_forms() {
        let m = FittedModels {
            bgnbd: BgNbd {
                r: 0.9,
                alpha: 29.4,
                a: 1.2,
                b: 4.96,
                ll: 0.0,
            },
            pareto_nbd: None,
            gamma_gamma: GammaGamma {
                p: 6.0,
                q: 4.0,
                v: 15.0,
                ll: 0.0,
            },
            customers: 0,
            end_day: 0,
            time_unit: "day".into(),
            ridge: 0.0,
        };
        let mut rows = Vec::new();
        for i in 0..400 {
            let t = 30.0 + (i * 7 % 600) as f64;
            let x = (i % 9) as f64;
            let t_x = if x > 0.0 {
                (t * ((i % 5) as f64 + 1.0) / 6.0).floor()
            } else {
                0.0
            };
            // Every row twice with another spend (the second shares the first's curve), and
            // again with an earlier last purchase (it shares the series of (x, T) only).
            for (t_x, v) in [(t_x, 1500.0), (t_x, 2600.0), ((t_x / 2.0).floor(), 1500.0)] {
                rows.push(CustomerSummary {
                    customer_id: i,
                    s: Summary { x, t_x, t },
                    mean_value_fen: v * (x > 0.0) as u8 as f64,
                });
            }
        }
        let many = predict_many(&m, &rows);
        for (r, p) in rows.iter().zip(&many) {
            let one = predict(&m, &r.s, r.mean_value_fen);
            assert_eq!(p.clv_fen, one.clv_fen);
            let e = m.bgnbd.expected_purchases(&r.s, HORIZON_DAYS);
            assert!(
                (p.expected_purchases - e).abs() <= 1e-12 * e.max(1e-12),
                "{e} vs {}",
                p.expected_purchases
            );
            let spend = m.gamma_gamma.expected_spend(
                r.s.x,
                if r.s.x > 0.0 {
                    r.mean_value_fen / 100.0
                } else {
                    0.0
                },
            ) * 100.0;
            let want = c360_analytics::clv::clv(
                |t| m.bgnbd.expected_purchases(&r.s, t),
                spend,
                12,
                MONTHLY_DISCOUNT,
            );
            assert!(
                (p.clv_fen - want).abs() <= 1e-10 * want.abs().max(1.0),
                "{want} vs {}",
                p.clv_fen
            );
        }
    }
}
