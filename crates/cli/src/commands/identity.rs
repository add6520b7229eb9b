//! `c360 identity`: precision and recall against the truth; unmerge, remerge, the journal.

use anyhow::Result;
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum IdentityCmd {
    /// Pairwise precision and recall of the resolved customers against the ground truth.
    Eval,
    /// Cut a source id (e.g. M:123 or U:45) loose from its customer; the next `etl` applies it.
    Unmerge {
        source_key: String,
        #[arg(long, default_value = "manual unmerge")]
        reason: String,
    },
    /// Undo an unmerge.
    Remerge { source_key: String },
    /// Show the merge journal of one source id or customer.
    Journal {
        /// A source key (M:123) or a customer id.
        of: String,
    },
}

pub async fn run(s: &Settings, cmd: IdentityCmd) -> Result<()> {
    let meta = s.metastore_url();
    match cmd {
        IdentityCmd::Eval => {
            let truth = s.truth_or_default();
            let e = c360_eval::evaluate_identity(&meta, &truth).await?;
            let p = c360_eval::evaluate_payer_attribution(&s.warehouse, &truth).await?;
            super::pretty(&serde_json::json!({ "ids": e, "payment_accounts": p }))?;
        }
        IdentityCmd::Unmerge { source_key, reason } => {
            c360_etl::identity::unmerge(&meta, &source_key, &reason).await?;
            println!("{source_key} will be split from its customer at the next `c360 etl`");
        }
        IdentityCmd::Remerge { source_key } => {
            c360_etl::identity::remerge(&meta, &source_key).await?;
            println!("{source_key} may link again at the next `c360 etl`");
        }
        IdentityCmd::Journal { of } => {
            let db = super::metastore(s).await?;
            let rows = db
                .fetch(
                    "SELECT seq, run_id, action, source_key, from_customer, to_customer, rule FROM identity_journal \
                     WHERE source_key = ? OR CAST(to_customer AS VARCHAR(20)) = ? OR CAST(from_customer AS VARCHAR(20)) = ? ORDER BY seq",
                    &[of.as_str().into(), of.as_str().into(), of.as_str().into()],
                )
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
    }
    Ok(())
}
