//! The `hotdog2030` analytics warehouse: Parquet tables under one directory, committed atomically
//! through versioned manifests, queried with an embedded DataFusion session. Mutable state (ETL
//! runs, identity, keys, campaigns …) lives in the metastore crate, not here.
//!
//! A commit writes new Parquet files first and then publishes a new manifest with an atomic
//! rename, so a crash at any point leaves the previous snapshot readable and the next run neither
//! loses nor doubles a row. The manifest also carries the source watermarks of the load that
//! produced it, so data and watermarks can never disagree.
//!
//! It is not the ETL: it does not know where rows come from.

pub mod manifest;
pub mod query;
pub mod tables;

pub use manifest::{FileEntry, Manifest, Txn, Warehouse};
pub use query::{format_batches, Session};

pub use datafusion;
pub use datafusion::arrow;

#[derive(Debug, thiserror::Error)]
pub enum WhError {
    #[error("warehouse I/O at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is unreadable: {reason}")]
    Manifest { path: String, reason: String },
    #[error("unknown table '{0}'")]
    UnknownTable(String),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Db(#[from] c360_db::DbError),
    #[error("another writer holds the warehouse lock {0}")]
    Locked(String),
}

pub type Result<T> = std::result::Result<T, WhError>;

pub(crate) fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> WhError {
    let path = path.as_ref().display().to_string();
    move |source| WhError::Io { path, source }
}
