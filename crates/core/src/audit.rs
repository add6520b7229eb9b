//! The audit trail: who did what to which object, when, and whether it was allowed — every
//! write through the API (campaigns, settings, experiments, ingestion, service resolutions), every
//! refused attempt, and key management from the CLI. Kept in the metastore; read by admins only.
//! Details never hold personal data (customer ids at most, never phones or names).

use c360_db::{get_i64, get_text, Db, Value as V};
use serde_json::Value;

use crate::CoreResult;

/// Appends one entry in its own transaction. Sequence numbers come from the metastore's counter.
pub async fn record(
    meta: &c360_metastore::Metastore,
    actor: &str,
    role: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &Value,
) -> CoreResult<i64> {
    let mut tx = meta.begin().await?;
    let seq = record_in(&mut tx, actor, role, action, target, outcome, detail).await?;
    tx.commit().await?;
    Ok(seq)
}

/// Appends one entry inside the caller's transaction (so an action and its entry commit
/// together).
pub async fn record_in(
    tx: &mut c360_db::tx::Tx,
    actor: &str,
    role: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &Value,
) -> CoreResult<i64> {
    let seq = c360_metastore::Metastore::take_ids(tx, c360_metastore::Counter::AuditLog, 1).await?;
    let at = chrono::Utc::now().to_rfc3339();
    // A refused request may carry a NUL (which PostgreSQL text cannot hold): the trail keeps it
    // written out as `\u0000` rather than losing the entry. Each column keeps at most its width
    // (PostgreSQL refuses longer text), cut on a character.
    let esc = |s: &str, width: usize| -> String {
        let s = s.replace('\0', "\\u0000");
        if s.chars().count() <= width {
            s
        } else {
            let mut t: String = s.chars().take(width - 1).collect();
            t.push('…');
            t
        }
    };
    tx.execute(
        "INSERT INTO audit_log (seq, at, actor, role, action, target, outcome, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            seq.into(),
            at.into(),
            esc(actor, 100).into(),
            esc(role, 16).into(),
            esc(action, 64).into(),
            esc(target, 128).into(),
            esc(outcome, 16).into(),
            V::from(detail.to_string()),
        ],
    )
    .await?;
    Ok(seq)
}

/// One entry of the audit trail.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The key's name.
    pub actor: String,
    pub role: String,
    /// What was attempted (e.g. campaign.launch).
    pub action: String,
    pub target: String,
    /// ok, denied, rejected or error.
    pub outcome: String,
    /// The action's details (and the error, when it failed).
    pub detail: Option<Value>,
}

/// The newest entries first, optionally of one action or actor.
pub async fn list(
    meta: &Db,
    limit: i64,
    action: Option<&str>,
    actor: Option<&str>,
) -> CoreResult<Vec<AuditEntry>> {
    let rows = meta
        .fetch(
            "SELECT * FROM audit_log WHERE (? IS NULL OR action = ?) AND (? IS NULL OR actor = ?) \
             ORDER BY seq DESC LIMIT ?",
            &[
                action.into(),
                action.into(),
                actor.into(),
                actor.into(),
                limit.clamp(1, 1000).into(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = |k: &str| get_text(r, k).unwrap_or_default();
            AuditEntry {
                seq: get_i64(r, "seq").unwrap_or(0),
                at: t("at"),
                actor: t("actor"),
                role: t("role"),
                action: t("action"),
                target: t("target"),
                outcome: t("outcome"),
                detail: get_text(r, "detail").and_then(|d| serde_json::from_str::<Value>(&d).ok()),
            }
        })
        .collect())
}
