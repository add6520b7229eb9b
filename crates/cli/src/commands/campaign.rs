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
    /// Is the campaign effect estimate unbiased? Simulates one chain, then per run launches the
    /// win-back campaign (its own randomisation), lets the simulator live through its window
    /// (its own seed), loads it and compares the CUPED incremental revenue per treated member
    /// with the truth's realised effect: mean error, its standard error and 95% CI coverage.
    /// Works in a directory of its own (the configured data is not touched).
    Validate {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, default_value_t = 30_000)]
        orders: u64,
        #[arg(long, default_value_t = 71)]
        seed: u64,
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
            let wh = c360_warehouse::Warehouse::open(&st.warehouse)?;
            let r = async {
                let c = campaign::get(&m, id).await?;
                let saved = c360_core::audience::for_campaign(&wh, &s, &m, &c.spec).await?;
                campaign::launch(&s, &m, id, None, saved.as_deref()).await
            }
            .await;
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
        CampaignCmd::Validate { runs, orders, seed } => {
            pretty(&validate(runs, orders, seed).await?)
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

/// One run of [`validate`]: the estimate of incremental revenue per treated member (fen), its
/// 95% interval and the truth's realised mean effect on the treated.
#[derive(Debug, serde::Serialize)]
struct Run {
    campaign_id: i64,
    treated: usize,
    estimate: f64,
    ci: [f64; 2],
    truth: f64,
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else if e.file_name() != "_lock" {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

async fn validate(runs: usize, orders: u64, seed: u64) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base)?;
    let url = |d: &std::path::Path, f: &str| d.join(f).display().to_string();
    let sim = c360_sim::SimConfig {
        seed,
        orders,
        pos_url: url(&base, "pos.db"),
        wx_url: url(&base, "wx.db"),
        truth_url: url(&base, "truth.db"),
        progress: false,
        ..Default::default()
    };
    c360_sim::simulate(&sim).await?;
    let etl = |d: &std::path::Path| c360_etl::EtlConfig {
        pos_url: url(d, "pos.db"),
        wx_url: url(d, "wx.db"),
        warehouse: d.join("wh"),
        progress: false,
        ..Default::default()
    };
    c360_etl::run(&etl(&base)).await?;
    let mut out: Vec<Run> = Vec::new();
    for r in 0..runs {
        let d = dir.path().join(format!("run{r}"));
        copy_dir(&base, &d)?;
        let cfg = etl(&d);
        let wh = c360_warehouse::Warehouse::open(&cfg.warehouse)?;
        let sess = c360_warehouse::Session::open(&wh).await?;
        let meta = c360_metastore::Metastore::open(&cfg.metastore()).await?;
        let sugg = campaign::suggest(&sess, None).await.map_err(api_err)?;
        let mut spec = sugg
            .into_iter()
            .find(|x| x.rfm_class == "重要挽留客户")
            .context("no win-back suggestion")?
            .spec;
        spec.holdout_pct = 30.0;
        // Members are randomised by the campaign's id: run r launches campaign r + 1 (the
        // drafts before it are cancelled), so each run draws its own arms.
        let mut id = 0;
        for _ in 0..=r {
            if id > 0 {
                campaign::transition(&meta, id, c360_model::CampaignAction::Cancel)
                    .await
                    .map_err(api_err)?;
            }
            id = campaign::create(&meta, &spec, "validate")
                .await
                .map_err(api_err)?;
        }
        campaign::launch(&sess, &meta, id, None, None)
            .await
            .map_err(api_err)?;
        let (start, end) = spec.validate().map_err(api_err)?;
        let world = c360_sim::world::WorldConfig {
            pos_url: cfg.pos_url.clone(),
            wx_url: cfg.wx_url.clone(),
            truth_url: url(&d, "truth.db"),
            seed: seed.wrapping_mul(1_000).wrapping_add(r as u64),
            from: start,
            days: (end - start).num_days() + 1 + spec.attribution_days,
        };
        c360_sim::world::advance(&world, &treatments(&meta, &[id]).await?).await?;
        meta.db
            .execute(
                "UPDATE campaign_members SET status = 'sent' WHERE campaign_id = ? AND status = 'planned'",
                &[id.into()],
            )
            .await?;
        drop(sess);
        c360_etl::run(&cfg).await?;
        let sess = c360_warehouse::Session::open(&c360_warehouse::Warehouse::open(&cfg.warehouse)?)
            .await?;
        let res = campaign::evaluate(&sess, &meta, id, None)
            .await
            .map_err(api_err)?;
        let arm = res.arms.first().context("no treated arm")?;
        let truth = c360_db::Db::connect(&world.truth_url).await?;
        let t = truth
            .fetch(
                "SELECT AVG(CAST(realized_uplift_fen AS DOUBLE)) AS up FROM campaign_truth WHERE campaign_id = ? AND treated = 1",
                &[id.into()],
            )
            .await?;
        truth.close().await;
        let e = &arm.revenue_per_member_cuped;
        let run = Run {
            campaign_id: id,
            treated: arm.members,
            estimate: e.diff,
            ci: [e.ci[0], e.ci[1]],
            truth: t
                .first()
                .and_then(|r| c360_db::get_f64(r, "up"))
                .unwrap_or(0.0),
        };
        eprintln!("run {r}: {}", serde_json::to_string(&run)?);
        out.push(run);
        meta.db.close().await;
        std::fs::remove_dir_all(&d)?;
    }
    let n = out.len() as f64;
    let errors: Vec<f64> = out.iter().map(|r| r.estimate - r.truth).collect();
    let mean = errors.iter().sum::<f64>() / n;
    let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let covered = out
        .iter()
        .filter(|r| r.ci[0] <= r.truth && r.truth <= r.ci[1])
        .count();
    Ok(json!({
        "runs": out.len(),
        "orders": orders,
        "mean_truth_fen": out.iter().map(|r| r.truth).sum::<f64>() / n,
        "mean_estimate_fen": out.iter().map(|r| r.estimate).sum::<f64>() / n,
        "mean_error_fen": mean,
        "mean_error_se_fen": sd / n.sqrt(),
        "rmse_fen": (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
        "ci_coverage": covered as f64 / n,
        "each": out,
    }))
}
