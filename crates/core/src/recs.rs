//! The recommender of a snapshot and what it learns from: paid orders as baskets and the item
//! catalogue.

use std::collections::HashMap;

use c360_analytics::recommend::{Basket, ItemInfo, Recommender};
use c360_warehouse::Session;

use crate::cols::{col_i64, col_str};
use crate::CoreResult as Result;
use crate::CoreResult;

/// Paid orders as baskets (items as product index = product_id − 1) and the item catalogue.
pub async fn baskets(sess: &Session) -> Result<(Vec<Basket>, Vec<ItemInfo>, i64)> {
    let mut items: Vec<ItemInfo> = Vec::new();
    let mut pid_ix: HashMap<i64, usize> = HashMap::new();
    for b in sess
        .query("SELECT product_id, category, launched FROM products ORDER BY product_id")
        .await?
    {
        let (id, cat, l) = (col_i64(&b, 0)?, col_str(&b, 1)?, col_str(&b, 2)?);
        for r in 0..b.num_rows() {
            let launched = l[r]
                .as_deref()
                .and_then(|d| c360_model::parse_date(d).ok())
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
                .unwrap_or(0);
            pid_ix.insert(id[r].unwrap_or(0), items.len());
            items.push(ItemInfo {
                category: cat[r].clone().unwrap_or_default(),
                launched,
            });
        }
    }
    let mut by_order: HashMap<String, Basket> = HashMap::new();
    let mut end = 0i64;
    for b in sess
        .query(
            "SELECT o.order_id, o.customer_id, CAST(to_unixtime(o.order_time) AS BIGINT), o.daypart, o.store_id, i.product_id \
             FROM orders o JOIN order_items i ON i.order_id = o.order_id \
             WHERE o.status = 'paid' AND o.customer_id IS NOT NULL",
        )
        .await?
    {
        let (oid, c, t, dp, st, p) = (
            col_str(&b, 0)?,
            col_i64(&b, 1)?,
            col_i64(&b, 2)?,
            col_str(&b, 3)?,
            col_i64(&b, 4)?,
            col_i64(&b, 5)?,
        );
        for r in 0..b.num_rows() {
            let Some(&ix) = p[r].and_then(|p| pid_ix.get(&p)) else { continue };
            let time = t[r].unwrap_or(0);
            end = end.max(time);
            let e = by_order.entry(oid[r].clone().unwrap_or_default()).or_insert_with(|| Basket {
                customer: c[r].unwrap_or(0),
                time,
                daypart: c360_model::Daypart::ALL
                    .iter()
                    .position(|d| Some(d.code()) == dp[r].as_deref())
                    .unwrap_or(1),
                store: st[r].unwrap_or(0),
                items: Vec::new(),
            });
            if !e.items.contains(&ix) {
                e.items.push(ix);
            }
        }
    }
    let mut out: Vec<Basket> = by_order.into_values().collect();
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.customer.cmp(&b.customer)));
    Ok((out, items, end))
}

/// The recommender of a snapshot, with the product ids and names of its item indices.
pub struct RecModel {
    pub rec: Recommender,
    /// The settings the fit chose on the data's own last orders, and how they scored there.
    pub tuning: c360_analytics::recommend::Tuning,
    pub product_ids: Vec<i64>,
    pub names: Vec<String>,
    pub categories: Vec<String>,
}

impl RecModel {
    pub async fn build(sess: &Session) -> CoreResult<RecModel> {
        let (baskets, items, end) = baskets(sess).await?;
        let prods = crate::query::query(
            sess,
            "SELECT product_id, name, category FROM products ORDER BY product_id",
        )
        .await?;
        let (rec, tuning) = Recommender::fit_tuned(&baskets, &items, end);
        Ok(RecModel {
            rec,
            tuning,
            product_ids: prods
                .iter()
                .map(|r| r["product_id"].as_i64().unwrap_or(0))
                .collect(),
            names: prods
                .iter()
                .map(|r| r["name"].as_str().unwrap_or("").to_string())
                .collect(),
            categories: prods
                .iter()
                .map(|r| r["category"].as_str().unwrap_or("").to_string())
                .collect(),
        })
    }
}
