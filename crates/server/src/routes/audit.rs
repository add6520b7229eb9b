//! The audit trail (admins only).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::{Principal, Role};
use crate::error::{ApiResult, Q};
use crate::state::AppState;
use crate::support::*;
use c360_core::audit;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    limit: Option<i64>,
    action: Option<String>,
    actor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), responses((status = 200, description = "Audit trail, newest first (admins only)"), (status = 403, body = crate::error::ErrorBody)))]
pub async fn audit_trail(
    State(st): State<AppState>,
    p: Principal,
    Q(a): Q<AuditParams>,
) -> ApiResult<Json<Value>> {
    if let Err(e) = p.require(&[Role::Admin]) {
        return logged(&st, &p, "audit.read", "audit_log", json!({}), Err(e)).await;
    }
    let v = audit::list(
        &st.inner().meta,
        a.limit.unwrap_or(100),
        a.action.as_deref(),
        a.actor.as_deref(),
    )
    .await?;
    Ok(Json(json!({"entries": v})))
}
