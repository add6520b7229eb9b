//! Work a slice of customers at a time: a query over every customer is run once per slice of
//! customer ids, with a filter on `customer_id` that DataFusion pushes below the views'
//! aggregates, windows and joins, so what one run holds grows with the slice, not with the
//! chain. Slices come in id order, so results sorted by customer within each slice are sorted
//! overall.

use crate::CoreResult;
use c360_warehouse::Session;
use datafusion::scalar::ScalarValue;

/// Rows of `table` (from the Parquet footers: cheap).
pub async fn rows_of(sess: &Session, table: &str) -> CoreResult<u64> {
    Ok(sess
        .scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
        .await?
        .max(0) as u64)
}

/// Customers per slice so that a slice holds about `rows_per_slice` rows of a table with
/// `rows` rows over `customers` customers, and never more customers than `per`.
pub fn per_rows(per: usize, customers: u64, rows: u64, rows_per_slice: u64) -> usize {
    if rows <= rows_per_slice {
        return per;
    }
    let by_rows = (customers as u128 * rows_per_slice as u128 / rows as u128).max(1);
    per.min(usize::try_from(by_rows).unwrap_or(usize::MAX))
}

/// Customers per slice by default. Each slice rescans the fact tables, so fewer, larger slices
/// are faster and hold more; at 10M simulated orders (1.97M customers) see BENCHMARKS.md.
pub const SLICE_CUSTOMERS: usize = 1 << 19;

/// The customers one query covers: ids in `[lo, hi)`, either end open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slice {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl Slice {
    pub const ALL: Slice = Slice { lo: None, hi: None };

    /// The predicate on `col` with the bounds as placeholders `$at` (low) and `$at+1` (high),
    /// whose values are [`Slice::params`]: the query's text is the same for every slice.
    pub fn predicate(&self, col: &str, at: usize) -> String {
        let (l, h) = (at, at + 1);
        match (self.lo, self.hi) {
            (None, None) => "TRUE".into(),
            (Some(_), None) => format!("{col} >= ${l}"),
            (None, Some(_)) => format!("{col} < ${h}"),
            (Some(_), Some(_)) => format!("{col} >= ${l} AND {col} < ${h}"),
        }
    }

    /// The values of [`Slice::predicate`]'s placeholders, low then high (a missing bound is a
    /// null the predicate does not use, so the numbering is the same for every slice).
    pub fn params(&self) -> [ScalarValue; 2] {
        [ScalarValue::Int64(self.lo), ScalarValue::Int64(self.hi)]
    }

    /// `sql` with every `{w}` replaced by this slice's predicate on `customer_id`, its bounds
    /// at `$at` and `$at+1`.
    pub fn apply(&self, sql: &str, at: usize) -> String {
        sql.replace("{w}", &self.predicate("customer_id", at))
    }

    /// The query of one per-customer view over this slice, with its parameters.
    pub fn view_sql(&self, view: &str) -> (String, Vec<ScalarValue>) {
        (
            format!(
                "SELECT * FROM {view} WHERE {}",
                self.predicate("customer_id", 1)
            ),
            self.params().to_vec(),
        )
    }
}

/// Cuts the customers into slices of about `per` customers each (one slice, unfiltered, when
/// they fit in one). The first and last slices are open-ended, so facts of a customer id
/// outside `customers` (an event posted under an id) still land in a slice.
pub async fn slices(sess: &Session, per: usize) -> CoreResult<Vec<Slice>> {
    let per = per.max(1);
    let n = sess.scalar_i64("SELECT COUNT(*) FROM customers").await? as usize;
    if n <= per {
        return Ok(vec![Slice::ALL]);
    }
    // Every `per`-th id in order starts a slice (ids are unique in `customers`).
    let sql = "SELECT customer_id FROM (SELECT customer_id, ROW_NUMBER() OVER (ORDER BY customer_id) AS r \
         FROM customers) x WHERE (CAST(r AS BIGINT) - 1) % CAST($1 AS BIGINT) = 0 AND r > 1 ORDER BY customer_id";
    let per = i64::try_from(per).unwrap_or(i64::MAX);
    let mut bounds = Vec::new();
    for b in sess
        .query_with(sql, vec![ScalarValue::Int64(Some(per))])
        .await?
    {
        bounds.extend(crate::cols::col_i64(&b, 0)?.into_iter().flatten());
    }
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for b in bounds {
        out.push(Slice { lo, hi: Some(b) });
        lo = Some(b);
    }
    out.push(Slice { lo, hi: None });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_a_table_hold_about_the_rows_asked_and_never_more_customers() {
        // 23M events over 2M customers, 2M rows a slice: 174k customers a slice (12 slices).
        assert_eq!(per_rows(524_288, 2_000_000, 23_000_000, 2_097_152), 182_361);
        // Few rows: the customers' slice stands.
        assert_eq!(per_rows(524_288, 2_000_000, 400_000, 2_097_152), 524_288);
        // A customer with more rows than a slice holds is a slice of their own.
        assert_eq!(per_rows(10, 3, 1 << 40, 1), 1);
        // Huge settings do not overflow.
        assert_eq!(
            per_rows(usize::MAX, u64::MAX, u64::MAX, u64::MAX),
            usize::MAX
        );
        assert_eq!(per_rows(7, u64::MAX, 2, 1), 7);
    }

    #[test]
    fn a_slice_is_a_half_open_range_with_open_ends_and_bound_values() {
        let s = Slice {
            lo: Some(-3),
            hi: Some(9),
        };
        assert_eq!(s.predicate("c", 1), "c >= $1 AND c < $2");
        assert_eq!(
            s.params(),
            [ScalarValue::Int64(Some(-3)), ScalarValue::Int64(Some(9))]
        );
        let high = Slice {
            lo: None,
            hi: Some(4),
        };
        assert_eq!(high.predicate("k.c", 2), "k.c < $3");
        assert_eq!(
            high.params(),
            [ScalarValue::Int64(None), ScalarValue::Int64(Some(4))]
        );
        let low = Slice {
            lo: Some(4),
            hi: None,
        };
        assert_eq!(low.predicate("c", 1), "c >= $1");
        assert_eq!(Slice::ALL.predicate("c", 1), "TRUE");
        assert_eq!(
            s.apply("WHERE {w} AND x IN (SELECT y WHERE {w})", 2),
            "WHERE customer_id >= $2 AND customer_id < $3 AND x IN (SELECT y WHERE customer_id >= $2 AND customer_id < $3)"
        );
        let (sql, p) = low.view_sql("v");
        assert_eq!(sql, "SELECT * FROM v WHERE customer_id >= $1");
        assert_eq!(p, low.params().to_vec());
    }
}
