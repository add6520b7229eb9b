//! Who am I, and is the server healthy.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::error::ErrorBody;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Principal), (status = 401, body = ErrorBody)))]
pub(crate) async fn me(p: Principal) -> Json<Principal> {
    Json(p)
}

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, description = "snapshot version, stream head, cache counters")))]
pub(crate) async fn health(State(st): State<AppState>) -> Json<Value> {
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
