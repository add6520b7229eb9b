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
