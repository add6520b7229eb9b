//! The ETL's one error type.

#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error(transparent)]
    Db(#[from] c360_db::DbError),
    #[error(transparent)]
    Core(#[from] c360_core::CoreError),
    #[error(transparent)]
    Warehouse(#[from] c360_warehouse::WhError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("source {table}: {reason}")]
    Source { table: String, reason: String },
    #[error(transparent)]
    Contract(#[from] crate::contract::ContractError),
    #[error("stopped at step '{0}' by C360_FAIL_AT (test hook)")]
    FailPoint(String),
    #[error("spool file {0}")]
    Spool(String),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, EtlError>;
