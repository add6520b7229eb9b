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

pub mod error;
pub mod manifest;
pub mod query;
pub mod tables;
pub mod upsert;

pub use error::{Result, WhError};
pub use manifest::{FileEntry, Manifest, TableFile, Txn, Warehouse, WriterLock, SERVING_DIR};
pub use query::{format_batches, Session};
pub use upsert::Upsert;

pub use datafusion;
pub use datafusion::arrow;
