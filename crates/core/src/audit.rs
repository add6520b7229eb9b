//! The audit trail: who did what to which object, when, and whether it was allowed — every
//! write through the API (campaigns, settings, experiments, ingestion, service resolutions), every
//! refused attempt, and key management from the CLI. Kept in the metastore; read by admins only.
//! Details never hold personal data (customer ids at most, never phones or names).

use c360_db::{get_i64, get_text, Db, Value as V};
use serde_json::{json, Value};

use crate::CoreResult;

/// Appends one entry. Sequence numbers are dense; two writers racing for one retry.
pub async fn record(
    meta: &c360_metastore::Metastore,
    actor: &str,
    role: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &Value,
) -> CoreResult<i64> {
    let at = chrono::Utc::now().to_rfc3339();
    let detail = detail.to_string();
    Ok(meta
        .insert_with_id(
            c360_metastore::Counter::AuditLog,
            "audit_log",
            &[
                "seq", "at", "actor", "role", "action", "target", "outcome", "detail",
            ],
            |seq| {
                vec![
                    seq.into(),
                    at.clone().into(),
                    actor.into(),
                    role.into(),
                    action.into(),
                    target.into(),
                    outcome.into(),
                    V::from(detail.clone()),
                ]
            },
        )
        .await?)
}

/// The newest entries first, optionally of one action or actor.
pub async fn list(
    meta: &Db,
    limit: i64,
    action: Option<&str>,
    actor: Option<&str>,
) -> CoreResult<Vec<Value>> {
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
            json!({
                "seq": get_i64(r, "seq"),
                "at": get_text(r, "at"),
                "actor": get_text(r, "actor"),
                "role": get_text(r, "role"),
                "action": get_text(r, "action"),
                "target": get_text(r, "target"),
                "outcome": get_text(r, "outcome"),
                "detail": get_text(r, "detail").and_then(|d| serde_json::from_str::<Value>(&d).ok()),
            })
        })
        .collect())
}
