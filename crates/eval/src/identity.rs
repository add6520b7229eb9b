//! Identity resolution scored against the simulator's truth: pairwise precision and recall.

use std::collections::HashMap;

use c360_db::{get_i64, get_text, Db};
use serde::Serialize;

use crate::error::Result;

/// Pairwise precision and recall of the resolved customers against the simulator's truth.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityEval {
    pub nodes: u64,
    pub customers: u64,
    pub true_persons: u64,
    pub predicted_pairs: u64,
    pub true_pairs: u64,
    pub correct_pairs: u64,
    pub precision: f64,
    pub recall: f64,
}

pub async fn evaluate_identity(metastore_url: &str, truth_url: &str) -> Result<IdentityEval> {
    let meta = Db::connect(metastore_url).await?;
    let truth = Db::connect(truth_url).await?;
    let pred: HashMap<String, i64> = meta
        .fetch_all(
            "SELECT source_key, customer_id FROM identity_nodes WHERE customer_id IS NOT NULL",
        )
        .await?
        .iter()
        .filter_map(|r| Some((get_text(r, "source_key")?, get_i64(r, "customer_id")?)))
        .collect();
    let truth_rows = truth
        .fetch_all("SELECT system, source_id, person_id FROM ids")
        .await?;
    let mut person: HashMap<String, i64> = HashMap::new();
    for r in &truth_rows {
        let sys = get_text(r, "system").unwrap_or_default();
        let id = get_i64(r, "source_id").unwrap_or_default();
        let k = if sys == "member" {
            format!("M:{id}")
        } else {
            format!("U:{id}")
        };
        person.insert(k, get_i64(r, "person_id").unwrap_or_default());
    }
    meta.close().await;
    truth.close().await;
    let c2 = |n: u64| n * n.saturating_sub(1) / 2;
    let mut by_pred: HashMap<i64, u64> = HashMap::new();
    let mut by_true: HashMap<i64, u64> = HashMap::new();
    let mut by_both: HashMap<(i64, i64), u64> = HashMap::new();
    for (k, c) in &pred {
        let Some(p) = person.get(k) else { continue };
        *by_pred.entry(*c).or_default() += 1;
        *by_true.entry(*p).or_default() += 1;
        *by_both.entry((*c, *p)).or_default() += 1;
    }
    let predicted_pairs: u64 = by_pred.values().map(|n| c2(*n)).sum();
    let true_pairs: u64 = by_true.values().map(|n| c2(*n)).sum();
    let correct_pairs: u64 = by_both.values().map(|n| c2(*n)).sum();
    Ok(IdentityEval {
        nodes: pred.len() as u64,
        customers: by_pred.len() as u64,
        true_persons: by_true.len() as u64,
        predicted_pairs,
        true_pairs,
        correct_pairs,
        precision: if predicted_pairs == 0 {
            1.0
        } else {
            correct_pairs as f64 / predicted_pairs as f64
        },
        recall: if true_pairs == 0 {
            1.0
        } else {
            correct_pairs as f64 / true_pairs as f64
        },
    })
}

/// Anonymous till orders that identity tied to a customer through the payment account alone,
/// scored against who really placed them (`anon_orders` in the truth).
#[derive(Debug, Clone, Serialize)]
pub struct PayerEval {
    /// Till orders without a member card the warehouse holds.
    pub anonymous_pos_orders: u64,
    /// Of those, tied to a customer by their payment account.
    pub attributed: u64,
    /// Attributed to a customer whose source ids belong to the order's true buyer.
    pub correct: u64,
    pub precision: f64,
    /// attributed / anonymous_pos_orders.
    pub attributed_share: f64,
    /// Of the attributable ones (the buyer has a member or user id some customer holds), the
    /// share attributed.
    pub recall: f64,
}

pub async fn evaluate_payer_attribution(
    warehouse: &std::path::Path,
    truth_url: &str,
) -> Result<PayerEval> {
    use c360_warehouse::arrow::array::{Array, AsArray};
    use c360_warehouse::arrow::compute::cast;
    use c360_warehouse::arrow::datatypes::{DataType, Int64Type};
    let wh = c360_warehouse::Warehouse::open(warehouse)?;
    let sess = c360_warehouse::Session::open(&wh).await?;
    // Every anonymous till order: its source id and the customer it resolved to, if any.
    let mut orders: Vec<(i64, Option<i64>)> = Vec::new();
    for b in sess
        .query(
            "SELECT source_order_id, customer_id FROM orders WHERE source = 'pos' \
             AND (customer_key IS NULL OR customer_key LIKE 'PAY:%')",
        )
        .await?
    {
        let ids = cast(b.column(0), &DataType::Int64).map_err(c360_warehouse::WhError::Arrow)?;
        let cust = cast(b.column(1), &DataType::Int64).map_err(c360_warehouse::WhError::Arrow)?;
        let (ids, cust) = (
            ids.as_primitive::<Int64Type>(),
            cust.as_primitive::<Int64Type>(),
        );
        for i in 0..ids.len() {
            orders.push((ids.value(i), cust.is_valid(i).then(|| cust.value(i))));
        }
    }
    let truth = Db::connect(truth_url).await?;
    // The true persons behind each customer, through its member and user ids.
    let persons = crate::clv::customer_persons(&sess, &truth).await?;
    let buyer: HashMap<i64, i64> = truth
        .fetch_all("SELECT order_id, person_id FROM anon_orders")
        .await?
        .iter()
        .filter_map(|r| Some((get_i64(r, "order_id")?, get_i64(r, "person_id")?)))
        .collect();
    truth.close().await;
    let (mut attributed, mut correct, mut attributable, mut attributable_hit) = (0u64, 0, 0, 0);
    for (oid, cust) in &orders {
        let who = buyer.get(oid).copied();
        let reachable = who.is_some_and(|p| persons.known(p));
        attributable += reachable as u64;
        if let Some(c) = cust {
            attributed += 1;
            attributable_hit += reachable as u64;
            if who.is_some_and(|p| persons.any(*c, |q| q == p) == Some(true)) {
                correct += 1;
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(PayerEval {
        anonymous_pos_orders: orders.len() as u64,
        attributed,
        correct,
        precision: if attributed == 0 {
            1.0
        } else {
            ratio(correct, attributed)
        },
        attributed_share: ratio(attributed, orders.len() as u64),
        recall: ratio(attributable_hit, attributable),
    })
}
