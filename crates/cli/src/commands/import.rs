//! `c360 import ENTITY=FILE …`: loads CSV, JSON-lines or Parquet files into the warehouse with
//! the contract's mapping language, for chains without a database connection. Each named entity
//! is read from its file (the mapping, codes, units and time format come from the entity's
//! `[entities.NAME]` in the contract in effect; unmapped fields are read from columns of their
//! own names). Rows are keyed (by their id, or by their content where the file has none) and
//! merged by key, so importing a file again loads nothing twice; bad rows are quarantined with
//! the file, line, field and reason; then the same refresh as `c360 etl` runs.

use anyhow::{bail, Context, Result};
use c360_etl::contract::{Contract, EntityDef, SourceDef};
use clap::Args;

use crate::config::Settings;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// ENTITY=FILE pairs, e.g. `orders=exports/orders.csv order_items=exports/items.csv`
    /// (a file may be a glob such as `exports/orders-*.csv`). `c360 sources fields` lists the
    /// entities and their fields.
    #[arg(required = true, value_name = "ENTITY=FILE")]
    pub files: Vec<String>,
    /// The files' format when their extension does not say (csv | jsonl | parquet).
    #[arg(long)]
    pub format: Option<String>,
}

/// The contract for this import: the one in effect (its mappings), each named entity pointed at
/// its file under a file source of its own.
pub fn contract_for(base: Option<Contract>, a: &ImportArgs) -> Result<(Contract, Vec<String>)> {
    let mut c = base.unwrap_or_default();
    let format = match a.format.as_deref() {
        None => None,
        Some(f) => Some(
            toml::Value::String(f.to_string())
                .try_into()
                .with_context(|| format!("--format {f:?}: csv, jsonl or parquet"))?,
        ),
    };
    let mut only = Vec::new();
    for pair in &a.files {
        let Some((entity, file)) = pair.split_once('=') else {
            bail!("{pair:?}: write ENTITY=FILE (e.g. orders=orders.csv)");
        };
        let entity = entity.trim().to_string();
        if c360_etl::contract::spec(&entity).is_none() {
            bail!("{entity:?} is not an entity c360 reads; `c360 sources fields` lists them");
        }
        let mut def: EntityDef = c.entities.get(&entity).cloned().unwrap_or_default();
        // Defaults the entity took from its database source carry over to its file.
        if let Some(src) = def.source.as_ref().and_then(|s| c.sources.get(s)) {
            def.time_zone = def.time_zone.or(src.time_zone.clone());
            def.time_format = def.time_format.or(src.time_format.clone());
            def.money = def.money.or(src.money);
        }
        let name = format!("import_{entity}");
        c.sources.insert(
            name.clone(),
            SourceDef {
                dir: Some(std::path::PathBuf::from(".")),
                ..Default::default()
            },
        );
        def.source = Some(name);
        def.file = Some(file.to_string());
        def.table = None;
        def.query = None;
        def.absent = false;
        // Files are read whole and merged by key.
        def.incremental = None;
        if format.is_some() {
            def.format = format;
        }
        c.entities.insert(entity.clone(), def);
        only.push(entity);
    }
    Ok((c, only))
}

async fn count(s: &Settings, table: &str) -> i64 {
    match super::session(s).await {
        Ok(sess) => sess
            .scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
            .await
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// The warehouse table an entity's rows land in (for the "new rows" count).
fn table_of(entity: &str) -> Option<&'static str> {
    Some(match entity {
        "orders" | "wx_orders" => "fact_orders",
        "order_items" | "wx_order_items" => "fact_order_items",
        "events" => "customer_behavior_tracks_raw",
        "reviews" => "customer_emotion_raw",
        "shares" => "customer_shares_raw",
        "group_orders" | "paid_by" => "customer_ties_raw",
        "tickets" => "service_tickets_raw",
        "stores" => "stores",
        "products" => "products",
        "cities" => "cities",
        _ => return None,
    })
}

pub async fn run(s: &Settings, a: ImportArgs) -> Result<()> {
    let (contract, only) = contract_for(crate::config::contract_of(s)?, &a)?;
    let mut cfg = super::etl::etl_config(s)?;
    cfg.contract = Some(contract);
    cfg.only = only.clone();
    let mut before = Vec::new();
    for e in &only {
        if let Some(t) = table_of(e) {
            before.push((e.clone(), t, count(s, t).await));
        }
    }
    let r = c360_etl::run(&cfg).await.context("import failed")?;
    super::etl::print_report(&r);
    println!();
    for (e, t, n0) in before {
        let n1 = count(s, t).await;
        println!("{e}: {} new row(s) in {t} ({n1} in all)", n1 - n0);
    }
    println!("quarantined rows: `c360 quality` lists them with file, line, field and reason");
    Ok(())
}
