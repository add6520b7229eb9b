//! Segment summaries (tiers, RFM classes, lifecycle, R×F grid, clusters) and comparisons by city, store, product or daypart.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, P};
use crate::state::AppState;
use crate::support::*;

#[utoipa::path(get, path = "/api/v1/segments", responses((status = 200, description = "Tiers, the 8 RFM classes, lifecycle stages, the R×F grid and k-means clusters")))]
pub(crate) async fn segments(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let key = format!("segments|{}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        let cf = store_filter(&p, "home_store_id");
        let by = |col: &str| format!(
            "SELECT {col} AS name, COUNT(*) AS customers, AVG(monetary_fen) AS avg_spend_fen, AVG(frequency) AS avg_orders, \
             AVG(recency_days) AS avg_recency_days, SUM(monetary_fen) AS spend_fen FROM customer_segmentation \
             WHERE 1 = 1{cf} GROUP BY {col} ORDER BY customers DESC");
        let tiers = q(&s, &by("tier")).await?;
        let classes = q(&s, &by("rfm_class")).await?;
        let lifecycle = q(&s, &by("lifecycle")).await?;
        let named = q(&s, &by("rfm_segment")).await?;
        let clusters = q(&s, &by("CAST(\"cluster\" AS VARCHAR)")).await?;
        let grid = q(&s, &format!("SELECT r_score, f_score, COUNT(*) AS customers, AVG(monetary_fen) AS avg_spend_fen FROM customer_segmentation WHERE 1 = 1{cf} GROUP BY r_score, f_score ORDER BY r_score, f_score")).await?;
        let explain = s.sess.manifest.notes.get("segments").cloned().unwrap_or(Value::Null);
        Ok(json!({"tiers": tiers, "rfm_classes": classes, "rfm_segments": named, "lifecycle": lifecycle, "clusters": clusters, "cluster_explanations": explain, "rfm_grid": grid}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/compare/{dim}", params(("dim" = String, Path, description = "city, store, product or daypart")), responses((status = 200, description = "Orders, revenue, buyers and average ticket per value of the dimension"), (status = 400, body = ErrorBody)))]
pub(crate) async fn compare(
    State(st): State<AppState>,
    p: Principal,
    P(dim): P<String>,
) -> ApiResult<Json<Value>> {
    let of = store_filter(&p, "o.store_id");
    let sql = match dim.as_str() {
        "city" => format!("SELECT s.city_id AS id, s.city AS name, s.tier AS city_tier, c.lat, c.lon, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen FROM orders o JOIN stores s ON o.store_id = s.store_id JOIN cities c ON s.city_id = c.city_id WHERE o.status = 'paid'{of} GROUP BY s.city_id, s.city, s.tier, c.lat, c.lon ORDER BY revenue_fen DESC"),
        "store" => format!("SELECT s.store_id AS id, s.name, s.city, s.store_type, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen FROM orders o JOIN stores s ON o.store_id = s.store_id WHERE o.status = 'paid'{of} GROUP BY s.store_id, s.name, s.city, s.store_type ORDER BY revenue_fen DESC"),
        "product" => format!("SELECT pr.product_id AS id, pr.name, pr.category, SUM(i.qty) AS qty, SUM(i.amount_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers FROM order_items i JOIN orders o ON i.order_id = o.order_id JOIN products pr ON i.product_id = pr.product_id WHERE o.status = 'paid'{of} GROUP BY pr.product_id, pr.name, pr.category ORDER BY revenue_fen DESC"),
        "daypart" => format!("SELECT o.daypart AS name, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen FROM orders o WHERE o.status = 'paid'{of} GROUP BY o.daypart ORDER BY orders DESC"),
        d => return Err(ApiError::BadRequest(format!("dim: {d:?} is not one of city, store, product, daypart"))),
    };
    let key = format!("compare|{}|{dim}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            Ok(json!({"dim": dim, "rows": q(&s, &sql).await?}))
        })
        .await?;
    Ok(ok(v))
}
