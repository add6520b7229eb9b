//! Reading the warehouse as JSON rows, and the small parsers the domain's inputs share.

use chrono::NaiveDate;
use serde_json::Value;

use crate::json::rows;
use crate::{CoreError, CoreResult};

/// Rows of `sql` on a warehouse session as JSON objects.
pub async fn query(sess: &c360_warehouse::Session, sql: &str) -> CoreResult<Vec<Value>> {
    let b = sess
        .query(sql)
        .await
        .map_err(|e| CoreError::Internal(format!("{e}: {sql}")))?;
    Ok(rows(&b)?)
}

/// A `YYYY-MM-DD` parameter; the error names the field.
pub fn parse_day(field: &str, v: &str) -> CoreResult<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| CoreError::BadRequest(format!("{field}: {v:?} is not a YYYY-MM-DD date")))
}

/// `(1,2,3)` for an SQL `IN`, `(NULL)` when empty (matches nothing). Integers only.
pub fn in_list(ids: &[i64]) -> String {
    if ids.is_empty() {
        "(NULL)".into()
    } else {
        format!(
            "({})",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        )
    }
}
