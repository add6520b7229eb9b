//! Live push: every change (an ingested order or event, a customer's new scores, live metrics,
//! a new warehouse snapshot) is appended to a durable log in the metastore (`stream_log`) with a
//! sequence number, then broadcast. A WebSocket client subscribes to topics with the last
//! sequence it saw; the server replays what it missed from the log before going live, so a
//! client that reconnects misses nothing it asked for.
//!
//! The log is kept by age and size ([`Hub::prune`], run by the server every minute); a client
//! whose `since` is older than what the log still holds, or more than [`MAX_REPLAY`] events
//! behind, gets `too_old` and refetches over REST instead of a replay.
//!
//! Topics: `orders`, `events`, `metrics`, `etl`, and `customer:ID`. Store managers only receive
//! what concerns their stores (an order's store, a customer's home store), and their metrics are
//! cut down to their stores.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::ws::Message;
use c360_db::{get_i64, get_text, Value as V};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex};

use crate::error::ApiResult;

/// One published change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub topic: String,
    /// The store the change belongs to (None: chain-wide).
    pub store_id: Option<i64>,
    pub data: Value,
    pub at: String,
}

/// The most events one subscription replays; further behind, the client refetches.
pub const MAX_REPLAY: i64 = 10_000;

pub struct Hub {
    db: c360_metastore::Metastore,
    tx: broadcast::Sender<Arc<Event>>,
    seq: AtomicI64,
    /// Serialises appends so sequence numbers reach the log in order.
    write: Mutex<()>,
}

impl Hub {
    pub async fn open(db: c360_metastore::Metastore) -> ApiResult<Hub> {
        let head = db
            .fetch_all("SELECT MAX(seq) AS m FROM stream_log")
            .await?
            .first()
            .and_then(|r| get_i64(r, "m"))
            .unwrap_or(0);
        let (tx, _) = broadcast::channel(4096);
        Ok(Hub {
            db,
            tx,
            seq: AtomicI64::new(head),
            write: Mutex::new(()),
        })
    }

    pub fn head(&self) -> i64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Appends to the durable log, then broadcasts. Returns the event's sequence number.
    pub async fn publish(&self, topic: &str, store_id: Option<i64>, data: Value) -> ApiResult<i64> {
        self.publish_all(vec![(topic.to_string(), store_id, data)])
            .await
            .map(|s| s[0])
    }

    /// Appends several events in one metastore transaction, then broadcasts them in order.
    pub async fn publish_all(
        &self,
        events: Vec<(String, Option<i64>, Value)>,
    ) -> ApiResult<Vec<i64>> {
        let _w = self.write_lock().await;
        let mut tx = self.db.begin().await?;
        let logged = self.log_in(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(self.announce(logged, events))
    }

    /// Holds the log's order: appends (and whatever commits with them) happen one at a time.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// Appends events to the log inside the caller's transaction (the caller holds
    /// [`Hub::write_lock`] until it has committed and called [`Hub::announce`]). Returns the
    /// first sequence number and the time stamp.
    pub async fn log_in(
        &self,
        tx: &mut c360_db::tx::Tx,
        events: &[(String, Option<i64>, Value)],
    ) -> ApiResult<(i64, String)> {
        // Sequence numbers from the metastore, in the transaction that logs the events, so
        // several servers on one metastore never hand out the same one.
        let first = c360_metastore::Metastore::take_ids(
            tx,
            c360_metastore::Counter::StreamLog,
            events.len() as i64,
        )
        .await?;
        let at = chrono::Utc::now().to_rfc3339();
        let rows: Vec<Vec<V>> = events
            .iter()
            .enumerate()
            .map(|(i, (topic, store_id, data))| {
                vec![
                    (first + i as i64).into(),
                    topic.as_str().into(),
                    store_id.map_or(V::NullI, V::I),
                    data.to_string().into(),
                    at.as_str().into(),
                ]
            })
            .collect();
        tx.insert(
            "stream_log",
            &["seq", "topic", "store_id", "payload", "at"],
            &rows,
        )
        .await?;
        Ok((first, at))
    }

    /// Broadcasts events the log holds now (after the commit); returns their sequence numbers.
    pub fn announce(
        &self,
        (first, at): (i64, String),
        events: Vec<(String, Option<i64>, Value)>,
    ) -> Vec<i64> {
        let mut seqs = Vec::with_capacity(events.len());
        for (i, (topic, store_id, data)) in events.into_iter().enumerate() {
            let seq = first + i as i64;
            self.seq.store(seq, Ordering::SeqCst);
            let _ = self.tx.send(Arc::new(Event {
                seq,
                topic,
                store_id,
                data,
                at: at.clone(),
            }));
            seqs.push(seq);
        }
        seqs
    }

    /// Deletes logged events older than `max_age` and all but the newest `max_rows`. Returns
    /// how many went.
    pub async fn prune(&self, max_age: std::time::Duration, max_rows: i64) -> ApiResult<u64> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::days(3650));
        let by_age = self
            .db
            .execute(
                "DELETE FROM stream_log WHERE at < ?",
                &[cutoff.to_rfc3339().into()],
            )
            .await?;
        let by_size = self
            .db
            .execute(
                "DELETE FROM stream_log WHERE seq <= ?",
                &[(self.head() - max_rows.max(0)).into()],
            )
            .await?;
        Ok(by_age + by_size)
    }

    /// When events after `since` are no longer all in the log (pruned, or more than
    /// [`MAX_REPLAY`] of them): the oldest sequence number it still holds.
    pub async fn too_old(&self, since: i64) -> ApiResult<Option<i64>> {
        let head = self.head();
        if since >= head {
            return Ok(None);
        }
        let oldest = self
            .db
            .fetch("SELECT MIN(seq) AS m FROM stream_log", &[])
            .await?
            .first()
            .and_then(|r| get_i64(r, "m"));
        let gap = match oldest {
            Some(m) => since + 1 < m,
            None => true,
        };
        Ok((gap || head - since > MAX_REPLAY).then_some(oldest.unwrap_or(head + 1)))
    }

    /// Logged events after `since`, oldest first (at most `limit`).
    pub async fn replay(&self, since: i64, limit: i64) -> ApiResult<Vec<Event>> {
        let rows = self
            .db
            .fetch(
                "SELECT seq, topic, store_id, payload, at FROM stream_log WHERE seq > ? ORDER BY seq LIMIT ?",
                &[since.into(), limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Event {
                seq: get_i64(r, "seq").unwrap_or(0),
                topic: get_text(r, "topic").unwrap_or_default(),
                store_id: get_i64(r, "store_id"),
                data: get_text(r, "payload")
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or(Value::Null),
                at: get_text(r, "at").unwrap_or_default(),
            })
            .collect())
    }
}

pub(crate) fn matches(topics: &[String], topic: &str) -> bool {
    topics
        .iter()
        .any(|t| t == topic || (t == "customer:*" && topic.starts_with("customer:")))
}

pub(crate) fn frame(e: &Event, data: Value) -> Message {
    Message::Text(
        json!({"type": "event", "seq": e.seq, "topic": e.topic, "at": e.at, "data": data})
            .to_string()
            .into(),
    )
}
