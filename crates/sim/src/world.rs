//! Time moving on after the cut-off, with campaigns in it: [`advance`] writes the orders the
//! simulated persons place in the next days into both source systems, and changes them for the
//! customers a campaign reached. The causal truth of every campaign member goes to the truth
//! database (`campaign_truth`), so effect estimates and uplift models can be scored.
//!
//! How persons respond (the uplift truth): a lapsed customer who used to buy often is likely to be
//! *persuaded* (an extra order with the coupon at the offer's daypart); a very recent, frequent
//! customer is sometimes *annoyed* by the message and stays away for the rest of the window (a
//! "sleeping dog"); everyone else who orders anyway redeems the coupon on an order they would
//! have placed (a "sure thing": the discount is a cost, not a gain). The holdout gets nothing.
//!
//! It is not a campaign engine: callers say who was treated (by source ids) and with what.

use std::collections::HashMap;

use c360_db::{get_f64, get_i64, get_text, Db, Value};
use c360_model::{fmt_ts, parse_ts, Daypart};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::catalog::MENU;
use crate::gen::{SimError, ITEM_COLS, POS_ORDER_COLS, WX_ORDER_COLS};

/// One campaign member as the campaign engine planned it.
#[derive(Debug, Clone)]
pub struct Treatment {
    pub campaign_id: i64,
    /// The customer's source keys as the ETL names them: `M:{member_id}`, `U:{wx user_id}`.
    pub source_keys: Vec<String>,
    /// false: in the holdout (nothing is sent).
    pub treated: bool,
    pub coupon_code: String,
    pub discount_fen: i64,
    pub send_at: NaiveDateTime,
    /// Daypart the offer names (the extra order happens then).
    pub daypart: Option<Daypart>,
    /// Item the offer names (put in the extra order's basket).
    pub sku: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub pos_url: String,
    pub wx_url: String,
    pub truth_url: String,
    pub seed: u64,
    /// First day to write (normally the cut-off, or where the last advance stopped).
    pub from: NaiveDate,
    pub days: i64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AdvanceReport {
    pub pos_orders: u64,
    pub wx_orders: u64,
    /// Orders only the campaign caused.
    pub extra_orders: u64,
    /// Natural orders that carried a campaign coupon.
    pub coupon_on_natural: u64,
    /// Natural orders that did not happen because the message annoyed the customer.
    pub lost_orders: u64,
    /// Per campaign: treated members, their mean true incremental revenue (fen), holdout size.
    pub campaigns: Vec<(i64, u64, f64, u64)>,
}

struct Person {
    mean_spend: f64,
    last_order: Option<NaiveDateTime>,
    n_orders: i64,
    lambda: f64,
    alive: bool,
    home: i64,
    fav_dp: Option<Daypart>,
    fav_sku: String,
}

/// The probability a treated person is persuaded, and that they are annoyed.
fn response(p: &Person, at: NaiveDate) -> (f64, f64) {
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let recency = p
        .last_order
        .map_or(365.0, |t| (at - t.date()).num_days() as f64);
    let freq = p.n_orders as f64;
    let persuade = 0.02 + 0.30 * sig((recency - 45.0) / 15.0) * (freq / 3.0).min(1.0);
    let annoy = if recency < 21.0 && freq >= 6.0 {
        0.15
    } else {
        0.01
    };
    (persuade, annoy)
}

struct Order {
    person: i64,
    at: NaiveDateTime,
    paid: i64,
    coupon: Option<(String, i64)>,
    wx: bool,
    sku: Option<String>,
}

/// The `m` column of the first row of `sql` (a `MAX(…) AS m`), as text.
async fn max_of(db: &Db, sql: &str) -> Result<Option<String>, SimError> {
    Ok(db
        .fetch_all(sql)
        .await?
        .first()
        .and_then(|r| get_text(r, "m")))
}

/// The largest id `sql` finds (0 for an empty table).
async fn max_id(db: &Db, sql: &str) -> Result<i64, SimError> {
    Ok(max_of(db, sql)
        .await?
        .and_then(|m| m.parse().ok())
        .unwrap_or(0))
}

/// Which person each source id belongs to, and each person's first member and mini-program ids.
struct Identity {
    /// `M:{member_id}` / `U:{wx user_id}` → person.
    person_of: HashMap<String, i64>,
    member_of: HashMap<i64, i64>,
    wx_of: HashMap<i64, i64>,
}

/// What one treatment did to its member, for the truth table and the campaign's totals.
struct Effect {
    persuade: f64,
    annoy: f64,
    expected: f64,
    realized: i64,
    redeemed: i64,
    is_extra: i64,
    n_lost: i64,
}

/// The natural orders of the window and what the campaigns change in them.
struct World<'w> {
    persons: &'w HashMap<i64, Person>,
    ids: &'w Identity,
    /// The orders people would place anyway, and each person's (indices into them).
    orders: Vec<Order>,
    by_person: HashMap<i64, Vec<usize>>,
    /// Natural orders that no longer happen (person, index), and orders only a campaign caused.
    lost: std::collections::HashSet<(i64, usize)>,
    extra: Vec<Order>,
}

/// Writes `days` days of orders from `from` into both sources, applying the treatments.
pub async fn advance(
    cfg: &WorldConfig,
    treatments: &[Treatment],
) -> Result<AdvanceReport, SimError> {
    let pos = Db::connect(&cfg.pos_url).await?;
    let wx = Db::connect(&cfg.wx_url).await?;
    let truth = Db::connect(&cfg.truth_url).await?;
    let to = cfg.from + Duration::days(cfg.days);
    let (from_s, to_s) = (format!("{} 00:00:00", cfg.from), format!("{to} 00:00:00"));

    let ids = identity_map(&truth).await?;
    let persons = persons(&truth).await?;
    let orders = future_orders(&truth, &from_s, &to_s).await?;
    let mut by_person: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, o) in orders.iter().enumerate() {
        by_person.entry(o.person).or_default().push(i);
    }
    let mut world = World {
        persons: &persons,
        ids: &ids,
        orders,
        by_person,
        lost: Default::default(),
        extra: Vec::new(),
    };

    // Treatments, person by person.
    let mut rep = AdvanceReport::default();
    let mut truth_rows: Vec<Vec<Value>> = Vec::new();
    let mut per_campaign: HashMap<i64, (u64, f64, u64)> = HashMap::new();
    let mut seen: std::collections::HashSet<(i64, i64)> = Default::default();
    for t in treatments {
        let Some(pid) = t
            .source_keys
            .iter()
            .find_map(|k| ids.person_of.get(k))
            .copied()
        else {
            continue;
        };
        if !seen.insert((t.campaign_id, pid)) {
            continue;
        }
        let Some(e) = world.treat(cfg, to, t, pid, &mut rep) else {
            continue;
        };
        let c = per_campaign.entry(t.campaign_id).or_default();
        if t.treated {
            c.0 += 1;
            c.1 += e.realized as f64;
        } else {
            c.2 += 1;
        }
        truth_rows.push(vec![
            t.campaign_id.into(),
            pid.into(),
            (t.treated as i64).into(),
            e.persuade.into(),
            e.annoy.into(),
            e.expected.into(),
            e.realized.into(),
            e.redeemed.into(),
            e.is_extra.into(),
            e.n_lost.into(),
        ]);
    }
    let World {
        orders,
        lost,
        extra,
        ..
    } = world;
    let mut all: Vec<Order> = orders
        .into_iter()
        .enumerate()
        .filter(|(i, o)| !lost.contains(&(o.person, *i)))
        .map(|(_, o)| o)
        .chain(extra)
        .collect();
    all.sort_by_key(|o| (o.at, o.person));

    write_orders(cfg, &pos, &wx, &persons, &ids, &all, &mut rep).await?;
    truth
        .insert_rows(
            "campaign_truth",
            &[
                "campaign_id",
                "person_id",
                "treated",
                "p_persuade",
                "p_annoy",
                "expected_uplift_fen",
                "realized_uplift_fen",
                "redeemed",
                "extra_order",
                "lost_orders",
            ],
            &truth_rows,
        )
        .await?;
    let mut camps: Vec<(i64, u64, f64, u64)> = per_campaign
        .into_iter()
        .map(|(c, (n, s, h))| (c, n, if n > 0 { s / n as f64 } else { 0.0 }, h))
        .collect();
    camps.sort_by_key(|c| c.0);
    rep.campaigns = camps;
    for db in [&pos, &wx, &truth] {
        db.close().await;
    }
    Ok(rep)
}

impl World<'_> {
    /// One campaign member: whether the message persuades them (an extra order with the
    /// coupon), annoys them (their natural orders after it are lost) or neither (a natural
    /// order may still carry the coupon). None for a person the truth does not know.
    fn treat(
        &mut self,
        cfg: &WorldConfig,
        to: NaiveDate,
        t: &Treatment,
        pid: i64,
        rep: &mut AdvanceReport,
    ) -> Option<Effect> {
        let p = self.persons.get(&pid)?;
        let (persuade, annoy) = response(p, t.send_at.date());
        let remaining = (to - t.send_at.date()).num_days().max(0) as f64;
        let rate = if p.alive { p.lambda } else { 0.0 };
        let p_any = 1.0 - (-rate * remaining).exp();
        let expected = persuade * (p.mean_spend - t.discount_fen as f64)
            - annoy * rate * remaining * p.mean_spend
            - (1.0 - persuade - annoy) * 0.5 * p_any * t.discount_fen as f64;
        let mut rng = ChaCha8Rng::seed_from_u64(
            cfg.seed
                ^ (t.campaign_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (pid as u64) << 20,
        );
        let u: f64 = rng.random();
        let mut e = Effect {
            persuade,
            annoy,
            expected,
            realized: 0,
            redeemed: 0,
            is_extra: 0,
            n_lost: 0,
        };
        if !t.treated {
            return Some(e);
        }
        let mine = self.by_person.get(&pid).cloned().unwrap_or_default();
        let after: Vec<usize> = mine
            .into_iter()
            .filter(|i| self.orders[*i].at >= t.send_at)
            .collect();
        if u < persuade {
            let gap = Exp::new(1.0 / 4.0)
                .expect("positive distribution parameters")
                .sample(&mut rng);
            let day = t.send_at + Duration::seconds((gap * 86400.0) as i64);
            if day.date() < to {
                let dp = t.daypart.or(p.fav_dp).unwrap_or(Daypart::Lunch);
                let (h0, h1) = dp.hours();
                let at = day
                    .date()
                    .and_hms_opt(rng.random_range(h0..=h1), rng.random_range(0..60), 0)
                    .expect("daypart hours are 0..=23");
                let at = at.max(t.send_at);
                let paid =
                    ((p.mean_spend * rng.random_range(0.7..1.3)) as i64 - t.discount_fen).max(100);
                self.extra.push(Order {
                    person: pid,
                    at,
                    paid,
                    coupon: Some((t.coupon_code.clone(), t.discount_fen)),
                    wx: !self.ids.member_of.contains_key(&pid) && self.ids.wx_of.contains_key(&pid),
                    sku: Some(t.sku.clone().unwrap_or_else(|| p.fav_sku.clone())),
                });
                e.realized += paid;
                e.redeemed = 1;
                e.is_extra = 1;
                rep.extra_orders += 1;
            }
        } else if u < persuade + annoy {
            for i in &after {
                self.lost.insert((pid, *i));
                e.realized -= self.orders[*i].paid;
                e.n_lost += 1;
            }
            rep.lost_orders += e.n_lost as u64;
        } else if let Some(&i) = after.first() {
            if rng.random_bool(0.5) {
                let o = &mut self.orders[i];
                let d = t.discount_fen.min(o.paid - 100).max(0);
                o.paid -= d;
                o.coupon = Some((t.coupon_code.clone(), d));
                e.realized -= d;
                e.redeemed = 1;
                rep.coupon_on_natural += 1;
            }
        }
        Some(e)
    }
}

/// Writes the window's orders (in time order) to the POS or the mini-program, continuing the
/// sources' ids, each with a basket whose list price covers what was paid.
async fn write_orders(
    cfg: &WorldConfig,
    pos: &Db,
    wx: &Db,
    persons: &HashMap<i64, Person>,
    ids: &Identity,
    all: &[Order],
    rep: &mut AdvanceReport,
) -> Result<(), SimError> {
    let mut oid = max_id(pos, "SELECT MAX(order_id) AS m FROM orders").await?;
    let mut iid = max_id(pos, "SELECT MAX(item_id) AS m FROM order_items").await?;
    let mut woid = max_id(wx, "SELECT MAX(order_id) AS m FROM wx_orders").await?;
    let mut wiid = max_id(wx, "SELECT MAX(item_id) AS m FROM wx_order_items").await?;
    // Rows are stamped when written: never before what the sources already hold (an earlier
    // refund may carry a later stamp than these orders' times), so an incremental ETL sees them.
    let floor = [
        max_of(pos, "SELECT MAX(updated_at) AS m FROM orders").await?,
        max_of(pos, "SELECT MAX(updated_at) AS m FROM order_items").await?,
        max_of(wx, "SELECT MAX(updated_at) AS m FROM wx_orders").await?,
        max_of(wx, "SELECT MAX(updated_at) AS m FROM wx_order_items").await?,
    ]
    .into_iter()
    .flatten()
    .filter_map(|t| parse_ts(&t).ok())
    .max();
    let (mut po, mut pi, mut wo, mut wi) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut brng =
        ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xA5A5_5A5A ^ cfg.from.num_days_from_ce() as u64);
    for o in all {
        let Some(p) = persons.get(&o.person) else {
            continue;
        };
        let (basket, list) = basket_for(&mut brng, o, p);
        let ts = fmt_ts(o.at);
        let written = o.at + Duration::seconds(30);
        let upd = fmt_ts(match floor {
            Some(f) if f >= written => f + Duration::seconds(1),
            _ => written,
        });
        let coupon: Value = o.coupon.as_ref().map(|c| c.0.clone()).into();
        let wx_user = ids.wx_of.get(&o.person).copied();
        let member = ids.member_of.get(&o.person).copied();
        let items = |oid: i64, next_id: &mut i64, out: &mut Vec<Vec<Value>>| {
            for k in &basket {
                *next_id += 1;
                out.push(vec![
                    (*next_id).into(),
                    oid.into(),
                    (*k as i64 + 1).into(),
                    1i64.into(),
                    MENU[*k].3.into(),
                    upd.clone().into(),
                ]);
            }
        };
        if o.wx && wx_user.is_some() {
            woid += 1;
            wo.push(vec![
                woid.into(),
                format!("WX{}{:08}", o.at.format("%Y%m%d"), woid).into(),
                wx_user.into(),
                p.home.into(),
                ts.clone().into(),
                o.paid.into(),
                (list - o.paid).into(),
                "pickup".into(),
                "paid".into(),
                coupon,
                upd.clone().into(),
            ]);
            items(woid, &mut wiid, &mut wi);
            rep.wx_orders += 1;
        } else {
            oid += 1;
            po.push(vec![
                oid.into(),
                format!("P{}{:08}", p.home, oid).into(),
                p.home.into(),
                member.into(),
                ts.clone().into(),
                o.paid.into(),
                (list - o.paid).into(),
                "wechat_pay".into(),
                "paid".into(),
                coupon,
                upd.clone().into(),
                Value::NullS, // the campaign world's tills keep no payment account
            ]);
            items(oid, &mut iid, &mut pi);
            rep.pos_orders += 1;
        }
    }
    pos.insert_rows("orders", POS_ORDER_COLS, &po).await?;
    pos.insert_rows("order_items", ITEM_COLS, &pi).await?;
    wx.insert_rows("wx_orders", WX_ORDER_COLS, &wo).await?;
    wx.insert_rows("wx_order_items", ITEM_COLS, &wi).await?;
    Ok(())
}

/// The basket of an order: the named item first, then the person's favourite and the menu,
/// until the list price covers what they pay; the gap is the member price or the coupon.
/// Returns the items and their list total.
fn basket_for(brng: &mut ChaCha8Rng, o: &Order, p: &Person) -> (Vec<usize>, i64) {
    let mut basket: Vec<usize> = Vec::new();
    let mut list = 0i64;
    let first = o.sku.as_deref().unwrap_or(&p.fav_sku);
    if let Some(k) = MENU.iter().position(|m| m.0 == first) {
        basket.push(k);
        list += MENU[k].3;
    }
    let goal = o.paid + o.coupon.as_ref().map_or(0, |c| c.1);
    while list < goal {
        let k = brng.random_range(0..MENU.len());
        basket.push(k);
        list += MENU[k].3;
    }
    (basket, list)
}

/// Reads who is who from the truth's `ids` table (see [`Identity`]).
async fn identity_map(truth: &Db) -> Result<Identity, SimError> {
    let mut person_of: HashMap<String, i64> = HashMap::new();
    let mut member_of: HashMap<i64, i64> = HashMap::new();
    let mut wx_of: HashMap<i64, i64> = HashMap::new();
    for r in truth
        .fetch_all("SELECT system, source_id, person_id FROM ids ORDER BY source_id")
        .await?
    {
        let (Some(sys), Some(id), Some(p)) = (
            get_text(&r, "system"),
            get_i64(&r, "source_id"),
            get_i64(&r, "person_id"),
        ) else {
            continue;
        };
        let key = if sys == "member" {
            member_of.entry(p).or_insert(id);
            format!("M:{id}")
        } else {
            wx_of.entry(p).or_insert(id);
            format!("U:{id}")
        };
        person_of.insert(key, p);
    }
    Ok(Identity {
        person_of,
        member_of,
        wx_of,
    })
}

/// Every person's traits the world needs from the truth.
async fn persons(truth: &Db) -> Result<HashMap<i64, Person>, SimError> {
    let mut persons: HashMap<i64, Person> = HashMap::new();
    for r in truth
        .fetch_all(
            "SELECT person_id, mean_spend_fen, last_order, n_orders, lambda, alive_at_cutoff, \
             home_store_id, fav_daypart, fav_sku FROM persons",
        )
        .await?
    {
        let Some(id) = get_i64(&r, "person_id") else {
            continue;
        };
        persons.insert(
            id,
            Person {
                mean_spend: get_f64(&r, "mean_spend_fen").unwrap_or(2500.0),
                last_order: get_text(&r, "last_order").and_then(|s| parse_ts(&s).ok()),
                n_orders: get_i64(&r, "n_orders").unwrap_or(0),
                lambda: get_f64(&r, "lambda").unwrap_or(0.0),
                alive: get_i64(&r, "alive_at_cutoff").unwrap_or(0) == 1,
                home: get_i64(&r, "home_store_id").unwrap_or(1),
                fav_dp: get_text(&r, "fav_daypart")
                    .and_then(|c| Daypart::ALL.into_iter().find(|d| d.code() == c)),
                fav_sku: get_text(&r, "fav_sku").unwrap_or_else(|| "HD01".into()),
            },
        );
    }
    Ok(persons)
}

/// The orders people would place anyway in `[from, to)` (the truth's future), in order.
async fn future_orders(truth: &Db, from_s: &str, to_s: &str) -> Result<Vec<Order>, SimError> {
    let ph = |n| truth.backend.ph(n);
    let sql = format!(
        "SELECT person_id, order_time, total_fen, channel FROM future_orders \
         WHERE order_time >= {} AND order_time < {} ORDER BY person_id, order_time",
        ph(1),
        ph(2)
    );
    let rows = c360_db::query(sql.clone())
        .bind(from_s.to_string())
        .bind(to_s.to_string())
        .fetch_all(&truth.pool)
        .await
        .map_err(|e| c360_db::DbError::Sql {
            what: sql,
            source: e,
        })?;
    let orders: Vec<Order> = rows
        .iter()
        .filter_map(|r| {
            Some(Order {
                person: get_i64(r, "person_id")?,
                at: parse_ts(&get_text(r, "order_time")?).ok()?,
                paid: get_i64(r, "total_fen")?,
                coupon: None,
                wx: get_text(r, "channel").as_deref() == Some("wx"),
                sku: None,
            })
        })
        .collect();
    Ok(orders)
}
