//! Triggered journeys: the four journeys with their settings and counts, configuring one
//! (admins and analysts: they act on the whole chain), and the sends one planned (a store
//! manager sees their stores' customers only). Configuration changes are audited; each firing
//! is audited by the journey engine.

use axum::extract::State;
use axum::Json;
use c360_core::journey::{self, Journey, JourneyKind, JourneySpec, Send};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiError, ApiResult, J, P, Q};
use crate::state::AppState;
use crate::support::*;

fn kind_of(k: &str) -> ApiResult<JourneyKind> {
    JourneyKind::parse(k).ok_or_else(|| {
        ApiError::NotFound(format!(
            "journey {k:?} does not exist (welcome, miss_you, big_spender, recovery)"
        ))
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyList {
    pub journeys: Vec<Journey>,
}

#[utoipa::path(get, path = "/api/v1/journeys", responses((status = 200, body = JourneyList, description = "The four journeys, their settings (none: off) and their sends per arm and status, in the caller's stores")))]
pub async fn list_journeys(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Json<JourneyList>> {
    Ok(Json(JourneyList {
        journeys: journey::list_in(&st.inner().meta.db, authz::stores(&p)).await?,
    }))
}

#[utoipa::path(put, path = "/api/v1/journeys/{kind}", params(("kind" = String, Path, description = "welcome, miss_you, big_spender or recovery")), request_body = JourneySpec, responses((status = 200, body = Journey, description = "Configured"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn set_journey(
    State(st): State<AppState>,
    p: Principal,
    P(kind): P<String>,
    J(spec): J<JourneySpec>,
) -> ApiResult<Json<Journey>> {
    let r = async {
        let k = kind_of(&kind)?;
        journey::set(&st.inner().meta.db, k, &spec, &p.name).await?;
        Ok(k)
    }
    .await;
    let k = logged(
        &st,
        &p,
        "journey.update",
        &format!("journey:{kind}"),
        json!({"enabled": spec.enabled}),
        r,
    )
    .await?;
    Ok(Json(journey::get(&st.inner().meta.db, k).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SendsParams {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendList {
    pub sends: Vec<Send>,
}

#[utoipa::path(get, path = "/api/v1/journeys/{kind}/sends", params(("kind" = String, Path, description = "welcome, miss_you, big_spender or recovery"), SendsParams), responses((status = 200, body = SendList, description = "The journey's sends, newest first: arm, status, coupon, send time and why"), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn journey_sends(
    State(st): State<AppState>,
    p: Principal,
    P(kind): P<String>,
    Q(sp): Q<SendsParams>,
) -> ApiResult<Json<SendList>> {
    let k = kind_of(&kind)?;
    let limit = sp.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1 to 500".into()));
    }
    Ok(Json(SendList {
        sends: journey::sends(&st.inner().meta.db, k, authz::stores(&p), limit).await?,
    }))
}
