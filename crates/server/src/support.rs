//! Helpers every route shares: warehouse rows as JSON, the caller's store scope as a filter, a
//! customer's row checked against that scope, date ranges, and the audit of an action's outcome.
//! Imported by the route modules; it imports none of them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Snapshot};
use c360_core::audit;
pub(crate) use c360_core::query::{parse_day, Filter};
use chrono::NaiveDate;

/// Rows of `sql` on the snapshot, its `$n` placeholders bound to the filter's values.
pub(crate) async fn qf(s: &Snapshot, sql: &str, f: &Filter) -> ApiResult<Vec<Value>> {
    query_with(&s.sess, sql, f.params.clone()).await
}

/// Rows of `sql` on `sess` (e.g. one customer's facts from the serving index) with `f`'s
/// values bound.
pub(crate) async fn qs(
    sess: &c360_warehouse::Session,
    sql: &str,
    f: &Filter,
) -> ApiResult<Vec<Value>> {
    query_with(sess, sql, f.params.clone()).await
}

/// Rows of `sql` with its `$n` placeholders bound to `params`.
pub(crate) async fn query_with(
    sess: &c360_warehouse::Session,
    sql: &str,
    params: Vec<c360_core::query::ScalarValue>,
) -> ApiResult<Vec<Value>> {
    Ok(c360_core::query::query_with(sess, sql, params).await?)
}

/// A filter starting with `fixed` and, for a store manager, `col IN (their stores)` (the
/// decision is `authz::filter`'s).
pub(crate) fn scoped(p: &Principal, fixed: &'static str, col: &'static str) -> Filter {
    crate::authz::filter(p, fixed, col)
}

/// A warehouse row: column name to value (the operation's description names the columns).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Row(pub serde_json::Map<String, Value>);

/// JSON rows (objects) as typed [`Row`]s; anything else is dropped.
pub(crate) fn rows(v: Vec<Value>) -> Vec<Row> {
    v.into_iter()
        .filter_map(|r| match r {
            Value::Object(m) => Some(Row(m)),
            _ => None,
        })
        .collect()
}

/// The first row, if any.
pub(crate) fn first(v: Vec<Value>) -> Option<Row> {
    rows(v).into_iter().next()
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
    crate::authz::customer(p, "id", id, home)?;
    Ok(row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub(crate) from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub(crate) to: Option<String>,
    /// Rows to return (default 50 for a timeline, 20 for paths).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<u32>,
}

impl RangeParams {
    /// The range's first and last day, each checked (the error names the parameter).
    pub(crate) fn days(&self) -> ApiResult<(Option<NaiveDate>, Option<NaiveDate>)> {
        days_of(self.from.as_deref(), self.to.as_deref())
    }
}

/// A range of days.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysParams {
    /// First day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub(crate) from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub(crate) to: Option<String>,
}

impl DaysParams {
    pub(crate) fn days(&self) -> ApiResult<(Option<NaiveDate>, Option<NaiveDate>)> {
        days_of(self.from.as_deref(), self.to.as_deref())
    }
}

/// Both ends of a range, each checked (the error names the parameter).
pub(crate) fn days_of(
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<(Option<NaiveDate>, Option<NaiveDate>)> {
    let from = from.map(|f| parse_day("from", f)).transpose()?;
    let to = to.map(|t| parse_day("to", t)).transpose()?;
    Ok((from, to))
}

/// A count parameter: `default` when absent, a 400 naming it when outside `lo..=hi` (the bounds
/// the document declares).
pub(crate) fn bounded(
    field: &str,
    v: Option<u32>,
    default: u32,
    lo: u32,
    hi: u32,
) -> ApiResult<u32> {
    let v = v.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}: {v} is not in {lo}..={hi}"
        )))
    }
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
        Err(
            ApiError::BadRequest(_)
            | ApiError::NotFound(_)
            | ApiError::Unprocessable(_)
            | ApiError::Conflict(_),
        ) => "rejected",
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

/// The values of the text parameters that take one of a fixed set. They are parsed by hand (so
/// the error names the parameter); these types only give the document their enums.
#[allow(dead_code)] // the variants exist for the document only
pub mod doc {
    use utoipa::ToSchema;

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum DaypartCode {
        Breakfast,
        Lunch,
        Afternoon,
        Dinner,
        LateNight,
    }

    #[derive(ToSchema)]
    pub enum CustomerSort {
        #[schema(rename = "total_spend_fen")]
        TotalSpendFen,
        #[schema(rename = "order_count")]
        OrderCount,
        #[schema(rename = "last_order_time")]
        LastOrderTime,
        #[schema(rename = "clv_12m_fen")]
        Clv12mFen,
        #[schema(rename = "p_churn_90d")]
        PChurn90d,
        #[schema(rename = "customer_id")]
        CustomerId,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum SortOrder {
        Asc,
        Desc,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CompareDim {
        City,
        Store,
        Product,
        Daypart,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum PredictionKind {
        Clv,
        Churn,
        Growth,
        Lifecycle,
        All,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Lang {
        Zh,
        En,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CaptureBy {
        Channel,
        Source,
        Store,
        Daypart,
        Day,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum FunnelBy {
        None,
        Tier,
        RfmClass,
        Lifecycle,
        Cluster,
        Device,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum TicketStatus {
        Open,
        Closed,
    }
}
