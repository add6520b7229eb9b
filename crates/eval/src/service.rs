//! Customer-service diagnosis scored against the simulator's true causes: trained on tickets
//! agents closed, tested on the open ones, beside keyword rules and the majority cause.

use std::collections::HashMap;
use std::path::Path;

use c360_analytics::service::{self, argmax, Case, ServiceModel, CAUSES, CONTEXT};
use c360_core::service::{tickets, train, Ticket, TicketFilter, EPOCHS};
use c360_db::{get_i64, get_text, Db};
use c360_warehouse::{Session, Warehouse};
use serde::Serialize;

use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct ServiceEval {
    pub closed_tickets: usize,
    pub open_tickets: usize,
    /// On open tickets against the true cause.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// The same model without the context features (message only).
    pub accuracy_text_only: f64,
    /// Keyword rules on the message (falling back to the most common cause).
    pub accuracy_keywords: f64,
    /// Always the most common cause among closed tickets.
    pub accuracy_majority: f64,
    /// Messages that name no problem (no keyword matches): only the context can tell.
    pub vague_tickets: usize,
    pub accuracy_vague: f64,
    pub accuracy_vague_majority: f64,
    /// rows: truth, columns: predicted, in [`CAUSES`] order.
    pub confusion: [[usize; 4]; 4],
    /// How often agents' recorded causes disagree with the truth (label noise).
    pub closed_label_noise: f64,
}

#[allow(clippy::needless_range_loop)] // a confusion matrix reads best by index
fn macro_f1(conf: &[[usize; 4]; 4]) -> f64 {
    let mut f = 0.0;
    for k in 0..4 {
        let tp = conf[k][k] as f64;
        let fp: f64 = (0..4).filter(|j| *j != k).map(|j| conf[j][k] as f64).sum();
        let fnn: f64 = (0..4).filter(|j| *j != k).map(|j| conf[k][j] as f64).sum();
        let p = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let r = if tp + fnn > 0.0 { tp / (tp + fnn) } else { 0.0 };
        f += if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
    }
    f / 4.0
}

/// Trains on closed tickets and scores the open ones against `service_truth`.
pub async fn evaluate_service(warehouse: &Path, truth_url: &str) -> Result<ServiceEval> {
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let all = tickets(&sess, TicketFilter::All).await?;
    let truth = Db::connect(truth_url).await?;
    let mut cause_of: HashMap<String, usize> = HashMap::new();
    for r in truth
        .fetch_all("SELECT ticket_id, cause FROM service_truth")
        .await?
    {
        if let (Some(id), Some(c)) = (get_i64(&r, "ticket_id"), get_text(&r, "cause")) {
            if let Some(k) = CAUSES.iter().position(|x| *x == c) {
                cause_of.insert(format!("T:{id}"), k);
            }
        }
    }
    truth.close().await;
    let closed: Vec<&Ticket> = all.iter().filter(|t| t.resolved_cause.is_some()).collect();
    let open: Vec<&Ticket> = all
        .iter()
        .filter(|t| t.resolved_cause.is_none() && cause_of.contains_key(&t.ticket_key))
        .collect();
    let model = train(&all);
    let text_only = {
        let (cases, labels): (Vec<Case>, Vec<usize>) = closed
            .iter()
            .map(|t| {
                (
                    Case {
                        message: t.case.message.clone(),
                        context: [0.0; CONTEXT.len()],
                    },
                    t.resolved_cause.unwrap_or(0),
                )
            })
            .unzip();
        ServiceModel::train(&cases, &labels, EPOCHS)
    };
    let majority = argmax(&model.class_counts.map(|c| c as f64));
    let noise = closed
        .iter()
        .filter(|t| {
            cause_of
                .get(&t.ticket_key)
                .is_some_and(|c| Some(*c) != t.resolved_cause)
        })
        .count() as f64
        / closed.len().max(1) as f64;
    let mut conf = [[0usize; 4]; 4];
    let (mut ok, mut ok_text, mut ok_kw, mut ok_maj) = (0, 0, 0, 0);
    let (mut vague, mut ok_vague, mut ok_vague_maj) = (0, 0, 0);
    for t in &open {
        let want = cause_of[&t.ticket_key];
        let got = argmax(&model.predict(&t.case));
        conf[want][got] += 1;
        ok += (got == want) as usize;
        let bare = Case {
            message: t.case.message.clone(),
            context: [0.0; CONTEXT.len()],
        };
        ok_text += (argmax(&text_only.predict(&bare)) == want) as usize;
        let kw = service::keyword_rule(&t.case.message);
        ok_kw += (kw.unwrap_or(majority) == want) as usize;
        if kw.is_none() {
            vague += 1;
            ok_vague += (got == want) as usize;
            ok_vague_maj += (majority == want) as usize;
        }
        ok_maj += (majority == want) as usize;
    }
    let n = open.len().max(1) as f64;
    Ok(ServiceEval {
        closed_tickets: closed.len(),
        open_tickets: open.len(),
        accuracy: ok as f64 / n,
        macro_f1: macro_f1(&conf),
        accuracy_text_only: ok_text as f64 / n,
        accuracy_keywords: ok_kw as f64 / n,
        accuracy_majority: ok_maj as f64 / n,
        vague_tickets: vague,
        accuracy_vague: ok_vague as f64 / vague.max(1) as f64,
        accuracy_vague_majority: ok_vague_maj as f64 / vague.max(1) as f64,
        confusion: conf,
        closed_label_noise: noise,
    })
}
