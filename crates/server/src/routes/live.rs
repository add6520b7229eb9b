//! Real-time ingestion: orders and page events, durable in the metastore before the answer,
//! idempotent by key, then re-scored and pushed; and the live feed since the snapshot.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use c360_db::{get_i64, Value as V};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, J};
use crate::queue::{Done, EventJob, OrderJob, Work};
use crate::state::{AppState, Snapshot};
use crate::support::*;

/// A paid order as the POS or mini-program reports it in real time.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewOrder {
    /// The source order number; the same number twice is one order.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub order_no: String,
    /// The resolved customer (None: anonymous).
    pub customer_id: Option<i64>,
    pub store_id: i64,
    /// Asia/Shanghai local time `YYYY-MM-DD HH:MM:SS`; default now.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    pub order_time: Option<String>,
    /// What was paid, in fen (at most ¥10,000).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_fen: i64,
    /// At most 200 lines.
    #[serde(default)]
    #[schema(max_items = 200)]
    pub items: Vec<NewItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewItem {
    pub product_id: i64,
    #[schema(minimum = 1, maximum = 1000)]
    pub qty: i64,
    /// List price in fen (at most ¥1,000).
    #[schema(minimum = 0, maximum = 100_000)]
    pub unit_price_fen: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    /// false when this order number (or event id) was already received: nothing was counted twice.
    pub created: bool,
    /// The stream sequence number of the change (None for a duplicate).
    pub seq: Option<i64>,
    /// The customer's re-scored profile, if any.
    pub live: Option<crate::state::LiveView>,
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
pub(crate) async fn insert_once(
    st: &AppState,
    table: &str,
    cols: &[&str],
    row: Vec<V>,
) -> ApiResult<bool> {
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
                .fetch(
                    &format!("SELECT COUNT(*) AS n FROM {table} WHERE {} = ?", cols[0]),
                    &[key.into()],
                )
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

pub(crate) fn day_of(t: chrono::NaiveDateTime) -> i64 {
    c360_model::Day::of_time(t).0
}

pub(crate) fn now_shanghai() -> chrono::NaiveDateTime {
    (chrono::Utc::now() + chrono::Duration::hours(8)).naive_utc()
}

#[utoipa::path(post, path = "/api/v1/orders", request_body = NewOrder, responses((status = 201, body = Ingested), (status = 200, body = Ingested, description = "already received"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn post_order(
    State(st): State<AppState>,
    p: Principal,
    J(o): J<NewOrder>,
) -> ApiResult<axum::response::Response> {
    let target = format!("store:{}", o.store_id);
    match post_order_inner(&st, &p, &target, o).await {
        // Stored, logged, audited in one transaction.
        Ok(r) => Ok(r.into_response()),
        Err(e) => logged(&st, &p, "order.ingest", &target, json!({}), Err(e)).await,
    }
}

/// One order: validated, then stored with its stream events and its audit entry by the group
/// committer ([`crate::ingest`]), which shares one transaction (one fsync) among the orders that
/// arrive together and answers each only after that commit. Then re-scored and pushed.
pub(crate) async fn post_order_inner(
    st: &AppState,
    p: &Principal,
    target: &str,
    o: NewOrder,
) -> ApiResult<impl IntoResponse> {
    crate::authz::store(p, "store_id", o.store_id)?;
    let s = st.snapshot().await?;
    validate_order(&s, &o)?;
    let t = match &o.order_time {
        Some(ts) => in_window(
            "order_time",
            c360_model::parse_ts(ts)
                .map_err(|e| ApiError::Unprocessable(format!("order_time: {ts:?}: {e}")))?,
        )?,
        None => now_shanghai(),
    };
    if let Some(open) = s.store_opened.get(&o.store_id) {
        if t.date() < *open {
            return Err(ApiError::Unprocessable(format!(
                "order_time: {} is before store {} opened on {open}",
                c360_model::fmt_ts(t),
                o.store_id
            )));
        }
    }
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
    let announced = json!(OrderEvent {
        order_no: o.order_no.clone(),
        customer_id: o.customer_id,
        store_id: o.store_id,
        order_time: c360_model::fmt_ts(t),
        total_fen: o.total_fen,
        items: o.items.len(),
    });
    let job = OrderJob {
        order_no: o.order_no.clone(),
        row,
        customer_id: o.customer_id,
        store_id: o.store_id,
        day: day_of(t),
        total_fen: o.total_fen,
        announced,
        by: p.clone(),
        target: target.to_string(),
    };
    let Done::Order { seq, profile } =
        crate::ingest::submit(st, Work::Order(Box::new(job))).await?
    else {
        return Err(ApiError::Internal("an order answered as events".into()));
    };
    let Some(seq) = seq else {
        return Ok((StatusCode::OK, Json(Ingested::duplicate())));
    };
    if let Some(c) = o.customer_id {
        // The order is durable: what it triggers (welcome, big-spender thanks, no more "miss
        // you"). A failure here is logged; the next refresh fires the same triggers by key.
        let row = s.rows_of("v_customer_360", c)?;
        let home = row
            .first()
            .and_then(|r| r["home_store_id"].as_i64())
            .or(Some(o.store_id));
        // A customer new since the snapshot has no consent on record yet: no message.
        let consent = row
            .first()
            .map(c360_core::campaign::Consent::of_row)
            .unwrap_or_default();
        let before = profile.as_ref().map_or(0.0, |lp| lp.features.orders - 1.0);
        if let Err(e) = c360_core::journey::fire_order(
            &st.inner().meta,
            c,
            home,
            consent,
            &o.order_no,
            o.total_fen,
            t,
            before,
            &p.name,
        )
        .await
        {
            tracing::warn!(error = %e, "journeys not fired for a live order");
        }
    }
    let live = profile.map(|lp| crate::state::LiveView::of(&s, &lp));
    Ok((
        StatusCode::CREATED,
        Json(Ingested {
            created: true,
            seq: Some(seq),
            // Another store's customer may buy here; their profile stays with their store.
            live: live.filter(|l| crate::authz::sees_store(p, l.home_store_id)),
        }),
    ))
}

/// An order's bounds: what a hot dog chain's till can ring up.
pub use crate::state::MAX_ORDER_FEN;
pub const MAX_ITEM_FEN: i64 = 100_000;
pub const MAX_QTY: i64 = 1000;
pub const MAX_LINES: usize = 200;

pub(crate) fn validate_order(s: &Snapshot, o: &NewOrder) -> ApiResult<()> {
    let bad = |f: &str, why: String| Err(ApiError::BadRequest(format!("{f}: {why}")));
    let unfit = |f: &str, why: String| Err(ApiError::Unprocessable(format!("{f}: {why}")));
    text_field("", "order_no", &o.order_no, 64)?;
    if !(1..=MAX_ORDER_FEN).contains(&o.total_fen) {
        return bad(
            "total_fen",
            format!("{} is not in 1..={MAX_ORDER_FEN} fen", o.total_fen),
        );
    }
    if o.items.len() > MAX_LINES {
        return bad("items", format!("more than {MAX_LINES} lines"));
    }
    if !s.stores.contains(&o.store_id) {
        return unfit("store_id", format!("store {} does not exist", o.store_id));
    }
    if let Some(c) = o.customer_id {
        if !s.has_customer(c)? {
            return unfit("customer_id", format!("customer {c} does not exist"));
        }
    }
    let mut sum = 0i64;
    for (i, it) in o.items.iter().enumerate() {
        if !(1..=MAX_QTY).contains(&it.qty) {
            return bad(
                &format!("items[{i}].qty"),
                format!("{} is not in 1..={MAX_QTY}", it.qty),
            );
        }
        if !(0..=MAX_ITEM_FEN).contains(&it.unit_price_fen) {
            return bad(
                &format!("items[{i}].unit_price_fen"),
                format!("{} is not in 0..={MAX_ITEM_FEN} fen", it.unit_price_fen),
            );
        }
        if !s.products.contains(&it.product_id) {
            return unfit(
                &format!("items[{i}].product_id"),
                format!("product {} does not exist", it.product_id),
            );
        }
        sum = sum.saturating_add(it.qty.saturating_mul(it.unit_price_fen));
    }
    if !o.items.is_empty() && sum < o.total_fen {
        return unfit(
            "total_fen",
            format!("{} exceeds the items' list total {sum}", o.total_fen),
        );
    }
    Ok(())
}

/// A text field stored in its own column: at least one non-blank character, at most `max`
/// characters, and no NUL (which PostgreSQL text cannot hold; refused on every backend alike).
pub(crate) fn text_field(at: &str, field: &str, v: &str, max: usize) -> ApiResult<()> {
    let bad = |why: &str| Err(ApiError::BadRequest(format!("{at}{field}: {why}")));
    if v.trim().is_empty() {
        return bad("must not be blank");
    }
    if v.chars().count() > max {
        return bad(&format!("longer than {max} characters"));
    }
    if v.contains('\0') {
        return bad("must not contain NUL");
    }
    Ok(())
}

/// A page event from the mini-program.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewEvent {
    /// Client-made unique id; the same id twice is one event.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub event_id: String,
    pub customer_id: Option<i64>,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub session_id: String,
    pub action_type: EventAction,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub page: String,
    /// Asia/Shanghai local time `YYYY-MM-DD HH:MM:SS`; default now.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    pub event_time: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub device: Option<String>,
}

/// What the user did on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    View,
    Click,
    AddCart,
    Pay,
    Share,
    Search,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::View => "view",
            EventAction::Click => "click",
            EventAction::AddCart => "add_cart",
            EventAction::Pay => "pay",
            EventAction::Share => "share",
            EventAction::Search => "search",
        }
    }
}

/// Checks one event; errors name the field (prefixed by `at`, e.g. `events[3].`).
pub(crate) fn validate_event(e: &NewEvent, at: &str) -> ApiResult<chrono::NaiveDateTime> {
    text_field(at, "event_id", &e.event_id, 64)?;
    text_field(at, "session_id", &e.session_id, 64)?;
    text_field(at, "page", &e.page, 64)?;
    if let Some(d) = &e.device {
        text_field(at, "device", d, 32)?;
    }
    match &e.event_time {
        Some(ts) => in_window(
            &format!("{at}event_time"),
            c360_model::parse_ts(ts)
                .map_err(|x| ApiError::Unprocessable(format!("{at}event_time: {ts:?}: {x}")))?,
        ),
        None => Ok(now_shanghai()),
    }
}

/// A time a till or the mini-program reports: from 1990 on, and not more than five minutes
/// ahead of this server's clock (Asia/Shanghai).
fn in_window(field: &str, t: chrono::NaiveDateTime) -> ApiResult<chrono::NaiveDateTime> {
    let latest = now_shanghai() + chrono::Duration::minutes(5);
    let earliest = c360_core::query::FIRST_DAY.and_time(chrono::NaiveTime::MIN);
    if t > latest {
        return Err(ApiError::Unprocessable(format!(
            "{field}: {t} is in the future (more than 5 minutes ahead of {})",
            now_shanghai().format("%Y-%m-%d %H:%M:%S")
        )));
    }
    if t < earliest {
        return Err(ApiError::Unprocessable(format!(
            "{field}: {t} is before {earliest}"
        )));
    }
    Ok(t)
}

/// One validated event as the committer stores and announces it.
fn event_job(e: &NewEvent, t: chrono::NaiveDateTime) -> EventJob {
    let row = vec![
        e.event_id.clone().into(),
        e.customer_id.map_or(V::NullI, V::I),
        e.session_id.clone().into(),
        e.action_type.as_str().into(),
        e.page.clone().into(),
        c360_model::fmt_ts(t).into(),
        e.device.clone().map_or(V::NullS, V::S),
        chrono::Utc::now().to_rfc3339().into(),
    ];
    EventJob {
        event_id: e.event_id.clone(),
        row,
        announced: json!({"customer_id": e.customer_id, "action_type": e.action_type, "page": e.page, "event_time": c360_model::fmt_ts(t)}),
    }
}

/// Stores a request's validated events (durable before this returns), audited as `action`:
/// (created, duplicates, the first new event's sequence number).
async fn store_events(
    st: &AppState,
    p: &Principal,
    action: &'static str,
    target: &str,
    events: Vec<EventJob>,
) -> ApiResult<(u64, u64, Option<i64>)> {
    let work = Work::Events {
        events,
        by: p.clone(),
        action,
        target: target.to_string(),
    };
    match crate::ingest::submit(st, work).await? {
        Done::Events {
            created,
            duplicates,
            first_seq,
        } => Ok((created, duplicates, first_seq)),
        Done::Order { .. } => Err(ApiError::Internal("events answered as an order".into())),
    }
}

#[utoipa::path(post, path = "/api/v1/events", request_body = NewEvent, responses((status = 201, body = Ingested), (status = 200, body = Ingested, description = "already received"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn post_event(
    State(st): State<AppState>,
    p: Principal,
    J(e): J<NewEvent>,
) -> ApiResult<axum::response::Response> {
    let target = "event".to_string();
    match post_event_inner(&st, &p, &target, e).await {
        // Stored and audited in one transaction.
        Ok(r) => Ok(r.into_response()),
        Err(e) => logged(&st, &p, "event.ingest", &target, json!({}), Err(e)).await,
    }
}

pub(crate) async fn post_event_inner(
    st: &AppState,
    p: &Principal,
    target: &str,
    e: NewEvent,
) -> ApiResult<impl IntoResponse> {
    let t = validate_event(&e, "")?;
    match store_events(st, p, "event.ingest", target, vec![event_job(&e, t)]).await? {
        (_, _, None) => Ok((StatusCode::OK, Json(Ingested::duplicate()))),
        (_, _, Some(seq)) => Ok((
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
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<NewEvent>,
}

/// How a batch went: every event is stored before the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchIngested {
    /// Events stored now.
    pub created: u64,
    /// Events already received before (resends): nothing counted twice.
    pub duplicates: u64,
}

/// One change of the live feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedEntry {
    pub seq: i64,
    pub at: String,
    /// The order as the stream carries it.
    #[schema(value_type = OrderEvent)]
    pub data: Value,
}

/// An order as the `orders` topic announces it (the feed and the WebSocket carry this).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEvent {
    pub order_no: String,
    pub customer_id: Option<i64>,
    pub store_id: i64,
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub order_time: String,
    pub total_fen: i64,
    /// Its number of item lines.
    pub items: usize,
}

/// Live counters since the snapshot and the latest orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveFeed {
    /// The stream's newest sequence number.
    pub head: i64,
    pub live_orders: i64,
    pub live_revenue_fen: i64,
    /// Up to 50 newest orders the caller may see, newest first.
    pub feed: Vec<FeedEntry>,
}

#[utoipa::path(post, path = "/api/v1/events/batch", request_body = EventBatch, responses((status = 200, body = BatchIngested, description = "How many events were new and how many were resends; every event is stored before the answer"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn post_event_batch(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<EventBatch>,
) -> ApiResult<axum::response::Response> {
    let target = format!("{} events", b.events.len());
    match post_event_batch_inner(&st, &p, &target, b).await {
        // Stored and audited in one transaction.
        Ok(r) => Ok(r.into_response()),
        Err(e) => logged(&st, &p, "event.ingest_batch", &target, json!({}), Err(e)).await,
    }
}

pub(crate) async fn post_event_batch_inner(
    st: &AppState,
    p: &Principal,
    target: &str,
    b: EventBatch,
) -> ApiResult<Json<BatchIngested>> {
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
    let jobs = b
        .events
        .iter()
        .zip(times)
        .map(|(e, t)| event_job(e, t))
        .collect();
    let (created, duplicates, _) = store_events(st, p, "event.ingest_batch", target, jobs).await?;
    Ok(Json(BatchIngested {
        created,
        duplicates,
    }))
}

#[utoipa::path(get, path = "/api/v1/live", responses((status = 200, body = LiveFeed, description = "Live counters since the snapshot and the latest orders")))]
pub(crate) async fn live(State(st): State<AppState>, p: Principal) -> ApiResult<Json<LiveFeed>> {
    let head = st.hub().head();
    let recent = st.hub().replay((head - 500).max(0), 500).await?;
    let feed = recent
        .iter()
        .rev()
        .filter(|e| e.topic == "orders")
        .filter_map(|e| {
            crate::authz::event(&p, e).map(|data| FeedEntry {
                seq: e.seq,
                at: e.at.clone(),
                data,
            })
        })
        .take(50)
        .collect();
    let (live_orders, live_revenue_fen) = st.live_stats().in_stores(crate::authz::stores(&p));
    Ok(Json(LiveFeed {
        head,
        live_orders,
        live_revenue_fen,
        feed,
    }))
}
