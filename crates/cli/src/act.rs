//! Subcommands that act on profiles: campaigns, experiments (and the A/B engine's validation),
//! smart customer service, the audit trail, and moving the simulated world on with campaigns in
//! it. The CLI runs with the metastore's full rights (as an admin); what it changes is audited
//! under the name given by `--actor` (default `cli:$USER`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use c360_db::Db;
use c360_server::{audit, campaign, experiments};
use clap::Subcommand;
use serde_json::json;

fn err(e: c360_server::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub(crate) fn actor(a: &Option<String>) -> String {
    a.clone().unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    })
}

async fn open(
    warehouse: &std::path::Path,
    metastore: Option<String>,
) -> Result<(c360_warehouse::Session, Db)> {
    let sess = c360_etl::session(warehouse)
        .await
        .with_context(|| format!("opening the warehouse {}", warehouse.display()))?;
    let meta = meta(warehouse, metastore).await?;
    Ok((sess, meta))
}

async fn meta(warehouse: &std::path::Path, metastore: Option<String>) -> Result<Db> {
    let meta = Db::connect(&crate::cmd::metastore_url(warehouse, metastore)).await?;
    for ddl in [campaign::DDL, experiments::DDL, audit::DDL] {
        meta.exec_script(ddl).await?;
    }
    Ok(meta)
}

/// Records a CLI action in the audit trail (the CLI acts with the metastore's full rights, as
/// an admin), refused ones too, then hands back the action's result.
pub(crate) async fn audited<T>(
    m: &Db,
    who: &str,
    action: &str,
    target: &str,
    mut detail: serde_json::Value,
    r: Result<T, c360_server::error::ApiError>,
) -> Result<T> {
    detail["via"] = json!("cli");
    let outcome = if r.is_ok() { "ok" } else { "rejected" };
    audit::record(m, who, "admin", action, target, outcome, &detail)
        .await
        .map_err(err)?;
    r.map_err(err)
}

/// A JSON spec file (`what` names it in the error).
fn read_spec<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))
}

fn pretty(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct Where {
    #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
    pub warehouse: PathBuf,
    #[arg(long, env = "C360_METASTORE")]
    pub metastore: Option<String>,
    /// Name recorded in the audit trail.
    #[arg(long, env = "C360_ACTOR")]
    pub actor: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CampaignCmd {
    /// Campaign drafts from the RFM segments (JSON specs to edit and create).
    Suggest {
        #[command(flatten)]
        at: Where,
    },
    /// Create a draft from a JSON spec file (see `suggest` for the shape).
    Create {
        spec: PathBuf,
        #[command(flatten)]
        at: Where,
    },
    /// Materialise the audience: arms, personal offers, coupon codes, send times.
    Launch {
        id: i64,
        #[command(flatten)]
        at: Where,
    },
    /// pause, resume, complete or cancel.
    Status {
        id: i64,
        action: String,
        #[command(flatten)]
        at: Where,
    },
    List {
        #[command(flatten)]
        at: Where,
    },
    /// Effect against the holdout, redemptions, guardrails, SRM, uplift.
    Results {
        id: i64,
        #[command(flatten)]
        at: Where,
    },
    /// Members with arm, coupon code, personal offer and send time (tab-separated).
    Members {
        id: i64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        at: Where,
    },
    /// All campaigns together against the global holdout over a period.
    Program {
        #[arg(long)]
        from: chrono::NaiveDate,
        #[arg(long)]
        to: chrono::NaiveDate,
        #[command(flatten)]
        at: Where,
    },
    /// Set the global holdout percentage.
    GlobalHoldout {
        pct: f64,
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Validate the A/B engine on simulated experiments with a known effect (A/A and A/B runs
    /// on the simulator's persons): false-positive rate and power of every analysis.
    Validate {
        #[arg(long, default_value = "data/truth.db")]
        truth: String,
        /// Experiments per scenario.
        #[arg(long, default_value_t = 500)]
        n: usize,
        /// True relative effect in the A/B runs.
        #[arg(long, default_value_t = 0.1)]
        effect: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also write one experiment's units and this engine's analysis of them here (for
        /// bench/ab_check.py to recompute with scipy and statsmodels).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Create a store-level or switchback experiment from a JSON spec; prints its plan.
    Create {
        spec: PathBuf,
        #[command(flatten)]
        at: Where,
    },
    Results {
        id: i64,
        #[command(flatten)]
        at: Where,
    },
    List {
        #[command(flatten)]
        at: Where,
    },
}

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
        #[command(flatten)]
        at: Where,
    },
    /// Train on closed tickets, score the open ones against the simulator's true causes.
    Evaluate {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, default_value = "data/truth.db")]
        truth: String,
    },
}

pub async fn campaign_cmd(cmd: CampaignCmd) -> Result<()> {
    match cmd {
        CampaignCmd::Suggest { at } => {
            let (s, _) = open(&at.warehouse, at.metastore).await?;
            pretty(&campaign::suggest(&s, None).await.map_err(err)?)
        }
        CampaignCmd::Create { spec, at } => {
            let m = meta(&at.warehouse, at.metastore.clone()).await?;
            let sp: campaign::CampaignSpec = read_spec(&spec, "a campaign spec")?;
            let who = actor(&at.actor);
            let r = campaign::create(&m, &sp, &who).await;
            let id = audited(&m, &who, "campaign.create", &sp.name, json!({}), r).await?;
            pretty(&json!({"campaign_id": id, "status": "draft"}))
        }
        CampaignCmd::Launch { id, at } => {
            let (s, m) = open(&at.warehouse, at.metastore.clone()).await?;
            let r = campaign::launch(&s, &m, id, None).await;
            let target = format!("campaign:{id}");
            let who = actor(&at.actor);
            pretty(&audited(&m, &who, "campaign.launch", &target, json!({}), r).await?)
        }
        CampaignCmd::Status { id, action, at } => {
            let m = meta(&at.warehouse, at.metastore.clone()).await?;
            let r = campaign::transition(&m, id, &action).await;
            let (what, target) = (format!("campaign.{action}"), format!("campaign:{id}"));
            let to = audited(&m, &actor(&at.actor), &what, &target, json!({}), r).await?;
            pretty(&json!({"campaign_id": id, "status": to}))
        }
        CampaignCmd::List { at } => {
            let m = meta(&at.warehouse, at.metastore).await?;
            for c in campaign::list(&m).await.map_err(err)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.campaign_id, c.status, c.audience_size, c.spec.start, c.name
                );
            }
            Ok(())
        }
        CampaignCmd::Results { id, at } => {
            let (s, m) = open(&at.warehouse, at.metastore).await?;
            pretty(&campaign::evaluate(&s, &m, id, None).await.map_err(err)?)
        }
        CampaignCmd::Members { id, limit, at } => {
            let m = meta(&at.warehouse, at.metastore).await?;
            println!("customer_id\tarm\tcoupon_code\tsku\tdaypart\tsend_at\tstatus");
            for x in campaign::members(&m, id)
                .await
                .map_err(err)?
                .iter()
                .take(limit)
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    x.customer_id,
                    x.arm,
                    x.coupon_code.as_deref().unwrap_or("-"),
                    x.sku.as_deref().unwrap_or("-"),
                    x.daypart.as_deref().unwrap_or("-"),
                    x.send_at,
                    x.status
                );
            }
            Ok(())
        }
        CampaignCmd::Program { from, to, at } => {
            let (s, m) = open(&at.warehouse, at.metastore).await?;
            pretty(
                &campaign::program_effect(&s, &m, from, to, None)
                    .await
                    .map_err(err)?,
            )
        }
        CampaignCmd::GlobalHoldout { pct, at } => {
            let m = meta(&at.warehouse, at.metastore.clone()).await?;
            let r = campaign::set_global_holdout_pct(&m, pct).await;
            let who = actor(&at.actor);
            let detail = json!({"value": pct});
            audited(
                &m,
                &who,
                "campaign.settings",
                "global_holdout_pct",
                detail,
                r,
            )
            .await?;
            println!("global holdout: {pct}%");
            Ok(())
        }
    }
}

pub async fn experiment_cmd(cmd: ExperimentCmd) -> Result<()> {
    match cmd {
        ExperimentCmd::Validate {
            truth,
            n,
            effect,
            seed,
            export,
        } => {
            let pop = c360_etl::evaluate_ab::population(&truth).await?;
            anyhow::ensure!(!pop.is_empty(), "{truth}: no persons alive at the cut-off");
            if let Some(dir) = &export {
                c360_etl::evaluate_ab::export_one(&pop, effect, seed, dir)
                    .with_context(|| format!("writing {}", dir.display()))?;
            }
            let v = tokio::task::spawn_blocking(move || {
                c360_etl::evaluate_ab::validate(&pop, n, effect, seed)
            })
            .await?;
            pretty(&v)
        }
        ExperimentCmd::Create { spec, at } => {
            let (s, m) = open(&at.warehouse, at.metastore.clone()).await?;
            let sp: experiments::ExperimentSpec = read_spec(&spec, "an experiment spec")?;
            let who = actor(&at.actor);
            let r = experiments::create(&m, &sp, &who).await;
            let id = audited(&m, &who, "experiment.create", &sp.name, json!({}), r).await?;
            pretty(&experiments::plan(&s, &m, id, None).await.map_err(err)?)
        }
        ExperimentCmd::Results { id, at } => {
            let (s, m) = open(&at.warehouse, at.metastore).await?;
            pretty(&experiments::results(&s, &m, id, None).await.map_err(err)?)
        }
        ExperimentCmd::List { at } => {
            let m = meta(&at.warehouse, at.metastore).await?;
            pretty(&experiments::list(&m).await.map_err(err)?)
        }
    }
}

pub async fn service_cmd(cmd: ServiceCmd) -> Result<()> {
    match cmd {
        ServiceCmd::Diagnose {
            ticket,
            message,
            customer,
            at,
        } => {
            use c360_analytics::service::{keyword_rule, resolve, Case, Standing, CAUSES};
            let (s, m) = open(&at.warehouse, at.metastore.clone()).await?;
            let all = c360_etl::service::tickets(&s, "").await?;
            let model = c360_etl::service::train(&all);
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
                    .query(&format!(
                        "SELECT rfm_class, p_churn_90d FROM v_customer_360 WHERE customer_id = {c}"
                    ))
                    .await?;
                let rows = c360_server::json::rows(&b)?;
                if let Some(r) = rows.first() {
                    standing.high_value = r["rfm_class"]
                        .as_str()
                        .is_some_and(|x| x.starts_with("重要"));
                    standing.churn_risk = r["p_churn_90d"].as_f64().unwrap_or(0.0);
                }
            }
            let p = model.predict(&case);
            let k = c360_analytics::service::argmax(&p);
            let who = actor(&at.actor);
            audited(&m, &who, "service.diagnose", &target, json!({}), Ok(())).await?;
            pretty(&json!({
                "predicted_cause": CAUSES[k],
                "probabilities": CAUSES.iter().zip(p).map(|(c, x)| json!({"cause": c, "p": x})).collect::<Vec<_>>(),
                "reasons": model.reasons(&case, k),
                "keyword_rule": keyword_rule(&case.message).map(|i| CAUSES[i]),
                "resolution": resolve(k, p[k], standing),
            }))
        }
        ServiceCmd::Evaluate { warehouse, truth } => {
            pretty(&c360_etl::service::evaluate_service(&warehouse, &truth).await?)
        }
    }
}

pub async fn audit_cmd(at: Where, limit: i64, action: Option<String>) -> Result<()> {
    let m = meta(&at.warehouse, at.metastore).await?;
    for e in audit::list(&m, limit, action.as_deref(), None)
        .await
        .map_err(err)?
    {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e["seq"],
            e["at"].as_str().unwrap_or(""),
            e["actor"].as_str().unwrap_or(""),
            e["role"].as_str().unwrap_or(""),
            e["action"].as_str().unwrap_or(""),
            e["target"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// The treatments of launched campaigns, in the simulator's terms.
pub async fn treatments(meta: &Db, ids: &[i64]) -> Result<Vec<c360_sim::world::Treatment>> {
    let mut out = Vec::new();
    for id in ids {
        for (m, keys) in campaign::members_with_keys(meta, *id).await.map_err(err)? {
            if m.arm == "global_holdout" {
                continue;
            }
            out.push(c360_sim::world::Treatment {
                campaign_id: *id,
                source_keys: keys,
                treated: m.arm != "holdout" && (m.status == "planned" || m.status == "sent"),
                coupon_code: m.coupon_code.clone().unwrap_or_default(),
                discount_fen: m.discount_fen.unwrap_or(0),
                send_at: c360_model::parse_ts(&m.send_at)
                    .with_context(|| format!("campaign {id}: send_at {:?}", m.send_at))?,
                daypart: m
                    .daypart
                    .as_deref()
                    .and_then(|d| c360_model::Daypart::ALL.into_iter().find(|x| x.code() == d)),
                sku: m.sku.clone(),
            });
        }
    }
    Ok(out)
}
