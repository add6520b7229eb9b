//! `c360 privacy`: personal-data requests under PIPL — export everything held about a customer,
//! erase a customer (metastore at once, then the warehouse, its serving index and audience
//! bitmaps, with every older snapshot purged), complete erasures a server accepted, and list
//! the requests. A customer is named by id or by phone (looked up by its keyed hash; the
//! number is never printed or logged).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{api_err, audited, pretty};
use c360_core::privacy;

use crate::config::Settings;

#[derive(Args, Debug)]
pub struct Who {
    /// The customer id.
    #[arg(long, conflicts_with = "phone")]
    customer: Option<i64>,
    /// Or their phone number (as they give it).
    #[arg(long)]
    phone: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PrivacyCmd {
    /// Everything held about a customer, as JSON (to stdout or --out).
    Export {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase a customer everywhere and complete it now (the warehouse is rewritten and
    /// refreshed; older snapshots are purged).
    Erase {
        #[command(flatten)]
        who: Who,
        /// Why (the request's reference); no personal data.
        #[arg(long)]
        reason: String,
    },
    /// Complete the erasures accepted through the API (the ETL also does at each run).
    Apply,
    /// Export and erasure requests, newest first.
    Requests {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

async fn customer_of(st: &Settings, m: &c360_metastore::Metastore, who: &Who) -> Result<i64> {
    match (who.customer, &who.phone) {
        (Some(c), _) => Ok(c),
        (None, Some(p)) => {
            let key = m.pii_key(st.salt().as_ref()).await?;
            match privacy::find_by_phone(m, &key, p).await.map_err(api_err)? {
                Some(c) => Ok(c),
                None => bail!("no customer has that phone number"),
            }
        }
        (None, None) => bail!("name the customer: --customer ID or --phone NUMBER"),
    }
}

/// The result, with a refused or failed request audited (the engine audits a success).
async fn refused<T>(
    m: &c360_metastore::Metastore,
    who: &str,
    action: &str,
    id: i64,
    r: c360_core::CoreResult<T>,
) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => {
            let target = format!("customer:{id}");
            audited(m, who, action, &target, json!({}), Err::<T, _>(e)).await
        }
    }
}

pub async fn run(st: &Settings, cmd: PrivacyCmd) -> Result<()> {
    match cmd {
        PrivacyCmd::Export { who, out } => {
            let m = super::metastore(st).await?;
            let id = customer_of(st, &m, &who).await?;
            let sess = super::session(st).await.ok();
            let who_am_i = st.actor();
            let data = privacy::export(sess.as_ref(), &m, id, &who_am_i, "cli").await;
            let data = refused(&m, &who_am_i, "privacy.export", id, data).await?;
            match out {
                Some(p) => {
                    std::fs::write(&p, serde_json::to_vec_pretty(&data)?)?;
                    eprintln!(
                        "customer {id}: {} orders, {} reviews, {} events written to {}",
                        data.orders.len(),
                        data.reviews.len(),
                        data.events.len(),
                        p.display()
                    );
                    Ok(())
                }
                None => pretty(&data),
            }
        }
        PrivacyCmd::Erase { who, reason } => {
            let m = super::metastore(st).await?;
            let id = customer_of(st, &m, &who).await?;
            let reason = c360_model::pii::scrub(reason.trim());
            if reason.is_empty() {
                bail!("--reason: say why (the request's reference)");
            }
            let keys = match super::session(st).await {
                Ok(s) => privacy::warehouse_keys(&s, id).await.map_err(api_err)?,
                Err(_) => vec![],
            };
            let who_am_i = st.actor();
            let r = privacy::erase(&m, id, &keys, &who_am_i, "cli", &reason).await;
            let req = refused(&m, &who_am_i, "privacy.erase", id, r).await?;
            m.db.close().await;
            let cfg = super::etl::etl_config(st)?;
            let n = c360_etl::privacy::apply(&cfg).await?;
            eprintln!(
                "customer {id} erased (request {}; {n} erasure(s) completed in the warehouse)",
                req.request_id
            );
            Ok(())
        }
        PrivacyCmd::Apply => {
            let cfg = super::etl::etl_config(st)?;
            let n = c360_etl::privacy::apply(&cfg).await?;
            eprintln!("{n} erasure(s) completed");
            Ok(())
        }
        PrivacyCmd::Requests { limit } => {
            let m = super::metastore(st).await?;
            pretty(&privacy::requests(&m.db, limit).await.map_err(api_err)?)
        }
    }
}
