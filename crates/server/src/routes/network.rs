//! The customer network: influence, communities, cascades and seeds; one customer's place in it.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::authz;
use crate::error::{ApiResult, P, Q};
use crate::state::{Answer, AppState, Snapshot};
use crate::support::*;
use c360_core::notes::NetworkNote;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopParams {
    /// Rows per list (default 20; at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// The customer network.
#[derive(Debug, Serialize, ToSchema)]
pub struct Network {
    /// The refresh's network summary (admins and analysts only).
    pub summary: Option<NetworkNote>,
    /// customer_id, influence_rank, pagerank, community, community_size, ties_out, ties_in,
    /// shares_sent, cascade_reach, tier, rfm_class.
    pub influencers: Vec<Row>,
    /// community, members, pagerank, shares, best_rank, stores.
    pub communities: Vec<Row>,
    /// customer_id, seed_rank, seed_spread, influence_rank, community.
    pub seeds: Vec<Row>,
    /// campaign, root_customer_id, reached, depth, longest_path.
    pub cascades: Vec<Row>,
    /// campaign, cascades, reached, max_depth.
    pub campaigns: Vec<Row>,
}

/// One customer's place in the network.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerNetwork {
    pub customer_id: i64,
    /// Their `customer_network` row (none when they have no ties).
    pub network: Option<Row>,
    /// Share of networked customers they out-rank.
    pub influence_percentile: Option<f64>,
    /// campaign, reached, depth, longest_path of the cascades they started.
    pub cascades: Vec<Row>,
}

#[utoipa::path(get, path = "/api/v1/network", params(TopParams), responses((status = 200, body = Network, description = "Most influential customers (PageRank), communities (Louvain), share cascades and campaign seeds (influence maximisation)"), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn network(
    State(st): State<AppState>,
    p: Principal,
    Q(tp): Q<TopParams>,
) -> ApiResult<Answer<Network>> {
    st.needs(
        "the customer network",
        &["shares", "group_orders", "paid_by"],
    )
    .await?;
    let limit = bounded("limit", tp.limit, 20, 1, 200)?;
    let key = format!("network|{}|{limit}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let sc = scoped(&p, "TRUE", "s.home_store_id");
            let seedf = scoped(&p, "n.seed_rank IS NOT NULL", "s.home_store_id");
            let w = sc.sql();
            let mut scl = sc.clone();
            let lim = scl.value(limit as i64);
            let scl = scl.params;
            let join = "FROM customer_network n LEFT JOIN customer_segmentation s ON n.customer_id = s.customer_id";
            let influencers = query_with(&s.sess, &format!(
                "SELECT n.customer_id, n.influence_rank, n.pagerank, n.community, n.community_size, n.ties_out, n.ties_in, \
                 n.shares_sent, n.cascade_reach, s.tier, s.rfm_class {join} WHERE {w} ORDER BY n.influence_rank LIMIT {lim}"), scl.clone()).await?;
            let communities = query_with(&s.sess, &format!(
                "SELECT n.community, COUNT(*) AS members, SUM(n.pagerank) AS pagerank, SUM(n.shares_sent) AS shares, \
                 MIN(n.influence_rank) AS best_rank, approx_distinct(s.home_store_id) AS stores {join} WHERE {w} \
                 GROUP BY n.community ORDER BY members DESC, n.community LIMIT {lim}"), scl.clone()).await?;
            let seeds = query_with(&s.sess, &format!(
                "SELECT n.customer_id, n.seed_rank, n.seed_spread, n.influence_rank, n.community {join} \
                 WHERE {} ORDER BY n.seed_rank", seedf.sql()), seedf.params).await?;
            let cascades = query_with(&s.sess, &format!(
                "SELECT c.campaign, c.root_customer_id, c.reached, c.depth, c.longest_path FROM network_cascades c \
                 LEFT JOIN customer_segmentation s ON c.root_customer_id = s.customer_id WHERE {w} \
                 ORDER BY c.reached DESC, c.depth DESC, c.campaign LIMIT {lim}"), scl).await?;
            let campaigns = query_with(&s.sess, &format!(
                "SELECT c.campaign, COUNT(*) AS cascades, SUM(c.reached) AS reached, MAX(c.depth) AS max_depth FROM network_cascades c \
                 LEFT JOIN customer_segmentation s ON c.root_customer_id = s.customer_id WHERE {w} \
                 GROUP BY c.campaign ORDER BY c.campaign"), sc.params.clone()).await?;
            // The chain's figures: admins and analysts only.
            let summary = authz::stores(&p)
                .is_none()
                .then(|| NetworkNote::from_notes(&s.sess.manifest.notes))
                .flatten();
            Ok(Network {
                summary,
                influencers: rows(influencers),
                communities: rows(communities),
                seeds: rows(seeds),
                cascades: paths_for(&p, rows(cascades)),
                campaigns: rows(campaigns),
            })
        })
        .await
}

/// A cascade's path names the customers it reached, of any store: a store manager gets the
/// cascade without it.
fn paths_for(p: &Principal, mut cascades: Vec<Row>) -> Vec<Row> {
    if authz::stores(p).is_some() {
        for c in &mut cascades {
            if let Some(v) = c.0.get_mut("longest_path") {
                *v = serde_json::Value::Null;
            }
        }
    }
    cascades
}

/// Share of the networked customers that influence rank `rank` out-ranks (1 for the top). The
/// count is the refresh's network note, the same as `customer_network`'s rows.
pub fn influence_percentile(s: &Snapshot, rank: i64) -> f64 {
    let n =
        NetworkNote::from_notes(&s.sess.manifest.notes).map_or(rank as f64, |n| n.customers as f64);
    1.0 - (rank as f64 - 1.0) / n.max(1.0)
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/network", params(("id" = i64, Path)), responses((status = 200, body = CustomerNetwork, description = "The customer's influence rank, community, ties and the cascades they started"), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn customer_network(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Answer<CustomerNetwork>> {
    st.needs(
        "a customer's network",
        &["shares", "group_orders", "paid_by"],
    )
    .await?;
    let key = format!("cnet|{}|{id}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            customer_row(&s, &p, id).await?;
            let mut f = Filter::new("TRUE");
            f.eq("customer_id", id);
            let me = qf(&s, &format!("SELECT * FROM customer_network WHERE {}", f.sql()), &f).await?;
            let percentile = me.first().and_then(|m| m["influence_rank"].as_i64()).map(|r| influence_percentile(&s, r));
            let mut f = Filter::new("TRUE");
            f.eq("root_customer_id", id);
            let cascades = qf(&s, &format!("SELECT campaign, reached, depth, longest_path FROM network_cascades WHERE {} ORDER BY reached DESC LIMIT 20", f.sql()), &f).await?;
            Ok(CustomerNetwork {
                customer_id: id,
                network: first(me),
                influence_percentile: percentile,
                cascades: paths_for(&p, rows(cascades)),
            })
        })
        .await
}
