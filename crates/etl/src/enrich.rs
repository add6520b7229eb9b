//! Step 10's newer dimensions, rebuilt from the whole snapshot each run: review sentiment with
//! aspect scores (`review_sentiment`), behaviour sessions (`customer_sessions`) and the customer
//! network (`customer_network`, `network_cascades`).
//!
//! The algorithms live in `c360_analytics`; this module only reads the warehouse, calls them and
//! builds the output tables. Whole rebuilds keep every row scored by the same model, so a review
//! scored last week and one scored today are comparable.

use std::collections::HashMap;
use std::sync::Arc;

use c360_analytics::{behavior, graph, sentiment};
use c360_core::cols::{col_i64, col_str};
use c360_warehouse::arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Session};

use crate::error::Result;

fn tz_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("+08:00")
}

/// One review as the sentiment step sees it.
#[derive(Debug, Clone)]
pub struct ReviewRow {
    pub review_key: String,
    pub customer_id: Option<i64>,
    pub store_id: Option<i64>,
    pub created_at: i64,
    pub month: String,
    pub rating: i64,
    pub content: Option<String>,
}

pub async fn reviews(sess: &Session) -> Result<Vec<ReviewRow>> {
    let mut out = Vec::new();
    for b in sess
        .query(
            "SELECT e.review_key, k.customer_id, e.store_id, CAST(e.created_at AS BIGINT), e.month, e.rating, e.content \
             FROM customer_emotion_raw e LEFT JOIN customer_keys k ON e.customer_key = k.source_key ORDER BY e.review_key",
        )
        .await?
    {
        let (key, cust, store, at, month, rating, content) = (
            col_str(&b, 0)?,
            col_i64(&b, 1)?,
            col_i64(&b, 2)?,
            col_i64(&b, 3)?,
            col_str(&b, 4)?,
            col_i64(&b, 5)?,
            col_str(&b, 6)?,
        );
        for r in 0..b.num_rows() {
            out.push(ReviewRow {
                review_key: key[r].clone().unwrap_or_default(),
                customer_id: cust[r],
                store_id: store[r],
                created_at: at[r].unwrap_or(0),
                month: month[r].clone().unwrap_or_default(),
                rating: rating[r].unwrap_or(3),
                content: content[r].clone(),
            });
        }
    }
    Ok(out)
}

/// A chain's own rated reviews as training examples: rating ≥ 4 positive, ≤ 2 negative.
pub fn rated_examples<'a>(rows: impl Iterator<Item = &'a ReviewRow>) -> Vec<(String, bool)> {
    rows.filter(|r| r.rating != 3)
        .filter_map(|r| r.content.clone().map(|c| (c, r.rating >= 4)))
        .collect()
}

/// Scores every review with the snapshot's model (trained on the corpus plus the rated
/// reviews, see `c360_core::sentiment`).
pub fn sentiment_batch(rows: &[ReviewRow], model: &sentiment::Sentiment) -> Result<RecordBatch> {
    use rayon::prelude::*;
    let scored: Vec<Option<sentiment::Analysis>> = rows
        .par_iter()
        .map(|r| r.content.as_deref().map(|c| model.analyse(c)))
        .collect();
    let mut key = StringBuilder::new();
    let mut cust = Int64Builder::new();
    let mut store = Int64Builder::new();
    let mut at = tz_builder();
    let mut month = StringBuilder::new();
    let mut rating = Int64Builder::new();
    let mut overall = Float64Builder::new();
    let mut asp: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::new()).collect();
    for (r, a) in rows.iter().zip(&scored) {
        key.append_value(&r.review_key);
        cust.append_option(r.customer_id);
        store.append_option(r.store_id);
        at.append_value(r.created_at);
        month.append_value(&r.month);
        rating.append_value(r.rating);
        // A review without text keeps its rating's direction: (rating − 3) / 2.
        overall.append_value(
            a.as_ref()
                .map_or((r.rating as f64 - 3.0) / 2.0, |a| a.overall),
        );
        for (i, b) in asp.iter_mut().enumerate() {
            b.append_option(a.as_ref().and_then(|a| a.aspects[i]));
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(cust.finish()),
        Arc::new(store.finish()),
        Arc::new(at.finish()),
        Arc::new(month.finish()),
        Arc::new(rating.finish()),
        Arc::new(overall.finish()),
    ];
    cols.extend(
        asp.into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef),
    );
    let schema = tables::schema("review_sentiment");
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Sessions of all page events, written to `out` a batch at a time. The events come sorted by
/// session from `sess` (a bounded session: the sort spills past its budget), so memory holds
/// one batch of events, one session's events and one batch of sessions, whatever the number of
/// events. Returns the number of sessions.
pub async fn write_sessions(sess: &Session, out: &mut c360_warehouse::TableFile) -> Result<u64> {
    use futures::StreamExt;
    const COLS: &str = "customer_id, session_id, action_type, page, \
                        CAST(event_time AS BIGINT) AS t, device FROM customer_behavior_tracks";
    let mut stream = behavior::SessionStream::default();
    let mut batch = SessionCols::default();
    let mut n = 0u64;
    // First the events with a session id, then those without (cut by time): the stream's order.
    for sql in [
        format!("SELECT {COLS} WHERE session_id IS NOT NULL ORDER BY session_id, t, customer_id NULLS FIRST, track_id"),
        format!("SELECT {COLS} WHERE session_id IS NULL ORDER BY customer_id NULLS FIRST, t, track_id"),
    ] {
        let mut rows = sess.ctx.sql(&sql).await?.execute_stream().await?;
        while let Some(b) = rows.next().await {
            let b = b?;
            let (c, s, a, p, t, d) = (
                col_i64(&b, 0)?,
                col_str(&b, 1)?,
                col_str(&b, 2)?,
                col_str(&b, 3)?,
                col_i64(&b, 4)?,
                col_str(&b, 5)?,
            );
            for (r, ((s, a), (p, d))) in s.into_iter().zip(a).zip(p.into_iter().zip(d)).enumerate() {
                let e = behavior::Event {
                    customer: c[r],
                    session: s,
                    action: a.unwrap_or_default(),
                    page: p,
                    time: t[r].unwrap_or(0),
                    device: d,
                };
                let closed = stream.push(e).map_err(|reason| crate::EtlError::Source {
                    table: "customer_behavior_tracks".into(),
                    reason: format!("sessions: {reason}"),
                })?;
                if let Some(done) = closed {
                    n += 1;
                    batch.push(&done);
                    if batch.len() >= SESSION_BATCH {
                        out.write(&std::mem::take(&mut batch).finish()?)?;
                    }
                }
            }
        }
    }
    if let Some(done) = stream.finish() {
        n += 1;
        batch.push(&done);
    }
    if batch.len() > 0 {
        out.write(&batch.finish()?)?;
    }
    Ok(n)
}

/// Sessions per batch written.
const SESSION_BATCH: usize = 65_536;

/// `customer_sessions` rows being built.
struct SessionCols {
    id: StringBuilder,
    cust: Int64Builder,
    start: TimestampMicrosecondBuilder,
    end: TimestampMicrosecondBuilder,
    events: Int64Builder,
    secs: Int64Builder,
    step: Int64Builder,
    path: StringBuilder,
    device: StringBuilder,
}

impl Default for SessionCols {
    fn default() -> Self {
        SessionCols {
            id: StringBuilder::new(),
            cust: Int64Builder::new(),
            start: tz_builder(),
            end: tz_builder(),
            events: Int64Builder::new(),
            secs: Int64Builder::new(),
            step: Int64Builder::new(),
            path: StringBuilder::new(),
            device: StringBuilder::new(),
        }
    }
}

impl SessionCols {
    /// Sessions held.
    fn len(&self) -> usize {
        self.cust.len()
    }

    fn push(&mut self, s: &behavior::Session) {
        self.id.append_value(&s.id);
        self.cust.append_option(s.customer);
        self.start.append_value(s.start);
        self.end.append_value(s.end);
        self.events.append_value(s.events as i64);
        self.secs.append_value((s.end - s.start) / 1_000_000);
        self.step.append_value(s.max_step as i64);
        self.path.append_value(s.path.join(">"));
        self.device.append_option(s.device.as_deref());
    }

    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            tables::schema("customer_sessions"),
            vec![
                Arc::new(self.id.finish()),
                Arc::new(self.cust.finish()),
                Arc::new(self.start.finish()),
                Arc::new(self.end.finish()),
                Arc::new(self.events.finish()),
                Arc::new(self.secs.finish()),
                Arc::new(self.step.finish()),
                Arc::new(self.path.finish()),
                Arc::new(self.device.finish()),
            ],
        )?)
    }
}

/// The customer graph: ties between resolved customers, with each customer's dense index.
pub struct Network {
    pub ids: Vec<i64>,
    pub index: HashMap<i64, usize>,
    /// Influence edges: from influences to (a share, a group order's initiator → each member).
    pub graph: graph::Graph,
    /// Every tie (shares, group orders between all members, paying for a friend), for communities.
    pub ties: graph::Graph,
    pub shares: Vec<graph::Share>,
    pub shares_sent: Vec<i64>,
}

/// Reads shares, group orders and paid-for orders into two graphs on the same nodes: influence
/// (a share from → to, a group order's initiator → each member; weight 1 each) and ties (those,
/// plus every pair of a group order and paying for a friend, both ways: a shared wallet is mutual).
pub async fn network(sess: &Session) -> Result<Network> {
    let mut ids: Vec<i64> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut ix = |c: i64, ids: &mut Vec<i64>| -> usize {
        *index.entry(c).or_insert_with(|| {
            ids.push(c);
            ids.len() - 1
        })
    };
    let mut edges: Vec<(usize, usize, f64)> = Vec::new();
    let mut ties: Vec<(usize, usize, f64)> = Vec::new();
    let mut shares = Vec::new();
    let mut sent: HashMap<usize, i64> = HashMap::new();
    for b in sess
        .query(
            "SELECT k1.customer_id, k2.customer_id, s.campaign, CAST(s.share_time AS BIGINT) \
             FROM customer_shares_raw s JOIN customer_keys k1 ON s.customer_key = k1.source_key \
             LEFT JOIN customer_keys k2 ON s.to_customer_key = k2.source_key ORDER BY s.share_key",
        )
        .await?
    {
        let (a, t, c, at) = (
            col_i64(&b, 0)?,
            col_i64(&b, 1)?,
            col_str(&b, 2)?,
            col_i64(&b, 3)?,
        );
        for r in 0..b.num_rows() {
            let Some(a) = a[r] else { continue };
            let u = ix(a, &mut ids);
            *sent.entry(u).or_default() += 1;
            let v = t[r].filter(|t| *t != a).map(|t| ix(t, &mut ids));
            if let Some(v) = v {
                edges.push((u, v, 1.0));
                ties.push((u, v, 1.0));
            }
            shares.push(graph::Share {
                from: u,
                to: v,
                time: at[r].unwrap_or(0),
                campaign: c[r].clone().unwrap_or_else(|| "(none)".into()),
            });
        }
    }
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for b in sess
        .query(
            "SELECT t.kind, k1.customer_id, k2.customer_id, t.ref_id FROM customer_ties_raw t \
             JOIN customer_keys k1 ON t.customer_key = k1.source_key \
             LEFT JOIN customer_keys k2 ON t.other_key = k2.source_key ORDER BY t.tie_key",
        )
        .await?
    {
        let (kind, a, o, rf) = (
            col_str(&b, 0)?,
            col_i64(&b, 1)?,
            col_i64(&b, 2)?,
            col_str(&b, 3)?,
        );
        for r in 0..b.num_rows() {
            let Some(a) = a[r] else { continue };
            match kind[r].as_deref() {
                Some("group") => {
                    let u = ix(a, &mut ids);
                    if let Some(owner) = o[r].filter(|o| *o != a) {
                        let w = ix(owner, &mut ids);
                        edges.push((w, u, 1.0));
                    }
                    let g = groups.entry(rf[r].clone().unwrap_or_default()).or_default();
                    if !g.contains(&u) {
                        g.push(u);
                    }
                }
                Some("paid_by") => {
                    if let Some(o) = o[r].filter(|o| *o != a) {
                        let (u, v) = (ix(a, &mut ids), ix(o, &mut ids));
                        ties.push((u, v, 1.0));
                        ties.push((v, u, 1.0));
                    }
                }
                _ => {}
            }
        }
    }
    let mut gkeys: Vec<&String> = groups.keys().collect();
    gkeys.sort();
    for k in gkeys {
        let m = &groups[k];
        for i in 0..m.len() {
            for j in 0..m.len() {
                if i != j {
                    ties.push((m[i], m[j], 1.0));
                }
            }
        }
    }
    let n = ids.len();
    let shares_sent = (0..n).map(|u| *sent.get(&u).unwrap_or(&0)).collect();
    Ok(Network {
        graph: graph::Graph::new(n, &edges),
        ties: graph::Graph::new(n, &ties),
        ids,
        index,
        shares,
        shares_sent,
    })
}

/// Settings of the network step.
pub const PAGERANK_ALPHA: f64 = 0.85;
pub const SEEDS: usize = 20;
pub const IC_PROBABILITY: f64 = 0.1;
pub const IC_SAMPLES: usize = 200;

/// Influence, communities, cascades and seeds of the network, as tables and a summary note.
pub fn network_batches(
    net: &Network,
) -> Result<(RecordBatch, RecordBatch, c360_core::notes::NetworkNote)> {
    let g = &net.graph;
    let n = g.n;
    // Rank flows from the influenced to their influencer.
    let pr = graph::pagerank(&g.reversed(), PAGERANK_ALPHA, 1e-10, 200);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| pr[*b].total_cmp(&pr[*a]).then(a.cmp(b)));
    let mut rank = vec![0usize; n];
    for (i, u) in order.iter().enumerate() {
        rank[*u] = i + 1;
    }
    let comm = graph::louvain(&net.ties, 1.0, 1e-7, 42);
    let adj = net.ties.undirected();
    let q = graph::modularity(&adj, &comm, 1.0);
    let mut csize: HashMap<usize, i64> = HashMap::new();
    for c in &comm {
        *csize.entry(*c).or_default() += 1;
    }
    let mut ties_in = vec![0i64; n];
    for o in &net.ties.out {
        for (v, _) in o {
            ties_in[*v] += 1;
        }
    }
    let cascades = graph::cascades(&net.shares);
    let mut reach = vec![0i64; n];
    for c in &cascades {
        reach[c.root] += c.reached as i64;
    }
    let seeds = graph::influence_max(g, SEEDS.min(n), IC_PROBABILITY, IC_SAMPLES, 7);
    let seed_of: HashMap<usize, (usize, f64)> = seeds
        .iter()
        .enumerate()
        .map(|(i, (u, s))| (*u, (i + 1, *s)))
        .collect();
    let (mut id, mut p, mut rk, mut cm, mut cs) = (
        Int64Builder::new(),
        Float64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    let (mut to, mut ti, mut ss, mut re, mut sr, mut sp) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
    );
    for u in 0..n {
        id.append_value(net.ids[u]);
        p.append_value(pr[u]);
        rk.append_value(rank[u] as i64);
        cm.append_value(comm[u] as i64);
        cs.append_value(csize[&comm[u]]);
        to.append_value(net.ties.out[u].len() as i64);
        ti.append_value(ties_in[u]);
        ss.append_value(net.shares_sent[u]);
        re.append_value(reach[u]);
        sr.append_option(seed_of.get(&u).map(|s| s.0 as i64));
        sp.append_option(seed_of.get(&u).map(|s| s.1));
    }
    let nb = RecordBatch::try_new(
        tables::schema("customer_network"),
        vec![
            Arc::new(id.finish()),
            Arc::new(p.finish()),
            Arc::new(rk.finish()),
            Arc::new(cm.finish()),
            Arc::new(cs.finish()),
            Arc::new(to.finish()),
            Arc::new(ti.finish()),
            Arc::new(ss.finish()),
            Arc::new(re.finish()),
            Arc::new(sr.finish()),
            Arc::new(sp.finish()),
        ],
    )?;
    let (mut camp, mut root, mut reached, mut depth, mut path) = (
        StringBuilder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
    );
    for c in &cascades {
        camp.append_value(&c.campaign);
        root.append_value(net.ids[c.root]);
        reached.append_value(c.reached as i64);
        depth.append_value(c.depth as i64);
        let ids: Vec<i64> = c.longest_path.iter().map(|u| net.ids[*u]).collect();
        path.append_value(serde_json::to_string(&ids).unwrap_or_default());
    }
    let cb = RecordBatch::try_new(
        tables::schema("network_cascades"),
        vec![
            Arc::new(camp.finish()),
            Arc::new(root.finish()),
            Arc::new(reached.finish()),
            Arc::new(depth.finish()),
            Arc::new(path.finish()),
        ],
    )?;
    let top_pr: Vec<usize> = order.iter().take(SEEDS.min(n)).copied().collect();
    let note = c360_core::notes::NetworkNote {
        customers: n,
        influence_edges: g.edge_count(),
        ties: net.ties.edge_count(),
        communities: csize.len(),
        modularity: q,
        pagerank_alpha: PAGERANK_ALPHA,
        cascades: cascades.len(),
        seeds: c360_core::notes::SeedNote {
            k: seeds.len(),
            model: format!("independent cascade, p = 1 - (1 - {IC_PROBABILITY})^weight"),
            expected_spread_greedy: seeds.last().map(|s| s.1),
            expected_spread_top_pagerank: graph::spread_of(
                g,
                &top_pr,
                IC_PROBABILITY,
                IC_SAMPLES,
                99,
            ),
        },
    };
    Ok((nb, cb, note))
}
