//! Routes that act on profiles: campaigns (suggest, create, launch, pause/resume/complete/cancel,
//! results), store-level and switchback experiments, smart customer service, and the audit trail.
//!
//! Roles: admins and analysts run everything; store managers may create and run campaigns and
//! experiments on their own stores only, see results cut down to their stores' customers, and
//! diagnose their stores' tickets; only admins change settings or read the audit trail. Every
//! write and every refused attempt is written to the audit trail.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use c360_analytics::service::{self as svc, Case, ServiceModel, Standing, CAUSES};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api::parse_day;
use crate::audit;
use crate::auth::{Principal, Role};
use crate::campaign::{self, CampaignSpec};
use crate::error::{ApiError, ApiResult, J, P, Q};
use crate::experiments::{self, ExperimentSpec};
use crate::json::lit;
use crate::AppState;

/// Logs the outcome of an action, then returns it (a refused or failed action is logged too).
pub(crate) async fn logged<T>(
    st: &AppState,
    p: &Principal,
    action: &str,
    target: &str,
    detail: Value,
    r: ApiResult<T>,
) -> ApiResult<T> {
    let outcome = match &r {
        Ok(_) => "ok",
        Err(ApiError::Forbidden(_)) => "denied",
        Err(ApiError::BadRequest(_)) | Err(ApiError::NotFound(_)) => "rejected",
        Err(_) => "error",
    };
    let mut d = detail;
    if let Err(e) = &r {
        d["error"] = json!(e.to_string());
    }
    if let Err(e) = audit::record(
        &st.inner().meta,
        &p.name,
        p.role.as_str(),
        action,
        target,
        outcome,
        &d,
    )
    .await
    {
        tracing::warn!(error = %e, action, "writing the audit trail");
    }
    r
}

fn writers() -> [Role; 3] {
    [Role::Admin, Role::Analyst, Role::StoreManager]
}

/// A store manager may touch a campaign only if its audience is limited to their stores.
fn may_touch(p: &Principal, spec: &CampaignSpec) -> ApiResult<()> {
    if let Some(sc) = p.store_scope() {
        if spec.audience.store_ids.is_empty() {
            return Err(ApiError::Forbidden(
                "audience.store_ids: a store manager's campaign must name their stores".into(),
            ));
        }
        if let Some(x) = spec.audience.store_ids.iter().find(|s| !sc.contains(s)) {
            return Err(ApiError::Forbidden(format!(
                "audience.store_ids: {x} is not one of your stores"
            )));
        }
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/campaigns", responses((status = 200, description = "Campaigns, newest first")))]
pub async fn list_campaigns(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Value>> {
    let c = campaign::list(&st.inner().meta).await?;
    Ok(Json(json!({ "campaigns": c })))
}

#[utoipa::path(get, path = "/api/v1/campaigns/suggestions", responses((status = 200, description = "Campaign drafts from the RFM segments, with audience size, churn and CLV")))]
pub async fn suggestions(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    let s = st.snapshot().await?;
    let v = campaign::suggest(&s.sess, p.store_scope()).await?;
    Ok(Json(json!({ "suggestions": v })))
}

#[utoipa::path(post, path = "/api/v1/campaigns", request_body = CampaignSpec, responses((status = 201, description = "Draft created"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_campaign(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<CampaignSpec>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        p.require(&writers())?;
        may_touch(&p, &spec)?;
        campaign::create(&st.inner().meta, &spec, &p.name).await
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
        Json(json!({"campaign_id": id, "status": "draft"})),
    ))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", params(("id" = i64, Path)), responses((status = 200, description = "One campaign"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_campaign(
    State(st): State<AppState>,
    _p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(serde_json::to_value(
        campaign::get(&st.inner().meta, id).await?,
    )?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/launch", params(("id" = i64, Path)), responses((status = 200, description = "Audience materialised: arms, offers, coupons, send times"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn launch_campaign(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let r = async {
        p.require(&writers())?;
        let c = campaign::get(&st.inner().meta, id).await?;
        may_touch(&p, &c.spec)?;
        let s = st.snapshot().await?;
        campaign::launch(&s.sess, &st.inner().meta, id, p.store_scope()).await
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
    pub action: String,
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/status", params(("id" = i64, Path)), request_body = StatusChange, responses((status = 200, description = "New status"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn campaign_status(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    J(b): J<StatusChange>,
) -> ApiResult<Json<Value>> {
    let r = async {
        p.require(&writers())?;
        let c = campaign::get(&st.inner().meta, id).await?;
        may_touch(&p, &c.spec)?;
        campaign::transition(&st.inner().meta, id, &b.action).await
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
    Ok(Json(json!({"campaign_id": id, "status": to})))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/results", params(("id" = i64, Path)), responses((status = 200, description = "Per arm against the holdout: incremental revenue and retention (CUPED, Bayesian, always-valid), redemptions at the POS and in the mini-program, guardrails, SRM, Holm-adjusted p-values, uplift model")))]
pub async fn campaign_results(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let s = st.snapshot().await?;
    let key = format!("campaign-results:{id}:{}", p.scope_key());
    let v = st
        .cached(key, || async {
            campaign::evaluate(&s.sess, &st.inner().meta, id, p.store_scope()).await
        })
        .await?;
    Ok(crate::api::ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgramParams {
    /// First day (YYYY-MM-DD).
    from: String,
    /// Last day (YYYY-MM-DD), inclusive.
    to: String,
}

#[utoipa::path(get, path = "/api/v1/campaigns/program", params(ProgramParams), responses((status = 200, description = "All campaigns together against the global holdout: revenue per customer, CUPED, incremental revenue"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn program(
    State(st): State<AppState>,
    p: Principal,
    Q(pp): Q<ProgramParams>,
) -> ApiResult<Json<Value>> {
    let (from, to) = (parse_day("from", &pp.from)?, parse_day("to", &pp.to)?);
    let s = st.snapshot().await?;
    let key = format!("program:{from}:{to}:{}", p.scope_key());
    let v = st
        .cached(key, || async {
            campaign::program_effect(&s.sess, &st.inner().meta, from, to, p.store_scope()).await
        })
        .await?;
    Ok(crate::api::ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// At most this many (default 100, up to 5000).
    limit: Option<usize>,
    /// Only this arm.
    arm: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/members", params(("id" = i64, Path), MemberParams), responses((status = 200, description = "Members with arm, offer, coupon and send time")))]
pub async fn campaign_members(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(mp): Q<MemberParams>,
) -> ApiResult<Json<Value>> {
    let mut ms = campaign::members(&st.inner().meta, id).await?;
    if let Some(sc) = p.store_scope() {
        ms.retain(|m| m.home_store_id.is_some_and(|s| sc.contains(&s)));
    }
    if let Some(a) = &mp.arm {
        ms.retain(|m| &m.arm == a);
    }
    let total = ms.len();
    ms.truncate(mp.limit.unwrap_or(100).min(5000));
    Ok(Json(json!({"total": total, "members": ms})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Settings {
    pub global_holdout_pct: f64,
}

#[utoipa::path(get, path = "/api/v1/campaigns/settings", responses((status = 200, description = "Global holdout percentage")))]
pub async fn get_settings(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Value>> {
    let g = campaign::global_holdout_pct(&st.inner().meta).await?;
    Ok(Json(json!({"global_holdout_pct": g})))
}

#[utoipa::path(put, path = "/api/v1/campaigns/settings", request_body = Settings, responses((status = 200, description = "Saved"), (status = 403, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<Settings>,
) -> ApiResult<Json<Value>> {
    let r = async {
        p.require(&[Role::Admin])?;
        campaign::set_global_holdout_pct(&st.inner().meta, b.global_holdout_pct).await
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
    Ok(Json(json!({"global_holdout_pct": b.global_holdout_pct})))
}

#[utoipa::path(get, path = "/api/v1/experiments", responses((status = 200, description = "Store-level and switchback experiments")))]
pub async fn list_experiments(State(st): State<AppState>, _p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"experiments": experiments::list(&st.inner().meta).await?}),
    ))
}

#[utoipa::path(post, path = "/api/v1/experiments", request_body = ExperimentSpec, responses((status = 201, description = "Created, with its plan: assignment and minimum detectable effect"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_experiment(
    State(st): State<AppState>,
    p: Principal,
    J(spec): J<ExperimentSpec>,
) -> ApiResult<impl IntoResponse> {
    let r = async {
        p.require(&writers())?;
        if let Some(sc) = p.store_scope() {
            if spec.stores.is_empty() || spec.stores.iter().any(|s| !sc.contains(s)) {
                return Err(ApiError::Forbidden(
                    "stores: a store manager's experiment must list only their stores".into(),
                ));
            }
        }
        let s = st.snapshot().await?;
        let id = experiments::create(&st.inner().meta, &spec, &p.name).await?;
        experiments::plan(&s.sess, &st.inner().meta, id, p.store_scope()).await
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

#[utoipa::path(get, path = "/api/v1/experiments/{id}/results", params(("id" = i64, Path)), responses((status = 200, description = "Effect per store-day with CI, p-value and chance to win")))]
pub async fn experiment_results(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let s = st.snapshot().await?;
    Ok(Json(
        experiments::results(&s.sess, &st.inner().meta, id, p.store_scope()).await?,
    ))
}

/// The diagnosis model of this snapshot, trained on first use from the closed tickets.
async fn model(st: &AppState) -> ApiResult<Arc<ServiceModel>> {
    let s = st.snapshot().await?;
    let m = s
        .service
        .get_or_try_init(|| async {
            let t = c360_etl::service::tickets(&s.sess, "").await?;
            ApiResult::Ok(Arc::new(c360_etl::service::train(&t)))
        })
        .await?;
    Ok(m.clone())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseRequest {
    /// An existing ticket (e.g. "T:12"); or describe a new one with the fields below.
    pub ticket_key: Option<String>,
    pub customer_id: Option<i64>,
    /// The order the customer writes about (warehouse order id, e.g. "W:123").
    pub order_id: Option<String>,
    pub message: Option<String>,
}

async fn standing(
    st: &AppState,
    customer_id: Option<i64>,
    paid: Option<i64>,
) -> ApiResult<Standing> {
    let mut s = Standing {
        order_paid_fen: paid,
        ..Default::default()
    };
    let Some(cid) = customer_id else { return Ok(s) };
    let snap = st.snapshot().await?;
    if let Some(r) = snap.rows_of("v_customer_360", cid)?.first() {
        s.high_value = r["rfm_class"]
            .as_str()
            .is_some_and(|c| c.starts_with("重要"));
        s.churn_risk = r["p_churn_90d"].as_f64().unwrap_or(0.0);
    }
    Ok(s)
}

#[utoipa::path(post, path = "/api/v1/service/diagnose", request_body = DiagnoseRequest, responses((status = 200, description = "Likely cause with probabilities and reasons, the recommended solution and compensation"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn diagnose(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<DiagnoseRequest>,
) -> ApiResult<Json<Value>> {
    let target = b
        .ticket_key
        .clone()
        .or(b.customer_id.map(|c| format!("customer:{c}")))
        .unwrap_or_default();
    let r = diagnose_inner(&st, &p, &b).await;
    let v = logged(&st, &p, "service.diagnose", &target, json!({}), r).await?;
    Ok(Json(v))
}

async fn diagnose_inner(st: &AppState, p: &Principal, b: &DiagnoseRequest) -> ApiResult<Value> {
    p.require(&writers())?;
    let s = st.snapshot().await?;
    let m = model(st).await?;
    let t = if let Some(k) = &b.ticket_key {
        let t = c360_etl::service::tickets(&s.sess, &format!(" AND t.ticket_key = {}", lit(k)))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::NotFound(format!("ticket_key: {k:?} does not exist")))?;
        if let Some(sc) = p.store_scope() {
            if !t.store_id.is_some_and(|s| sc.contains(&s)) {
                return Err(ApiError::Forbidden(
                    "ticket_key: not a ticket of your stores".into(),
                ));
            }
        }
        t
    } else {
        let msg = b
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest("message: required without ticket_key".into()))?;
        if msg.chars().count() > 500 {
            return Err(ApiError::BadRequest(
                "message: longer than 500 characters".into(),
            ));
        }
        // What is not known (no order named, the store's and customer's history) is assumed
        // average, so it pushes no cause either way.
        let mut ctx = m.mean_context();
        let mut store = None;
        let mut paid = None;
        if let Some(o) = &b.order_id {
            let rows = crate::api::query(
                &s.sess,
                &format!(
                    "SELECT o.customer_id, o.store_id, o.total_fen, o.channel, o.daypart, o.coupon_code, \
                     (SELECT SUM(qty) FROM order_items i WHERE i.order_id = o.order_id) AS items \
                     FROM orders o WHERE o.order_id = {}",
                    lit(o)
                ),
            )
            .await?;
            let r = rows
                .first()
                .ok_or_else(|| ApiError::NotFound(format!("order_id: {o:?} does not exist")))?;
            if b.customer_id.is_some() && r["customer_id"].as_i64() != b.customer_id {
                return Err(ApiError::BadRequest(
                    "order_id: not an order of this customer".into(),
                ));
            }
            store = r["store_id"].as_i64();
            paid = r["total_fen"].as_i64();
            ctx[0] = (r["channel"].as_str() == Some("delivery")) as u8 as f64;
            ctx[1] = matches!(r["daypart"].as_str(), Some("lunch" | "dinner")) as u8 as f64;
            ctx[2] = r["items"].as_f64().unwrap_or(1.0);
            ctx[3] = (!r["coupon_code"].is_null()) as u8 as f64;
        }
        if let Some(cid) = b.customer_id {
            if !s.has_customer(cid) {
                return Err(ApiError::NotFound(format!(
                    "customer_id: {cid} does not exist"
                )));
            }
            if let Some(sc) = p.store_scope() {
                let home = s
                    .rows_of("v_customer_360", cid)?
                    .first()
                    .and_then(|r| r["home_store_id"].as_i64());
                if !home.is_some_and(|h| sc.contains(&h)) {
                    return Err(ApiError::Forbidden(
                        "customer_id: not a customer of your stores".into(),
                    ));
                }
            }
        }
        c360_etl::service::Ticket {
            ticket_key: String::new(),
            customer_id: b.customer_id,
            order_key: b.order_id.clone(),
            order_paid_fen: paid,
            store_id: store,
            status: "new".into(),
            resolved_cause: None,
            case: Case {
                message: msg,
                context: ctx,
            },
        }
    };
    let case = &t.case;
    let probs = m.predict(case);
    let k = c360_analytics::service::argmax(&probs);
    let standing = standing(st, t.customer_id, t.order_paid_fen).await?;
    let res = svc::resolve(k, probs[k], standing);
    Ok(json!({
        "ticket_key": if t.ticket_key.is_empty() { Value::Null } else { Value::from(t.ticket_key.clone()) },
        "customer_id": t.customer_id,
        "order_id": t.order_key,
        "status": t.status,
        "predicted_cause": CAUSES[k],
        "probabilities": CAUSES.iter().zip(probs).map(|(c, p)| json!({"cause": c, "p": p})).collect::<Vec<_>>(),
        "reasons": m.reasons(case, k).iter().map(|(n, w)| json!({"feature": n, "weight": w})).collect::<Vec<_>>(),
        "keyword_rule": svc::keyword_rule(&case.message).map(|i| CAUSES[i]),
        "resolution": res,
        "model": {"trained_on_closed_tickets": m.trained_on},
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketParams {
    /// open (default) or closed.
    status: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/service/tickets", params(TicketParams), responses((status = 200, description = "Tickets with the predicted cause and recommended resolution")))]
pub async fn tickets(
    State(st): State<AppState>,
    p: Principal,
    Q(tp): Q<TicketParams>,
) -> ApiResult<Json<Value>> {
    let s = st.snapshot().await?;
    let status = tp.status.unwrap_or_else(|| "open".into());
    if status != "open" && status != "closed" {
        return Err(ApiError::BadRequest(format!(
            "status: {status:?} is not open or closed"
        )));
    }
    let mut all =
        c360_etl::service::tickets(&s.sess, &format!(" AND t.status = '{status}'")).await?;
    if let Some(sc) = p.store_scope() {
        all.retain(|t| t.store_id.is_some_and(|x| sc.contains(&x)));
    }
    let total = all.len();
    all.sort_by(|a, b| {
        b.ticket_key
            .len()
            .cmp(&a.ticket_key.len())
            .then(b.ticket_key.cmp(&a.ticket_key))
    });
    all.truncate(tp.limit.unwrap_or(50).min(500));
    let m = model(&st).await?;
    let mut out = Vec::new();
    let mut counts = [0usize; 4];
    for t in &all {
        let pr = m.predict(&t.case);
        let k = c360_analytics::service::argmax(&pr);
        counts[k] += 1;
        let res = svc::resolve(
            k,
            pr[k],
            standing(&st, t.customer_id, t.order_paid_fen).await?,
        );
        out.push(json!({
            "ticket_key": t.ticket_key, "customer_id": t.customer_id, "order_id": t.order_key,
            "store_id": t.store_id, "message": t.case.message, "status": t.status,
            "resolved_cause": t.resolved_cause.map(|c| CAUSES[c]),
            "predicted_cause": CAUSES[k], "confidence": pr[k], "resolution": res,
        }));
    }
    Ok(Json(json!({
        "total": total,
        "tickets": out,
        "predicted_counts": CAUSES.iter().zip(counts).map(|(c, n)| json!({"cause": c, "count": n})).collect::<Vec<_>>(),
    })))
}

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
