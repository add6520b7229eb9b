//! The chain at a glance: customers, orders, revenue, tiers, the capture rate and the live
//! counters.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiResult, Q};
use crate::state::{Answer, AppState};
use crate::support::*;

/// The chain (or a store manager's stores) at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// The warehouse snapshot these figures come from.
    pub warehouse_version: u64,
    /// Paid orders: orders, revenue_fen, buyers, avg_ticket_fen, first_order, last_order.
    pub kpi: Option<Row>,
    /// customers, repeat_customers, active_90d, avg_spend_fen.
    pub customers: Option<Row>,
    /// clv_12m_fen (sum) and avg_clv_fen.
    pub clv: Option<Row>,
    /// Per tier: tier, customers, spend_fen.
    pub tiers: Vec<Row>,
    /// Per month: month, orders, revenue_fen, buyers.
    pub monthly: Vec<Row>,
    /// The capture rate of paid orders: orders, known, via_payment, anonymous_with_account,
    /// capture_rate (see `/capture`).
    pub capture: Option<Row>,
    /// Orders ingested live since the snapshot.
    pub live: LiveCounters,
}

/// Orders received live since the snapshot (for the caller's stores).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveCounters {
    pub orders: i64,
    pub revenue_fen: i64,
}

#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, body = Overview, description = "KPIs: customers, orders, revenue, tiers, live counters")))]
pub(crate) async fn overview(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Answer<Overview>> {
    let key = format!("overview|{}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let of = scoped(&p, "status = 'paid'", "store_id");
            let cf = scoped(&p, "TRUE", "home_store_id");
            let kpi = qf(&s, &format!(
                "SELECT COUNT(*) AS orders, COALESCE(SUM(total_fen), 0) AS revenue_fen, \
                 COUNT(DISTINCT customer_id) AS buyers, AVG(total_fen) AS avg_ticket_fen, \
                 MIN(order_time) AS first_order, MAX(order_time) AS last_order \
                 FROM orders WHERE {}", of.sql()
            ), &of).await?;
            let cust = qf(&s, &format!(
                "SELECT COUNT(*) AS customers, SUM(CASE WHEN frequency > 1 THEN 1 ELSE 0 END) AS repeat_customers, \
                 SUM(CASE WHEN recency_days <= 90 THEN 1 ELSE 0 END) AS active_90d, AVG(monetary_fen) AS avg_spend_fen \
                 FROM customer_segmentation WHERE {}", cf.sql()
            ), &cf).await?;
            let tiers = qf(&s, &format!(
                "SELECT tier, COUNT(*) AS customers, SUM(monetary_fen) AS spend_fen FROM customer_segmentation \
                 WHERE {} GROUP BY tier ORDER BY customers DESC", cf.sql()
            ), &cf).await?;
            let monthly = qf(&s, &format!(
                "SELECT month, COUNT(*) AS orders, SUM(total_fen) AS revenue_fen, COUNT(DISTINCT customer_id) AS buyers \
                 FROM orders WHERE {} GROUP BY month ORDER BY month", of.sql()
            ), &of).await?;
            let pf = scoped(&p, "p.metric = 'clv_fen'", "c.home_store_id");
            let clv = qf(&s, &format!(
                "SELECT SUM(p.value) AS clv_12m_fen, AVG(p.value) AS avg_clv_fen FROM customer_predictions p \
                 JOIN customer_segmentation c ON p.customer_id = c.customer_id WHERE {}", pf.sql()
            ), &pf).await?;
            let cap = qf(&s, &format!("{CAPTURE_COLS} FROM orders o WHERE {}", of.sql()), &of).await?;
            let (orders, revenue_fen) = st2.live_stats().in_stores(crate::authz::stores(&p));
            Ok(Overview {
                capture: first(cap),
                warehouse_version: s.version,
                kpi: first(kpi),
                customers: first(cust),
                clv: first(clv),
                tiers: rows(tiers),
                monthly: rows(monthly),
                live: LiveCounters { orders, revenue_fen },
            })
        })
        .await
}

/// Per group of paid orders: how many, how many are tied to a known customer (`known`), how
/// many of those through a payment account alone (`via_payment`: an anonymous till order paid
/// by an account identity links to a customer), how many carry an account no customer is known
/// by yet (`anonymous_with_account`), and the capture rate (known / orders).
const CAPTURE_COLS: &str = "SELECT COUNT(*) AS orders, \
     SUM(CASE WHEN o.customer_id IS NOT NULL THEN 1 ELSE 0 END) AS known, \
     SUM(CASE WHEN o.customer_id IS NOT NULL AND o.customer_key LIKE 'PAY:%' THEN 1 ELSE 0 END) AS via_payment, \
     SUM(CASE WHEN o.customer_id IS NULL AND o.customer_key LIKE 'PAY:%' THEN 1 ELSE 0 END) AS anonymous_with_account, \
     AVG(CASE WHEN o.customer_id IS NULL THEN 0.0 ELSE 1.0 END) AS capture_rate";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaptureParams {
    /// Breakdown: channel (default), source, store, daypart or day.
    #[param(value_type = Option<doc::CaptureBy>)]
    by: Option<String>,
}

/// The capture rate: the share of paid orders tied to a known customer (what guest-data
/// products call the key metric; brands typically know 5–10% of their guests' orders).
#[derive(Debug, Serialize, ToSchema)]
pub struct Capture {
    pub by: String,
    /// All the caller's paid orders in the range: orders, known, via_payment,
    /// anonymous_with_account, capture_rate.
    pub total: Option<Row>,
    /// The same per value of `by` (column `key`; stores also `name`), in key order.
    pub rows: Vec<Row>,
}

#[utoipa::path(get, path = "/api/v1/capture", params(CaptureParams, DaysParams), responses((status = 200, body = Capture, description = "The capture rate (share of paid orders tied to a known customer, and how many only through a payment account) overall and per channel, source, store, daypart or day"), (status = 400, body = crate::error::ErrorBody)))]
pub(crate) async fn capture(
    State(st): State<AppState>,
    p: Principal,
    Q(cp): Q<CaptureParams>,
    Q(range): Q<DaysParams>,
) -> ApiResult<Answer<Capture>> {
    let by = cp.by.clone().unwrap_or_else(|| "channel".into());
    let (key, join, group) = match by.as_str() {
        "channel" => ("o.channel", "", "o.channel"),
        "source" => ("o.source", "", "o.source"),
        "daypart" => ("o.daypart", "", "o.daypart"),
        "day" => (
            "CAST(CAST(o.order_time AS DATE) AS VARCHAR)",
            "",
            "CAST(CAST(o.order_time AS DATE) AS VARCHAR)",
        ),
        "store" => (
            "o.store_id",
            " LEFT JOIN stores s ON o.store_id = s.store_id",
            "o.store_id, s.name",
        ),
        other => {
            return Err(crate::error::ApiError::BadRequest(format!(
                "by: {other:?} is not one of channel, source, store, daypart, day"
            )))
        }
    };
    let (from, to) = range.days()?;
    let mut w = scoped(&p, "o.status = 'paid'", "o.store_id");
    w.days("o.order_time", from, to);
    let name = if by == "store" {
        ", s.name AS name"
    } else {
        ""
    };
    let rows_sql = format!(
        "{CAPTURE_COLS}, {key} AS key{name} FROM orders o{join} WHERE {} GROUP BY {group} ORDER BY key",
        w.sql()
    );
    let total_sql = format!("{CAPTURE_COLS} FROM orders o WHERE {}", w.sql());
    let cache = format!("capture|{}|{by}|{}", p.scope_key(), w.key());
    let st2 = st.clone();
    st.answer(cache, || async move {
        let s = st2.snapshot().await?;
        Ok(Capture {
            total: first(qf(&s, &total_sql, &w).await?),
            rows: rows(qf(&s, &rows_sql, &w).await?),
            by,
        })
    })
    .await
}
