//! Subcommands of `c360`. Every flag can also be set by a `C360_*` environment variable.

use std::path::PathBuf;

use anyhow::{Context, Result};
use c360_etl::EtlConfig;
use c360_sim::SimConfig;
use c360_warehouse::{format_batches, Session, Warehouse};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "c360",
    version,
    about = "c360 — customer profiles (客户画像) for a hot dog chain",
    long_about = "c360 merges the store POS (cyrg2025) and the WeChat mini-program (cyrgweixin) into the \
analytics warehouse hotdog2030 and builds one profile per customer.\n\n\
Start with `c360 demo`: it simulates both source systems, runs the ETL and prints a summary. \
Everything lives under ./data by default; nothing needs to be installed.",
    after_help = "Examples:\n  c360 demo\n  c360 sim --orders 1000000\n  c360 etl\n  c360 sql \"SELECT tier, COUNT(*) FROM customer_segmentation GROUP BY tier\"\n  c360 etl --pos mysql://root@127.0.0.1:3306/cyrg2025 --wx postgres://postgres@127.0.0.1/cyrgweixin"
)]
pub struct Cli {
    /// Log progress of each step (set C360_LOG=debug for more).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Hide progress bars.
    #[arg(long, global = true, env = "C360_QUIET")]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Simulate both source systems (and the ground truth) into databases.
    Sim(SimArgs),
    /// Run the ten-step ETL from the sources into the hotdog2030 warehouse (incremental).
    Etl(EtlArgs),
    /// Run SQL on the warehouse (tables, and the views orders, v_customer_360, ...).
    Sql {
        /// The query, e.g. "SELECT * FROM v_customer_360 LIMIT 5".
        query: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Print `TIMING_MS <ms>` (planning + execution, excluding output) to stderr.
        #[arg(long)]
        timing: bool,
    },
    /// Print the latest data-quality report and quarantined rows.
    Quality {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        /// Also list up to this many quarantined rows.
        #[arg(long, default_value_t = 10)]
        rows: usize,
    },
    /// Identity resolution: measure it against the simulator's truth, or undo a merge.
    Identity {
        #[command(subcommand)]
        cmd: IdentityCmd,
    },
    /// Customer analytics on the warehouse: lifetime value models and their validation.
    Analyze {
        #[command(subcommand)]
        cmd: AnalyzeCmd,
    },
    /// Simulate, run the ETL and print a summary — the whole pipeline on the embedded default.
    Demo {
        /// Source orders to simulate.
        #[arg(long, default_value_t = 50_000)]
        orders: u64,
        #[arg(long, default_value_t = 2030)]
        seed: u64,
        /// Directory for the source databases, truth and warehouse.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Stop after the summary instead of serving the dashboard.
        #[arg(long, env = "C360_NO_SERVE")]
        no_serve: bool,
        /// Where to serve the API and dashboard afterwards.
        #[arg(long, env = "C360_ADDR", default_value = "127.0.0.1:8360")]
        addr: String,
    },
    /// Serve the REST API, WebSocket push and the web dashboard over the warehouse.
    Serve(ServeArgs),
    /// API keys: create (printed once), list, revoke.
    Apikey {
        #[command(subcommand)]
        cmd: ApikeyCmd,
    },
    /// Campaigns from segments: suggest, create, launch, pause/resume/complete, results.
    Campaign {
        #[command(subcommand)]
        cmd: crate::act::CampaignCmd,
    },
    /// Store-level and switchback experiments; validation of the A/B engine.
    Experiment {
        #[command(subcommand)]
        cmd: crate::act::ExperimentCmd,
    },
    /// Smart customer service: score the ticket diagnosis against the simulator's truth.
    Service {
        #[command(subcommand)]
        cmd: crate::act::ServiceCmd,
    },
    /// The audit trail, newest first.
    Audit {
        #[command(flatten)]
        at: crate::act::Where,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only this action (e.g. campaign.launch).
        #[arg(long)]
        action: Option<String>,
    },
    /// Simulator: let time pass after the cut-off — write the next days' orders into both
    /// sources, with launched campaigns' effects (coupon redemptions at the POS and online), and
    /// record each member's causal truth. Then run `c360 etl` to load them.
    Advance(AdvanceArgs),
}

#[derive(Args, Debug)]
pub struct AdvanceArgs {
    #[arg(long, env = "C360_POS", default_value = "data/cyrg2025.db")]
    pub pos: String,
    #[arg(long, env = "C360_WX", default_value = "data/cyrgweixin.db")]
    pub wx: String,
    #[arg(long, env = "C360_TRUTH", default_value = "data/truth.db")]
    pub truth: String,
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
    #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
    pub warehouse: PathBuf,
    #[arg(long, env = "C360_METASTORE")]
    pub metastore: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "C360_ADDR", default_value = "127.0.0.1:8360")]
    pub addr: String,
    #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
    pub warehouse: PathBuf,
    /// Metastore URL (default: SQLite in the warehouse directory).
    #[arg(long, env = "C360_METASTORE")]
    pub metastore: Option<String>,
    /// Seconds between checks for a new warehouse snapshot (ETL runs elsewhere).
    #[arg(long, env = "C360_POLL_SECS", default_value_t = 2.0)]
    pub poll_secs: f64,
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCmd {
    /// Create a key and print it (only its hash is kept).
    Create {
        /// A name to recognise (and revoke) the key by.
        #[arg(long)]
        name: String,
        /// admin, analyst or store_manager.
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Store ids a store_manager may see, comma-separated.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<i64>,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
    /// List key names and roles.
    List {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
    /// Revoke every key with this name.
    Revoke {
        #[arg(long)]
        name: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AnalyzeCmd {
    /// BG/NBD + Gamma-Gamma lifetime value: fitted parameters, and with --truth a holdout check
    /// against what the simulated people really did after the cut-off.
    Clv {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        /// Ground truth database of the simulation (enables parameter recovery and holdout scores).
        #[arg(long)]
        truth: Option<String>,
        /// Write the per-customer summary (x, t_x, T in days, zbar in yuan) as CSV.
        #[arg(long)]
        export_summary: Option<PathBuf>,
        /// Fit from a summary CSV (columns x,t_x,T[,zbar]) instead of the warehouse; prints
        /// parameters and the 12-month CLV total.
        #[arg(long)]
        summary_csv: Option<PathBuf>,
        /// Also fit Pareto/NBD.
        #[arg(long)]
        pareto: bool,
    },
    /// Churn model (gradient-boosted trees, time-split, calibrated) scored on the holdout
    /// against the ground truth, beside BG/NBD's P(alive).
    Churn {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_TRUTH", default_value = "data/truth.db")]
        truth: String,
    },
    /// Per-customer holiday effect (v_customer_holiday): the customers who buy most above their
    /// usual rate on holidays; with --truth, scored against each person's true holiday multiplier.
    Holiday {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_TRUTH")]
        truth: Option<String>,
        /// Score only customers with at least this many orders.
        #[arg(long, default_value_t = 10)]
        min_orders: i64,
    },
    /// Re-score one customer as if a paid order arrived now: RFM, tier, lifecycle, P(alive),
    /// expected purchases and CLV from the stored models, without a refit.
    ScoreOrder {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long)]
        customer: i64,
        /// Order value in fen.
        #[arg(long)]
        amount_fen: i64,
        /// Order date (default: the day after the last order in the warehouse).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Review sentiment: accuracy and AUC on the corpus's held-out reviews and the chain's
    /// odd-id reviews, aspect polarity and per-store trends against the simulator's truth.
    Sentiment {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_TRUTH", default_value = "data/truth.db")]
        truth: String,
    },
    /// The customer network: most influential customers and communities of the last refresh;
    /// with --truth, communities and influence against the simulator's circles and sociability.
    /// --export writes edges.csv and ours.csv for bench/network_check.py (networkx).
    Network {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_TRUTH")]
        truth: Option<String>,
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Recommendations on a time split (last 90 days held out): P@10 and NDCG@10 for all, repeat
    /// and new items against popularity; --export writes the split for bench/recs_als.py.
    Recs {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// k-means (k-means++, Lloyd, one seeded start) on a headerless CSV of numbers; prints the
    /// inertia (the model benchmark's entry point).
    Kmeans {
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        k: usize,
    },
    /// The k-means segments of the last refresh with their explanations, or DBSCAN with
    /// --eps/--min-pts on the same standardised features.
    Segments {
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        /// DBSCAN radius on standardised features.
        #[arg(long)]
        eps: Option<f64>,
        #[arg(long, default_value_t = 20)]
        min_pts: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum IdentityCmd {
    /// Pairwise precision and recall of the resolved customers against the ground truth.
    Eval {
        #[arg(long, env = "C360_TRUTH", default_value = "data/truth.db")]
        truth: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
    /// Cut a source id (e.g. M:123 or U:45) loose from its customer; the next `etl` applies it.
    Unmerge {
        source_key: String,
        #[arg(long, default_value = "manual unmerge")]
        reason: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
    /// Undo an unmerge.
    Remerge {
        source_key: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
    /// Show the merge journal of one source id or customer.
    Journal {
        /// A source key (M:123) or a customer id.
        of: String,
        #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
        warehouse: PathBuf,
        #[arg(long, env = "C360_METASTORE")]
        metastore: Option<String>,
    },
}

#[derive(Args, Debug)]
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
    /// POS database: a SQLite path, mysql://… or postgres://…
    #[arg(long, env = "C360_POS", default_value = "data/cyrg2025.db")]
    pub pos: String,
    /// Mini-program database URL or SQLite path.
    #[arg(long, env = "C360_WX", default_value = "data/cyrgweixin.db")]
    pub wx: String,
    /// Ground truth database (kept apart from the sources).
    #[arg(long, env = "C360_TRUTH", default_value = "data/truth.db")]
    pub truth: String,
    /// Scale of dirty rows (0 = clean sources, 1 = realistic).
    #[arg(long, default_value_t = 1.0)]
    pub dirt: f64,
}

#[derive(Args, Debug)]
pub struct EtlArgs {
    #[arg(long, env = "C360_POS", default_value = "data/cyrg2025.db")]
    pub pos: String,
    #[arg(long, env = "C360_WX", default_value = "data/cyrgweixin.db")]
    pub wx: String,
    #[arg(long, env = "C360_WAREHOUSE", default_value = "data/hotdog2030")]
    pub warehouse: PathBuf,
    /// Metastore URL (default: SQLite inside the warehouse directory).
    #[arg(long, env = "C360_METASTORE")]
    pub metastore: Option<String>,
    /// Salt for hashing phones and unionids.
    #[arg(
        long,
        env = "C360_SALT",
        default_value = "c360-default-salt",
        hide_default_value = true
    )]
    pub salt: String,
    /// Compare each customer's RFM with their home city's customers, home store's, or the
    /// whole chain's: city | store | national.
    #[arg(long, env = "C360_RFM_GROUP", default_value = "city")]
    pub rfm_group: String,
}

fn metastore_of(warehouse: &std::path::Path, m: Option<String>) -> String {
    EtlConfig {
        warehouse: warehouse.to_path_buf(),
        metastore_url: m,
        ..Default::default()
    }
    .metastore()
}

pub async fn run(cli: Cli) -> Result<()> {
    let progress = !cli.quiet;
    match cli.cmd {
        Cmd::Sim(a) => {
            let cfg = SimConfig {
                seed: a.seed,
                orders: a.orders,
                stores: a.stores,
                start: a.start,
                cutoff: a.cutoff,
                pos_url: a.pos,
                wx_url: a.wx,
                truth_url: a.truth,
                dirt: a.dirt,
                progress,
                ..Default::default()
            };
            let s = c360_sim::simulate(&cfg)
                .await
                .context("simulation failed")?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Cmd::Etl(a) => {
            let cfg = EtlConfig {
                pos_url: a.pos,
                wx_url: a.wx,
                warehouse: a.warehouse,
                metastore_url: a.metastore,
                salt: c360_model::Secret::new(a.salt),
                rfm_group: c360_etl::profile::RfmGroup::parse(&a.rfm_group).with_context(|| {
                    format!(
                        "--rfm-group must be city, store or national, not '{}'",
                        a.rfm_group
                    )
                })?,
                progress,
                ..Default::default()
            };
            let r = c360_etl::run(&cfg).await.context("etl failed")?;
            print_etl(&r);
        }
        Cmd::Sql {
            query,
            warehouse,
            json,
            timing,
        } => {
            let t0 = std::time::Instant::now();
            let wh = Warehouse::open(&warehouse)?;
            let s = Session::open(&wh).await?;
            let b = s.query(&query).await?;
            if timing {
                eprintln!("TIMING_MS {}", t0.elapsed().as_millis());
            }
            if json {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(std::io::stdout());
                for x in &b {
                    w.write(x)?;
                }
                w.finish()?;
            } else {
                println!("{}", format_batches(&b));
            }
        }
        Cmd::Quality { warehouse, rows } => {
            let wh = Warehouse::open(&warehouse)?;
            let s = Session::open(&wh).await?;
            println!("{}", format_batches(&s.query("SELECT table_name, \"check\", ROUND(value, 4) AS value, detail FROM dq_report").await?));
            let q = format!(
                "SELECT source_table, row_id, field, reason FROM quarantine ORDER BY run_id DESC, source_table, row_id LIMIT {rows}"
            );
            println!("{}", format_batches(&s.query(&q).await?));
            println!(
                "{}",
                format_batches(&s.query("SELECT source_table, field, COUNT(*) AS rows FROM quarantine GROUP BY source_table, field ORDER BY rows DESC").await?)
            );
        }
        Cmd::Identity { cmd } => match cmd {
            IdentityCmd::Eval {
                truth,
                warehouse,
                metastore,
            } => {
                let e = c360_etl::evaluate_identity(&metastore_of(&warehouse, metastore), &truth)
                    .await?;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            IdentityCmd::Unmerge {
                source_key,
                reason,
                warehouse,
                metastore,
            } => {
                c360_etl::identity::unmerge(
                    &metastore_of(&warehouse, metastore),
                    &source_key,
                    &reason,
                )
                .await?;
                println!("{source_key} will be split from its customer at the next `c360 etl`");
            }
            IdentityCmd::Remerge {
                source_key,
                warehouse,
                metastore,
            } => {
                c360_etl::identity::remerge(&metastore_of(&warehouse, metastore), &source_key)
                    .await?;
                println!("{source_key} may link again at the next `c360 etl`");
            }
            IdentityCmd::Journal {
                of,
                warehouse,
                metastore,
            } => {
                let db = c360_db::Db::connect(&metastore_of(&warehouse, metastore)).await?;
                let b = db.backend;
                let rows = c360_db::query(format!(
                    "SELECT seq, run_id, action, source_key, from_customer, to_customer, rule FROM identity_journal \
                     WHERE source_key = {} OR CAST(to_customer AS VARCHAR(20)) = {} OR CAST(from_customer AS VARCHAR(20)) = {} ORDER BY seq",
                    b.ph(1),
                    b.ph(2),
                    b.ph(3)
                ))
                .bind(of.clone())
                .bind(of.clone())
                .bind(of.clone())
                .fetch_all(&db.pool)
                .await?;
                for r in rows {
                    println!(
                        "#{} run {} {} {} {:?} -> {:?} ({})",
                        c360_db::get_i64(&r, "seq").unwrap_or(0),
                        c360_db::get_i64(&r, "run_id").unwrap_or(0),
                        c360_db::get_text(&r, "action").unwrap_or_default(),
                        c360_db::get_text(&r, "source_key").unwrap_or_default(),
                        c360_db::get_i64(&r, "from_customer"),
                        c360_db::get_i64(&r, "to_customer"),
                        c360_db::get_text(&r, "rule").unwrap_or_default(),
                    );
                }
            }
        },
        Cmd::Analyze { cmd } => match cmd {
            AnalyzeCmd::Clv {
                warehouse,
                truth,
                export_summary,
                summary_csv,
                pareto,
            } => analyze_clv(warehouse, truth, export_summary, summary_csv, pareto).await?,
            AnalyzeCmd::Churn { warehouse, truth } => {
                let e = c360_etl::evaluate::evaluate_churn(&warehouse, &truth).await?;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            AnalyzeCmd::Holiday {
                warehouse,
                truth,
                min_orders,
            } => {
                let sess = Session::open(&Warehouse::open(&warehouse)?).await?;
                let sql = format!(
                    "SELECT customer_id, holiday_orders, holiday_days, other_orders, other_days, \
                     ROUND(holiday_lift_raw, 2) AS lift_raw, ROUND(holiday_lift, 2) AS lift \
                     FROM v_customer_holiday WHERE holiday_orders + other_orders >= {min_orders} \
                     ORDER BY holiday_lift DESC, customer_id LIMIT 10"
                );
                println!("{}", format_batches(&sess.query(&sql).await?));
                if let Some(t) = truth {
                    let e =
                        c360_etl::evaluate::evaluate_holiday(&warehouse, &t, min_orders).await?;
                    println!("{}", serde_json::to_string_pretty(&e)?);
                }
            }
            AnalyzeCmd::Segments {
                warehouse,
                eps,
                min_pts,
            } => analyze_segments(warehouse, eps, min_pts).await?,
            AnalyzeCmd::Sentiment { warehouse, truth } => {
                let e = c360_etl::evaluate_dims::evaluate_sentiment(&warehouse, &truth).await?;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            AnalyzeCmd::Network {
                warehouse,
                truth,
                export,
            } => analyze_network(warehouse, truth, export).await?,
            AnalyzeCmd::Recs { warehouse, export } => {
                let e =
                    c360_etl::evaluate_dims::evaluate_recs(&warehouse, export.as_deref()).await?;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            AnalyzeCmd::Kmeans { csv, k } => {
                let text = std::fs::read_to_string(&csv)
                    .with_context(|| format!("reading {}", csv.display()))?;
                let mut data = Vec::new();
                let mut cols = 0;
                for (n, line) in text.lines().enumerate() {
                    let row: Vec<f64> = line
                        .split(',')
                        .map(|v| v.trim().parse::<f64>())
                        .collect::<std::result::Result<_, _>>()
                        .with_context(|| {
                            format!("{}: row {}: not a number", csv.display(), n + 1)
                        })?;
                    if cols == 0 {
                        cols = row.len();
                    } else if row.len() != cols {
                        anyhow::bail!(
                            "{}: row {}: {} fields, expected {cols}",
                            csv.display(),
                            n + 1,
                            row.len()
                        );
                    }
                    data.extend(row);
                }
                let x = c360_analytics::segment::Matrix::new(data.len() / cols.max(1), cols, data);
                let t0 = std::time::Instant::now();
                let m = c360_analytics::segment::kmeans(&x, k, 1, 300, 0);
                eprintln!("TIMING_MS {}", t0.elapsed().as_millis());
                println!("ANSWER {:.6e}", m.inertia);
                println!("iterations {}", m.iterations);
            }
            AnalyzeCmd::ScoreOrder {
                warehouse,
                customer,
                amount_fen,
                date,
            } => score_order(warehouse, customer, amount_fen, date).await?,
        },
        Cmd::Demo {
            orders,
            seed,
            dir,
            no_serve,
            addr,
        } => {
            demo(orders, seed, dir.clone(), progress).await?;
            if !no_serve {
                let wh = dir.join("hotdog2030");
                let meta = metastore_url(&wh, None);
                let db = c360_db::Db::connect(&meta).await?;
                let key = c360_server::auth::create_key(
                    &db,
                    "demo-admin",
                    c360_server::auth::Role::Admin,
                    &[],
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                db.close().await;
                println!("\nAdmin API key for this demo (shown once): {key}");
                serve(ServeArgs {
                    addr,
                    warehouse: wh,
                    metastore: None,
                    poll_secs: 2.0,
                })
                .await?;
            }
        }
        Cmd::Serve(a) => serve(a).await?,
        Cmd::Apikey { cmd } => apikey(cmd).await?,
        Cmd::Campaign { cmd } => crate::act::campaign_cmd(cmd).await?,
        Cmd::Experiment { cmd } => crate::act::experiment_cmd(cmd).await?,
        Cmd::Service { cmd } => crate::act::service_cmd(cmd).await?,
        Cmd::Audit { at, limit, action } => crate::act::audit_cmd(at, limit, action).await?,
        Cmd::Advance(a) => advance(a).await?,
    }
    Ok(())
}

pub(crate) fn metastore_url(warehouse: &std::path::Path, metastore: Option<String>) -> String {
    metastore.unwrap_or_else(|| {
        EtlConfig {
            warehouse: warehouse.to_path_buf(),
            ..Default::default()
        }
        .metastore()
    })
}

async fn serve(a: ServeArgs) -> Result<()> {
    let cfg = c360_server::ServeConfig {
        metastore: metastore_url(&a.warehouse, a.metastore),
        warehouse: a.warehouse,
        poll: std::time::Duration::from_secs_f64(a.poll_secs.max(0.1)),
        llm: c360_server::LlmConfig::from_env(),
    };
    let state = c360_server::AppState::open(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("starting the server: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&a.addr)
        .await
        .with_context(|| format!("binding {}", a.addr))?;
    let addr = listener.local_addr()?;
    println!("c360 serving on http://{addr}/  (API docs: http://{addr}/swagger-ui/)  Ctrl-C stops");
    c360_server::run(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

async fn advance(a: AdvanceArgs) -> Result<()> {
    let from = match a.from {
        Some(d) => d,
        None => {
            let t = c360_db::Db::connect(&a.truth).await?;
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
    let meta = c360_db::Db::connect(&metastore_url(&a.warehouse, a.metastore.clone())).await?;
    meta.exec_script(c360_server::campaign::DDL).await?;
    let treatments = crate::act::treatments(&meta, &a.campaign).await?;
    let cfg = c360_sim::world::WorldConfig {
        pos_url: a.pos,
        wx_url: a.wx,
        truth_url: a.truth,
        seed: a.seed,
        from,
        days: a.days,
    };
    let r = c360_sim::world::advance(&cfg, &treatments)
        .await
        .context("advancing the simulation")?;
    for id in &a.campaign {
        meta.exec(&format!(
            "UPDATE campaign_members SET status = 'sent' WHERE campaign_id = {id} AND status = 'planned'"
        ))
        .await?;
    }
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// Records an API-key change in the audit trail.
async fn cli_audit(
    db: &c360_db::Db,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<()> {
    db.exec_script(c360_server::audit::DDL).await?;
    let who = crate::act::actor(&None);
    crate::act::audited(db, &who, action, target, detail, Ok(())).await
}

async fn apikey(cmd: ApikeyCmd) -> Result<()> {
    use c360_server::auth;
    let err = |e: c360_server::error::ApiError| anyhow::anyhow!("{e}");
    match cmd {
        ApikeyCmd::Create {
            name,
            role,
            stores,
            warehouse,
            metastore,
        } => {
            let r = auth::Role::parse(&role)
                .with_context(|| format!("--role {role:?}: use admin, analyst or store_manager"))?;
            let db = c360_db::Db::connect(&metastore_url(&warehouse, metastore)).await?;
            let key = auth::create_key(&db, &name, r, &stores)
                .await
                .map_err(err)?;
            cli_audit(
                &db,
                "apikey.create",
                &name,
                serde_json::json!({"role": role, "stores": stores}),
            )
            .await?;
            println!("{key}");
        }
        ApikeyCmd::List {
            warehouse,
            metastore,
        } => {
            let db = c360_db::Db::connect(&metastore_url(&warehouse, metastore)).await?;
            for (name, role, stores, revoked) in auth::list_keys(&db).await.map_err(err)? {
                println!(
                    "{name}\t{role}\t{stores}\t{}",
                    if revoked { "revoked" } else { "active" }
                );
            }
        }
        ApikeyCmd::Revoke {
            name,
            warehouse,
            metastore,
        } => {
            let db = c360_db::Db::connect(&metastore_url(&warehouse, metastore)).await?;
            let n = auth::revoke_key(&db, &name).await.map_err(err)?;
            cli_audit(
                &db,
                "apikey.revoke",
                &name,
                serde_json::json!({"revoked": n}),
            )
            .await?;
            println!("revoked {n} key(s) named {name}");
        }
    }
    Ok(())
}

fn print_etl(r: &c360_etl::EtlReport) {
    println!(
        "ETL run {} -> warehouse version {}",
        r.run_id, r.manifest_version
    );
    println!(
        "{:>4}  {:<12} {:>10} {:>10} {:>11} {:>8}",
        "step", "name", "extracted", "loaded", "quarantined", "ms"
    );
    for s in &r.steps {
        println!(
            "{:>4}  {:<12} {:>10} {:>10} {:>11} {:>8}",
            s.step, s.name, s.extracted, s.loaded, s.quarantined, s.millis
        );
    }
    println!(
        "customers: {} (source ids merged away: {})",
        r.customers, r.merged_keys
    );
}

async fn demo(orders: u64, seed: u64, dir: PathBuf, progress: bool) -> Result<()> {
    let p = |f: &str| dir.join(f).display().to_string();
    println!("1/3 simulating {orders} orders into {} …", dir.display());
    let cfg = SimConfig {
        seed,
        orders,
        pos_url: p("cyrg2025.db"),
        wx_url: p("cyrgweixin.db"),
        truth_url: p("truth.db"),
        progress,
        ..Default::default()
    };
    let s = c360_sim::simulate(&cfg).await?;
    println!(
        "    persons {} | stores {} | members {} | mini-program users {} | POS orders {} | online orders {} | events {} | reviews {}",
        s.persons, s.stores, s.members, s.wx_users, s.pos_orders, s.wx_orders, s.events, s.reviews
    );
    let wh_dir = dir.join("hotdog2030");
    if wh_dir.exists() {
        std::fs::remove_dir_all(&wh_dir)
            .with_context(|| format!("clearing {}", wh_dir.display()))?;
    }
    println!("2/3 ETL into {} …", wh_dir.display());
    let ecfg = EtlConfig {
        pos_url: cfg.pos_url.clone(),
        wx_url: cfg.wx_url.clone(),
        warehouse: wh_dir.clone(),
        progress,
        ..Default::default()
    };
    let r = c360_etl::run(&ecfg).await?;
    print_etl(&r);
    let e = c360_etl::evaluate_identity(&ecfg.metastore(), &cfg.truth_url).await?;
    println!(
        "    identity vs ground truth: precision {:.4}, recall {:.4} ({} source ids -> {} customers; {} true persons)",
        e.precision, e.recall, e.nodes, e.customers, e.true_persons
    );
    println!("3/3 summary");
    let wh = Warehouse::open(&wh_dir)?;
    let sess = Session::open(&wh).await?;
    for (title, sql) in [
        ("Tiers", "SELECT tier, COUNT(*) AS customers, ROUND(AVG(monetary_fen) / 100.0, 1) AS avg_spend_yuan, ROUND(AVG(frequency), 2) AS avg_orders FROM customer_segmentation GROUP BY tier ORDER BY customers DESC"),
        ("RFM classes", "SELECT rfm_class, COUNT(*) AS customers FROM customer_segmentation GROUP BY rfm_class ORDER BY customers DESC"),
        ("Sales by city tier", "SELECT s.tier AS city_tier, COUNT(*) AS orders, ROUND(SUM(o.total_fen) / 100.0, 0) AS revenue_yuan FROM orders o JOIN stores s ON o.store_id = s.store_id WHERE o.status = 'paid' GROUP BY s.tier ORDER BY s.tier"),
        ("Dayparts", "SELECT daypart, COUNT(*) AS orders, ROUND(AVG(total_fen) / 100.0, 2) AS avg_ticket_yuan FROM orders WHERE status = 'paid' GROUP BY daypart ORDER BY orders DESC"),
        ("Top customers (v_customer_360)", "SELECT customer_id, phone_masked, order_count, total_spend_fen, wx_orders, rfm_class, tier FROM v_customer_360 ORDER BY total_spend_fen DESC LIMIT 5"),
        ("Data quality (excerpt)", "SELECT table_name, \"check\", ROUND(value, 4) AS value FROM dq_report WHERE \"check\" IN ('ri_store', 'ri_product', 'duplicate_keys', 'completeness_customer', 'validity_amounts') ORDER BY table_name"),
    ] {
        println!("\n{title}\n{}", format_batches(&sess.query(sql).await?));
    }
    println!(
        "\nTry: c360 sql \"SELECT * FROM v_customer_360 LIMIT 5\"    c360 quality    c360 --help"
    );
    Ok(())
}

async fn analyze_clv(
    warehouse: PathBuf,
    truth: Option<String>,
    export_summary: Option<PathBuf>,
    summary_csv: Option<PathBuf>,
    pareto: bool,
) -> Result<()> {
    use c360_etl::refresh::{customer_summaries, fit_models, predict, CustomerSummary};
    if let Some(csv) = summary_csv {
        let text =
            std::fs::read_to_string(&csv).with_context(|| format!("reading {}", csv.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(h));
        let (ix, itx, it) = (
            col(&["x", "frequency"]).context("summary CSV needs an x (or frequency) column")?,
            col(&["t_x", "recency"]).context("summary CSV needs a t_x (or recency) column")?,
            col(&["T"]).context("summary CSV needs a T column")?,
        );
        let im = col(&["zbar", "monetary_value"]);
        let mut rows = Vec::new();
        for (n, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize, name: &str| -> Result<f64> {
                f.get(i)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .with_context(|| {
                        format!(
                            "{}: row {} field {name}: not a number",
                            csv.display(),
                            n + 2
                        )
                    })
            };
            rows.push(CustomerSummary {
                customer_id: n as i64,
                s: c360_analytics::clv::Summary {
                    x: num(ix, "x")?,
                    t_x: num(itx, "t_x")?,
                    t: num(it, "T")?,
                },
                mean_value_fen: match im {
                    Some(i) => num(i, "zbar")? * 100.0,
                    None => 0.0,
                },
            });
        }
        let t0 = std::time::Instant::now();
        let m = fit_models(&rows, 0, false)?;
        let total: f64 = {
            use rayon::prelude::*;
            rows.par_iter()
                .map(|r| predict(&m, &r.s, r.mean_value_fen).clv_fen / 100.0)
                .sum()
        };
        let ms = t0.elapsed().as_millis();
        let pn = if pareto {
            Some(c360_analytics::clv::ParetoNbd::fit(
                &rows.iter().map(|r| r.s).collect::<Vec<_>>(),
            )?)
        } else {
            None
        };
        println!(
            "{}",
            serde_json::json!({"bgnbd": m.bgnbd, "gamma_gamma": m.gamma_gamma, "pareto_nbd": pn, "clv_total": total})
        );
        eprintln!("TIMING_MS {ms}");
        println!("ANSWER {total:.6}");
        return Ok(());
    }
    let wh = Warehouse::open(&warehouse)?;
    let sess = Session::open(&wh).await?;
    let (rows, end_day) = customer_summaries(&sess).await?;
    if let Some(path) = export_summary {
        let mut out = String::from("x,t_x,T,zbar\n");
        for r in &rows {
            out.push_str(&format!(
                "{},{},{},{}\n",
                r.s.x,
                r.s.t_x,
                r.s.t,
                r.mean_value_fen / 100.0
            ));
        }
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} customers to {}", rows.len(), path.display());
    }
    match truth {
        Some(t) => {
            let e = c360_etl::evaluate::evaluate_clv(&warehouse, &t).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        None => {
            let m = fit_models(&rows, end_day, pareto)?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
    }
    Ok(())
}

async fn analyze_segments(warehouse: PathBuf, eps: Option<f64>, min_pts: usize) -> Result<()> {
    use c360_analytics::segment::{dbscan, explain, standardize};
    use c360_etl::profile;
    let wh = Warehouse::open(&warehouse)?;
    let sess = Session::open(&wh).await?;
    match eps {
        None => {
            let notes = &sess.manifest.notes;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    notes.get("segments").unwrap_or(&serde_json::Value::Null)
                )?
            );
            println!(
                "{}",
                format_batches(
                    &sess
                        .query(
                            "SELECT cluster, COUNT(*) AS customers, ROUND(AVG(frequency), 2) AS avg_orders, \
                             ROUND(AVG(monetary_fen) / 100.0, 1) AS avg_spend_yuan, ROUND(AVG(recency_days), 1) AS avg_recency_days \
                             FROM customer_segmentation GROUP BY cluster ORDER BY cluster"
                        )
                        .await?
                )
            );
        }
        Some(eps) => {
            let (_, end_day) = c360_etl::refresh::customer_summaries(&sess).await?;
            let feats = profile::features(&sess, end_day).await?;
            let (z, _, _) = standardize(&profile::segment_matrix(&feats));
            let lab = dbscan(&z, eps, min_pts, 20_000, 2030);
            let k = lab.iter().flatten().max().map(|m| m + 1).unwrap_or(0);
            let noise = lab.iter().filter(|l| l.is_none()).count();
            println!(
                "DBSCAN eps={eps} min_pts={min_pts}: {k} clusters, {noise} noise points of {}",
                lab.len()
            );
            for (i, d) in explain(&z, &lab, &profile::SEGMENT_FEATURES, k)
                .iter()
                .enumerate()
            {
                println!("  cluster {i}: {d}");
            }
        }
    }
    Ok(())
}

async fn score_order(
    warehouse: PathBuf,
    customer: i64,
    amount_fen: i64,
    date: Option<NaiveDate>,
) -> Result<()> {
    use c360_etl::profile;
    let wh = Warehouse::open(&warehouse)?;
    let sess = Session::open(&wh).await?;
    let stored = profile::StoredModels::from_notes(&sess.manifest.notes)
        .context("no RFM model in the warehouse: run `c360 etl` first")?;
    let before = profile::live_profile(&sess, customer)
        .await?
        .with_context(|| format!("customer {customer} has no paid orders"))?;
    let day = match date {
        Some(d) => (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days(),
        None => before.as_of,
    };
    let t0 = std::time::Instant::now();
    let after = profile::apply_order(&before, day, amount_fen as f64);
    let score = stored.score(&after);
    let micros = t0.elapsed().as_secs_f64() * 1e6;
    let old = stored.score(&before);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "customer_id": customer,
            "before": {"features": before.features, "summary": before.summary, "score": old},
            "after": {"features": after.features, "summary": after.summary, "score": score},
            "rescore_micros": micros,
        }))?
    );
    Ok(())
}

async fn analyze_network(
    warehouse: PathBuf,
    truth: Option<String>,
    export: Option<PathBuf>,
) -> Result<()> {
    let sess = Session::open(&Warehouse::open(&warehouse)?).await?;
    println!(
        "{}",
        format_batches(
            &sess
                .query(
                    "SELECT customer_id, influence_rank, ROUND(pagerank, 6) AS pagerank, community, \
                     community_size, ties_out, ties_in, shares_sent, cascade_reach, seed_rank \
                     FROM customer_network ORDER BY influence_rank LIMIT 10"
                )
                .await?
        )
    );
    if let Some(dir) = export {
        // The same graph the refresh builds, and our answers on it, for networkx to check.
        use std::io::Write;
        let net = c360_etl::enrich::network(&sess).await?;
        std::fs::create_dir_all(&dir)?;
        for (name, g) in [("edges.csv", &net.graph), ("ties.csv", &net.ties)] {
            let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
            writeln!(f, "source,target,weight")?;
            for (u, o) in g.out.iter().enumerate() {
                for (v, w) in o {
                    writeln!(f, "{u},{v},{w}")?;
                }
            }
        }
        let g = &net.graph;
        let pr = c360_analytics::graph::pagerank(
            &g.reversed(),
            c360_etl::enrich::PAGERANK_ALPHA,
            1e-12,
            1000,
        );
        let comm = c360_analytics::graph::louvain(&net.ties, 1.0, 1e-7, 42);
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("ours.csv"))?);
        writeln!(f, "node,pagerank_reversed,community")?;
        for u in 0..g.n {
            writeln!(f, "{u},{},{}", pr[u], comm[u])?;
        }
        println!(
            "wrote {}/edges.csv, ties.csv and ours.csv ({} nodes)",
            dir.display(),
            g.n
        );
    }
    if let Some(t) = truth {
        let e = c360_etl::evaluate_dims::evaluate_network(&warehouse, &t).await?;
        println!("{}", serde_json::to_string_pretty(&e)?);
    }
    Ok(())
}
