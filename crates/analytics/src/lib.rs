//! Customer analytics on per-customer feature tables: buy-till-you-die models for lifetime
//! value (`clv`) and the numerical tools they need (`optim`, `special`).
//!
//! Pure computation: no I/O, no warehouse. Callers hand in plain vectors and get plain results.

pub mod churn;
pub mod clv;
pub mod optim;
pub mod rfm;
pub mod segment;
pub mod special;
