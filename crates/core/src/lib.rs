//! The domain of c360, between the pure models (`c360-analytics`) and the ways in (the ETL's
//! refresh, the HTTP server, the CLI): per-customer profile features and the fitted models with
//! their live re-score, lifetime value, recommendation inputs, saved audiences (rules, SQL, lookalikes as bitmaps), campaigns (arms,
//! coupons, effect), triggered journeys, menu engineering, experiments, service diagnosis and the audit trail.
//!
//! It reads the warehouse through a [`c360_warehouse::Session`] and writes mutable state only
//! through the metastore. It knows nothing of HTTP: every failure is a [`CoreError`] that says
//! whether the caller asked for something wrong (invalid, forbidden, not found, no data) or
//! something broke inside (internal); the server maps those to statuses in one table.

pub mod audience;
pub mod audit;
pub mod campaign;
pub mod clv;
pub mod cols;
pub mod experiments;
pub mod journey;
pub mod json;
pub mod menu;
pub mod notes;
pub mod privacy;
pub mod profile;
pub mod query;
pub mod recs;
pub mod rss;
pub mod sentiment;
pub mod service;
pub mod serving;
pub mod slice;
pub mod sources;

/// What went wrong, in the domain's terms.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request itself is malformed (a parameter that does not parse); the message names
    /// the field.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well formed but cannot be done: its fields contradict each other or name
    /// something that does not fit (an end before the start, an unknown product); the message
    /// names the field.
    #[error("{0}")]
    Invalid(String),
    /// The thing is not in a state that allows this (a campaign that is no longer a draft).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (a store manager outside their stores).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The warehouse has no snapshot yet.
    #[error("the warehouse has no data yet: run `c360 etl` first")]
    NoData,
    /// The view needs a source entity the chain's contract does not provide; the message names it.
    #[error("{0}")]
    NotInSources(String),
    /// Something broke inside; the detail is for the log, never for the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type CoreResult<T> = std::result::Result<T, CoreError>;

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for CoreError {
            fn from(e: $t) -> Self {
                CoreError::Internal(e.to_string())
            }
        }
    )*};
}
internal_from!(
    c360_warehouse::WhError,
    c360_db::DbError,
    serde_json::Error,
    datafusion::arrow::error::ArrowError,
    datafusion::error::DataFusionError
);

/// A request error naming its field.
pub(crate) fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::Invalid(msg.into())
}
