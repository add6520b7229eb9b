//! Store-level and switchback experiments: create with a plan, list, results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiResult, J, P};
use crate::state::AppState;
use crate::support::*;
use c360_core::experiments::{self, ExperimentSpec};

/// Experiments, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentList {
    pub experiments: Vec<experiments::Experiment>,
}

#[utoipa::path(get, path = "/api/v1/experiments", responses((status = 200, body = ExperimentList, description = "Store-level and switchback experiments")))]
pub async fn list_experiments(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Json<ExperimentList>> {
    let mut experiments = experiments::list(&st.inner().meta).await?;
    experiments.retain(|e| authz::sees_experiment(&p, e.spec.as_ref()));
    Ok(Json(ExperimentList { experiments }))
}

#[utoipa::path(post, path = "/api/v1/experiments", request_body = ExperimentSpec, responses((status = 201, body = experiments::Plan, description = "Created, with its plan: assignment and minimum detectable effect"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_experiment(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<ExperimentSpec>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        authz::experiment(&p, Some(&spec))?;
        let s = st.snapshot().await?;
        let id = experiments::create(&st.inner().meta, &spec, &p.name).await?;
        Ok(experiments::plan(&s.sess, &st.inner().meta, id, authz::stores(&p)).await?)
    }
    .await;
    let v = logged(
        &st,
        &p,
        "experiment.create",
        &spec.name,
        json!({"design": spec.design}),
        r,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}/results", params(("id" = i64, Path)), responses((status = 200, body = experiments::Results, description = "Effect per store-day with CI, p-value and chance to win"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn experiment_results(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<experiments::Results>> {
    let (spec, _) = experiments::get(&st.inner().meta, id).await?;
    authz::experiment(&p, Some(&spec))?;
    let s = st.snapshot().await?;
    Ok(Json(
        experiments::results(&s.sess, &st.inner().meta, id, authz::stores(&p)).await?,
    ))
}
