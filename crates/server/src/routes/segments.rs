//! Segment summaries (tiers, RFM classes, lifecycle, R×F grid, clusters) and comparisons by city, store, product or daypart.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, P};
use crate::state::{Answer, AppState};
use crate::support::*;

/// Customers grouped every way the profile groups them. Each group row: name, customers,
/// avg_spend_fen, avg_orders, avg_recency_days, spend_fen.
#[derive(Debug, Serialize, ToSchema)]
pub struct Segments {
    pub tiers: Vec<Row>,
    pub rfm_classes: Vec<Row>,
    pub rfm_segments: Vec<Row>,
    pub lifecycle: Vec<Row>,
    pub clusters: Vec<Row>,
    /// What sets each k-means cluster apart (from the refresh; null before one).
    pub cluster_explanations: Option<c360_core::notes::ClusterNote>,
    /// r_score, f_score, customers, avg_spend_fen.
    pub rfm_grid: Vec<Row>,
}

/// One dimension compared.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    pub dim: String,
    /// Per value: id and/or name, orders (or qty), revenue_fen, buyers, avg_ticket_fen, and the
    /// dimension's own columns (city_tier, lat, lon; city, store_type; category).
    pub rows: Vec<Row>,
}

#[utoipa::path(get, path = "/api/v1/segments", responses((status = 200, body = Segments, description = "Tiers, the 8 RFM classes, lifecycle stages, the R×F grid and k-means clusters")))]
pub(crate) async fn segments(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Answer<Segments>> {
    let key = format!("segments|{}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        let cf = scoped(&p, "TRUE", "home_store_id");
        let by = |col: &str| format!(
            "SELECT {col} AS name, COUNT(*) AS customers, AVG(monetary_fen) AS avg_spend_fen, AVG(frequency) AS avg_orders, \
             AVG(recency_days) AS avg_recency_days, SUM(monetary_fen) AS spend_fen FROM customer_segmentation \
             WHERE {} GROUP BY {col} ORDER BY customers DESC", cf.sql());
        let tiers = qf(&s, &by("tier"), &cf).await?;
        let classes = qf(&s, &by("rfm_class"), &cf).await?;
        let lifecycle = qf(&s, &by("lifecycle"), &cf).await?;
        let named = qf(&s, &by("rfm_segment"), &cf).await?;
        let clusters = qf(&s, &by("CAST(\"cluster\" AS VARCHAR)"), &cf).await?;
        let grid = qf(&s, &format!("SELECT r_score, f_score, COUNT(*) AS customers, AVG(monetary_fen) AS avg_spend_fen FROM customer_segmentation WHERE {} GROUP BY r_score, f_score ORDER BY r_score, f_score", cf.sql()), &cf).await?;
        let explain = c360_core::notes::ClusterNote::from_notes(&s.sess.manifest.notes);
        Ok(Segments {
            tiers: rows(tiers),
            rfm_classes: rows(classes),
            rfm_segments: rows(named),
            lifecycle: rows(lifecycle),
            clusters: rows(clusters),
            cluster_explanations: explain,
            rfm_grid: rows(grid),
        })
    }).await
}

#[utoipa::path(get, path = "/api/v1/compare/{dim}", params(("dim" = doc::CompareDim, Path)), responses((status = 200, body = Comparison, description = "Orders, revenue, buyers, average ticket and capture rate (share of orders tied to a known customer) per value of the dimension"), (status = 400, body = ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub(crate) async fn compare(
    State(st): State<AppState>,
    p: Principal,
    P(dim): P<String>,
) -> ApiResult<Answer<Comparison>> {
    match dim.as_str() {
        "city" | "store" => {
            st.needs(&format!("the comparison by {dim}"), &["stores"])
                .await?
        }
        "product" => {
            st.needs(
                "the comparison by product",
                &["order_items", "wx_order_items"],
            )
            .await?
        }
        _ => {}
    }
    let of = scoped(&p, "o.status = 'paid'", "o.store_id");
    let w = of.sql();
    let sql = match dim.as_str() {
        "city" => format!("SELECT s.city_id AS id, s.city AS name, s.tier AS city_tier, c.lat, c.lon, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen, AVG(CASE WHEN o.customer_id IS NULL THEN 0.0 ELSE 1.0 END) AS capture_rate FROM orders o JOIN stores s ON o.store_id = s.store_id JOIN cities c ON s.city_id = c.city_id WHERE {w} GROUP BY s.city_id, s.city, s.tier, c.lat, c.lon ORDER BY revenue_fen DESC"),
        "store" => format!("SELECT s.store_id AS id, s.name, s.city, s.store_type, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen, AVG(CASE WHEN o.customer_id IS NULL THEN 0.0 ELSE 1.0 END) AS capture_rate FROM orders o JOIN stores s ON o.store_id = s.store_id WHERE {w} GROUP BY s.store_id, s.name, s.city, s.store_type ORDER BY revenue_fen DESC"),
        "product" => format!("SELECT pr.product_id AS id, pr.name, pr.category, SUM(i.qty) AS qty, SUM(i.amount_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers FROM order_items i JOIN orders o ON i.order_id = o.order_id JOIN products pr ON i.product_id = pr.product_id WHERE {w} GROUP BY pr.product_id, pr.name, pr.category ORDER BY revenue_fen DESC"),
        "daypart" => format!("SELECT o.daypart AS name, COUNT(*) AS orders, SUM(o.total_fen) AS revenue_fen, COUNT(DISTINCT o.customer_id) AS buyers, AVG(o.total_fen) AS avg_ticket_fen, AVG(CASE WHEN o.customer_id IS NULL THEN 0.0 ELSE 1.0 END) AS capture_rate FROM orders o WHERE {w} GROUP BY o.daypart ORDER BY orders DESC"),
        d => return Err(ApiError::BadRequest(format!("dim: {d:?} is not one of city, store, product, daypart"))),
    };
    let key = format!("compare|{}|{dim}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        Ok(Comparison {
            rows: rows(qf(&s, &sql, &of).await?),
            dim,
        })
    })
    .await
}
