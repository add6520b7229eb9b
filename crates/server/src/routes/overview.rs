//! The chain at a glance: customers, orders, revenue, tiers and the live counters.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ApiResult;
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
            let (orders, revenue_fen) = st2.live_stats().in_stores(crate::authz::stores(&p));
            Ok(Overview {
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
