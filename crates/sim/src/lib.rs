//! The simulator of the chain's two source systems, `cyrg2025` (store POS) and `cyrgweixin`
//! (WeChat mini-program), written as real relational databases (SQLite files by default,
//! MySQL/MariaDB or PostgreSQL by URL), with the ground truth written to a third database.
//!
//! Each person buys by a BG/NBD process (latent purchase rate λ ~ Gamma(r, α) per day, dropout
//! probability p ~ Beta(a, b) after each purchase) with Gamma-Gamma spend (ν ~ Gamma(q, γ),
//! basket target ~ Gamma(p, ν) yuan), holiday and weekend lift, personal daypart and product
//! tastes, a home store, and ids in one or both systems. The sources also get the dirt real ones
//! have: anonymous orders, refunds, test orders, duplicate syncs, placeholder and staff phones,
//! typos, malformed timestamps and dangling references. Everything is seeded and deterministic.
//!
//! [`world::advance`] moves time on past the cut-off with campaigns in it, and records each
//! campaign member's causal truth. Customer-service tickets carry a known cause.
//!
//! It is not the ETL: it knows nothing of the warehouse.

pub mod catalog;
mod gen;
pub mod layout;
pub mod schema;
pub mod world;

pub use gen::{simulate, SimConfig, SimError, SimSummary, TruthParams, CAUSES};
