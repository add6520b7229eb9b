//! `c360 sources check`: connects to every source of the contract in effect, checks each
//! entity's mapping against the live schema, and prints per entity its row count, three masked
//! sample rows as c360 reads them, and every value that cannot be read with its row and column.
//! `c360 sources fields`: the entities and canonical fields a contract maps.

use std::collections::BTreeMap;

use anyhow::Result;
use c360_etl::contract::{self, Cell, Kind, Plan};
use c360_etl::source::{Row, Sources};
use clap::{Args, Subcommand};

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum SourcesCmd {
    /// Check the contract against the live sources: schema, row counts, samples, bad values.
    /// Exits 1 when a mapping does not fit (a missing table or column, a source that cannot
    /// be reached), 2 when only values in rows cannot be read (those rows would be quarantined).
    Check(CheckArgs),
    /// List every entity and its canonical fields (the names a contract maps).
    Fields,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Only these entities (default: all the contract declares).
    #[arg(long, value_delimiter = ',')]
    pub entity: Vec<String>,
    /// Rows read per entity to look for values that cannot be read (0: all rows).
    #[arg(long, default_value_t = 100_000)]
    pub scan: u64,
    /// Errors shown per entity (all are counted).
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

/// What the check found, to decide the exit code.
#[derive(Default)]
struct Found {
    mapping: usize,
    values: u64,
}

pub async fn run(s: &Settings, cmd: SourcesCmd) -> Result<()> {
    match cmd {
        SourcesCmd::Fields => {
            fields();
            Ok(())
        }
        SourcesCmd::Check(a) => {
            let found = check(s, &a).await?;
            if found.mapping > 0 {
                eprintln!(
                    "sources check: {} mapping problem(s), {} unreadable value(s)",
                    found.mapping, found.values
                );
                std::process::exit(1);
            }
            if found.values > 0 {
                eprintln!(
                    "sources check: the mapping fits; {} value(s) cannot be read (those rows will be quarantined)",
                    found.values
                );
                std::process::exit(2);
            }
            println!("sources check: every mapping fits and every value read can be loaded");
            Ok(())
        }
    }
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Id => "id (integer, or text made into a stable id)".into(),
        Kind::Key => "person id (text)".into(),
        Kind::Int => "integer".into(),
        Kind::Float => "number".into(),
        Kind::Text => "text".into(),
        Kind::Time => "time (time_format, time_zone)".into(),
        Kind::Date => "date".into(),
        Kind::Money => "money (money = fen | yuan)".into(),
        Kind::Bool => "yes/no".into(),
        Kind::Code(c) => format!("code: {}", c.values().join(" | ")),
    }
}

fn fields() {
    for e in contract::ENTITIES.iter() {
        println!("[entities.{}]  # {}", e.name, e.about);
        for (i, f) in e.fields.iter().enumerate() {
            println!(
                "  {:<18} {:<9} {}{}",
                f.name,
                if f.required { "required" } else { "optional" },
                kind_name(f.kind),
                if i == e.key { "  (the row's key)" } else { "" }
            );
        }
        println!();
    }
}

/// A value as the check shows it: personal data masked, free text cut short.
fn shown(plan: &Plan, f: usize, c: &Cell) -> String {
    const PERSONAL: [&str; 6] = [
        "phone",
        "openid",
        "unionid",
        "card_no",
        "member_card_no",
        "member_id",
    ];
    let name = plan.fields[f].spec.name;
    let personal = PERSONAL.contains(&name) || (name == "name" && plan.spec.name == "members");
    let v = match c {
        Cell::Null => return "∅".into(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(x) => x.to_string(),
        Cell::Text(t) => t.clone(),
        Cell::Time(t) => c360_model::fmt_ts(*t),
        Cell::Date(d) => d.to_string(),
        Cell::Bad(e) => return format!("✗ {e}"),
    };
    if personal {
        c360_model::mask_str(&v)
    } else if matches!(name, "content" | "message") {
        let t = c360_model::pii::scrub(&v);
        let cut: String = t.chars().take(24).collect();
        if cut.len() < t.len() {
            format!("{cut}…")
        } else {
            cut
        }
    } else {
        v
    }
}

fn where_of(plan: &Plan, r: &Row) -> String {
    let key = match &r.cells[plan.spec.key] {
        Cell::Int(i) => format!("{} {i}", plan.spec.fields[plan.spec.key].name),
        Cell::Text(t) => format!(
            "{} {}",
            plan.spec.fields[plan.spec.key].name,
            c360_model::mask_str(t)
        ),
        _ => String::new(),
    };
    let at = match &r.file {
        Some(f) => format!("{f} line {}", r.line),
        None => format!("row {}", r.line),
    };
    if key.is_empty() {
        at
    } else {
        format!("{at} ({key})")
    }
}

async fn check(s: &Settings, a: &CheckArgs) -> Result<Found> {
    let contract = crate::config::contract_of(s)?
        .unwrap_or_else(contract::Contract::simulator)
        .with_urls(&s.pos, &s.wx);
    println!("source contract: {}", crate::config::contract_origin(s));
    let mut found = Found::default();
    let resolved = match contract.resolve() {
        Ok(r) => r,
        Err(e) => {
            for m in &e.0 {
                println!("  ✗ {m}");
            }
            found.mapping += e.0.len();
            return Ok(found);
        }
    };
    for (name, src) in &contract.sources {
        let at = match (&src.url, &src.dir) {
            (Some(u), _) => c360_db::redact(u),
            (None, Some(d)) => format!("files in {}", d.display()),
            _ => "-".into(),
        };
        println!("source {name}: {at}");
    }
    if !resolved.absent.is_empty() {
        println!(
            "absent (not declared, or absent = true): {}",
            resolved.absent.join(", ")
        );
    }
    let absent = resolved.absent.clone();
    // Connect source by source, so one unreachable source does not hide the others' findings.
    let mut by_source: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for (e, p) in &resolved.plans {
        if a.entity.is_empty() || a.entity.iter().any(|x| x == e) {
            by_source.entry(p.source.clone()).or_default().push(e);
        }
    }
    for (source, entities) in by_source {
        let mut part = resolved.clone();
        part.plans.retain(|k, _| entities.contains(k));
        let src = match Sources::open(part).await {
            Ok(x) => x,
            Err(e) => {
                println!("\n✗ source {source}: {e}");
                found.mapping += 1;
                continue;
            }
        };
        for e in contract::ENTITIES
            .iter()
            .filter(|e| entities.contains(&e.name))
        {
            let Some(plan) = src.plan(e.name) else {
                continue;
            };
            check_entity(&src, plan, a, &mut found).await;
        }
        src.close().await;
    }
    for e in &a.entity {
        if absent.contains(&e.as_str()) {
            println!("\n{e}: absent in the contract");
        }
    }
    Ok(found)
}

async fn check_entity(src: &Sources, plan: &Plan, a: &CheckArgs, found: &mut Found) {
    println!(
        "\n{} ({}: {}{})",
        plan.spec.name,
        plan.source,
        plan.place(),
        plan.incremental.as_ref().map_or(String::new(), |i| format!(
            ", incremental by {} ({:?})",
            i.column, i.kind
        ))
    );
    match src.missing_columns(plan).await {
        Ok(m) if m.is_empty() => {}
        Ok(m) => {
            for c in &m {
                let field = plan
                    .fields
                    .iter()
                    .find(|f| f.origin == contract::Origin::Column(c.clone()))
                    .map_or("the incremental key".to_string(), |f| {
                        format!("field {}", f.spec.name)
                    });
                println!("  ✗ column {c} ({field}) is not in the source");
            }
            found.mapping += m.len();
            return;
        }
        Err(e) => {
            println!("  ✗ {e}");
            found.mapping += 1;
            return;
        }
    }
    match src.count(plan).await {
        Ok(n) => println!("  rows: {n}"),
        Err(e) => {
            println!("  ✗ counting rows: {e}");
            found.mapping += 1;
            return;
        }
    }
    let mut samples: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut bad = 0u64;
    let limit = (a.scan > 0).then_some(a.scan);
    let read = src
        .stream(plan, None, limit, |r| {
            let mut row_bad = false;
            for (i, c) in r.cells.iter().enumerate() {
                if let Cell::Bad(why) = c {
                    row_bad = true;
                    bad += 1;
                    if errors.len() < a.show {
                        errors.push(format!(
                            "{}: {} — {why}",
                            where_of(plan, r),
                            plan.describe(i)
                        ));
                    }
                }
            }
            if !row_bad && samples.len() < 3 {
                samples.push(
                    plan.fields
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.origin != contract::Origin::Missing)
                        .map(|(i, f)| format!("{}={}", f.spec.name, shown(plan, i, &r.cells[i])))
                        .collect::<Vec<_>>()
                        .join("  "),
                );
            }
        })
        .await;
    match read {
        Ok(r) => {
            for (i, s) in samples.iter().enumerate() {
                println!("  sample {}: {s}", i + 1);
            }
            for e in &errors {
                println!("  ✗ {e}");
            }
            if bad as usize > errors.len() {
                println!("  … {} more", bad as usize - errors.len());
            }
            println!(
                "  {} row(s) read{}: {bad} value(s) cannot be read",
                r.rows,
                if limit.is_some_and(|l| r.rows >= l) {
                    " (--scan 0 reads all)"
                } else {
                    ""
                }
            );
            found.values += bad;
        }
        Err(e) => {
            println!("  ✗ reading: {e}");
            found.mapping += 1;
        }
    }
}
