//! `c360 advance`: the simulator lives through the days after the cut-off with launched
//! campaigns in it, then marks their planned messages sent.

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct AdvanceArgs {
    #[arg(long, env = "C360_SEED", default_value_t = 2030)]
    pub seed: u64,
    /// First day to write (default: the simulation's cut-off).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    #[arg(long, default_value_t = 28)]
    pub days: i64,
    /// Launched campaigns whose members the simulated customers respond to.
    #[arg(long, value_delimiter = ',')]
    pub campaign: Vec<i64>,
}

pub async fn run(s: &Settings, a: AdvanceArgs) -> Result<()> {
    let truth = s.truth_or_default();
    let from = match a.from {
        Some(d) => d,
        None => {
            let t = c360_db::Db::connect(&truth).await?;
            let r = t
                .fetch_all("SELECT value FROM params WHERE name = 'cutoff'")
                .await?;
            t.close().await;
            let v = r
                .first()
                .and_then(|r| c360_db::get_text(r, "value"))
                .context("the truth database has no cut-off; pass --from")?;
            NaiveDate::parse_from_str(&v, "%Y-%m-%d")?
        }
    };
    let meta = super::metastore(s).await?;
    let treatments = super::campaign::treatments(&meta, &a.campaign).await?;
    let cfg = c360_sim::world::WorldConfig {
        pos_url: s.pos.clone(),
        wx_url: s.wx.clone(),
        truth_url: truth,
        seed: a.seed,
        from,
        days: a.days,
    };
    let r = c360_sim::world::advance(&cfg, &treatments)
        .await
        .context("advancing the simulation")?;
    for id in &a.campaign {
        meta.execute(
            "UPDATE campaign_members SET status = 'sent' WHERE campaign_id = ? AND status = 'planned'",
            &[(*id).into()],
        )
        .await?;
    }
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
