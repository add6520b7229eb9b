//! What a run did, step by step.

use serde::Serialize;

/// What one step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    pub step: u8,
    pub name: &'static str,
    pub extracted: u64,
    pub loaded: u64,
    pub quarantined: u64,
    pub millis: u128,
    /// The process's peak resident memory during the step, MiB (sampled; 0 where unknown).
    pub peak_mib: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EtlReport {
    pub run_id: i64,
    pub manifest_version: u64,
    pub steps: Vec<StepReport>,
    pub customers: u64,
    pub merged_keys: u64,
}

pub use c360_core::rss::RssPeak;
