//! Honest scoring of the lifetime-value models against the simulator's ground truth:
//! parameter recovery on the true persons' purchase histories, and a time-based holdout —
//! predictions made at the cut-off against what each person really did in the next 365 days.

use std::collections::HashMap;

use c360_analytics::clv::{BgNbd, Summary};
use c360_db::{get_f64, get_i64, get_text, Db};
use c360_model::parse_ts;
use c360_warehouse::{Session, Warehouse};
use serde::Serialize;

use crate::error::Result;
use c360_core::clv::{customer_summaries, fit_models, predict, FittedModels, HORIZON_DAYS};

#[derive(Debug, Clone, Serialize)]
pub struct TruthParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClvEval {
    pub truth: TruthParams,
    /// BG/NBD fitted on the true persons' complete pre-cut-off histories.
    pub fit_on_persons: BgNbd,
    /// The models fitted on every resolved customer, as the refresh does.
    pub models_on_customers: FittedModels,
    /// Gamma-Gamma (yuan) fitted on the repeat buyers among the clean customers (one person
    /// each): the simulator's paid amounts are exactly Gamma(p, ν), so this recovers p, q, γ.
    pub gamma_gamma_on_clean: c360_analytics::clv::GammaGamma,
    pub gamma_gamma_customers: usize,
    /// Every customer as the warehouse sees it (see [`Persons::share`]).
    pub holdout: ClvHoldout,
    /// Only the clean customers: ids all of one person that no other customer shares.
    pub holdout_clean: ClvHoldout,
}

/// Predictions made at the cut-off against the next 365 days.
#[derive(Debug, Clone, Serialize)]
pub struct ClvHoldout {
    pub customers: usize,
    pub predicted_purchases: f64,
    pub actual_purchases: f64,
    pub mae: f64,
    pub pearson: f64,
    /// AUC of P(alive) for "bought again in the next 365 days", on repeat buyers.
    pub auc_alive: f64,
    /// The 12-month spend forecast behind value growth (expected purchases × expected spend)
    /// against what the customers really spent in the 365 days after the cut-off.
    pub predicted_spend_fen: f64,
    pub actual_spend_fen: f64,
    pub spend_pearson: f64,
}

#[derive(Default)]
struct HoldoutAcc {
    pred: Vec<f64>,
    act: Vec<f64>,
    sp_pred: Vec<f64>,
    sp_act: Vec<f64>,
    alive_s: Vec<f64>,
    alive_l: Vec<bool>,
}

impl HoldoutAcc {
    fn push(&mut self, p: &c360_core::clv::Prediction, repeat: bool, actual: f64, spend: f64) {
        self.pred.push(p.expected_purchases);
        self.act.push(actual);
        self.sp_pred
            .push(p.expected_purchases * p.expected_spend_fen);
        self.sp_act.push(spend);
        if repeat {
            self.alive_s.push(p.p_alive);
            self.alive_l.push(actual > 0.0);
        }
    }

    fn finish(self) -> ClvHoldout {
        let n = self.pred.len();
        let mae = self
            .pred
            .iter()
            .zip(&self.act)
            .map(|(p, a)| (p - a).abs())
            .sum::<f64>()
            / n.max(1) as f64;
        ClvHoldout {
            customers: n,
            predicted_purchases: self.pred.iter().sum(),
            actual_purchases: self.act.iter().sum(),
            mae,
            pearson: pearson(&self.pred, &self.act),
            auc_alive: auc(&self.alive_s, &self.alive_l),
            predicted_spend_fen: self.sp_pred.iter().sum(),
            actual_spend_fen: self.sp_act.iter().sum(),
            spend_pearson: pearson(&self.sp_pred, &self.sp_act),
        }
    }
}

pub use c360_analytics::churn::auc;

pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

/// The warehouse's customer summaries (and their observation end) with the models the product
/// fits on them, and the session they came from.
async fn fitted(
    warehouse: &std::path::Path,
) -> Result<(
    Session,
    Vec<c360_core::clv::CustomerSummary>,
    i64,
    FittedModels,
)> {
    let sess = Session::open(&Warehouse::open(warehouse)?).await?;
    let (rows, end_day) = customer_summaries(&sess).await?;
    let models =
        fit_models(&rows, end_day, false).map_err(|e| crate::error::EvalError::Source {
            table: "customers".into(),
            reason: e.to_string(),
        })?;
    Ok((sess, rows, end_day, models))
}

pub async fn evaluate_clv(warehouse: &std::path::Path, truth_url: &str) -> Result<ClvEval> {
    let truth = Db::connect(truth_url).await?;
    let params: HashMap<String, String> = truth
        .fetch_all("SELECT name, value FROM params")
        .await?
        .iter()
        .filter_map(|r| Some((get_text(r, "name")?, get_text(r, "value")?)))
        .collect();
    let num = |k: &str| {
        params
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let tp = TruthParams {
        r: num("r"),
        alpha: num("alpha"),
        a: num("a"),
        b: num("b"),
        p: num("p"),
        q: num("q"),
        gamma: num("gamma"),
    };
    let cutoff = c360_model::parse_date(params.get("cutoff").map(String::as_str).unwrap_or(""))
        .map_err(|e| crate::error::EvalError::Source {
            table: "truth.params".into(),
            reason: e.to_string(),
        })?;
    let cutoff_t = cutoff.and_time(chrono::NaiveTime::MIN);

    // Parameter recovery on complete, correctly identified histories.
    let persons = truth
        .fetch_all(
            "SELECT person_id, first_order, last_order, n_orders FROM persons WHERE n_orders > 0",
        )
        .await?;
    let days =
        |a: chrono::NaiveDateTime, b: chrono::NaiveDateTime| (b - a).num_seconds() as f64 / 86400.0;
    let ps: Vec<Summary> = persons
        .iter()
        .filter_map(|r| {
            let f = parse_ts(&get_text(r, "first_order")?).ok()?;
            let l = parse_ts(&get_text(r, "last_order")?).ok()?;
            let n = get_i64(r, "n_orders")? as f64;
            Some(Summary {
                x: n - 1.0,
                t_x: if n > 1.0 { days(f, l) } else { 0.0 },
                t: days(f, cutoff_t),
            })
        })
        .collect();
    let fit_on_persons = BgNbd::fit(&ps).map_err(|e| crate::error::EvalError::Source {
        table: "persons".into(),
        reason: e.to_string(),
    })?;

    // Holdout on resolved customers.
    let (sess, rows, _, models) = fitted(warehouse).await?;
    let persons = customer_persons(&sess, &truth).await?;
    let clean = persons.clean();
    let future: HashMap<i64, f64> = truth
        .fetch_all(
            "SELECT person_id, COUNT(DISTINCT substr(order_time, 1, 10)) AS n FROM future_orders \
             WHERE order_time < '9999' GROUP BY person_id",
        )
        .await?
        .iter()
        .filter_map(|r| Some((get_i64(r, "person_id")?, get_f64(r, "n")?)))
        .collect();
    let spend: HashMap<i64, f64> = truth
        .fetch_all("SELECT person_id, future_spend_fen FROM persons")
        .await?
        .iter()
        .filter_map(|r| Some((get_i64(r, "person_id")?, get_f64(r, "future_spend_fen")?)))
        .collect();
    truth.close().await;
    let clean_spend: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| clean.contains_key(&r.customer_id) && r.s.x > 0.0 && r.mean_value_fen > 0.0)
        .map(|r| (r.s.x, r.mean_value_fen / 100.0))
        .collect();
    let gamma_gamma_on_clean = c360_analytics::clv::GammaGamma::fit(&clean_spend).map_err(|e| {
        crate::error::EvalError::Source {
            table: "customers".into(),
            reason: e.to_string(),
        }
    })?;
    let (mut all, mut only_clean) = (HoldoutAcc::default(), HoldoutAcc::default());
    for r in &rows {
        let p = predict(&models, &r.s, r.mean_value_fen);
        let repeat = r.s.x > 0.0;
        let fut = |q: i64| future.get(&q).copied().unwrap_or(0.0);
        let spent = |q: i64| spend.get(&q).copied().unwrap_or(0.0);
        if let (Some(actual), Some(sp)) = (
            persons.share(r.customer_id, fut),
            persons.share(r.customer_id, spent),
        ) {
            all.push(&p, repeat, actual, sp);
        }
        if let Some(person) = clean.get(&r.customer_id) {
            only_clean.push(&p, repeat, fut(*person), spent(*person));
        }
    }
    Ok(ClvEval {
        truth: tp,
        fit_on_persons,
        models_on_customers: models,
        gamma_gamma_on_clean,
        gamma_gamma_customers: clean_spend.len(),
        holdout: all.finish(),
        holdout_clean: only_clean.finish(),
    })
}

/// The simulator's population mean spend per order in yuan, p·γ/(q−1): what Gamma-Gamma's
/// p·v/(q−1) estimates.
pub fn gamma_gamma_truth_mean(t: &TruthParams) -> f64 {
    t.p * t.gamma / (t.q - 1.0)
}

/// Per-customer holiday effect (`v_customer_holiday`) against each person's true holiday
/// multiplier in the simulator.
#[derive(Debug, Clone, Serialize)]
pub struct HolidayEval {
    /// Clean customers with at least `min_orders` orders that were scored.
    pub customers: usize,
    pub min_orders: i64,
    /// The chain-wide lift the shrinkage pulls toward, and the truth's mean holiday multiplier
    /// over the mean non-holiday multiplier of the same customers.
    pub pooled_lift: f64,
    pub true_mean_lift: f64,
    /// Spearman rank correlation of the shrunk lift with the true multiplier.
    pub spearman: f64,
    /// Mean true multiplier of the customers in the top and bottom quartiles of estimated lift.
    pub true_mult_top_quartile: f64,
    pub true_mult_bottom_quartile: f64,
}

pub async fn evaluate_holiday(
    warehouse: &std::path::Path,
    truth_url: &str,
    min_orders: i64,
) -> Result<HolidayEval> {
    use c360_warehouse::arrow::array::{Float64Array, Int64Array};
    use c360_warehouse::arrow::compute::cast;
    use c360_warehouse::arrow::datatypes::DataType;
    let truth = Db::connect(truth_url).await?;
    let true_mult: HashMap<i64, f64> = truth
        .fetch_all("SELECT person_id, holiday_mult FROM persons")
        .await?
        .iter()
        .filter_map(|r| Some((get_i64(r, "person_id")?, get_f64(r, "holiday_mult")?)))
        .collect();
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let clean = clean_customers(&sess, &truth).await?;
    truth.close().await;
    let (mut est, mut tru) = (Vec::new(), Vec::new());
    let sql = "SELECT customer_id, holiday_lift FROM v_customer_holiday \
         WHERE holiday_orders + other_orders >= $1";
    let min = c360_warehouse::query::ScalarValue::from(min_orders);
    for b in sess.query_with(sql, vec![min]).await? {
        let id = cast(b.column(0), &DataType::Int64)?;
        let lift = cast(b.column(1), &DataType::Float64)?;
        let id = id
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        let lift = lift
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("a cast to Float64 gives a Float64Array");
        for i in 0..b.num_rows() {
            let Some(p) = clean.get(&id.value(i)) else {
                continue;
            };
            let Some(t) = true_mult.get(p) else { continue };
            est.push(lift.value(i));
            tru.push(*t);
        }
    }
    let n = est.len();
    let (re, rt) = (
        c360_analytics::churn::average_ranks(&est),
        c360_analytics::churn::average_ranks(&tru),
    );
    let mut by_est: Vec<usize> = (0..n).collect();
    by_est.sort_by(|a, b| est[*a].total_cmp(&est[*b]));
    let q = (n / 4).max(1);
    let mean_of = |ix: &[usize]| ix.iter().map(|i| tru[*i]).sum::<f64>() / ix.len().max(1) as f64;
    let pooled_lift = sess
        .scalar_f64(
            "SELECT (CAST(SUM(holiday_orders) AS DOUBLE) / SUM(holiday_days)) / \
                    (CAST(SUM(other_orders) AS DOUBLE) / SUM(other_days)) FROM v_customer_holiday",
        )
        .await?;
    // Non-holiday days mix weekends (1.1) and weekdays (0.9) about 2:5.
    let other_mean = (2.0 * 1.1 + 5.0 * 0.9) / 7.0;
    Ok(HolidayEval {
        customers: n,
        min_orders,
        pooled_lift,
        true_mean_lift: tru.iter().sum::<f64>() / n.max(1) as f64 / other_mean,
        spearman: pearson(&re, &rt),
        true_mult_top_quartile: mean_of(&by_est[n.saturating_sub(q)..]),
        true_mult_bottom_quartile: mean_of(&by_est[..q.min(n)]),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnEval {
    /// Every customer as the warehouse sees it (churned: none of its persons bought in the 90
    /// days after the cut-off).
    pub all: ChurnHoldout,
    /// Only the clean customers (one person each, that no other customer shares).
    pub clean: ChurnHoldout,
}

/// The churn model on holdout customers.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnHoldout {
    pub gbt: c360_analytics::churn::Scorecard,
    /// Repeat buyers only: the GBT and the BTYD score 1 − P(alive) side by side.
    pub gbt_auc_repeat: f64,
    pub btyd_auc_repeat: f64,
    /// One-time buyers, where BG/NBD's P(alive) is 1 by construction and is not used.
    pub gbt_auc_one_time: f64,
    pub customers: usize,
}

#[derive(Default)]
struct ChurnAcc {
    p: Vec<f64>,
    y: Vec<bool>,
    gr: Vec<f64>,
    br: Vec<f64>,
    yr: Vec<bool>,
    go: Vec<f64>,
    yo: Vec<bool>,
}

impl ChurnAcc {
    fn push(&mut self, score: f64, btyd: Option<f64>, churned: bool) {
        self.p.push(score);
        self.y.push(churned);
        match btyd {
            Some(b) => {
                self.gr.push(score);
                self.br.push(b);
                self.yr.push(churned);
            }
            None => {
                self.go.push(score);
                self.yo.push(churned);
            }
        }
    }

    fn finish(self) -> ChurnHoldout {
        ChurnHoldout {
            customers: self.p.len(),
            gbt: c360_analytics::churn::scorecard(&self.p, &self.y),
            gbt_auc_repeat: auc(&self.gr, &self.yr),
            btyd_auc_repeat: auc(&self.br, &self.yr),
            gbt_auc_one_time: auc(&self.go, &self.yo),
        }
    }
}

/// Each customer's true persons (those whose source ids it holds) and, per person, how many
/// customers their ids are spread over.
pub(crate) struct Persons {
    of: HashMap<i64, Vec<i64>>,
    spread: HashMap<i64, usize>,
}

impl Persons {
    /// Customers with one true person that no other customer shares, and that person.
    pub(crate) fn clean(&self) -> HashMap<i64, i64> {
        self.of
            .iter()
            .filter(|(_, ps)| ps.len() == 1 && self.spread.get(&ps[0]) == Some(&1))
            .map(|(c, ps)| (*c, ps[0]))
            .collect()
    }

    /// What customer `c` truly did, as the warehouse sees it: the sum over its persons of
    /// `value(person)`, a person split over k customers counting 1/k to each (the truth does not
    /// say under which id a future order comes). `None` for a customer of no known person.
    pub(crate) fn share(&self, c: i64, value: impl Fn(i64) -> f64) -> Option<f64> {
        let ps = self.of.get(&c)?;
        Some(
            ps.iter()
                .map(|p| value(*p) / self.spread.get(p).copied().unwrap_or(1).max(1) as f64)
                .sum(),
        )
    }

    /// Whether person `p` has an id some customer holds.
    pub(crate) fn known(&self, p: i64) -> bool {
        self.spread.contains_key(&p)
    }

    /// Whether any of customer `c`'s persons satisfies `f`.
    pub(crate) fn any(&self, c: i64, f: impl Fn(i64) -> bool) -> Option<bool> {
        Some(self.of.get(&c)?.iter().any(|p| f(*p)))
    }
}

pub(crate) async fn customer_persons(sess: &Session, truth: &Db) -> Result<Persons> {
    let mut key_person: HashMap<String, i64> = HashMap::new();
    for r in truth
        .fetch_all("SELECT system, source_id, person_id FROM ids")
        .await?
    {
        let sys = get_text(&r, "system").unwrap_or_default();
        let k = format!(
            "{}:{}",
            if sys == "member" { "M" } else { "U" },
            get_i64(&r, "source_id").unwrap_or(0)
        );
        key_person.insert(k, get_i64(&r, "person_id").unwrap_or(0));
    }
    let mut of: HashMap<i64, Vec<i64>> = HashMap::new();
    for b in sess
        .query("SELECT source_key, customer_id FROM customer_keys")
        .await?
    {
        let k = c360_warehouse::manifest::str_col(&b, "source_key");
        let c = b
            .column(1)
            .as_any()
            .downcast_ref::<c360_warehouse::arrow::array::Int64Array>()
            .expect("customer_keys.customer_id is Int64");
        for i in 0..b.num_rows() {
            if let Some(p) = key_person.get(k.value(i)) {
                of.entry(c.value(i)).or_default().push(*p);
            }
        }
    }
    let mut spread: HashMap<i64, usize> = HashMap::new();
    for ps in of.values_mut() {
        ps.sort();
        ps.dedup();
        for p in ps.iter() {
            *spread.entry(*p).or_default() += 1;
        }
    }
    Ok(Persons { of, spread })
}

/// Maps each customer to its one true person when that is unambiguous (the customer's ids all
/// belong to one person, and no other customer holds an id of that person).
pub(crate) async fn clean_customers(sess: &Session, truth: &Db) -> Result<HashMap<i64, i64>> {
    Ok(customer_persons(sess, truth).await?.clean())
}

pub async fn evaluate_churn(warehouse: &std::path::Path, truth_url: &str) -> Result<ChurnEval> {
    use c360_core::profile;
    let truth = Db::connect(truth_url).await?;
    let (sess, rows, end_day, models) = fitted(warehouse).await?;
    let persons = customer_persons(&sess, &truth).await?;
    let clean = persons.clean();
    let cutoff = truth
        .fetch_all("SELECT value FROM params WHERE name = 'cutoff'")
        .await?;
    let cutoff = cutoff
        .first()
        .and_then(|r| get_text(r, "value"))
        .unwrap_or_default();
    let cutoff_d =
        c360_model::parse_date(&cutoff).map_err(|e| crate::error::EvalError::Source {
            table: "truth.params".into(),
            reason: e.to_string(),
        })?;
    let until = (cutoff_d + chrono::Duration::days(90)).to_string();
    let active: std::collections::HashSet<i64> = truth
        .fetch(
            "SELECT DISTINCT person_id FROM future_orders WHERE order_time < ?",
            &[until.into()],
        )
        .await?
        .iter()
        .filter_map(|r| get_i64(r, "person_id"))
        .collect();
    truth.close().await;
    let model = profile::train_churn(&sess, end_day).await?.ok_or_else(|| {
        crate::error::EvalError::Source {
            table: "fact_orders".into(),
            reason: "too little history to train a churn model".into(),
        }
    })?;
    let feats = profile::features(&sess, end_day).await?;
    let scores = profile::churn_scores(&model, &feats);
    let summary: HashMap<i64, Summary> = rows.iter().map(|r| (r.customer_id, r.s)).collect();
    let (mut all, mut only_clean) = (ChurnAcc::default(), ChurnAcc::default());
    for (f, s) in feats.iter().zip(&scores) {
        // 1 − P(alive) for repeat buyers; none for one-time buyers.
        let btyd = summary
            .get(&f.customer_id)
            .filter(|sm| sm.x > 0.0)
            .map(|sm| 1.0 - models.bgnbd.p_alive(sm));
        if let Some(bought) = persons.any(f.customer_id, |q| active.contains(&q)) {
            all.push(*s, btyd, !bought);
        }
        if let Some(person) = clean.get(&f.customer_id) {
            only_clean.push(*s, btyd, !active.contains(person));
        }
    }
    Ok(ChurnEval {
        all: all.finish(),
        clean: only_clean.finish(),
    })
}

/// The predicted next visit (BG/NBD's median wait of an alive customer) against the truth's
/// real next orders, beside two fixed rules, on customers that are one true person.
#[derive(Debug, Clone, Serialize)]
pub struct NextVisitEval {
    /// Customers scored (one true person, with an order in the year after the observation end:
    /// the truth's horizon, and the one the prediction is conditioned on).
    pub customers: usize,
    /// Mean absolute error in days of the predicted next order.
    pub mae_model: f64,
    /// … of "30 days after the last order" (not before the observation end).
    pub mae_rule_30d: f64,
    /// … of "the chain's median gap between orders after the last order".
    pub mae_chain_median: f64,
    pub chain_median_gap_days: f64,
    /// AUC of the overdue score for "no order in the 90 days after the observation end", on all
    /// one-person customers (beside the AUC of days since the last order, the fixed rule's score).
    pub overdue_auc: f64,
    pub recency_auc: f64,
}

pub async fn evaluate_next_visit(
    warehouse: &std::path::Path,
    truth_url: &str,
) -> Result<NextVisitEval> {
    let (sess, rows, end_day, models) = fitted(warehouse).await?;
    let truth = Db::connect(truth_url).await?;
    let persons = customer_persons(&sess, &truth).await?;
    let clean = persons.clean();
    // The chain's median gap between a customer's order days.
    let gap = sess
        .query(
            "WITH d AS (SELECT DISTINCT k.customer_id, \
               CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT) AS day \
               FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key WHERE o.status = 'paid') \
             SELECT CAST(approx_median(CAST(gap AS DOUBLE)) AS DOUBLE) AS g FROM \
             (SELECT day - LAG(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM d) x WHERE gap IS NOT NULL",
        )
        .await?;
    let chain_gap = gap
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<c360_warehouse::arrow::array::Float64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(30.0);
    // Each person's first order after the observation end, in days after it.
    let end_t = chrono::DateTime::from_timestamp(end_day * 86_400, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    let first_future: HashMap<i64, f64> = truth
        .fetch_all("SELECT person_id, MIN(order_time) AS t FROM future_orders GROUP BY person_id")
        .await?
        .iter()
        .filter_map(|r| {
            let t = parse_ts(&get_text(r, "t")?).ok()?;
            Some((
                get_i64(r, "person_id")?,
                (t - end_t).num_seconds() as f64 / 86_400.0,
            ))
        })
        .collect();
    truth.close().await;
    let (mut n, mut e_model, mut e_30, mut e_med) = (0usize, 0.0, 0.0, 0.0);
    let (mut overdue, mut recency, mut lapsed) = (Vec::new(), Vec::new(), Vec::new());
    for r in &rows {
        let Some(person) = clean.get(&r.customer_id) else {
            continue;
        };
        let since_last = r.s.t - r.s.t_x;
        let next = first_future
            .get(person)
            .copied()
            .filter(|d| (0.0..HORIZON_DAYS).contains(d));
        overdue.push(models.bgnbd.overdue(&r.s));
        recency.push(since_last);
        lapsed.push(next.is_none_or(|d| d >= 90.0));
        let Some(actual) = next else { continue };
        n += 1;
        e_model += (models.bgnbd.median_wait_within(&r.s, HORIZON_DAYS) - actual).abs();
        e_30 += ((30.0 - since_last).max(0.0) - actual).abs();
        e_med += ((chain_gap - since_last).max(0.0) - actual).abs();
    }
    let mean = |s: f64| if n == 0 { f64::NAN } else { s / n as f64 };
    Ok(NextVisitEval {
        customers: n,
        mae_model: mean(e_model),
        mae_rule_30d: mean(e_30),
        mae_chain_median: mean(e_med),
        chain_median_gap_days: chain_gap,
        overdue_auc: c360_analytics::churn::auc(&overdue, &lapsed),
        recency_auc: c360_analytics::churn::auc(&recency, &lapsed),
    })
}
