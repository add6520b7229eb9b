//! The REST API under `/api/v1`: profiles (the seed's getCustomerProfile), behaviour over a time
//! range, emotion, recommendations, predictions by type, insights, search and lists with filters
//! and paging, segment summaries, comparisons by city/store/product/daypart, and ingestion of new
//! orders and events (durable in the metastore before the answer, then pushed live).
//!
//! Every route checks the caller's key; store managers are cut down to their stores' customers
//! and figures. Answers of read routes are cached per caller scope until anything changes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use c360_db::{get_i64, Value as V};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorBody, J, P, Q};
use crate::json::{lit, rows};
use crate::{AppState, Snapshot};

pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS live_orders (order_no VARCHAR(64) PRIMARY KEY, customer_id BIGINT, store_id BIGINT, order_time VARCHAR(19), day BIGINT, total_fen BIGINT, items TEXT, received_at VARCHAR(40), received_by VARCHAR(100));
CREATE TABLE IF NOT EXISTS live_events (event_id VARCHAR(64) PRIMARY KEY, customer_id BIGINT, session_id VARCHAR(64), action_type VARCHAR(32), page VARCHAR(64), event_time VARCHAR(19), device VARCHAR(32), received_at VARCHAR(40));
CREATE TABLE IF NOT EXISTS insight_cache (cache_key VARCHAR(64) PRIMARY KEY, model VARCHAR(100), insight TEXT, created_at VARCHAR(40))
";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "c360 API",
        description = "Customer profiles (客户画像) of the hot dog chain: profiles, segments, predictions, live ingestion. Send your key as `Authorization: Bearer KEY`."
    ),
    paths(
        me,
        health,
        overview,
        list_customers,
        customer_profile,
        customer_timeline,
        customer_behavior,
        customer_emotion,
        customer_preferences,
        crate::dims::customer_recommendations,
        crate::dims::anonymous_recommendations,
        crate::dims::behavior_funnel,
        crate::dims::behavior_paths,
        crate::dims::sentiment,
        crate::dims::network,
        crate::dims::customer_network,
        customer_predictions,
        customer_insights,
        segments,
        compare,
        post_order,
        post_event,
        post_event_batch,
        live,
        crate::act::list_campaigns,
        crate::act::suggestions,
        crate::act::program,
        crate::act::create_campaign,
        crate::act::get_campaign,
        crate::act::launch_campaign,
        crate::act::campaign_status,
        crate::act::campaign_results,
        crate::act::campaign_members,
        crate::act::get_settings,
        crate::act::put_settings,
        crate::act::list_experiments,
        crate::act::create_experiment,
        crate::act::experiment_results,
        crate::act::diagnose,
        crate::act::tickets,
        crate::act::audit_trail
    ),
    components(schemas(
        ErrorBody,
        Principal,
        Role,
        NewOrder,
        NewItem,
        NewEvent,
        EventBatch,
        Ingested,
        crate::campaign::CampaignSpec,
        crate::campaign::Audience,
        crate::campaign::Offer,
        crate::campaign::Variant,
        crate::experiments::ExperimentSpec,
        crate::act::StatusChange,
        crate::act::Settings,
        crate::act::DiagnoseRequest
    ))
)]
pub struct ApiDoc;

pub fn router(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/health", get(health))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/customers", get(list_customers))
        .route("/api/v1/customers/{id}", get(customer_profile))
        .route("/api/v1/customers/{id}/timeline", get(customer_timeline))
        .route("/api/v1/customers/{id}/behavior", get(customer_behavior))
        .route("/api/v1/customers/{id}/emotion", get(customer_emotion))
        .route(
            "/api/v1/customers/{id}/preferences",
            get(customer_preferences),
        )
        .route(
            "/api/v1/customers/{id}/recommendations",
            get(crate::dims::customer_recommendations),
        )
        .route(
            "/api/v1/customers/{id}/predictions",
            get(customer_predictions),
        )
        .route("/api/v1/customers/{id}/insights", get(customer_insights))
        .route("/api/v1/segments", get(segments))
        .route("/api/v1/compare/{dim}", get(compare))
        .route("/api/v1/orders", post(post_order))
        .route("/api/v1/events", post(post_event))
        .route("/api/v1/events/batch", post(post_event_batch))
        .route("/api/v1/behavior/funnel", get(crate::dims::behavior_funnel))
        .route("/api/v1/behavior/paths", get(crate::dims::behavior_paths))
        .route("/api/v1/sentiment", get(crate::dims::sentiment))
        .route("/api/v1/network", get(crate::dims::network))
        .route(
            "/api/v1/customers/{id}/network",
            get(crate::dims::customer_network),
        )
        .route(
            "/api/v1/recommendations",
            get(crate::dims::anonymous_recommendations),
        )
        .route("/api/v1/live", get(live))
        .route(
            "/api/v1/campaigns",
            get(crate::act::list_campaigns).post(crate::act::create_campaign),
        )
        .route("/api/v1/campaigns/program", get(crate::act::program))
        .route(
            "/api/v1/campaigns/suggestions",
            get(crate::act::suggestions),
        )
        .route(
            "/api/v1/campaigns/settings",
            get(crate::act::get_settings).put(crate::act::put_settings),
        )
        .route("/api/v1/campaigns/{id}", get(crate::act::get_campaign))
        .route(
            "/api/v1/campaigns/{id}/launch",
            post(crate::act::launch_campaign),
        )
        .route(
            "/api/v1/campaigns/{id}/status",
            post(crate::act::campaign_status),
        )
        .route(
            "/api/v1/campaigns/{id}/results",
            get(crate::act::campaign_results),
        )
        .route(
            "/api/v1/campaigns/{id}/members",
            get(crate::act::campaign_members),
        )
        .route(
            "/api/v1/experiments",
            get(crate::act::list_experiments).post(crate::act::create_experiment),
        )
        .route(
            "/api/v1/experiments/{id}/results",
            get(crate::act::experiment_results),
        )
        .route("/api/v1/service/diagnose", post(crate::act::diagnose))
        .route("/api/v1/service/tickets", get(crate::act::tickets))
        .route("/api/v1/audit", get(crate::act::audit_trail))
        .route("/ws", get(crate::hub::ws_handler))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/swagger-ui")
                .url("/api-docs/openapi.json", ApiDoc::openapi()),
        )
}

pub(crate) async fn q(s: &Snapshot, sql: &str) -> ApiResult<Vec<Value>> {
    query(&s.sess, sql).await
}

/// Rows of `sql` on a warehouse session as JSON objects (the CLI has a session, no snapshot).
pub(crate) async fn query(sess: &c360_warehouse::Session, sql: &str) -> ApiResult<Vec<Value>> {
    let b = sess
        .query(sql)
        .await
        .map_err(|e| ApiError::Internal(format!("{e}: {sql}")))?;
    Ok(rows(&b)?)
}

/// A `YYYY-MM-DD` parameter; the error names the field.
pub(crate) fn parse_day(field: &str, v: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| ApiError::BadRequest(format!("{field}: {v:?} is not a YYYY-MM-DD date")))
}

/// Inserts the row `row(id)` with `id` = MAX(`id_col`) + 1, retrying when another writer took
/// that id first (ids stay dense across processes: the server and the CLI share the metastore).
pub(crate) async fn insert_next_id(
    meta: &c360_db::Db,
    table: &str,
    id_col: &str,
    cols: &[&str],
    row: impl Fn(i64) -> Vec<V>,
) -> ApiResult<i64> {
    let mut last = None;
    for _ in 0..8 {
        let id = meta
            .fetch_all(&format!("SELECT MAX({id_col}) AS m FROM {table}"))
            .await?
            .first()
            .and_then(|r| get_i64(r, "m"))
            .unwrap_or(0)
            + 1;
        match meta.insert_rows(table, cols, &[row(id)]).await {
            Ok(()) => return Ok(id),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried").into())
}

pub(crate) fn in_list(ids: &[i64]) -> String {
    if ids.is_empty() {
        "(NULL)".into()
    } else {
        format!(
            "({})",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        )
    }
}

/// `AND <col> IN (...)` for a store manager, nothing for the others.
pub(crate) fn store_filter(p: &Principal, col: &str) -> String {
    match p.store_scope() {
        None => String::new(),
        Some(s) => format!(" AND {col} IN {}", in_list(s)),
    }
}

pub(crate) fn ok(v: Arc<Value>) -> Json<Value> {
    Json((*v).clone())
}

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Principal), (status = 401, body = ErrorBody)))]
async fn me(p: Principal) -> Json<Principal> {
    Json(p)
}

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, description = "snapshot version, stream head, cache counters")))]
async fn health(State(st): State<AppState>) -> Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let snap = st.snapshot().await.ok();
    Json(json!({
        "status": "ok",
        "warehouse_version": snap.as_ref().map(|s| s.version),
        "data_end_day": snap.as_ref().map(|s| s.end_day),
        "stream_head": st.hub().head(),
        "cache_hits": st.inner().cache_hits.load(Relaxed),
        "cache_misses": st.inner().cache_misses.load(Relaxed),
    }))
}

#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, description = "KPIs: customers, orders, revenue, tiers, live counters")))]
async fn overview(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Customer id, or the last digits of the (masked) phone.
    q: Option<String>,
    tier: Option<String>,
    rfm_class: Option<String>,
    lifecycle: Option<String>,
    city_id: Option<i64>,
    store_id: Option<i64>,
    min_spend_fen: Option<i64>,
    /// total_spend_fen (default), order_count, last_order_time, clv_12m_fen, p_churn_90d, customer_id
    sort: Option<String>,
    /// desc (default) or asc
    order: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/customers", params(ListParams), responses((status = 200, description = "{total, page, page_size, items}"), (status = 400, body = ErrorBody)))]
async fn list_customers(
    State(st): State<AppState>,
    p: Principal,
    Q(lp): Q<ListParams>,
) -> ApiResult<Json<Value>> {
    let sort = lp.sort.as_deref().unwrap_or("total_spend_fen");
    if ![
        "total_spend_fen",
        "order_count",
        "last_order_time",
        "clv_12m_fen",
        "p_churn_90d",
        "customer_id",
    ]
    .contains(&sort)
    {
        return Err(ApiError::BadRequest(format!(
            "sort: unknown column {sort:?}"
        )));
    }
    let dir = match lp.order.as_deref().unwrap_or("desc") {
        "asc" => "ASC",
        "desc" => "DESC",
        o => {
            return Err(ApiError::BadRequest(format!(
                "order: {o:?} is neither asc nor desc"
            )))
        }
    };
    let page = lp.page.unwrap_or(1).max(1);
    let size = lp.page_size.unwrap_or(20);
    if !(1..=200).contains(&size) {
        return Err(ApiError::BadRequest("page_size: must be 1..=200".into()));
    }
    let mut w = String::from("order_count > 0");
    if let Some(t) = &lp.tier {
        w += &format!(" AND tier = {}", lit(t));
    }
    if let Some(t) = &lp.rfm_class {
        w += &format!(" AND rfm_class = {}", lit(t));
    }
    if let Some(t) = &lp.lifecycle {
        w += &format!(" AND lifecycle = {}", lit(t));
    }
    if let Some(c) = lp.city_id {
        w += &format!(" AND home_city_id = {c}");
    }
    if let Some(c) = lp.store_id {
        w += &format!(" AND home_store_id = {c}");
    }
    if let Some(m) = lp.min_spend_fen {
        w += &format!(" AND total_spend_fen >= {m}");
    }
    if let Some(text) = lp.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if !text.chars().all(|c| c.is_ascii_digit()) || text.len() > 11 {
            return Err(ApiError::BadRequest(
                "q: digits only (a customer id or the last digits of a phone)".into(),
            ));
        }
        w += &format!(
            " AND (CAST(customer_id AS VARCHAR) = {t} OR phone_masked LIKE {l})",
            t = lit(text),
            l = lit(&format!("%{text}"))
        );
    }
    w += &store_filter(&p, "home_store_id");
    let key = format!("list|{}|{w}|{sort}|{dir}|{page}|{size}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        let total = s.sess.scalar_i64(&format!("SELECT COUNT(*) FROM v_customer_360 WHERE {w}")).await?;
        let items = q(&s, &format!(
            "SELECT customer_id, phone_masked, name_masked, order_count, total_spend_fen, avg_order_fen, last_order_time, \
             tier, rfm_class, rfm_segment, lifecycle, \"cluster\", clv_12m_fen, p_churn_90d, home_store_id, home_city_id \
             FROM v_customer_360 WHERE {w} ORDER BY {sort} {dir} NULLS LAST, customer_id LIMIT {size} OFFSET {}",
            (page - 1) as u64 * size as u64
        )).await?;
        Ok(json!({"total": total, "page": page, "page_size": size, "items": items}))
    }).await?;
    Ok(ok(v))
}

/// Rows sorted by a numeric field, largest first (stable).
fn sorted_desc(mut rows: Vec<Value>, field: &str) -> Vec<Value> {
    rows.sort_by(|a, b| {
        b[field]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a[field].as_f64().unwrap_or(0.0))
    });
    rows
}

/// The daypart of most of a customer's paid orders (ties: the first name), from the in-memory
/// `v_customer_time` rows.
pub(crate) fn favourite_daypart(s: &Snapshot, id: i64) -> ApiResult<Option<String>> {
    let mut by: Vec<(String, i64)> = Vec::new();
    for r in s.rows_of("v_customer_time", id)? {
        let (Some(d), Some(n)) = (r["daypart"].as_str(), r["orders"].as_i64()) else {
            continue;
        };
        match by.iter_mut().find(|x| x.0 == d) {
            Some(x) => x.1 += n,
            None => by.push((d.to_string(), n)),
        }
    }
    by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(by.into_iter().next().map(|x| x.0))
}

/// A customer's products, most bought first (ties by product id).
pub(crate) fn products_of(s: &Snapshot, id: i64) -> ApiResult<Vec<Value>> {
    let mut rows = s.rows_of("v_customer_products", id)?;
    rows.sort_by(|a, b| {
        b["qty"]
            .as_i64()
            .cmp(&a["qty"].as_i64())
            .then(a["product_id"].as_i64().cmp(&b["product_id"].as_i64()))
    });
    Ok(rows)
}

/// The customer's 360 row, checked against the caller's scope.
pub(crate) async fn customer_row(s: &Snapshot, p: &Principal, id: i64) -> ApiResult<Value> {
    let r = s.rows_of("v_customer_360", id)?;
    let row = r
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("customer {id} not found")))?;
    let home = row.get("home_store_id").and_then(Value::as_i64);
    if !p.may_see_store(home) {
        return Err(ApiError::Forbidden(format!(
            "customer {id} is not a customer of your stores"
        )));
    }
    Ok(row)
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", params(("id" = i64, Path)), responses((status = 200, description = "The v_customer_360 row, geography, channels and any live re-score"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn customer_profile(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let key = format!("profile|{}|{id}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let row = customer_row(&s, &p, id).await?;
            let geo = s.rows_of("v_customer_geo", id)?;
            let channel = sorted_desc(s.rows_of("v_customer_channel", id)?, "orders");
            let live = st2.live_profile_json(id).await;
            Ok(json!({"profile": row, "geo": geo.first(), "channels": channel, "live": live}))
        })
        .await?;
    Ok(ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day (YYYY-MM-DD), inclusive.
    pub(crate) from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    pub(crate) to: Option<String>,
    pub(crate) limit: Option<u32>,
}

pub(crate) fn day_bounds(r: &RangeParams, col: &str) -> ApiResult<String> {
    let mut w = String::new();
    if let Some(f) = &r.from {
        let d = parse_day("from", f)?;
        w += &format!(" AND {col} >= '{d}T00:00:00+08:00'");
    }
    if let Some(t) = &r.to {
        let d = parse_day("to", t)? + chrono::Duration::days(1);
        w += &format!(" AND {col} < '{d}T00:00:00+08:00'");
    }
    Ok(w)
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", params(("id" = i64, Path), RangeParams), responses((status = 200, description = "Orders, newest first, with their items")))]
async fn customer_timeline(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(r): Q<RangeParams>,
) -> ApiResult<Json<Value>> {
    let w = day_bounds(&r, "o.order_time")?;
    let limit = r.limit.unwrap_or(50).min(500);
    let key = format!("timeline|{}|{id}|{w}|{limit}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        let orders = q(&s, &format!(
            "SELECT o.order_id, o.order_no, o.order_time, o.store_id, st.name AS store_name, o.channel, o.status, \
             o.total_fen, o.discount_fen, o.daypart, o.holiday, \
             (SELECT string_agg(pr.name || '×' || CAST(i.qty AS VARCHAR), '、') FROM order_items i JOIN products pr ON i.product_id = pr.product_id WHERE i.order_id = o.order_id) AS items \
             FROM orders o LEFT JOIN stores st ON o.store_id = st.store_id WHERE o.customer_id = {id}{w} \
             ORDER BY o.order_time DESC LIMIT {limit}"
        )).await?;
        let live: Vec<Value> = st2.live_orders_of(id).await?;
        Ok(json!({"customer_id": id, "orders": orders, "live_orders": live}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/behavior", params(("id" = i64, Path), RangeParams), responses((status = 200, description = "Orders by daypart and weekday, page events by action, sessions and the funnel, within the range")))]
async fn customer_behavior(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(r): Q<RangeParams>,
) -> ApiResult<Json<Value>> {
    let wo = day_bounds(&r, "order_time")?;
    let we = day_bounds(&r, "event_time")?;
    let key = format!("behavior|{}|{id}|{wo}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        let dayparts = q(&s, &format!("SELECT daypart, COUNT(*) AS orders, SUM(total_fen) AS spend_fen FROM orders WHERE customer_id = {id} AND status = 'paid'{wo} GROUP BY daypart ORDER BY orders DESC")).await?;
        let weekdays = q(&s, &format!("SELECT CAST(date_part('dow', order_time) AS BIGINT) AS weekday, COUNT(*) AS orders FROM orders WHERE customer_id = {id} AND status = 'paid'{wo} GROUP BY 1 ORDER BY 1")).await?;
        let actions = q(&s, &format!("SELECT action_type, page, COUNT(*) AS events FROM customer_behavior_tracks WHERE customer_id = {id}{we} GROUP BY action_type, page ORDER BY events DESC")).await?;
        let sessions = q(&s, &format!(
            "SELECT COUNT(*) AS sessions, SUM(CASE WHEN paid THEN 1 ELSE 0 END) AS converted FROM \
             (SELECT session_id, MAX(CASE WHEN action_type = 'pay' THEN 1 ELSE 0 END) = 1 AS paid FROM customer_behavior_tracks \
              WHERE customer_id = {id}{we} GROUP BY session_id) x")).await?;
        let funnel = q(&s, &format!(
            "SELECT page, COUNT(DISTINCT session_id) AS sessions FROM customer_behavior_tracks WHERE customer_id = {id}{we} \
             AND page IN ('menu', 'item', 'cart', 'pay') GROUP BY page")).await?;
        let devices = if p.sees_location() {
            q(&s, &format!("SELECT device, COUNT(*) AS events, ROUND(AVG(lat_coarse), 2) AS lat, ROUND(AVG(lon_coarse), 2) AS lon FROM customer_behavior_tracks WHERE customer_id = {id}{we} GROUP BY device")).await?
        } else {
            q(&s, &format!("SELECT device, COUNT(*) AS events FROM customer_behavior_tracks WHERE customer_id = {id}{we} GROUP BY device")).await?
        };
        Ok(json!({"customer_id": id, "dayparts": dayparts, "weekdays": weekdays, "actions": actions,
                  "sessions": sessions.first(), "funnel": funnel, "devices": devices}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/emotion", params(("id" = i64, Path)), responses((status = 200, description = "Reviews with rating and sentiment, and their summary")))]
async fn customer_emotion(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let key = format!("emotion|{}|{id}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        let reviews = q(&s, &format!("SELECT emotion_id, store_id, rating, content, created_at, sentiment, taste, service, price, environment, speed, hygiene FROM customer_emotion WHERE customer_id = {id} ORDER BY created_at DESC LIMIT 100")).await?;
        let summary = q(&s, &format!("SELECT COUNT(*) AS reviews, AVG(rating) AS avg_rating, AVG(sentiment) AS avg_sentiment, SUM(CASE WHEN rating <= 2 THEN 1 ELSE 0 END) AS negative FROM customer_emotion WHERE customer_id = {id}")).await?;
        let (_, aspects) = crate::dims::aspect_facts(&s, id).await?;
        let aspects: Vec<Value> = aspects.into_iter().map(|(a, v)| json!({"aspect": a, "score": v})).collect();
        Ok(json!({"customer_id": id, "summary": summary.first(), "aspects": aspects, "reviews": reviews}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/preferences", params(("id" = i64, Path)), responses((status = 200, description = "Time (daypart × weekday × holiday), products, categories, holiday lift")))]
async fn customer_preferences(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let key = format!("prefs|{}|{id}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        let time = sorted_desc(s.rows_of("v_customer_time", id)?, "orders");
        let products = products_of(&s, id)?;
        let mut by_cat: Vec<(String, i64, f64)> = Vec::new();
        for p in &products {
            let c = p["category"].as_str().unwrap_or("").to_string();
            let (qty, share) = (p["qty"].as_i64().unwrap_or(0), p["share"].as_f64().unwrap_or(0.0));
            match by_cat.iter_mut().find(|x| x.0 == c) {
                Some(x) => { x.1 += qty; x.2 += share; }
                None => by_cat.push((c, qty, share)),
            }
        }
        by_cat.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let categories: Vec<Value> = by_cat.into_iter().map(|(c, q, sh)| json!({"category": c, "qty": q, "share": sh})).collect();
        let holiday = s.rows_of("v_customer_holiday", id)?;
        Ok(json!({"customer_id": id, "time": time, "products": products, "categories": categories, "holiday": holiday.first()}))
    }).await?;
    Ok(ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredParams {
    /// clv (P(alive), expected purchases, spend, CLV), churn, growth, lifecycle, or all (default).
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/predictions", params(("id" = i64, Path), PredParams), responses((status = 200, description = "Model outputs of the given type, with the live re-score when an order arrived since the snapshot"), (status = 400, body = ErrorBody)))]
async fn customer_predictions(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(pp): Q<PredParams>,
) -> ApiResult<Json<Value>> {
    let kind = pp.kind.unwrap_or_else(|| "all".into());
    let metrics: &[&str] = match kind.as_str() {
        "clv" => &[
            "p_alive",
            "expected_purchases",
            "expected_spend_fen",
            "clv_fen",
        ],
        "churn" => &["p_churn_90d"],
        "growth" | "lifecycle" => &[],
        "all" => &[
            "p_alive",
            "expected_purchases",
            "expected_spend_fen",
            "clv_fen",
            "p_churn_90d",
        ],
        k => {
            return Err(ApiError::BadRequest(format!(
                "type: {k:?} is not one of clv, churn, growth, lifecycle, all"
            )))
        }
    };
    let key = format!("preds|{}|{id}|{kind}", p.scope_key());
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        let row = customer_row(&s, &p, id).await?;
        let list = metrics.iter().map(|m| lit(m)).collect::<Vec<_>>().join(",");
        let preds = if list.is_empty() { vec![] } else {
            q(&s, &format!("SELECT model, metric, horizon_days, value, as_of FROM customer_predictions WHERE customer_id = {id} AND metric IN ({list}) ORDER BY metric")).await?
        };
        let mut out = json!({"customer_id": id, "type": kind, "predictions": preds});
        if kind == "growth" || kind == "all" {
            out["value_growth"] = row.get("value_growth").cloned().unwrap_or(Value::Null);
        }
        if kind == "lifecycle" || kind == "all" {
            out["lifecycle"] = row.get("lifecycle").cloned().unwrap_or(Value::Null);
        }
        out["live"] = st2.live_profile_json(id).await;
        Ok(out)
    }).await?;
    Ok(ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LangParams {
    /// zh (default) or en
    lang: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/insights", params(("id" = i64, Path), LangParams), responses((status = 200, description = "Four sections: value, churn risk, marketing suggestions, product strategy — from computed facts only")))]
async fn customer_insights(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(lp): Q<LangParams>,
) -> ApiResult<Json<Value>> {
    let lang = match lp.lang.as_deref().unwrap_or("zh") {
        l @ ("zh" | "en") => l.to_string(),
        l => {
            return Err(ApiError::BadRequest(format!(
                "lang: {l:?} is neither zh nor en"
            )))
        }
    };
    let key = format!("insights|{}|{id}|{lang}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let row = customer_row(&s, &p, id).await?;
            let products: Vec<Value> = products_of(&s, id)?.into_iter().take(3).collect();
            let hol = s
                .rows_of("v_customer_holiday", id)?
                .first()
                .and_then(|h| h["holiday_lift"].as_f64())
                .unwrap_or(f64::NAN);
            let g = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
            let (avg_sentiment, aspect_scores) = crate::dims::aspect_facts(&s, id).await?;
            let influence_percentile = q(&s, &format!("SELECT influence_rank FROM customer_network WHERE customer_id = {id}")).await?
                .first()
                .and_then(|r| r["influence_rank"].as_i64())
                .map(|r| (crate::dims::influence_percentile(&s, r) * 100.0).round() / 100.0);
            let f = c360_insights::Facts {
                avg_sentiment,
                aspect_scores,
                influence_percentile,
                customer_id: id,
                tier: g("tier").as_str().map(String::from),
                rfm_class: g("rfm_class").as_str().map(String::from),
                lifecycle: g("lifecycle").as_str().map(String::from),
                order_count: g("order_count").as_i64().unwrap_or(0),
                total_spend_fen: g("total_spend_fen").as_i64().unwrap_or(0),
                avg_order_fen: g("avg_order_fen").as_i64(),
                recency_days: g("recency_days").as_i64(),
                p_alive: g("p_alive").as_f64(),
                p_churn_90d: g("p_churn_90d").as_f64(),
                expected_purchases_365d: g("expected_purchases_365d").as_f64(),
                clv_12m_fen: g("clv_12m_fen").as_f64(),
                value_growth: g("value_growth").as_f64(),
                wx_share: g("order_count")
                    .as_f64()
                    .filter(|n| *n > 0.0)
                    .map(|n| g("wx_orders").as_f64().unwrap_or(0.0) / n),
                favourite_daypart: favourite_daypart(&s, id)?,
                top_products: products
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r.get("name")?.as_str()?.to_string(),
                            r.get("share")?.as_f64()?,
                        ))
                    })
                    .collect(),
                avg_rating: g("avg_rating").as_f64(),
                review_count: g("review_count").as_i64().unwrap_or(0),
                holiday_lift: Some(hol).filter(|h| h.is_finite()),
            };
            let (insight, note) = match &st2.inner().llm {
                None => (c360_insights::rule_based(&f, &lang), json!({"writer": "rules", "reason": "no LLM configured"})),
                Some(llm) => {
                    let excerpts = crate::dims::review_excerpts(&s, id).await?;
                    let prompt = c360_insights::llm::Prompt::build(&f, &excerpts, &lang);
                    let ck = prompt.cache_key(llm.model());
                    match cached_insight(&st2, &ck).await? {
                        Some(i) => (i, json!({"writer": llm.model(), "cache": "hit", "dropped_excerpts": prompt.dropped_excerpts})),
                        None => match llm.write(&prompt, &f).await {
                            Ok(i) => {
                                store_insight(&st2, &ck, llm.model(), &i).await?;
                                (i, json!({"writer": llm.model(), "cache": "miss", "dropped_excerpts": prompt.dropped_excerpts}))
                            }
                            Err(e) => {
                                tracing::warn!(customer_id = id, error = %e, "LLM insight rejected; rule-based writer used");
                                (c360_insights::rule_based(&f, &lang), json!({"writer": "rules", "reason": e.to_string(), "dropped_excerpts": prompt.dropped_excerpts}))
                            }
                        },
                    }
                }
            };
            Ok(json!({"insight": insight, "facts": f, "generation": note}))
        })
        .await?;
    Ok(ok(v))
}

async fn cached_insight(st: &AppState, key: &str) -> ApiResult<Option<c360_insights::Insight>> {
    let rows = st
        .inner()
        .meta
        .fetch_all(&format!(
            "SELECT insight FROM insight_cache WHERE cache_key = {}",
            lit(key)
        ))
        .await?;
    Ok(rows
        .first()
        .and_then(|r| c360_db::get_text(r, "insight"))
        .and_then(|t| serde_json::from_str(&t).ok()))
}

async fn store_insight(
    st: &AppState,
    key: &str,
    model: &str,
    i: &c360_insights::Insight,
) -> ApiResult<()> {
    insert_once(
        st,
        "insight_cache",
        &["cache_key", "model", "insight", "created_at"],
        vec![
            key.into(),
            model.into(),
            serde_json::to_string(i).unwrap_or_default().into(),
            chrono::Utc::now().to_rfc3339().into(),
        ],
    )
    .await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/segments", responses((status = 200, description = "Tiers, the 8 RFM classes, lifecycle stages, the R×F grid and k-means clusters")))]
async fn segments(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
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
async fn compare(
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

/// A paid order as the POS or mini-program reports it in real time.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewOrder {
    /// The source order number; the same number twice is one order.
    pub order_no: String,
    /// The resolved customer (None: anonymous).
    pub customer_id: Option<i64>,
    pub store_id: i64,
    /// Asia/Shanghai local time `YYYY-MM-DD HH:MM:SS`; default now.
    pub order_time: Option<String>,
    /// What was paid, in fen.
    pub total_fen: i64,
    #[serde(default)]
    pub items: Vec<NewItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewItem {
    pub product_id: i64,
    pub qty: i64,
    pub unit_price_fen: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    /// false when this order number (or event id) was already received: nothing was counted twice.
    pub created: bool,
    /// The stream sequence number of the change (None for a duplicate).
    pub seq: Option<i64>,
    /// The customer's re-scored profile, if any.
    pub live: Option<Value>,
}

impl Ingested {
    fn duplicate() -> Ingested {
        Ingested {
            created: false,
            seq: None,
            live: None,
        }
    }
}

/// Inserts one row keyed by its first column into a metastore table. Ok(false) when a row
/// with that key is already there (a resend): nothing is written or counted twice.
async fn insert_once(st: &AppState, table: &str, cols: &[&str], row: Vec<V>) -> ApiResult<bool> {
    let meta = &st.inner().meta;
    let key = match &row[0] {
        V::S(k) => k.clone(),
        other => {
            return Err(ApiError::Internal(format!(
                "{table}: key {other:?} is not text"
            )))
        }
    };
    match meta.insert_rows(table, cols, &[row]).await {
        Ok(()) => Ok(true),
        Err(e) => {
            let exists = meta
                .fetch_all(&format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE {} = {}",
                    cols[0],
                    lit(&key)
                ))
                .await?
                .first()
                .and_then(|r| get_i64(r, "n"))
                .unwrap_or(0)
                > 0;
            if exists {
                Ok(false)
            } else {
                Err(e.into())
            }
        }
    }
}

fn day_of(t: chrono::NaiveDateTime) -> i64 {
    (t.date() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

fn now_shanghai() -> chrono::NaiveDateTime {
    (chrono::Utc::now() + chrono::Duration::hours(8)).naive_utc()
}

#[utoipa::path(post, path = "/api/v1/orders", request_body = NewOrder, responses((status = 201, body = Ingested), (status = 200, body = Ingested, description = "already received"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn post_order(
    State(st): State<AppState>,
    p: Principal,
    J(o): J<NewOrder>,
) -> ApiResult<axum::response::Response> {
    let target = format!("store:{}", o.store_id);
    let r = post_order_inner(State(st.clone()), p.clone(), J(o))
        .await
        .map(IntoResponse::into_response);
    crate::act::logged(&st, &p, "order.ingest", &target, json!({}), r).await
}

async fn post_order_inner(
    State(st): State<AppState>,
    p: Principal,
    J(o): J<NewOrder>,
) -> ApiResult<impl IntoResponse> {
    p.require(&[Role::Admin, Role::StoreManager])?;
    if !p.may_see_store(Some(o.store_id)) {
        return Err(ApiError::Forbidden(format!(
            "store_id: {} is not one of your stores",
            o.store_id
        )));
    }
    let s = st.snapshot().await?;
    validate_order(&s, &o)?;
    let t = match &o.order_time {
        Some(ts) => c360_model::parse_ts(ts)
            .map_err(|e| ApiError::BadRequest(format!("order_time: {ts:?}: {e}")))?,
        None => now_shanghai(),
    };
    let items = serde_json::to_string(&o.items)?;
    let row = vec![
        o.order_no.clone().into(),
        o.customer_id.map_or(V::NullI, V::I),
        o.store_id.into(),
        c360_model::fmt_ts(t).into(),
        day_of(t).into(),
        o.total_fen.into(),
        items.into(),
        chrono::Utc::now().to_rfc3339().into(),
        p.name.clone().into(),
    ];
    // Durable before we answer; the primary key makes a resend a no-op.
    let cols = [
        "order_no",
        "customer_id",
        "store_id",
        "order_time",
        "day",
        "total_fen",
        "items",
        "received_at",
        "received_by",
    ];
    if !insert_once(&st, "live_orders", &cols, row).await? {
        return Ok((StatusCode::OK, Json(Ingested::duplicate())));
    }
    let live = st
        .apply_live_order(&s, o.customer_id, o.store_id, day_of(t), o.total_fen)
        .await?;
    let home = live
        .as_ref()
        .and_then(|l| l.get("home_store_id"))
        .and_then(Value::as_i64)
        .or(Some(o.store_id));
    let mut events = vec![(
        "orders".to_string(),
        Some(o.store_id),
        json!({
            "order_no": o.order_no, "customer_id": o.customer_id, "store_id": o.store_id,
            "order_time": c360_model::fmt_ts(t), "total_fen": o.total_fen, "items": o.items.len(),
        }),
    )];
    if let (Some(c), Some(l)) = (o.customer_id, &live) {
        events.push((format!("customer:{c}"), home, l.clone()));
    }
    let stats = st.live_stats();
    let by_store: serde_json::Map<String, Value> = stats
        .by_store
        .iter()
        .map(|(k, v)| (k.to_string(), json!({"orders": v.0, "revenue_fen": v.1})))
        .collect();
    events.push((
        "metrics".to_string(),
        None,
        json!({"live_orders": stats.orders, "live_revenue_fen": stats.revenue_fen, "by_store": by_store}),
    ));
    let seq = st.hub().publish_all(events).await?[0];
    st.bump();
    Ok((
        StatusCode::CREATED,
        Json(Ingested {
            created: true,
            seq: Some(seq),
            live,
        }),
    ))
}

fn validate_order(s: &Snapshot, o: &NewOrder) -> ApiResult<()> {
    let bad = |f: &str, why: String| Err(ApiError::BadRequest(format!("{f}: {why}")));
    if o.order_no.trim().is_empty() || o.order_no.len() > 64 {
        return bad("order_no", "must be 1 to 64 characters".into());
    }
    if o.total_fen <= 0 {
        return bad(
            "total_fen",
            format!("{} is not a positive amount in fen", o.total_fen),
        );
    }
    if !s.stores.contains(&o.store_id) {
        return bad("store_id", format!("store {} does not exist", o.store_id));
    }
    if let Some(c) = o.customer_id {
        if !s.has_customer(c) {
            return bad("customer_id", format!("customer {c} does not exist"));
        }
    }
    let mut sum = 0i64;
    for (i, it) in o.items.iter().enumerate() {
        if it.qty <= 0 {
            return bad(
                &format!("items[{i}].qty"),
                format!("{} is not a positive quantity", it.qty),
            );
        }
        if it.unit_price_fen < 0 {
            return bad(
                &format!("items[{i}].unit_price_fen"),
                "must not be negative".into(),
            );
        }
        if !s.products.contains(&it.product_id) {
            return bad(
                &format!("items[{i}].product_id"),
                format!("product {} does not exist", it.product_id),
            );
        }
        sum += it.qty * it.unit_price_fen;
    }
    if !o.items.is_empty() && sum < o.total_fen {
        return bad(
            "total_fen",
            format!("{} exceeds the items' list total {sum}", o.total_fen),
        );
    }
    Ok(())
}

/// A page event from the mini-program.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewEvent {
    /// Client-made unique id; the same id twice is one event.
    pub event_id: String,
    pub customer_id: Option<i64>,
    pub session_id: String,
    /// view, click, add_cart, pay …
    pub action_type: String,
    pub page: String,
    pub event_time: Option<String>,
    pub device: Option<String>,
}

/// Checks one event; errors name the field (prefixed by `at`, e.g. `events[3].`).
fn validate_event(e: &NewEvent, at: &str) -> ApiResult<chrono::NaiveDateTime> {
    let bad = |f: &str, why: &str| ApiError::BadRequest(format!("{at}{f}: {why}"));
    if e.event_id.trim().is_empty() || e.event_id.len() > 64 {
        return Err(bad("event_id", "must be 1 to 64 characters"));
    }
    if e.session_id.is_empty() || e.session_id.len() > 64 {
        return Err(bad("session_id", "must be 1 to 64 characters"));
    }
    if !["view", "click", "add_cart", "pay", "share", "search"].contains(&e.action_type.as_str()) {
        return Err(bad(
            "action_type",
            "must be one of view, click, add_cart, pay, share, search",
        ));
    }
    if e.page.is_empty() || e.page.len() > 64 {
        return Err(bad("page", "must be 1 to 64 characters"));
    }
    match &e.event_time {
        Some(ts) => c360_model::parse_ts(ts)
            .map_err(|x| ApiError::BadRequest(format!("{at}event_time: {ts:?}: {x}"))),
        None => Ok(now_shanghai()),
    }
}

/// Stores one validated event (durable before this returns); `None` for a resend.
async fn store_event(
    st: &AppState,
    e: &NewEvent,
    t: chrono::NaiveDateTime,
) -> ApiResult<Option<i64>> {
    let row = vec![
        e.event_id.clone().into(),
        e.customer_id.map_or(V::NullI, V::I),
        e.session_id.clone().into(),
        e.action_type.clone().into(),
        e.page.clone().into(),
        c360_model::fmt_ts(t).into(),
        e.device.clone().map_or(V::NullS, V::S),
        chrono::Utc::now().to_rfc3339().into(),
    ];
    let cols = [
        "event_id",
        "customer_id",
        "session_id",
        "action_type",
        "page",
        "event_time",
        "device",
        "received_at",
    ];
    if !insert_once(st, "live_events", &cols, row).await? {
        return Ok(None);
    }
    let seq = st.hub().publish("events", None, json!({"customer_id": e.customer_id, "action_type": e.action_type, "page": e.page, "event_time": c360_model::fmt_ts(t)})).await?;
    Ok(Some(seq))
}

#[utoipa::path(post, path = "/api/v1/events", request_body = NewEvent, responses((status = 201, body = Ingested), (status = 200, body = Ingested), (status = 400, body = ErrorBody)))]
async fn post_event(
    State(st): State<AppState>,
    p: Principal,
    J(e): J<NewEvent>,
) -> ApiResult<axum::response::Response> {
    let target = "event".to_string();
    let r = post_event_inner(State(st.clone()), p.clone(), J(e))
        .await
        .map(IntoResponse::into_response);
    crate::act::logged(&st, &p, "event.ingest", &target, json!({}), r).await
}

async fn post_event_inner(
    State(st): State<AppState>,
    p: Principal,
    J(e): J<NewEvent>,
) -> ApiResult<impl IntoResponse> {
    p.require(&[Role::Admin])?;
    let t = validate_event(&e, "")?;
    match store_event(&st, &e, t).await? {
        None => Ok((StatusCode::OK, Json(Ingested::duplicate()))),
        Some(seq) => Ok((
            StatusCode::CREATED,
            Json(Ingested {
                created: true,
                seq: Some(seq),
                live: None,
            }),
        )),
    }
}

/// A batch of page events (the mini-program flushes its buffer).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct EventBatch {
    pub events: Vec<NewEvent>,
}

#[utoipa::path(post, path = "/api/v1/events/batch", request_body = EventBatch, responses((status = 200, description = "How many events were new and how many were resends; every event is stored before the answer"), (status = 400, body = ErrorBody)))]
async fn post_event_batch(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<EventBatch>,
) -> ApiResult<axum::response::Response> {
    let target = format!("{} events", b.events.len());
    let r = post_event_batch_inner(State(st.clone()), p.clone(), J(b))
        .await
        .map(IntoResponse::into_response);
    crate::act::logged(&st, &p, "event.ingest_batch", &target, json!({}), r).await
}

async fn post_event_batch_inner(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<EventBatch>,
) -> ApiResult<Json<Value>> {
    p.require(&[Role::Admin])?;
    if b.events.is_empty() || b.events.len() > 1000 {
        return Err(ApiError::BadRequest(
            "events: must hold 1 to 1000 events".into(),
        ));
    }
    // All or nothing on validation: a bad event rejects the batch before anything is stored.
    let times: Vec<_> = b
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| validate_event(e, &format!("events[{i}].")))
        .collect::<ApiResult<_>>()?;
    let (mut created, mut duplicates) = (0u64, 0u64);
    for (e, t) in b.events.iter().zip(times) {
        match store_event(&st, e, t).await? {
            Some(_) => created += 1,
            None => duplicates += 1,
        }
    }
    Ok(Json(json!({"created": created, "duplicates": duplicates})))
}

#[utoipa::path(get, path = "/api/v1/live", responses((status = 200, description = "Live counters since the snapshot and the latest orders")))]
async fn live(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let head = st.hub().head();
    let recent = st.hub().replay((head - 500).max(0), 500).await?;
    let feed: Vec<Value> = recent
        .iter()
        .rev()
        .filter(|e| e.topic == "orders")
        .filter_map(|e| {
            crate::hub::visible(&p, e).map(|d| json!({"seq": e.seq, "at": e.at, "data": d}))
        })
        .take(50)
        .collect();
    let (o, r) = st.live_stats().seen_by(&p);
    Ok(Json(
        json!({"head": head, "live_orders": o, "live_revenue_fen": r, "feed": feed}),
    ))
}

/// Tells subscribers that a new warehouse snapshot is being served.
pub async fn announce_snapshot(st: &AppState) -> ApiResult<()> {
    let s = st.snapshot().await?;
    let customers = s
        .sess
        .scalar_i64("SELECT COUNT(*) FROM customer_segmentation")
        .await?;
    let orders = s
        .sess
        .scalar_i64("SELECT COUNT(*) FROM fact_orders")
        .await?;
    st.hub()
        .publish(
            "etl",
            None,
            json!({"version": s.version, "customers": customers, "orders": orders}),
        )
        .await?;
    Ok(())
}

impl AppState {
    fn inner_live(&self) -> &tokio::sync::Mutex<HashMap<i64, c360_etl::profile::LiveProfile>> {
        &self.inner().live
    }

    /// The live re-score of a customer (Null unless an order arrived since the snapshot).
    pub async fn live_profile_json(&self, id: i64) -> Value {
        self.score_json(id).await.unwrap_or(Value::Null)
    }

    /// Re-applies the orders received since the snapshot (after a restart or a new snapshot),
    /// without publishing them again.
    pub async fn replay_live_orders(&self) -> ApiResult<usize> {
        let s = self.snapshot().await?;
        let rows = self.inner().meta.fetch_all(&format!(
            "SELECT customer_id, store_id, day, total_fen FROM live_orders WHERE day >= {} ORDER BY order_time, order_no", s.end_day)).await?;
        for r in &rows {
            self.apply_live_order(
                &s,
                get_i64(r, "customer_id"),
                get_i64(r, "store_id").unwrap_or(0),
                get_i64(r, "day").unwrap_or(0),
                get_i64(r, "total_fen").unwrap_or(0),
            )
            .await?;
        }
        Ok(rows.len())
    }

    async fn score_json(&self, id: i64) -> ApiResult<Value> {
        let s = self.snapshot().await?;
        let live = self.inner_live().lock().await;
        let Some(lp) = live.get(&id) else {
            return Ok(Value::Null);
        };
        Ok(profile_json(&s, lp))
    }

    /// Counts the order in the live stats and, for a known customer, re-scores them from the
    /// stored models (no refit). Returns the new live profile.
    pub async fn apply_live_order(
        &self,
        s: &Snapshot,
        customer: Option<i64>,
        store: i64,
        day: i64,
        total_fen: i64,
    ) -> ApiResult<Option<Value>> {
        {
            let mut st = self.inner().stats.lock().unwrap();
            st.orders += 1;
            st.revenue_fen += total_fen;
            let e = st.by_store.entry(store).or_default();
            e.0 += 1;
            e.1 += total_fen;
        }
        let Some(c) = customer else { return Ok(None) };
        let mut live = self.inner_live().lock().await;
        let before = match live.get(&c) {
            Some(p) => Some(p.clone()),
            None => c360_etl::profile::live_profile(&s.sess, c).await?,
        };
        let Some(before) = before else {
            // A customer with no paid order in the snapshot: nothing to re-score from yet.
            return Ok(None);
        };
        let after = c360_etl::profile::apply_order(&before, day, total_fen as f64);
        let v = profile_json(s, &after);
        live.insert(c, after);
        Ok(Some(v))
    }

    /// Orders received live for one customer (newest first).
    pub async fn live_orders_of(&self, id: i64) -> ApiResult<Vec<Value>> {
        let s = self.snapshot().await?;
        let rows = self.inner().meta.fetch_all(&format!(
            "SELECT order_no, store_id, order_time, total_fen FROM live_orders WHERE customer_id = {id} AND day >= {} ORDER BY order_time DESC", s.end_day)).await?;
        Ok(rows.iter().map(|r| json!({
            "order_no": c360_db::get_text(r, "order_no"), "store_id": get_i64(r, "store_id"),
            "order_time": c360_db::get_text(r, "order_time"), "total_fen": get_i64(r, "total_fen"),
        })).collect())
    }
}

fn profile_json(s: &Snapshot, p: &c360_etl::profile::LiveProfile) -> Value {
    let score = s.models.as_ref().map(|m| m.score(p));
    json!({
        "home_store_id": p.features.home_store_id,
        "orders": p.features.orders, "spend_fen": p.features.spend, "recency_days": p.features.recency,
        "as_of_day": p.as_of, "score": score,
    })
}
