//! Everything c360 scores against the simulator's ground truth or a published reference:
//! identity precision and recall, CLV and churn on the holdout, holiday appetite, sentiment,
//! the network, recommendations on a time split, the A/B engine's error rates, and the service
//! diagnosis. Used by the CLI's `analyze`/`identity eval`/`experiment validate`/`service evaluate`
//! and by tests only: nothing in the product's own paths imports it.

pub mod ab;
pub mod audience;
pub mod clv;
pub mod dims;
pub mod error;
pub mod identity;
pub mod service;

pub use error::{EvalError, Result};
pub use identity::{evaluate_identity, evaluate_payer_attribution, IdentityEval, PayerEval};
