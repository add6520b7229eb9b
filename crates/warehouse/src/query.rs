//! A DataFusion session over one manifest version: every table registered from exactly the
//! files that version names (never a directory listing, so uncommitted files are invisible),
//! plus the SQL views.

use datafusion::arrow::datatypes::DataType;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
pub use datafusion::scalar::ScalarValue;

use crate::manifest::{Manifest, Warehouse};
use crate::{
    error::{Result, WhError},
    tables,
};

/// What a query path may run: plans that only read. DDL (`CREATE [EXTERNAL] TABLE`, `CREATE
/// VIEW`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`, `COPY … TO`) and statements (`SET`,
/// transactions, `PREPARE`) are refused before anything executes. The one place that creates
/// views is [`Session::at`], which uses the context directly.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

pub struct Session {
    pub ctx: SessionContext,
    pub manifest: Manifest,
}

impl Session {
    /// Opens the current snapshot of a warehouse.
    pub async fn open(wh: &Warehouse) -> Result<Session> {
        let m = wh.current()?;
        Self::at(wh, m).await
    }

    pub async fn at(wh: &Warehouse, m: Manifest) -> Result<Session> {
        let ctx = SessionContext::new_with_config(Self::config());
        Self::register(wh, m, ctx).await
    }

    /// A session whose queries hold at most `memory` bytes in their operators: sorts and
    /// aggregations past it spill to files under the warehouse root, and joins are planned as
    /// sort-merge joins (which spill) instead of hash joins (which do not). For whole-table
    /// checks at any size (the ETL's quality step); a query that cannot fit fails with
    /// "Resources exhausted" rather than taking the machine's memory.
    pub async fn bounded(wh: &Warehouse, m: Manifest, memory: usize) -> Result<Session> {
        Self::bounded_sort(wh, m, memory, false).await
    }

    /// [`Session::bounded`] for queries whose answer is one long sort of a fact table (a row
    /// per event, sorted by session), when `one_long_sort`: one partition, so the sorts of a
    /// plan do not run twice over, and a quarter of the budget kept back for merging the
    /// spilled runs, which cannot spill themselves (at 10M orders, two partitions of such a
    /// sort under 512 MiB failed in the merge). With one partition DataFusion plans hash joins
    /// (sort-merge joins need more than one), so the small side of each join is held whole:
    /// fit for a fact table joined to keys or dimensions, not for two fact tables.
    pub async fn bounded_sort(
        wh: &Warehouse,
        m: Manifest,
        memory: usize,
        one_long_sort: bool,
    ) -> Result<Session> {
        let mut cfg = Self::config();
        cfg.options_mut().optimizer.prefer_hash_join = false;
        // What a sort keeps back for merging its spilled runs: a share of the budget, so a
        // small budget still sorts (DataFusion's default is a fixed 10 MB).
        let share = if one_long_sort { 4 } else { 16 };
        cfg.options_mut().execution.sort_spill_reservation_bytes = (memory / share).max(64 << 10);
        if one_long_sort {
            cfg = cfg.with_target_partitions(1);
        }
        let spill = wh.root.join(format!(
            "{}datafusion-{}",
            crate::upsert::SCRATCH_PREFIX,
            std::process::id()
        ));
        std::fs::create_dir_all(&spill).map_err(crate::error::io(&spill))?;
        let rt = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(memory, 1.0)
            .with_temp_file_path(spill)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(cfg, rt);
        Self::register(wh, m, ctx).await
    }

    fn config() -> SessionConfig {
        SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            )
    }

    async fn register(wh: &Warehouse, m: Manifest, ctx: SessionContext) -> Result<Session> {
        for def in tables::TABLES {
            let schema = (def.schema)();
            let files: Vec<_> = m
                .tables
                .get(def.name)
                .map(|t| t.files().cloned().collect())
                .unwrap_or_default();
            if files.is_empty() {
                let t = MemTable::try_new(schema, vec![vec![]])?;
                ctx.register_table(def.name, Arc::new(t))?;
                continue;
            }
            let urls = files
                .iter()
                .map(|f| {
                    let abs = wh.root.join(&f.path);
                    let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
                    ListingTableUrl::parse(abs.to_string_lossy())
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let cfg = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(opts)
                .with_schema(schema);
            ctx.register_table(def.name, Arc::new(ListingTable::try_new(cfg)?))?;
        }
        for (name, sql) in tables::VIEWS {
            ctx.sql(&format!("CREATE VIEW {name} AS {sql}")).await?;
        }
        Ok(Session { ctx, manifest: m })
    }

    /// Plans `sql` under [`read_only`]: a statement that would write answers
    /// [`WhError::ReadOnly`] naming what it is.
    async fn plan(&self, sql: &str) -> Result<DataFrame> {
        match self.ctx.sql_with_options(sql, read_only()).await {
            Ok(df) => Ok(df),
            Err(e) => {
                let msg = e.strip_backtrace();
                if ["DDL", "DML", "Statement"]
                    .iter()
                    .any(|k| msg.contains(&format!("{k} not supported: ")))
                {
                    Err(WhError::ReadOnly(
                        msg.trim_start_matches("Error during planning: ")
                            .to_string(),
                    ))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// A read-only query (see [`read_only`]).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.plan(sql).await?.collect().await?)
    }

    /// A read-only query with `$1`, `$2` … placeholders and their values, bound by DataFusion (never
    /// spliced into the text).
    pub async fn query_with(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Vec<RecordBatch>> {
        let df = self.plan(sql).await?;
        Ok(df.with_param_values(params)?.collect().await?)
    }

    /// A read-only query with bound parameters as a stream of batches: the caller holds one
    /// batch at a time (a scan of every customer's profile at 10M customers).
    pub async fn stream_with(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
        let df = self.plan(sql).await?;
        Ok(df.with_param_values(params)?.execute_stream().await?)
    }

    /// First column of the first row as i64 (for counts); 0 when there is no row or it is NULL.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64> {
        use datafusion::arrow::array::{Array, Int64Array};
        let Some(col) = self.first_cell(sql, DataType::Int64).await? else {
            return Ok(0);
        };
        let a = col.as_any().downcast_ref::<Int64Array>().expect("int64");
        Ok(if a.is_null(0) { 0 } else { a.value(0) })
    }

    /// First column of the first row as f64; NaN when there is no row or it is NULL.
    pub async fn scalar_f64(&self, sql: &str) -> Result<f64> {
        use datafusion::arrow::array::{Array, Float64Array};
        let Some(col) = self.first_cell(sql, DataType::Float64).await? else {
            return Ok(f64::NAN);
        };
        let a = col
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("float64");
        Ok(if a.is_null(0) { f64::NAN } else { a.value(0) })
    }

    /// The first column of the first non-empty batch, cast to `t`.
    async fn first_cell(
        &self,
        sql: &str,
        t: DataType,
    ) -> Result<Option<datafusion::arrow::array::ArrayRef>> {
        let b = self.query(sql).await?;
        let Some(first) = b.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        Ok(Some(datafusion::arrow::compute::cast(first.column(0), &t)?))
    }
}

pub fn format_batches(b: &[RecordBatch]) -> String {
    pretty_format_batches(b)
        .map(|d| d.to_string())
        .unwrap_or_else(|e| e.to_string())
}
