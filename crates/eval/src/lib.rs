//! Everything c360 scores against the simulator's ground truth or a published reference:
//! identity precision and recall, CLV and churn on the holdout, holiday appetite, sentiment,
//! the network, recommendations on a time split, the A/B engine's error rates, and the service
//! diagnosis. Used by the CLI's `analyze`/`identity eval`/`experiment validate`/`service evaluate`
//! and by tests only: nothing in the product's own paths imports it.

pub mod ab;
pub mod clv;
pub mod dims;
pub mod identity;
pub mod service;

pub use identity::{evaluate_identity, IdentityEval};

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
