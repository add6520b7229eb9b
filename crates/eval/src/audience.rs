//! Lookalike audiences scored against the simulator's truth: hide most of a group the truth
//! knows (the customers who will spend the most next year; the people whose favourite meal is
//! breakfast), give the lookalike model a quarter of them as the seed, and measure how many of
//! the hidden rest its expansion of the same size finds — against the base rate, and against
//! ranking by the product's own 12-month CLV.

use std::collections::{HashMap, HashSet};

use c360_core::audience::{lookalike, RoaringTreemap};
use c360_db::{get_f64, get_i64, get_text, Db};
use c360_warehouse::{Session, Warehouse};
use serde::Serialize;

use crate::error::Result;

/// How well a lookalike recovers one hidden group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupEval {
    pub group: String,
    /// Customers of the group given as the seed, and hidden from the model.
    pub seed: usize,
    pub hidden: usize,
    /// Share of the hidden group among everyone outside the seed (a random pick's precision).
    pub base_rate: f64,
    /// Share of the expansion (as large as the hidden group) that is in it.
    pub precision: f64,
    pub lift: f64,
    /// The same for the top customers by predicted 12-month CLV.
    pub clv_precision: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookalikeEval {
    /// Customers with exactly one true person (the ones scored).
    pub customers: usize,
    pub groups: Vec<GroupEval>,
}

/// A deterministic quarter of the group as the seed.
fn in_seed(c: i64) -> bool {
    (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61 < 2 // 2 of 8 buckets: a quarter
}

pub async fn evaluate_lookalike(
    warehouse: &std::path::Path,
    truth_url: &str,
) -> Result<LookalikeEval> {
    let wh = Warehouse::open(warehouse)?;
    let sess = Session::open(&wh).await?;
    let truth = Db::connect(truth_url).await?;
    let clean = crate::clv::clean_customers(&sess, &truth).await?;
    let mut future: HashMap<i64, f64> = HashMap::new();
    let mut daypart: HashMap<i64, String> = HashMap::new();
    for r in truth
        .fetch_all("SELECT person_id, future_spend_fen, fav_daypart FROM persons")
        .await?
    {
        let p = get_i64(&r, "person_id").unwrap_or(0);
        future.insert(p, get_f64(&r, "future_spend_fen").unwrap_or(0.0));
        daypart.insert(p, get_text(&r, "fav_daypart").unwrap_or_default());
    }
    let mut clv: Vec<(f64, i64)> = Vec::new();
    for b in sess
        .query("SELECT customer_id, COALESCE(clv_12m_fen, 0) AS clv FROM v_customer_360")
        .await?
    {
        let rows = c360_core::json::rows(&[b]).map_err(c360_core::CoreError::from)?;
        for r in rows {
            if let (Some(c), Some(v)) = (r["customer_id"].as_i64(), r["clv"].as_f64()) {
                clv.push((v, c));
            }
        }
    }
    clv.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // Top fifth of clean customers by true future spend.
    let mut by_future: Vec<(f64, i64)> = clean
        .iter()
        .map(|(c, p)| (future.get(p).copied().unwrap_or(0.0), *c))
        .collect();
    by_future.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let top: HashSet<i64> = by_future
        .iter()
        .take(by_future.len() / 5)
        .map(|x| x.1)
        .collect();
    let breakfast: HashSet<i64> = clean
        .iter()
        .filter(|(_, p)| daypart.get(p).map(String::as_str) == Some("breakfast"))
        .map(|(c, _)| *c)
        .collect();
    let total = clv.len();
    let mut groups = Vec::new();
    for (name, g) in [("top_future_spend", top), ("breakfast_lovers", breakfast)] {
        let seed: RoaringTreemap = g
            .iter()
            .filter(|c| in_seed(**c))
            .map(|c| *c as u64)
            .collect();
        let hidden: HashSet<i64> = g.iter().filter(|c| !in_seed(**c)).copied().collect();
        if seed.is_empty() || hidden.is_empty() {
            continue;
        }
        // Scored on the clean customers outside the seed; the expansion (and the CLV pick) is
        // as large, over everyone, as makes it hold about as many clean customers as are hidden.
        let pool = clean
            .keys()
            .filter(|c| !seed.contains(**c as u64))
            .count()
            .max(1);
        let outside = total.saturating_sub(seed.len() as usize).max(1);
        let size = (hidden.len() as f64 * outside as f64 / pool as f64).ceil() as u64;
        let exp = lookalike(&sess, &seed, size, &[]).await?.members;
        let precision = |picked: &mut dyn Iterator<Item = i64>| {
            let (mut n, mut hit) = (0usize, 0usize);
            for c in picked.filter(|c| clean.contains_key(c)) {
                n += 1;
                hit += usize::from(hidden.contains(&c));
            }
            hit as f64 / n.max(1) as f64
        };
        let p = precision(&mut exp.iter().map(|x| x as i64));
        let pc = precision(
            &mut clv
                .iter()
                .map(|x| x.1)
                .filter(|c| !seed.contains(*c as u64))
                .take(size as usize),
        );
        let base = hidden.len() as f64 / pool as f64;
        groups.push(GroupEval {
            group: name.into(),
            seed: seed.len() as usize,
            hidden: hidden.len(),
            base_rate: base,
            precision: p,
            lift: p / base.max(1e-12),
            clv_precision: pc,
        });
    }
    Ok(LookalikeEval {
        customers: clean.len(),
        groups,
    })
}
