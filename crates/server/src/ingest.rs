//! Group commit for live ingestion. Requests hand their validated orders and events to one
//! committer task ([`submit`]); it takes everything waiting (up to [`MAX_BATCH_ROWS`] rows),
//! writes it in one metastore transaction — rows, audit entries and stream events — and commits
//! once, so concurrent requests share one fsync. Each request is answered only after the commit
//! that holds its rows: every 201 is durable. A request that goes away (a closed connection, its
//! time limit) leaves its job to be committed all the same; a resend then finds it stored.
//!
//! Within a batch, orders are re-scored in arrival order from the newest profile (this batch's,
//! then the live overlay's, then the snapshot's), so a customer's two orders in one batch score
//! as they would one after the other. Nothing in memory changes until the commit succeeded; when
//! a batch fails, each of its jobs is retried alone, so one bad job fails only its own request.

use std::collections::{HashMap, HashSet};

use c360_core::profile::LiveProfile;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ApiResult};
use crate::queue::{Done, Job, Work, EVENT_COLUMNS, ORDER_COLUMNS};
use crate::state::{AppState, LiveView, WeakState};

/// A batch takes waiting jobs until it holds this many rows.
pub const MAX_BATCH_ROWS: usize = 2048;

/// Queues `work` for the committer and waits until it is committed (or failed).
pub async fn submit(st: &AppState, work: Work) -> ApiResult<Done> {
    if let Some(rx) = st.inner().ingest.take_receiver() {
        tokio::spawn(run(st.downgrade(), rx));
    }
    let (done, answer) = oneshot::channel();
    st.inner()
        .ingest
        .sender()
        .send(Job { work, done })
        .await
        .map_err(|_| ApiError::Internal("the ingestion committer has stopped".into()))?;
    answer
        .await
        .map_err(|_| ApiError::Internal("the ingestion committer dropped a job".into()))?
}

/// The committer: one batch at a time, for as long as the state lives.
async fn run(state: WeakState, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut rows = first.work.rows();
        let mut jobs = vec![first];
        while rows < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.work.rows();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let Some(st) = state.upgrade() else { return };
        commit(&st, jobs).await;
    }
}

/// A customer's re-score: (customer, profile, what the API shows of it).
type Rescore = (i64, LiveProfile, LiveView);

/// What a committed batch changes in memory and announces.
struct Staged {
    done: Vec<Done>,
    /// (store, total, re-score) of each stored order, in order.
    counted: Vec<(i64, i64, Option<Rescore>)>,
    events: Vec<(String, Option<i64>, Value)>,
    logged: (i64, String),
}

async fn commit(st: &AppState, jobs: Vec<Job>) {
    let hub = st.hub();
    let _order = hub.write_lock().await;
    let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
    match write(st, &works).await {
        Ok(staged) => {
            let done = publish(st, staged).await;
            for (job, d) in jobs.into_iter().zip(done) {
                let _ = job.done.send(Ok(d));
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.done.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "an ingestion batch failed; retrying its jobs one by one");
            for job in jobs {
                let r = match write(st, &[&job.work]).await {
                    Ok(staged) => Ok(publish(st, staged).await.remove(0)),
                    Err(e) => Err(e),
                };
                let _ = job.done.send(r);
            }
        }
    }
}

/// After the commit: the live counters and profiles, the broadcast, the cache. Returns each
/// job's outcome with its sequence numbers filled in.
async fn publish(st: &AppState, staged: Staged) -> Vec<Done> {
    for (store, total, rescored) in staged.counted {
        st.count_live_order(store, total, rescored).await;
    }
    let first = staged.logged.0;
    if !staged.events.is_empty() {
        st.hub().announce(staged.logged, staged.events);
    }
    st.bump();
    staged
        .done
        .into_iter()
        .map(|d| match d {
            Done::Order { seq, profile } => Done::Order {
                seq: seq.map(|i| first + i),
                profile,
            },
            Done::Events {
                created,
                duplicates,
                first_seq,
            } => Done::Events {
                created,
                duplicates,
                first_seq: first_seq.map(|i| first + i),
            },
        })
        .collect()
}

/// Writes the jobs in one transaction and commits it: the new orders in one multi-row insert
/// (a resend, or an order number repeated within the batch, stores nothing), the new events in
/// another, one audit entry per job, and the stream events (one `metrics` event for the batch,
/// with the counters after its last order). Sequence numbers in the returned outcomes are
/// offsets into the batch's events until [`publish`] adds the first one.
async fn write(st: &AppState, works: &[&Work]) -> ApiResult<Staged> {
    let s = st.snapshot().await?;
    let mut tx = st.inner().meta.begin().await?;
    let order_rows: Vec<Vec<c360_db::Value>> = works
        .iter()
        .filter_map(|w| match w {
            Work::Order(o) => Some(o.row.clone()),
            Work::Events { .. } => None,
        })
        .collect();
    let event_rows: Vec<Vec<c360_db::Value>> = works
        .iter()
        .flat_map(|w| match w {
            Work::Order(_) => &[][..],
            Work::Events { events, .. } => events.as_slice(),
        })
        .map(|e| e.row.clone())
        .collect();
    // Durable before we answer; the primary key makes a resend insert nothing.
    let mut new_orders: HashSet<String> = if order_rows.is_empty() {
        HashSet::new()
    } else {
        tx.insert_new("live_orders", ORDER_COLUMNS, "order_no", &order_rows)
            .await?
            .into_iter()
            .collect()
    };
    let mut new_events: HashSet<String> = if event_rows.is_empty() {
        HashSet::new()
    } else {
        tx.insert_new("live_events", EVENT_COLUMNS, "event_id", &event_rows)
            .await?
            .into_iter()
            .collect()
    };
    let audit: Vec<c360_core::audit::Entry<'_>> = works
        .iter()
        .map(|w| {
            let (by, action, target) = match w {
                Work::Order(o) => (&o.by, "order.ingest", o.target.as_str()),
                Work::Events {
                    by, action, target, ..
                } => (by, *action, target.as_str()),
            };
            c360_core::audit::Entry {
                actor: &by.name,
                role: by.role.as_str(),
                action,
                target,
                outcome: "ok",
                detail: json!({}),
            }
        })
        .collect();
    c360_core::audit::record_many_in(&mut tx, &audit).await?;

    let mut stats = st.live_stats();
    let mut newest: HashMap<i64, LiveProfile> = HashMap::new();
    let mut staged = Staged {
        done: Vec::with_capacity(works.len()),
        counted: Vec::new(),
        events: Vec::new(),
        logged: (0, String::new()),
    };
    for work in works {
        match work {
            Work::Order(o) => {
                // The first job with the number stored it; a later one in the batch is a resend.
                if !new_orders.remove(&o.order_no) {
                    staged.done.push(Done::Order {
                        seq: None,
                        profile: None,
                    });
                    continue;
                }
                let rescored = match o.customer_id {
                    None => None,
                    Some(c) => {
                        let before = match newest.get(&c) {
                            Some(p) => Some(p.clone()),
                            None => match st.live_profile(c).await {
                                Some(p) => Some(p),
                                None => s.live_base(c).await?,
                            },
                        };
                        before.map(|b| {
                            let after =
                                c360_core::profile::apply_order(&b, o.day, o.total_fen as f64);
                            newest.insert(c, after.clone());
                            let view = LiveView::of(&s, &after);
                            (c, after, view)
                        })
                    }
                };
                let seq = staged.events.len() as i64;
                staged
                    .events
                    .push(("orders".to_string(), Some(o.store_id), o.announced.clone()));
                if let Some((c, _, v)) = &rescored {
                    // Another store's customer may buy here: the event belongs to their home store.
                    let home = v.home_store_id.or(Some(o.store_id));
                    staged
                        .events
                        .push((format!("customer:{c}"), home, json!(v)));
                }
                // The counters as they are with this order.
                stats.orders = stats.orders.saturating_add(1);
                stats.revenue_fen = stats.revenue_fen.saturating_add(o.total_fen);
                let e = stats.by_store.entry(o.store_id).or_default();
                e.0 = e.0.saturating_add(1);
                e.1 = e.1.saturating_add(o.total_fen);
                staged.done.push(Done::Order {
                    seq: Some(seq),
                    profile: rescored.as_ref().map(|r| r.1.clone()),
                });
                staged.counted.push((o.store_id, o.total_fen, rescored));
            }
            Work::Events { events, .. } => {
                let (mut created, mut duplicates, mut first_seq) = (0u64, 0u64, None);
                for e in events {
                    if !new_events.remove(&e.event_id) {
                        duplicates += 1;
                        continue;
                    }
                    created += 1;
                    first_seq.get_or_insert(staged.events.len() as i64);
                    staged
                        .events
                        .push(("events".to_string(), None, e.announced.clone()));
                }
                staged.done.push(Done::Events {
                    created,
                    duplicates,
                    first_seq,
                });
            }
        }
    }
    if !staged.counted.is_empty() {
        // The live counters after the batch's last order: one event for the batch.
        let by_store: serde_json::Map<String, Value> = stats
            .by_store
            .iter()
            .map(|(k, v)| (k.to_string(), json!({"orders": v.0, "revenue_fen": v.1})))
            .collect();
        staged.events.push((
            "metrics".to_string(),
            None,
            json!({"live_orders": stats.orders, "live_revenue_fen": stats.revenue_fen, "by_store": by_store}),
        ));
    }
    if !staged.events.is_empty() {
        staged.logged = st.hub().log_in(&mut tx, &staged.events).await?;
    }
    tx.commit().await?;
    st.inner().ingest.committed(works.len());
    Ok(staged)
}
