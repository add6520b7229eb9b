//! `c360 quality`: the data-quality report and quarantined rows.

use anyhow::Result;
use c360_warehouse::format_batches;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct QualityArgs {
    /// Also list up to this many quarantined rows.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}

pub async fn run(s: &Settings, a: QualityArgs) -> Result<()> {
    let sess = super::session(s).await?;
    println!(
        "{}",
        format_batches(
            &sess
                .query(
                    "SELECT table_name, \"check\", ROUND(value, 4) AS value, detail FROM dq_report"
                )
                .await?
        )
    );
    let q = "SELECT source_table, row_id, field, reason FROM quarantine ORDER BY run_id DESC, source_table, row_id LIMIT $1";
    let limit = c360_warehouse::query::ScalarValue::from(a.rows as i64);
    println!(
        "{}",
        format_batches(&sess.query_with(q, vec![limit]).await?)
    );
    println!(
        "{}",
        format_batches(&sess.query("SELECT source_table, field, COUNT(*) AS rows FROM quarantine GROUP BY source_table, field ORDER BY rows DESC").await?)
    );
    Ok(())
}
