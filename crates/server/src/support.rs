//! Helpers every route shares: warehouse rows as JSON, the caller's store scope as a filter, a
//! customer's row checked against that scope, date ranges, and the audit of an action's outcome.
//! Imported by the route modules; it imports none of them.

use std::sync::Arc;

use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Snapshot};
use c360_core::audit;
pub(crate) use c360_core::query::{in_list, parse_day};

pub(crate) async fn q(s: &Snapshot, sql: &str) -> ApiResult<Vec<Value>> {
    query(&s.sess, sql).await
}

/// Rows of `sql` on a warehouse session as JSON objects.
pub(crate) async fn query(sess: &c360_warehouse::Session, sql: &str) -> ApiResult<Vec<Value>> {
    Ok(c360_core::query::query(sess, sql).await?)
}

/// Rows of `sql` with its `$n` placeholders bound to `params`.
pub(crate) async fn query_with(
    sess: &c360_warehouse::Session,
    sql: &str,
    params: Vec<c360_core::query::ScalarValue>,
) -> ApiResult<Vec<Value>> {
    Ok(c360_core::query::query_with(sess, sql, params).await?)
}

/// `AND <col> IN (...)` for a store manager, nothing for the others.
pub(crate) fn store_filter(p: &Principal, col: &str) -> String {
    match p.store_scope() {
        None => String::new(),
        Some(s) => format!(" AND {col} IN {}", in_list(s)),
    }
}

pub(crate) fn ok(v: Arc<Value>) -> Json<Value> {
    Json((*v).clone())
}

/// The daypart of most of a customer's paid orders (ties: the first name), from the in-memory
/// `v_customer_time` rows.
pub(crate) fn favourite_daypart(s: &Snapshot, id: i64) -> ApiResult<Option<String>> {
    let mut by: Vec<(String, i64)> = Vec::new();
    for r in s.rows_of("v_customer_time", id)? {
        let (Some(d), Some(n)) = (r["daypart"].as_str(), r["orders"].as_i64()) else {
            continue;
        };
        match by.iter_mut().find(|x| x.0 == d) {
            Some(x) => x.1 += n,
            None => by.push((d.to_string(), n)),
        }
    }
    by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(by.into_iter().next().map(|x| x.0))
}

/// A customer's products, most bought first (ties by product id).
pub(crate) fn products_of(s: &Snapshot, id: i64) -> ApiResult<Vec<Value>> {
    let mut rows = s.rows_of("v_customer_products", id)?;
    rows.sort_by(|a, b| {
        b["qty"]
            .as_i64()
            .cmp(&a["qty"].as_i64())
            .then(a["product_id"].as_i64().cmp(&b["product_id"].as_i64()))
    });
    Ok(rows)
}

/// The customer's 360 row, checked against the caller's scope.
pub(crate) async fn customer_row(s: &Snapshot, p: &Principal, id: i64) -> ApiResult<Value> {
    let r = s.rows_of("v_customer_360", id)?;
    let row = r
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("customer {id} not found")))?;
    let home = row.get("home_store_id").and_then(Value::as_i64);
    if !p.may_see_store(home) {
        return Err(ApiError::Forbidden(format!(
            "customer {id} is not a customer of your stores"
        )));
    }
    Ok(row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day (YYYY-MM-DD), inclusive.
    pub(crate) from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    pub(crate) to: Option<String>,
    pub(crate) limit: Option<u32>,
}

pub(crate) fn day_bounds(r: &RangeParams, col: &str) -> ApiResult<String> {
    let mut w = String::new();
    if let Some(f) = &r.from {
        let d = parse_day("from", f)?;
        w += &format!(" AND {col} >= '{d}T00:00:00+08:00'");
    }
    if let Some(t) = &r.to {
        let d = parse_day("to", t)? + chrono::Duration::days(1);
        w += &format!(" AND {col} < '{d}T00:00:00+08:00'");
    }
    Ok(w)
}

/// Rows sorted by a numeric field, largest first (stable).
pub(crate) fn sorted_desc(mut rows: Vec<Value>, field: &str) -> Vec<Value> {
    rows.sort_by(|a, b| {
        b[field]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a[field].as_f64().unwrap_or(0.0))
    });
    rows
}

/// `AND s.home_store_id IN (...)` for a store manager (customers of their stores).
pub(crate) fn customer_scope(p: &Principal, alias: &str) -> String {
    match p.store_scope() {
        None => String::new(),
        Some(s) => format!(" AND {alias}.home_store_id IN {}", in_list(s)),
    }
}

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

pub(crate) fn writers() -> [Role; 3] {
    [Role::Admin, Role::Analyst, Role::StoreManager]
}
