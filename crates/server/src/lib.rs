//! The c360 server: the REST API (with its OpenAPI document and Swagger UI), WebSocket push and
//! the embedded web dashboard, over one warehouse snapshot plus the live changes since it.
//!
//! [`app`] builds the router from an [`AppState`], so tests drive it without a socket; [`run`]
//! serves it on a listener the caller bound (tests bind port 0). This crate is HTTP only: the
//! domain (profiles, live re-score, campaigns, experiments, service, audit) is `c360-core`, and
//! state lives in the metastore. Layers, each importing only those before it: `error`, `auth`,
//! `hub`, `queue` → `state` → `ingest` (the group committer of live orders and events) → `authz`
//! (the one authorization layer) → `support` → `routes/*` → `openapi`, `routes` (the router) →
//! this file.

pub mod auth;
pub mod authz;
pub mod error;
pub mod hub;
pub mod ingest;
pub mod openapi;
pub mod queue;
pub mod routes;
pub mod state;
pub(crate) mod support;
pub mod web;

pub use c360_core::{audit, campaign, experiments, json};
pub use c360_insights::llm::LlmConfig;
pub use state::{AppState, Limits, LiveStats, ServeConfig, Snapshot, PER_CUSTOMER_VIEWS};

use axum::Router;

/// The whole HTTP surface: `/api/v1/...`, `/ws`, `/api-docs/openapi.json`, `/swagger-ui` and
/// the dashboard at `/`.
pub fn app(state: AppState) -> Router {
    routes::router()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authz::gate,
        ))
        .merge(web::router())
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), bounded))
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Every request gets a slot among `Limits::max_in_flight` and `Limits::request_timeout` to wait
/// for it and finish; past that it answers 503 `timeout` (a WebSocket's upgrade is bounded, not
/// the socket after it).
async fn bounded(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = st.inner().cfg.limits.request_timeout;
    // The route's template (no ids, no query string) names a slow request in the log.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let run = async {
        let _slot = st.inner().in_flight.acquire().await;
        next.run(req).await
    };
    let r = match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => error::ApiError::Timeout(limit.as_secs()).into_response(),
    };
    let took = started.elapsed();
    if took >= SLOW_REQUEST {
        tracing::warn!(
            %method,
            route = route.as_ref().map_or("(no route)", |p| p.as_str()),
            status = r.status().as_u16(),
            ms = took.as_millis() as u64,
            "slow request"
        );
    }
    r
}

/// A request that takes this long is logged (route template, status, time).
const SLOW_REQUEST: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves until `shutdown` resolves; also watches the warehouse for new snapshots (an ETL run
/// by another process) and pushes them to subscribers.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(state.inner().cfg.poll).await;
                match state.reload().await {
                    Ok(true) => {
                        if let Err(e) = state::announce_snapshot(&state).await {
                            tracing::warn!(error = %e, "announcing a new snapshot");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "reloading the warehouse"),
                }
            }
        })
    };
    // Keys created or revoked by another process (the CLI, another server) take effect here
    // within `KEY_POLL`; a revoked key's WebSockets close.
    let keys = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(state::KEY_POLL).await;
                if let Err(e) = state.refresh_keys().await {
                    tracing::warn!(error = %e, "re-reading the API keys");
                }
            }
        })
    };
    // The stream log, kept by age and size.
    let prune = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let l = &state.inner().cfg.limits;
                match state.hub().prune(l.stream_max_age, l.stream_max_rows).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "pruned the stream log"),
                    Err(e) => tracing::warn!(error = %e, "pruning the stream log"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
        })
    };
    let r = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    keys.abort();
    prune.abort();
    r
}
