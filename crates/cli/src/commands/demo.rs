//! `c360 demo`: simulate, run the ETL, check identity against the truth, print a summary, then
//! serve the dashboard with a fresh admin key.

use std::path::PathBuf;

use anyhow::{Context, Result};
use c360_warehouse::{format_batches, Session, Warehouse};

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Source orders to simulate.
    #[arg(long, default_value_t = 50_000)]
    pub orders: u64,
    #[arg(long, default_value_t = 2030)]
    pub seed: u64,
    /// Directory for the source databases, truth and warehouse.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
    /// Stop after the summary instead of serving the dashboard.
    #[arg(long, env = "C360_NO_SERVE")]
    pub no_serve: bool,
}

pub async fn run(s: &Settings, a: DemoArgs) -> Result<()> {
    simulate_and_load(a.orders, a.seed, a.dir.clone(), !s.quiet).await?;
    if a.no_serve {
        return Ok(());
    }
    let wh = a.dir.join("hotdog2030");
    let meta = crate::config::metastore_in(&wh, None);
    let db = c360_metastore::Metastore::open(&meta).await?;
    let key = c360_server::auth::create_key(&db, "demo-admin", c360_server::auth::Role::Admin, &[])
        .await
        .map_err(super::api_err)?;
    db.close().await;
    println!("\nAdmin API key for this demo (shown once): {key}");
    super::serve::run(s, wh, meta).await
}

async fn simulate_and_load(orders: u64, seed: u64, dir: PathBuf, progress: bool) -> Result<()> {
    let p = |f: &str| dir.join(f).display().to_string();
    println!("1/3 simulating {orders} orders into {} …", dir.display());
    let cfg = c360_sim::SimConfig {
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
    let ecfg = c360_etl::EtlConfig {
        pos_url: cfg.pos_url.clone(),
        wx_url: cfg.wx_url.clone(),
        warehouse: wh_dir.clone(),
        progress,
        ..Default::default()
    };
    let r = c360_etl::run(&ecfg).await?;
    super::etl::print_report(&r);
    let e = c360_eval::evaluate_identity(&ecfg.metastore(), &cfg.truth_url).await?;
    println!(
        "    identity vs ground truth: precision {:.4}, recall {:.4} ({} source ids -> {} customers; {} true persons)",
        e.precision, e.recall, e.nodes, e.customers, e.true_persons
    );
    let p = c360_eval::evaluate_payer_attribution(&wh_dir, &cfg.truth_url).await?;
    println!(
        "    anonymous till orders tied to a customer by their payment account: {} of {} ({:.1}%), precision {:.4}",
        p.attributed,
        p.anonymous_pos_orders,
        100.0 * p.attributed_share,
        p.precision
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
