//! What the refresh writes into the warehouse manifest's notes beside the tables, and the server
//! reads back: one type for both sides, so the writer and the reader cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The k-means run the refresh kept (note `segments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterNote {
    /// How many clusters.
    pub k: usize,
    /// (k, silhouette) for each k tried.
    pub silhouette_by_k: Vec<(usize, f64)>,
    /// What sets each cluster apart, by cluster number.
    pub descriptions: Vec<String>,
    /// The same per cluster, structured (share and features in standard deviations), so the
    /// dashboard words it in its own language; empty in snapshots written before it existed.
    #[serde(default)]
    pub traits: Vec<Option<c360_analytics::segment::ClusterTraits>>,
    /// The features it clustered on.
    pub features: Vec<String>,
}

impl ClusterNote {
    pub const KEY: &'static str = "segments";
    /// The note in a manifest's notes (None before a refresh wrote one).
    pub fn from_notes(notes: &BTreeMap<String, Value>) -> Option<Self> {
        serde_json::from_value(notes.get(Self::KEY)?.clone()).ok()
    }
}

/// The customer network as the refresh measured it (note `network`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkNote {
    /// Customers in the network.
    pub customers: usize,
    /// Directed share edges (who influenced whom).
    pub influence_edges: usize,
    /// Undirected ties (shares and group orders).
    pub ties: usize,
    pub communities: usize,
    /// Modularity of the community split.
    pub modularity: f64,
    pub pagerank_alpha: f64,
    /// Share cascades traced.
    pub cascades: usize,
    pub seeds: SeedNote,
}

impl NetworkNote {
    pub const KEY: &'static str = "network";
    /// The note in a manifest's notes (None before a refresh wrote one).
    pub fn from_notes(notes: &BTreeMap<String, Value>) -> Option<Self> {
        serde_json::from_value(notes.get(Self::KEY)?.clone()).ok()
    }
}

/// The seeds chosen for influence maximisation, and how far they reach against PageRank's top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeedNote {
    pub k: usize,
    /// The diffusion model the spreads are simulated under.
    pub model: String,
    /// Expected customers reached from the greedy seeds (None when there are none).
    pub expected_spread_greedy: Option<f64>,
    /// Expected customers reached from the same number of top-PageRank customers.
    pub expected_spread_top_pagerank: f64,
}
