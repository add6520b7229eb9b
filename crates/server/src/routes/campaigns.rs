//! Campaigns: suggest, create, launch, pause/resume/complete/cancel, members, results, the
//! programme effect and the global holdout. Store managers act on their own stores only; every
//! write and refusal is audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiResult, J, P, Q};
use crate::state::{Answer, AppState};
use crate::support::*;
use c360_core::campaign::{self, Campaign, CampaignSpec};
use c360_model::CampaignStatus;

/// Campaign `id`, if the caller may see it (`authz::campaign`).
async fn campaign_of(st: &AppState, p: &Principal, id: i64) -> ApiResult<Campaign> {
    let c = campaign::get(&st.inner().meta, id).await?;
    authz::campaign(p, &c.spec)?;
    Ok(c)
}

/// Campaigns, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
}

/// A campaign's id and the state it is now in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignState {
    pub campaign_id: i64,
    pub status: CampaignStatus,
}

#[utoipa::path(get, path = "/api/v1/campaigns", responses((status = 200, body = CampaignList)))]
pub async fn list_campaigns(
    State(st): State<AppState>,
    p: Principal,
) -> ApiResult<Json<CampaignList>> {
    let mut campaigns = campaign::list(&st.inner().meta).await?;
    campaigns.retain(|c| authz::sees_campaign(&p, &c.spec));
    Ok(Json(CampaignList { campaigns }))
}

/// Campaign ideas from the segments as they are now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestions {
    pub suggestions: Vec<campaign::Suggestion>,
}

#[utoipa::path(get, path = "/api/v1/campaigns/suggestions", responses((status = 200, body = Suggestions, description = "Campaign drafts from the RFM segments, with audience size, churn and CLV")))]
pub async fn suggestions(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Suggestions>> {
    let s = st.snapshot().await?;
    let suggestions = campaign::suggest(&s.sess, authz::stores(&p)).await?;
    Ok(Json(Suggestions { suggestions }))
}

#[utoipa::path(post, path = "/api/v1/campaigns", request_body = CampaignSpec, responses((status = 201, body = CampaignState, description = "Draft created"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_campaign(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<CampaignSpec>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        authz::campaign(&p, &spec)?;
        if let Some(a) = spec.audience.audience_id {
            let x = c360_core::audience::get(&st.inner().meta, a)
                .await
                .ok()
                .filter(|x| x.status == "active" && authz::sees_audience(&p, &x.spec));
            if x.is_none() {
                return Err(crate::error::ApiError::Unprocessable(format!(
                    "audience.audience_id: audience {a} does not exist"
                )));
            }
        }
        Ok(campaign::create(&st.inner().meta, &spec, &p.name).await?)
    }
    .await;
    let id = logged(
        &st,
        &p,
        "campaign.create",
        &spec.name,
        json!({"name": spec.name}),
        r,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CampaignState {
            campaign_id: id,
            status: CampaignStatus::Draft,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", params(("id" = i64, Path)), responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_campaign(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(campaign_of(&st, &p, id).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/launch", params(("id" = i64, Path)), responses((status = 200, body = campaign::Launched, description = "Audience materialised: arms, offers, coupons, send times"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "Not a draft (launched already)")))]
pub async fn launch_campaign(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<campaign::Launched>> {
    let r = async {
        let c = campaign_of(&st, &p, id).await?;
        let saved = super::audiences::for_campaign(&st, &p, &c.spec).await?;
        let s = st.snapshot().await?;
        Ok(campaign::launch(
            &s.sess,
            &st.inner().meta,
            id,
            authz::stores(&p),
            saved.as_deref(),
        )
        .await?)
    }
    .await;
    let v = logged(
        &st,
        &p,
        "campaign.launch",
        &format!("campaign:{id}"),
        json!({}),
        r,
    )
    .await?;
    st.bump();
    Ok(Json(v))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusChange {
    /// pause, resume, complete or cancel.
    pub action: c360_model::CampaignAction,
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/status", params(("id" = i64, Path)), request_body = StatusChange, responses((status = 200, body = CampaignState, description = "New status"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "The campaign's state does not allow the move")))]
pub async fn campaign_status(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    J(b): J<StatusChange>,
) -> ApiResult<Json<CampaignState>> {
    let r = async {
        campaign_of(&st, &p, id).await?;
        Ok(campaign::transition(&st.inner().meta, id, b.action).await?)
    }
    .await;
    let to = logged(
        &st,
        &p,
        &format!("campaign.{}", b.action),
        &format!("campaign:{id}"),
        json!({}),
        r,
    )
    .await?;
    st.bump();
    Ok(Json(CampaignState {
        campaign_id: id,
        status: to,
    }))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/results", params(("id" = i64, Path)), responses((status = 200, body = campaign::CampaignResults, description = "Per arm against the holdout: incremental revenue and retention (CUPED, Bayesian, always-valid), redemptions at the POS and in the mini-program, guardrails, SRM, Holm-adjusted p-values, uplift model"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn campaign_results(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Answer<campaign::CampaignResults>> {
    campaign_of(&st, &p, id).await?;
    let s = st.snapshot().await?;
    let key = format!("campaign-results:{id}:{}", p.scope_key());
    st.answer(key, || async {
        Ok(campaign::evaluate(&s.sess, &st.inner().meta, id, authz::stores(&p)).await?)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgramParams {
    /// First day (YYYY-MM-DD).
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    from: String,
    /// Last day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    to: String,
}

#[utoipa::path(get, path = "/api/v1/campaigns/program", params(ProgramParams), responses((status = 200, body = campaign::ProgramEffect, description = "All campaigns together against the global holdout: revenue per customer, CUPED, incremental revenue"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn program(
    State(st): State<AppState>,
    p: Principal,
    Q(pp): Q<ProgramParams>,
) -> ApiResult<Answer<campaign::ProgramEffect>> {
    let (from, to) = (parse_day("from", &pp.from)?, parse_day("to", &pp.to)?);
    let s = st.snapshot().await?;
    let key = format!("program:{from}:{to}:{}", p.scope_key());
    st.answer(key, || async {
        Ok(
            campaign::program_effect(&s.sess, &st.inner().meta, from, to, authz::stores(&p))
                .await?,
        )
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// At most this many (default 100, up to 5000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
    /// Only this arm.
    arm: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/members", params(("id" = i64, Path), MemberParams), responses((status = 200, body = MemberPage, description = "Members with arm, offer, coupon and send time"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn campaign_members(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(mp): Q<MemberParams>,
) -> ApiResult<Json<MemberPage>> {
    let limit = bounded("limit", mp.limit, 100, 1, 5000)?;
    campaign_of(&st, &p, id).await?;
    let mut ms = campaign::members(&st.inner().meta, id).await?;
    ms.retain(|m| authz::sees_store(&p, m.home_store_id));
    if let Some(a) = &mp.arm {
        ms.retain(|m| &m.arm == a);
    }
    let total = ms.len();
    ms.truncate(limit as usize);
    Ok(Json(MemberPage { total, members: ms }))
}

/// A campaign's members (the first `limit` of them).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// Members (in the caller's stores, of the arm asked for).
    pub total: usize,
    pub members: Vec<campaign::Member>,
}

/// Settings of the marketing programme.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// Share of all customers no campaign ever reaches (percent, 0..=20).
    #[schema(minimum = 0, maximum = 20)]
    pub global_holdout_pct: f64,
}

#[utoipa::path(get, path = "/api/v1/campaigns/settings", responses((status = 200, body = Settings)))]
pub async fn get_settings(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Settings>> {
    let global_holdout_pct = campaign::global_holdout_pct(&st.inner().meta).await?;
    Ok(Json(Settings { global_holdout_pct }))
}

#[utoipa::path(put, path = "/api/v1/campaigns/settings", request_body = Settings, responses((status = 200, body = Settings, description = "Saved"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<Settings>,
) -> ApiResult<Json<Settings>> {
    let r = async {
        // Admins only: authz::RULES.
        Ok(campaign::set_global_holdout_pct(&st.inner().meta, b.global_holdout_pct).await?)
    }
    .await;
    logged(
        &st,
        &p,
        "campaign.settings",
        "global_holdout_pct",
        json!({"value": b.global_holdout_pct}),
        r,
    )
    .await?;
    Ok(Json(b))
}
