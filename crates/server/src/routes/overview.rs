//! The chain at a glance: customers, orders, revenue, tiers and the live counters.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::support::*;

#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, description = "KPIs: customers, orders, revenue, tiers, live counters")))]
pub(crate) async fn overview(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let key = format!("overview|{}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let of = store_filter(&p, "store_id");
            let cf = store_filter(&p, "home_store_id");
            let kpi = q(&s, &format!(
                "SELECT COUNT(*) AS orders, COALESCE(SUM(total_fen), 0) AS revenue_fen, \
                 COUNT(DISTINCT customer_id) AS buyers, AVG(total_fen) AS avg_ticket_fen, \
                 MIN(order_time) AS first_order, MAX(order_time) AS last_order \
                 FROM orders WHERE status = 'paid'{of}"
            )).await?;
            let cust = q(&s, &format!(
                "SELECT COUNT(*) AS customers, SUM(CASE WHEN frequency > 1 THEN 1 ELSE 0 END) AS repeat_customers, \
                 SUM(CASE WHEN recency_days <= 90 THEN 1 ELSE 0 END) AS active_90d, AVG(monetary_fen) AS avg_spend_fen \
                 FROM customer_segmentation WHERE 1 = 1{cf}"
            )).await?;
            let tiers = q(&s, &format!(
                "SELECT tier, COUNT(*) AS customers, SUM(monetary_fen) AS spend_fen FROM customer_segmentation \
                 WHERE 1 = 1{cf} GROUP BY tier ORDER BY customers DESC"
            )).await?;
            let monthly = q(&s, &format!(
                "SELECT month, COUNT(*) AS orders, SUM(total_fen) AS revenue_fen, COUNT(DISTINCT customer_id) AS buyers \
                 FROM orders WHERE status = 'paid'{of} GROUP BY month ORDER BY month"
            )).await?;
            let clv = q(&s, &format!(
                "SELECT SUM(p.value) AS clv_12m_fen, AVG(p.value) AS avg_clv_fen FROM customer_predictions p \
                 JOIN customer_segmentation c ON p.customer_id = c.customer_id WHERE p.metric = 'clv_fen'{}",
                store_filter(&p, "c.home_store_id")
            )).await?;
            let (lo, lr) = st2.live_stats().seen_by(&p);
            Ok(json!({
                "warehouse_version": s.version,
                "kpi": kpi.first(), "customers": cust.first(), "clv": clv.first(),
                "tiers": tiers, "monthly": monthly,
                "live": {"orders": lo, "revenue_fen": lr},
            }))
        })
        .await?;
    Ok(ok(v))
}
