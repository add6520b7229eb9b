//! `c360 journey`: the triggered journeys (welcome, miss_you, big_spender, recovery) — their
//! settings and counts, configuring one from a JSON spec, their sends, and firing them on the
//! current snapshot (the ETL does after each run; this is for a journey just turned on).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::campaign::read_spec;
use super::{api_err, audited, pretty};
use c360_core::journey::{self, JourneyKind, JourneySpec};

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum JourneyCmd {
    /// The four journeys with their settings and sends per arm and status.
    List,
    /// Configure a journey from a JSON spec (`{"enabled": true, "channel": "wechat",
    /// "offer": {"kind": "favourite_item", "discount_fen": 500}, "threshold": 0.8}`).
    Set { kind: String, spec: PathBuf },
    /// A journey's sends, newest first.
    Sends {
        kind: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Fire every enabled journey on the current snapshot.
    Fire,
}

fn kind_of(k: &str) -> Result<JourneyKind> {
    JourneyKind::parse(k).ok_or_else(|| {
        anyhow::anyhow!("journey {k:?}: use welcome, miss_you, big_spender or recovery")
    })
}

pub async fn run(st: &Settings, cmd: JourneyCmd) -> Result<()> {
    match cmd {
        JourneyCmd::List => {
            let m = super::metastore(st).await?;
            pretty(&journey::list(&m.db).await.map_err(api_err)?)
        }
        JourneyCmd::Set { kind, spec } => {
            let k = kind_of(&kind)?;
            let m = super::metastore(st).await?;
            let sp: JourneySpec = read_spec(&spec, "a journey spec")?;
            let who = st.actor();
            let r = journey::set(&m.db, k, &sp, &who).await;
            audited(
                &m,
                &who,
                "journey.update",
                &format!("journey:{kind}"),
                json!({"enabled": sp.enabled}),
                r,
            )
            .await?;
            pretty(&journey::get(&m.db, k).await.map_err(api_err)?)
        }
        JourneyCmd::Sends { kind, limit } => {
            let k = kind_of(&kind)?;
            let m = super::metastore(st).await?;
            for s in journey::sends(&m.db, k, None, limit)
                .await
                .map_err(api_err)?
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.send_at,
                    s.customer_id,
                    s.arm,
                    s.status,
                    s.coupon_code.unwrap_or_default(),
                    s.reason
                );
            }
            Ok(())
        }
        JourneyCmd::Fire => {
            let (s, m) = super::open(st).await?;
            pretty(&journey::fire_refresh(&s, &m.db).await.map_err(api_err)?)
        }
    }
}
