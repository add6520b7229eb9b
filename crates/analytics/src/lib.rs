//! Customer analytics on per-customer feature tables: buy-till-you-die models for lifetime
//! value (`clv`) and the numerical tools they need (`optim`, `special`); RFM, segments and
//! churn; behaviour sessions and funnels (`behavior`), review sentiment (`sentiment`), the
//! customer network (`graph`), recommendations (`recommend`), the A/B statistics engine
//! (`experiment`), uplift modelling (`uplift`) and customer-service diagnosis (`service`).
//!
//! Pure computation: no I/O, no warehouse. Callers hand in plain vectors and get plain results.

pub mod behavior;
pub mod churn;
pub mod clv;
pub mod experiment;
pub mod graph;
pub mod optim;
pub mod recommend;
pub mod rfm;
pub mod segment;
pub mod sentiment;
pub mod service;
pub mod special;
pub mod uplift;
