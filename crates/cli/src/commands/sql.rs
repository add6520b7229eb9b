//! `c360 sql`: SQL on the warehouse (DataFusion).

use anyhow::Result;
use c360_warehouse::format_batches;

use crate::config::Settings;

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT * FROM v_customer_360 LIMIT 5".
    pub query: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print `TIMING_MS <ms>` (planning + execution, excluding output) to stderr.
    #[arg(long)]
    pub timing: bool,
}

pub async fn run(s: &Settings, a: SqlArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let sess = super::session(s).await?;
    let b = sess.query(&a.query).await?;
    if a.timing {
        eprintln!("TIMING_MS {}", t0.elapsed().as_millis());
    }
    if a.json {
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(std::io::stdout());
        for x in &b {
            w.write(x)?;
        }
        w.finish()?;
    } else {
        println!("{}", format_batches(&b));
    }
    Ok(())
}
