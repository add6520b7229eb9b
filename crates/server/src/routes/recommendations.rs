//! Recommendations for a known customer (with reasons) or an anonymous one.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, P, Q};
use crate::state::AppState;
use crate::support::*;
use c360_analytics::recommend::Context;
use c360_core::recs::RecModel;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecParams {
    /// Default: the customer's usual.
    #[param(value_type = Option<doc::DaypartCode>)]
    daypart: Option<String>,
    /// Store where the recommendation is shown (default: the customer's usual).
    store_id: Option<i64>,
    /// Product ids already in the cart, comma-separated: add-ons rank first.
    #[param(pattern = r"^[0-9]{1,18}(,[0-9]{1,18})*$")]
    cart: Option<String>,
    /// How many (default 10).
    #[param(minimum = 1, maximum = 50)]
    k: Option<u32>,
}

/// One recommended product.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecItem {
    pub product_id: i64,
    pub name: String,
    pub category: String,
    pub score: f64,
    pub reason: c360_analytics::recommend::Reason,
    pub bought_before: bool,
}

/// Recommendations and the context they were made for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub customer_id: Option<i64>,
    pub daypart: Option<&'static str>,
    pub store_id: Option<i64>,
    /// Product ids in the cart.
    pub cart: Vec<i64>,
    pub items: Vec<RecItem>,
}

pub(crate) fn rec_context(
    m: &RecModel,
    customer: Option<i64>,
    rp: &RecParams,
) -> ApiResult<Context> {
    let mut ctx = customer.map_or_else(Context::default, |c| m.rec.usual_context(c));
    if let Some(d) = &rp.daypart {
        let i = c360_model::Daypart::ALL
            .iter()
            .position(|x| x.code() == d)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "daypart: {d:?} is not one of breakfast, lunch, afternoon, dinner, late_night"
                ))
            })?;
        ctx.daypart = Some(i);
    }
    if rp.store_id.is_some() {
        ctx.store = rp.store_id;
    }
    if let Some(c) = &rp.cart {
        if c.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "cart: empty (leave it out for an empty cart)".into(),
            ));
        }
        for part in c.split(',') {
            let pid: i64 = part
                .trim()
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("cart: {part:?} is not a product id")))?;
            let ix = m
                .product_ids
                .iter()
                .position(|x| *x == pid)
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!("cart: product {pid} does not exist"))
                })?;
            ctx.cart.push(ix);
        }
    }
    Ok(ctx)
}

pub(crate) fn recommendations(
    m: &RecModel,
    customer: Option<i64>,
    ctx: &Context,
    k: usize,
) -> Recommendations {
    let recs = m.rec.recommend(customer, ctx, k);
    Recommendations {
        customer_id: customer,
        daypart: ctx.daypart.map(|d| c360_model::Daypart::ALL[d].code()),
        store_id: ctx.store,
        cart: ctx.cart.iter().map(|i| m.product_ids[*i]).collect(),
        items: recs
            .iter()
            .map(|r| RecItem {
                product_id: m.product_ids[r.item],
                name: m.names[r.item].clone(),
                category: m.categories[r.item].clone(),
                score: r.score,
                reason: r.reason,
                bought_before: r.bought_before,
            })
            .collect(),
    }
}

pub async fn rec_model(st: &AppState) -> ApiResult<Arc<RecModel>> {
    let s = st.snapshot().await?;
    let m = s
        .recs
        .get_or_try_init(|| async { RecModel::build(&s.sess).await.map(Arc::new) })
        .await?;
    Ok(m.clone())
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/recommendations", params(("id" = i64, Path), RecParams), responses((status = 200, body = Recommendations, description = "Hybrid recommendations (buy-again by daypart and store, cart add-ons, similar-taste items, store-by-daypart popularity, new items) with reasons"), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn customer_recommendations(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(rp): Q<RecParams>,
) -> ApiResult<Json<Recommendations>> {
    st.needs("recommendations", &["order_items", "wx_order_items"])
        .await?;
    let k = bounded("k", rp.k, 10, 1, 50)?;
    let s = st.snapshot().await?;
    customer_row(&s, &p, id).await?;
    let m = rec_model(&st).await?;
    let ctx = rec_context(&m, Some(id), &rp)?;
    Ok(Json(recommendations(&m, Some(id), &ctx, k as usize)))
}

#[utoipa::path(get, path = "/api/v1/recommendations", params(RecParams), responses((status = 200, body = Recommendations, description = "Recommendations for a customer not yet known (store-by-daypart popularity, new items, cart add-ons)"), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn anonymous_recommendations(
    State(st): State<AppState>,
    p: Principal,
    Q(rp): Q<RecParams>,
) -> ApiResult<Json<Recommendations>> {
    st.needs("recommendations", &["order_items", "wx_order_items"])
        .await?;
    let k = bounded("k", rp.k, 10, 1, 50)?;
    if let Some(sid) = rp.store_id {
        crate::authz::store(&p, "store_id", sid)?;
    }
    let m = rec_model(&st).await?;
    let ctx = rec_context(&m, None, &rp)?;
    Ok(Json(recommendations(&m, None, &ctx, k as usize)))
}
