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

/// A ticket that opens one WebSocket: `GET /ws?ticket=…` within `expires_in_secs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    pub ticket: String,
    pub expires_in_secs: u64,
}

/// Exchanges the key (in the Authorization header) for a short-lived, single-use WebSocket
/// ticket, so the key itself never travels in a URL.
#[utoipa::path(post, path = "/api/v1/ws/ticket", responses((status = 200, body = WsTicket), (status = 401, body = ErrorBody)))]
pub(crate) async fn ws_ticket(State(st): State<AppState>, p: Principal) -> Json<WsTicket> {
    Json(WsTicket {
        ticket: st.issue_ticket(&p),
        expires_in_secs: crate::auth::TICKET_TTL.as_secs(),
    })
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
    /// Live rows moved to quarantine because they could not be applied (see `live_quarantine`
    /// in the metastore for each row and its reason); None when the metastore did not answer.
    pub live_quarantined: Option<i64>,
    /// The source entities the warehouse was loaded from (None: every one, a warehouse from
    /// before source contracts). Views that need another answer 409 `not_in_sources`.
    pub loaded_entities: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
pub(crate) async fn health(State(st): State<AppState>) -> Json<Health> {
    use std::sync::atomic::Ordering::Relaxed;
    let snap = st.snapshot().await.ok();
    Json(Health {
        status: "ok",
        warehouse_version: snap.as_ref().map(|s| s.version),
        data_end_day: snap.as_ref().map(|s| s.end_day),
        loaded_entities: snap
            .as_ref()
            .and_then(|s| s.loaded.as_ref())
            .map(|l| l.iter().cloned().collect()),
        stream_head: st.hub().head(),
        cache_hits: st.inner().cache_hits.load(Relaxed),
        cache_misses: st.inner().cache_misses.load(Relaxed),
        live_quarantined: st.live_quarantined().await.ok(),
    })
}
