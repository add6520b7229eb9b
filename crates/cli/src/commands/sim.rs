//! `c360 sim`: writes both source systems and the ground truth.

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Stop once this many source orders exist (both systems; up to 10M).
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
}

pub async fn run(s: &Settings, a: SimArgs) -> Result<()> {
    let cfg = c360_sim::SimConfig {
        seed: a.seed,
        orders: a.orders,
        stores: a.stores,
        start: a.start,
        cutoff: a.cutoff,
        pos_url: s.pos.clone(),
        wx_url: s.wx.clone(),
        truth_url: s.truth_or_default(),
        dirt: a.dirt,
        progress: !s.quiet,
        ..Default::default()
    };
    let r = c360_sim::simulate(&cfg)
        .await
        .context("simulation failed")?;
    super::pretty(&r)
}
