//! The review-sentiment model as a stored, versioned artefact, and the scoring of any text
//! with it (reviews collected elsewhere: Meituan, Dianping, surveys).
//!
//! A model is trained on the bundled corpus's training split and the chain's rated reviews
//! (rating ≥ 4 positive, ≤ 2 negative), written to the warehouse as
//! `_artifacts/sentiment/vNNNNNN.bin.gz` with its [`ModelCard`] in the manifest note
//! `sentiment_model`, and reused by every refresh until the chain's rated reviews change.
//! The card carries held-out figures: on the corpus's held-out texts (each once), and on a
//! fifth of the chain's rated reviews scored by a model trained the same way without them.

use std::collections::BTreeMap;

use c360_analytics::sentiment::{self, Sentiment};
use c360_warehouse::Warehouse;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{CoreError, CoreResult};

/// The manifest note that names the snapshot's model.
pub const NOTE_KEY: &str = "sentiment_model";

/// Aspects in the order the analyser scores them, with the API's names.
pub const ASPECTS: [(&str, &str); 6] = [
    ("口味", "taste"),
    ("服务", "service"),
    ("价格", "price"),
    ("环境", "environment"),
    ("速度", "speed"),
    ("卫生", "hygiene"),
];

/// Accuracy and AUC on texts the model did not learn from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeldOut {
    /// Distinct texts scored.
    pub n: usize,
    pub accuracy: f64,
    pub auc: f64,
}

impl From<sentiment::Scores> for HeldOut {
    fn from(s: sentiment::Scores) -> HeldOut {
        HeldOut {
            n: s.n,
            accuracy: s.accuracy,
            auc: s.auc,
        }
    }
}

/// What a stored model is and how well it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelCard {
    /// 1, 2, …: a new version each time the model is retrained.
    pub version: u32,
    /// The features' format ([`sentiment::MODEL_FORMAT`]); another format is retrained.
    pub format: u32,
    pub trained_at: String,
    /// SHA-256 over the chain's rated reviews it learned from (texts and labels, sorted): the
    /// next refresh retrains only when it changes.
    pub fingerprint: String,
    /// Distinct corpus texts in the training split.
    pub corpus_examples: usize,
    /// Distinct rated reviews of the chain learned from.
    pub chain_examples: usize,
    /// On the corpus's held-out split.
    pub held_out_corpus: HeldOut,
    /// On the fifth of the chain's rated reviews (by a hash of the text) held out of a model
    /// trained the same way; none with fewer than 20 such reviews.
    pub held_out_chain: Option<HeldOut>,
}

fn artifact(version: u32) -> String {
    format!("sentiment/v{version:06}.bin.gz")
}

fn fingerprint(rated: &[(String, bool)]) -> String {
    let mut h = Sha256::new();
    for (t, y) in rated {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
        h.update([*y as u8]);
    }
    hex::encode(h.finalize())
}

/// The model for a snapshot whose chain has these `rated` reviews: the previous snapshot's
/// (`prev`, its card) when they have not changed and its artefact is there, otherwise a new
/// version trained (on the corpus's training texts plus the chain's examples, see
/// [`sentiment::train_default`]) and stored.
pub fn fit_or_reuse(
    wh: &Warehouse,
    prev: Option<&ModelCard>,
    rated: Vec<(String, bool)>,
) -> CoreResult<(Sentiment, ModelCard)> {
    let rated = sentiment::distinct(rated);
    let fp = fingerprint(&rated);
    if let Some(card) = prev.filter(|c| c.fingerprint == fp && c.format == sentiment::MODEL_FORMAT)
    {
        if let Some(bytes) = wh.get_artifact(&artifact(card.version))? {
            match Sentiment::from_bytes(&bytes) {
                Ok(m) => return Ok((m, card.clone())),
                Err(e) => {
                    tracing::warn!(version = card.version, error = %e, "stored sentiment model unreadable; retraining")
                }
            }
        }
    }
    let model = sentiment::train_default(&rated);
    let test = sentiment::corpus_test();
    let held_out_corpus = sentiment::evaluate(&model, &test).into();
    let (chain_test, chain_train): (Vec<_>, Vec<_>) = rated
        .iter()
        .cloned()
        .partition(|(t, _)| sentiment::held_out(t));
    let held_out_chain = (chain_test.len() >= 20
        && chain_test.iter().any(|t| t.1)
        && chain_test.iter().any(|t| !t.1))
    .then(|| sentiment::evaluate(&sentiment::train_default(&chain_train), &chain_test).into());
    let card = ModelCard {
        version: prev.map_or(1, |c| c.version + 1),
        format: sentiment::MODEL_FORMAT,
        trained_at: chrono::Utc::now().to_rfc3339(),
        fingerprint: fp,
        corpus_examples: sentiment::corpus_train_texts(),
        chain_examples: rated.len(),
        held_out_corpus,
        held_out_chain,
    };
    wh.put_artifact(&artifact(card.version), &model.to_bytes())?;
    tracing::info!(
        version = card.version,
        chain_examples = card.chain_examples,
        auc = card.held_out_corpus.auc,
        "sentiment model trained and stored"
    );
    Ok((model, card))
}

/// The card a manifest's notes name, if any.
pub fn card_of(notes: &BTreeMap<String, serde_json::Value>) -> Option<ModelCard> {
    notes
        .get(NOTE_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The model a snapshot's notes name, loaded from its artefact; `None` for a snapshot refreshed
/// before models were stored.
pub fn load(
    wh: &Warehouse,
    notes: &BTreeMap<String, serde_json::Value>,
) -> CoreResult<Option<(Sentiment, ModelCard)>> {
    let Some(card) = card_of(notes) else {
        return Ok(None);
    };
    let bytes = wh.get_artifact(&artifact(card.version))?.ok_or_else(|| {
        CoreError::Internal(format!(
            "sentiment model v{} named by the snapshot is missing",
            card.version
        ))
    })?;
    let m = Sentiment::from_bytes(&bytes).map_err(CoreError::Internal)?;
    Ok(Some((m, card)))
}

/// Which way a text leans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    Positive,
    Neutral,
    Negative,
}

/// One text's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextScore {
    /// Positive when P(positive) ≥ 0.6, negative when ≤ 0.4, neutral between.
    pub polarity: Polarity,
    /// P(positive), in [0, 1].
    pub probability: f64,
    /// 2p − 1, in [−1, 1].
    pub score: f64,
    /// Per aspect the text mentions (taste, service, price, environment, speed, hygiene), its
    /// score in [−1, 1].
    pub aspects: BTreeMap<String, f64>,
}

/// The longest prefix of a text that is scored, in characters.
pub const SCORE_CHARS: usize = 5_000;

/// Scores one text (its first [`SCORE_CHARS`] characters).
pub fn score(m: &Sentiment, text: &str) -> TextScore {
    let a = match text.char_indices().nth(SCORE_CHARS) {
        Some((end, _)) => m.analyse(&text[..end]),
        None => m.analyse(text),
    };
    let p = ((a.overall + 1.0) / 2.0).clamp(0.0, 1.0);
    TextScore {
        polarity: if p >= 0.6 {
            Polarity::Positive
        } else if p <= 0.4 {
            Polarity::Negative
        } else {
            Polarity::Neutral
        },
        probability: p,
        score: a.overall,
        aspects: ASPECTS
            .iter()
            .zip(a.aspects)
            .filter_map(|((_, en), s)| s.map(|s| (en.to_string(), s)))
            .collect(),
    }
}
