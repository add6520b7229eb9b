//! Per-customer profile features as of any day, and the analytics built on them in step 10:
//! RFM with per-city dynamic thresholds, lifecycle stage, 12-month value growth, k-means
//! segments with explanations, and a churn model trained on the past with a time split.
//!
//! Days are Asia/Shanghai calendar days numbered from 1970-01-01; "as of day A" means using
//! only orders before A.

use std::collections::HashSet;

use c360_analytics::churn::{Gbt, GbtParams};
use c360_analytics::rfm::{HighRule, RfmModel, RfmValues};
use c360_analytics::segment::{choose_k, standardize, Matrix};
use c360_warehouse::arrow::array::{Array, Float64Array, Int64Array};
use c360_warehouse::arrow::compute::cast;
use c360_warehouse::arrow::datatypes::DataType;
use c360_warehouse::Session;
use serde::Serialize;

use crate::query::ScalarValue;
use crate::CoreResult as Result;
use c360_model::Lifecycle;

const DAY: &str = "CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT)";

/// The features query; its `$1` is the as-of day (days since 1970-01-01 in the chain's zone).
/// `w`: the slice of customers, a predicate on `k.customer_id` whose bounds are `$2` and `$3`
/// (see [`crate::slice`]).
fn features_sql(w: &str) -> String {
    format!(
        "WITH o AS (SELECT k.customer_id, {DAY} AS day, o.total_fen, o.source, o.store_id, o.status
                   FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key WHERE {w}),
         p AS (SELECT * FROM o WHERE day < $1),
         dd AS (SELECT customer_id, day, day - LAG(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap,
                       ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY day DESC) AS rn
                FROM (SELECT DISTINCT customer_id, day FROM p WHERE status = 'paid') t),
         g AS (SELECT customer_id, gap FROM dd WHERE rn = 1),
         hs AS (SELECT customer_id, store_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY n DESC, store_id) AS rn
                FROM (SELECT customer_id, store_id, COUNT(*) AS n FROM p GROUP BY customer_id, store_id) x),
         agg AS (SELECT customer_id,
                  $1 - MAX(CASE WHEN status = 'paid' THEN day END) AS recency,
                  $1 - MIN(day) AS tenure,
                  SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END) AS orders,
                  SUM(CASE WHEN status = 'paid' THEN total_fen ELSE 0 END) AS spend,
                  SUM(CASE WHEN status = 'paid' AND day >= $1 - 90 THEN 1 ELSE 0 END) AS orders_90,
                  SUM(CASE WHEN status = 'paid' AND day >= $1 - 180 AND day < $1 - 90 THEN 1 ELSE 0 END) AS orders_prev_90,
                  SUM(CASE WHEN status = 'paid' AND day >= $1 - 365 THEN total_fen ELSE 0 END) AS spend_365,
                  AVG(CASE WHEN source = 'wx' THEN 1.0 ELSE 0.0 END) AS wx_share,
                  COUNT(DISTINCT store_id) AS stores,
                  SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) AS refunds
                 FROM p GROUP BY customer_id)
         SELECT a.customer_id, a.recency, a.tenure, a.orders, a.spend, a.orders_90, a.orders_prev_90, a.spend_365,
                a.wx_share, a.stores, a.refunds, g.gap AS last_gap, s.city_id, hs.store_id AS home_store_id
         FROM agg a LEFT JOIN g ON a.customer_id = g.customer_id
         LEFT JOIN hs ON a.customer_id = hs.customer_id AND hs.rn = 1
         LEFT JOIN stores s ON hs.store_id = s.store_id
         WHERE a.orders > 0 ORDER BY a.customer_id"
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct Features {
    pub customer_id: i64,
    pub recency: f64,
    pub tenure: f64,
    pub orders: f64,
    pub spend: f64,
    pub orders_90: f64,
    pub orders_prev_90: f64,
    pub spend_365: f64,
    pub wx_share: f64,
    pub stores: f64,
    pub refunds: f64,
    /// Days between the last two purchase days (None for one-time buyers).
    pub last_gap: Option<f64>,
    pub city_id: Option<i64>,
    /// The store of most of their orders.
    pub home_store_id: Option<i64>,
}

/// Whom a customer's RFM is compared with: customers of the same home city (default), of the
/// same home store, or the whole chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub enum RfmGroup {
    #[default]
    City,
    Store,
    National,
}

impl RfmGroup {
    pub fn parse(s: &str) -> Option<RfmGroup> {
        match s {
            "city" => Some(RfmGroup::City),
            "store" => Some(RfmGroup::Store),
            "national" => Some(RfmGroup::National),
            _ => None,
        }
    }
    /// Smallest group that gets its own cut points; smaller ones use the national cut points.
    pub fn min_size(self) -> usize {
        match self {
            RfmGroup::City => 200,
            RfmGroup::Store => 100,
            RfmGroup::National => usize::MAX,
        }
    }
    pub fn key(self, f: &Features) -> Option<String> {
        match self {
            RfmGroup::City => f.city_id.map(|c| format!("city:{c}")),
            RfmGroup::Store => f.home_store_id.map(|s| format!("store:{s}")),
            RfmGroup::National => None,
        }
    }
}

impl Features {
    pub const MODEL_NAMES: [&'static str; 11] = [
        "recency",
        "tenure",
        "orders",
        "spend",
        "avg_order",
        "orders_90",
        "orders_prev_90",
        "wx_share",
        "stores",
        "refunds",
        "last_gap",
    ];
    /// The churn model's inputs.
    pub fn vector(&self) -> [f64; 11] {
        [
            self.recency,
            self.tenure,
            self.orders,
            self.spend,
            self.spend / self.orders.max(1.0),
            self.orders_90,
            self.orders_prev_90,
            self.wx_share,
            self.stores,
            self.refunds,
            self.last_gap.unwrap_or(-1.0),
        ]
    }
}

pub async fn features(sess: &Session, asof: i64) -> Result<Vec<Features>> {
    features_sliced(sess, asof, crate::slice::SLICE_CUSTOMERS).await
}

/// [`features`] computed `per_slice` customers at a time, each slice one query over the orders
/// of its customers, so the aggregation holds a slice's customers, not the chain's (the same
/// answer whatever the size).
pub async fn features_sliced(sess: &Session, asof: i64, per_slice: usize) -> Result<Vec<Features>> {
    let mut out = Vec::new();
    for s in crate::slice::slices(sess, per_slice).await? {
        let sql = features_sql(&s.predicate("k.customer_id", 2));
        let [lo, hi] = s.params();
        let batches = sess
            .query_with(&sql, vec![ScalarValue::from(asof), lo, hi])
            .await?;
        features_from(&batches, &mut out)?;
    }
    Ok(out)
}

fn features_from(
    batches: &[datafusion::arrow::record_batch::RecordBatch],
    out: &mut Vec<Features>,
) -> Result<()> {
    for b in batches {
        let f = |i: usize| -> Result<Float64Array> {
            Ok(cast(b.column(i), &DataType::Float64)?
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("a cast to Float64 gives a Float64Array")
                .clone())
        };
        let id = cast(b.column(0), &DataType::Int64)?;
        let id = id
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        let city = cast(b.column(12), &DataType::Int64)?;
        let city = city
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        let store = cast(b.column(13), &DataType::Int64)?;
        let store = store
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        let cols: Vec<Float64Array> = (1..12).map(f).collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            let v = |c: usize| {
                if cols[c].is_null(i) {
                    0.0
                } else {
                    cols[c].value(i)
                }
            };
            out.push(Features {
                customer_id: id.value(i),
                recency: v(0),
                tenure: v(1),
                orders: v(2),
                spend: v(3),
                orders_90: v(4),
                orders_prev_90: v(5),
                spend_365: v(6),
                wx_share: v(7),
                stores: v(8),
                refunds: v(9),
                last_gap: (!cols[10].is_null(i)).then(|| cols[10].value(i)),
                city_id: (!city.is_null(i)).then(|| city.value(i)),
                home_store_id: (!store.is_null(i)).then(|| store.value(i)),
            });
        }
    }
    Ok(())
}

/// Customers with a paid order on a day in [from, to).
pub async fn buyers(sess: &Session, from: i64, to: i64) -> Result<HashSet<i64>> {
    let sql = format!(
        "SELECT DISTINCT k.customer_id FROM fact_orders o JOIN customer_keys k ON o.customer_key = k.source_key \
         WHERE o.status = 'paid' AND {DAY} >= $1 AND {DAY} < $2"
    );
    let mut s = HashSet::new();
    for b in sess
        .query_with(&sql, vec![ScalarValue::from(from), ScalarValue::from(to)])
        .await?
    {
        let c = cast(b.column(0), &DataType::Int64)?;
        let c = c
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a cast to Int64 gives a Int64Array");
        s.extend((0..b.num_rows()).map(|i| c.value(i)));
    }
    Ok(s)
}

/// Lifecycle stage from the purchase pattern (p_alive from BG/NBD where available).
///
/// new: first purchase within 30 days · won back: the last purchase ended a gap of over 120
/// days and is within 60 days · dormant: no purchase for 180 days, or P(alive) < 0.3 ·
/// growing: more purchases in the last 90 days than the 90 before · declining: fewer ·
/// mature: otherwise.
pub fn lifecycle(f: &Features, p_alive: Option<f64>) -> Lifecycle {
    if f.tenure <= 30.0 {
        Lifecycle::New
    } else if f.last_gap.is_some_and(|g| g > 120.0) && f.recency <= 60.0 {
        Lifecycle::WonBack
    } else if f.recency > 180.0 || p_alive.is_some_and(|p| p < 0.3) {
        Lifecycle::Dormant
    } else if f.orders_90 > f.orders_prev_90 {
        Lifecycle::Growing
    } else if f.orders_90 < f.orders_prev_90 {
        Lifecycle::Declining
    } else {
        Lifecycle::Mature
    }
}

/// Learns RFM cut points per group (dynamic thresholds, re-learned at every refresh).
pub fn rfm_model(rows: &[Features], group: RfmGroup) -> RfmModel {
    let v: Vec<RfmValues> = rows.iter().map(rfm_values).collect();
    let g: Vec<Option<String>> = rows.iter().map(|r| group.key(r)).collect();
    RfmModel::learn(&v, &g, group.min_size(), HighRule::MeanScore)
}

pub fn rfm_values(f: &Features) -> RfmValues {
    RfmValues {
        recency_days: f.recency,
        frequency: f.orders,
        monetary: f.spend,
    }
}

/// The k-means feature space: log scales for skewed counts and money.
pub const SEGMENT_FEATURES: [&str; 7] = [
    "recency",
    "frequency",
    "spend",
    "avg_order",
    "online_share",
    "stores",
    "tenure",
];

pub fn segment_matrix(rows: &[Features]) -> Matrix {
    let data = rows
        .iter()
        .flat_map(|f| {
            [
                f.recency.ln_1p(),
                f.orders.ln_1p(),
                (f.spend / 100.0).ln_1p(),
                (f.spend / f.orders.max(1.0) / 100.0).ln_1p(),
                f.wx_share,
                f.stores,
                f.tenure.ln_1p(),
            ]
        })
        .collect();
    Matrix::new(rows.len(), SEGMENT_FEATURES.len(), data)
}

#[derive(Debug, Clone, Serialize)]
pub struct Segments {
    pub k: usize,
    pub silhouette_by_k: Vec<(usize, f64)>,
    pub labels: Vec<usize>,
    pub descriptions: Vec<String>,
    /// The same, structured: share and distinguishing features per cluster.
    pub traits: Vec<Option<c360_analytics::segment::ClusterTraits>>,
}

/// k-means on standardised features, k in 3..=8 by silhouette on a seeded sample of at most
/// 20,000 customers, then the chosen k fitted on everyone; deterministic (seed 2030).
pub fn segments(rows: &[Features]) -> Option<Segments> {
    use c360_analytics::segment::kmeans;
    if rows.len() < 50 {
        return None;
    }
    let (z, _, _) = standardize(&segment_matrix(rows));
    let step = (z.rows / 20_000).max(1);
    let sample: Vec<f64> = (0..z.rows)
        .step_by(step)
        .flat_map(|i| z.row(i).to_vec())
        .collect();
    let zs = Matrix::new(sample.len() / z.cols, z.cols, sample);
    let (m, scores) = choose_k(&zs, &[3, 4, 5, 6, 7, 8], 2030);
    let m = if step == 1 {
        m
    } else {
        kmeans(&z, m.k, 2, 100, 2030)
    };
    let lab: Vec<Option<usize>> = m.labels.iter().map(|l| Some(*l)).collect();
    let traits = c360_analytics::segment::traits(&z, &lab, &SEGMENT_FEATURES, m.k);
    let descriptions = traits
        .iter()
        .map(|t| t.as_ref().map_or_else(|| "empty".into(), |t| t.words()))
        .collect();
    Some(Segments {
        k: m.k,
        silhouette_by_k: scores,
        labels: m.labels,
        descriptions,
        traits,
    })
}

fn matrix(rows: &[&Features]) -> Matrix {
    Matrix::new(
        rows.len(),
        11,
        rows.iter().flat_map(|f| f.vector()).collect(),
    )
}

/// Trains the churn model on the past: features as of `end - 180` with labels "no purchase in
/// the next 90 days", calibrated on features as of `end - 90` against the 90 days up to `end`.
pub async fn train_churn(sess: &Session, end: i64) -> Result<Option<Gbt>> {
    let (a1, a2) = (end - 180, end - 90);
    let f1 = features(sess, a1).await?;
    let f2 = features(sess, a2).await?;
    if f1.len() < 200 || f2.len() < 100 {
        return Ok(None);
    }
    let b1 = buyers(sess, a1, a1 + 90).await?;
    let b2 = buyers(sess, a2, end).await?;
    let y1: Vec<bool> = f1.iter().map(|f| !b1.contains(&f.customer_id)).collect();
    let y2: Vec<bool> = f2.iter().map(|f| !b2.contains(&f.customer_id)).collect();
    let x1 = matrix(&f1.iter().collect::<Vec<_>>());
    let x2 = matrix(&f2.iter().collect::<Vec<_>>());
    Ok(Some(Gbt::fit(&x1, &y1, &x2, &y2, &GbtParams::default())))
}

pub fn churn_scores(m: &Gbt, rows: &[Features]) -> Vec<f64> {
    use rayon::prelude::*;
    rows.par_iter().map(|f| m.predict(&f.vector())).collect()
}

/// One customer's state as the last refresh left it — enough to re-score them on a new order.
#[derive(Debug, Clone, Serialize)]
pub struct LiveProfile {
    pub features: Features,
    pub summary: c360_analytics::clv::Summary,
    pub mean_value_fen: f64,
    /// Observation end (exclusive day number) the state refers to.
    pub as_of: i64,
}

/// The fitted models and RFM cut points the last refresh stored in the manifest notes: all a
/// live re-score needs.
#[derive(Debug, Clone)]
pub struct StoredModels {
    pub models: Option<crate::clv::FittedModels>,
    pub rfm: RfmModel,
    pub group: RfmGroup,
}

impl StoredModels {
    /// None when the snapshot has no RFM model (no refresh has run).
    pub fn from_notes(
        notes: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Option<StoredModels> {
        let rfm = serde_json::from_value(notes.get("rfm")?.clone()).ok()?;
        Some(StoredModels {
            models: notes
                .get("models")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok()),
            rfm,
            group: notes
                .get("rfm_group")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        })
    }

    pub fn score(&self, p: &LiveProfile) -> LiveScore {
        live_score(p, self.models.as_ref(), &self.rfm, self.group)
    }
}

/// What the dashboards show for a customer, recomputed without refitting anything.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveScore {
    pub rfm: c360_analytics::rfm::RfmScore,
    pub lifecycle: Lifecycle,
    pub prediction: Option<crate::clv::Prediction>,
}

pub fn live_score(
    p: &LiveProfile,
    models: Option<&crate::clv::FittedModels>,
    rfm: &RfmModel,
    group: RfmGroup,
) -> LiveScore {
    let prediction = models.map(|m| crate::clv::predict(m, &p.summary, p.mean_value_fen));
    let group = group.key(&p.features);
    LiveScore {
        rfm: rfm.score(&rfm_values(&p.features), group.as_deref()),
        lifecycle: lifecycle(&p.features, prediction.map(|x| x.p_alive)),
        prediction,
    }
}

/// Applies one paid order on `day` (day number) of `amount_fen`: the customer's RFM values,
/// purchase summary and features move; scores come from the stored cut points and fitted
/// parameters (closed form, no refit, no quantile recomputation).
pub fn apply_order(p: &LiveProfile, day: i64, amount_fen: f64) -> LiveProfile {
    let f = &p.features;
    let as_of = p.as_of.max(day + 1);
    let last_day = p.as_of - f.recency as i64;
    let first_day = p.as_of - f.tenure as i64;
    let new_day = day != last_day;
    let features = Features {
        recency: (as_of - day) as f64,
        tenure: (as_of - first_day) as f64,
        orders: f.orders + 1.0,
        spend: f.spend + amount_fen,
        // Windows move with the as-of day; an approximation until the next refresh when it moves.
        orders_90: f.orders_90 + 1.0,
        spend_365: f.spend_365 + amount_fen,
        last_gap: if new_day {
            Some((day - last_day) as f64)
        } else {
            f.last_gap
        },
        ..f.clone()
    };
    let at = (day - first_day) as f64;
    let summary = p.summary.add_purchase(at);
    let mean_value_fen =
        c360_analytics::clv::mean_after_purchase(&p.summary, p.mean_value_fen, at, amount_fen);
    LiveProfile {
        features,
        summary,
        mean_value_fen,
        as_of,
    }
}

/// Every customer's live profile in the snapshot (customers with a paid order), sorted by
/// customer id: two scans of the fact tables for all of them. A server keeps this once per
/// snapshot ([`LiveBases`]) rather than scanning per customer.
pub async fn live_profiles(sess: &Session) -> Result<LiveBases> {
    let (rows, end_day) = crate::clv::customer_summaries(sess).await?;
    let feats = features(sess, end_day).await?;
    Ok(LiveBases::join(&rows, &feats, end_day))
}

/// The live profiles of one snapshot, sorted by customer id ([`live_profiles`]).
#[derive(Debug, Default)]
pub struct LiveBases(Vec<LiveProfile>);

impl LiveBases {
    /// Every customer with both a purchase summary and features as of `end_day` (the
    /// observation end both were computed for), sorted by customer id.
    pub fn join(
        rows: &[crate::clv::CustomerSummary],
        feats: &[Features],
        end_day: i64,
    ) -> LiveBases {
        let mut by_id: Vec<&Features> = feats.iter().collect();
        by_id.sort_unstable_by_key(|f| f.customer_id);
        let mut out: Vec<LiveProfile> = Vec::with_capacity(rows.len().min(feats.len()));
        for s in rows {
            if let Ok(i) = by_id.binary_search_by_key(&s.customer_id, |f| f.customer_id) {
                out.push(LiveProfile {
                    features: by_id[i].clone(),
                    summary: s.s,
                    mean_value_fen: s.mean_value_fen,
                    as_of: end_day,
                });
            }
        }
        out.sort_unstable_by_key(|p| p.features.customer_id);
        LiveBases(out)
    }

    /// One customer's profile as the snapshot left it (None: no paid order in it).
    pub fn get(&self, customer_id: i64) -> Option<&LiveProfile> {
        self.0
            .binary_search_by_key(&customer_id, |p| p.features.customer_id)
            .ok()
            .map(|i| &self.0[i])
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The profiles, sorted by customer id.
    pub fn as_slice(&self) -> &[LiveProfile] {
        &self.0
    }
    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<LiveProfile>()
    }
}

/// Loads one customer's live profile from the current snapshot (scans the fact tables: for a
/// single lookup; a server uses [`live_profiles`] once per snapshot).
pub async fn live_profile(sess: &Session, customer_id: i64) -> Result<Option<LiveProfile>> {
    let (rows, end_day) = crate::clv::customer_summaries(sess).await?;
    let Some(s) = rows.into_iter().find(|r| r.customer_id == customer_id) else {
        return Ok(None);
    };
    let Some(f) = features(sess, end_day)
        .await?
        .into_iter()
        .find(|f| f.customer_id == customer_id)
    else {
        return Ok(None);
    };
    Ok(Some(LiveProfile {
        features: f,
        summary: s.s,
        mean_value_fen: s.mean_value_fen,
        as_of: end_day,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: i64, city: i64, store: i64, spend: f64) -> Features {
        Features {
            customer_id: id,
            recency: 10.0,
            tenure: 100.0,
            orders: 3.0,
            spend,
            orders_90: 1.0,
            orders_prev_90: 1.0,
            spend_365: spend,
            wx_share: 0.0,
            stores: 1.0,
            refunds: 0.0,
            last_gap: Some(20.0),
            city_id: Some(city),
            home_store_id: Some(store),
        }
    }

    #[test]
    fn rfm_can_be_normalised_per_store_city_or_chain() {
        // Store 1 customers spend ten times store 2's, both in city 7.
        let rows: Vec<Features> = (0..400)
            .map(|i| {
                if i % 2 == 0 {
                    f(i, 7, 1, 10_000.0 + i as f64)
                } else {
                    f(i, 7, 2, 1_000.0 + i as f64)
                }
            })
            .collect();
        let top_of_store2 = f(9999, 7, 2, 1_500.0);
        let by_store = rfm_model(&rows, RfmGroup::Store);
        let by_city = rfm_model(&rows, RfmGroup::City);
        let national = rfm_model(&rows, RfmGroup::National);
        assert!(by_store.groups.contains_key("store:2") && by_city.groups.contains_key("city:7"));
        assert!(national.groups.is_empty());
        let s = |m: &RfmModel, g: RfmGroup| {
            m.score(
                &rfm_values(&top_of_store2),
                g.key(&top_of_store2).as_deref(),
            )
            .m
        };
        assert_eq!(s(&by_store, RfmGroup::Store), 5, "best of its store");
        assert!(s(&by_city, RfmGroup::City) <= 3, "middling in its city");
        assert_eq!(RfmGroup::parse("store"), Some(RfmGroup::Store));
        assert_eq!(RfmGroup::parse("nation"), None);
    }
}
