//! How an ETL run is set up: the sources, the warehouse and metastore, the hashing secret, the
//! identity and RFM rules, and the test hook that stops or kills a run at a chosen step.

use std::path::PathBuf;

use crate::error::{EtlError, Result};

#[derive(Debug, Clone)]
pub struct EtlConfig {
    /// The URL of the source named `pos` (and `wx` below) where the contract leaves it unset.
    pub pos_url: String,
    pub wx_url: String,
    /// Where each entity comes from and how it is written; None: the simulator's schema
    /// (`examples/sim.toml`).
    pub contract: Option<crate::contract::Contract>,
    /// Read only these entities this run (the others are left as the warehouse holds them);
    /// empty: every entity the contract declares. `c360 import` names the ones it loads.
    pub only: Vec<String>,
    pub warehouse: PathBuf,
    /// Defaults to a SQLite file inside the warehouse directory.
    pub metastore_url: Option<String>,
    /// The secret personal identifiers are hashed with; `None` uses the one stored in the
    /// metastore (generated there on the first run).
    pub salt: Option<c360_model::Secret>,
    /// Largest number of members sharing one verified phone before the phone is treated as a
    /// shared (staff / family / placeholder) number and stops linking.
    pub max_ids_per_phone: usize,
    pub progress: bool,
    /// Test hook: stop with an error right after this step (`<step>`), kill the process there
    /// (`abort:<step>`), or between writing data files and the manifest (`commit`). The CLI
    /// fills it from `C360_FAIL_AT`.
    pub fail_at: Option<String>,
    /// Whom each customer's RFM is compared with (dynamic cut points per city, store or none).
    pub rfm_group: c360_core::profile::RfmGroup,
    /// Bytes the quality step's queries may hold; past it they spill to disk.
    pub quality_memory: usize,
    /// Keys per statement when a whole source table is read from MySQL/PostgreSQL by its
    /// integer key (the CLI fills it from `C360_SOURCE_SLICE`).
    pub source_slice: i64,
    /// Customers per slice of the refresh's features and of the serving index build (the CLI
    /// fills it from `C360_SLICE_CUSTOMERS`).
    pub slice_customers: usize,
}

impl Default for EtlConfig {
    fn default() -> Self {
        EtlConfig {
            pos_url: "data/cyrg2025.db".into(),
            wx_url: "data/cyrgweixin.db".into(),
            contract: None,
            only: Vec::new(),
            warehouse: "data/hotdog2030".into(),
            metastore_url: None,
            salt: None,
            max_ids_per_phone: 4,
            progress: true,
            fail_at: None,
            rfm_group: c360_core::profile::RfmGroup::City,
            quality_memory: crate::quality::MEMORY,
            source_slice: crate::source::SLICE_KEYS,
            slice_customers: c360_core::slice::SLICE_CUSTOMERS,
        }
    }
}

impl EtlConfig {
    /// The contract this run reads by, checked: the configured one (or the simulator's), with
    /// the `pos` / `wx` URLs filled in, cut down to [`EtlConfig::only`].
    pub fn resolved(&self) -> Result<crate::contract::Resolved> {
        let c = self
            .contract
            .clone()
            .unwrap_or_else(crate::contract::Contract::simulator)
            .with_urls(&self.pos_url, &self.wx_url);
        let mut r = c.resolve()?;
        if !self.only.is_empty() {
            for e in &self.only {
                if crate::contract::spec(e).is_none() {
                    return Err(EtlError::Contract(crate::contract::ContractError(vec![
                        format!("{e:?} is not an entity c360 reads"),
                    ])));
                }
                if !r.plans.contains_key(e.as_str()) {
                    return Err(EtlError::Contract(crate::contract::ContractError(vec![
                        format!("{e} is absent in the source contract"),
                    ])));
                }
            }
            r.plans.retain(|k, _| self.only.iter().any(|o| o == k));
        }
        Ok(r)
    }

    pub fn metastore(&self) -> String {
        self.metastore_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.warehouse.join("_metastore.db").display()
            )
        })
    }
}

/// The test hook of [`EtlConfig::fail_at`]: an error or an abort right after `step`.
pub(crate) fn fail_point(cfg: &EtlConfig, step: &str) -> Result<()> {
    match cfg.fail_at.as_deref() {
        Some(at) if at == step => Err(EtlError::FailPoint(step.into())),
        Some(at) if at.strip_prefix("abort:") == Some(step) => std::process::abort(),
        _ => Ok(()),
    }
}
