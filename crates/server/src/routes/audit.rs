//! The audit trail (admins only).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiResult, Q};
use crate::state::AppState;
use crate::support::*;
use c360_core::audit;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    action: Option<String>,
    actor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), responses((status = 200, body = AuditTrail, description = "Audit trail, newest first (admins only)"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn audit_trail(
    State(st): State<AppState>,
    _p: Principal,
    Q(a): Q<AuditParams>,
) -> ApiResult<Json<AuditTrail>> {
    let limit = bounded("limit", a.limit, 100, 1, 1000)?;
    let entries = audit::list(
        &st.inner().meta,
        limit.into(),
        a.action.as_deref(),
        a.actor.as_deref(),
    )
    .await?;
    Ok(Json(AuditTrail { entries }))
}

/// The audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTrail {
    pub entries: Vec<audit::AuditEntry>,
}
