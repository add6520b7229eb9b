//! The subcommands of `c360`, one file each; this module only declares them and dispatches.
//! Settings shared by all of them (paths, URLs, secrets, server, LLM) are in
//! [`crate::config::Settings`]; a command's own arguments are the parameters of one run.

mod advance;
mod analyze;
mod apikey;
mod audience;
mod audit;
mod campaign;
mod config;
mod demo;
mod etl;
mod experiment;
mod identity;
mod import;
mod journey;
mod privacy;
mod quality;
mod sentiment;
mod serve;
mod service;
mod sim;
mod sources;
mod sql;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "c360",
    version,
    about = "c360 — customer profiles (客户画像) for a hot dog chain",
    long_about = "c360 merges the store POS (cyrg2025) and the WeChat mini-program (cyrgweixin) into the \
analytics warehouse hotdog2030 and builds one profile per customer.\n\n\
Start with `c360 demo`: it simulates both source systems, runs the ETL and prints a summary. \
Everything lives under ./data by default; nothing needs to be installed.\n\n\
Every setting is a flag, a C360_* environment variable and a key of the configuration file \
(--config, C360_CONFIG or ./c360.toml), in that order of precedence; `c360 config show` prints them.",
    after_help = "Examples:\n  c360 demo\n  c360 sim --orders 1000000\n  c360 etl\n  c360 sql \"SELECT tier, COUNT(*) FROM customer_segmentation GROUP BY tier\"\n  c360 etl --pos mysql://root@127.0.0.1:3306/cyrg2025 --wx postgres://postgres@127.0.0.1/cyrgweixin\n  c360 config show"
)]
pub struct Cli {
    /// Log progress of each step (set C360_LOG=debug for more).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Simulate both source systems (and the ground truth) into databases.
    Sim(sim::SimArgs),
    /// Run the ten-step ETL from the sources into the hotdog2030 warehouse (incremental).
    Etl,
    /// The source contract: check it against the live sources, or list the entities and fields.
    Sources {
        #[command(subcommand)]
        cmd: sources::SourcesCmd,
    },
    /// Load CSV, JSON-lines or Parquet files (ENTITY=FILE …) with the contract's mapping, then
    /// refresh: for chains without a database connection. A re-import loads nothing twice.
    Import(import::ImportArgs),
    /// Run SQL on the warehouse (tables, and the views orders, v_customer_360, ...).
    Sql(sql::SqlArgs),
    /// Print the latest data-quality report and quarantined rows.
    Quality(quality::QualityArgs),
    /// Identity resolution: measure it against the simulator's truth, or undo a merge.
    Identity {
        #[command(subcommand)]
        cmd: identity::IdentityCmd,
    },
    /// Score texts collected elsewhere with the stored sentiment model, or show the model.
    Sentiment {
        #[command(subcommand)]
        cmd: sentiment::SentimentCmd,
    },
    /// Customer analytics on the warehouse: lifetime value models and their validation.
    Analyze {
        #[command(subcommand)]
        cmd: analyze::AnalyzeCmd,
    },
    /// Simulate, run the ETL and print a summary — the whole pipeline on the embedded default.
    Demo(demo::DemoArgs),
    /// Serve the REST API, WebSocket push and the web dashboard over the warehouse.
    Serve,
    /// API keys: create (printed once), list, revoke.
    Apikey {
        #[command(subcommand)]
        cmd: apikey::ApikeyCmd,
    },
    /// Saved audiences (标签/人群): rules, SQL or lookalike; versions, sizes, export, overlap.
    Audience {
        #[command(subcommand)]
        cmd: audience::AudienceCmd,
    },
    /// Triggered journeys: welcome, miss you (overdue), big-spender thanks, service recovery.
    Journey {
        #[command(subcommand)]
        cmd: journey::JourneyCmd,
    },
    /// Personal-data requests (PIPL): export a customer's data, erase a customer, list requests.
    Privacy {
        #[command(subcommand)]
        cmd: privacy::PrivacyCmd,
    },
    /// Campaigns from segments: suggest, create, launch, pause/resume/complete, results.
    Campaign {
        #[command(subcommand)]
        cmd: campaign::CampaignCmd,
    },
    /// Store-level and switchback experiments; validation of the A/B engine.
    Experiment {
        #[command(subcommand)]
        cmd: experiment::ExperimentCmd,
    },
    /// Smart customer service: diagnose a ticket, score the diagnosis against the truth.
    Service {
        #[command(subcommand)]
        cmd: service::ServiceCmd,
    },
    /// The audit trail, newest first.
    Audit(audit::AuditArgs),
    /// Simulator: let time pass after the cut-off — write the next days' orders into both
    /// sources, with launched campaigns' effects (coupon redemptions at the POS and online), and
    /// record each member's causal truth. Then run `c360 etl` to load them.
    Advance(advance::AdvanceArgs),
    /// Print the OpenAPI document of the REST API (what `web/openapi.json` holds; the
    /// dashboard's TypeScript types are generated from it).
    Openapi,
    /// The configuration: `show` prints every setting's effective value and where it came from.
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
}

/// What `config show` needs beyond the settings themselves.
pub struct Origin {
    pub matches: clap::ArgMatches,
    pub file: Option<std::path::PathBuf>,
    pub from_file: std::collections::BTreeSet<String>,
}

pub async fn run(cli: Cli, origin: Origin) -> Result<()> {
    let s = &cli.settings;
    match cli.cmd {
        Cmd::Sim(a) => sim::run(s, a).await,
        Cmd::Etl => etl::run(s).await,
        Cmd::Sources { cmd } => sources::run(s, cmd).await,
        Cmd::Import(a) => import::run(s, a).await,
        Cmd::Sql(a) => sql::run(s, a).await,
        Cmd::Quality(a) => quality::run(s, a).await,
        Cmd::Identity { cmd } => identity::run(s, cmd).await,
        Cmd::Sentiment { cmd } => sentiment::run(s, cmd).await,
        Cmd::Analyze { cmd } => analyze::run(s, cmd).await,
        Cmd::Demo(a) => demo::run(s, a).await,
        Cmd::Serve => serve::run(s, s.warehouse.clone(), s.metastore_url()).await,
        Cmd::Apikey { cmd } => apikey::run(s, cmd).await,
        Cmd::Audience { cmd } => audience::run(s, cmd).await,
        Cmd::Journey { cmd } => journey::run(s, cmd).await,
        Cmd::Privacy { cmd } => privacy::run(s, cmd).await,
        Cmd::Campaign { cmd } => campaign::run(s, cmd).await,
        Cmd::Experiment { cmd } => experiment::run(s, cmd).await,
        Cmd::Service { cmd } => service::run(s, cmd).await,
        Cmd::Audit(a) => audit::run(s, a).await,
        Cmd::Advance(a) => advance::run(s, a).await,
        Cmd::Config { cmd } => config::run(s, cmd, &origin),
        Cmd::Openapi => {
            print!("{}", c360_server::openapi::document());
            Ok(())
        }
    }
}

/// The query session on the warehouse's current snapshot.
pub(crate) async fn session(s: &Settings) -> Result<c360_warehouse::Session> {
    use anyhow::Context;
    c360_etl::session(&s.warehouse)
        .await
        .with_context(|| format!("opening the warehouse {}", s.warehouse.display()))
}

/// The metastore (migrated on open).
pub(crate) async fn metastore(s: &Settings) -> Result<c360_metastore::Metastore> {
    Ok(c360_metastore::Metastore::open(&s.metastore_url()).await?)
}

/// The warehouse session and the metastore.
pub(crate) async fn open(
    s: &Settings,
) -> Result<(c360_warehouse::Session, c360_metastore::Metastore)> {
    Ok((session(s).await?, metastore(s).await?))
}

pub(crate) fn pretty(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The server's errors as the CLI shows them.
pub(crate) fn api_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Records a CLI action in the audit trail (the CLI acts with the metastore's full rights, as
/// an admin), refused ones too, then hands back the action's result.
pub(crate) async fn audited<T>(
    m: &c360_metastore::Metastore,
    who: &str,
    action: &str,
    target: &str,
    mut detail: serde_json::Value,
    r: Result<T, impl std::fmt::Display>,
) -> Result<T> {
    detail["via"] = serde_json::json!("cli");
    let outcome = if r.is_ok() { "ok" } else { "rejected" };
    c360_core::audit::record(m, who, "admin", action, target, outcome, &detail)
        .await
        .map_err(api_err)?;
    r.map_err(api_err)
}
