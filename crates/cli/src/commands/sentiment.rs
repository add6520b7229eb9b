//! `c360 sentiment score FILE`: polarity, P(positive) and aspect scores of texts collected
//! elsewhere (Meituan, Dianping, surveys), by the warehouse's stored sentiment model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum SentimentCmd {
    /// Score each text of FILE: a CSV with a header (the text column is `--column`, else the
    /// first of text / content / review / comment, else the only column), or plain text, one per
    /// line (a file not ending in .csv). Prints CSV: row, polarity, probability, score and one
    /// column per aspect (empty when the text does not mention it).
    Score {
        file: PathBuf,
        #[arg(long)]
        column: Option<String>,
    },
    /// Print the stored model's card: version, when and on what it was trained, held-out figures.
    Model,
}

pub async fn run(st: &Settings, cmd: SentimentCmd) -> Result<()> {
    let wh = c360_warehouse::Warehouse::open(&st.warehouse)?;
    let m = wh.current()?;
    let Some((model, card)) = c360_core::sentiment::load(&wh, &m.notes)? else {
        bail!(
            "the warehouse at {} has no stored sentiment model yet: run `c360 etl` first",
            st.warehouse.display()
        );
    };
    match cmd {
        SentimentCmd::Model => super::pretty(&card)?,
        SentimentCmd::Score { file, column } => {
            let texts = read_texts(&file, column.as_deref())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let aspects: Vec<&str> = c360_core::sentiment::ASPECTS.iter().map(|a| a.1).collect();
            writeln!(out, "row,polarity,probability,score,{}", aspects.join(","))?;
            for (row, t) in texts {
                let s = c360_core::sentiment::score(&model, &t);
                let pol = serde_json::to_value(s.polarity)?;
                write!(
                    out,
                    "{row},{},{:.4},{:.4}",
                    pol.as_str().unwrap_or(""),
                    s.probability,
                    s.score
                )?;
                for a in &aspects {
                    match s.aspects.get(*a) {
                        Some(v) => write!(out, ",{v:.4}")?,
                        None => write!(out, ",")?,
                    }
                }
                writeln!(out)?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// The texts of `file` with their row numbers (the line of a text file, the data row of a CSV
/// counting from 1); blank ones are skipped.
fn read_texts(file: &PathBuf, column: Option<&str>) -> Result<Vec<(usize, String)>> {
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        if column.is_some() {
            bail!(
                "--column applies to a .csv file; {} is read one text per line",
                file.display()
            );
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect());
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let headers: Vec<String> = r.headers()?.iter().map(|h| h.trim().to_string()).collect();
    let ix = match column {
        Some(c) => headers.iter().position(|h| h == c).with_context(|| {
            format!(
                "{}: no column {c:?} (columns: {})",
                file.display(),
                headers.join(", ")
            )
        })?,
        None => ["text", "content", "review", "comment"]
            .iter()
            .find_map(|n| headers.iter().position(|h| h.eq_ignore_ascii_case(n)))
            .or((headers.len() == 1).then_some(0))
            .with_context(|| {
                format!(
                    "{}: which column holds the text? name it with --column (columns: {})",
                    file.display(),
                    headers.join(", ")
                )
            })?,
    };
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", file.display(), i + 1))?;
        match rec.get(ix) {
            Some(t) if !t.trim().is_empty() => out.push((i + 1, t.to_string())),
            _ => {}
        }
    }
    Ok(out)
}
