//! The warehouse's one error type.

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
    /// A statement that would change something (DDL, DML, COPY, SET, external tables) sent
    /// through a query path, which is read-only.
    #[error("read-only: only queries (SELECT, WITH, VALUES, EXPLAIN) may run here; {0}")]
    ReadOnly(String),
    #[error("another writer holds the warehouse lock {0}")]
    Locked(String),
    #[error("invalid {0}: only letters, digits, '-', '_' and '.' between '/'")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, WhError>;

pub(crate) fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> WhError {
    let path = path.as_ref().display().to_string();
    move |source| WhError::Io { path, source }
}
