//! Who am I, and is the server healthy.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::ErrorBody;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Principal), (status = 401, body = ErrorBody)))]
pub(crate) async fn me(p: Principal) -> Json<Principal> {
    Json(p)
}

/// The server's state at a glance (no key needed).
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always "ok" when the server answers.
    pub status: &'static str,
    /// The warehouse snapshot served (none before the first ETL run).
    pub warehouse_version: Option<u64>,
    /// Day number (since 1970-01-01) after the snapshot's last order.
    pub data_end_day: Option<i64>,
    /// The newest stream-log sequence number.
    pub stream_head: i64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
pub(crate) async fn health(State(st): State<AppState>) -> Json<Health> {
    use std::sync::atomic::Ordering::Relaxed;
    let snap = st.snapshot().await.ok();
    Json(Health {
        status: "ok",
        warehouse_version: snap.as_ref().map(|s| s.version),
        data_end_day: snap.as_ref().map(|s| s.end_day),
        stream_head: st.hub().head(),
        cache_hits: st.inner().cache_hits.load(Relaxed),
        cache_misses: st.inner().cache_misses.load(Relaxed),
    })
}
