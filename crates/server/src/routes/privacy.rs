//! Personal-data requests (PIPL): a customer's data exported, a customer erased, the requests
//! listed. Admins only (the authorization table): a store manager never exports or erases. The
//! engine (`c360_core::privacy`) audits each success; a refused or failed attempt is audited
//! here. An erasure takes the customer out of what this server serves at once; the warehouse
//! part completes at the next ETL run (`c360 privacy apply` does it now).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use c360_core::privacy::{self, PersonalData, PrivacyRequest};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, J, P, Q};
use crate::state::AppState;
use crate::support::logged;

/// Audits a refused or failed attempt (a success was audited by the engine).
async fn audited<T>(
    st: &AppState,
    p: &Principal,
    action: &str,
    id: i64,
    r: ApiResult<T>,
) -> ApiResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => logged(st, p, action, &format!("customer:{id}"), json!({}), Err(e)).await,
    }
}

#[utoipa::path(post, path = "/api/v1/privacy/customers/{id}/export", params(("id" = i64, Path)), responses((status = 200, body = PersonalData, description = "Everything held about the customer: accounts, profile, orders, reviews, events, tickets, predictions, live orders, campaigns and journeys (recorded as a request and audited)"), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn export_customer(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<PersonalData>> {
    let r = async {
        let s = st.snapshot().await.ok();
        // A customer erased since the snapshot has nothing left to export.
        if s.as_ref().is_some_and(|s| s.is_erased(id)) {
            return Err(ApiError::NotFound(format!("customer {id} was erased")));
        }
        let sess = s.as_ref().map(|s| &s.sess);
        Ok(privacy::export(sess, &st.inner().meta, id, &p.name, p.role.as_str()).await?)
    }
    .await;
    Ok(Json(audited(&st, &p, "privacy.export", id, r).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// Why (the person's request, its reference): kept with the request and in the audit trail.
    /// No personal data.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/privacy/customers/{id}/erase", params(("id" = i64, Path)), request_body = ErasureBody, responses((status = 202, body = PrivacyRequest, description = "Erased from the metastore and from what this server serves; the warehouse part is pending until the next ETL run"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn erase_customer(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    J(body): J<ErasureBody>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        let reason = body.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(ApiError::Unprocessable(
                "reason: must be 1 to 200 characters besides spaces".into(),
            ));
        }
        let reason = c360_model::pii::scrub(reason);
        let s = st.snapshot().await.ok();
        let keys = match &s {
            Some(s) if !s.is_erased(id) => privacy::warehouse_keys(&s.sess, id).await?,
            _ => vec![],
        };
        let req = privacy::erase(
            &st.inner().meta,
            id,
            &keys,
            &p.name,
            p.role.as_str(),
            &reason,
        )
        .await?;
        st.forget_customer(id).await;
        Ok(req)
    }
    .await;
    let req = audited(&st, &p, "privacy.erase", id, r).await?;
    Ok((StatusCode::ACCEPTED, Json(req)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsParams {
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    pub requests: Vec<PrivacyRequest>,
}

#[utoipa::path(get, path = "/api/v1/privacy/requests", params(RequestsParams), responses((status = 200, body = RequestList, description = "Export and erasure requests, newest first, with their status"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_requests(
    State(st): State<AppState>,
    _p: Principal,
    Q(q): Q<RequestsParams>,
) -> ApiResult<Json<RequestList>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1 to 500".into()));
    }
    Ok(Json(RequestList {
        requests: privacy::requests(&st.inner().meta.db, limit).await?,
    }))
}
