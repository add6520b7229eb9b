//! What live ingestion hands to the group committer ([`crate::ingest`]): one [`Job`] per
//! request (an order, or one or more page events), each answered on its own channel once the
//! transaction that holds it has committed. This file holds only the types and the queue, so
//! that the state can own the queue while the committer, which reads the state, sits above it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex as StdMutex;

use c360_core::profile::LiveProfile;
use c360_db::Value as V;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::auth::Principal;
use crate::error::ApiResult;

/// The `live_orders` columns of [`OrderJob::row`], in order; `order_no` is the key.
pub const ORDER_COLUMNS: &[&str] = &[
    "order_no",
    "customer_id",
    "store_id",
    "order_time",
    "day",
    "total_fen",
    "items",
    "received_at",
    "received_by",
];
/// The `live_events` columns of [`EventJob::row`], in order; `event_id` is the key.
pub const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "customer_id",
    "session_id",
    "action_type",
    "page",
    "event_time",
    "device",
    "received_at",
];

/// A validated order, ready to store.
pub struct OrderJob {
    pub order_no: String,
    /// The `live_orders` row ([`ORDER_COLUMNS`]).
    pub row: Vec<V>,
    pub customer_id: Option<i64>,
    pub store_id: i64,
    pub day: i64,
    pub total_fen: i64,
    /// What the `orders` topic announces.
    pub announced: Value,
    pub by: Principal,
    /// The audit entry's target (`store:ID`).
    pub target: String,
}

/// A validated page event, ready to store.
pub struct EventJob {
    pub event_id: String,
    /// The `live_events` row ([`EVENT_COLUMNS`]).
    pub row: Vec<V>,
    /// What the `events` topic announces.
    pub announced: Value,
}

pub enum Work {
    Order(Box<OrderJob>),
    /// One request's events (one, or a batch of up to 1,000), audited as one entry.
    Events {
        events: Vec<EventJob>,
        by: Principal,
        action: &'static str,
        target: String,
    },
}

impl Work {
    /// How many rows the job writes (a batch is cut near [`crate::ingest::MAX_BATCH_ROWS`]).
    pub fn rows(&self) -> usize {
        match self {
            Work::Order(_) => 1,
            Work::Events { events, .. } => events.len().max(1),
        }
    }
}

/// What became of a job once its transaction committed.
pub enum Done {
    /// `seq`: the order's stream sequence number, None for a resend (nothing stored);
    /// `profile`: the customer's re-scored profile.
    Order {
        seq: Option<i64>,
        profile: Option<LiveProfile>,
    },
    /// Events stored now and resends; the first new event's sequence number.
    Events {
        created: u64,
        duplicates: u64,
        first_seq: Option<i64>,
    },
}

pub struct Job {
    pub work: Work,
    pub done: oneshot::Sender<ApiResult<Done>>,
}

/// Jobs waiting for the committer. The receiver is taken once, by the committer the first
/// request starts ([`crate::ingest::submit`]); a full queue makes requests wait (backpressure).
pub struct Queue {
    tx: mpsc::Sender<Job>,
    rx: StdMutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
    /// Transactions committed and jobs they held (jobs / commits is the batching achieved).
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// Jobs that may wait at once before a request has to wait for room.
const QUEUE_DEPTH: usize = 4096;

impl Default for Queue {
    fn default() -> Queue {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        Queue {
            tx,
            rx: StdMutex::new(Some(rx)),
            started: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
        }
    }
}

impl Queue {
    pub fn sender(&self) -> &mpsc::Sender<Job> {
        &self.tx
    }

    /// Counts one committed transaction holding `jobs` jobs.
    pub fn committed(&self, jobs: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
    }

    /// (transactions committed, jobs they held) since start-up.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.jobs.load(Ordering::Relaxed),
        )
    }

    /// The receiver, the first time only (whoever gets it runs the committer).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        if self.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}
