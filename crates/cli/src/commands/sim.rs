//! `c360 sim`: writes both source systems and the ground truth.

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Stop once this many source orders exist (both systems).
    #[arg(long, env = "C360_SIM_ORDERS", default_value_t = 100_000)]
    pub orders: u64,
    #[arg(long, env = "C360_SEED", default_value_t = 2030)]
    pub seed: u64,
    /// Number of stores (at least one per city, 42 cities).
    #[arg(long, default_value_t = 120)]
    pub stores: usize,
    /// First day of trading simulated.
    #[arg(long, default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Orders from this day on are kept as ground-truth future, not written to the sources.
    #[arg(long, default_value = "2025-10-01")]
    pub cutoff: NaiveDate,
    /// Scale of dirty rows (0 = clean sources, 1 = realistic).
    #[arg(long, default_value_t = 1.0)]
    pub dirt: f64,
    /// The sources' layout: `sim` (c360's own schema, `examples/sim.toml`) or `chain` (another
    /// chain's: other names, yuan DECIMAL, Unix times, integer codes; `examples/chain.toml`).
    #[arg(long, default_value = "sim")]
    pub layout: String,
    /// Threads drawing persons (0 = one per core). The data is the same whatever the number.
    #[arg(long, env = "C360_SIM_THREADS", default_value_t = 0)]
    pub threads: usize,
}

pub async fn run(s: &Settings, a: SimArgs) -> Result<()> {
    let chain = match a.layout.as_str() {
        "sim" => false,
        "chain" => true,
        other => anyhow::bail!("--layout {other:?}: sim or chain"),
    };
    // The other layout is written from a simulation in c360's own, kept beside it.
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let (pos_url, wx_url) = if chain {
        (
            tmp.path().join("pos.db").display().to_string(),
            tmp.path().join("wx.db").display().to_string(),
        )
    } else {
        (s.pos.clone(), s.wx.clone())
    };
    let cfg = c360_sim::SimConfig {
        seed: a.seed,
        orders: a.orders,
        stores: a.stores,
        start: a.start,
        cutoff: a.cutoff,
        pos_url,
        wx_url,
        truth_url: s.truth_or_default(),
        dirt: a.dirt,
        threads: a.threads,
        progress: !s.quiet,
        ..Default::default()
    };
    let r = c360_sim::simulate(&cfg)
        .await
        .context("simulation failed")?;
    if chain {
        use c360_db::Db;
        let (pos, wx) = (
            Db::connect(&cfg.pos_url).await?,
            Db::connect(&cfg.wx_url).await?,
        );
        let (pos_out, wx_out) = (Db::connect(&s.pos).await?, Db::connect(&s.wx).await?);
        c360_sim::layout::relayout(&pos, &wx, &pos_out, &wx_out)
            .await
            .context("writing the chain layout")?;
        for d in [pos, wx, pos_out, wx_out] {
            d.close().await;
        }
        eprintln!(
            "wrote the chain layout to {} and {}; read it with --contract examples/chain.toml",
            c360_db::redact(&s.pos),
            c360_db::redact(&s.wx)
        );
    }
    super::pretty(&r)
}
