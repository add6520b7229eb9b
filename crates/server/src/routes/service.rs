//! Smart customer service: diagnose a ticket or message (cause, solution, compensation), list tickets.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, J, Q};
use crate::state::AppState;
use crate::support::*;
use c360_analytics::service::{self as svc, Case, ServiceModel, Standing, CAUSES};

/// The diagnosis model of this snapshot, trained on first use from the closed tickets.
pub(crate) async fn model(st: &AppState) -> ApiResult<Arc<ServiceModel>> {
    let s = st.snapshot().await?;
    let m = s
        .service
        .get_or_try_init(|| async {
            let t =
                c360_core::service::tickets(&s.sess, c360_core::service::TicketFilter::All).await?;
            ApiResult::Ok(Arc::new(c360_core::service::train(&t)))
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

/// A cause and its probability.
#[derive(Debug, Serialize, ToSchema)]
pub struct CauseProbability {
    pub cause: &'static str,
    pub p: f64,
}

/// A feature of the case and how much it pushed the predicted cause.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureWeight {
    pub feature: &'static str,
    pub weight: f64,
}

/// The diagnosis model's provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub trained_on_closed_tickets: usize,
}

/// A diagnosed ticket or message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnosis {
    pub ticket_key: Option<String>,
    pub customer_id: Option<i64>,
    pub order_id: Option<String>,
    pub status: String,
    pub predicted_cause: &'static str,
    pub probabilities: Vec<CauseProbability>,
    pub reasons: Vec<FeatureWeight>,
    /// The cause the keyword rule alone would give (a baseline).
    pub keyword_rule: Option<&'static str>,
    pub resolution: svc::Resolution,
    pub model: ModelInfo,
}

/// A ticket with its predicted cause.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub ticket_key: String,
    pub customer_id: Option<i64>,
    pub order_id: Option<String>,
    pub store_id: Option<i64>,
    pub message: String,
    pub status: String,
    pub resolved_cause: Option<&'static str>,
    pub predicted_cause: &'static str,
    pub confidence: f64,
    pub resolution: svc::Resolution,
}

/// A cause and how many of the listed tickets it is predicted for.
#[derive(Debug, Serialize, ToSchema)]
pub struct CauseCount {
    pub cause: &'static str,
    pub count: usize,
}

/// Tickets, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tickets {
    /// Tickets in this state (in the caller's stores).
    pub total: usize,
    pub tickets: Vec<TicketView>,
    pub predicted_counts: Vec<CauseCount>,
}

pub(crate) async fn standing(
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

#[utoipa::path(post, path = "/api/v1/service/diagnose", request_body = DiagnoseRequest, responses((status = 200, body = Diagnosis, description = "Likely cause with probabilities and reasons, the recommended solution and compensation"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn diagnose(
    State(st): State<AppState>,
    p: Principal,
    J(b): J<DiagnoseRequest>,
) -> ApiResult<Json<Diagnosis>> {
    let target = b
        .ticket_key
        .clone()
        .or(b.customer_id.map(|c| format!("customer:{c}")))
        .unwrap_or_default();
    let r = diagnose_inner(&st, &p, &b).await;
    let v = logged(&st, &p, "service.diagnose", &target, json!({}), r).await?;
    Ok(Json(v))
}

pub(crate) async fn diagnose_inner(
    st: &AppState,
    p: &Principal,
    b: &DiagnoseRequest,
) -> ApiResult<Diagnosis> {
    let s = st.snapshot().await?;
    let m = model(st).await?;
    let t = if let Some(k) = &b.ticket_key {
        let t = c360_core::service::tickets(&s.sess, c360_core::service::TicketFilter::Key(k))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::NotFound(format!("ticket_key: {k:?} does not exist")))?;
        if !crate::authz::sees_store(p, t.store_id) {
            return Err(ApiError::Forbidden(
                "ticket_key: not a ticket of your stores".into(),
            ));
        }
        t
    } else {
        let msg = b
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| {
                ApiError::Unprocessable("message: required without ticket_key".into())
            })?;
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
            let rows = query_with(
                &s.sess,
                "SELECT o.customer_id, o.store_id, o.total_fen, o.channel, o.daypart, o.coupon_code, \
                 (SELECT SUM(qty) FROM order_items i WHERE i.order_id = o.order_id) AS items \
                 FROM orders o WHERE o.order_id = $1",
                vec![o.as_str().into()],
            )
            .await?;
            let r = rows
                .first()
                .ok_or_else(|| ApiError::NotFound(format!("order_id: {o:?} does not exist")))?;
            if b.customer_id.is_some() && r["customer_id"].as_i64() != b.customer_id {
                return Err(ApiError::Unprocessable(
                    "order_id: not an order of this customer".into(),
                ));
            }
            store = r["store_id"].as_i64();
            crate::authz::order(p, "order_id", store)?;
            paid = r["total_fen"].as_i64();
            ctx[0] = (r["channel"].as_str() == Some("delivery")) as u8 as f64;
            ctx[1] = matches!(r["daypart"].as_str(), Some("lunch" | "dinner")) as u8 as f64;
            ctx[2] = r["items"].as_f64().unwrap_or(1.0);
            ctx[3] = (!r["coupon_code"].is_null()) as u8 as f64;
        }
        if let Some(cid) = b.customer_id {
            if !s.has_customer(cid)? {
                return Err(ApiError::NotFound(format!(
                    "customer_id: {cid} does not exist"
                )));
            }
            let home = s
                .rows_of("v_customer_360", cid)?
                .first()
                .and_then(|r| r["home_store_id"].as_i64());
            crate::authz::customer(p, "customer_id", cid, home)?;
        }
        c360_core::service::Ticket {
            ticket_key: String::new(),
            customer_id: b.customer_id,
            order_key: b.order_id.clone(),
            order_paid_fen: paid,
            store_id: store,
            status: "new".into(),
            resolved_cause: None,
            // A typed message may carry a phone or an e-mail: it is scrubbed before it is
            // classified, answered or audited.
            case: Case {
                message: c360_model::pii::scrub(&msg),
                context: ctx,
            },
        }
    };
    let case = &t.case;
    let probs = m.predict(case);
    let k = c360_analytics::service::argmax(&probs);
    let standing = standing(st, t.customer_id, t.order_paid_fen).await?;
    let res = svc::resolve(k, probs[k], standing);
    Ok(Diagnosis {
        ticket_key: Some(t.ticket_key.clone()).filter(|k| !k.is_empty()),
        customer_id: t.customer_id,
        order_id: t.order_key.clone(),
        status: t.status.clone(),
        predicted_cause: CAUSES[k],
        probabilities: CAUSES
            .iter()
            .zip(probs)
            .map(|(cause, p)| CauseProbability { cause, p })
            .collect(),
        reasons: m
            .reasons(case, k)
            .into_iter()
            .map(|(feature, weight)| FeatureWeight { feature, weight })
            .collect(),
        keyword_rule: svc::keyword_rule(&case.message).map(|i| CAUSES[i]),
        resolution: res,
        model: ModelInfo {
            trained_on_closed_tickets: m.trained_on,
        },
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketParams {
    /// open (default) or closed.
    #[param(value_type = Option<doc::TicketStatus>)]
    status: Option<String>,
    /// Tickets to list (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/service/tickets", params(TicketParams), responses((status = 200, body = Tickets, description = "Tickets with the predicted cause and recommended resolution"), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn tickets(
    State(st): State<AppState>,
    p: Principal,
    Q(tp): Q<TicketParams>,
) -> ApiResult<Json<Tickets>> {
    st.needs("service tickets", &["tickets"]).await?;
    let limit = bounded("limit", tp.limit, 50, 1, 500)?;
    let s = st.snapshot().await?;
    let status = tp.status.unwrap_or_else(|| "open".into());
    if status != "open" && status != "closed" {
        return Err(ApiError::BadRequest(format!(
            "status: {status:?} is not open or closed"
        )));
    }
    let mut all =
        c360_core::service::tickets(&s.sess, c360_core::service::TicketFilter::Status(&status))
            .await?;
    all.retain(|t| crate::authz::sees_store(&p, t.store_id));
    let total = all.len();
    all.sort_by(|a, b| {
        b.ticket_key
            .len()
            .cmp(&a.ticket_key.len())
            .then(b.ticket_key.cmp(&a.ticket_key))
    });
    all.truncate(limit as usize);
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
        out.push(TicketView {
            ticket_key: t.ticket_key.clone(),
            customer_id: t.customer_id,
            order_id: t.order_key.clone(),
            store_id: t.store_id,
            message: t.case.message.clone(),
            status: t.status.clone(),
            resolved_cause: t.resolved_cause.map(|c| CAUSES[c]),
            predicted_cause: CAUSES[k],
            confidence: pr[k],
            resolution: res,
        });
    }
    Ok(Json(Tickets {
        total,
        tickets: out,
        predicted_counts: CAUSES
            .iter()
            .zip(counts)
            .map(|(cause, count)| CauseCount { cause, count })
            .collect(),
    }))
}
