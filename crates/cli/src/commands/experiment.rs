//! `c360 experiment`: store-level and switchback tests; the A/B engine's validation.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::{api_err, audited, pretty};
use c360_core::experiments;

use super::campaign::read_spec;
use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Validate the A/B engine on simulated experiments with a known effect (A/A and A/B runs
    /// on the simulator's persons): false-positive rate and power of every analysis.
    Validate {
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
    },
    Results {
        id: i64,
    },
    List,
}

pub async fn run(st: &Settings, cmd: ExperimentCmd) -> Result<()> {
    match cmd {
        ExperimentCmd::Validate {
            n,
            effect,
            seed,
            export,
        } => {
            let truth = st.truth_or_default();
            let pop = c360_eval::ab::population(&truth).await?;
            anyhow::ensure!(!pop.is_empty(), "{truth}: no persons alive at the cut-off");
            if let Some(dir) = &export {
                c360_eval::ab::export_one(&pop, effect, seed, dir)
                    .with_context(|| format!("writing {}", dir.display()))?;
            }
            let v =
                tokio::task::spawn_blocking(move || c360_eval::ab::validate(&pop, n, effect, seed))
                    .await?;
            pretty(&v)
        }
        ExperimentCmd::Create { spec } => {
            let (s, m) = super::open(st).await?;
            let sp: experiments::ExperimentSpec = read_spec(&spec, "an experiment spec")?;
            let who = st.actor();
            let r = experiments::create(&m, &sp, &who).await;
            let id = audited(&m, &who, "experiment.create", &sp.name, json!({}), r).await?;
            pretty(&experiments::plan(&s, &m, id, None).await.map_err(api_err)?)
        }
        ExperimentCmd::Results { id } => {
            let (s, m) = super::open(st).await?;
            pretty(
                &experiments::results(&s, &m, id, None)
                    .await
                    .map_err(api_err)?,
            )
        }
        ExperimentCmd::List => {
            let m = super::metastore(st).await?;
            pretty(&experiments::list(&m).await.map_err(api_err)?)
        }
    }
}
