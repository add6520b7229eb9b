//! Menu engineering: which items earn their place on the menu, per store or for the chain.
//!
//! - **Popularity × margin** (Kasavana & Smith): an item is popular when its share of the
//!   units sold is at least 70% of an equal share (1/N), and profitable when its contribution
//!   margin per unit (list price − unit cost from the source contract) is at least the
//!   units-weighted average margin. Star (both), plowhorse (popular, low margin), puzzle
//!   (profitable, unpopular), dog (neither). Items without a cost get no quadrant.
//! - **Attach rate** to the main item (hot dogs): of the orders with a hot dog, the share that
//!   also hold this item; for a hot dog, the share of its orders that hold anything else.
//! - **Cannibalisation at launch**: for the items launched on one day inside the data, the rest
//!   of the menu's revenue per order in the weeks before and after the launch, against the new
//!   items' revenue per order after it: the share of the new items' revenue that came out of the
//!   rest of the menu (1 = none of it is new money), with a 95% interval from the day-to-day
//!   variation, and the rest per category (who lost).
//!
//! All of it is SQL over the warehouse with bound values; list prices, not what a discounted
//! order paid, make the margins (a coupon is a campaign's cost, not the item's).

use std::collections::HashMap;

use c360_warehouse::Session;
use chrono::{Duration, NaiveDate};
use serde::Serialize;
use serde_json::Value;

use crate::query::{in_list, local_midnight, query_with, ScalarValue};
use crate::CoreResult;

/// The main item's category.
pub const MAIN: &str = "热狗";
/// Days before and after a launch that its effect is read over (less when the data is shorter).
pub const LAUNCH_WINDOW_DAYS: i64 = 56;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MenuItem {
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub units: i64,
    /// Share of all units sold.
    pub mix: f64,
    pub revenue_fen: i64,
    /// Average list price per unit.
    pub price_fen: f64,
    pub cost_fen: Option<i64>,
    /// Contribution margin per unit (price − cost).
    pub margin_fen: Option<f64>,
    pub popular: bool,
    pub profitable: Option<bool>,
    /// star, plowhorse, puzzle or dog (none without a cost).
    pub quadrant: Option<String>,
    /// See the module.
    pub attach_rate: f64,
}

/// The effect of one launch: the items launched on one day, together (items launched together
/// take from the menu together; each one's "others" would hold the other's sales).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Launch {
    pub skus: Vec<String>,
    pub names: Vec<String>,
    /// YYYY-MM-DD.
    pub launched: String,
    pub window_days: i64,
    pub orders_before: i64,
    pub orders_after: i64,
    /// The new items' revenue per order after the launch (fen).
    pub new_items_per_order_fen: f64,
    /// The rest of the menu's revenue per order before and after (fen).
    pub others_before_fen: f64,
    pub others_after_fen: f64,
    /// Share of the new items' revenue taken from the rest of the menu (1: no new money), with
    /// its 95% interval.
    pub cannibalised: f64,
    pub cannibalised_low: f64,
    pub cannibalised_high: f64,
    /// The rest of the menu per category: revenue per order before and after.
    pub by_category: Vec<CategoryShift>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CategoryShift {
    pub category: String,
    pub before_fen: f64,
    pub after_fen: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MenuEngineering {
    /// YYYY-MM-DD, inclusive.
    pub from: String,
    pub to: String,
    pub orders: i64,
    pub items: Vec<MenuItem>,
    /// The popularity line (share of units) and the margin line (fen per unit).
    pub popularity_line: f64,
    pub margin_line_fen: Option<f64>,
    pub launches: Vec<Launch>,
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The paid orders of `[from, to]` (local days) in `stores`, as a CTE named `o`.
fn orders_cte(stores: Option<&[i64]>) -> String {
    let scope = stores.map_or(String::new(), |s| {
        format!(" AND store_id IN {}", in_list(s))
    });
    format!(
        "o AS (SELECT order_id FROM orders WHERE status = 'paid' AND order_time >= $1 AND order_time < $2{scope}), \
         it AS (SELECT i.order_id, i.product_id, i.qty, i.unit_price_fen FROM order_items i JOIN o ON o.order_id = i.order_id)"
    )
}

/// Menu engineering over the paid orders of `from..=to` in `stores` (all when None).
pub async fn analyse(
    sess: &Session,
    from: NaiveDate,
    to: NaiveDate,
    stores: Option<&[i64]>,
) -> CoreResult<MenuEngineering> {
    let span = || vec![local_midnight(from), local_midnight(to + Duration::days(1))];
    let cte = orders_cte(stores);
    let orders = query_with(
        sess,
        &format!("WITH {cte} SELECT COUNT(*) AS n FROM o"),
        span(),
    )
    .await?
    .first()
    .and_then(|r| r["n"].as_i64())
    .unwrap_or(0);
    let rows = query_with(
        sess,
        &format!(
            "WITH {cte} SELECT p.product_id, p.sku, p.name, p.category, p.cost_fen, \
               SUM(it.qty) AS units, SUM(it.qty * it.unit_price_fen) AS revenue_fen \
             FROM it JOIN products p ON p.product_id = it.product_id \
             GROUP BY p.product_id, p.sku, p.name, p.category, p.cost_fen ORDER BY p.product_id"
        ),
        span(),
    )
    .await?;
    // Attach rates: orders with a hot dog holding each other item; hot dogs' orders holding
    // anything else.
    let main_param = || {
        let mut v = span();
        v.push(ScalarValue::Utf8(Some(MAIN.into())));
        v
    };
    let with_main: HashMap<i64, f64> = query_with(
        sess,
        &format!(
            "WITH {cte}, m AS (SELECT DISTINCT it.order_id FROM it JOIN products p ON p.product_id = it.product_id WHERE p.category = $3) \
             SELECT it.product_id, COUNT(DISTINCT it.order_id) AS n FROM it JOIN m ON m.order_id = it.order_id GROUP BY it.product_id"
        ),
        main_param(),
    )
    .await?
    .iter()
    .filter_map(|r| Some((r["product_id"].as_i64()?, f64_of(&r["n"]))))
    .collect();
    let main_orders = query_with(
        sess,
        &format!(
            "WITH {cte} SELECT COUNT(DISTINCT it.order_id) AS n FROM it JOIN products p ON p.product_id = it.product_id WHERE p.category = $3"
        ),
        main_param(),
    )
    .await?
    .first()
    .map_or(0.0, |r| f64_of(&r["n"]));
    let main_with_side: HashMap<i64, (f64, f64)> = query_with(
        sess,
        &format!(
            "WITH {cte}, s AS (SELECT DISTINCT it.order_id FROM it JOIN products p ON p.product_id = it.product_id WHERE p.category <> $3), \
               h AS (SELECT DISTINCT it.order_id, it.product_id FROM it JOIN products p ON p.product_id = it.product_id WHERE p.category = $3) \
             SELECT h.product_id, COUNT(*) AS n, SUM(CASE WHEN s.order_id IS NULL THEN 0 ELSE 1 END) AS with_side \
             FROM h LEFT JOIN s ON s.order_id = h.order_id GROUP BY h.product_id"
        ),
        main_param(),
    )
    .await?
    .iter()
    .filter_map(|r| Some((r["product_id"].as_i64()?, (f64_of(&r["n"]), f64_of(&r["with_side"])))))
    .collect();

    let total_units: f64 = rows.iter().map(|r| f64_of(&r["units"])).sum();
    let sold = rows
        .iter()
        .filter(|r| f64_of(&r["units"]) > 0.0)
        .count()
        .max(1);
    let popularity_line = 0.7 / sold as f64;
    let mut items: Vec<MenuItem> = rows
        .iter()
        .map(|r| {
            let units = r["units"].as_i64().unwrap_or(0);
            let revenue = r["revenue_fen"].as_i64().unwrap_or(0);
            let price = if units > 0 {
                revenue as f64 / units as f64
            } else {
                0.0
            };
            let cost = r["cost_fen"].as_i64();
            let pid = r["product_id"].as_i64().unwrap_or(0);
            let category = r["category"].as_str().unwrap_or_default().to_string();
            let attach_rate = if category == MAIN {
                main_with_side
                    .get(&pid)
                    .map_or(0.0, |(n, w)| if *n > 0.0 { w / n } else { 0.0 })
            } else if main_orders > 0.0 {
                with_main.get(&pid).copied().unwrap_or(0.0) / main_orders
            } else {
                0.0
            };
            MenuItem {
                product_id: pid,
                sku: r["sku"].as_str().unwrap_or_default().to_string(),
                name: r["name"].as_str().unwrap_or_default().to_string(),
                category,
                units,
                mix: if total_units > 0.0 {
                    units as f64 / total_units
                } else {
                    0.0
                },
                revenue_fen: revenue,
                price_fen: price,
                cost_fen: cost,
                margin_fen: cost.map(|c| price - c as f64),
                popular: false,
                profitable: None,
                quadrant: None,
                attach_rate,
            }
        })
        .collect();
    let costed: Vec<&MenuItem> = items.iter().filter(|i| i.margin_fen.is_some()).collect();
    let costed_units: f64 = costed.iter().map(|i| i.units as f64).sum();
    let margin_line = (costed_units > 0.0).then(|| {
        costed
            .iter()
            .map(|i| i.units as f64 * i.margin_fen.unwrap_or(0.0))
            .sum::<f64>()
            / costed_units
    });
    for i in &mut items {
        i.popular = i.mix >= popularity_line;
        if let (Some(m), Some(line)) = (i.margin_fen, margin_line) {
            let p = m >= line;
            i.profitable = Some(p);
            i.quadrant = Some(
                match (i.popular, p) {
                    (true, true) => "star",
                    (true, false) => "plowhorse",
                    (false, true) => "puzzle",
                    (false, false) => "dog",
                }
                .into(),
            );
        }
    }
    let launches = launches(sess, from, to, stores).await?;
    Ok(MenuEngineering {
        from: from.to_string(),
        to: to.to_string(),
        orders,
        items,
        popularity_line,
        margin_line_fen: margin_line,
        launches,
    })
}

/// Launches inside `[from, to]` with room for a window on each side, items launched on one day
/// taken together.
async fn launches(
    sess: &Session,
    from: NaiveDate,
    to: NaiveDate,
    stores: Option<&[i64]>,
) -> CoreResult<Vec<Launch>> {
    let products = query_with(
        sess,
        "SELECT product_id, sku, name, CAST(launched AS VARCHAR) AS launched FROM products \
         WHERE launched > $1 AND launched <= $2 ORDER BY launched, product_id",
        vec![
            ScalarValue::Date32(Some(days(from + Duration::days(14)))),
            ScalarValue::Date32(Some(days(to - Duration::days(14)))),
        ],
    )
    .await?;
    // (launch day, its items as (product id, sku, name)).
    type Cohort = (NaiveDate, Vec<(i64, String, String)>);
    let mut cohorts: Vec<Cohort> = Vec::new();
    for p in products {
        let (Some(pid), Some(l)) = (
            p["product_id"].as_i64(),
            p["launched"]
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()),
        ) else {
            continue;
        };
        let item = (
            pid,
            p["sku"].as_str().unwrap_or_default().to_string(),
            p["name"].as_str().unwrap_or_default().to_string(),
        );
        match cohorts.last_mut() {
            Some((d, v)) if *d == l => v.push(item),
            _ => cohorts.push((l, vec![item])),
        }
    }
    let mut out = Vec::new();
    for (l, items) in cohorts {
        let w = LAUNCH_WINDOW_DAYS
            .min((l - from).num_days())
            .min((to - l).num_days() + 1);
        let ids: Vec<i64> = items.iter().map(|i| i.0).collect();
        let new = in_list(&ids);
        let scope = stores.map_or(String::new(), |s| {
            format!(" AND o.store_id IN {}", in_list(s))
        });
        // Per day and category: orders, the new items' revenue, the rest's.
        let daily = query_with(
            sess,
            &format!(
                "WITH o AS (SELECT order_id, CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT) AS day \
                   FROM orders o WHERE status = 'paid' AND order_time >= $1 AND order_time < $2{scope}), \
                 r AS (SELECT o.day, p.category, \
                   SUM(CASE WHEN i.product_id IN {new} THEN i.qty * i.unit_price_fen ELSE 0 END) AS new_fen, \
                   SUM(CASE WHEN i.product_id IN {new} THEN 0 ELSE i.qty * i.unit_price_fen END) AS other_fen \
                   FROM o JOIN order_items i ON i.order_id = o.order_id JOIN products p ON p.product_id = i.product_id \
                   GROUP BY o.day, p.category), \
                 n AS (SELECT day, COUNT(*) AS orders FROM o GROUP BY day) \
                 SELECT n.day, n.orders, r.category, COALESCE(r.new_fen, 0) AS new_fen, COALESCE(r.other_fen, 0) AS other_fen \
                 FROM n LEFT JOIN r ON r.day = n.day ORDER BY n.day, r.category"
            ),
            vec![
                local_midnight(l - Duration::days(w)),
                local_midnight(l + Duration::days(w)),
            ],
        )
        .await?;
        let ld = c360_model::Day::of(l).0;
        let mut before = Side::default();
        let mut after = Side::default();
        let mut cats: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
        let mut day_rows: std::collections::BTreeMap<i64, (f64, f64, f64)> = Default::default();
        for r in &daily {
            let d = r["day"].as_i64().unwrap_or(0);
            let e = day_rows
                .entry(d)
                .or_insert((f64_of(&r["orders"]), 0.0, 0.0));
            e.1 += f64_of(&r["new_fen"]);
            e.2 += f64_of(&r["other_fen"]);
            if let Some(c) = r["category"].as_str() {
                let x = cats.entry(c.to_string()).or_default();
                if d < ld {
                    x.0 += f64_of(&r["other_fen"]);
                } else {
                    x.1 += f64_of(&r["other_fen"]);
                }
            }
        }
        for (d, (n, new_fen, other_fen)) in day_rows {
            if n > 0.0 {
                let s = if d < ld { &mut before } else { &mut after };
                s.add(n, new_fen, other_fen);
            }
        }
        if before.days < 7 || after.days < 7 || after.new_fen <= 0.0 {
            continue;
        }
        let new_per = after.new_fen / after.orders;
        let (ob, oa) = (
            before.other_fen / before.orders,
            after.other_fen / after.orders,
        );
        // Day-to-day variation of the rest's revenue per order on each side.
        let se = (before.var() / before.days as f64 + after.var() / after.days as f64).sqrt();
        let share = (ob - oa) / new_per;
        out.push(Launch {
            skus: items.iter().map(|i| i.1.clone()).collect(),
            names: items.iter().map(|i| i.2.clone()).collect(),
            launched: l.to_string(),
            window_days: w,
            orders_before: before.orders as i64,
            orders_after: after.orders as i64,
            new_items_per_order_fen: new_per,
            others_before_fen: ob,
            others_after_fen: oa,
            cannibalised: share,
            cannibalised_low: share - 1.96 * se / new_per,
            cannibalised_high: share + 1.96 * se / new_per,
            by_category: cats
                .into_iter()
                .map(|(category, (b, a))| CategoryShift {
                    category,
                    before_fen: b / before.orders,
                    after_fen: a / after.orders,
                })
                .collect(),
        });
    }
    Ok(out)
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// One side of a launch: totals and the day-to-day spread of the rest's revenue per order.
#[derive(Default)]
struct Side {
    days: usize,
    orders: f64,
    new_fen: f64,
    other_fen: f64,
    per_day: Vec<f64>,
}

impl Side {
    fn add(&mut self, n: f64, new: f64, other: f64) {
        self.days += 1;
        self.orders += n;
        self.new_fen += new;
        self.other_fen += other;
        self.per_day.push(other / n);
    }
    fn var(&self) -> f64 {
        let k = self.per_day.len() as f64;
        if k < 2.0 {
            return 0.0;
        }
        let m = self.per_day.iter().sum::<f64>() / k;
        self.per_day.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (k - 1.0)
    }
}
