//! The evaluation's one error type.

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Etl(#[from] c360_etl::EtlError),
    #[error(transparent)]
    Core(#[from] c360_core::CoreError),
    #[error(transparent)]
    Db(#[from] c360_db::DbError),
    #[error(transparent)]
    Warehouse(#[from] c360_warehouse::WhError),
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("{table}: {reason}")]
    Source { table: String, reason: String },
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, EvalError>;
