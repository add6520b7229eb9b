//! Recommendations for a small menu with heavy repeat buying: a hybrid that estimates, per
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
//! Items a customer keeps buying are never pushed out of the list by new ones. The offline
//! evaluation ([`evaluate`]) splits on time and scores repeat and new items separately. No I/O.

use std::collections::HashMap;

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

#[derive(Debug, Clone, Default)]
struct Hist {
    orders: f64,
    /// Orders containing each item, overall and per daypart.
    item: Vec<f64>,
    item_dp: Vec<Vec<f64>>,
    dp_orders: [f64; DAYPARTS],
    store_orders: HashMap<i64, f64>,
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

#[derive(Debug, Clone)]
pub struct Recommender {
    n: usize,
    pop: Vec<f64>,
    pop_dp: Vec<Vec<f64>>,
    /// (store, daypart) -> (orders, orders containing each item)
    pop_sd: HashMap<(i64, usize), (f64, Vec<f64>)>,
    lift: Vec<Vec<f64>>,
    sim: Vec<Vec<f64>>,
    /// conf[j][i] = share of customers who bought j that also bought i.
    conf: Vec<Vec<f64>>,
    /// Share of customers who bought each item.
    reach: Vec<f64>,
    new_item: Vec<bool>,
    category: Vec<String>,
    hist: HashMap<i64, Hist>,
    params: RecParams,
}

/// Shrinkage strengths, in pseudo-orders.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecParams {
    /// How many orders' worth of the (store, daypart) popularity a customer's own repeat rate
    /// starts from; also how open a customer with few orders is to new tastes.
    pub a_personal: f64,
    /// Toward the customer's all-day rate, for their rate in one daypart.
    pub m_daypart: f64,
    /// Toward the chain's popularity, for one store's in one daypart.
    pub m_store: f64,
}

impl Default for RecParams {
    fn default() -> RecParams {
        RecParams {
            a_personal: 2.0,
            m_daypart: 3.0,
            m_store: 20.0,
        }
    }
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
        let mut pop = vec![0.0; n];
        let mut pop_dp = vec![vec![0.0; n]; DAYPARTS];
        let mut dp_tot = [0.0f64; DAYPARTS];
        let mut pop_sd: HashMap<(i64, usize), (f64, Vec<f64>)> = HashMap::new();
        let mut co = vec![vec![0.0; n]; n];
        let mut hist: HashMap<i64, Hist> = HashMap::new();
        for b in baskets {
            let dp = b.daypart.min(DAYPARTS - 1);
            dp_tot[dp] += 1.0;
            let sd = pop_sd
                .entry((b.store, dp))
                .or_insert_with(|| (0.0, vec![0.0; n]));
            sd.0 += 1.0;
            let h = hist.entry(b.customer).or_insert_with(|| Hist {
                item: vec![0.0; n],
                item_dp: vec![vec![0.0; n]; DAYPARTS],
                ..Default::default()
            });
            h.orders += 1.0;
            h.dp_orders[dp] += 1.0;
            *h.store_orders.entry(b.store).or_default() += 1.0;
            for &i in &b.items {
                pop[i] += 1.0;
                pop_dp[dp][i] += 1.0;
                sd.1[i] += 1.0;
                h.item[i] += 1.0;
                h.item_dp[dp][i] += 1.0;
                for &j in &b.items {
                    if i != j {
                        co[i][j] += 1.0;
                    }
                }
            }
        }
        let total = baskets.len().max(1) as f64;
        // lift[i][j] = P(j | i in basket) / P(j)
        let lift: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if pop[i] < 1.0 || pop[j] < 1.0 {
                            1.0
                        } else {
                            // Shrunk toward 1 with 10 pseudo-baskets.
                            let p_j_i = (co[i][j] + 10.0 * pop[j] / total) / (pop[i] + 10.0);
                            p_j_i / (pop[j] / total)
                        }
                    })
                    .collect()
            })
            .collect();
        // Item-item cosine over customers (binary: bought at least once).
        let mut dot = vec![vec![0.0f64; n]; n];
        let mut norm = vec![0.0f64; n];
        for h in hist.values() {
            let bought: Vec<usize> = (0..n).filter(|&i| h.item[i] > 0.0).collect();
            for &i in &bought {
                norm[i] += 1.0;
                for &j in &bought {
                    if i != j {
                        dot[i][j] += 1.0;
                    }
                }
            }
        }
        let sim: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if i == j || norm[i] == 0.0 || norm[j] == 0.0 {
                            0.0
                        } else {
                            dot[i][j] / (norm[i] * norm[j]).sqrt()
                        }
                    })
                    .collect()
            })
            .collect();
        let conf: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                (0..n)
                    .map(|i| {
                        if norm[j] > 0.0 {
                            dot[j][i] / norm[j]
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let new_item: Vec<bool> = items
            .iter()
            .map(|it| now - it.launched < NEW_ITEM_DAYS * 86_400)
            .collect();
        let mut r = Recommender {
            n,
            pop: pop.iter().map(|p| p / total).collect(),
            pop_dp: (0..DAYPARTS)
                .map(|d| pop_dp[d].iter().map(|p| p / dp_tot[d].max(1.0)).collect())
                .collect(),
            pop_sd,
            lift,
            sim,
            conf,
            reach: norm.iter().map(|x| x / hist.len().max(1) as f64).collect(),
            new_item,
            category: items.iter().map(|i| i.category.clone()).collect(),
            hist,
            params,
        };
        // A new item has had less time to sell: give it the mean popularity of its category
        // when that is higher (content-based cold start).
        for i in 0..n {
            if r.new_item[i] {
                let peers: Vec<usize> = (0..n)
                    .filter(|&j| !r.new_item[j] && r.category[j] == r.category[i])
                    .collect();
                if !peers.is_empty() {
                    let m = peers.iter().map(|&j| r.pop[j]).sum::<f64>() / peers.len() as f64;
                    r.pop[i] = r.pop[i].max(m);
                    for d in 0..DAYPARTS {
                        let md =
                            peers.iter().map(|&j| r.pop_dp[d][j]).sum::<f64>() / peers.len() as f64;
                        r.pop_dp[d][i] = r.pop_dp[d][i].max(md);
                    }
                }
            }
        }
        r
    }

    pub fn items(&self) -> usize {
        self.n
    }

    /// Popularity of each item where and when the recommendation is shown.
    fn pop_ctx(&self, ctx: &Context) -> Vec<f64> {
        let base: &Vec<f64> = match ctx.daypart {
            Some(d) => &self.pop_dp[d.min(DAYPARTS - 1)],
            None => &self.pop,
        };
        match (ctx.store, ctx.daypart) {
            (Some(s), Some(d)) => match self.pop_sd.get(&(s, d.min(DAYPARTS - 1))) {
                Some((orders, cnt)) => (0..self.n)
                    .map(|i| {
                        let b = base[i];
                        let own = if self.new_item[i] {
                            cnt[i].max(b * orders)
                        } else {
                            cnt[i]
                        };
                        (own + self.params.m_store * b) / (orders + self.params.m_store)
                    })
                    .collect(),
                None => base.clone(),
            },
            _ => base.clone(),
        }
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
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map(|x| *x.0);
        Context {
            daypart: d,
            store: s,
            cart: Vec::new(),
        }
    }

    /// Every item scored by the estimated chance it is in this customer's next order.
    pub fn score_all(&self, customer: Option<i64>, ctx: &Context) -> Vec<Rec> {
        let pc = self.pop_ctx(ctx);
        let h = customer.and_then(|c| self.hist.get(&c));
        let mut out: Vec<Rec> = (0..self.n)
            .map(|i| match h {
                Some(h) if h.item[i] > 0.0 => {
                    let a = self.params.a_personal;
                    let base = (h.item[i] + a * pc[i]) / (h.orders + a);
                    let p = match ctx.daypart {
                        Some(d) => {
                            let d = d.min(DAYPARTS - 1);
                            let m = self.params.m_daypart;
                            (h.item_dp[d][i] + m * base) / (h.dp_orders[d] + m)
                        }
                        None => base,
                    };
                    Rec {
                        item: i,
                        score: p,
                        reason: Reason::BuyAgain,
                        bought_before: true,
                    }
                }
                Some(h) => {
                    // Taste (item-based collaborative filtering): of the customers who bought
                    // what this customer buys, the share who also bought this item, weighted by
                    // how often they buy each; adjusted to where and when it is shown.
                    // One pass over what they buy, weighted by how often: co-purchase share
                    // (for the score) and cosine similarity (for the stated reason).
                    let (mut s, mut sim, mut w) = (0.0, 0.0, 0.0);
                    for j in 0..self.n {
                        if h.item[j] > 0.0 {
                            s += self.conf[j][i] * h.item[j];
                            sim += self.sim[i][j] * h.item[j];
                            w += h.item[j];
                        }
                    }
                    let cf = if w > 0.0 { s / w } else { 0.0 };
                    // Lift of the item among customers like this one, half-trusted (√), on top of
                    // its popularity.
                    let lift = if self.reach[i] > 0.0 {
                        (cf / self.reach[i]).clamp(0.2, 5.0).sqrt()
                    } else {
                        1.0
                    };
                    // A new item has little history to co-occur with: no lift either way.
                    // (The usual store and daypart do not help here: on the time split a
                    // first try is as likely anywhere, so chain popularity is the base.)
                    let base = if self.new_item[i] {
                        self.pop[i]
                    } else {
                        self.pop[i] * lift
                    };
                    let openness = self.params.a_personal / (h.orders + self.params.a_personal);
                    let mean_sim = self.sim[i].iter().sum::<f64>() / (self.n as f64 - 1.0).max(1.0);
                    let reason = if self.new_item[i] {
                        Reason::NewItem
                    } else if w > 0.0 && sim / w > mean_sim * 1.2 {
                        Reason::SimilarTaste
                    } else {
                        Reason::Popular
                    };
                    Rec {
                        item: i,
                        score: base * openness.max(0.05),
                        reason,
                        bought_before: false,
                    }
                }
                None => Rec {
                    item: i,
                    score: pc[i],
                    reason: if self.new_item[i] {
                        Reason::NewItem
                    } else {
                        Reason::Popular
                    },
                    bought_before: false,
                },
            })
            .collect();
        if !ctx.cart.is_empty() {
            for r in out.iter_mut() {
                let l = ctx.cart.iter().map(|&c| self.lift[c][r.item]).sum::<f64>()
                    / ctx.cart.len() as f64;
                r.score *= l;
                if l > 1.3 && !r.bought_before {
                    r.reason = Reason::AddOn;
                }
            }
            out.retain(|r| !ctx.cart.contains(&r.item));
        }
        out
    }

    /// The top `k`, keeping every item the customer buys in at least a third of their orders.
    pub fn recommend(&self, customer: Option<i64>, ctx: &Context, k: usize) -> Vec<Rec> {
        let mut all = self.score_all(customer, ctx);
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        let h = customer.and_then(|c| self.hist.get(&c));
        let staple = |i: usize| h.is_some_and(|h| h.item[i] / h.orders.max(1.0) >= 1.0 / 3.0);
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
    let mut before: HashMap<i64, Vec<usize>> = HashMap::new();
    for b in train {
        let e = before.entry(b.customer).or_default();
        for &i in &b.items {
            if !e.contains(&i) {
                e.push(i);
            }
        }
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
            (ranked.clone(), rel.clone()),
            (
                ranked
                    .iter()
                    .copied()
                    .filter(|i| seen.contains(i))
                    .collect(),
                rel.iter().copied().filter(|i| seen.contains(i)).collect(),
            ),
            (
                ranked
                    .iter()
                    .copied()
                    .filter(|i| !seen.contains(i))
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
    fn metrics_match_hand_computation() {
        let (p, n) = precision_ndcg(&[3, 1, 2], &[1, 9], 2);
        assert_eq!(p, 0.5);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((n - (1.0 / 3f64.log2()) / ideal).abs() < 1e-12);
    }
}
