//! `c360 campaign`: suggest, create, launch, move, members, results, the programme and the
//! global holdout; every change audited under `--actor`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::{api_err, audited, pretty};
use c360_core::campaign;

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum CampaignCmd {
    /// Campaign drafts from the RFM segments (JSON specs to edit and create).
    Suggest,
    /// Create a draft from a JSON spec file (see `suggest` for the shape).
    Create {
        spec: PathBuf,
    },
    /// Materialise the audience: arms, personal offers, coupon codes, send times.
    Launch {
        id: i64,
    },
    /// pause, resume, complete or cancel.
    Status {
        id: i64,
        action: String,
    },
    List,
    /// Effect against the holdout, redemptions, guardrails, SRM, uplift.
    Results {
        id: i64,
    },
    /// Members with arm, coupon code, personal offer and send time (tab-separated).
    Members {
        id: i64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// All campaigns together against the global holdout over a period.
    Program {
        #[arg(long)]
        from: chrono::NaiveDate,
        #[arg(long)]
        to: chrono::NaiveDate,
    },
    /// Set the global holdout percentage.
    GlobalHoldout {
        pct: f64,
    },
}

pub async fn run(st: &Settings, cmd: CampaignCmd) -> Result<()> {
    match cmd {
        CampaignCmd::Suggest => {
            let (s, _) = super::open(st).await?;
            pretty(&campaign::suggest(&s, None).await.map_err(api_err)?)
        }
        CampaignCmd::Create { spec } => {
            let m = super::metastore(st).await?;
            let sp: campaign::CampaignSpec = read_spec(&spec, "a campaign spec")?;
            let who = st.actor();
            let r = campaign::create(&m, &sp, &who).await;
            let id = audited(&m, &who, "campaign.create", &sp.name, json!({}), r).await?;
            pretty(&json!({"campaign_id": id, "status": "draft"}))
        }
        CampaignCmd::Launch { id } => {
            let (s, m) = super::open(st).await?;
            let r = campaign::launch(&s, &m, id, None).await;
            let target = format!("campaign:{id}");
            let who = st.actor();
            pretty(&audited(&m, &who, "campaign.launch", &target, json!({}), r).await?)
        }
        CampaignCmd::Status { id, action } => {
            let m = super::metastore(st).await?;
            let a = c360_model::CampaignAction::parse(&action).with_context(|| {
                format!("action {action:?}: use pause, resume, complete or cancel")
            })?;
            let r = campaign::transition(&m, id, a).await;
            let (what, target) = (format!("campaign.{action}"), format!("campaign:{id}"));
            let to = audited(&m, &st.actor(), &what, &target, json!({}), r).await?;
            pretty(&json!({"campaign_id": id, "status": to}))
        }
        CampaignCmd::List => {
            let m = super::metastore(st).await?;
            for c in campaign::list(&m).await.map_err(api_err)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    c.campaign_id, c.status, c.audience_size, c.spec.start, c.name
                );
            }
            Ok(())
        }
        CampaignCmd::Results { id } => {
            let (s, m) = super::open(st).await?;
            pretty(
                &campaign::evaluate(&s, &m, id, None)
                    .await
                    .map_err(api_err)?,
            )
        }
        CampaignCmd::Members { id, limit } => {
            let m = super::metastore(st).await?;
            println!("customer_id\tarm\tcoupon_code\tsku\tdaypart\tsend_at\tstatus");
            for x in campaign::members(&m, id)
                .await
                .map_err(api_err)?
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
        CampaignCmd::Program { from, to } => {
            let (s, m) = super::open(st).await?;
            pretty(
                &campaign::program_effect(&s, &m, from, to, None)
                    .await
                    .map_err(api_err)?,
            )
        }
        CampaignCmd::GlobalHoldout { pct } => {
            let m = super::metastore(st).await?;
            let r = campaign::set_global_holdout_pct(&m, pct).await;
            let who = st.actor();
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

/// A JSON spec file (`what` names it in the error).
pub(crate) fn read_spec<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not {what}", path.display()))
}

/// The treatments of launched campaigns, in the simulator's terms.
pub async fn treatments(
    meta: &c360_db::Db,
    ids: &[i64],
) -> Result<Vec<c360_sim::world::Treatment>> {
    let mut out = Vec::new();
    for id in ids {
        for (m, keys) in campaign::members_with_keys(meta, *id)
            .await
            .map_err(api_err)?
        {
            if m.arm == "global_holdout" {
                continue;
            }
            out.push(c360_sim::world::Treatment {
                campaign_id: *id,
                source_keys: keys,
                treated: m.arm != "holdout"
                    && matches!(
                        m.status,
                        c360_model::MemberStatus::Planned | c360_model::MemberStatus::Sent
                    ),
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
