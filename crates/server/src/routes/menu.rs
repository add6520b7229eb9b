//! Menu engineering: popularity × margin quadrants, attach rates to the hot dog and the
//! cannibalisation of each launch, for the chain, one store, or a store manager's stores.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiResult, Q};
use crate::state::{Answer, AppState};
use crate::support::*;
use c360_core::menu::{self, MenuEngineering};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MenuParams {
    /// One store (a store manager's must be theirs); default: the caller's stores.
    store_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/menu", params(MenuParams, DaysParams), responses((status = 200, body = MenuEngineering, description = "Per item: units, mix, price, cost, margin, popularity × margin quadrant (star, plowhorse, puzzle, dog), attach rate to the hot dog; per launch inside the range: the share of its revenue taken from the rest of the menu, with a 95% interval"), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody, description = "to before from")))]
pub async fn menu_engineering(
    State(st): State<AppState>,
    p: Principal,
    Q(mp): Q<MenuParams>,
    Q(range): Q<DaysParams>,
) -> ApiResult<Answer<MenuEngineering>> {
    if let Some(s) = mp.store_id {
        authz::store(&p, "store_id", s)?;
    }
    let (from, to) = range.days()?;
    let s = st.snapshot().await?;
    let first = s
        .sess
        .scalar_i64(
            "SELECT CAST(FLOOR((to_unixtime(MIN(order_time)) + 28800) / 86400) AS BIGINT) FROM fact_orders",
        )
        .await?;
    let from = from.unwrap_or(c360_model::Day(first).date());
    let to = to.unwrap_or(c360_model::Day(s.end_day - 1).date());
    if to < from {
        return Err(crate::error::ApiError::Unprocessable(format!(
            "to: {to} is before from ({from})"
        )));
    }
    let stores: Option<Vec<i64>> = match (mp.store_id, authz::stores(&p)) {
        (Some(x), _) => Some(vec![x]),
        (None, Some(sc)) => Some(sc.to_vec()),
        (None, None) => None,
    };
    let key = format!("menu|{from}|{to}|{stores:?}");
    st.answer(key, || async {
        Ok(menu::analyse(&s.sess, from, to, stores.as_deref()).await?)
    })
    .await
}
