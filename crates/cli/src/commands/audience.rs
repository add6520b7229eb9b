//! `c360 audience`: saved audiences (标签/人群) — create from a JSON spec, preview, show with
//! versions and sizes, change, archive, export members (CSV or Parquet), overlap, lookalike.
//! Every change and export is audited under `--actor`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::campaign::read_spec;
use super::{api_err, audited, pretty};
use c360_core::audience::{self, AudienceSpec, Format};

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum AudienceCmd {
    /// Saved audiences with their last measured size.
    List {
        /// Archived ones too.
        #[arg(long)]
        archived: bool,
    },
    /// Save an audience from a JSON spec: `{"name": …, "rule": …}`, `{"name": …, "sql": …}`
    /// or `{"name": …, "lookalike": {"seed": ID, "size": N}}`.
    Create { spec: PathBuf },
    /// Size and a sample of a spec's members now (nothing is saved).
    Preview { spec: PathBuf },
    /// An audience with its size now, its versions and its size at each snapshot.
    Show { id: i64 },
    /// Store a new version of an audience's definition.
    Update { id: i64, spec: PathBuf },
    /// Archive an audience (its history stays).
    Archive { id: i64 },
    /// Write every member with their profile columns (no personal data).
    Export {
        id: i64,
        /// csv or parquet.
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sizes, pairwise intersections and Jaccard similarity of 2 to 10 audiences.
    Overlap { ids: Vec<i64> },
    /// Save the `size` customers most like audience `id`'s (outside it) as a new audience.
    Lookalike {
        id: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        size: u64,
    },
}

pub async fn run(st: &Settings, cmd: AudienceCmd) -> Result<()> {
    let who = st.actor();
    match cmd {
        AudienceCmd::List { archived } => {
            let m = super::metastore(st).await?;
            let all = audience::list(&m, archived).await.map_err(api_err)?;
            for a in all {
                let last = audience::sizes(&m, a.audience_id)
                    .await
                    .map_err(api_err)?
                    .pop();
                println!(
                    "{}\t{}\tv{}\t{}\t{}\t{}",
                    a.audience_id,
                    a.status,
                    a.version,
                    a.kind,
                    last.map_or("-".to_string(), |s| format!("{} @ {}", s.size, s.as_of)),
                    a.spec.name
                );
            }
            Ok(())
        }
        AudienceCmd::Create { spec } => {
            let m = super::metastore(st).await?;
            let sp: AudienceSpec = read_spec(&spec, "an audience spec")?;
            let r = audience::create(&m, &sp, &who).await;
            let id = audited(
                &m,
                &who,
                "audience.create",
                &sp.name,
                json!({"kind": sp.kind()}),
                r,
            )
            .await?;
            pretty(&json!({"audience_id": id, "version": 1}))
        }
        AudienceCmd::Preview { spec } => {
            let (s, m) = super::open(st).await?;
            let sp: AudienceSpec = read_spec(&spec, "an audience spec")?;
            let day = audience::as_of(&s).await.map_err(api_err)?;
            let mem = audience::evaluate(&s, &m, &sp, day)
                .await
                .map_err(api_err)?;
            let sample = audience::sample(&s, &mem, 10).await.map_err(api_err)?;
            pretty(
                &json!({"size": mem.len(), "as_of": c360_model::Day(day).to_string(), "sample": sample}),
            )
        }
        AudienceCmd::Show { id } => {
            let (s, m) = super::open(st).await?;
            let a = audience::get(&m, id).await.map_err(api_err)?;
            let size = if a.status == "active" {
                Some(members(st, &s, &m, &a).await?.len())
            } else {
                None
            };
            pretty(&json!({
                "audience": a,
                "size": size,
                "versions": audience::versions(&m, id).await.map_err(api_err)?,
                "sizes": audience::sizes(&m, id).await.map_err(api_err)?,
            }))
        }
        AudienceCmd::Update { id, spec } => {
            let m = super::metastore(st).await?;
            let sp: AudienceSpec = read_spec(&spec, "an audience spec")?;
            let r = audience::update(&m, id, &sp, &who).await;
            let v = audited(
                &m,
                &who,
                "audience.update",
                &format!("audience:{id}"),
                json!({}),
                r,
            )
            .await?;
            pretty(&json!({"audience_id": id, "version": v}))
        }
        AudienceCmd::Archive { id } => {
            let m = super::metastore(st).await?;
            let r = audience::archive(&m, id).await;
            audited(
                &m,
                &who,
                "audience.archive",
                &format!("audience:{id}"),
                json!({}),
                r,
            )
            .await?;
            pretty(&json!({"audience_id": id, "status": "archived"}))
        }
        AudienceCmd::Export { id, format, out } => {
            let f = match format.as_str() {
                "csv" => Format::Csv,
                "parquet" => Format::Parquet,
                x => anyhow::bail!("--format {x:?}: use csv or parquet"),
            };
            let (s, m) = super::open(st).await?;
            let r = async {
                let a = audience::get(&m, id).await?;
                let mem = members(st, &s, &m, &a)
                    .await
                    .map_err(|e| c360_core::CoreError::Internal(e.to_string()))?;
                let file = std::fs::File::create(&out).map_err(|e| {
                    c360_core::CoreError::Internal(format!("{}: {e}", out.display()))
                })?;
                audience::export(&s, &mem, f, std::io::BufWriter::new(file)).await
            }
            .await;
            let rows = audited(
                &m,
                &who,
                "audience.export",
                &format!("audience:{id}"),
                json!({"format": format}),
                r,
            )
            .await?;
            eprintln!("{rows} members written to {}", out.display());
            Ok(())
        }
        AudienceCmd::Overlap { ids } => {
            anyhow::ensure!((2..=10).contains(&ids.len()), "name 2 to 10 audiences");
            let (s, m) = super::open(st).await?;
            let mut sets = Vec::new();
            for id in ids {
                let a = audience::get(&m, id).await.map_err(api_err)?;
                sets.push((id, members(st, &s, &m, &a).await?));
            }
            pretty(&audience::overlap(&sets))
        }
        AudienceCmd::Lookalike { id, name, size } => {
            let m = super::metastore(st).await?;
            let seed = audience::get(&m, id).await.map_err(api_err)?;
            let sp = AudienceSpec {
                description: format!("lookalike of audience {id} ({})", seed.spec.name),
                name,
                store_ids: seed.spec.store_ids.clone(),
                rule: None,
                sql: None,
                lookalike: Some(audience::Lookalike { seed: id, size }),
            };
            let r = audience::create(&m, &sp, &who).await;
            let new = audited(
                &m,
                &who,
                "audience.create",
                &sp.name,
                json!({"kind": "lookalike", "seed": id}),
                r,
            )
            .await?;
            pretty(&json!({"audience_id": new, "version": 1}))
        }
    }
}

/// Members at the current snapshot (cached beside its serving index when it has one).
async fn members(
    st: &Settings,
    s: &c360_warehouse::Session,
    m: &c360_metastore::Metastore,
    a: &audience::Audience,
) -> Result<Arc<audience::RoaringTreemap>> {
    let wh = c360_warehouse::Warehouse::open(&st.warehouse)
        .with_context(|| format!("opening the warehouse {}", st.warehouse.display()))?;
    audience::members(&wh, s, m, a).await.map_err(api_err)
}
