//! `c360 service`: diagnose a ticket or message; score the diagnosis against the truth.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::{audited, pretty};
use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Diagnose one ticket (by key, e.g. T:12) or a message: likely cause, solution, compensation.
    Diagnose {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long)]
        message: Option<String>,
        /// The customer writing (for the compensation policy).
        #[arg(long)]
        customer: Option<i64>,
    },
    /// Train on closed tickets, score the open ones against the simulator's true causes.
    Evaluate,
}

pub async fn run(st: &Settings, cmd: ServiceCmd) -> Result<()> {
    match cmd {
        ServiceCmd::Diagnose {
            ticket,
            message,
            customer,
        } => {
            use c360_analytics::service::{keyword_rule, resolve, Case, Standing, CAUSES};
            let (s, m) = super::open(st).await?;
            let all =
                c360_core::service::tickets(&s, c360_core::service::TicketFilter::All).await?;
            let model = c360_core::service::train(&all);
            let (case, cust, paid, target) = match (&ticket, &message) {
                (Some(k), _) => {
                    let t = all
                        .iter()
                        .find(|t| &t.ticket_key == k)
                        .with_context(|| format!("--ticket {k:?}: no such ticket"))?;
                    (t.case.clone(), t.customer_id, t.order_paid_fen, k.clone())
                }
                (None, Some(msg)) => (
                    Case {
                        message: msg.clone(),
                        context: model.mean_context(),
                    },
                    customer,
                    None,
                    customer.map_or("message".into(), |c| format!("customer:{c}")),
                ),
                _ => anyhow::bail!("give --ticket or --message"),
            };
            let mut standing = Standing {
                order_paid_fen: paid,
                ..Default::default()
            };
            if let Some(c) = cust {
                let b = s
                    .query_with(
                        "SELECT rfm_class, p_churn_90d FROM v_customer_360 WHERE customer_id = $1",
                        vec![c360_warehouse::query::ScalarValue::from(c)],
                    )
                    .await?;
                let rows = c360_core::json::rows(&b)?;
                if let Some(r) = rows.first() {
                    standing.high_value = r["rfm_class"]
                        .as_str()
                        .is_some_and(|x| x.starts_with("重要"));
                    standing.churn_risk = r["p_churn_90d"].as_f64().unwrap_or(0.0);
                }
            }
            let p = model.predict(&case);
            let k = c360_analytics::service::argmax(&p);
            let who = st.actor();
            audited(
                &m,
                &who,
                "service.diagnose",
                &target,
                json!({}),
                Ok::<(), String>(()),
            )
            .await?;
            pretty(&json!({
                "predicted_cause": CAUSES[k],
                "probabilities": CAUSES.iter().zip(p).map(|(c, x)| json!({"cause": c, "p": x})).collect::<Vec<_>>(),
                "reasons": model.reasons(&case, k),
                "keyword_rule": keyword_rule(&case.message).map(|i| CAUSES[i]),
                "resolution": resolve(k, p[k], standing),
            }))
        }
        ServiceCmd::Evaluate => pretty(
            &c360_eval::service::evaluate_service(&st.warehouse, &st.truth_or_default()).await?,
        ),
    }
}
