//! AI insights for one customer: the facts, the rule-based writer, or the configured LLM with its
//! answer checked and cached in the metastore.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, P, Q};
use crate::state::{Answer, AppState};
use crate::support::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LangParams {
    /// zh (default) or en
    #[param(value_type = Option<doc::Lang>)]
    lang: Option<String>,
}

/// Who wrote an insight, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Generation {
    /// "rules", or the LLM's model name.
    pub writer: String,
    /// Why the rule-based writer was used (no LLM configured, or the LLM's answer was rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// "hit" or "miss" of the metastore's insight cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// Review excerpts left out of the prompt (personal data found in them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_excerpts: Option<usize>,
}

/// An insight, the facts it was written from, and how it was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerInsight {
    pub insight: c360_insights::Insight,
    pub facts: c360_insights::Facts,
    pub generation: Generation,
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/insights", params(("id" = i64, Path), LangParams), responses((status = 200, body = CustomerInsight, description = "Four sections: value, churn risk, marketing suggestions, product strategy — from computed facts only"), (status = 400, body = crate::error::ErrorBody)))]
pub(crate) async fn customer_insights(
    State(st): State<AppState>,
    p: Principal,
    P(id): P<i64>,
    Q(lp): Q<LangParams>,
) -> ApiResult<Answer<CustomerInsight>> {
    let lang = match lp.lang.as_deref().unwrap_or("zh") {
        l @ ("zh" | "en") => l.to_string(),
        l => {
            return Err(ApiError::BadRequest(format!(
                "lang: {l:?} is neither zh nor en"
            )))
        }
    };
    let key = format!("insights|{}|{id}|{lang}", p.scope_key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let row = customer_row(&s, &p, id).await?;
            let products: Vec<Value> = products_of(&s, id)?.into_iter().take(3).collect();
            let hol = s
                .rows_of("v_customer_holiday", id)?
                .first()
                .and_then(|h| h["holiday_lift"].as_f64())
                .unwrap_or(f64::NAN);
            let g = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
            let (avg_sentiment, aspect_scores) = crate::routes::sentiment::aspect_facts(&s.index.customer_facts(id, &["customer_emotion"])?, id).await?;
            let mut nf = Filter::new("TRUE");
            nf.eq("customer_id", id);
            let influence_percentile = qf(&s, &format!("SELECT influence_rank FROM customer_network WHERE {}", nf.sql()), &nf).await?
                .first()
                .and_then(|r| r["influence_rank"].as_i64())
                .map(|r| (crate::routes::network::influence_percentile(&s, r) * 100.0).round() / 100.0);
            let f = c360_insights::Facts {
                avg_sentiment,
                aspect_scores,
                influence_percentile,
                customer_id: id,
                tier: g("tier").as_str().map(String::from),
                rfm_class: g("rfm_class").as_str().map(String::from),
                lifecycle: g("lifecycle").as_str().map(String::from),
                order_count: g("order_count").as_i64().unwrap_or(0),
                total_spend_fen: g("total_spend_fen").as_i64().unwrap_or(0),
                avg_order_fen: g("avg_order_fen").as_i64(),
                recency_days: g("recency_days").as_i64(),
                p_alive: g("p_alive").as_f64(),
                p_churn_90d: g("p_churn_90d").as_f64(),
                expected_purchases_365d: g("expected_purchases_365d").as_f64(),
                clv_12m_fen: g("clv_12m_fen").as_f64(),
                value_growth: g("value_growth").as_f64(),
                wx_share: g("order_count")
                    .as_f64()
                    .filter(|n| *n > 0.0)
                    .map(|n| g("wx_orders").as_f64().unwrap_or(0.0) / n),
                favourite_daypart: favourite_daypart(&s, id)?,
                top_products: products
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r.get("name")?.as_str()?.to_string(),
                            r.get("share")?.as_f64()?,
                        ))
                    })
                    .collect(),
                avg_rating: g("avg_rating").as_f64(),
                review_count: g("review_count").as_i64().unwrap_or(0),
                holiday_lift: Some(hol).filter(|h| h.is_finite()),
            };
            let (insight, note) = match &st2.inner().llm {
                None => (c360_insights::rule_based(&f, &lang), Generation { writer: "rules".into(), reason: Some("no LLM configured".into()), cache: None, dropped_excerpts: None }),
                Some(llm) => {
                    let excerpts = crate::routes::sentiment::review_excerpts(&s, id).await?;
                    let prompt = c360_insights::llm::Prompt::build(&f, &excerpts, &lang);
                    let ck = prompt.cache_key(llm.model());
                    let hit = cached_insight(&st2, &ck).await?;
                    if hit.is_none() {
                        // Only a call that reaches the model counts against the key's LLM budget.
                        st2.admit_llm(&p)?;
                    }
                    match hit {
                        Some(i) => (i, Generation { writer: llm.model().to_string(), reason: None, cache: Some("hit"), dropped_excerpts: Some(prompt.dropped_excerpts) }),
                        None => match llm.write(&prompt, &f).await {
                            Ok(i) => {
                                store_insight(&st2, &ck, llm.model(), &i).await?;
                                (i, Generation { writer: llm.model().to_string(), reason: None, cache: Some("miss"), dropped_excerpts: Some(prompt.dropped_excerpts) })
                            }
                            Err(e) => {
                                tracing::warn!(customer_id = id, error = %e, "LLM insight rejected; rule-based writer used");
                                (c360_insights::rule_based(&f, &lang), Generation { writer: "rules".into(), reason: Some(e.to_string()), cache: None, dropped_excerpts: Some(prompt.dropped_excerpts) })
                            }
                        },
                    }
                }
            };
            Ok(CustomerInsight { insight, facts: f, generation: note })
        })
        .await
}

pub(crate) async fn cached_insight(
    st: &AppState,
    key: &str,
) -> ApiResult<Option<c360_insights::Insight>> {
    let rows = st
        .inner()
        .meta
        .fetch(
            "SELECT insight FROM insight_cache WHERE cache_key = ?",
            &[key.into()],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|r| c360_db::get_text(r, "insight"))
        .and_then(|t| serde_json::from_str(&t).ok()))
}

pub(crate) async fn store_insight(
    st: &AppState,
    key: &str,
    model: &str,
    i: &c360_insights::Insight,
) -> ApiResult<()> {
    crate::routes::live::insert_once(
        st,
        "insight_cache",
        &["cache_key", "model", "insight", "created_at"],
        vec![
            key.into(),
            model.into(),
            serde_json::to_string(i).unwrap_or_default().into(),
            chrono::Utc::now().to_rfc3339().into(),
        ],
    )
    .await?;
    Ok(())
}
