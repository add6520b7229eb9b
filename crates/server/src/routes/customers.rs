//! Customers: search and lists with filters and paging, and one customer's profile (the seed's
//! getCustomerProfile), timeline, behaviour, emotion, preferences and predictions. Store
//! managers see only customers whose home store is theirs.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, P, Q};
use crate::state::{Answer, AppState, LiveOrderRow, LiveView};
use crate::support::*;
use c360_core::query::Filter;
use c360_model::Lifecycle;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Customer id, or the last digits of the (masked) phone.
    #[param(pattern = r"^\s*[0-9]{0,11}\s*$")]
    q: Option<String>,
    tier: Option<String>,
    rfm_class: Option<String>,
    lifecycle: Option<String>,
    city_id: Option<i64>,
    store_id: Option<i64>,
    min_spend_fen: Option<i64>,
    /// Default total_spend_fen.
    #[param(value_type = Option<doc::CustomerSort>)]
    sort: Option<String>,
    /// Default desc.
    #[param(value_type = Option<doc::SortOrder>)]
    order: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Customers per page (default 20).
    #[param(minimum = 1, maximum = 200)]
    page_size: Option<u32>,
}

/// One page of customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPage {
    /// Customers matching the filters.
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    /// customer_id, phone_masked, name_masked, order_count, total_spend_fen, avg_order_fen,
    /// last_order_time, tier, rfm_class, rfm_segment, lifecycle, cluster, clv_12m_fen,
    /// p_churn_90d, home_store_id, home_city_id.
    pub items: Vec<Row>,
}

/// A customer's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerProfile {
    /// Their `v_customer_360` row.
    pub profile: Row,
    /// Home city and store with their coordinates.
    pub geo: Option<Row>,
    /// Orders and spend per channel, most used first.
    pub channels: Vec<Row>,
    /// The live re-score when an order arrived since the snapshot (null otherwise).
    pub live: Option<LiveView>,
}

/// A customer's orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub customer_id: i64,
    /// order_id, order_no, order_time, store_id, store_name, channel, status, total_fen,
    /// discount_fen, daypart, holiday, items.
    pub orders: Vec<Row>,
    /// Orders received live since the snapshot.
    pub live_orders: Vec<LiveOrderRow>,
}

/// A customer's behaviour in the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerBehavior {
    pub customer_id: i64,
    /// daypart, orders, spend_fen.
    pub dayparts: Vec<Row>,
    /// weekday (0 = Sunday), orders.
    pub weekdays: Vec<Row>,
    /// action_type, page, events.
    pub actions: Vec<Row>,
    /// sessions, converted.
    pub sessions: Option<Row>,
    /// page, sessions.
    pub funnel: Vec<Row>,
    /// device, events (and lat, lon for those who may see locations).
    pub devices: Vec<Row>,
}

/// An aspect and its average score.
#[derive(Debug, Serialize, ToSchema)]
pub struct AspectScore {
    pub aspect: String,
    pub score: f64,
}

/// A customer's reviews.
#[derive(Debug, Serialize, ToSchema)]
pub struct Emotion {
    pub customer_id: i64,
    /// reviews, avg_rating, avg_sentiment, negative.
    pub summary: Option<Row>,
    pub aspects: Vec<AspectScore>,
    /// emotion_id, store_id, rating, content, created_at, sentiment and the six aspects.
    pub reviews: Vec<Row>,
}

/// A category's share of a customer's items.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryShare {
    pub category: String,
    pub qty: i64,
    pub share: f64,
}

/// What a customer prefers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preferences {
    pub customer_id: i64,
    /// daypart × weekday × holiday with orders, most first.
    pub time: Vec<Row>,
    /// product_id, name, category, qty, share, most bought first.
    pub products: Vec<Row>,
    pub categories: Vec<CategoryShare>,
    /// holiday_orders, holiday_days, other_orders, other_days, holiday_lift.
    pub holiday: Option<Row>,
}

/// Model outputs for a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Predictions {
    pub customer_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// model, metric, horizon_days, value, as_of.
    pub predictions: Vec<Row>,
    /// Spend growth, last 90 days against the 90 before (type growth or all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_growth: Option<Option<f64>>,
    /// The lifecycle stage (type lifecycle or all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Option<Lifecycle>>,
    /// The live re-score (null when no order arrived since the snapshot).
    pub live: Option<LiveView>,
}

#[utoipa::path(get, path = "/api/v1/customers", params(ListParams), responses((status = 200, body = CustomerPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_customers(
    State(st): State<AppState>,
    p: Principal,
    Q(lp): Q<ListParams>,
) -> ApiResult<Answer<CustomerPage>> {
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
    let page = bounded("page", lp.page, 1, 1, 1_000_000)?;
    let size = bounded("page_size", lp.page_size, 20, 1, 200)?;
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
    if let Some(sid) = lp.store_id {
        crate::authz::store(&p, "store_id", sid)?;
    }
    if let Some(sc) = crate::authz::stores(&p) {
        w.one_of("home_store_id", sc);
    }
    let key = format!(
        "list|{}|{}|{sort}|{dir}|{page}|{size}",
        p.scope_key(),
        w.key()
    );
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        // Customers erased since the snapshot are not listed (the next run removes them).
        let mut w = w;
        w.none_of("customer_id", &s.erased_ids());
        let clause = w.sql();
        let total = qf(&s, &format!("SELECT COUNT(*) AS n FROM v_customer_360 WHERE {clause}"), &w)
            .await?
            .first()
            .and_then(|r| r["n"].as_i64())
            .unwrap_or(0);
        let (lim, off) = (w.value(size as i64), w.value((page as i64 - 1) * size as i64));
        let items = qf(&s, &format!(
            "SELECT customer_id, phone_masked, name_masked, order_count, total_spend_fen, avg_order_fen, last_order_time, \
             tier, rfm_class, rfm_segment, lifecycle, \"cluster\", clv_12m_fen, p_churn_90d, home_store_id, home_city_id \
             FROM v_customer_360 WHERE {clause} ORDER BY {sort} {dir} NULLS LAST, customer_id LIMIT {lim} OFFSET {off}"
        ), &w).await?;
        Ok(CustomerPage { total, page, page_size: size, items: rows(items) })
    }).await
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", params(("id" = i64, Path)), responses((status = 200, body = CustomerProfile, description = "The v_customer_360 row, geography, channels and any live re-score"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn customer_profile(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Answer<CustomerProfile>> {
    let key = format!("profile|{}|{id}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        let row = customer_row(&s, &p, id).await?;
        let geo = s.rows_of("v_customer_geo", id)?;
        let channel = sorted_desc(s.rows_of("v_customer_channel", id)?, "orders");
        let live = st2.live_view(id).await;
        Ok(CustomerProfile {
            profile: first(vec![row]).unwrap_or_default(),
            geo: first(geo),
            channels: rows(channel),
            live,
        })
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", params(("id" = i64, Path), RangeParams), responses((status = 200, body = Timeline, description = "Orders, newest first, with their items"), (status = 400, body = ErrorBody)))]
pub(crate) async fn customer_timeline(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(r): Q<RangeParams>,
) -> ApiResult<Answer<Timeline>> {
    let (from, to) = r.days()?;
    let limit = bounded("limit", r.limit, 50, 1, 500)?;
    let key = format!("timeline|{}|{id}|{from:?}|{to:?}|{limit}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        // Newest first from the snapshot's serving index; `day` is the order's local day.
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
        let (lo, hi) = (
            from.map_or(i64::MIN, |d| (d - epoch).num_days()),
            to.map_or(i64::MAX, |d| (d - epoch).num_days()),
        );
        let orders: Vec<Value> = s
            .index
            .orders(id)?
            .into_iter()
            .filter(|o| o["day"].as_i64().is_some_and(|d| (lo..=hi).contains(&d)))
            .take(limit as usize)
            .map(|mut o| {
                if let Some(m) = o.as_object_mut() {
                    m.remove("day");
                    m.remove("customer_id");
                }
                o
            })
            .collect();
        let live = st2.live_orders_of(id).await?;
        Ok(Timeline {
            customer_id: id,
            orders: rows(orders),
            live_orders: live,
        })
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/behavior", params(("id" = i64, Path), DaysParams), responses((status = 200, body = CustomerBehavior, description = "Orders by daypart and weekday, page events by action, sessions and the funnel, within the range"), (status = 400, body = ErrorBody)))]
pub(crate) async fn customer_behavior(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(r): Q<DaysParams>,
) -> ApiResult<Answer<CustomerBehavior>> {
    let (from, to) = r.days()?;
    let mut wo = Filter::new("status = 'paid'");
    wo.eq("customer_id", id).days("order_time", from, to);
    let mut we = Filter::new("TRUE");
    we.eq("customer_id", id).days("event_time", from, to);
    let key = format!("behavior|{}|{}", p.scope_key(), wo.key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        // This customer's orders and events from the snapshot's serving index.
        let c = s.index.customer_facts(id, &["orders", "customer_behavior_tracks"])?;
        let (o, e) = (wo.sql(), we.sql());
        let dayparts = qs(&c, &format!("SELECT daypart, COUNT(*) AS orders, SUM(total_fen) AS spend_fen FROM orders WHERE {o} GROUP BY daypart ORDER BY orders DESC"), &wo).await?;
        let weekdays = qs(&c, &format!("SELECT CAST(date_part('dow', order_time) AS BIGINT) AS weekday, COUNT(*) AS orders FROM orders WHERE {o} GROUP BY 1 ORDER BY 1"), &wo).await?;
        let actions = qs(&c, &format!("SELECT action_type, page, COUNT(*) AS events FROM customer_behavior_tracks WHERE {e} GROUP BY action_type, page ORDER BY events DESC"), &we).await?;
        let sessions = qs(&c, &format!(
            "SELECT COUNT(*) AS sessions, SUM(CASE WHEN paid THEN 1 ELSE 0 END) AS converted FROM \
             (SELECT session_id, MAX(CASE WHEN action_type = 'pay' THEN 1 ELSE 0 END) = 1 AS paid FROM customer_behavior_tracks \
              WHERE {e} GROUP BY session_id) x"), &we).await?;
        let funnel = qs(&c, &format!(
            "SELECT page, COUNT(DISTINCT session_id) AS sessions FROM customer_behavior_tracks WHERE {e} \
             AND page IN ('menu', 'item', 'cart', 'pay') GROUP BY page"), &we).await?;
        let devices = if p.sees_location() {
            qs(&c, &format!("SELECT device, COUNT(*) AS events, ROUND(AVG(lat_coarse), 2) AS lat, ROUND(AVG(lon_coarse), 2) AS lon FROM customer_behavior_tracks WHERE {e} GROUP BY device"), &we).await?
        } else {
            qs(&c, &format!("SELECT device, COUNT(*) AS events FROM customer_behavior_tracks WHERE {e} GROUP BY device"), &we).await?
        };
        Ok(CustomerBehavior { customer_id: id, dayparts: rows(dayparts), weekdays: rows(weekdays), actions: rows(actions),
                  sessions: first(sessions), funnel: rows(funnel), devices: rows(devices) })
    }).await
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/emotion", params(("id" = i64, Path)), responses((status = 200, body = Emotion, description = "Reviews with rating and sentiment, and their summary"), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub(crate) async fn customer_emotion(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Answer<Emotion>> {
    st.needs("a customer's reviews", &["reviews"]).await?;
    let key = format!("emotion|{}|{id}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        // This customer's reviews from the snapshot's serving index.
        let c = s.index.customer_facts(id, &["customer_emotion"])?;
        let mut f = Filter::new("TRUE");
        f.eq("customer_id", id);
        let reviews = qs(&c, &format!("SELECT emotion_id, store_id, rating, content, created_at, sentiment, taste, service, price, environment, speed, hygiene FROM customer_emotion WHERE {} ORDER BY created_at DESC LIMIT 100", f.sql()), &f).await?;
        let summary = qs(&c, &format!("SELECT COUNT(*) AS reviews, AVG(rating) AS avg_rating, AVG(sentiment) AS avg_sentiment, SUM(CASE WHEN rating <= 2 THEN 1 ELSE 0 END) AS negative FROM customer_emotion WHERE {}", f.sql()), &f).await?;
        let (_, aspects) = crate::routes::sentiment::aspect_facts(&c, id).await?;
        let aspects = aspects.into_iter().map(|(aspect, score)| AspectScore { aspect, score }).collect();
        Ok(Emotion { customer_id: id, summary: first(summary), aspects, reviews: rows(reviews) })
    }).await
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/preferences", params(("id" = i64, Path)), responses((status = 200, body = Preferences, description = "Time (daypart × weekday × holiday), products, categories, holiday lift")))]
pub(crate) async fn customer_preferences(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Answer<Preferences>> {
    let key = format!("prefs|{}|{id}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        customer_row(&s, &p, id).await?;
        let time = sorted_desc(s.rows_of("v_customer_time", id)?, "orders");
        let products = products_of(&s, id)?;
        let mut by_cat: Vec<(String, i64, f64)> = Vec::new();
        for p in &products {
            let c = p["category"].as_str().unwrap_or("").to_string();
            let (qty, share) = (
                p["qty"].as_i64().unwrap_or(0),
                p["share"].as_f64().unwrap_or(0.0),
            );
            match by_cat.iter_mut().find(|x| x.0 == c) {
                Some(x) => {
                    x.1 += qty;
                    x.2 += share;
                }
                None => by_cat.push((c, qty, share)),
            }
        }
        by_cat.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let categories = by_cat
            .into_iter()
            .map(|(category, qty, share)| CategoryShare {
                category,
                qty,
                share,
            })
            .collect();
        let holiday = s.rows_of("v_customer_holiday", id)?;
        Ok(Preferences {
            customer_id: id,
            time: rows(time),
            products: rows(products),
            categories,
            holiday: first(holiday),
        })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredParams {
    /// clv (P(alive), expected purchases, spend, CLV, next order, overdue), churn, growth, lifecycle, or all (default).
    #[serde(rename = "type")]
    #[param(value_type = Option<doc::PredictionKind>)]
    kind: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/predictions", params(("id" = i64, Path), PredParams), responses((status = 200, body = Predictions, description = "Model outputs of the given type, with the live re-score when an order arrived since the snapshot"), (status = 400, body = ErrorBody)))]
pub(crate) async fn customer_predictions(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(pp): Q<PredParams>,
) -> ApiResult<Answer<Predictions>> {
    let kind = pp.kind.unwrap_or_else(|| "all".into());
    let metrics: &[&str] = match kind.as_str() {
        "clv" => &[
            "p_alive",
            "expected_purchases",
            "expected_spend_fen",
            "clv_fen",
            "next_order_days",
            "overdue",
        ],
        "churn" => &["p_churn_90d"],
        "growth" | "lifecycle" => &[],
        "all" => &[
            "p_alive",
            "expected_purchases",
            "expected_spend_fen",
            "clv_fen",
            "next_order_days",
            "overdue",
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
    st.answer(key, || async move {
        let s = st2.snapshot().await?;
        let row = customer_row(&s, &p, id).await?;
        let preds = if metrics.is_empty() { vec![] } else {
            let mut f = Filter::new("TRUE");
            f.eq("customer_id", id).one_of("metric", metrics);
            qf(&s, &format!("SELECT model, metric, horizon_days, value, as_of FROM customer_predictions WHERE {} ORDER BY metric", f.sql()), &f).await?
        };
        let growth = row.get("value_growth").and_then(Value::as_f64);
        let stage = row
            .get("lifecycle")
            .and_then(|v| serde_json::from_value::<Lifecycle>(v.clone()).ok());
        Ok(Predictions {
            customer_id: id,
            value_growth: (kind == "growth" || kind == "all").then_some(growth),
            lifecycle: (kind == "lifecycle" || kind == "all").then_some(stage),
            kind,
            predictions: rows(preds),
            live: st2.live_view(id).await,
        })
    }).await
}
