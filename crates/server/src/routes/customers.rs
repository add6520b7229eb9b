//! Customers: search and lists with filters and paging, and one customer's profile (the seed's
//! getCustomerProfile), timeline, behaviour, emotion, preferences and predictions. Store
//! managers see only customers whose home store is theirs.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, P, Q};
use crate::state::AppState;
use crate::support::*;
use c360_core::query::Filter;

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
pub(crate) async fn list_customers(
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
    let mut w = Filter::new("order_count > 0");
    if let Some(t) = &lp.tier {
        w.eq("tier", t.as_str());
    }
    if let Some(t) = &lp.rfm_class {
        w.eq("rfm_class", t.as_str());
    }
    if let Some(t) = &lp.lifecycle {
        w.eq("lifecycle", t.as_str());
    }
    if let Some(c) = lp.city_id {
        w.eq("home_city_id", c);
    }
    if let Some(c) = lp.store_id {
        w.eq("home_store_id", c);
    }
    if let Some(m) = lp.min_spend_fen {
        w.ge("total_spend_fen", m);
    }
    if let Some(text) = lp.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if !text.chars().all(|c| c.is_ascii_digit()) || text.len() > 11 {
            return Err(ApiError::BadRequest(
                "q: digits only (a customer id or the last digits of a phone)".into(),
            ));
        }
        w.cond(
            "(CAST(customer_id AS VARCHAR) = {} OR phone_masked LIKE {})",
            vec![text.into(), format!("%{text}").into()],
        );
    }
    if let Some(sc) = p.store_scope() {
        w.one_of("home_store_id", sc);
    }
    let key = format!(
        "list|{}|{}|{sort}|{dir}|{page}|{size}",
        p.scope_key(),
        w.key()
    );
    let st2 = st.clone();
    let v = st.cached(key, || async move {
        let s = st2.snapshot().await?;
        let clause = w.sql();
        let total = query_with(&s.sess, &format!("SELECT COUNT(*) AS n FROM v_customer_360 WHERE {clause}"), w.params.clone())
            .await?
            .first()
            .and_then(|r| r["n"].as_i64())
            .unwrap_or(0);
        let items = query_with(&s.sess, &format!(
            "SELECT customer_id, phone_masked, name_masked, order_count, total_spend_fen, avg_order_fen, last_order_time, \
             tier, rfm_class, rfm_segment, lifecycle, \"cluster\", clv_12m_fen, p_churn_90d, home_store_id, home_city_id \
             FROM v_customer_360 WHERE {clause} ORDER BY {sort} {dir} NULLS LAST, customer_id LIMIT {size} OFFSET {}",
            (page - 1) as u64 * size as u64
        ), w.params).await?;
        Ok(json!({"total": total, "page": page, "page_size": size, "items": items}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", params(("id" = i64, Path)), responses((status = 200, description = "The v_customer_360 row, geography, channels and any live re-score"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn customer_profile(
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

#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", params(("id" = i64, Path), RangeParams), responses((status = 200, description = "Orders, newest first, with their items")))]
pub(crate) async fn customer_timeline(
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
pub(crate) async fn customer_behavior(
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
pub(crate) async fn customer_emotion(
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
        let (_, aspects) = crate::routes::sentiment::aspect_facts(&s, id).await?;
        let aspects: Vec<Value> = aspects.into_iter().map(|(a, v)| json!({"aspect": a, "score": v})).collect();
        Ok(json!({"customer_id": id, "summary": summary.first(), "aspects": aspects, "reviews": reviews}))
    }).await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/preferences", params(("id" = i64, Path)), responses((status = 200, description = "Time (daypart × weekday × holiday), products, categories, holiday lift")))]
pub(crate) async fn customer_preferences(
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
pub(crate) async fn customer_predictions(
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
        let preds = if metrics.is_empty() { vec![] } else {
            let mut f = Filter::new("TRUE");
            f.eq("customer_id", id).one_of("metric", metrics);
            query_with(&s.sess, &format!("SELECT model, metric, horizon_days, value, as_of FROM customer_predictions WHERE {} ORDER BY metric", f.sql()), f.params).await?
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
