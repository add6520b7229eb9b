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
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| CoreError::BadRequest(format!("{field}: {v:?} is not a YYYY-MM-DD date")))?;
    if !(FIRST_DAY..=LAST_DAY).contains(&d) {
        return Err(CoreError::BadRequest(format!(
            "{field}: {d} is outside {FIRST_DAY}..={LAST_DAY}"
        )));
    }
    Ok(d)
}

/// The pattern the API document gives every date (YYYY-MM-DD within FIRST_DAY..=LAST_DAY);
/// the attributes that declare a date spell it out, and a test checks they all agree.
pub const DAY_PATTERN: &str = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$";

/// The days a date parameter may name: anything outside is a typo, and far outside it would
/// overflow date arithmetic. From 1990, so that public data sets such as CDNOW (1997–1998)
/// can be loaded and served.
pub const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1990, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};
pub const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2099, 12, 31) {
    Some(d) => d,
    None => NaiveDate::MAX,
};

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

/// Rows of `sql` with `$1`, `$2` … bound to `params` (DataFusion binds them; nothing is spliced).
pub async fn query_with(
    sess: &c360_warehouse::Session,
    sql: &str,
    params: Vec<ScalarValue>,
) -> CoreResult<Vec<Value>> {
    let b = sess
        .query_with(sql, params)
        .await
        .map_err(|e| CoreError::Internal(format!("{e}: {sql}")))?;
    Ok(rows(&b)?)
}

pub use c360_warehouse::query::ScalarValue;

/// The chain's time zone, the one every warehouse timestamp carries.
pub const TZ: &str = "+08:00";

/// Midnight of `d` in the chain's time zone as a warehouse timestamp value.
pub fn local_midnight(d: NaiveDate) -> ScalarValue {
    let utc = d.and_time(chrono::NaiveTime::MIN) - chrono::Duration::hours(8);
    ScalarValue::TimestampMicrosecond(Some(utc.and_utc().timestamp_micros()), Some(TZ.into()))
}

/// A `WHERE` clause built from fixed column names and bound values: every value becomes a
/// `$n` placeholder with its [`ScalarValue`], so text from a request never reaches the SQL.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conds: Vec<String>,
    pub params: Vec<ScalarValue>,
}

impl Filter {
    /// Starts with a fixed condition written by the caller (no values in it).
    pub fn new(fixed: &'static str) -> Filter {
        Filter {
            conds: vec![fixed.to_string()],
            params: vec![],
        }
    }
    fn bind(&mut self, v: ScalarValue) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }
    /// Binds one more value (for a `LIMIT`, say) and returns its placeholder, to be written
    /// after the clause.
    pub fn value(&mut self, v: impl Into<ScalarValue>) -> String {
        self.bind(v.into())
    }
    /// `col = value`.
    pub fn eq(&mut self, col: &'static str, v: impl Into<ScalarValue>) -> &mut Self {
        let p = self.bind(v.into());
        self.conds.push(format!("{col} = {p}"));
        self
    }
    /// `col >= value`.
    pub fn ge(&mut self, col: &'static str, v: impl Into<ScalarValue>) -> &mut Self {
        let p = self.bind(v.into());
        self.conds.push(format!("{col} >= {p}"));
        self
    }
    /// `col < value`.
    pub fn lt(&mut self, col: &'static str, v: impl Into<ScalarValue>) -> &mut Self {
        let p = self.bind(v.into());
        self.conds.push(format!("{col} < {p}"));
        self
    }
    /// `col IN (scope…)` when there is a scope (a store manager's stores), nothing otherwise.
    pub fn scope(&mut self, col: &'static str, scope: Option<&[i64]>) -> &mut Self {
        match scope {
            Some(s) => self.one_of(col, s),
            None => self,
        }
    }
    /// `col >= from 00:00 and col < (to + 1 day) 00:00`, both in the chain's time zone (+08:00),
    /// each bound only when given.
    pub fn days(
        &mut self,
        col: &'static str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> &mut Self {
        if let Some(f) = from {
            self.ge(col, local_midnight(f));
        }
        if let Some(t) = to {
            self.lt(col, local_midnight(t + chrono::Duration::days(1)));
        }
        self
    }
    /// `col IN (values…)`; an empty list matches nothing.
    pub fn one_of<V: Into<ScalarValue> + Clone>(
        &mut self,
        col: &'static str,
        vs: &[V],
    ) -> &mut Self {
        if vs.is_empty() {
            self.conds.push("FALSE".into());
            return self;
        }
        let ps: Vec<String> = vs.iter().map(|v| self.bind(v.clone().into())).collect();
        self.conds.push(format!("{col} IN ({})", ps.join(", ")));
        self
    }
    /// `col NOT IN (values…)`; nothing when there are none.
    pub fn none_of<V: Into<ScalarValue> + Clone>(
        &mut self,
        col: &'static str,
        vs: &[V],
    ) -> &mut Self {
        if !vs.is_empty() {
            let ps: Vec<String> = vs.iter().map(|v| self.bind(v.clone().into())).collect();
            self.conds.push(format!("{col} NOT IN ({})", ps.join(", ")));
        }
        self
    }
    /// A condition of the caller's own fixed text with `{}` standing for each bound value in
    /// turn (e.g. `"(CAST(customer_id AS VARCHAR) = {} OR phone_masked LIKE {})"`).
    pub fn cond(&mut self, template: &'static str, vs: Vec<ScalarValue>) -> &mut Self {
        let mut out = String::new();
        let mut parts = template.split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for (part, v) in parts.zip(vs) {
            let p = self.bind(v);
            out.push_str(&p);
            out.push_str(part);
        }
        self.conds.push(out);
        self
    }
    /// The clause (without `WHERE`).
    pub fn sql(&self) -> String {
        self.conds.join(" AND ")
    }
    /// A cache key for this filter: its text and its values.
    pub fn key(&self) -> String {
        format!("{}|{:?}", self.sql(), self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_placeholders_in_order() {
        let mut f = Filter::new("order_count > 0");
        f.eq("tier", "核心客户")
            .one_of("rfm_class", &["a'b".to_string(), "c".to_string()])
            .ge("total_spend_fen", 100i64)
            .cond("(x = {} OR y LIKE {})", vec!["1".into(), "%1".into()]);
        assert_eq!(
            f.sql(),
            "order_count > 0 AND tier = $1 AND rfm_class IN ($2, $3) AND total_spend_fen >= $4 AND (x = $5 OR y LIKE $6)"
        );
        assert_eq!(f.params.len(), 6);
        assert_eq!(f.params[1], ScalarValue::from("a'b"));
        let mut d = Filter::new("TRUE");
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        d.days("o.order_time", day("2025-03-01"), day("2025-03-31"))
            .scope("store_id", Some(&[7, 9]))
            .scope("city_id", None);
        assert_eq!(
            d.sql(),
            "TRUE AND o.order_time >= $1 AND o.order_time < $2 AND store_id IN ($3, $4)"
        );
        // 2025-03-01 00:00 at +08:00 is 2025-02-28 16:00 UTC.
        assert_eq!(
            d.params[0],
            ScalarValue::TimestampMicrosecond(Some(1_740_758_400_000_000), Some(TZ.into()))
        );
        assert_eq!(
            d.params[1],
            ScalarValue::TimestampMicrosecond(Some(1_743_436_800_000_000), Some(TZ.into()))
        );
        let mut e = Filter::new("TRUE");
        e.one_of::<i64>("store_id", &[]);
        assert_eq!(e.sql(), "TRUE AND FALSE");
    }
}
