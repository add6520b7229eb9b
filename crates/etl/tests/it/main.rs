//! ETL integration tests: SQLite sources, real MariaDB and PostgreSQL sources, reruns,
//! incremental loads, failures midway, quarantine and identity quality against ground truth.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod act;
mod audience;
mod clv;
mod contract;
mod dims;
mod journey;
mod menu;
mod privacy;
mod servers;
mod sqlite;

use std::path::{Path, PathBuf};

use c360_etl::{EtlConfig, EtlReport};
use c360_sim::SimConfig;
use c360_warehouse::{Session, Warehouse};

pub fn sim_cfg(dir: &Path, orders: u64, seed: u64) -> SimConfig {
    SimConfig {
        seed,
        orders,
        stores: 60,
        pos_url: dir.join("pos.db").display().to_string(),
        wx_url: dir.join("wx.db").display().to_string(),
        truth_url: dir.join("truth.db").display().to_string(),
        progress: false,
        ..Default::default()
    }
}

pub fn etl_cfg(sim: &SimConfig, wh: PathBuf) -> EtlConfig {
    EtlConfig {
        pos_url: sim.pos_url.clone(),
        wx_url: sim.wx_url.clone(),
        warehouse: wh,
        progress: false,
        ..Default::default()
    }
}

pub async fn run(cfg: &EtlConfig) -> EtlReport {
    c360_etl::run(cfg).await.expect("etl run")
}

pub async fn session(wh: &Path) -> Session {
    Session::open(&Warehouse::open(wh).unwrap()).await.unwrap()
}

pub async fn count(wh: &Path, sql: &str) -> i64 {
    session(wh).await.scalar_i64(sql).await.unwrap()
}

/// A fingerprint of the warehouse content that must not depend on how it was loaded.
pub async fn fingerprint(wh: &Path) -> Vec<i64> {
    let s = session(wh).await;
    let mut out = Vec::new();
    for q in [
        "SELECT COUNT(*) FROM fact_orders",
        "SELECT SUM(total_fen) FROM fact_orders",
        "SELECT COUNT(DISTINCT order_key) FROM fact_orders",
        "SELECT COUNT(*) FROM fact_order_items",
        "SELECT SUM(amount_fen) FROM fact_order_items",
        "SELECT COUNT(*) FROM customers",
        "SELECT COUNT(*) FROM orders WHERE customer_id IS NOT NULL",
        "SELECT COUNT(*) FROM customer_behavior_tracks_raw",
        "SELECT COUNT(*) FROM customer_emotion_raw",
        "SELECT COUNT(*) FROM customer_shares_raw",
        "SELECT COUNT(*) FROM customer_ties_raw",
        "SELECT COUNT(*) FROM review_sentiment",
        "SELECT SUM(events) FROM customer_sessions",
        "SELECT COUNT(*) FROM customer_segmentation",
        "SELECT SUM(monetary_fen) FROM customer_segmentation",
        // Scores break ties by customer id, and ids depend on load order: compare tie-free facts.
        "SELECT SUM(frequency * frequency) FROM customer_segmentation",
        "SELECT SUM(recency_days) FROM customer_segmentation",
    ] {
        out.push(s.scalar_i64(q).await.unwrap());
    }
    out
}
