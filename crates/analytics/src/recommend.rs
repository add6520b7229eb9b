//! Recommendations for a menu of any size with heavy repeat buying: a hybrid that estimates, per
//! item, the chance it is in the customer's next order.
//!
//! - items the customer has bought: their own rate, by daypart, shrunk toward the store-and-
//!   daypart popularity (buy-again);
//! - items in the current cart raise the items bought with them (basket add-ons, by lift);
//! - items never tried: chain popularity times the item's lift among customers who buy what
//!   this customer buys (item-based collaborative filtering, square-rooted), scaled down by how
//!   set in their ways the customer is;
//! - new customers get store-by-daypart popularity; new items borrow popularity from items of the
//!   same category (content), so a launch is not invisible for lack of history.
//!
//! Everything is sparse, so a catalogue of 100k items costs memory in proportion to what was
//! bought, not to items²: each customer keeps only the items they bought, each store-and-daypart
//! only the items it sold, and each item only its [`NEIGHBOURS`] strongest co-purchase partners
//! (in baskets, for add-ons, and across customers, for taste), counted row by row with one dense
//! scratch row per thread (a sparse matrix product). A recommendation scores candidates only: the
//! customer's own items, the partners of those and of the cart, and the most popular items where
//! and when it is shown; every other item's score is a fixed fraction of its popularity, so no
//! item outside the candidates could rank above the popular ones that are in.
//!
//! [`Recommender::fit_tuned`] chooses the shrinkage and how far to trust untried items on the
//! training data's own last orders (held out per customer, fitted on the rest), so on data where
//! people mostly buy again it falls back to buy-again instead of losing to it. Items a customer
//! keeps buying are never pushed out of the list by new ones. The offline evaluation
//! ([`evaluate`]) scores repeat and new items separately. No I/O.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

/// One order: who, when (seconds), daypart (0..5), store, and the distinct items.
#[derive(Debug, Clone)]
pub struct Basket {
    pub customer: i64,
    pub time: i64,
    pub daypart: usize,
    pub store: i64,
    pub items: Vec<usize>,
}

/// What is known about an item without any sales.
#[derive(Debug, Clone)]
pub struct ItemInfo {
    pub category: String,
    /// Seconds; items launched within `NEW_ITEM_DAYS` of the training end count as new.
    pub launched: i64,
}

pub const NEW_ITEM_DAYS: i64 = 120;
const DAYPARTS: usize = 5;
/// Co-purchase partners kept per item (in baskets and across customers).
pub const NEIGHBOURS: usize = 100;
/// Most popular items (overall, per daypart, per store and daypart) always among the candidates.
const POPULAR: usize = 200;
/// Untried items among a known customer's candidates, by their taste evidence.
const TASTE: usize = 300;
/// Customers whose last training order is held out when [`Recommender::fit_tuned`] tunes.
const TUNE_CUSTOMERS: usize = 20_000;

/// One item a customer bought: how many of their orders held it, per daypart too.
#[derive(Debug, Clone, Copy)]
struct Bought {
    item: u32,
    n: f32,
    dp: [f32; DAYPARTS],
}

#[derive(Debug, Clone, Default)]
struct Hist {
    orders: f64,
    dp_orders: [f64; DAYPARTS],
    store_orders: Vec<(i64, f64)>,
    /// Sorted by item.
    items: Vec<Bought>,
}

impl Hist {
    fn get(&self, i: usize) -> Option<&Bought> {
        self.items
            .binary_search_by_key(&(i as u32), |b| b.item)
            .ok()
            .map(|k| &self.items[k])
    }
}

/// Rows of (column, value), sorted by column within a row.
#[derive(Debug, Clone, Default)]
struct Csr {
    start: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f32>,
}

impl Csr {
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[i], self.start[i + 1]);
        (&self.col[a..b], &self.val[a..b])
    }

    fn get(&self, i: usize, j: usize) -> Option<f32> {
        let (c, v) = self.row(i);
        c.binary_search(&(j as u32)).ok().map(|k| v[k])
    }

    fn bytes(&self) -> usize {
        self.start.len() * 8 + self.col.len() * 4 + self.val.len() * 4
    }
}

/// For every item, its co-occurrence counts with the other items over `sets` (each a list of
/// distinct items), keeping the `keep` largest; also, per item, `total(i, row)` of the full row
/// before truncation. A row-by-row sparse product with one dense scratch row per thread.
fn cooccurrence<F>(sets: &[Vec<u32>], n: usize, keep: usize, total: F) -> (Csr, Vec<f64>)
where
    F: Fn(usize, &[(u32, f32)]) -> f64 + Sync,
{
    // item -> the sets holding it
    let mut count = vec![0usize; n + 1];
    for s in sets {
        for &i in s {
            count[i as usize + 1] += 1;
        }
    }
    for i in 0..n {
        count[i + 1] += count[i];
    }
    let mut fill = count.clone();
    let mut holders = vec![0u32; count[n]];
    for (k, s) in sets.iter().enumerate() {
        for &i in s {
            holders[fill[i as usize]] = k as u32;
            fill[i as usize] += 1;
        }
    }
    let rows: Vec<(Vec<(u32, f32)>, f64)> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n], Vec::<u32>::new()),
            |(acc, touched), i| {
                for &k in &holders[count[i]..count[i + 1]] {
                    for &j in &sets[k as usize] {
                        if j as usize != i {
                            if acc[j as usize] == 0.0 {
                                touched.push(j);
                            }
                            acc[j as usize] += 1.0;
                        }
                    }
                }
                let mut row: Vec<(u32, f32)> =
                    touched.iter().map(|&j| (j, acc[j as usize])).collect();
                for &j in touched.iter() {
                    acc[j as usize] = 0.0;
                }
                touched.clear();
                let t = total(i, &row);
                if row.len() > keep {
                    row.select_nth_unstable_by(keep - 1, |a, b| {
                        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                    });
                    row.truncate(keep);
                }
                row.sort_unstable_by_key(|x| x.0);
                (row, t)
            },
        )
        .collect();
    let mut m = Csr {
        start: Vec::with_capacity(n + 1),
        ..Default::default()
    };
    m.start.push(0);
    let mut totals = Vec::with_capacity(n);
    for (row, t) in rows {
        for (j, v) in row {
            m.col.push(j);
            m.val.push(v);
        }
        m.start.push(m.col.len());
        totals.push(t);
    }
    (m, totals)
}

/// Why an item is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RecReason)]
pub enum Reason {
    BuyAgain,
    AddOn,
    SimilarTaste,
    Popular,
    NewItem,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rec {
    pub item: usize,
    pub score: f64,
    pub reason: Reason,
    pub bought_before: bool,
}

/// Where and when the recommendation is shown; `cart` holds items already chosen.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub daypart: Option<usize>,
    pub store: Option<i64>,
    pub cart: Vec<usize>,
}

/// A recommendation's candidates and the taste evidence for them (co-purchase share and cosine
/// sums over the customer's items, and the weight of those items).
struct Gathered {
    cand: Vec<u32>,
    cf: HashMap<u32, (f64, f64)>,
    w: f64,
}

/// Orders of one store in one daypart, and how many held each item (sorted by item).
#[derive(Debug, Clone, Default)]
struct StoreDaypart {
    orders: f64,
    items: Vec<(u32, f32)>,
    /// The [`POPULAR`] items it sold most.
    top: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Recommender {
    n: usize,
    baskets: f64,
    /// Share of baskets holding each item (raised for new items, see `fit_with`).
    pop: Vec<f64>,
    pop_dp: Vec<Vec<f64>>,
    /// Baskets holding each item (raw counts, for the lift).
    count: Vec<f64>,
    /// The [`POPULAR`] most popular items, overall and per daypart.
    top: Vec<u32>,
    top_dp: Vec<Vec<u32>>,
    sd: HashMap<(i64, usize), StoreDaypart>,
    /// co[i] = the baskets holding i and each of its strongest partners.
    co: Csr,
    /// dot[j] = the customers who bought j and each of its strongest partners.
    dot: Csr,
    /// Customers who bought each item.
    norm: Vec<f64>,
    /// Mean cosine similarity of each item to all others (for the stated reason).
    mean_sim: Vec<f64>,
    customers: f64,
    new_item: Vec<bool>,
    /// The [`POPULAR`] most popular new items.
    top_new: Vec<u32>,
    hist: HashMap<i64, Hist>,
    params: RecParams,
}

/// Shrinkage strengths, in pseudo-orders, and the weight of untried items.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecParams {
    /// How many orders' worth of the (store, daypart) popularity a customer's own repeat rate
    /// starts from; also how open a customer with few orders is to new tastes.
    pub a_personal: f64,
    /// Toward the customer's all-day rate, for their rate in one daypart.
    pub m_daypart: f64,
    /// Toward the chain's popularity, for one store's in one daypart.
    pub m_store: f64,
    /// How far items a known customer has never bought are trusted against the ones they buy
    /// (1 = the estimate as it is; 0 = after every item they bought, as buy-again ranks).
    #[serde(default = "one")]
    pub w_new: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for RecParams {
    fn default() -> RecParams {
        RecParams {
            a_personal: 2.0,
            m_daypart: 3.0,
            m_store: 20.0,
            w_new: 1.0,
        }
    }
}

/// What [`Recommender::fit_tuned`] chose and how the choices scored on the held-out last orders.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tuning {
    pub params: RecParams,
    /// Customers whose last training order was held out.
    pub customers: usize,
    /// Precision@10 and NDCG@10 there, for the chosen settings, the defaults and buy-again.
    pub chosen: (f64, f64),
    pub defaults: (f64, f64),
    pub buy_again: (f64, f64),
}

fn top_by(v: &[f64], k: usize) -> Vec<u32> {
    let mut ix: Vec<u32> = (0..v.len() as u32)
        .filter(|&i| v[i as usize] > 0.0)
        .collect();
    ix.sort_unstable_by(|a, b| v[*b as usize].total_cmp(&v[*a as usize]).then(a.cmp(b)));
    ix.truncate(k);
    ix
}

impl Recommender {
    /// Learns from baskets up to `now` (seconds), with the default shrinkage.
    pub fn fit(baskets: &[Basket], items: &[ItemInfo], now: i64) -> Recommender {
        Self::fit_with(baskets, items, now, RecParams::default())
    }

    /// Learns from baskets up to `now` (seconds).
    pub fn fit_with(
        baskets: &[Basket],
        items: &[ItemInfo],
        now: i64,
        params: RecParams,
    ) -> Recommender {
        let n = items.len();
        let mut count = vec![0.0; n];
        let mut pop_dp = vec![vec![0.0; n]; DAYPARTS];
        let mut dp_tot = [0.0f64; DAYPARTS];
        let mut sd_acc: HashMap<(i64, usize), (f64, HashMap<u32, f32>)> = HashMap::new();
        let mut hist_acc: HashMap<i64, (Hist, HashMap<u32, Bought>)> = HashMap::new();
        let mut sets: Vec<Vec<u32>> = Vec::with_capacity(baskets.len());
        for b in baskets {
            let dp = b.daypart.min(DAYPARTS - 1);
            dp_tot[dp] += 1.0;
            let sd = sd_acc.entry((b.store, dp)).or_default();
            sd.0 += 1.0;
            let (h, bought) = hist_acc.entry(b.customer).or_default();
            h.orders += 1.0;
            h.dp_orders[dp] += 1.0;
            match h.store_orders.iter_mut().find(|s| s.0 == b.store) {
                Some(s) => s.1 += 1.0,
                None => h.store_orders.push((b.store, 1.0)),
            }
            let mut set: Vec<u32> = b
                .items
                .iter()
                .filter(|&&i| i < n)
                .map(|&i| i as u32)
                .collect();
            set.sort_unstable();
            set.dedup();
            for &i in &set {
                count[i as usize] += 1.0;
                pop_dp[dp][i as usize] += 1.0;
                *sd.1.entry(i).or_default() += 1.0;
                let e = bought.entry(i).or_insert(Bought {
                    item: i,
                    n: 0.0,
                    dp: [0.0; DAYPARTS],
                });
                e.n += 1.0;
                e.dp[dp] += 1.0;
            }
            sets.push(set);
        }
        let total = baskets.len().max(1) as f64;
        let hist: HashMap<i64, Hist> = hist_acc
            .into_iter()
            .map(|(c, (mut h, bought))| {
                let mut v: Vec<Bought> = bought.into_values().collect();
                v.sort_unstable_by_key(|b| b.item);
                h.items = v;
                (c, h)
            })
            .collect();
        // Partners in the same basket (for add-ons, by lift).
        let (co, _) = cooccurrence(&sets, n, NEIGHBOURS, |_, _| 0.0);
        drop(sets);
        // Partners across customers (bought at least once by the same customer), with each
        // item's mean cosine similarity to all others.
        let mut custs: Vec<&i64> = hist.keys().collect();
        custs.sort_unstable();
        let bought_sets: Vec<Vec<u32>> = custs
            .iter()
            .map(|c| hist[*c].items.iter().map(|b| b.item).collect())
            .collect();
        let mut norm = vec![0.0f64; n];
        for s in &bought_sets {
            for &i in s {
                norm[i as usize] += 1.0;
            }
        }
        let (dot, sim_sum) = cooccurrence(&bought_sets, n, NEIGHBOURS, |i, row| {
            row.iter()
                .map(|&(j, d)| d as f64 / (norm[i] * norm[j as usize]).sqrt())
                .sum::<f64>()
        });
        drop(bought_sets);
        let new_item: Vec<bool> = items
            .iter()
            .map(|it| now - it.launched < NEW_ITEM_DAYS * 86_400)
            .collect();
        let mut pop: Vec<f64> = count.iter().map(|p| p / total).collect();
        let mut pop_dp: Vec<Vec<f64>> = (0..DAYPARTS)
            .map(|d| pop_dp[d].iter().map(|p| p / dp_tot[d].max(1.0)).collect())
            .collect();
        // A new item has had less time to sell: give it the mean popularity of its category
        // when that is higher (content-based cold start).
        if new_item.iter().any(|x| *x) {
            let mut cat: HashMap<&str, (f64, [f64; DAYPARTS], f64)> = HashMap::new();
            for i in (0..n).filter(|&i| !new_item[i]) {
                let e = cat.entry(items[i].category.as_str()).or_default();
                e.0 += pop[i];
                for (acc, dp) in e.1.iter_mut().zip(&pop_dp) {
                    *acc += dp[i];
                }
                e.2 += 1.0;
            }
            for i in (0..n).filter(|&i| new_item[i]) {
                if let Some((p, pd, k)) = cat.get(items[i].category.as_str()) {
                    pop[i] = pop[i].max(p / k);
                    for (dp, m) in pop_dp.iter_mut().zip(pd) {
                        dp[i] = dp[i].max(m / k);
                    }
                }
            }
        }
        let sd = sd_acc
            .into_iter()
            .map(|(k, (orders, m))| {
                let mut items: Vec<(u32, f32)> = m.into_iter().collect();
                items.sort_unstable_by_key(|x| x.0);
                let mut order: Vec<usize> = (0..items.len()).collect();
                order.sort_unstable_by(|a, b| items[*b].1.total_cmp(&items[*a].1).then(a.cmp(b)));
                let top = order.iter().take(POPULAR).map(|&k| items[k].0).collect();
                (k, StoreDaypart { orders, items, top })
            })
            .collect();
        let top_new = top_by(
            &(0..n)
                .map(|i| if new_item[i] { pop[i] + 1e-12 } else { 0.0 })
                .collect::<Vec<f64>>(),
            POPULAR,
        );
        Recommender {
            n,
            baskets: total,
            top_new,
            top: top_by(&pop, POPULAR),
            top_dp: pop_dp.iter().map(|p| top_by(p, POPULAR)).collect(),
            pop,
            pop_dp,
            count,
            sd,
            co,
            dot,
            mean_sim: sim_sum
                .iter()
                .map(|s| s / (n as f64 - 1.0).max(1.0))
                .collect(),
            norm,
            customers: hist.len().max(1) as f64,
            new_item,
            hist,
            params,
        }
    }

    /// Fits, choosing the settings on the data's own last orders: each customer's last order
    /// (of up to [`TUNE_CUSTOMERS`] customers with two or more) is held out, the rest is fitted
    /// once, and a grid of 48 settings (buy-again's order among them) is scored by
    /// precision@10 + NDCG@10 on the held-out orders; the best is then fitted on everything.
    pub fn fit_tuned(baskets: &[Basket], items: &[ItemInfo], now: i64) -> (Recommender, Tuning) {
        let mut last: HashMap<i64, (i64, usize, usize)> = HashMap::new();
        for (k, b) in baskets.iter().enumerate() {
            let e = last.entry(b.customer).or_insert((b.time, k, 0));
            e.2 += 1;
            if b.time >= e.0 {
                e.0 = b.time;
                e.1 = k;
            }
        }
        let mut eligible: Vec<(i64, usize)> = last
            .iter()
            .filter(|(_, v)| v.2 >= 2)
            .map(|(c, v)| (*c, v.1))
            .collect();
        eligible.sort_unstable();
        if eligible.len() > TUNE_CUSTOMERS {
            let step = eligible.len() as f64 / TUNE_CUSTOMERS as f64;
            eligible = (0..TUNE_CUSTOMERS)
                .map(|k| eligible[(k as f64 * step) as usize])
                .collect();
        }
        let held: HashSet<usize> = eligible.iter().map(|x| x.1).collect();
        if held.is_empty() {
            let r = Self::fit(baskets, items, now);
            return (
                r,
                Tuning {
                    params: RecParams::default(),
                    customers: 0,
                    chosen: (0.0, 0.0),
                    defaults: (0.0, 0.0),
                    buy_again: (0.0, 0.0),
                },
            );
        }
        let rest: Vec<Basket> = baskets
            .iter()
            .enumerate()
            .filter(|(k, _)| !held.contains(k))
            .map(|(_, b)| b.clone())
            .collect();
        let inner = Self::fit(&rest, items, now);
        drop(rest);
        let cases: Vec<(i64, Context, Vec<usize>, Gathered)> = eligible
            .par_iter()
            .map(|&(c, k)| {
                let ctx = inner.usual_context(c);
                let g = inner.gather(Some(c), &ctx);
                (c, ctx, baskets[k].items.clone(), g)
            })
            .collect();
        let score = |p: &RecParams| -> (f64, f64) {
            let (sp, sn) = cases
                .par_iter()
                .map(|(c, ctx, rel, g)| {
                    let ranked: Vec<usize> = inner
                        .top_k(Some(*c), inner.score(p, Some(*c), ctx, g), 10)
                        .iter()
                        .map(|r| r.item)
                        .collect();
                    precision_ndcg(&ranked, rel, 10)
                })
                .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            (sp / cases.len() as f64, sn / cases.len() as f64)
        };
        let mut best: Option<(RecParams, (f64, f64))> = None;
        // a_personal near 0 and m_daypart near infinity rank a customer's own items by how often
        // they bought them, ties by popularity where shown: buy-again's order.
        for a_personal in [0.05, 0.5, 2.0, 8.0] {
            for m_daypart in [1.0, 3.0, 10.0, 1e6] {
                for w_new in [0.0, 0.3, 1.0] {
                    let p = RecParams {
                        a_personal,
                        m_daypart,
                        m_store: RecParams::default().m_store,
                        w_new,
                    };
                    let s = score(&p);
                    if best.is_none_or(|(_, b)| s.0 + s.1 > b.0 + b.1) {
                        best = Some((p, s));
                    }
                }
            }
        }
        let (params, chosen) = best.expect("a grid");
        let ba = BuyAgain::from(&inner);
        let buy_again = cases
            .iter()
            .map(|(c, _, rel, _)| precision_ndcg(&ba.top(*c, 10), rel, 10))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let tuning = Tuning {
            params,
            customers: cases.len(),
            chosen,
            defaults: score(&RecParams::default()),
            buy_again: (
                buy_again.0 / cases.len() as f64,
                buy_again.1 / cases.len() as f64,
            ),
        };
        drop(inner);
        (Self::fit_with(baskets, items, now, params), tuning)
    }

    pub fn items(&self) -> usize {
        self.n
    }

    pub fn params(&self) -> RecParams {
        self.params
    }

    /// Bytes held by the fitted model (approximate: the vectors and maps it owns).
    pub fn memory_bytes(&self) -> usize {
        let hist: usize = self
            .hist
            .values()
            .map(|h| 96 + h.items.len() * std::mem::size_of::<Bought>() + h.store_orders.len() * 16)
            .sum();
        let sd: usize = self
            .sd
            .values()
            .map(|s| 64 + s.items.len() * 8 + s.top.len() * 4)
            .sum();
        self.n * 8 * (4 + DAYPARTS) + self.co.bytes() + self.dot.bytes() + hist + sd
    }

    /// Popularity of item `i` where and when the recommendation is shown.
    fn pop_at(&self, p: &RecParams, sd: Option<&StoreDaypart>, dp: Option<usize>, i: usize) -> f64 {
        let base = match dp {
            Some(d) => self.pop_dp[d][i],
            None => self.pop[i],
        };
        match sd {
            Some(s) => {
                let cnt = s
                    .items
                    .binary_search_by_key(&(i as u32), |x| x.0)
                    .map_or(0.0, |k| s.items[k].1 as f64);
                let own = if self.new_item[i] {
                    cnt.max(base * s.orders)
                } else {
                    cnt
                };
                (own + p.m_store * base) / (s.orders + p.m_store)
            }
            None => base,
        }
    }

    /// Shrunk lift of `j` in baskets holding `i`: P(j | i) / P(j), with 10 pseudo-baskets.
    fn lift(&self, i: usize, j: usize) -> f64 {
        if self.count[i] < 1.0 || self.count[j] < 1.0 {
            return 1.0;
        }
        let co = self.co.get(i, j).unwrap_or(0.0) as f64;
        let pj = self.count[j] / self.baskets;
        ((co + 10.0 * pj) / (self.count[i] + 10.0)) / pj
    }

    /// The customer's favourite daypart and most used store in the training data.
    pub fn usual_context(&self, customer: i64) -> Context {
        let Some(h) = self.hist.get(&customer) else {
            return Context::default();
        };
        let d =
            (0..DAYPARTS).max_by(|a, b| h.dp_orders[*a].total_cmp(&h.dp_orders[*b]).then(b.cmp(a)));
        let s = h
            .store_orders
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|x| x.0);
        Context {
            daypart: d,
            store: s,
            cart: Vec::new(),
        }
    }

    /// The candidates, scored by the estimated chance each is in this customer's next order:
    /// every item the customer bought, the partners of those and of the cart, and the most
    /// popular items where and when it is shown (cart items left out).
    fn candidates(&self, p: &RecParams, customer: Option<i64>, ctx: &Context) -> Vec<Rec> {
        self.score(p, customer, ctx, &self.gather(customer, ctx))
    }

    /// The candidates and the taste evidence for them, which no setting changes.
    fn gather(&self, customer: Option<i64>, ctx: &Context) -> Gathered {
        let dp = ctx.daypart.map(|d| d.min(DAYPARTS - 1));
        let sd = match (ctx.store, dp) {
            (Some(s), Some(d)) => self.sd.get(&(s, d)),
            _ => None,
        };
        let h = customer.and_then(|c| self.hist.get(&c));
        // Taste: for each untried partner i of what they buy, the co-purchase share
        // Σ_j conf[j][i]·n_j / Σ n_j and cosine Σ sim[i][j]·n_j / Σ n_j.
        let mut cf: HashMap<u32, (f64, f64)> = HashMap::new();
        let mut w = 0.0;
        let mut cand: Vec<u32> = Vec::new();
        if let Some(h) = h {
            for b in &h.items {
                let j = b.item as usize;
                w += b.n as f64;
                let (cols, vals) = self.dot.row(j);
                for (&i, &d) in cols.iter().zip(vals) {
                    let e = cf.entry(i).or_default();
                    e.0 += d as f64 / self.norm[j] * b.n as f64;
                    e.1 += d as f64 / (self.norm[j] * self.norm[i as usize]).sqrt() * b.n as f64;
                }
            }
            cand.extend(h.items.iter().map(|b| b.item));
            // Of the untried partners, the TASTE strongest: their order does not depend on
            // the settings (popularity × lift, scaled by a per-customer constant).
            let mut untried: Vec<(u32, f64)> = cf
                .iter()
                .filter(|(i, _)| h.get(**i as usize).is_none())
                .map(|(&i, &(s, _))| (i, self.taste_base(i as usize, s, w)))
                .collect();
            if untried.len() > TASTE {
                untried.select_nth_unstable_by(TASTE - 1, |a, b| {
                    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                });
                untried.truncate(TASTE);
            }
            cand.extend(untried.iter().map(|x| x.0));
        }
        for &c in &ctx.cart {
            if c < self.n {
                cand.extend_from_slice(self.co.row(c).0);
            }
        }
        cand.extend_from_slice(match dp {
            Some(d) => &self.top_dp[d],
            None => &self.top,
        });
        if let Some(s) = sd {
            cand.extend_from_slice(&s.top);
        }
        cand.extend_from_slice(&self.top_new);
        cand.sort_unstable();
        cand.dedup();
        Gathered { cand, cf, w }
    }

    /// An untried item's chance before the customer's openness: chain popularity times its
    /// lift among customers like this one, half-trusted (√). A new item has little history to
    /// co-occur with: no lift either way. (The usual store and daypart do not help here: on
    /// the time split a first try is as likely anywhere, so chain popularity is the base.)
    fn taste_base(&self, i: usize, s: f64, w: f64) -> f64 {
        if self.new_item[i] {
            return self.pop[i];
        }
        let cfv = if w > 0.0 { s / w } else { 0.0 };
        let reach = self.norm[i] / self.customers;
        let lift = if reach > 0.0 {
            (cfv / reach).clamp(0.2, 5.0).sqrt()
        } else {
            1.0
        };
        self.pop[i] * lift
    }

    fn score(&self, p: &RecParams, customer: Option<i64>, ctx: &Context, g: &Gathered) -> Vec<Rec> {
        let dp = ctx.daypart.map(|d| d.min(DAYPARTS - 1));
        let sd = match (ctx.store, dp) {
            (Some(s), Some(d)) => self.sd.get(&(s, d)),
            _ => None,
        };
        let h = customer.and_then(|c| self.hist.get(&c));
        let (cf, w) = (&g.cf, g.w);
        let mut out: Vec<Rec> = g
            .cand
            .iter()
            .map(|&i| i as usize)
            .filter(|i| !ctx.cart.contains(i))
            .map(|i| {
                let pc = self.pop_at(p, sd, dp, i);
                match h {
                    Some(h) => match h.get(i) {
                        Some(b) => {
                            let a = p.a_personal;
                            let base = (b.n as f64 + a * pc) / (h.orders + a);
                            let s = match dp {
                                Some(d) => {
                                    let m = p.m_daypart;
                                    (b.dp[d] as f64 + m * base) / (h.dp_orders[d] + m)
                                }
                                None => base,
                            };
                            Rec {
                                item: i,
                                score: s,
                                reason: Reason::BuyAgain,
                                bought_before: true,
                            }
                        }
                        None => {
                            let (s, sim) = cf.get(&(i as u32)).copied().unwrap_or((0.0, 0.0));
                            let base = self.taste_base(i, s, w);
                            let openness = p.a_personal / (h.orders + p.a_personal);
                            let reason = if self.new_item[i] {
                                Reason::NewItem
                            } else if w > 0.0 && sim / w > self.mean_sim[i] * 1.2 {
                                Reason::SimilarTaste
                            } else {
                                Reason::Popular
                            };
                            // w_new = 0 keeps the order among untried items but puts them
                            // after every item the customer bought.
                            let weight = if p.w_new > 0.0 { p.w_new } else { 1e-9 };
                            Rec {
                                item: i,
                                score: base * openness.max(0.05) * weight,
                                reason,
                                bought_before: false,
                            }
                        }
                    },
                    None => Rec {
                        item: i,
                        score: pc,
                        reason: if self.new_item[i] {
                            Reason::NewItem
                        } else {
                            Reason::Popular
                        },
                        bought_before: false,
                    },
                }
            })
            .collect();
        let cart: Vec<usize> = ctx.cart.iter().copied().filter(|&c| c < self.n).collect();
        if !cart.is_empty() {
            for r in out.iter_mut() {
                let l = cart.iter().map(|&c| self.lift(c, r.item)).sum::<f64>() / cart.len() as f64;
                r.score *= l;
                if l > 1.3 && !r.bought_before {
                    r.reason = Reason::AddOn;
                }
            }
        }
        out
    }

    /// The top `k`, keeping every item the customer buys in at least a third of their orders.
    pub fn recommend(&self, customer: Option<i64>, ctx: &Context, k: usize) -> Vec<Rec> {
        self.recommend_with(&self.params, customer, ctx, k)
    }

    fn recommend_with(
        &self,
        p: &RecParams,
        customer: Option<i64>,
        ctx: &Context,
        k: usize,
    ) -> Vec<Rec> {
        self.top_k(customer, self.candidates(p, customer, ctx), k)
    }

    /// The top `k` of scored candidates, staples kept.
    fn top_k(&self, customer: Option<i64>, mut all: Vec<Rec>, k: usize) -> Vec<Rec> {
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        let h = customer.and_then(|c| self.hist.get(&c));
        let staple = |i: usize| {
            h.is_some_and(|h| {
                h.get(i)
                    .is_some_and(|b| b.n as f64 / h.orders.max(1.0) >= 1.0 / 3.0)
            })
        };
        let mut top: Vec<Rec> = all.iter().take(k).cloned().collect();
        for r in all.iter().skip(k) {
            if staple(r.item) {
                // Push out the weakest item that is not itself a staple.
                if let Some(pos) = top.iter().rposition(|t| !staple(t.item)) {
                    top[pos] = r.clone();
                }
            }
        }
        top.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        top
    }
}

/// The buy-again baseline: the customer's items by how many of their orders held them (ties:
/// chain popularity), then every other item by chain popularity.
pub struct BuyAgain {
    hist: HashMap<i64, Vec<(u32, f32)>>,
    popular: Vec<usize>,
    /// Each item's place in `popular`.
    place: Vec<usize>,
}

impl BuyAgain {
    pub fn fit(baskets: &[Basket], n: usize) -> BuyAgain {
        let mut hist: HashMap<i64, HashMap<u32, f32>> = HashMap::new();
        for b in baskets {
            let e = hist.entry(b.customer).or_default();
            let mut set = b.items.clone();
            set.sort_unstable();
            set.dedup();
            for i in set {
                *e.entry(i as u32).or_default() += 1.0;
            }
        }
        Self::new(
            hist.into_iter()
                .map(|(c, m)| (c, m.into_iter().collect()))
                .collect(),
            Popularity::fit(baskets, n).0,
        )
    }

    fn new(hist: HashMap<i64, Vec<(u32, f32)>>, popular: Vec<usize>) -> BuyAgain {
        let mut place = vec![usize::MAX; popular.len()];
        for (r, &i) in popular.iter().enumerate() {
            place[i] = r;
        }
        BuyAgain {
            hist,
            popular,
            place,
        }
    }

    fn from(r: &Recommender) -> BuyAgain {
        let mut popular: Vec<usize> = (0..r.n).collect();
        popular.sort_by(|a, b| r.count[*b].total_cmp(&r.count[*a]).then(a.cmp(b)));
        Self::new(
            r.hist
                .iter()
                .map(|(c, h)| (*c, h.items.iter().map(|b| (b.item, b.n)).collect()))
                .collect(),
            popular,
        )
    }

    /// The first `k` of [`Ranker::rank`].
    pub fn top(&self, customer: i64, k: usize) -> Vec<usize> {
        let mut own: Vec<(u32, f32)> = self.hist.get(&customer).cloned().unwrap_or_default();
        own.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(self.place[a.0 as usize].cmp(&self.place[b.0 as usize]))
        });
        own.truncate(k);
        let mine: HashSet<usize> = own.iter().map(|x| x.0 as usize).collect();
        let fill = k - own.len();
        own.iter()
            .map(|x| x.0 as usize)
            .chain(
                self.popular
                    .iter()
                    .copied()
                    .filter(|i| !mine.contains(i))
                    .take(fill),
            )
            .collect()
    }
}

impl Ranker for BuyAgain {
    fn rank(&self, customer: i64) -> Vec<usize> {
        self.top(customer, self.popular.len())
    }
}

/// Precision@k and NDCG@k averaged over customers, for all items, items bought before the split
/// (repeat) and items not bought before (new).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct RankScores {
    pub customers: usize,
    pub precision: f64,
    pub ndcg: f64,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct EvalReport {
    pub all: RankScores,
    pub repeat: RankScores,
    pub new: RankScores,
}

/// Scores one ranked list against the relevant set.
pub fn precision_ndcg(ranked: &[usize], relevant: &[usize], k: usize) -> (f64, f64) {
    let hits: Vec<bool> = ranked
        .iter()
        .take(k)
        .map(|i| relevant.contains(i))
        .collect();
    let p = hits.iter().filter(|h| **h).count() as f64 / k as f64;
    let dcg: f64 = hits
        .iter()
        .enumerate()
        .filter(|(_, h)| **h)
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    (p, if ideal > 0.0 { dcg / ideal } else { 0.0 })
}

/// A ranker: for a customer, every item in preference order.
pub trait Ranker {
    fn rank(&self, customer: i64) -> Vec<usize>;
}

impl Ranker for Recommender {
    fn rank(&self, customer: i64) -> Vec<usize> {
        let ctx = self.usual_context(customer);
        self.recommend(Some(customer), &ctx, self.n)
            .into_iter()
            .map(|r| r.item)
            .collect()
    }
}

/// The popularity baseline: items by how many training baskets hold them.
pub struct Popularity(pub Vec<usize>);

impl Popularity {
    pub fn fit(baskets: &[Basket], n: usize) -> Popularity {
        let mut c = vec![0usize; n];
        for b in baskets {
            for &i in &b.items {
                c[i] += 1;
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| c[*b].cmp(&c[*a]).then(a.cmp(b)));
        Popularity(order)
    }
}

impl Ranker for Popularity {
    fn rank(&self, _customer: i64) -> Vec<usize> {
        self.0.clone()
    }
}

/// Time-split evaluation: customers with orders on both sides; the relevant items are those in
/// their test orders. Repeat = restricted to items they bought in training, new = the rest; each
/// list is the ranker's order filtered to that candidate set.
pub fn evaluate(ranker: &dyn Ranker, train: &[Basket], test: &[Basket], k: usize) -> EvalReport {
    let mut before: HashMap<i64, HashSet<usize>> = HashMap::new();
    for b in train {
        before
            .entry(b.customer)
            .or_default()
            .extend(b.items.iter().copied());
    }
    let mut after: HashMap<i64, Vec<usize>> = HashMap::new();
    for b in test {
        if !before.contains_key(&b.customer) {
            continue;
        }
        let e = after.entry(b.customer).or_default();
        for &i in &b.items {
            if !e.contains(&i) {
                e.push(i);
            }
        }
    }
    let mut custs: Vec<&i64> = after.keys().collect();
    custs.sort();
    let mut acc = [(0usize, 0.0, 0.0); 3];
    for c in custs {
        let seen = &before[c];
        let rel = &after[c];
        let ranked = ranker.rank(*c);
        let parts: [(Vec<usize>, Vec<usize>); 3] = [
            (ranked.iter().copied().take(k).collect(), rel.clone()),
            (
                ranked
                    .iter()
                    .copied()
                    .filter(|i| seen.contains(i))
                    .take(k)
                    .collect(),
                rel.iter().copied().filter(|i| seen.contains(i)).collect(),
            ),
            (
                ranked
                    .iter()
                    .copied()
                    .filter(|i| !seen.contains(i))
                    .take(k)
                    .collect(),
                rel.iter().copied().filter(|i| !seen.contains(i)).collect(),
            ),
        ];
        for (slot, (list, r)) in parts.iter().enumerate() {
            if r.is_empty() {
                continue;
            }
            let (p, n) = precision_ndcg(list, r, k);
            acc[slot].0 += 1;
            acc[slot].1 += p;
            acc[slot].2 += n;
        }
    }
    let f = |a: (usize, f64, f64)| RankScores {
        customers: a.0,
        precision: a.1 / a.0.max(1) as f64,
        ndcg: a.2 / a.0.max(1) as f64,
    };
    EvalReport {
        all: f(acc[0]),
        repeat: f(acc[1]),
        new: f(acc[2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(c: i64, t: i64, dp: usize, items: &[usize]) -> Basket {
        Basket {
            customer: c,
            time: t,
            daypart: dp,
            store: 1,
            items: items.to_vec(),
        }
    }

    fn info(n: usize) -> Vec<ItemInfo> {
        (0..n)
            .map(|i| ItemInfo {
                category: if i < 3 { "a".into() } else { "b".into() },
                launched: 0,
            })
            .collect()
    }

    #[test]
    fn buy_again_by_daypart_and_never_hides_staples() {
        // Customer 1 buys item 0 at breakfast and item 1 at dinner; item 4 is the chain's hit.
        let mut bs = Vec::new();
        for t in 0..10 {
            bs.push(b(1, t, 0, &[0]));
            bs.push(b(1, t, 3, &[1]));
        }
        for c in 2..50 {
            bs.push(b(c, 0, 0, &[4, 5]));
        }
        let r = Recommender::fit(&bs, &info(6), 100 * 86_400 * 365);
        let morning = r.recommend(
            Some(1),
            &Context {
                daypart: Some(0),
                store: Some(1),
                cart: vec![],
            },
            2,
        );
        assert_eq!(morning[0].item, 0);
        assert_eq!(morning[0].reason, Reason::BuyAgain);
        let evening = r.recommend(
            Some(1),
            &Context {
                daypart: Some(3),
                store: Some(1),
                cart: vec![],
            },
            2,
        );
        assert_eq!(evening[0].item, 1);
        // k = 1 still keeps... the top staple; with k = 2 both staples stay ahead of the hit.
        let ids: Vec<usize> = evening.iter().map(|r| r.item).collect();
        assert!(ids.contains(&0) && ids.contains(&1), "{ids:?}");
        // A new customer gets the hit; with 4 in the cart, 5 (always bought with it) comes first.
        let cold = r.recommend(
            None,
            &Context {
                daypart: Some(0),
                store: Some(1),
                cart: vec![],
            },
            1,
        );
        assert_eq!(cold[0].item, 4);
        let add = r.recommend(
            Some(2),
            &Context {
                daypart: Some(0),
                store: Some(1),
                cart: vec![4],
            },
            3,
        );
        assert_eq!(add[0].item, 5);
        assert!(
            add.iter().all(|x| x.item != 4),
            "cart items are not recommended"
        );
    }

    #[test]
    fn sparse_counts_match_hand_counts() {
        // Baskets: {0,1} x3, {0,2} x1, {1,2,3} x2; customer 1 buys 0 and 1, customer 2 buys 1-3.
        let mut bs = Vec::new();
        for _ in 0..3 {
            bs.push(b(1, 0, 1, &[0, 1]));
        }
        bs.push(b(1, 0, 1, &[0, 2, 2]));
        for _ in 0..2 {
            bs.push(b(2, 0, 1, &[1, 2, 3]));
        }
        let r = Recommender::fit(&bs, &info(5), 100 * 86_400 * 365);
        assert_eq!(r.co.get(0, 1), Some(3.0));
        assert_eq!(r.co.get(1, 0), Some(3.0));
        assert_eq!(r.co.get(0, 2), Some(1.0));
        assert_eq!(r.co.get(2, 3), Some(2.0));
        assert_eq!(r.co.get(0, 3), None);
        assert_eq!(r.count[2], 3.0, "a duplicated item counts once per basket");
        // lift(0 -> 1) = ((3 + 10 * 5/6) / (4 + 10)) / (5/6)
        let want = ((3.0 + 10.0 * 5.0 / 6.0) / 14.0) / (5.0 / 6.0);
        assert!((r.lift(0, 1) - want).abs() < 1e-12);
        // Across customers: 1 bought {0,1,2}, 2 bought {1,2,3}.
        assert_eq!(r.dot.get(1, 2), Some(2.0));
        assert_eq!(r.dot.get(0, 3), None);
        assert_eq!(r.norm[1], 2.0);
        // Mean cosine of 0 to the other four items: (1/sqrt(2) + 1/sqrt(2)) / 4.
        assert!((r.mean_sim[0] - 2f64.sqrt() / 4.0).abs() < 1e-12);
    }

    /// A large catalogue where everyone buys again from their own small set, and a few hits sell
    /// to everybody once: the tuned fit must not lose to buy-again on the last orders, and the
    /// model stays small.
    #[test]
    fn large_catalogue_repeat_buyers_do_not_lose_to_buy_again() {
        let n = 15_000;
        let mut rng = 7u64;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let mut bs = Vec::new();
        for c in 0..600i64 {
            let own: Vec<usize> = (0..8).map(|_| 20 + next(n as u64 - 20) as usize).collect();
            for t in 0..12 {
                let mut items: Vec<usize> = (0..3)
                    .map(|_| own[next(8) as usize % (2 + t % 7)])
                    .collect();
                if next(5) == 0 {
                    items.push(next(20) as usize);
                }
                bs.push(b(c, t as i64 * 86_400, next(5) as usize, &items));
            }
        }
        let items = info(n);
        let now = 100 * 86_400 * 365;
        let mut last: HashMap<i64, usize> = HashMap::new();
        for (k, x) in bs.iter().enumerate() {
            last.insert(x.customer, k);
        }
        let held: HashSet<usize> = last.values().copied().collect();
        let train: Vec<Basket> = (0..bs.len())
            .filter(|k| !held.contains(k))
            .map(|k| bs[k].clone())
            .collect();
        let test: Vec<Basket> = held.iter().map(|&k| bs[k].clone()).collect();
        let (r, tuning) = Recommender::fit_tuned(&train, &items, now);
        assert!(tuning.customers > 500);
        let hybrid = evaluate(&r, &train, &test, 10);
        let ba = evaluate(&BuyAgain::fit(&train, n), &train, &test, 10);
        let pop = evaluate(&Popularity::fit(&train, n), &train, &test, 10);
        assert!(
            hybrid.all.precision >= 0.98 * ba.all.precision,
            "{hybrid:?} {ba:?} {tuning:?}"
        );
        assert!(ba.all.precision > 2.0 * pop.all.precision, "{ba:?} {pop:?}");
        assert!(r.memory_bytes() < 64 << 20, "{} bytes", r.memory_bytes());
    }

    #[test]
    fn metrics_match_hand_computation() {
        let (p, n) = precision_ndcg(&[3, 1, 2], &[1, 9], 2);
        assert_eq!(p, 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((n - (1.0 / 3f64.log2()) / ideal).abs() < 1e-12);
    }
}
