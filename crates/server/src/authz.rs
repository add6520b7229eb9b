//! The one authorization layer: which roles may call each operation, and which stores' data a
//! caller may read or change.
//!
//! - **Operations.** Every route of the router has a [`Rule`] in [`RULES`]: who may call it and
//!   the audit name of a refusal. [`gate`] runs in front of every route, before any handler: it
//!   checks the key (401), the role (403, audited) and hands the handler its [`Principal`]. A
//!   route without a rule answers 500 instead of running: a new route cannot be open by mistake
//!   (a test checks the table against the router and the OpenAPI document).
//! - **Things a request names.** A store, a customer (by their home store), an order (by its
//!   store), a campaign (by its audience's stores), a saved audience (by its stores), an experiment (by its stores), a stream event
//!   (by its store): the functions below decide, and handlers call them for every id in a path,
//!   a query or a body. List answers are cut with [`filter`]. Nothing else in the server compares
//!   a store id with a caller's stores.
//!
//! A store manager sees and changes only their stores; admins and analysts see the chain.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use c360_core::audience::AudienceSpec;
use c360_core::campaign::CampaignSpec;
use c360_core::experiments::ExperimentSpec;
use c360_core::query::Filter;
use serde_json::{json, Value};

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::hub::Event;
use crate::state::AppState;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callers {
    /// No key needed (the health check).
    Anyone,
    /// A valid key of one of these roles.
    Roles(&'static [Role]),
}

/// One operation of the router and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    /// The route as the router and the OpenAPI document spell it.
    pub path: &'static str,
    pub callers: Callers,
    /// The audit trail's name for the action (a refusal is recorded under it).
    pub action: &'static str,
}

const ALL: Callers = Callers::Roles(&[Role::Admin, Role::Analyst, Role::StoreManager]);
const ADMIN: Callers = Callers::Roles(&[Role::Admin]);
/// Who acts on the whole chain at once.
const CHAIN: Callers = Callers::Roles(&[Role::Admin, Role::Analyst]);
/// Who rings up orders: the chain's integration (admin) and the stores.
const TILLS: Callers = Callers::Roles(&[Role::Admin, Role::StoreManager]);

const fn rule(
    method: &'static str,
    path: &'static str,
    callers: Callers,
    action: &'static str,
) -> Rule {
    Rule {
        method,
        path,
        callers,
        action,
    }
}

/// Every operation of the API and the WebSocket, one line each.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    rule("GET", "/api/v1/health", Callers::Anyone, "health.read"),
    rule("GET", "/api/v1/me", ALL, "me.read"),
    rule("POST", "/api/v1/ws/ticket", ALL, "ws.ticket"),
    rule("GET", "/api/v1/overview", ALL, "overview.read"),
    rule("GET", "/api/v1/capture", ALL, "capture.read"),
    rule("GET", "/api/v1/customers", ALL, "customers.list"),
    rule("GET", "/api/v1/customers/{id}", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/timeline", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/behavior", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/emotion", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/preferences", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/recommendations", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/predictions", ALL, "customer.read"),
    rule("GET", "/api/v1/customers/{id}/insights", ALL, "customer.insights"),
    rule("GET", "/api/v1/customers/{id}/network", ALL, "customer.read"),
    rule("GET", "/api/v1/segments", ALL, "segments.read"),
    rule("GET", "/api/v1/compare/{dim}", ALL, "compare.read"),
    rule("POST", "/api/v1/orders", TILLS, "order.ingest"),
    rule("POST", "/api/v1/events", ADMIN, "event.ingest"),
    rule("POST", "/api/v1/events/batch", ADMIN, "event.ingest_batch"),
    rule("GET", "/api/v1/behavior/funnel", ALL, "behavior.read"),
    rule("GET", "/api/v1/behavior/paths", ALL, "behavior.read"),
    rule("GET", "/api/v1/sentiment", ALL, "sentiment.read"),
    rule("POST", "/api/v1/sentiment/score", ALL, "sentiment.score"),
    rule("GET", "/api/v1/network", ALL, "network.read"),
    rule("GET", "/api/v1/recommendations", ALL, "recommendations.read"),
    rule("GET", "/api/v1/live", ALL, "live.read"),
    rule("GET", "/api/v1/campaigns", ALL, "campaigns.list"),
    rule("POST", "/api/v1/campaigns", ALL, "campaign.create"),
    rule("GET", "/api/v1/campaigns/program", ALL, "campaigns.program"),
    rule("GET", "/api/v1/campaigns/suggestions", ALL, "campaigns.suggest"),
    rule("GET", "/api/v1/campaigns/settings", ALL, "campaign.settings.read"),
    rule("PUT", "/api/v1/campaigns/settings", ADMIN, "campaign.settings"),
    rule("GET", "/api/v1/campaigns/{id}", ALL, "campaign.read"),
    rule("POST", "/api/v1/campaigns/{id}/launch", ALL, "campaign.launch"),
    rule("POST", "/api/v1/campaigns/{id}/status", ALL, "campaign.status"),
    rule("GET", "/api/v1/campaigns/{id}/results", ALL, "campaign.read"),
    rule("GET", "/api/v1/campaigns/{id}/members", ALL, "campaign.read"),
    rule("GET", "/api/v1/audiences", ALL, "audiences.list"),
    rule("POST", "/api/v1/audiences", ALL, "audience.create"),
    rule("POST", "/api/v1/audiences/preview", ALL, "audience.preview"),
    rule("GET", "/api/v1/audiences/fields", ALL, "audiences.list"),
    rule("GET", "/api/v1/audiences/overlap", ALL, "audience.read"),
    rule("GET", "/api/v1/audiences/{id}", ALL, "audience.read"),
    rule("PUT", "/api/v1/audiences/{id}", ALL, "audience.update"),
    rule("DELETE", "/api/v1/audiences/{id}", ALL, "audience.archive"),
    rule("GET", "/api/v1/audiences/{id}/members", ALL, "audience.read"),
    rule("GET", "/api/v1/audiences/{id}/export", ALL, "audience.export"),
    rule("POST", "/api/v1/audiences/{id}/lookalike", ALL, "audience.create"),
    rule("GET", "/api/v1/menu", ALL, "menu.read"),
    rule("GET", "/api/v1/journeys", ALL, "journeys.list"),
    rule("PUT", "/api/v1/journeys/{kind}", CHAIN, "journey.update"),
    rule("GET", "/api/v1/journeys/{kind}/sends", ALL, "journey.read"),
    rule("GET", "/api/v1/experiments", ALL, "experiments.list"),
    rule("POST", "/api/v1/experiments", ALL, "experiment.create"),
    rule("GET", "/api/v1/experiments/{id}/results", ALL, "experiment.read"),
    rule("POST", "/api/v1/service/diagnose", ALL, "service.diagnose"),
    rule("GET", "/api/v1/service/tickets", ALL, "service.tickets"),
    rule("GET", "/api/v1/audit", ADMIN, "audit.read"),
    rule("POST", "/api/v1/privacy/customers/{id}/export", ADMIN, "privacy.export"),
    rule("POST", "/api/v1/privacy/customers/{id}/erase", ADMIN, "privacy.erase"),
    rule("GET", "/api/v1/privacy/requests", ADMIN, "privacy.read"),
    rule("GET", "/ws", ALL, "stream.subscribe"),
];

/// The rule of `method` (HEAD is GET) on the route `path`.
pub fn rule_of(method: &str, path: &str) -> Option<&'static Rule> {
    let method = if method == "HEAD" { "GET" } else { method };
    RULES.iter().find(|r| r.method == method && r.path == path)
}

/// The middleware in front of every route (see the module's documentation).
pub async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    if !(path.starts_with("/api/v1/") || path == "/ws") {
        // The documents, Swagger UI and the dashboard's files are public.
        return next.run(req).await;
    }
    let Some(rule) = rule_of(req.method().as_str(), &path) else {
        if RULES.iter().any(|r| r.path == path) {
            // A method the route does not have: the router answers 405.
            return next.run(req).await;
        }
        return ApiError::Internal(format!("{} {path} has no authorization rule", req.method()))
            .into_response();
    };
    let Callers::Roles(roles) = rule.callers else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let p = match Principal::from_request_parts(&mut parts, &st).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Before the role check, so a flood of refused calls cannot flood the audit log either.
    if let Err(e) = st.admit(&p) {
        return e.into_response();
    }
    if !roles.contains(&p.role) {
        let e = ApiError::Forbidden(format!(
            "role {} may not call {} {path}",
            p.role.as_str(),
            rule.method
        ));
        let detail = json!({"error": e.to_string()});
        let meta = &st.inner().meta;
        let (who, role) = (&p.name, p.role.as_str());
        if let Err(err) =
            c360_core::audit::record(meta, who, role, rule.action, &path, "denied", &detail).await
        {
            tracing::warn!(error = %err, "could not audit a refusal");
        }
        return e.into_response();
    }
    parts.extensions.insert(p);
    next.run(Request::from_parts(parts, body)).await
}

/// The stores the caller may see: None for every store (admins and analysts).
pub fn stores(p: &Principal) -> Option<&[i64]> {
    p.store_scope()
}

/// Whether the caller may see `store` (an unknown store only if they see every store).
pub fn sees_store(p: &Principal, store: Option<i64>) -> bool {
    match stores(p) {
        None => true,
        Some(s) => store.is_some_and(|x| s.contains(&x)),
    }
}

/// A store named by `field` of the request.
pub fn store(p: &Principal, field: &str, id: i64) -> ApiResult<()> {
    if sees_store(p, Some(id)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{field}: store {id} is not one of your stores"
        )))
    }
}

/// A customer named by `field`, by their home store (`home`, None when they have none).
pub fn customer(p: &Principal, field: &str, id: i64, home: Option<i64>) -> ApiResult<()> {
    if sees_store(p, home) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{field}: customer {id} belongs to another store"
        )))
    }
}

/// An order named by `field`, by the store it was placed at.
pub fn order(p: &Principal, field: &str, store: Option<i64>) -> ApiResult<()> {
    if sees_store(p, store) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{field}: an order of another store"
        )))
    }
}

/// Whether the caller sees a campaign (see [`campaign`]).
/// A saved audience the request reads or changes: a store manager only one limited to their
/// stores, and never one defined by SQL (a query could read other stores' rows to decide
/// which of their customers it picks).
pub fn audience(p: &Principal, spec: &AudienceSpec) -> ApiResult<()> {
    let Some(sc) = stores(p) else {
        return Ok(());
    };
    if spec.store_ids.is_empty() {
        return Err(ApiError::Forbidden(
            "store_ids: a store manager's audience must name their stores".into(),
        ));
    }
    if let Some(x) = spec.store_ids.iter().find(|s| !sc.contains(s)) {
        return Err(ApiError::Forbidden(format!(
            "store_ids: {x} is not one of your stores"
        )));
    }
    if spec.sql.is_some() {
        return Err(ApiError::Forbidden(
            "sql: audiences defined by SQL are for admins and analysts".into(),
        ));
    }
    Ok(())
}

pub fn sees_audience(p: &Principal, spec: &AudienceSpec) -> bool {
    audience(p, spec).is_ok()
}

pub fn sees_campaign(p: &Principal, spec: &CampaignSpec) -> bool {
    campaign(p, spec).is_ok()
}

/// A campaign the request reads or changes: a store manager only one whose audience is limited
/// to their stores.
pub fn campaign(p: &Principal, spec: &CampaignSpec) -> ApiResult<()> {
    let Some(sc) = stores(p) else {
        return Ok(());
    };
    if spec.audience.store_ids.is_empty() {
        return Err(ApiError::Forbidden(
            "audience.store_ids: a store manager's campaign must name their stores".into(),
        ));
    }
    if let Some(x) = spec.audience.store_ids.iter().find(|s| !sc.contains(s)) {
        return Err(ApiError::Forbidden(format!(
            "audience.store_ids: {x} is not one of your stores"
        )));
    }
    Ok(())
}

/// Whether the caller sees an experiment: a store manager only one on their stores alone.
pub fn sees_experiment(p: &Principal, spec: Option<&ExperimentSpec>) -> bool {
    match (stores(p), spec) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(sc), Some(e)) => !e.stores.is_empty() && e.stores.iter().all(|s| sc.contains(s)),
    }
}

/// An experiment the request creates or reads (see [`sees_experiment`]).
pub fn experiment(p: &Principal, spec: Option<&ExperimentSpec>) -> ApiResult<()> {
    if sees_experiment(p, spec) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "stores: a store manager's experiment must list only their stores".into(),
        ))
    }
}

/// A warehouse filter: `fixed` and, for a store manager, `col` (a store id column) in their
/// stores.
pub fn filter(p: &Principal, fixed: &'static str, col: &'static str) -> Filter {
    let mut f = Filter::new(fixed);
    f.scope(col, stores(p));
    f
}

/// What the caller may see of a stream event: everything for the chain's roles; for a store
/// manager, events of their stores, the chain's counters cut down to their stores, and of an
/// ETL run only its version.
pub fn event(p: &Principal, e: &Event) -> Option<Value> {
    let Some(scope) = stores(p) else {
        return Some(e.data.clone());
    };
    if e.topic == "metrics" {
        let by_store = e.data.get("by_store")?.as_object()?;
        let (mut orders, mut revenue) = (0i64, 0i64);
        let mut mine = serde_json::Map::new();
        for (k, v) in by_store {
            if scope.iter().any(|s| s.to_string() == *k) {
                orders =
                    orders.saturating_add(v.get("orders").and_then(Value::as_i64).unwrap_or(0));
                revenue = revenue
                    .saturating_add(v.get("revenue_fen").and_then(Value::as_i64).unwrap_or(0));
                mine.insert(k.clone(), v.clone());
            }
        }
        return Some(json!({"live_orders": orders, "live_revenue_fen": revenue, "by_store": mine}));
    }
    if e.topic == "etl" {
        return Some(json!({"version": e.data.get("version")}));
    }
    sees_store(p, e.store_id).then(|| e.data.clone())
}
