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

/// One audit entry, for [`record_many_in`].
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub detail: Value,
}

/// The `audit_log` columns after `seq` and `at`, each cut to its width (PostgreSQL refuses
/// longer text) on a character; a NUL (which PostgreSQL text cannot hold) is kept written out
/// as `\u0000` rather than losing the entry.
fn columns(e: &Entry<'_>) -> [V; 6] {
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
    [
        esc(e.actor, 100).into(),
        esc(e.role, 16).into(),
        esc(e.action, 64).into(),
        esc(e.target, 128).into(),
        esc(e.outcome, 16).into(),
        V::from(e.detail.to_string()),
    ]
}

/// Appends several entries inside the caller's transaction, in order, with one counter update
/// and as few statements as the backend allows. Returns the first entry's sequence number.
pub async fn record_many_in(tx: &mut c360_db::tx::Tx, entries: &[Entry<'_>]) -> CoreResult<i64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let first = c360_metastore::Metastore::take_ids(
        tx,
        c360_metastore::Counter::AuditLog,
        entries.len() as i64,
    )
    .await?;
    let at = chrono::Utc::now().to_rfc3339();
    let rows: Vec<Vec<V>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut row = vec![(first + i as i64).into(), at.as_str().into()];
            row.extend(columns(e));
            row
        })
        .collect();
    tx.insert(
        "audit_log",
        &[
            "seq", "at", "actor", "role", "action", "target", "outcome", "detail",
        ],
        &rows,
    )
    .await?;
    Ok(first)
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
    let entry = Entry {
        actor,
        role,
        action,
        target,
        outcome,
        detail: detail.clone(),
    };
    record_many_in(tx, std::slice::from_ref(&entry)).await
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
