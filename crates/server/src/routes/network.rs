//! The customer network: influence, communities, cascades and seeds; one customer's place in it.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiResult, P, Q};
use crate::state::{AppState, Snapshot};
use crate::support::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopParams {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/network", params(TopParams), responses((status = 200, description = "Most influential customers (PageRank), communities (Louvain), share cascades and campaign seeds (influence maximisation)")))]
pub async fn network(
    State(st): State<AppState>,
    p: Principal,
    Q(tp): Q<TopParams>,
) -> ApiResult<Json<Value>> {
    let limit = tp.limit.unwrap_or(20).min(200);
    let key = format!("network|{}|{limit}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let sc = customer_scope(&p, "s");
            let join = "FROM customer_network n LEFT JOIN customer_segmentation s ON n.customer_id = s.customer_id";
            let influencers = q(&s, &format!(
                "SELECT n.customer_id, n.influence_rank, n.pagerank, n.community, n.community_size, n.ties_out, n.ties_in, \
                 n.shares_sent, n.cascade_reach, s.tier, s.rfm_class {join} WHERE 1 = 1{sc} ORDER BY n.influence_rank LIMIT {limit}")).await?;
            let communities = q(&s, &format!(
                "SELECT n.community, COUNT(*) AS members, SUM(n.pagerank) AS pagerank, SUM(n.shares_sent) AS shares, \
                 MIN(n.influence_rank) AS best_rank, approx_distinct(s.home_store_id) AS stores {join} WHERE 1 = 1{sc} \
                 GROUP BY n.community ORDER BY members DESC, n.community LIMIT {limit}")).await?;
            let seeds = q(&s, &format!(
                "SELECT n.customer_id, n.seed_rank, n.seed_spread, n.influence_rank, n.community {join} \
                 WHERE n.seed_rank IS NOT NULL{sc} ORDER BY n.seed_rank")).await?;
            let cascades = q(&s, &format!(
                "SELECT c.campaign, c.root_customer_id, c.reached, c.depth, c.longest_path FROM network_cascades c \
                 LEFT JOIN customer_segmentation s ON c.root_customer_id = s.customer_id WHERE 1 = 1{sc} \
                 ORDER BY c.reached DESC, c.depth DESC, c.campaign LIMIT {limit}")).await?;
            let campaigns = q(&s, &format!(
                "SELECT c.campaign, COUNT(*) AS cascades, SUM(c.reached) AS reached, MAX(c.depth) AS max_depth FROM network_cascades c \
                 LEFT JOIN customer_segmentation s ON c.root_customer_id = s.customer_id WHERE 1 = 1{sc} \
                 GROUP BY c.campaign ORDER BY c.campaign")).await?;
            let summary = s.sess.manifest.notes.get("network").cloned();
            Ok(json!({"summary": if p.store_scope().is_none() { summary } else { None },
                      "influencers": influencers, "communities": communities, "seeds": seeds,
                      "cascades": cascades, "campaigns": campaigns}))
        })
        .await?;
    Ok(ok(v))
}

/// Share of the networked customers that influence rank `rank` out-ranks (1 for the top). The
/// count is the refresh's network note, the same as `customer_network`'s rows.
pub fn influence_percentile(s: &Snapshot, rank: i64) -> f64 {
    let n = s
        .sess
        .manifest
        .notes
        .get("network")
        .and_then(|n| n["customers"].as_f64())
        .unwrap_or(rank as f64);
    1.0 - (rank as f64 - 1.0) / n.max(1.0)
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/network", params(("id" = i64, Path)), responses((status = 200, description = "The customer's influence rank, community, ties and the cascades they started")))]
pub async fn customer_network(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
) -> ApiResult<Json<Value>> {
    let key = format!("cnet|{}|{id}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            customer_row(&s, &p, id).await?;
            let me = q(&s, &format!("SELECT * FROM customer_network WHERE customer_id = {id}")).await?;
            let percentile = me.first().and_then(|m| m["influence_rank"].as_i64()).map(|r| influence_percentile(&s, r));
            let cascades = q(&s, &format!("SELECT campaign, reached, depth, longest_path FROM network_cascades WHERE root_customer_id = {id} ORDER BY reached DESC LIMIT 20")).await?;
            Ok(json!({"customer_id": id, "network": me.first(), "influence_percentile": percentile, "cascades": cascades}))
        })
        .await?;
    Ok(ok(v))
}
