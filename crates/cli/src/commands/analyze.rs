//! `c360 analyze`: the models of the last refresh, and their validation against the truth.

use std::path::PathBuf;

use anyhow::{Context, Result};
use c360_warehouse::{format_batches, Session, Warehouse};
use chrono::NaiveDate;
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum AnalyzeCmd {
    /// BG/NBD + Gamma-Gamma lifetime value: fitted parameters, and with --truth a holdout check
    /// against what the simulated people really did after the cut-off.
    Clv {
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
        /// Write each customer's predictions as the last refresh serves them (its stored
        /// BG/NBD and Gamma-Gamma, and its churn model's score), with Pareto/NBD fitted to the
        /// same summaries: source key, x, t_x, T, P(alive) and expected purchases in the next
        /// --horizon-days under both models, expected spend, P(churn within 90 days).
        #[arg(long)]
        export_predictions: Option<PathBuf>,
        /// The horizon of the exported expected purchases, in days.
        #[arg(long, default_value_t = 365.0)]
        horizon_days: f64,
    },
    /// Churn model (gradient-boosted trees, time-split, calibrated) scored on the holdout
    /// against the ground truth, beside BG/NBD's P(alive).
    Churn,
    /// Predicted next visit (each customer's BG/NBD median wait) against the truth's real next
    /// orders: mean absolute error in days beside a fixed 30-day rule and the chain's median
    /// gap, and the overdue score's AUC for a 90-day lapse beside days since the last order.
    NextVisit,
    /// Menu engineering: per item units, mix, price, unit cost, margin and its popularity ×
    /// margin quadrant, attach rate to the hot dog; what each launch took from the rest of the
    /// menu. For the chain or one store, over a range (default: all the data).
    Menu {
        #[arg(long)]
        from: Option<NaiveDate>,
        #[arg(long)]
        to: Option<NaiveDate>,
        #[arg(long)]
        store: Option<i64>,
    },
    /// Lookalike audiences against the truth: a quarter of a group the truth knows (next year's
    /// top spenders; breakfast lovers) as the seed, and the share of the hidden rest the
    /// expansion finds, beside the base rate and ranking by predicted CLV.
    Lookalike,
    /// Audience set algebra at chain scale: two random audiences over `--customers` ids as
    /// roaring bitmaps — intersection, union, difference and overlap counts, timed (median of 5) —
    /// and the same ids written as little-endian i64 files for bench/audiences.py.
    Bitmaps {
        #[arg(long, default_value_t = 10_000_000)]
        customers: u64,
        /// Directory for a.i64 and b.i64 (the peer's input).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Per-customer holiday effect (v_customer_holiday): the customers who buy most above their
    /// usual rate on holidays; with --truth, scored against each person's true holiday multiplier.
    Holiday {
        /// Score only customers with at least this many orders.
        #[arg(long, default_value_t = 10)]
        min_orders: i64,
    },
    /// Re-score one customer as if a paid order arrived now: RFM, tier, lifecycle, P(alive),
    /// expected purchases and CLV from the stored models, without a refit.
    ScoreOrder {
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
    Sentiment,
    /// The customer network: most influential customers and communities of the last refresh;
    /// with --truth, communities and influence against the simulator's circles and sociability.
    /// --export writes edges.csv and ours.csv for bench/network_check.py (networkx).
    Network {
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Recommendations on held-out orders (--holdout period: the last 90 days; last-order: each
    /// customer's last order): P@10 and NDCG@10 for all, repeat and new items, the product's
    /// tuned recommender against its defaults, buy-again and popularity; --export writes the
    /// split for bench/recs_als.py.
    Recs {
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long, value_parser = ["period", "last-order"], default_value = "period")]
        holdout: String,
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
        /// DBSCAN radius on standardised features.
        #[arg(long)]
        eps: Option<f64>,
        #[arg(long, default_value_t = 20)]
        min_pts: usize,
    },
}

pub async fn run(s: &Settings, cmd: AnalyzeCmd) -> Result<()> {
    let warehouse = s.warehouse.clone();
    match cmd {
        AnalyzeCmd::Clv {
            export_predictions: Some(path),
            horizon_days,
            ..
        } => export_predictions(&warehouse, &path, horizon_days).await?,
        AnalyzeCmd::Clv {
            export_summary,
            summary_csv,
            pareto,
            ..
        } => {
            analyze_clv(
                warehouse,
                s.truth.clone(),
                export_summary,
                summary_csv,
                pareto,
            )
            .await?
        }
        AnalyzeCmd::NextVisit => {
            let e = c360_eval::clv::evaluate_next_visit(&warehouse, &s.truth_or_default()).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        AnalyzeCmd::Menu { from, to, store } => {
            let sess = Session::open(&Warehouse::open(&warehouse)?).await?;
            let day = |sql: &str| {
                let sess = &sess;
                let sql = sql.to_string();
                async move { anyhow::Ok(c360_model::Day(sess.scalar_i64(&sql).await?).date()) }
            };
            let from = match from {
                Some(d) => d,
                None => day("SELECT CAST(FLOOR((to_unixtime(MIN(order_time)) + 28800) / 86400) AS BIGINT) FROM fact_orders").await?,
            };
            let to = match to {
                Some(d) => d,
                None => day("SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) FROM fact_orders").await?,
            };
            let stores = store.map(|s| vec![s]);
            let m = c360_core::menu::analyse(&sess, from, to, stores.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        AnalyzeCmd::Lookalike => {
            let e =
                c360_eval::audience::evaluate_lookalike(&warehouse, &s.truth_or_default()).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        AnalyzeCmd::Bitmaps { customers, export } => bitmaps(customers, export)?,
        AnalyzeCmd::Churn => {
            let e = c360_eval::clv::evaluate_churn(&warehouse, &s.truth_or_default()).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        AnalyzeCmd::Holiday { min_orders } => {
            let sess = Session::open(&Warehouse::open(&warehouse)?).await?;
            let sql =
                "SELECT customer_id, holiday_orders, holiday_days, other_orders, other_days, \
                     ROUND(holiday_lift_raw, 2) AS lift_raw, ROUND(holiday_lift, 2) AS lift \
                     FROM v_customer_holiday WHERE holiday_orders + other_orders >= $1 \
                     ORDER BY holiday_lift DESC, customer_id LIMIT 10";
            let min = c360_warehouse::query::ScalarValue::from(min_orders);
            println!(
                "{}",
                format_batches(&sess.query_with(sql, vec![min]).await?)
            );
            if let Some(t) = &s.truth {
                let e = c360_eval::clv::evaluate_holiday(&warehouse, t, min_orders).await?;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
        }
        AnalyzeCmd::Segments { eps, min_pts } => analyze_segments(warehouse, eps, min_pts).await?,
        AnalyzeCmd::Sentiment => {
            let e = c360_eval::dims::evaluate_sentiment(&warehouse, &s.truth_or_default()).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        AnalyzeCmd::Network { export } => {
            analyze_network(warehouse, s.truth.clone(), export).await?
        }
        AnalyzeCmd::Recs { export, holdout } => {
            let h = if holdout == "last-order" {
                c360_eval::dims::Holdout::LastOrder
            } else {
                c360_eval::dims::Holdout::Period
            };
            let e = c360_eval::dims::evaluate_recs(&warehouse, h, export.as_deref()).await?;
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
                    .with_context(|| format!("{}: row {}: not a number", csv.display(), n + 1))?;
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
            customer,
            amount_fen,
            date,
        } => score_order(warehouse, customer, amount_fen, date).await?,
    }
    Ok(())
}

async fn analyze_clv(
    warehouse: PathBuf,
    truth: Option<String>,
    export_summary: Option<PathBuf>,
    summary_csv: Option<PathBuf>,
    pareto: bool,
) -> Result<()> {
    use c360_core::clv::{customer_summaries, fit_models, CustomerSummary};
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
        // Rows parsed in parallel, kept in file order; a bad row fails the load, named by its row.
        use rayon::prelude::*;
        let lines: Vec<&str> = lines.collect();
        let rows: Vec<CustomerSummary> = lines
            .par_iter()
            .enumerate()
            .map(|(n, line)| -> Result<CustomerSummary> {
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
                Ok(CustomerSummary {
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
                })
            })
            .collect::<Result<_>>()?;
        let t0 = std::time::Instant::now();
        let m = fit_models(&rows, 0, false)?;
        let fit_ms = t0.elapsed().as_millis();
        // In row order, so the total is the same sum every run.
        let total: f64 = c360_core::clv::predict_many(&m, &rows)
            .iter()
            .map(|p| p.clv_fen / 100.0)
            .sum();
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
        eprintln!(
            "fit {fit_ms} ms, 12-month CLV of {} customers {} ms",
            rows.len(),
            ms - fit_ms
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
            let e = c360_eval::clv::evaluate_clv(&warehouse, &t).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        None => {
            let m = fit_models(&rows, end_day, pareto)?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
    }
    Ok(())
}

/// Each customer's served predictions at a chosen horizon (see `AnalyzeCmd::Clv`).
async fn export_predictions(
    warehouse: &std::path::Path,
    path: &std::path::Path,
    horizon: f64,
) -> Result<()> {
    use c360_core::clv::{customer_summaries, fit_models};
    use std::collections::HashMap;
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let stored = c360_core::profile::StoredModels::from_notes(&sess.manifest.notes)
        .and_then(|m| m.models)
        .context("the last refresh stored no lifetime value models (see its warning)")?;
    let (rows, end_day) = customer_summaries(&sess).await?;
    let pareto = fit_models(&rows, end_day, true)?
        .pareto_nbd
        .context("Pareto/NBD not fitted")?;
    let mut key: HashMap<i64, String> = HashMap::new();
    for b in sess
        .query("SELECT customer_id, MIN(source_key) AS k FROM customer_keys GROUP BY customer_id")
        .await?
    {
        let ids = c360_warehouse::arrow::compute::cast(
            b.column(0),
            &c360_warehouse::arrow::datatypes::DataType::Int64,
        )?;
        let ids = ids
            .as_any()
            .downcast_ref::<c360_warehouse::arrow::array::Int64Array>()
            .context("customer ids")?;
        let ks = c360_warehouse::manifest::str_col(&b, "k");
        for i in 0..b.num_rows() {
            key.insert(ids.value(i), ks.value(i).to_string());
        }
    }
    let mut churn: HashMap<i64, f64> = HashMap::new();
    for b in sess
        .query("SELECT customer_id, value FROM customer_predictions WHERE metric = 'p_churn_90d'")
        .await?
    {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<c360_warehouse::arrow::array::Int64Array>()
            .context("customer ids")?;
        let v = b
            .column(1)
            .as_any()
            .downcast_ref::<c360_warehouse::arrow::array::Float64Array>()
            .context("values")?;
        for i in 0..b.num_rows() {
            churn.insert(ids.value(i), v.value(i));
        }
    }
    let mut out = String::from("source_key,x,t_x,T,p_alive,expected_purchases,expected_purchases_pareto,p_alive_pareto,expected_spend,p_churn_90d\n");
    for r in &rows {
        let spend = stored.gamma_gamma.expected_spend(
            r.s.x,
            if r.s.x > 0.0 {
                r.mean_value_fen / 100.0
            } else {
                0.0
            },
        );
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            key.get(&r.customer_id).map_or("", String::as_str),
            r.s.x,
            r.s.t_x,
            r.s.t,
            stored.bgnbd.p_alive(&r.s),
            stored.bgnbd.expected_purchases(&r.s, horizon),
            pareto.expected_purchases(&r.s, horizon),
            pareto.p_alive(&r.s),
            spend,
            churn
                .get(&r.customer_id)
                .map_or(String::new(), |v| v.to_string()),
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{}",
        serde_json::json!({"bgnbd": stored.bgnbd, "gamma_gamma": stored.gamma_gamma, "pareto_nbd": pareto,
                           "customers": rows.len(), "horizon_days": horizon, "written": path.display().to_string()})
    );
    Ok(())
}

async fn analyze_segments(warehouse: PathBuf, eps: Option<f64>, min_pts: usize) -> Result<()> {
    use c360_analytics::segment::{dbscan, explain, standardize};
    use c360_core::profile;
    let wh = Warehouse::open(&warehouse)?;
    let sess = Session::open(&wh).await?;
    match eps {
        None => {
            let notes = &sess.manifest.notes;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    notes
                        .get(c360_core::notes::ClusterNote::KEY)
                        .unwrap_or(&serde_json::Value::Null)
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
            let (_, end_day) = c360_core::clv::customer_summaries(&sess).await?;
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
    use c360_core::profile;
    let wh = Warehouse::open(&warehouse)?;
    let sess = Session::open(&wh).await?;
    let stored = profile::StoredModels::from_notes(&sess.manifest.notes)
        .context("no RFM model in the warehouse: run `c360 etl` first")?;
    let before = profile::live_profile(&sess, customer)
        .await?
        .with_context(|| format!("customer {customer} has no paid orders"))?;
    let day = match date {
        Some(d) => c360_model::Day::of(d).0,
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
        let e = c360_eval::dims::evaluate_network(&warehouse, &t).await?;
        println!("{}", serde_json::to_string_pretty(&e)?);
    }
    Ok(())
}

/// Two audiences over `n` customer ids: A holds ids with a splitmix hash below 0.3 (30%, spread
/// evenly), B the ids of a contiguous 40% band plus every seventh id (clustered and sparse
/// parts), the shapes real audiences take (a tier; a region plus a behaviour).
fn bitmaps(n: u64, export: Option<PathBuf>) -> Result<()> {
    use c360_core::audience::RoaringTreemap;
    use std::time::Instant;
    let unit = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let a_ids: Vec<u64> = (1..=n).filter(|i| unit(*i) < 0.3).collect();
    let b_ids: Vec<u64> = (1..=n)
        .filter(|i| (*i > n / 5 && *i <= n * 3 / 5) || i % 7 == 0)
        .collect();
    let t = Instant::now();
    let a = RoaringTreemap::from_sorted_iter(a_ids.iter().copied()).context("sorted")?;
    let b = RoaringTreemap::from_sorted_iter(b_ids.iter().copied()).context("sorted")?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3 / 2.0;
    let time = |f: &dyn Fn() -> u64| {
        let mut v: Vec<(f64, u64)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let r = f();
                (t.elapsed().as_secs_f64() * 1e3, r)
            })
            .collect();
        v.sort_by(|x, y| x.0.total_cmp(&y.0));
        v[2]
    };
    let and = time(&|| (&a & &b).len());
    let or = time(&|| (&a | &b).len());
    let sub = time(&|| (&a - &b).len());
    let cnt = time(&|| a.intersection_len(&b));
    let mut bytes = Vec::new();
    a.serialize_into(&mut bytes)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "customers": n, "a": a.len(), "b": b.len(),
            "build_ms_per_audience": build_ms,
            "intersection": {"ms": and.0, "size": and.1},
            "union": {"ms": or.0, "size": or.1},
            "difference": {"ms": sub.0, "size": sub.1},
            "overlap_count": {"ms": cnt.0, "size": cnt.1},
            "a_bytes": bytes.len(), "a_bytes_as_i64": a.len() * 8,
        }))?
    );
    if let Some(dir) = export {
        std::fs::create_dir_all(&dir)?;
        for (name, ids) in [("a.i64", &a_ids), ("b.i64", &b_ids)] {
            let raw: Vec<u8> = ids.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect();
            std::fs::write(dir.join(name), raw)?;
        }
    }
    Ok(())
}
