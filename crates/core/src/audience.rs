//! Saved audiences (标签/人群): who is in a named group of customers, defined by rules over any
//! profile field and over behaviour in a time window, by a read-only SQL query, or as the
//! lookalike expansion of another audience.
//!
//! - **Definitions** are versioned: every change stores a new version beside the old ones, so
//!   an audience's history says who changed what when. An audience limited to stores
//!   (`store_ids`) holds only customers whose home store is one of them.
//! - **Membership** is a compressed bitmap of customer ids ([`RoaringTreemap`]) computed per
//!   warehouse snapshot: in one SQL statement for rules (every leaf compiled to a two-valued
//!   predicate, values bound, never spliced), by running the user's query under the
//!   warehouse's read-only options for SQL, and by a logistic model of "seed against the rest"
//!   for lookalikes. The ETL computes every active audience after each refresh and records its
//!   size; the bitmap is cached beside the serving index of the snapshot, so a server reads it
//!   instead of recomputing it and it goes when the snapshot is collected.
//! - **Live.** [`matches`] decides one customer from their profile row and their orders (the
//!   snapshot's and the live ones) with the same semantics as the compiled SQL (a test holds
//!   the two to the same answer on every customer of a simulated chain), so a server moves a
//!   customer in or out of rule audiences as their orders arrive.
//! - **Set algebra** (overlap, a campaign's target) runs on the bitmaps.
//!
//! It reads the warehouse through a [`Session`] and writes only the metastore; it sends nothing.

use std::collections::{BinaryHeap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use c360_db::{get_i64, get_text};
use c360_metastore::{Counter, Metastore};
use c360_model::Daypart;
use c360_warehouse::{Session, Warehouse};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
pub use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::{in_list, local_midnight, query as q, query_with, ScalarValue};
use crate::{bad, CoreError, CoreResult};

/// What kind of value a profile field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Text,
}

/// The profile fields (columns of `v_customer_360`) a rule may test, with their kind. Masked
/// personal data (`phone_masked`, `name_masked`) and timestamps are not among them.
pub const FIELDS: &[(&str, Kind)] = &[
    ("gender", Kind::Text),
    ("birth_year", Kind::Number),
    ("member_count", Kind::Number),
    ("wx_user_count", Kind::Number),
    ("register_store_id", Kind::Number),
    ("order_count", Kind::Number),
    ("total_spend_fen", Kind::Number),
    ("avg_order_fen", Kind::Number),
    ("wx_orders", Kind::Number),
    ("store_count", Kind::Number),
    ("recency_days", Kind::Number),
    ("frequency", Kind::Number),
    ("monetary_fen", Kind::Number),
    ("r_score", Kind::Number),
    ("f_score", Kind::Number),
    ("m_score", Kind::Number),
    ("rfm_class", Kind::Text),
    ("tier", Kind::Text),
    ("rfm_segment", Kind::Text),
    ("lifecycle", Kind::Text),
    ("cluster", Kind::Number),
    ("value_growth", Kind::Number),
    ("home_city_id", Kind::Number),
    ("home_store_id", Kind::Number),
    ("p_alive", Kind::Number),
    ("expected_purchases_365d", Kind::Number),
    ("expected_spend_fen", Kind::Number),
    ("clv_12m_fen", Kind::Number),
    ("p_churn_90d", Kind::Number),
    ("next_order_days", Kind::Number),
    ("overdue", Kind::Number),
    ("avg_rating", Kind::Number),
    ("review_count", Kind::Number),
    ("event_count", Kind::Number),
    ("session_count", Kind::Number),
];

/// The order channels a behaviour rule may name.
pub const CHANNELS: &[&str] = &["pos", "pickup", "delivery", "dine_in", "other"];

fn field(name: &str) -> CoreResult<(&'static str, Kind)> {
    FIELDS
        .iter()
        .find(|(f, _)| *f == name)
        .copied()
        .ok_or_else(|| {
            bad(format!(
                "field: {name:?} is not a profile field an audience may test"
            ))
        })
}

/// A comparison of a profile field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    IsNull,
    NotNull,
}

/// A number or a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Scalar {
    Number(f64),
    Text(String),
}

/// `field op values`: one value for eq … ge, one or more for in / not_in, none for the null
/// tests. A customer whose field is empty matches only `is_null`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// A profile field ([`FIELDS`]).
    pub field: String,
    pub op: Op,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub values: Vec<Scalar>,
}

/// Customers with at least `min_times` (and at most `max_times`) paid orders that match every
/// given condition: an item of product `sku` or of `category`, at `daypart`, in `store_id`,
/// through `channel`, within the last `within_days` days of the snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bought {
    pub sku: Option<String>,
    pub category: Option<String>,
    /// breakfast, lunch, afternoon, dinner or late_night.
    pub daypart: Option<String>,
    pub store_id: Option<i64>,
    /// pos, pickup, delivery, dine_in or other.
    pub channel: Option<String>,
    #[schema(minimum = 1, maximum = 3650)]
    pub within_days: Option<i64>,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100000)]
    pub min_times: i64,
    #[schema(minimum = 1, maximum = 100000)]
    pub max_times: Option<i64>,
}

fn one() -> i64 {
    1
}

/// A rule: all of, any of, not, a profile field, or behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(no_recursion)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Field(FieldRule),
    Bought(Bought),
}

/// The `size` customers most like the seed audience's, outside it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookalike {
    pub seed: i64,
    #[schema(minimum = 1, maximum = 100000000)]
    pub size: u64,
}

/// An audience's definition: exactly one of `rule`, `sql` (a read-only query returning a
/// `customer_id` column) and `lookalike`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceSpec {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// Home stores the audience is limited to; empty = the chain (a store manager's audiences
    /// always name their stores).
    #[serde(default)]
    pub store_ids: Vec<i64>,
    pub rule: Option<Rule>,
    #[schema(max_length = 10000)]
    pub sql: Option<String>,
    pub lookalike: Option<Lookalike>,
}

/// Rules deeper than this, or with more leaves, are refused (they would be mistakes).
const MAX_DEPTH: usize = 8;
const MAX_LEAVES: usize = 50;

impl AudienceSpec {
    /// Checks the definition; the error names the field.
    pub fn validate(&self) -> CoreResult<()> {
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(bad("name: must be 1 to 100 characters"));
        }
        if self.description.chars().count() > 500 {
            return Err(bad("description: at most 500 characters"));
        }
        let n = [
            self.rule.is_some(),
            self.sql.is_some(),
            self.lookalike.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            return Err(bad(
                "rule, sql, lookalike: an audience is defined by exactly one of them",
            ));
        }
        if let Some(r) = &self.rule {
            let mut leaves = 0;
            check_rule(r, "rule", 0, &mut leaves)?;
        }
        if let Some(s) = &self.sql {
            if s.trim().is_empty() || s.len() > 10_000 {
                return Err(bad("sql: must be 1 to 10000 characters"));
            }
        }
        if let Some(l) = &self.lookalike {
            if l.size == 0 || l.size > 100_000_000 {
                return Err(bad("lookalike.size: must be 1 to 100000000"));
            }
        }
        Ok(())
    }

    /// What defines it: rule, sql or lookalike.
    pub fn kind(&self) -> &'static str {
        if self.sql.is_some() {
            "sql"
        } else if self.lookalike.is_some() {
            "lookalike"
        } else {
            "rule"
        }
    }
}

fn check_rule(r: &Rule, at: &str, depth: usize, leaves: &mut usize) -> CoreResult<()> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("{at}: nested deeper than {MAX_DEPTH}")));
    }
    match r {
        Rule::All(v) | Rule::Any(v) => {
            let k = if matches!(r, Rule::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, x) in v.iter().enumerate() {
                check_rule(x, &format!("{at}.{k}[{i}]"), depth + 1, leaves)?;
            }
        }
        Rule::Not(x) => check_rule(x, &format!("{at}.not"), depth + 1, leaves)?,
        Rule::Field(f) => {
            *leaves += 1;
            let at = format!("{at}.field");
            let (_, kind) = field(&f.field).map_err(|e| bad(format!("{at}.{e}")))?;
            let want = match f.op {
                Op::IsNull | Op::NotNull => 0..=0,
                Op::In | Op::NotIn => 1..=100,
                _ => 1..=1,
            };
            if !want.contains(&f.values.len()) {
                return Err(bad(format!(
                    "{at}.values: {:?} takes {} value(s), not {}",
                    f.op,
                    if want.end() == &0 {
                        "no".to_string()
                    } else if want.end() == &1 {
                        "exactly one".to_string()
                    } else {
                        "1 to 100".to_string()
                    },
                    f.values.len()
                )));
            }
            for v in &f.values {
                match (kind, v) {
                    (Kind::Number, Scalar::Number(x)) if x.is_finite() => {}
                    (Kind::Text, Scalar::Text(s)) if s.chars().count() <= 100 => {}
                    _ => {
                        return Err(bad(format!(
                            "{at}.values: {} takes {}",
                            f.field,
                            if kind == Kind::Number {
                                "finite numbers"
                            } else {
                                "texts of at most 100 characters"
                            }
                        )))
                    }
                }
            }
            if kind == Kind::Text && matches!(f.op, Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                return Err(bad(format!(
                    "{at}.op: {} is a text; compare it with eq, ne, in or not_in",
                    f.field
                )));
            }
        }
        Rule::Bought(b) => {
            *leaves += 1;
            let at = format!("{at}.bought");
            if let Some(d) = &b.daypart {
                if !Daypart::ALL.iter().any(|x| x.code() == d) {
                    return Err(bad(format!("{at}.daypart: {d:?} is not a daypart")));
                }
            }
            if let Some(c) = &b.channel {
                if !CHANNELS.contains(&c.as_str()) {
                    return Err(bad(format!("{at}.channel: {c:?} is not a channel")));
                }
            }
            for (k, s) in [("sku", &b.sku), ("category", &b.category)] {
                if s.as_ref().is_some_and(|s| s.is_empty() || s.len() > 64) {
                    return Err(bad(format!("{at}.{k}: must be 1 to 64 characters")));
                }
            }
            if b.within_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                return Err(bad(format!("{at}.within_days: must be 1 to 3650")));
            }
            if !(1..=100_000).contains(&b.min_times) {
                return Err(bad(format!("{at}.min_times: must be 1 to 100000")));
            }
            if b.max_times.is_some_and(|m| m < b.min_times || m > 100_000) {
                return Err(bad(format!(
                    "{at}.max_times: must be at least min_times and at most 100000"
                )));
            }
        }
    }
    if *leaves > MAX_LEAVES {
        return Err(bad(format!("rule: more than {MAX_LEAVES} conditions")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rules compiled to SQL

/// A statement under construction: its CTEs, joins and bound values.
#[derive(Default)]
struct Compiled {
    ctes: Vec<String>,
    joins: Vec<String>,
    params: Vec<ScalarValue>,
}

impl Compiled {
    fn bind(&mut self, v: ScalarValue) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }

    /// A two-valued predicate (never NULL), so NOT, AND and OR mean what they mean in
    /// [`matches`].
    fn expr(&mut self, r: &Rule, as_of: i64) -> CoreResult<String> {
        Ok(match r {
            Rule::All(v) if v.is_empty() => "TRUE".into(),
            Rule::Any(v) if v.is_empty() => "FALSE".into(),
            Rule::All(v) | Rule::Any(v) => {
                let j = if matches!(r, Rule::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = v
                    .iter()
                    .map(|x| self.expr(x, as_of))
                    .collect::<CoreResult<Vec<_>>>()?;
                format!("({})", parts.join(j))
            }
            Rule::Not(x) => format!("(NOT {})", self.expr(x, as_of)?),
            Rule::Field(f) => {
                let (col, kind) = field(&f.field)?;
                let c = format!("c.{col}");
                let val = |s: &mut Compiled, v: &Scalar| match v {
                    Scalar::Number(x) => s.bind(ScalarValue::Float64(Some(*x))),
                    Scalar::Text(t) => s.bind(ScalarValue::Utf8(Some(t.clone()))),
                };
                let lhs = if kind == Kind::Number {
                    format!("CAST({c} AS DOUBLE)")
                } else {
                    c.clone()
                };
                let sym = match f.op {
                    Op::IsNull => return Ok(format!("({c} IS NULL)")),
                    Op::NotNull => return Ok(format!("({c} IS NOT NULL)")),
                    Op::In | Op::NotIn => {
                        let vs: Vec<String> = f.values.iter().map(|v| val(self, v)).collect();
                        let not = if f.op == Op::NotIn { "NOT " } else { "" };
                        return Ok(format!(
                            "COALESCE({lhs} {not}IN ({}), FALSE)",
                            vs.join(", ")
                        ));
                    }
                    Op::Eq => "=",
                    Op::Ne => "<>",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                };
                let v = val(self, &f.values[0]);
                format!("COALESCE({lhs} {sym} {v}, FALSE)")
            }
            Rule::Bought(b) => {
                let k = self.ctes.len();
                let mut w = vec![
                    "o.status = 'paid'".to_string(),
                    "o.customer_id IS NOT NULL".to_string(),
                ];
                let items = b.sku.is_some() || b.category.is_some();
                if let Some(s) = &b.sku {
                    w.push(format!("pr.sku = {}", self.bind(s.clone().into())));
                }
                if let Some(s) = &b.category {
                    w.push(format!("pr.category = {}", self.bind(s.clone().into())));
                }
                if let Some(s) = &b.daypart {
                    w.push(format!("o.daypart = {}", self.bind(s.clone().into())));
                }
                if let Some(s) = b.store_id {
                    w.push(format!("o.store_id = {}", self.bind(s.into())));
                }
                if let Some(s) = &b.channel {
                    w.push(format!("o.channel = {}", self.bind(s.clone().into())));
                }
                if let Some(d) = b.within_days {
                    let from = c360_model::Day(as_of - d).date();
                    w.push(format!(
                        "o.order_time >= {}",
                        self.bind(local_midnight(from))
                    ));
                }
                let from = if items {
                    "orders o JOIN order_items i ON i.order_id = o.order_id \
                     JOIN products pr ON pr.product_id = i.product_id"
                } else {
                    "orders o"
                };
                self.ctes.push(format!(
                    "b{k} AS (SELECT o.customer_id, COUNT(DISTINCT o.order_id) AS n FROM {from} \
                     WHERE {} GROUP BY o.customer_id)",
                    w.join(" AND ")
                ));
                self.joins.push(format!(
                    "LEFT JOIN b{k} ON b{k}.customer_id = c.customer_id"
                ));
                let mut e = format!(
                    "COALESCE(b{k}.n, 0) >= {}",
                    self.bind(ScalarValue::Int64(Some(b.min_times)))
                );
                if let Some(m) = b.max_times {
                    e.push_str(&format!(
                        " AND COALESCE(b{k}.n, 0) <= {}",
                        self.bind(ScalarValue::Int64(Some(m)))
                    ));
                }
                format!("({e})")
            }
        })
    }
}

/// The SQL (with its bound values) of a rule's members as of day `as_of` (day number after the
/// snapshot's last order), limited to customers whose home store is in `stores` when given.
pub fn compile(rule: &Rule, stores: &[i64], as_of: i64) -> CoreResult<(String, Vec<ScalarValue>)> {
    let mut c = Compiled::default();
    let e = c.expr(rule, as_of)?;
    let scope = if stores.is_empty() {
        String::new()
    } else {
        format!(" AND c.home_store_id IN {}", in_list(stores))
    };
    let with = if c.ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", c.ctes.join(", "))
    };
    Ok((
        format!(
            "{with}SELECT c.customer_id FROM v_customer_360 c {} WHERE {e}{scope}",
            c.joins.join(" ")
        ),
        c.params,
    ))
}

/// The snapshot's observation end: the day number after its last order.
pub async fn as_of(sess: &Session) -> CoreResult<i64> {
    Ok(sess
        .scalar_i64(
            "SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) + 1 FROM fact_orders",
        )
        .await?)
}

/// Every `customer_id` of a stream of batches, as a bitmap.
async fn ids_of(
    mut s: datafusion::physical_plan::SendableRecordBatchStream,
) -> CoreResult<RoaringTreemap> {
    let mut out = RoaringTreemap::new();
    while let Some(b) = s.next().await {
        let b = b?;
        let Some(col) = b.column_by_name("customer_id") else {
            return Err(bad("sql: the query must return a customer_id column"));
        };
        let col =
            cast(col, &DataType::Int64).map_err(|_| bad("sql: customer_id must be an integer"))?;
        let a = col
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| CoreError::Internal("customer_id: not int64 after cast".into()))?;
        for i in 0..a.len() {
            if a.is_valid(i) && a.value(i) >= 0 {
                out.insert(a.value(i) as u64);
            }
        }
    }
    Ok(out)
}

/// Members of the customers whose home store is one of `stores`.
async fn home_of(sess: &Session, stores: &[i64]) -> CoreResult<RoaringTreemap> {
    let s = sess
        .stream_with(
            &format!(
                "SELECT customer_id FROM v_customer_360 WHERE home_store_id IN {}",
                in_list(stores)
            ),
            vec![],
        )
        .await?;
    ids_of(s).await
}

/// Reads an audience's members from the snapshot (for a lookalike, its seed's too).
pub async fn evaluate(
    sess: &Session,
    meta: &Metastore,
    spec: &AudienceSpec,
    as_of: i64,
) -> CoreResult<RoaringTreemap> {
    evaluate_depth(sess, meta, spec, as_of, 0).await
}

fn evaluate_depth<'a>(
    sess: &'a Session,
    meta: &'a Metastore,
    spec: &'a AudienceSpec,
    as_of: i64,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = CoreResult<RoaringTreemap>> + Send + 'a>> {
    Box::pin(async move {
        spec.validate()?;
        if let Some(r) = &spec.rule {
            let (sql, params) = compile(r, &spec.store_ids, as_of)?;
            return ids_of(sess.stream_with(&sql, params).await?).await;
        }
        if let Some(text) = &spec.sql {
            let wrapped = format!("SELECT customer_id FROM ({text}) AS audience_query");
            let stream = sess.stream_with(&wrapped, vec![]).await.map_err(|e| {
                bad(format!(
                    "sql: {}",
                    e.to_string().trim_start_matches("Error during planning: ")
                ))
            })?;
            let mut m = ids_of(stream).await?;
            if !spec.store_ids.is_empty() {
                m &= home_of(sess, &spec.store_ids).await?;
            }
            return Ok(m);
        }
        let l = spec
            .lookalike
            .as_ref()
            .ok_or_else(|| CoreError::Internal("validated spec without a definition".into()))?;
        if depth >= 3 {
            return Err(bad(
                "lookalike.seed: lookalikes of lookalikes nest at most three deep",
            ));
        }
        let seed = get(meta, l.seed).await.map_err(|_| {
            bad(format!(
                "lookalike.seed: audience {} does not exist",
                l.seed
            ))
        })?;
        let members = evaluate_depth(sess, meta, &seed.spec, as_of, depth + 1).await?;
        Ok(lookalike(sess, &members, l.size, &spec.store_ids)
            .await?
            .members)
    })
}

// ---------------------------------------------------------------------------------------------
// One customer, live

/// One order as [`matches`] sees it.
#[derive(Debug, Clone)]
pub struct OrderFact {
    pub day: i64,
    pub paid: bool,
    pub daypart: Option<String>,
    pub store_id: Option<i64>,
    pub channel: Option<String>,
    pub product_ids: Vec<i64>,
}

impl OrderFact {
    /// From a row of the serving index's orders file (see [`crate::serving::ORDERS`]).
    pub fn of_row(r: &Value) -> OrderFact {
        OrderFact {
            day: r["day"].as_i64().unwrap_or(i64::MIN),
            paid: r["status"].as_str() == Some("paid"),
            daypart: r["daypart"].as_str().map(String::from),
            store_id: r["store_id"].as_i64(),
            channel: r["channel"].as_str().map(String::from),
            product_ids: r["product_ids"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect(),
        }
    }
}

/// The products a behaviour rule may name: product id → (sku, category).
#[derive(Debug, Clone, Default)]
pub struct Catalog(pub HashMap<i64, (String, Option<String>)>);

impl Catalog {
    pub async fn read(sess: &Session) -> CoreResult<Catalog> {
        let rows = q(sess, "SELECT product_id, sku, category FROM products").await?;
        Ok(Catalog(
            rows.iter()
                .filter_map(|r| {
                    Some((
                        r["product_id"].as_i64()?,
                        (
                            r["sku"].as_str()?.to_string(),
                            r["category"].as_str().map(String::from),
                        ),
                    ))
                })
                .collect(),
        ))
    }
}

/// Whether one customer is in a rule audience: `profile` is their `v_customer_360` row as an
/// object, `orders` every order of theirs. The same answer as the compiled SQL.
pub fn matches(
    rule: &Rule,
    profile: &Value,
    orders: &[OrderFact],
    cat: &Catalog,
    as_of: i64,
) -> bool {
    match rule {
        Rule::All(v) => v.iter().all(|r| matches(r, profile, orders, cat, as_of)),
        Rule::Any(v) => v.iter().any(|r| matches(r, profile, orders, cat, as_of)),
        Rule::Not(r) => !matches(r, profile, orders, cat, as_of),
        Rule::Field(f) => {
            let Ok((col, kind)) = field(&f.field) else {
                return false;
            };
            let v = &profile[col];
            match f.op {
                Op::IsNull => return v.is_null(),
                Op::NotNull => return !v.is_null(),
                _ => {}
            }
            let eq = |s: &Scalar| match (kind, s) {
                (Kind::Number, Scalar::Number(x)) => v.as_f64() == Some(*x),
                (Kind::Text, Scalar::Text(t)) => v.as_str() == Some(t.as_str()),
                _ => false,
            };
            if v.is_null() {
                return false;
            }
            match f.op {
                Op::In => f.values.iter().any(eq),
                Op::NotIn => !f.values.iter().any(eq),
                Op::Eq => eq(&f.values[0]),
                Op::Ne => !eq(&f.values[0]),
                op => {
                    let (Some(a), Some(Scalar::Number(b))) = (v.as_f64(), f.values.first()) else {
                        return false;
                    };
                    match op {
                        Op::Lt => a < *b,
                        Op::Le => a <= *b,
                        Op::Gt => a > *b,
                        _ => a >= *b,
                    }
                }
            }
        }
        Rule::Bought(b) => {
            let from = b.within_days.map(|d| as_of - d);
            let n = orders
                .iter()
                .filter(|o| {
                    o.paid
                        && from.is_none_or(|f| o.day >= f)
                        && b.daypart
                            .as_ref()
                            .is_none_or(|d| o.daypart.as_ref() == Some(d))
                        && b.store_id.is_none_or(|s| o.store_id == Some(s))
                        && b.channel
                            .as_ref()
                            .is_none_or(|c| o.channel.as_ref() == Some(c))
                        && (b.sku.is_none() && b.category.is_none()
                            || o.product_ids.iter().any(|p| {
                                cat.0.get(p).is_some_and(|(sku, category)| {
                                    b.sku.as_ref().is_none_or(|s| s == sku)
                                        && b.category
                                            .as_ref()
                                            .is_none_or(|c| category.as_ref() == Some(c))
                                })
                            }))
                })
                .count() as i64;
            n >= b.min_times && b.max_times.is_none_or(|m| n <= m)
        }
    }
}

/// A customer's profile row after their live orders: counts and spend move by the orders,
/// scores take the live re-score's values.
pub fn live_profile(
    mut row: Value,
    live: &[OrderFact],
    live_spend_fen: i64,
    p: &crate::profile::LiveProfile,
    score: Option<&crate::profile::LiveScore>,
) -> Value {
    let Some(o) = row.as_object_mut() else {
        return row;
    };
    let n = o["order_count"].as_i64().unwrap_or(0) + live.iter().filter(|x| x.paid).count() as i64;
    let spend = o["total_spend_fen"].as_i64().unwrap_or(0) + live_spend_fen;
    o.insert("order_count".into(), n.into());
    o.insert("total_spend_fen".into(), spend.into());
    if n > 0 {
        o.insert("avg_order_fen".into(), (spend / n).into());
    }
    o.insert("recency_days".into(), p.features.recency.into());
    if let Some(s) = score {
        o.insert("rfm_class".into(), s.rfm.class.as_str().into());
        o.insert("tier".into(), s.rfm.tier.as_str().into());
        o.insert("rfm_segment".into(), s.rfm.segment.into());
        o.insert("r_score".into(), i64::from(s.rfm.r).into());
        o.insert("f_score".into(), i64::from(s.rfm.f).into());
        o.insert("m_score".into(), i64::from(s.rfm.m).into());
        o.insert("lifecycle".into(), s.lifecycle.as_str().into());
        if let Some(x) = &s.prediction {
            o.insert("p_alive".into(), x.p_alive.into());
            o.insert(
                "expected_purchases_365d".into(),
                x.expected_purchases.into(),
            );
            o.insert("expected_spend_fen".into(), x.expected_spend_fen.into());
            o.insert("clv_12m_fen".into(), x.clv_fen.into());
            o.insert("next_order_days".into(), x.next_order_days.into());
            o.insert("overdue".into(), x.overdue.into());
        }
    }
    row
}

// ---------------------------------------------------------------------------------------------
// Lookalike

/// Per-customer features of the lookalike model, from the profile and the daypart mix.
const LOOK_SQL: &str = "SELECT c.customer_id, c.home_store_id, c.order_count, c.total_spend_fen, \
     c.avg_order_fen, c.recency_days, c.frequency, c.p_alive, c.p_churn_90d, c.clv_12m_fen, \
     c.wx_orders, c.store_count, c.review_count, c.avg_rating, c.event_count, \
     t.breakfast, t.lunch, t.afternoon, t.dinner, t.late_night \
     FROM v_customer_360 c LEFT JOIN (SELECT customer_id, \
       SUM(CASE WHEN daypart = 'breakfast' THEN share ELSE 0 END) AS breakfast, \
       SUM(CASE WHEN daypart = 'lunch' THEN share ELSE 0 END) AS lunch, \
       SUM(CASE WHEN daypart = 'afternoon' THEN share ELSE 0 END) AS afternoon, \
       SUM(CASE WHEN daypart = 'dinner' THEN share ELSE 0 END) AS dinner, \
       SUM(CASE WHEN daypart = 'late_night' THEN share ELSE 0 END) AS late_night \
       FROM v_customer_time GROUP BY customer_id) t ON t.customer_id = c.customer_id";

const LOOK_COLS: [&str; 19] = [
    "home_store_id",
    "order_count",
    "total_spend_fen",
    "avg_order_fen",
    "recency_days",
    "frequency",
    "p_alive",
    "p_churn_90d",
    "clv_12m_fen",
    "wx_orders",
    "store_count",
    "review_count",
    "avg_rating",
    "event_count",
    "breakfast",
    "lunch",
    "afternoon",
    "dinner",
    "late_night",
];
/// Model inputs per customer.
const D: usize = 19;

/// The model's inputs from one row's raw values (`LOOK_COLS` order, NaN = empty).
fn look_features(r: &[f64; 19]) -> [f64; D] {
    let z = |x: f64| if x.is_nan() { 0.0 } else { x };
    let l = |x: f64| z(x).max(0.0).ln_1p();
    let n = z(r[1]);
    [
        l(n),
        l(r[2] / 100.0),
        l(r[3] / 100.0),
        l(r[4]),
        l(r[5]),
        z(r[6]),
        if r[7].is_nan() { 0.5 } else { r[7] },
        l(r[8] / 100.0),
        z(r[9]) / n.max(1.0),
        l(r[10]),
        l(r[11]),
        z(r[12]),
        if r[12].is_nan() { 0.0 } else { 1.0 },
        l(r[13]),
        z(r[14]),
        z(r[15]),
        z(r[16]),
        z(r[17]),
        z(r[18]),
    ]
}

/// Streams every customer's (id, home store, features).
async fn look_rows(
    sess: &Session,
    mut each: impl FnMut(i64, Option<i64>, [f64; D]),
) -> CoreResult<()> {
    let mut s = sess.stream_with(LOOK_SQL, vec![]).await?;
    while let Some(b) = s.next().await {
        let b = b?;
        let id = col_i64(&b, "customer_id")?;
        let cols: Vec<Float64Array> = LOOK_COLS
            .iter()
            .map(|c| col_f64(&b, c))
            .collect::<CoreResult<_>>()?;
        for i in 0..b.num_rows() {
            if !id.is_valid(i) {
                continue;
            }
            let mut raw = [f64::NAN; 19];
            for (k, c) in cols.iter().enumerate() {
                if c.is_valid(i) {
                    raw[k] = c.value(i);
                }
            }
            let home = (!raw[0].is_nan()).then_some(raw[0] as i64);
            each(id.value(i), home, look_features(&raw));
        }
    }
    Ok(())
}

fn col_i64(b: &RecordBatch, name: &str) -> CoreResult<Int64Array> {
    let c: &ArrayRef = b
        .column_by_name(name)
        .ok_or_else(|| CoreError::Internal(format!("{name}: missing")))?;
    let c = cast(c, &DataType::Int64)?;
    c.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| CoreError::Internal(format!("{name}: not int64")))
}

fn col_f64(b: &RecordBatch, name: &str) -> CoreResult<Float64Array> {
    let c: &ArrayRef = b
        .column_by_name(name)
        .ok_or_else(|| CoreError::Internal(format!("{name}: missing")))?;
    let c = cast(c, &DataType::Float64)?;
    c.as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| CoreError::Internal(format!("{name}: not float64")))
}

/// A deterministic uniform number in [0, 1) from a customer id (splitmix64).
fn unit(id: i64) -> f64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A lookalike expansion: its members and the fitted model's weights per feature.
#[derive(Debug, Clone)]
pub struct Expansion {
    pub members: RoaringTreemap,
    /// Seed customers the model learned from, and the others it contrasted them with.
    pub positives: usize,
    pub negatives: usize,
}

/// The `size` customers outside `seed` (with a home store in `stores`, when given) most like
/// the seed: a class-balanced, L2-regularised logistic regression of seed against a
/// deterministic sample of everyone else on standardised profile features (frequency, spend,
/// basket, recency, lifetime value, churn, channel, breadth, reviews, browsing and daypart
/// mix), scoring every customer in one streamed pass. Two passes over the profiles; memory
/// holds the training sample and the best `size` ids.
pub async fn lookalike(
    sess: &Session,
    seed: &RoaringTreemap,
    size: u64,
    stores: &[i64],
) -> CoreResult<Expansion> {
    if seed.is_empty() {
        return Err(bad("lookalike.seed: the seed audience has no members"));
    }
    // Pass 1: standardisation and the training sample (up to 50k seed customers and four
    // times as many others).
    let mut total = 0u64;
    let mut sum = [0.0; D];
    let mut sq = [0.0; D];
    let (mut pos, mut neg): (Vec<[f64; D]>, Vec<[f64; D]>) = (Vec::new(), Vec::new());
    let n_all = sess
        .scalar_i64("SELECT COUNT(*) FROM v_customer_360")
        .await?
        .max(1) as f64;
    let s_len = seed.len() as f64;
    let p_rate = (50_000.0 / s_len).min(1.0);
    let n_rate = (4.0 * s_len.min(50_000.0) / (n_all - s_len).max(1.0)).min(1.0);
    look_rows(sess, |id, _, x| {
        total += 1;
        for k in 0..D {
            sum[k] += x[k];
            sq[k] += x[k] * x[k];
        }
        let u = unit(id);
        if seed.contains(id as u64) {
            if u < p_rate {
                pos.push(x);
            }
        } else if u < n_rate {
            neg.push(x);
        }
    })
    .await?;
    if pos.is_empty() || neg.is_empty() {
        return Err(bad(
            "lookalike.seed: the seed and the rest must both hold customers with a profile",
        ));
    }
    let t = total.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / t).collect();
    let sd: Vec<f64> = (0..D)
        .map(|k| (sq[k] / t - mean[k] * mean[k]).max(0.0).sqrt().max(1e-9))
        .collect();
    let std = |x: &[f64; D]| -> [f64; D] {
        let mut z = [0.0; D];
        for k in 0..D {
            z[k] = (x[k] - mean[k]) / sd[k];
        }
        z
    };
    let xs: Vec<([f64; D], f64, f64)> = pos
        .iter()
        .map(|x| (std(x), 1.0, 0.5 / pos.len() as f64))
        .chain(neg.iter().map(|x| (std(x), 0.0, 0.5 / neg.len() as f64)))
        .collect();
    let lambda = 1e-3;
    let loss = |w: &[f64]| -> f64 {
        let mut l = 0.0;
        for (x, y, wt) in &xs {
            let z = w[D] + (0..D).map(|k| w[k] * x[k]).sum::<f64>();
            // log(1 + e^z) - y z, stably.
            l += wt * (z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z);
        }
        l + 0.5 * lambda * w[..D].iter().map(|v| v * v).sum::<f64>()
    };
    let grad = |w: &[f64]| -> Vec<f64> {
        let mut g = vec![0.0; D + 1];
        for (x, y, wt) in &xs {
            let z = w[D] + (0..D).map(|k| w[k] * x[k]).sum::<f64>();
            let r = wt * (1.0 / (1.0 + (-z).exp()) - y);
            for k in 0..D {
                g[k] += r * x[k];
            }
            g[D] += r;
        }
        for k in 0..D {
            g[k] += lambda * w[k];
        }
        g
    };
    let fit = c360_analytics::optim::lbfgs_grad(&loss, &grad, &[0.0; D + 1], 1e-7, 300);
    let w = fit.x;
    // Pass 2: score everyone outside the seed and keep the best `size` (a min-heap).
    #[derive(PartialEq)]
    struct Scored(f64, i64);
    impl Eq for Scored {}
    impl PartialOrd for Scored {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Scored {
        // Reversed: the heap's top is the worst kept (lowest score, then highest id).
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
        }
    }
    let mut heap: BinaryHeap<Scored> = BinaryHeap::new();
    let cap = size.min(100_000_000) as usize;
    look_rows(sess, |id, home, x| {
        if seed.contains(id as u64)
            || (!stores.is_empty() && !home.is_some_and(|h| stores.contains(&h)))
        {
            return;
        }
        let z = std(&x);
        let s = w[D] + (0..D).map(|k| w[k] * z[k]).sum::<f64>();
        let e = Scored(s, id);
        if heap.len() < cap {
            heap.push(e);
        } else if heap.peek().is_some_and(|worst| e < *worst) {
            heap.pop();
            heap.push(e);
        }
    })
    .await?;
    Ok(Expansion {
        members: heap.into_iter().map(|s| s.1 as u64).collect(),
        positives: pos.len(),
        negatives: neg.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// Stored audiences

/// A saved audience as the metastore holds it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SavedAudience)]
pub struct Audience {
    pub audience_id: i64,
    /// active or archived.
    pub status: String,
    /// The current definition's version (1 = as created).
    pub version: i64,
    pub spec: AudienceSpec,
    /// rule, sql or lookalike.
    pub kind: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One version of an audience's definition.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Version {
    pub version: i64,
    pub spec: AudienceSpec,
    pub changed_by: String,
    pub changed_at: String,
}

/// An audience's size at one snapshot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SizePoint {
    pub version: i64,
    pub wh_version: i64,
    /// The snapshot's observation end (YYYY-MM-DD).
    pub as_of: String,
    pub size: i64,
    pub measured_at: String,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Stores a new audience (version 1); returns its id.
pub async fn create(meta: &Metastore, spec: &AudienceSpec, by: &str) -> CoreResult<i64> {
    spec.validate()?;
    check_seed(meta, spec, None).await?;
    let text = serde_json::to_string(spec)?;
    let at = now();
    let mut tx = meta.db.begin().await?;
    let id = Metastore::take_ids(&mut tx, Counter::Audiences, 1).await?;
    tx.execute(
        "INSERT INTO audiences (audience_id, name, status, version, spec, created_by, created_at, updated_at) VALUES (?, ?, 'active', 1, ?, ?, ?, ?)",
        &[
            id.into(),
            spec.name.clone().into(),
            text.clone().into(),
            by.into(),
            at.clone().into(),
            at.clone().into(),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO audience_versions (audience_id, version, spec, changed_by, changed_at) VALUES (?, 1, ?, ?, ?)",
        &[id.into(), text.into(), by.into(), at.into()],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A lookalike's seed must be another stored, active audience, and not one whose own seed
/// chain leads back to this one.
async fn check_seed(meta: &Metastore, spec: &AudienceSpec, me: Option<i64>) -> CoreResult<()> {
    let Some(l) = &spec.lookalike else {
        return Ok(());
    };
    let mut at = l.seed;
    for _ in 0..4 {
        if Some(at) == me {
            return Err(bad("lookalike.seed: an audience cannot be its own seed"));
        }
        let a = get(meta, at)
            .await
            .map_err(|_| bad(format!("lookalike.seed: audience {at} does not exist")))?;
        if a.status != "active" {
            return Err(bad(format!("lookalike.seed: audience {at} is archived")));
        }
        match &a.spec.lookalike {
            Some(next) => at = next.seed,
            None => return Ok(()),
        }
    }
    Err(bad(
        "lookalike.seed: lookalikes of lookalikes nest at most three deep",
    ))
}

/// Stores a new version of audience `id`'s definition; returns the version.
pub async fn update(meta: &Metastore, id: i64, spec: &AudienceSpec, by: &str) -> CoreResult<i64> {
    spec.validate()?;
    let cur = get(meta, id).await?;
    if cur.status != "active" {
        return Err(CoreError::Conflict(format!("audience {id} is archived")));
    }
    check_seed(meta, spec, Some(id)).await?;
    let text = serde_json::to_string(spec)?;
    let at = now();
    let v = cur.version + 1;
    let mut tx = meta.db.begin().await?;
    // The version moves only from the one read: of two concurrent edits one wins, the other
    // is told.
    let n = tx
        .execute(
            "UPDATE audiences SET version = ?, name = ?, spec = ?, updated_at = ? WHERE audience_id = ? AND version = ?",
            &[
                v.into(),
                spec.name.clone().into(),
                text.clone().into(),
                at.clone().into(),
                id.into(),
                cur.version.into(),
            ],
        )
        .await?;
    if n == 0 {
        return Err(CoreError::Conflict(format!(
            "audience {id} was changed meanwhile; read it again"
        )));
    }
    tx.execute(
        "INSERT INTO audience_versions (audience_id, version, spec, changed_by, changed_at) VALUES (?, ?, ?, ?, ?)",
        &[id.into(), v.into(), text.into(), by.into(), at.into()],
    )
    .await?;
    tx.commit().await?;
    Ok(v)
}

/// Archives audience `id` (its history stays; it is no longer refreshed or offered).
pub async fn archive(meta: &Metastore, id: i64) -> CoreResult<()> {
    get(meta, id).await?;
    meta.db
        .execute(
            "UPDATE audiences SET status = 'archived', updated_at = ? WHERE audience_id = ?",
            &[now().into(), id.into()],
        )
        .await?;
    Ok(())
}

fn audience_of(r: &c360_db::sqlx::any::AnyRow) -> CoreResult<Audience> {
    let spec: AudienceSpec = serde_json::from_str(&get_text(r, "spec").unwrap_or_default())?;
    Ok(Audience {
        audience_id: get_i64(r, "audience_id").unwrap_or(0),
        status: get_text(r, "status").unwrap_or_default(),
        version: get_i64(r, "version").unwrap_or(1),
        kind: spec.kind().into(),
        spec,
        created_by: get_text(r, "created_by").unwrap_or_default(),
        created_at: get_text(r, "created_at").unwrap_or_default(),
        updated_at: get_text(r, "updated_at").unwrap_or_default(),
    })
}

pub async fn get(meta: &Metastore, id: i64) -> CoreResult<Audience> {
    let rows = meta
        .db
        .fetch(
            "SELECT * FROM audiences WHERE audience_id = ?",
            &[id.into()],
        )
        .await?;
    match rows.first() {
        Some(r) => audience_of(r),
        None => Err(CoreError::NotFound(format!("audience {id} does not exist"))),
    }
}

/// Every audience, newest first (archived ones only when asked).
pub async fn list(meta: &Metastore, archived: bool) -> CoreResult<Vec<Audience>> {
    let rows = meta
        .db
        .fetch(
            "SELECT * FROM audiences WHERE status = 'active' OR ? = 1 ORDER BY audience_id DESC",
            &[i64::from(archived).into()],
        )
        .await?;
    rows.iter().map(audience_of).collect()
}

/// Every version of audience `id`'s definition, newest first.
pub async fn versions(meta: &Metastore, id: i64) -> CoreResult<Vec<Version>> {
    let rows = meta
        .db
        .fetch(
            "SELECT * FROM audience_versions WHERE audience_id = ? ORDER BY version DESC",
            &[id.into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Version {
                version: get_i64(r, "version").unwrap_or(0),
                spec: serde_json::from_str(&get_text(r, "spec").unwrap_or_default())?,
                changed_by: get_text(r, "changed_by").unwrap_or_default(),
                changed_at: get_text(r, "changed_at").unwrap_or_default(),
            })
        })
        .collect()
}

/// Audience `id`'s size at each snapshot it was measured at, oldest first.
pub async fn sizes(meta: &Metastore, id: i64) -> CoreResult<Vec<SizePoint>> {
    let rows = meta
        .db
        .fetch(
            "SELECT * FROM audience_sizes WHERE audience_id = ? ORDER BY wh_version, version",
            &[id.into()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SizePoint {
            version: get_i64(r, "version").unwrap_or(0),
            wh_version: get_i64(r, "wh_version").unwrap_or(0),
            as_of: get_i64(r, "as_of_day")
                .map(|d| c360_model::Day(d).to_string())
                .unwrap_or_default(),
            size: get_i64(r, "size").unwrap_or(0),
            measured_at: get_text(r, "measured_at").unwrap_or_default(),
        })
        .collect())
}

/// Records a size (the first measurement of a version at a snapshot stands).
pub async fn record_size(
    meta: &Metastore,
    a: &Audience,
    wh_version: u64,
    as_of: i64,
    size: u64,
) -> CoreResult<()> {
    meta.db
        .insert_missing_rows(
            "audience_sizes",
            &[
                "audience_id",
                "version",
                "wh_version",
                "as_of_day",
                "size",
                "measured_at",
            ],
            "audience_id, version, wh_version",
            &[vec![
                a.audience_id.into(),
                a.version.into(),
                (wh_version as i64).into(),
                as_of.into(),
                (size as i64).into(),
                now().into(),
            ]],
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bitmaps per snapshot

/// Where audience `id` at `version` is cached for warehouse version `wh_version`: beside that
/// version's serving index, so it goes when the snapshot is collected. None when the snapshot
/// has no index (nothing is cached then).
fn cache_path(wh: &Warehouse, wh_version: u64, id: i64, version: i64) -> Option<PathBuf> {
    let dir = crate::serving::dir_of(wh, wh_version);
    dir.is_dir()
        .then(|| dir.join("audiences").join(format!("{id}.{version}.roar")))
}

fn io(e: std::io::Error) -> CoreError {
    CoreError::Internal(format!("audience cache: {e}"))
}

/// Audience `a`'s members at the session's snapshot: read from the cache, else computed,
/// cached and its size recorded.
pub async fn members(
    wh: &Warehouse,
    sess: &Session,
    meta: &Metastore,
    a: &Audience,
) -> CoreResult<Arc<RoaringTreemap>> {
    let wv = sess.manifest.version;
    let path = cache_path(wh, wv, a.audience_id, a.version);
    if let Some(p) = &path {
        if let Ok(bytes) = std::fs::read(p) {
            if let Ok(m) = RoaringTreemap::deserialize_from(&bytes[..]) {
                return Ok(Arc::new(m));
            }
            tracing::warn!(path = %p.display(), "an audience cache file does not read; recomputing it");
        }
    }
    let day = as_of(sess).await?;
    let m = evaluate(sess, meta, &a.spec, day).await?;
    if let Some(p) = &path {
        // A whole file or none: written aside, synced, renamed into place.
        let dir = p
            .parent()
            .ok_or_else(|| CoreError::Internal("cache path".into()))?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            p.file_name().and_then(|s| s.to_str()).unwrap_or("a"),
            std::process::id()
        ));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let mut buf = Vec::with_capacity(m.serialized_size());
        m.serialize_into(&mut buf).map_err(io)?;
        f.write_all(&buf).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, p).map_err(io)?;
    }
    record_size(meta, a, wv, day, m.len()).await?;
    Ok(Arc::new(m))
}

/// Computes (or finds cached) every active audience at the session's snapshot, recording each
/// size: the ETL runs it after each refresh. Returns (audience, size) pairs; an audience that
/// fails (a query that no longer plans after a schema change) is reported and skipped.
pub async fn refresh_all(
    wh: &Warehouse,
    sess: &Session,
    meta: &Metastore,
) -> CoreResult<Vec<(i64, Result<u64, String>)>> {
    let mut out = Vec::new();
    let mut all = list(meta, false).await?;
    // Seeds before their lookalikes.
    all.sort_by_key(|a| (a.spec.lookalike.is_some(), a.audience_id));
    for a in &all {
        let r = members(wh, sess, meta, a).await;
        if let Err(e) = &r {
            tracing::warn!(audience = a.audience_id, error = %e, "audience not refreshed");
        }
        out.push((a.audience_id, r.map(|m| m.len()).map_err(|e| e.to_string())));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Set algebra, samples and export

/// Sizes, pairwise intersections and Jaccard similarity of some audiences.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overlap {
    pub audience_ids: Vec<i64>,
    pub sizes: Vec<u64>,
    /// `intersections[i][j]`: members of both i and j.
    pub intersections: Vec<Vec<u64>>,
    pub jaccard: Vec<Vec<f64>>,
    /// Members of every one of them, and of any.
    pub all: u64,
    pub any: u64,
}

pub fn overlap(sets: &[(i64, Arc<RoaringTreemap>)]) -> Overlap {
    let n = sets.len();
    let sizes: Vec<u64> = sets.iter().map(|s| s.1.len()).collect();
    let mut inter = vec![vec![0u64; n]; n];
    let mut jac = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            let k = if i == j {
                sizes[i]
            } else {
                sets[i].1.intersection_len(&sets[j].1)
            };
            let u = sizes[i] + sizes[j] - k;
            inter[i][j] = k;
            inter[j][i] = k;
            let jv = if u == 0 { 0.0 } else { k as f64 / u as f64 };
            jac[i][j] = jv;
            jac[j][i] = jv;
        }
    }
    let (mut all, mut any) = match sets.first() {
        Some(s) => ((*s.1).clone(), (*s.1).clone()),
        None => (RoaringTreemap::new(), RoaringTreemap::new()),
    };
    for s in sets.iter().skip(1) {
        all &= &*s.1;
        any |= &*s.1;
    }
    Overlap {
        audience_ids: sets.iter().map(|s| s.0).collect(),
        sizes,
        intersections: inter,
        jaccard: jac,
        all: all.len(),
        any: any.len(),
    }
}

/// The profile columns an export and a sample carry (no personal data).
pub const EXPORT_COLUMNS: &str = "customer_id, home_store_id, home_city_id, tier, rfm_class, \
     lifecycle, order_count, total_spend_fen, recency_days, clv_12m_fen, p_churn_90d, \
     next_order_days, overdue";

/// Up to `n` members spread over the id range, with their profile columns.
pub async fn sample(sess: &Session, m: &RoaringTreemap, n: usize) -> CoreResult<Vec<Value>> {
    if m.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let step = (m.len() as usize).div_ceil(n).max(1);
    let ids: Vec<i64> = m.iter().step_by(step).take(n).map(|x| x as i64).collect();
    query_with(
        sess,
        &format!(
            "SELECT {EXPORT_COLUMNS} FROM v_customer_360 WHERE customer_id IN {} ORDER BY customer_id",
            in_list(&ids)
        ),
        vec![],
    )
    .await
}

/// An export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Parquet,
}

/// Writes the members' profile columns ([`EXPORT_COLUMNS`]) to `out`, one batch at a time;
/// returns the rows written.
pub async fn export<W: Write + Send>(
    sess: &Session,
    m: &RoaringTreemap,
    format: Format,
    out: W,
) -> CoreResult<u64> {
    let mut s = sess
        .stream_with(
            &format!("SELECT {EXPORT_COLUMNS} FROM v_customer_360 ORDER BY customer_id"),
            vec![],
        )
        .await?;
    let mut rows = 0u64;
    let mut pq: Option<datafusion::parquet::arrow::ArrowWriter<W>> = None;
    let mut csv = Some(out);
    let mut header = true;
    while let Some(b) = s.next().await {
        let b = b?;
        let id = col_i64(&b, "customer_id")?;
        let keep: BooleanArray = (0..b.num_rows())
            .map(|i| Some(id.is_valid(i) && m.contains(id.value(i) as u64)))
            .collect();
        let b = filter_record_batch(&b, &keep)?;
        if b.num_rows() == 0 {
            continue;
        }
        rows += b.num_rows() as u64;
        match format {
            Format::Parquet => {
                if pq.is_none() {
                    let w = csv
                        .take()
                        .ok_or_else(|| CoreError::Internal("writer".into()))?;
                    let props = datafusion::parquet::file::properties::WriterProperties::builder()
                        .set_compression(datafusion::parquet::basic::Compression::ZSTD(
                            Default::default(),
                        ))
                        .build();
                    pq = Some(
                        datafusion::parquet::arrow::ArrowWriter::try_new(
                            w,
                            b.schema(),
                            Some(props),
                        )
                        .map_err(pq_err)?,
                    );
                }
                if let Some(w) = pq.as_mut() {
                    w.write(&b).map_err(pq_err)?;
                }
            }
            Format::Csv => {
                let w = csv
                    .as_mut()
                    .ok_or_else(|| CoreError::Internal("writer".into()))?;
                write_csv(w, &b, header).map_err(io)?;
                header = false;
            }
        }
    }
    match (format, pq, csv) {
        (Format::Parquet, Some(w), _) => {
            w.close().map_err(pq_err)?;
        }
        (Format::Parquet, None, Some(w)) => {
            // No member: an empty file with the columns.
            let schema = sess
                .query(&format!(
                    "SELECT {EXPORT_COLUMNS} FROM v_customer_360 LIMIT 0"
                ))
                .await?
                .first()
                .map(|b| b.schema());
            if let Some(schema) = schema {
                datafusion::parquet::arrow::ArrowWriter::try_new(w, schema, None)
                    .and_then(|x| x.close())
                    .map_err(pq_err)?;
            }
        }
        (Format::Csv, _, Some(mut w)) => {
            if header {
                writeln!(w, "{}", EXPORT_COLUMNS.replace(' ', "")).map_err(io)?;
            }
            w.flush().map_err(io)?;
        }
        _ => {}
    }
    Ok(rows)
}

fn pq_err(e: datafusion::parquet::errors::ParquetError) -> CoreError {
    CoreError::Internal(format!("parquet export: {e}"))
}

/// RFC 4180 rows: text quoted when it holds a comma, quote or line break.
fn write_csv<W: Write>(w: &mut W, b: &RecordBatch, header: bool) -> std::io::Result<()> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if header {
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        writeln!(w, "{}", names.join(","))?;
    }
    let opts = FormatOptions::default().with_null("");
    let fmts: Vec<ArrayFormatter<'_>> = b
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    for i in 0..b.num_rows() {
        let cells: Vec<String> = fmts
            .iter()
            .map(|f| {
                let s = f.value(i).to_string();
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            })
            .collect();
        writeln!(w, "{}", cells.join(","))?;
    }
    Ok(())
}

/// The members of the saved audience a campaign names, at the session's snapshot (None when
/// it names none). The audience must be active, and a store-limited caller's only if it is
/// limited to their stores.
pub async fn for_campaign(
    wh: &Warehouse,
    sess: &Session,
    meta: &Metastore,
    spec: &crate::campaign::CampaignSpec,
) -> CoreResult<Option<Arc<RoaringTreemap>>> {
    let Some(id) = spec.audience.audience_id else {
        return Ok(None);
    };
    let a = get(meta, id).await.map_err(|_| {
        bad(format!(
            "audience.audience_id: audience {id} does not exist"
        ))
    })?;
    if a.status != "active" {
        return Err(bad(format!(
            "audience.audience_id: audience {id} is archived"
        )));
    }
    Ok(Some(members(wh, sess, meta, &a).await?))
}
