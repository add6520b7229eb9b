//! Personal-data rights under PIPL (个人信息保护法): a person's data exported on request (art. 45)
//! and erased on request (art. 47), both recorded as requests and in the audit trail.
//!
//! An erasure takes the customer out of the metastore at once, in one transaction: identity
//! nodes and their journal, live orders (kept as anonymous sales), live events, campaign
//! memberships, journey sends, the stream log's messages about them, the insight cache; and
//! records their source ids in `erased_keys`, so no later ETL run loads them again. The
//! warehouse (Parquet under a new manifest, older versions purged), its serving index and the
//! audience bitmaps are rewritten by the ETL (`c360_etl::privacy`), which completes the request:
//! until then it is `pending`. Orders stay as anonymous sales, so the chain's revenue does not
//! change; everything that names or describes the person goes.
//!
//! This module is not the ETL and not HTTP: it reads a snapshot and writes the metastore.

use std::collections::BTreeSet;

use c360_db::{get_i64, get_text, Db, Value as V};
use c360_metastore::{Counter, Metastore};
use c360_warehouse::Session;
use datafusion::scalar::ScalarValue;
use serde::Serialize;
use serde_json::{json, Value};

use crate::query::query_with;
use crate::{CoreError, CoreResult};

/// One export or erasure request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrivacyRequest {
    pub request_id: i64,
    /// export or erase.
    pub kind: String,
    pub customer_id: i64,
    /// done, or pending (an erasure whose warehouse part waits for the next ETL run).
    pub status: String,
    pub requested_by: Option<String>,
    /// RFC 3339, UTC.
    pub requested_at: String,
    pub reason: Option<String>,
    pub completed_at: Option<String>,
    /// What was exported or erased (counts per place).
    pub detail: Option<Value>,
}

/// Everything c360 holds about one customer, as given to them (PIPL art. 45). Identifiers
/// appear as the sources hold them masked; keyed hashes are not personal data of theirs to read
/// and are left out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonalData {
    pub customer_id: i64,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// Their accounts in the source systems (POS members, mini-program users).
    pub accounts: Vec<Value>,
    /// Their profile (`v_customer_360`: scores, segments, predictions, consent).
    pub profile: Option<Value>,
    pub orders: Vec<Value>,
    pub order_items: Vec<Value>,
    pub reviews: Vec<Value>,
    pub events: Vec<Value>,
    pub tickets: Vec<Value>,
    /// Pages they shared, group orders they joined and orders paid for a friend (the other
    /// person named by a customer id at most).
    pub shares: Vec<Value>,
    pub ties: Vec<Value>,
    pub predictions: Vec<Value>,
    /// Orders received live since the last ETL run.
    pub live_orders: Vec<Value>,
    pub campaigns: Vec<Value>,
    pub journeys: Vec<Value>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The customer a phone number names (its keyed hash in the identity graph), if any.
pub async fn find_by_phone(
    meta: &Metastore,
    key: &c360_model::pii::PiiKey,
    phone: &str,
) -> CoreResult<Option<i64>> {
    let p = c360_model::Phone::parse(phone)
        .map_err(|e| CoreError::BadRequest(format!("phone: {e}")))?;
    let rows = meta
        .db
        .fetch(
            "SELECT customer_id FROM identity_nodes WHERE phone_hash = ? AND customer_id IS NOT NULL ORDER BY customer_id LIMIT 1",
            &[p.hashed(key).into()],
        )
        .await?;
    Ok(rows.first().and_then(|r| get_i64(r, "customer_id")))
}

async fn rows(sess: &Session, sql: &str, id: i64) -> CoreResult<Vec<Value>> {
    query_with(sess, sql, vec![ScalarValue::Int64(Some(id))]).await
}

async fn meta_rows(db: &Db, sql: &str, id: i64) -> CoreResult<Vec<Value>> {
    let out = db.fetch(sql, &[id.into()]).await?;
    Ok(out.iter().map(c360_db::row_json).collect())
}

/// Gathers everything about customer `id` from the snapshot `sess` (none: the warehouse is
/// empty) and the metastore, records the request and audits it.
pub async fn export(
    sess: Option<&Session>,
    meta: &Metastore,
    id: i64,
    actor: &str,
    role: &str,
) -> CoreResult<PersonalData> {
    let db = &meta.db;
    let accounts = meta_rows(
        db,
        "SELECT source_key, phone_masked, name_masked, gender, birth_year, register_store_id, created_at, \
         consent_wechat, consent_sms, consent_push, consent_at FROM identity_nodes WHERE customer_id = ? ORDER BY source_key",
        id,
    )
    .await?;
    let mut out = PersonalData {
        customer_id: id,
        generated_at: now(),
        accounts,
        profile: None,
        orders: vec![],
        order_items: vec![],
        reviews: vec![],
        events: vec![],
        tickets: vec![],
        shares: vec![],
        ties: vec![],
        predictions: vec![],
        live_orders: meta_rows(
            db,
            "SELECT order_no, store_id, order_time, total_fen, items FROM live_orders WHERE customer_id = ? ORDER BY order_time",
            id,
        )
        .await?,
        campaigns: meta_rows(
            db,
            "SELECT campaign_id, arm, coupon_code, discount_fen, sku, daypart, send_at, status FROM campaign_members WHERE customer_id = ? ORDER BY campaign_id",
            id,
        )
        .await?,
        journeys: meta_rows(
            db,
            "SELECT kind, arm, status, coupon_code, discount_fen, sku, send_at, reason FROM journey_sends WHERE customer_id = ? ORDER BY send_at, trigger_key",
            id,
        )
        .await?,
    };
    if let Some(s) = sess {
        out.profile = rows(s, "SELECT * FROM v_customer_360 WHERE customer_id = $1", id)
            .await?
            .into_iter()
            .next();
        out.orders = rows(
            s,
            "SELECT order_id, order_no, store_id, order_time, total_fen, discount_fen, channel, pay_method, status, coupon_code \
             FROM orders WHERE customer_id = $1 ORDER BY order_time, order_id",
            id,
        )
        .await?;
        out.order_items = rows(
            s,
            "SELECT i.order_id, p.name AS product, i.qty, i.amount_fen FROM order_items i \
             JOIN orders o ON i.order_id = o.order_id LEFT JOIN products p ON p.product_id = i.product_id \
             WHERE o.customer_id = $1 ORDER BY i.order_id, i.item_id",
            id,
        )
        .await?;
        out.reviews = rows(
            s,
            "SELECT emotion_id AS review_id, order_id, store_id, rating, content, created_at, sentiment \
             FROM customer_emotion WHERE customer_id = $1 ORDER BY created_at",
            id,
        )
        .await?;
        out.events = rows(
            s,
            "SELECT session_id, action_type, page, event_time, device FROM customer_behavior_tracks \
             WHERE customer_id = $1 ORDER BY event_time",
            id,
        )
        .await?;
        out.tickets = rows(
            s,
            "SELECT ticket_key, order_key, created_at, message, status, resolved_cause FROM service_tickets \
             WHERE customer_id = $1 ORDER BY created_at",
            id,
        )
        .await?;
        out.shares = rows(
            s,
            "SELECT s.share_key, s.page, s.campaign, s.share_time, t.customer_id AS to_customer_id \
             FROM customer_shares_raw s JOIN customer_keys k ON s.customer_key = k.source_key \
             LEFT JOIN customer_keys t ON s.to_customer_key = t.source_key \
             WHERE k.customer_id = $1 ORDER BY s.share_time, s.share_key",
            id,
        )
        .await?;
        out.ties = rows(
            s,
            "SELECT x.kind, x.ref_id, x.at, o.customer_id AS other_customer_id \
             FROM customer_ties_raw x JOIN customer_keys k ON x.customer_key = k.source_key \
             LEFT JOIN customer_keys o ON x.other_key = o.source_key \
             WHERE k.customer_id = $1 ORDER BY x.at, x.tie_key",
            id,
        )
        .await?;
        out.predictions = rows(
            s,
            "SELECT model, metric, horizon_days, value, as_of FROM customer_predictions WHERE customer_id = $1 ORDER BY model, metric",
            id,
        )
        .await?;
    }
    if out.accounts.is_empty() && out.profile.is_none() && out.live_orders.is_empty() {
        return Err(CoreError::NotFound(format!("customer {id}")));
    }
    let detail = json!({
        "accounts": out.accounts.len(), "orders": out.orders.len(), "reviews": out.reviews.len(),
        "events": out.events.len(), "tickets": out.tickets.len(), "shares": out.shares.len(),
        "ties": out.ties.len(), "live_orders": out.live_orders.len(),
        "campaigns": out.campaigns.len(), "journeys": out.journeys.len(),
    });
    let mut tx = meta.begin().await?;
    let rid = Metastore::take_ids(&mut tx, Counter::PrivacyRequests, 1).await?;
    let at = now();
    let req = PrivacyRequest {
        request_id: rid,
        kind: "export".into(),
        customer_id: id,
        status: "done".into(),
        requested_by: Some(actor.into()),
        requested_at: at.clone(),
        reason: None,
        completed_at: Some(at),
        detail: Some(detail.clone()),
    };
    record(
        &mut tx,
        &req,
        role,
        json!({"request_id": rid, "sections": detail}),
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Stores a request and its audit entry in the caller's transaction.
async fn record(
    tx: &mut c360_db::tx::Tx,
    r: &PrivacyRequest,
    role: &str,
    audit: Value,
) -> CoreResult<()> {
    let text = |v: &Option<String>| v.clone().map_or(V::NullS, V::from);
    tx.insert(
        "privacy_requests",
        REQUEST_COLS,
        &[vec![
            r.request_id.into(),
            r.kind.clone().into(),
            r.customer_id.into(),
            r.status.clone().into(),
            text(&r.requested_by),
            r.requested_at.clone().into(),
            text(&r.reason),
            text(&r.completed_at),
            r.detail
                .as_ref()
                .map_or(V::NullS, |d| V::from(d.to_string())),
        ]],
    )
    .await?;
    let actor = r.requested_by.as_deref().unwrap_or("");
    crate::audit::record_in(
        tx,
        actor,
        role,
        &format!("privacy.{}", r.kind),
        &format!("customer:{}", r.customer_id),
        "ok",
        &audit,
    )
    .await?;
    Ok(())
}

const REQUEST_COLS: &[&str] = &[
    "request_id",
    "kind",
    "customer_id",
    "status",
    "requested_by",
    "requested_at",
    "reason",
    "completed_at",
    "detail",
];

/// The source ids of customer `id` in snapshot `sess` (their members, users, payment accounts
/// and live-event key), which an erasure records so no later run loads them again.
pub async fn warehouse_keys(sess: &Session, id: i64) -> CoreResult<Vec<String>> {
    Ok(rows(
        sess,
        "SELECT source_key FROM customer_keys WHERE customer_id = $1 ORDER BY source_key",
        id,
    )
    .await?
    .iter()
    .filter_map(|r| r["source_key"].as_str().map(String::from))
    .collect())
}

/// Erases customer `id` from the metastore at once and records the request, pending until the
/// ETL rewrites the warehouse and its caches (`c360_etl::privacy::apply`). `wh_keys`: their
/// source ids in the current snapshot ([`warehouse_keys`]). A customer already erased, or
/// unknown everywhere, is an error.
pub async fn erase(
    meta: &Metastore,
    id: i64,
    wh_keys: &[String],
    actor: &str,
    role: &str,
    reason: &str,
) -> CoreResult<PrivacyRequest> {
    let db = &meta.db;
    let mut keys: BTreeSet<String> = wh_keys.iter().cloned().collect();
    for r in db
        .fetch(
            "SELECT source_key FROM identity_nodes WHERE customer_id = ?",
            &[id.into()],
        )
        .await?
    {
        if let Some(k) = get_text(&r, "source_key") {
            keys.insert(k);
        }
    }
    let live = db
        .fetch(
            "SELECT COUNT(*) AS n FROM live_orders WHERE customer_id = ?",
            &[id.into()],
        )
        .await?
        .first()
        .and_then(|r| get_i64(r, "n"))
        .unwrap_or(0);
    if keys.is_empty() && live == 0 {
        let done = db
            .fetch(
                "SELECT request_id FROM privacy_requests WHERE kind = 'erase' AND customer_id = ?",
                &[id.into()],
            )
            .await?;
        return Err(if done.is_empty() {
            CoreError::NotFound(format!("customer {id}"))
        } else {
            CoreError::Conflict(format!("customer {id} was already erased"))
        });
    }
    // Events posted live name the customer id itself.
    keys.insert(format!("C:{id}"));
    let at = now();
    let mut tx = meta.begin().await?;
    let rid = Metastore::take_ids(&mut tx, Counter::PrivacyRequests, 1).await?;
    let key_rows: Vec<Vec<V>> = keys
        .iter()
        .map(|k| vec![k.clone().into(), rid.into(), at.clone().into()])
        .collect();
    tx.insert_new(
        "erased_keys",
        &["source_key", "request_id", "at"],
        "source_key",
        &key_rows,
    )
    .await?;
    let mut counts = serde_json::Map::new();
    let mut count = |what: &str, n: u64| {
        counts.insert(what.to_string(), json!(n));
    };
    let one = [V::from(id)];
    let two = [V::from(id), V::from(id)];
    count(
        "identity_nodes",
        tx.execute("DELETE FROM identity_nodes WHERE customer_id = ?", &one)
            .await?,
    );
    count(
        "identity_journal",
        tx.execute(
            "DELETE FROM identity_journal WHERE from_customer = ? OR to_customer = ?",
            &two,
        )
        .await?,
    );
    tx.execute(
        "DELETE FROM identity_staged WHERE from_customer = ? OR to_customer = ?",
        &two,
    )
    .await?;
    let mut blocks = 0;
    for k in &keys {
        blocks += tx
            .execute(
                "DELETE FROM identity_blocks WHERE source_key = ?",
                &[k.clone().into()],
            )
            .await?;
        tx.execute(
            "DELETE FROM identity_nodes WHERE source_key = ?",
            &[k.clone().into()],
        )
        .await?;
    }
    count("identity_blocks", blocks);
    count(
        "live_orders_anonymised",
        tx.execute(
            "UPDATE live_orders SET customer_id = NULL WHERE customer_id = ?",
            &one,
        )
        .await?,
    );
    count(
        "live_events",
        tx.execute("DELETE FROM live_events WHERE customer_id = ?", &one)
            .await?,
    );
    count(
        "campaign_members",
        tx.execute("DELETE FROM campaign_members WHERE customer_id = ?", &one)
            .await?,
    );
    count(
        "journey_sends",
        tx.execute("DELETE FROM journey_sends WHERE customer_id = ?", &one)
            .await?,
    );
    // Pushed messages and quarantined live rows that name them (JSON text).
    let mut logged = 0;
    for end in [",", "}"] {
        let pat = V::from(format!("%\"customer_id\":{id}{end}%"));
        logged += tx
            .execute(
                "DELETE FROM stream_log WHERE payload LIKE ?",
                std::slice::from_ref(&pat),
            )
            .await?;
        logged += tx
            .execute("DELETE FROM live_quarantine WHERE row_json LIKE ?", &[pat])
            .await?;
    }
    count("stream_log", logged);
    // An insight may have been written about them: the cache is cheap to rebuild.
    count(
        "insight_cache",
        tx.execute("DELETE FROM insight_cache", &[]).await?,
    );
    count("source_keys", keys.len() as u64);
    let detail = Value::Object(counts);
    let req = PrivacyRequest {
        request_id: rid,
        kind: "erase".into(),
        customer_id: id,
        status: "pending".into(),
        requested_by: Some(actor.into()),
        requested_at: at,
        reason: Some(reason.into()),
        completed_at: None,
        detail: Some(detail.clone()),
    };
    record(
        &mut tx,
        &req,
        role,
        json!({"request_id": rid, "metastore": detail, "warehouse": "pending"}),
    )
    .await?;
    tx.commit().await?;
    Ok(req)
}

fn request_of(r: &c360_db::sqlx::any::AnyRow) -> PrivacyRequest {
    PrivacyRequest {
        request_id: get_i64(r, "request_id").unwrap_or(0),
        kind: get_text(r, "kind").unwrap_or_default(),
        customer_id: get_i64(r, "customer_id").unwrap_or(0),
        status: get_text(r, "status").unwrap_or_default(),
        requested_by: get_text(r, "requested_by"),
        requested_at: get_text(r, "requested_at").unwrap_or_default(),
        reason: get_text(r, "reason"),
        completed_at: get_text(r, "completed_at"),
        detail: get_text(r, "detail").and_then(|t| serde_json::from_str(&t).ok()),
    }
}

/// The newest requests first.
pub async fn requests(db: &Db, limit: i64) -> CoreResult<Vec<PrivacyRequest>> {
    Ok(db
        .fetch(
            "SELECT * FROM privacy_requests ORDER BY request_id DESC LIMIT ?",
            &[limit.into()],
        )
        .await?
        .iter()
        .map(request_of)
        .collect())
}

/// Erasures whose warehouse part is still to do, oldest first.
pub async fn pending_erasures(db: &Db) -> CoreResult<Vec<PrivacyRequest>> {
    Ok(db
        .fetch(
            "SELECT * FROM privacy_requests WHERE kind = 'erase' AND status = 'pending' ORDER BY request_id",
            &[],
        )
        .await?
        .iter()
        .map(request_of)
        .collect())
}

/// The customers whose erasure waits for its warehouse part (a snapshot may still hold them:
/// they are in no send list and no answer).
pub async fn pending_erased_ids(db: &Db) -> CoreResult<std::collections::HashSet<i64>> {
    Ok(db
        .fetch_all(
            "SELECT customer_id FROM privacy_requests WHERE kind = 'erase' AND status = 'pending'",
        )
        .await?
        .iter()
        .filter_map(|r| get_i64(r, "customer_id"))
        .collect())
}

/// Every erased source id (the ETL loads none of them).
pub async fn erased_keys(db: &Db) -> CoreResult<std::collections::HashSet<String>> {
    Ok(db
        .fetch_all("SELECT source_key FROM erased_keys")
        .await?
        .iter()
        .filter_map(|r| get_text(r, "source_key"))
        .collect())
}

/// Marks erasures done once the warehouse and its caches no longer hold them, and audits it.
pub async fn complete(
    meta: &Metastore,
    done: &[PrivacyRequest],
    detail: &Value,
    actor: &str,
) -> CoreResult<()> {
    if done.is_empty() {
        return Ok(());
    }
    let at = now();
    let mut tx = meta.begin().await?;
    for r in done {
        let mut d = r.detail.clone().unwrap_or_else(|| json!({}));
        d["warehouse"] = detail.clone();
        tx.execute(
            "UPDATE privacy_requests SET status = 'done', completed_at = ?, detail = ? WHERE request_id = ?",
            &[at.clone().into(), d.to_string().into(), r.request_id.into()],
        )
        .await?;
    }
    let entries: Vec<String> = done
        .iter()
        .map(|r| format!("customer:{}", r.customer_id))
        .collect();
    let audit: Vec<crate::audit::Entry<'_>> = done
        .iter()
        .zip(&entries)
        .map(|(r, target)| crate::audit::Entry {
            actor,
            role: "system",
            action: "privacy.erase.complete",
            target,
            outcome: "ok",
            detail: json!({"request_id": r.request_id, "warehouse": detail}),
        })
        .collect();
    crate::audit::record_many_in(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(())
}
