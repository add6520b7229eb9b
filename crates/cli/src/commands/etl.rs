//! `c360 etl`: the ten-step ETL, incremental.

use anyhow::{Context, Result};

use crate::config::Settings;

pub fn etl_config(s: &Settings) -> Result<c360_etl::EtlConfig> {
    Ok(c360_etl::EtlConfig {
        pos_url: s.pos.clone(),
        wx_url: s.wx.clone(),
        contract: crate::config::contract_of(s)?,
        warehouse: s.warehouse.clone(),
        metastore_url: s.metastore.clone(),
        salt: s.salt(),
        rfm_group: c360_core::profile::RfmGroup::parse(&s.rfm_group).with_context(|| {
            format!(
                "--rfm-group must be city, store or national, not '{}'",
                s.rfm_group
            )
        })?,
        progress: !s.quiet,
        fail_at: std::env::var("C360_FAIL_AT").ok(),
        source_slice: match std::env::var("C360_SOURCE_SLICE") {
            Ok(v) => v.parse::<i64>().ok().filter(|n| *n > 0).with_context(|| {
                format!("C360_SOURCE_SLICE must be a positive number of keys, not {v:?}")
            })?,
            Err(_) => c360_etl::source::SLICE_KEYS,
        },
        quality_memory: match std::env::var("C360_QUALITY_MEMORY_MIB") {
            Ok(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (16..=1 << 20).contains(n))
                .map(|n| n << 20)
                .with_context(|| {
                    format!("C360_QUALITY_MEMORY_MIB must be 16..=1048576 MiB, not {v:?}")
                })?,
            Err(_) => c360_etl::QUALITY_MEMORY,
        },
        slice_customers: slice_customers()?,
        ..Default::default()
    })
}

/// Customers per slice of the refresh's features and of a serving index build
/// (`C360_SLICE_CUSTOMERS`, for measuring what a slice holds).
pub fn slice_customers() -> Result<usize> {
    Ok(match std::env::var("C360_SLICE_CUSTOMERS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| {
                format!("C360_SLICE_CUSTOMERS must be a positive number of customers, not {v:?}")
            })?,
        Err(_) => c360_core::slice::SLICE_CUSTOMERS,
    })
}

pub async fn run(s: &Settings) -> Result<()> {
    let r = c360_etl::run(&etl_config(s)?).await.context("etl failed")?;
    print_report(&r);
    Ok(())
}

pub fn print_report(r: &c360_etl::EtlReport) {
    println!(
        "ETL run {} -> warehouse version {}",
        r.run_id, r.manifest_version
    );
    println!(
        "{:>4}  {:<12} {:>10} {:>10} {:>11} {:>8} {:>8}",
        "step", "name", "extracted", "loaded", "quarantined", "ms", "peak_MiB"
    );
    for s in &r.steps {
        println!(
            "{:>4}  {:<12} {:>10} {:>10} {:>11} {:>8} {:>8}",
            s.step, s.name, s.extracted, s.loaded, s.quarantined, s.millis, s.peak_mib
        );
    }
    println!(
        "customers: {} (source ids merged away: {})",
        r.customers, r.merged_keys
    );
}
