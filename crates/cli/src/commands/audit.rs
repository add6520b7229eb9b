//! `c360 audit`: the audit trail, newest first.

use anyhow::Result;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Only this action (e.g. campaign.launch).
    #[arg(long)]
    pub action: Option<String>,
}

pub async fn run(s: &Settings, a: AuditArgs) -> Result<()> {
    let m = super::metastore(s).await?;
    for e in c360_core::audit::list(&m, a.limit, a.action.as_deref(), None)
        .await
        .map_err(super::api_err)?
    {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.seq, e.at, e.actor, e.role, e.action, e.target, e.outcome
        );
    }
    Ok(())
}
