//! The generator: persons, their ids and orders, events, reviews and shares.

use std::collections::HashMap;

use c360_db::{Db, Value};
use c360_model::{fmt_ts, holiday, is_weekend, Daypart, PLACEHOLDER_PHONES};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};

use crate::catalog::{
    ASPECTS, ASPECT_PHRASES, CITIES, DEVICES, GIVEN, MENU, REVIEW_CLOSE_NEG, REVIEW_CLOSE_POS,
    REVIEW_INJECTIONS, STORE_KINDS, SURNAMES,
};
use crate::schema;

/// Population parameters of the buying process (the truth BTYD models should recover).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TruthParams {
    /// BG/NBD: λ ~ Gamma(shape r, rate alpha), λ per day.
    pub r: f64,
    pub alpha: f64,
    /// BG/NBD: dropout p ~ Beta(a, b).
    pub a: f64,
    pub b: f64,
    /// Gamma-Gamma: basket value ~ Gamma(p, ν) yuan, ν ~ Gamma(q, rate gamma).
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl Default for TruthParams {
    fn default() -> Self {
        TruthParams {
            r: 0.9,
            alpha: 30.0,
            a: 1.0,
            b: 5.0,
            p: 6.0,
            q: 4.0,
            gamma: 15.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Stop adding persons once this many source orders (both systems) exist.
    pub orders: u64,
    pub stores: usize,
    pub start: NaiveDate,
    /// Orders on or after this date are kept as ground-truth future, not written to the sources.
    pub cutoff: NaiveDate,
    pub horizon_days: i64,
    pub pos_url: String,
    pub wx_url: String,
    pub truth_url: String,
    pub params: TruthParams,
    /// Share of rows made dirty (malformed, dangling, duplicated); 1.0 is the realistic default.
    pub dirt: f64,
    pub progress: bool,
    /// Threads drawing persons (0: one per core). The data does not depend on it.
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 2030,
            orders: 100_000,
            stores: 120,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date"),
            cutoff: NaiveDate::from_ymd_opt(2025, 10, 1).expect("a date"),
            horizon_days: 365,
            pos_url: "data/cyrg2025.db".into(),
            wx_url: "data/cyrgweixin.db".into(),
            truth_url: "data/truth.db".into(),
            params: TruthParams::default(),
            dirt: 1.0,
            progress: true,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimSummary {
    pub persons: u64,
    pub stores: u64,
    pub members: u64,
    pub wx_users: u64,
    pub pos_orders: u64,
    pub wx_orders: u64,
    pub items: u64,
    pub events: u64,
    pub reviews: u64,
    pub shares: u64,
    pub group_orders: u64,
    pub paid_by_friend: u64,
    pub tickets: u64,
    pub future_orders: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Db(#[from] c360_db::DbError),
    #[error("invalid simulator setting: {0}")]
    Config(String),
}

struct Store {
    id: i64,
    city: usize,
    lat: f64,
    lon: f64,
    open: NaiveDate,
    staff_phone: String,
    /// Latent quality of each aspect (logit of a positive mention) at the start, and its drift
    /// per year: the truth behind per-store sentiment trends.
    aspect_q: [f64; 6],
    aspect_trend: [f64; 6],
}

/// Who knows whom: each person belongs to one social circle in their city; shares, group orders
/// and paying for a friend happen mostly inside it. Holds the circle's mini-program users of the
/// rounds generated before (frozen while a round is generated, so a round's persons can be
/// drawn in parallel and still meet the same friends whatever the thread count).
#[derive(Default)]
struct Social {
    circles: HashMap<i64, Vec<i64>>,
}

impl Social {
    /// A friend of `me` in `circle` (a mini-program user of an earlier round), if it has one.
    fn friend(&self, rng: &mut ChaCha8Rng, circle: i64, me: i64) -> Option<i64> {
        let c = self.circles.get(&circle)?;
        let others = c.iter().filter(|u| **u != me).count();
        if others == 0 {
            return None;
        }
        let k = rng.random_range(0..others);
        c.iter().filter(|u| **u != me).nth(k).copied()
    }
}

/// Rows of one chunk of persons, per table.
#[derive(Default)]
struct Rows {
    members: Vec<Vec<Value>>,
    wx_users: Vec<Vec<Value>>,
    orders: Vec<Vec<Value>>,
    items: Vec<Vec<Value>>,
    wx_orders: Vec<Vec<Value>>,
    wx_items: Vec<Vec<Value>>,
    events: Vec<Vec<Value>>,
    reviews: Vec<Vec<Value>>,
    shares: Vec<Vec<Value>>,
    groups: Vec<Vec<Value>>,
    paid_by: Vec<Vec<Value>>,
    tickets: Vec<Vec<Value>>,
    ticket_truth: Vec<Vec<Value>>,
    review_aspects: Vec<Vec<Value>>,
    persons: Vec<Vec<Value>>,
    ids: Vec<Vec<Value>>,
    future: Vec<Vec<Value>>,
    /// POS orders placed without a member card: (order id, person) — who really bought.
    anon: Vec<Vec<Value>>,
    /// Text cells that embed ids, written once the ids are global (see [`Rows::globalize`]).
    fills: Vec<Fill>,
    /// The mini-program users who joined their circle: (circle, user id).
    joined: Vec<(i64, i64)>,
}

/// The tables whose text cells embed ids.
#[derive(Clone, Copy)]
enum Tab {
    Members,
    WxUsers,
    Orders,
    WxOrders,
    Events,
    Groups,
}

/// A text cell that embeds ids: a member card number, an order number, a session or group id.
enum Embed {
    Card { member: i64 },
    PosOrderNo { store: i64, order: i64 },
    WxOrderNo { day: NaiveDate, order: i64 },
    Session { user: i64, order: i64 },
    Browse { user: i64, order: i64, n: u32 },
    Group { order: i64 },
}

struct Fill {
    tab: Tab,
    row: usize,
    col: usize,
    text: Embed,
}

impl Rows {
    /// The table a fill points into.
    fn tab(&mut self, t: Tab) -> &mut Vec<Vec<Value>> {
        match t {
            Tab::Members => &mut self.members,
            Tab::WxUsers => &mut self.wx_users,
            Tab::Orders => &mut self.orders,
            Tab::WxOrders => &mut self.wx_orders,
            Tab::Events => &mut self.events,
            Tab::Groups => &mut self.groups,
        }
    }

    /// Fills cell `col` of the last row of `tab` with `text` once ids are global.
    fn fill_last(&mut self, tab: Tab, col: usize, text: Embed) {
        let row = self.tab(tab).len() - 1;
        self.fills.push(Fill {
            tab,
            row,
            col,
            text,
        });
    }

    /// Turns one person's local ids (-1, -2, … of each kind, see [`next`]) into global ids
    /// that follow `base` (the ids handed out before this person), and writes the text cells
    /// that embed them. Ids already global (friends from earlier rounds) are left alone.
    fn globalize(&mut self, base: &Ids) {
        fn g(v: &mut Value, base: i64) {
            if let Value::I(x) = v {
                if *x < 0 {
                    *x = base - *x;
                }
            }
        }
        let gl = |x: i64, base: i64| if x < 0 { base - x } else { x };
        let cols = |rows: &mut Vec<Vec<Value>>, spec: &[(usize, i64)]| {
            for r in rows.iter_mut() {
                for (c, b) in spec {
                    g(&mut r[*c], *b);
                }
            }
        };
        cols(&mut self.members, &[(0, base.member)]);
        cols(&mut self.orders, &[(0, base.order), (3, base.member)]);
        cols(&mut self.items, &[(0, base.item), (1, base.order)]);
        cols(&mut self.wx_users, &[(0, base.wx_user)]);
        cols(
            &mut self.wx_orders,
            &[(0, base.wx_order), (2, base.wx_user)],
        );
        cols(&mut self.wx_items, &[(0, base.wx_item), (1, base.wx_order)]);
        cols(&mut self.events, &[(0, base.event), (1, base.wx_user)]);
        cols(
            &mut self.reviews,
            &[(0, base.review), (1, base.wx_user), (2, base.wx_order)],
        );
        cols(
            &mut self.shares,
            &[(0, base.share), (1, base.wx_user), (2, base.wx_user)],
        );
        cols(
            &mut self.groups,
            &[(0, base.group_row), (2, base.wx_order), (3, base.wx_user)],
        );
        cols(
            &mut self.paid_by,
            &[
                (0, base.paid_row),
                (1, base.wx_order),
                (2, base.wx_user),
                (3, base.wx_user),
            ],
        );
        cols(
            &mut self.tickets,
            &[(0, base.ticket), (1, base.wx_user), (2, base.wx_order)],
        );
        cols(&mut self.ticket_truth, &[(0, base.ticket)]);
        cols(&mut self.anon, &[(0, base.order)]);
        cols(&mut self.review_aspects, &[(0, base.review)]);
        for r in &mut self.ids {
            let b = if r[0] == Value::from("member") {
                base.member
            } else {
                base.wx_user
            };
            g(&mut r[1], b);
        }
        for j in &mut self.joined {
            j.1 = gl(j.1, base.wx_user);
        }
        for f in std::mem::take(&mut self.fills) {
            let text = match f.text {
                Embed::Card { member } => crate::layout::card_of(gl(member, base.member)),
                Embed::PosOrderNo { store, order } => {
                    format!("P{store}{:08}", gl(order, base.order))
                }
                Embed::WxOrderNo { day, order } => {
                    format!("WX{}{:08}", day.format("%Y%m%d"), gl(order, base.wx_order))
                }
                Embed::Session { user, order } => {
                    format!("S{}-{}", gl(user, base.wx_user), gl(order, base.wx_order))
                }
                Embed::Browse { user, order, n } => format!(
                    "B{}-{}-{n}",
                    gl(user, base.wx_user),
                    gl(order, base.wx_order)
                ),
                Embed::Group { order } => format!("G{}", gl(order, base.wx_order)),
            };
            self.tab(f.tab)[f.row][f.col] = Value::S(text);
        }
    }

    /// Moves every row of `other` to the end of this one's.
    fn append(&mut self, other: &mut Rows) {
        for (a, b) in [
            (&mut self.members, &mut other.members),
            (&mut self.wx_users, &mut other.wx_users),
            (&mut self.orders, &mut other.orders),
            (&mut self.items, &mut other.items),
            (&mut self.wx_orders, &mut other.wx_orders),
            (&mut self.wx_items, &mut other.wx_items),
            (&mut self.events, &mut other.events),
            (&mut self.reviews, &mut other.reviews),
            (&mut self.shares, &mut other.shares),
            (&mut self.groups, &mut other.groups),
            (&mut self.paid_by, &mut other.paid_by),
            (&mut self.tickets, &mut other.tickets),
            (&mut self.ticket_truth, &mut other.ticket_truth),
            (&mut self.review_aspects, &mut other.review_aspects),
            (&mut self.persons, &mut other.persons),
            (&mut self.ids, &mut other.ids),
            (&mut self.future, &mut other.future),
            (&mut self.anon, &mut other.anon),
        ] {
            a.append(b);
        }
        self.joined.append(&mut other.joined);
    }
}

/// Id counters, so ids are dense and deterministic. The simulation's counters hold the ids
/// handed out so far; a person's own count the ids that person used (handed out as -1, -2, …
/// by [`next`] and made global by [`Rows::globalize`]).
#[derive(Default, Clone, Copy)]
struct Ids {
    member: i64,
    wx_user: i64,
    order: i64,
    item: i64,
    wx_order: i64,
    wx_item: i64,
    event: i64,
    review: i64,
    share: i64,
    group_row: i64,
    paid_row: i64,
    ticket: i64,
}

/// The next person-local id of a kind: negative, so it cannot be mistaken for a global one.
fn next(c: &mut i64) -> i64 {
    *c += 1;
    -*c
}

impl Ids {
    /// Adds the ids one person used.
    fn add(&mut self, o: &Ids) {
        self.member += o.member;
        self.wx_user += o.wx_user;
        self.order += o.order;
        self.item += o.item;
        self.wx_order += o.wx_order;
        self.wx_item += o.wx_item;
        self.event += o.event;
        self.review += o.review;
        self.share += o.share;
        self.group_row += o.group_row;
        self.paid_row += o.paid_row;
        self.ticket += o.ticket;
    }
}

fn weighted(rng: &mut ChaCha8Rng, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, v) in w.iter().enumerate() {
        if x < *v {
            return i;
        }
        x -= v;
    }
    w.len() - 1
}

/// Unique, valid-looking mobile number for a person, never a placeholder.
fn person_phone(person: u64) -> String {
    const PREFIX: [&str; 8] = ["139", "138", "137", "186", "158", "159", "188", "135"];
    let p = PREFIX[(person % 8) as usize];
    let body = (person / 8).wrapping_mul(48_271).wrapping_add(10_000_019) % 100_000_000;
    format!("{p}{body:08}")
}

fn fmt_phone(rng: &mut ChaCha8Rng, phone: &str) -> String {
    match rng.random_range(0..100) {
        0..=9 => format!("+86 {} {} {}", &phone[..3], &phone[3..7], &phone[7..]),
        10..=14 => format!("{}-{}-{}", &phone[..3], &phone[3..7], &phone[7..]),
        _ => phone.to_string(),
    }
}

fn rand_token(rng: &mut ChaCha8Rng, prefix: &str, len: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let s: String = (0..len)
        .map(|_| A[rng.random_range(0..A.len())] as char)
        .collect();
    format!("{prefix}{s}")
}

/// Demand multiplier of a day for a person whose holiday multiplier is `hol` (1.5 on average):
/// holidays and weekends sell more. Divided by the person's mean multiplier over the simulated
/// calendar (`DayMix::mean`), so λ stays the person's mean daily rate.
fn day_mult(d: NaiveDate, hol: f64) -> f64 {
    if holiday(d).is_some() {
        hol
    } else if is_weekend(d) {
        1.1
    } else {
        0.9
    }
}

/// How many holiday, other weekend and other days the simulated calendar has.
#[derive(Debug, Clone, Copy)]
struct DayMix {
    holidays: f64,
    weekends: f64,
    weekdays: f64,
}

impl DayMix {
    fn of(from: NaiveDate, days: i64) -> Self {
        let mut m = DayMix {
            holidays: 0.0,
            weekends: 0.0,
            weekdays: 0.0,
        };
        for i in 0..days.max(1) {
            let d = from + Duration::days(i);
            if holiday(d).is_some() {
                m.holidays += 1.0;
            } else if is_weekend(d) {
                m.weekends += 1.0;
            } else {
                m.weekdays += 1.0;
            }
        }
        m
    }
    /// The mean of [`day_mult`] over the calendar for holiday multiplier `hol`.
    fn mean(&self, hol: f64) -> f64 {
        (self.holidays * hol + self.weekends * 1.1 + self.weekdays * 0.9)
            / (self.holidays + self.weekends + self.weekdays)
    }
}

pub async fn simulate(cfg: &SimConfig) -> Result<SimSummary, SimError> {
    if cfg.cutoff <= cfg.start {
        return Err(SimError::Config("cutoff must be after start".into()));
    }
    if cfg.stores < CITIES.len() {
        return Err(SimError::Config(format!(
            "need at least {} stores, one per city",
            CITIES.len()
        )));
    }
    for url in [&cfg.pos_url, &cfg.wx_url, &cfg.truth_url] {
        c360_db::reset_database(url).await?;
    }
    let pos = Db::connect(&cfg.pos_url).await?;
    let wx = Db::connect(&cfg.wx_url).await?;
    let truth = Db::connect(&cfg.truth_url).await?;
    let ddl = [schema::POS_DDL, schema::WX_DDL, schema::TRUTH_DDL].map(schema::tables_and_indexes);
    for (db, (tables, _)) in [&pos, &wx, &truth].into_iter().zip(&ddl) {
        if db.backend == c360_db::Backend::Sqlite {
            // SQLite keys a table by its rowid only when the key is declared INTEGER (64-bit
            // there); BIGINT would add a second, unique index beside the table.
            db.exec_script(&tables.replace("BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY"))
                .await?;
        } else {
            db.exec_script(tables).await?;
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let stores = make_stores(cfg, &mut rng);
    write_dims(cfg, &pos, &stores).await?;

    let tp = cfg.params;
    let params: Vec<Vec<Value>> = [
        ("r", tp.r.to_string()),
        ("alpha", tp.alpha.to_string()),
        ("a", tp.a.to_string()),
        ("b", tp.b.to_string()),
        ("p", tp.p.to_string()),
        ("q", tp.q.to_string()),
        ("gamma", tp.gamma.to_string()),
        ("start", cfg.start.to_string()),
        ("cutoff", cfg.cutoff.to_string()),
        ("horizon_days", cfg.horizon_days.to_string()),
        ("seed", cfg.seed.to_string()),
        ("time_unit", "day".into()),
        ("spend_unit", "yuan".into()),
    ]
    .into_iter()
    .map(|(k, v)| vec![Value::from(k), Value::from(v)])
    .collect();
    truth
        .insert_rows("params", &["name", "value"], &params)
        .await?;
    let store_aspects: Vec<Vec<Value>> = stores
        .iter()
        .flat_map(|s| {
            ASPECTS.iter().enumerate().map(|(a, name)| {
                vec![
                    s.id.into(),
                    (*name).into(),
                    s.aspect_q[a].into(),
                    s.aspect_trend[a].into(),
                ]
            })
        })
        .collect();
    truth
        .insert_rows(
            "store_aspects",
            &["store_id", "aspect", "quality", "trend_per_year"],
            &store_aspects,
        )
        .await?;

    // Customers spread over cities by the number of stores there.
    let mut city_stores: Vec<Vec<usize>> = vec![Vec::new(); CITIES.len()];
    for (i, s) in stores.iter().enumerate() {
        city_stores[s.city].push(i);
    }
    let city_w: Vec<f64> = city_stores.iter().map(|v| v.len() as f64).collect();

    let bar = if cfg.progress {
        let b = ProgressBar::new(cfg.orders);
        b.set_style(
            ProgressStyle::with_template("sim    {bar:40} {pos}/{len} orders {per_sec} eta {eta}")
                .expect("a fixed, valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let mut ids = Ids::default();
    let mut sum = SimSummary {
        stores: stores.len() as u64,
        ..Default::default()
    };
    let mut person: u64 = 0;
    let mut total_orders: u64 = 0;
    // About 40 persons per circle: the expected persons of a city (≈ 6 orders each) / 40.
    let est_persons = cfg.orders as f64 / 6.0;
    let w_sum: f64 = city_w.iter().sum();
    let circles_per_city: Vec<i64> = city_w
        .iter()
        .map(|w| ((est_persons * w / w_sum / 40.0).round() as i64).max(1))
        .collect();
    let days = DayMix::of(
        cfg.start,
        (cfg.cutoff - cfg.start).num_days() + cfg.horizon_days,
    );
    // Test orders keyed in by staff at each store: real rows the ETL must exclude.
    let mut rows = Rows::default();
    for s in &stores {
        for k in 0..3 {
            let t = NaiveDateTime::new(
                s.open.max(cfg.start) + Duration::days(k),
                chrono::NaiveTime::from_hms_opt(9, 0, (k % 60) as u32).expect("seconds below 60"),
            );
            if t.date() >= cfg.cutoff {
                continue;
            }
            ids.order += 1;
            let oid = ids.order;
            let ts = fmt_ts(t);
            rows.orders.push(vec![
                oid.into(),
                format!("T{}{:06}", s.id, oid).into(),
                s.id.into(),
                Value::NullI,
                ts.clone().into(),
                1i64.into(),
                0i64.into(),
                "cash".into(),
                "test".into(),
                Value::NullS,
                ts.clone().into(),
                Value::NullS,
            ]);
            ids.item += 1;
            rows.items.push(vec![
                ids.item.into(),
                oid.into(),
                1i64.into(),
                1i64.into(),
                1i64.into(),
                ts.into(),
            ]);
        }
    }
    // Rounds of persons are drawn in parallel on a thread of their own while the rounds before
    // are written; each round's ids are made global in person order.
    flush(&pos, &wx, &truth, std::mem::take(&mut rows)).await?;
    let round = round_size(cfg.orders);
    let world = World {
        cfg: cfg.clone(),
        stores,
        city_stores,
        city_w,
        circles_per_city,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .thread_name(|i| format!("c360-sim-{i}"))
        .build()
        .map_err(|e| SimError::Config(format!("threads: {e}")))?;
    // Draws rounds of persons in parallel and hands each to `sink` (false: stop).
    let generate = move |mut sink: Box<dyn FnMut(Rows) -> bool + Send>| {
        use rayon::prelude::*;
        let ctx = Ctx {
            cfg: &world.cfg,
            stores: &world.stores,
            city_stores: &world.city_stores,
            city_w: &world.city_w,
            circles_per_city: &world.circles_per_city,
            days,
        };
        let mut social = Social::default();
        while total_orders < ctx.cfg.orders {
            let outs: Vec<PersonOut> = pool.install(|| {
                (person..person + round)
                    .into_par_iter()
                    .map(|pid| gen_person(&ctx, pid, &social, ids.wx_user))
                    .collect()
            });
            let mut out = Rows::default();
            for mut o in outs {
                if total_orders >= ctx.cfg.orders {
                    break;
                }
                o.rows.globalize(&ids);
                ids.add(&o.ids);
                sum.add(&o.sum);
                total_orders += o.orders;
                person += 1;
                out.append(&mut o.rows);
            }
            for (circle, uid) in out.joined.drain(..) {
                social.circles.entry(circle).or_default().push(uid);
            }
            bar.set_position(total_orders.min(ctx.cfg.orders));
            if !sink(out) {
                break; // a writer stopped; its error is what the caller sees
            }
        }
        bar.finish_and_clear();
        sum.persons = person;
        sum
    };
    let all_sqlite = [&pos, &wx, &truth]
        .iter()
        .all(|d| d.backend == c360_db::Backend::Sqlite);
    if all_sqlite {
        // SQLite files are bulk-loaded through SQLite's own API, each by a thread of its own,
        // while the next round is drawn.
        for db in [&pos, &wx, &truth] {
            db.exec("PRAGMA wal_checkpoint(TRUNCATE)").await?;
            db.close().await;
        }
        let mut senders = Vec::new();
        let mut writers = Vec::new();
        for ((name, url), (_, indexes)) in [
            ("pos", &cfg.pos_url),
            ("wx", &cfg.wx_url),
            ("truth", &cfg.truth_url),
        ]
        .into_iter()
        .zip(ddl)
        {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Part>>(2);
            let url = c360_db::normalize_url(url);
            senders.push(tx);
            let thread = std::thread::Builder::new().name(format!("c360-sim-{name}"));
            writers.push(
                thread
                    .spawn(move || {
                        let mut w = c360_db::bulk::SqliteBulk::open(&url)?;
                        for parts in rx {
                            for (table, cols, rows) in &parts {
                                w.insert(table, cols, rows)?;
                            }
                            w.commit()?;
                        }
                        if !indexes.is_empty() {
                            w.exec(&indexes)?;
                        }
                        w.finish()?;
                        Ok::<_, SimError>(())
                    })
                    .map_err(|e| SimError::Config(format!("a writer thread: {e}")))?,
            );
        }
        let done = tokio::task::spawn_blocking(move || {
            let sum = generate(Box::new(move |r| {
                parts(r)
                    .into_iter()
                    .zip(&senders)
                    .all(|(p, tx)| tx.send(p).is_ok())
            }));
            let mut errs = Vec::new();
            for w in writers {
                match joined(w.join(), "writer") {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => errs.push(e),
                }
            }
            match errs.into_iter().next() {
                Some(e) => Err(e),
                None => Ok(sum),
            }
        })
        .await
        .map_err(|e| SimError::Config(format!("the generator thread: {e}")))?;
        return done;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Rows>(2);
    let generator =
        std::thread::spawn(move || generate(Box::new(move |r| tx.blocking_send(r).is_ok())));
    let written = async {
        while let Some(r) = rx.recv().await {
            flush(&pos, &wx, &truth, r).await?;
        }
        Ok::<_, SimError>(())
    }
    .await;
    drop(rx);
    let sum = tokio::task::spawn_blocking(move || joined(generator.join(), "generator"))
        .await
        .map_err(|e| SimError::Config(format!("the generator thread: {e}")))??;
    written?;
    for (db, (_, indexes)) in [&pos, &wx, &truth].into_iter().zip(&ddl) {
        if !indexes.is_empty() {
            db.exec_script(indexes).await?;
        }
        db.close().await;
    }
    Ok(sum)
}

/// Columns of both systems' order item tables.
pub(crate) const ITEM_COLS: &[&str] = &[
    "item_id",
    "order_id",
    "product_id",
    "qty",
    "unit_price_fen",
    "updated_at",
];

/// Columns of the POS `orders` rows the simulator writes.
pub(crate) const POS_ORDER_COLS: &[&str] = &[
    "order_id",
    "order_no",
    "store_id",
    "member_id",
    "order_time",
    "total_fen",
    "discount_fen",
    "pay_method",
    "status",
    "coupon_code",
    "updated_at",
    "payer_id",
];

/// Columns of the mini-program `wx_orders` rows the simulator writes.
pub(crate) const WX_ORDER_COLS: &[&str] = &[
    "order_id",
    "order_no",
    "user_id",
    "store_id",
    "order_time",
    "total_fen",
    "discount_fen",
    "channel",
    "status",
    "coupon_code",
    "updated_at",
];

/// A joined thread's result, its panic as an error.
fn joined<T>(r: std::thread::Result<T>, what: &str) -> Result<T, SimError> {
    r.map_err(|_| SimError::Config(format!("the {what} thread panicked")))
}

/// One table's rows of one round: (table, columns, rows).
type Part = (&'static str, &'static [&'static str], Vec<Vec<Value>>);

/// A round's rows per database: the POS, the mini-program, the ground truth.
fn parts(r: Rows) -> [Vec<Part>; 3] {
    const MEMBER_COLS: &[&str] = &[
        "member_id",
        "card_no",
        "phone",
        "phone_verified",
        "name",
        "gender",
        "birthday",
        "register_store_id",
        "created_at",
        "updated_at",
        "sms_consent",
        "consent_at",
    ];
    const WX_USER_COLS: &[&str] = &[
        "user_id",
        "openid",
        "unionid",
        "phone",
        "member_card_no",
        "nickname",
        "created_at",
        "updated_at",
        "subscribe_consent",
        "push_consent",
        "consent_at",
    ];
    const EVENT_COLS: &[&str] = &[
        "event_id",
        "user_id",
        "session_id",
        "event_type",
        "page",
        "event_time",
        "device",
        "lat",
        "lon",
    ];
    const REVIEW_COLS: &[&str] = &[
        "review_id",
        "user_id",
        "order_id",
        "store_id",
        "rating",
        "content",
        "created_at",
    ];
    const TICKET_COLS: &[&str] = &[
        "ticket_id",
        "user_id",
        "order_id",
        "created_at",
        "message",
        "status",
        "resolved_cause",
        "updated_at",
    ];
    const SHARE_COLS: &[&str] = &[
        "share_id",
        "user_id",
        "to_user_id",
        "page",
        "campaign",
        "share_time",
    ];
    const PERSON_COLS: &[&str] = &[
        "person_id",
        "lambda",
        "p_drop",
        "nu",
        "mean_spend_fen",
        "holiday_mult",
        "first_order",
        "last_order",
        "dropout_at",
        "alive_at_cutoff",
        "n_orders",
        "n_future",
        "future_spend_fen",
        "home_store_id",
        "has_member",
        "has_wx",
        "fav_daypart",
        "fav_sku",
        "circle_id",
        "sociability",
        "browse_rate",
        "p_continue",
    ];
    [
        vec![
            ("members", MEMBER_COLS, r.members),
            ("orders", POS_ORDER_COLS, r.orders),
            ("order_items", ITEM_COLS, r.items),
        ],
        vec![
            ("wx_users", WX_USER_COLS, r.wx_users),
            ("wx_orders", WX_ORDER_COLS, r.wx_orders),
            ("wx_order_items", ITEM_COLS, r.wx_items),
            ("wx_events", EVENT_COLS, r.events),
            ("wx_reviews", REVIEW_COLS, r.reviews),
            (
                "wx_order_groups",
                &["row_id", "group_id", "order_id", "user_id", "joined_at"],
                r.groups,
            ),
            (
                "wx_paid_by",
                &["row_id", "order_id", "user_id", "payer_user_id", "paid_at"],
                r.paid_by,
            ),
            ("wx_service_tickets", TICKET_COLS, r.tickets),
            ("wx_shares", SHARE_COLS, r.shares),
        ],
        vec![
            ("persons", PERSON_COLS, r.persons),
            ("ids", &["system", "source_id", "person_id"], r.ids),
            (
                "review_aspects",
                &["review_id", "aspect", "polarity"],
                r.review_aspects,
            ),
            ("service_truth", &["ticket_id", "cause"], r.ticket_truth),
            (
                "future_orders",
                &["person_id", "order_time", "total_fen", "channel"],
                r.future,
            ),
            ("anon_orders", &["order_id", "person_id"], r.anon),
        ],
    ]
}

/// Writes a round's rows through sqlx (any backend), the three databases concurrently.
async fn flush(pos: &Db, wx: &Db, truth: &Db, r: Rows) -> Result<(), SimError> {
    let write = |db: &'_ Db, parts: Vec<Part>| {
        let db = db.clone();
        async move {
            for (table, cols, rows) in &parts {
                db.insert_rows(table, cols, rows).await?;
            }
            Ok::<_, SimError>(())
        }
    };
    let [a, b, c] = parts(r);
    let (x, y, z) = tokio::join!(write(pos, a), write(wx, b), write(truth, c));
    x?;
    y?;
    z?;
    Ok(())
}

fn make_stores(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Vec<Store> {
    let tier_w = |t: u8| match t {
        1 => 6.0,
        2 => 3.0,
        3 => 2.0,
        _ => 1.0,
    };
    let w: Vec<f64> = CITIES.iter().map(|c| tier_w(c.2)).collect();
    let mut city_of: Vec<usize> = (0..CITIES.len()).collect();
    while city_of.len() < cfg.stores {
        city_of.push(weighted(rng, &w));
    }
    city_of.sort();
    let span = (cfg.cutoff - cfg.start).num_days();
    // Aspect qualities come from their own stream so the stores' places and dates stay put.
    let mut qrng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xa5_9ec7);
    city_of
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (_, _, _, lat, lon) = CITIES[c];
            let open = if rng.random_bool(0.7) {
                cfg.start - Duration::days(rng.random_range(30..1500))
            } else {
                cfg.start + Duration::days(rng.random_range(0..(span * 8 / 10).max(1)))
            };
            Store {
                id: i as i64 + 1,
                city: c,
                lat: lat + rng.random_range(-0.08..0.08),
                lon: lon + rng.random_range(-0.08..0.08),
                open,
                staff_phone: format!("177{:08}", 10_000_000 + i * 7919),
                aspect_q: std::array::from_fn(|_| {
                    let z: f64 = rand_distr::StandardNormal.sample(&mut qrng);
                    1.2 + 0.9 * z
                }),
                // One store in five drifts on each aspect, by 1 to 3 logits a year either way (a
                // new manager, a kitchen going downhill).
                aspect_trend: std::array::from_fn(|_| {
                    if qrng.random_bool(0.2) {
                        let m = qrng.random_range(1.0..3.0);
                        if qrng.random_bool(0.5) {
                            m
                        } else {
                            -m
                        }
                    } else {
                        0.0
                    }
                }),
            }
        })
        .collect()
}

async fn write_dims(cfg: &SimConfig, pos: &Db, stores: &[Store]) -> Result<(), SimError> {
    let cities: Vec<Vec<Value>> = CITIES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                (i as i64 + 1).into(),
                c.0.into(),
                c.1.into(),
                (c.2 as i64).into(),
                c.3.into(),
                c.4.into(),
            ]
        })
        .collect();
    pos.insert_rows(
        "cities",
        &["city_id", "name", "province", "tier", "lat", "lon"],
        &cities,
    )
    .await?;
    let mut kind_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5707e);
    let kw: Vec<f64> = STORE_KINDS.iter().map(|k| k.2 as f64).collect();
    let mut per_city: HashMap<usize, usize> = HashMap::new();
    let rows: Vec<Vec<Value>> = stores
        .iter()
        .map(|s| {
            let k = STORE_KINDS[weighted(&mut kind_rng, &kw)];
            let n = per_city.entry(s.city).or_insert(0);
            *n += 1;
            let city = CITIES[s.city].0;
            vec![
                s.id.into(),
                format!("S{:04}", s.id).into(),
                format!("热狗工坊{city}{}号{}", n, k.1).into(),
                (s.city as i64 + 1).into(),
                k.0.into(),
                s.lat.into(),
                s.lon.into(),
                s.open.to_string().into(),
                "open".into(),
                format!("{} 08:00:00", s.open).into(),
            ]
        })
        .collect();
    pos.insert_rows(
        "stores",
        &[
            "store_id",
            "store_code",
            "name",
            "city_id",
            "store_type",
            "lat",
            "lon",
            "open_date",
            "status",
            "updated_at",
        ],
        &rows,
    )
    .await?;
    let launch_mid = (cfg.start + (cfg.cutoff - cfg.start) / 2).to_string();
    let products: Vec<Vec<Value>> = MENU
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let launched = if m.0 == "HD07" || m.0 == "DR06" {
                launch_mid.clone()
            } else {
                "2019-06-01".into()
            };
            vec![
                (i as i64 + 1).into(),
                m.0.into(),
                m.1.into(),
                m.2.into(),
                m.3.into(),
                launched.clone().into(),
                format!("{launched} 00:00:00").into(),
                crate::catalog::unit_cost_fen(m.0).into(),
            ]
        })
        .collect();
    pos.insert_rows(
        "products",
        &[
            "product_id",
            "sku",
            "name",
            "category",
            "price_fen",
            "launched",
            "updated_at",
            "cost_fen",
        ],
        &products,
    )
    .await?;
    Ok(())
}

/// What the generator thread owns: the settings and the chain.
struct World {
    cfg: SimConfig,
    stores: Vec<Store>,
    city_stores: Vec<Vec<usize>>,
    city_w: Vec<f64>,
    circles_per_city: Vec<i64>,
}

struct Ctx<'a> {
    cfg: &'a SimConfig,
    stores: &'a [Store],
    city_stores: &'a [Vec<usize>],
    city_w: &'a [f64],
    circles_per_city: &'a [i64],
    days: DayMix,
}

/// Taste types: the items each type buys five times as readily.
const TASTES: &[&[&str]] = &[
    &["HD05", "HD07", "SN03", "DR01"], // spicy
    &["HD08", "DR03", "DR05", "CB03"], // breakfast
    &["HD02", "SN05", "SN02", "DR06"], // cheese and snacks
    &["CB02", "CB04", "SN01", "DR04"], // sharing / family
    &["HD01", "HD03", "HD06", "DR02"], // classic
];

/// How much more (or less) an item sells in a daypart.
fn daypart_affinity(sku: &str, cat: &str, dp: Daypart) -> f64 {
    use Daypart::*;
    let breakfast_item = matches!(sku, "HD08" | "DR03" | "DR05" | "CB03");
    match (dp, breakfast_item, cat) {
        (Breakfast, true, _) => 4.0,
        (Breakfast, false, "套餐") => 0.3,
        (Breakfast, false, _) => 0.6,
        (_, true, _) if sku == "CB03" => 0.1,
        (Afternoon, _, "小食") | (Afternoon, _, "饮品") => 2.0,
        (Dinner, _, "套餐") => 2.0,
        (LateNight, _, "小食") => 1.8,
        _ => 1.0,
    }
}

/// The menu's cheapest item, rung up when a person's picks keep overshooting what they pay.
fn cheapest_item() -> usize {
    (0..MENU.len()).min_by_key(|&k| MENU[k].3).unwrap_or(0)
}

fn launched(sku: &str, t: NaiveDateTime, cfg: &SimConfig) -> bool {
    !(sku == "HD07" || sku == "DR06") || t.date() >= cfg.start + (cfg.cutoff - cfg.start) / 2
}

/// Generates one person and all their source rows; returns how many source orders they placed.
/// One person's latent traits, drawn from their own seeded streams: the buying process (`rng`),
/// tastes (a stream used up while drawing), social and browsing habits (`srng`) and
/// customer-service problems (`vrng`). Each stream is drawn in the same order as it always was,
/// so a seed keeps giving the same world.
struct Person<'c> {
    pid: u64,
    rng: ChaCha8Rng,
    srng: ChaCha8Rng,
    vrng: ChaCha8Rng,
    /// Who pays at the till (their own WeChat Pay / Alipay account, or a friend's).
    prng: ChaCha8Rng,
    lambda: f64,
    p_drop: f64,
    nu: f64,
    /// Gamma-Gamma spend per order (yuan).
    spend: Gamma<f64>,
    hol_mult: f64,
    mean_mult: f64,
    max_mult: f64,
    /// Weight of each daypart, and of each menu item per daypart.
    dp_w: Vec<f64>,
    prod_w_dp: Vec<Vec<f64>>,
    /// The stores of their city (indices into the chain's), and their home store.
    city_stores: &'c [usize],
    home: usize,
    /// First purchase, in days since the start.
    t0: f64,
    has_member: bool,
    /// Chance an order goes through the mini-program.
    p_wx: f64,
    phone: String,
    circle: i64,
    sociability: f64,
    browse_rate: f64,
    p_continue: f64,
}

/// A person's WeChat openid under the chain's app: what the mini-program sees, and what WeChat
/// Pay reports for a payment at a till bound to the same app (a pure function of the seed and
/// the person, so a friend's payment names the friend).
fn person_openid(seed: u64, pid: u64) -> String {
    let mut r = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ pid);
    rand_token(&mut r, "oXy", 25)
}

/// A person's Alipay user id (`2088` and 12 digits), as Alipay reports it to the merchant.
fn person_alipay(seed: u64, pid: u64) -> String {
    let mut r = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ pid);
    format!("2088{:012}", r.random_range(0..1_000_000_000_000u64))
}

/// What a person has become in the two systems so far, and what they bought.
struct Ledger {
    /// Their member id (the card number follows from it).
    member: Option<i64>,
    dup_member: Option<i64>,
    wx_user: Option<i64>,
    wx_user2: Option<i64>,
    /// Orders written to the sources.
    n_src: u64,
    /// Orders after the cut-off (kept as truth) and their spend.
    n_future: i64,
    future_spend: i64,
    dp_count: [u32; 5],
    sku_count: Vec<u32>,
}

/// Where a person's rows, ids and counts go.
struct Out<'o> {
    /// The ids this person has used (their own, local ids; see [`next`]).
    ids: &'o mut Ids,
    rows: &'o mut Rows,
    sum: &'o mut SimSummary,
    /// Who was in which circle before this round.
    social: &'o Social,
    /// Mini-program users of the rounds before (ids 1 to this).
    wx_users_before: i64,
}

/// One purchase as it happened, before it is written to either system.
struct Sale<'s> {
    when: NaiveDateTime,
    dp: Daypart,
    store: &'s Store,
    basket: Vec<(usize, i64)>,
    /// List total and the discount (member price / coupon); paid = total - discount.
    total: i64,
    discount: i64,
    ts: String,
    upd: String,
    status: &'static str,
    coupon_used: bool,
}

/// One person: their traits, their purchases (each written to the POS or the mini-program, or
/// kept as ground-truth future past the cut-off), then their truth row and ids. Returns the
/// orders written to the sources.
fn gen_person(ctx: &Ctx, pid: u64, social: &Social, wx_users_before: i64) -> PersonOut {
    let (mut ids, mut rows, mut sum) = (Ids::default(), Rows::default(), SimSummary::default());
    let cfg = ctx.cfg;
    let mut p = draw_person(ctx, pid);
    let span = (cfg.cutoff - cfg.start).num_days() as f64;
    let horizon = span + cfg.horizon_days as f64;
    // The purchase process: BG/NBD with day-level demand thinning. The first purchase is the
    // start of the relationship; after each *repeat* purchase the person may drop out.
    let demand = Demand {
        lambda: p.lambda,
        p_drop: p.p_drop,
        hol_mult: p.hol_mult,
        mean_mult: p.mean_mult,
        max_mult: p.max_mult,
    };
    let (times, dropout_at) = purchase_times(&mut p.rng, &demand, p.t0, horizon, cfg);
    let mut led = Ledger {
        member: None,
        dup_member: None,
        wx_user: None,
        wx_user2: None,
        n_src: 0,
        n_future: 0,
        future_spend: 0,
        dp_count: [0; 5],
        sku_count: vec![0; MENU.len()],
    };
    let device = DEVICES[p.rng.random_range(0..DEVICES.len())];
    let mut out = Out {
        ids: &mut ids,
        rows: &mut rows,
        sum: &mut sum,
        social,
        wx_users_before,
    };
    for &tt in &times {
        purchase(ctx, &mut p, &mut led, &mut out, device, tt);
    }
    out.sum.future_orders += led.n_future as u64;
    record_truth(ctx, &p, &led, out.rows, &times, dropout_at);
    PersonOut {
        ids,
        rows,
        sum,
        orders: led.n_src,
    }
}

/// One person's rows (with local ids), the ids they used, their counts and source orders.
struct PersonOut {
    ids: Ids,
    rows: Rows,
    sum: SimSummary,
    orders: u64,
}

impl SimSummary {
    /// Adds one person's counts.
    fn add(&mut self, o: &SimSummary) {
        self.persons += o.persons;
        self.members += o.members;
        self.wx_users += o.wx_users;
        self.pos_orders += o.pos_orders;
        self.wx_orders += o.wx_orders;
        self.items += o.items;
        self.events += o.events;
        self.reviews += o.reviews;
        self.shares += o.shares;
        self.group_orders += o.group_orders;
        self.paid_by_friend += o.paid_by_friend;
        self.tickets += o.tickets;
        self.future_orders += o.future_orders;
    }
}

/// Persons per round: the persons of a round are drawn in parallel against the circles of the
/// rounds before, so the round size (never the thread count) shapes the world. Small worlds get
/// small rounds, so most friendships still form.
fn round_size(orders: u64) -> u64 {
    (orders / 6 / 256).clamp(16, 4096)
}

/// Draws a person's traits (see [`Person`]).
fn draw_person<'c>(ctx: &Ctx<'c>, pid: u64) -> Person<'c> {
    let cfg = ctx.cfg;
    let tp = cfg.params;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ pid);
    let lambda = Gamma::new(tp.r, 1.0 / tp.alpha)
        .expect("positive distribution parameters")
        .sample(&mut rng)
        .min(1.5);
    let p_drop = Beta::new(tp.a, tp.b)
        .expect("positive distribution parameters")
        .sample(&mut rng);
    let nu = Gamma::new(tp.q, 1.0 / tp.gamma)
        .expect("positive distribution parameters")
        .sample(&mut rng);
    let spend = Gamma::new(tp.p, 1.0 / nu).expect("positive distribution parameters");
    // Holiday sensitivity: some people treat themselves on holidays, some stay away.
    // Log-normal around 1.5 (σ = 0.45), kept within [0.4, 4].
    let z: f64 = rand_distr::StandardNormal.sample(&mut rng);
    let hol_mult = (1.5 * (0.45 * z - 0.45f64.powi(2) / 2.0).exp()).clamp(0.4, 4.0);
    let mean_mult = ctx.days.mean(hol_mult);
    let max_mult = hol_mult.max(1.1) / mean_mult;

    let (dp_w, prod_w_dp) = draw_tastes(cfg, pid, &mut rng);

    // Where and when they start.
    let city = weighted(&mut rng, ctx.city_w);
    let cs = &ctx.city_stores[city];
    let home = cs[rng.random_range(0..cs.len())];
    let span = (cfg.cutoff - cfg.start).num_days() as f64;
    let mut t0 = span * rng.random::<f64>().sqrt();
    let open_off = (ctx.stores[home].open - cfg.start).num_days() as f64;
    if t0 < open_off {
        t0 = open_off + rng.random::<f64>() * (span - open_off).max(1.0) * 0.5;
    }

    // Channels.
    let has_member = rng.random_bool(0.55);
    let has_wx = rng.random_bool(0.5);
    let p_wx = match (has_member, has_wx) {
        (true, true) => Beta::new(2.0, 2.0)
            .expect("positive distribution parameters")
            .sample(&mut rng),
        (false, true) => 0.85,
        _ => 0.0,
    };
    let phone = person_phone(pid);
    // Social and browsing traits come from their own stream, so the buying process above and
    // below draws exactly what it drew before these traits existed.
    let mut srng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x5851_F42D_4C95_7F2D) ^ pid);
    let circle = city as i64 * 10_000 + srng.random_range(0..ctx.circles_per_city[city]);
    let sociability: f64 = Gamma::new(0.5, 2.0)
        .expect("positive distribution parameters")
        .sample(&mut srng);
    let browse_rate: f64 = Gamma::new(1.5, 0.6)
        .expect("positive distribution parameters")
        .sample(&mut srng);
    let p_continue: f64 = Beta::new(3.0, 2.0)
        .expect("positive distribution parameters")
        .sample(&mut srng);
    // Customer-service problems draw from a stream of their own too.
    let vrng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x1405_7B7E_F767_814F) ^ pid);
    // And who pays at the till from another.
    let prng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x6C07_8965_D5A4_C8E5) ^ pid);
    Person {
        pid,
        rng,
        srng,
        vrng,
        prng,
        lambda,
        p_drop,
        nu,
        spend,
        hol_mult,
        mean_mult,
        max_mult,
        dp_w,
        prod_w_dp,
        city_stores: cs,
        home,
        t0,
        has_member,
        p_wx,
        phone,
        circle,
        sociability,
        browse_rate,
        p_continue,
    }
}

/// A person's daypart weights and, per daypart, their weight on each menu item.
fn draw_tastes(cfg: &SimConfig, pid: u64, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<Vec<f64>>) {
    let base_dp = [0.15, 0.35, 0.15, 0.25, 0.10];
    let dp_w: Vec<f64> = base_dp
        .iter()
        .map(|b| {
            Gamma::new(b * 4.0, 1.0)
                .expect("positive distribution parameters")
                .sample(rng)
                + 1e-6
        })
        .collect();
    let pop = |cat: &str| match cat {
        "热狗" => 1.0,
        "小食" => 0.6,
        "饮品" => 0.8,
        _ => 0.5,
    };
    let prod_w: Vec<f64> = MENU
        .iter()
        .map(|m| {
            pop(m.2)
                * Gamma::new(0.6, 1.0)
                    .expect("positive distribution parameters")
                    .sample(rng)
                + 1e-4
        })
        .collect();
    // A taste type (from its own stream) makes some items go together — the structure
    // collaborative filtering can learn — and items sell by daypart (breakfast items in the
    // morning, sharing meals at dinner).
    let mut trng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ pid);
    let taste = TASTES[trng.random_range(0..TASTES.len())];
    let prod_w_dp: Vec<Vec<f64>> = Daypart::ALL
        .iter()
        .map(|dp| {
            MENU.iter()
                .zip(&prod_w)
                .map(|(m, w)| {
                    let t = if taste.contains(&m.0) { 5.0 } else { 1.0 };
                    w * t * daypart_affinity(m.0, m.2, *dp)
                })
                .collect()
        })
        .collect();
    (dp_w, prod_w_dp)
}

/// One purchase `tt` days after the start: when, where and what, then written to the
/// mini-program or the till, or kept as ground-truth future when it falls after the cut-off.
fn purchase(ctx: &Ctx, p: &mut Person, led: &mut Ledger, out: &mut Out, device: &str, tt: f64) {
    let cfg = ctx.cfg;
    let start_dt = cfg.start.and_time(chrono::NaiveTime::MIN);
    let cutoff_off = (cfg.cutoff - cfg.start).num_days() as f64;
    let rng = &mut p.rng;
    let dp = Daypart::ALL[weighted(rng, &p.dp_w)];
    let (h0, h1) = dp.hours();
    let day = start_dt + Duration::days(tt as i64);
    let when = day
        + Duration::hours(rng.random_range(h0..=h1) as i64)
        + Duration::minutes(rng.random_range(0..60))
        + Duration::seconds(rng.random_range(0..60));
    // Store: mostly home, sometimes another store in town, rarely travelling.
    let cs = p.city_stores;
    let store_ix = match rng.random_range(0..100) {
        0..=84 => p.home,
        85..=94 => cs[rng.random_range(0..cs.len())],
        _ => rng.random_range(0..ctx.stores.len()),
    };
    let store_ix = if ctx.stores[store_ix].open > when.date() {
        p.home
    } else {
        store_ix
    };
    let store = &ctx.stores[store_ix];
    // What the customer pays is the Gamma-Gamma draw (the spend truth, in fen). Items are
    // rung up until their list price covers it; the gap is the member price / coupon
    // discount, so total + discount = Σ items holds and the paid values are exactly
    // Gamma(p, ν). An item far above what is left is put back (a person's taste decides
    // which items, not the amount).
    let paid = (p.spend.sample(rng) * 100.0).round().max(100.0) as i64;
    let (basket, total) = ring_up(
        rng,
        paid,
        &p.prod_w_dp[dp as usize],
        when,
        cfg,
        &mut led.sku_count,
    );
    let discount = total - paid;
    let via_wx = rng.random::<f64>() < p.p_wx;
    let channel = if via_wx { "wx" } else { "pos" };
    if tt >= cutoff_off {
        led.n_future += 1;
        led.future_spend += paid;
        out.rows.future.push(vec![
            (p.pid as i64).into(),
            fmt_ts(when).into(),
            paid.into(),
            channel.into(),
        ]);
        return;
    }
    led.dp_count[dp as usize] += 1;
    led.n_src += 1;
    let ts = fmt_ts(when);
    let upd = fmt_ts(when + Duration::seconds(rng.random_range(1..120)));
    let refunded = rng.random_bool(0.02);
    let (status, upd) = if refunded {
        (
            "refunded",
            fmt_ts(when + Duration::hours(rng.random_range(1..48))),
        )
    } else {
        ("paid", upd)
    };
    let coupon_used = discount > 0 && rng.random_bool(0.3);
    let sale = Sale {
        when,
        dp,
        store,
        basket,
        total,
        discount,
        ts,
        upd,
        status,
        coupon_used,
    };
    if via_wx {
        online_order(cfg, p, led, out, device, &sale);
    } else {
        till_order(cfg, p, led, out, &sale);
    }
}

/// An order through the mini-program: the account (created on the first online order), the
/// order and its items, then the session that led to it, sometimes a review, a service ticket,
/// a share, a group order or a friend paying.
fn online_order(
    cfg: &SimConfig,
    p: &mut Person,
    led: &mut Ledger,
    out: &mut Out,
    device: &str,
    s: &Sale,
) {
    let dirt = cfg.dirt;
    let (pid, when) = (p.pid, s.when);
    let rng = &mut p.rng;
    let uid = *led.wx_user.get_or_insert_with(|| {
        let uid = next(&mut out.ids.wx_user);
        let card = led.member.filter(|_| rng.random_bool(0.3));
        let openid = person_openid(cfg.seed, pid);
        push_wx_user(
            rng,
            out.rows,
            uid,
            Some(&openid),
            Some(&p.phone),
            card,
            when,
        );
        out.sum.wx_users += 1;
        uid
    });
    if led.wx_user2.is_none() && rng.random_bool(0.004 * dirt) {
        let u2 = next(&mut out.ids.wx_user);
        let ph = if rng.random_bool(0.8) {
            Some(p.phone.as_str())
        } else {
            None
        };
        push_wx_user(rng, out.rows, u2, None, ph, None, when);
        out.sum.wx_users += 1;
        led.wx_user2 = Some(u2);
    }
    let uid = match led.wx_user2 {
        Some(u2) if rng.random_bool(0.5) => u2,
        _ => uid,
    };
    let oid = next(&mut out.ids.wx_order);
    let order_no = Embed::WxOrderNo {
        day: when.date(),
        order: oid,
    };
    let coupon = if s.coupon_used {
        Value::from(format!("CP{:04}", rng.random_range(0..200)))
    } else {
        Value::NullS
    };
    let delivery = rng.random_bool(0.3);
    let order_row = vec![
        oid.into(),
        Value::NullS, // the order number, once the ids are global
        uid.into(),
        s.store.id.into(),
        s.ts.clone().into(),
        (s.total - s.discount).into(),
        s.discount.into(),
        (if delivery { "delivery" } else { "pickup" }).into(),
        s.status.into(),
        coupon,
        s.upd.clone().into(),
    ];
    if rng.random_bool(0.002 * dirt) {
        // The mini-program's sync retried: the same order twice under a new id.
        let mut dup = order_row.clone();
        dup[0] = next(&mut out.ids.wx_order).into();
        out.rows.wx_orders.push(dup);
        out.rows.fill_last(
            Tab::WxOrders,
            1,
            Embed::WxOrderNo {
                day: when.date(),
                order: oid,
            },
        );
    }
    out.rows.wx_orders.push(order_row);
    out.rows.fill_last(Tab::WxOrders, 1, order_no);
    out.sum.wx_orders += 1;
    for (k, q) in &s.basket {
        out.rows.wx_items.push(vec![
            next(&mut out.ids.wx_item).into(),
            oid.into(),
            (*k as i64 + 1).into(),
            (*q).into(),
            MENU[*k].3.into(),
            s.upd.clone().into(),
        ]);
        out.sum.items += 1;
    }
    if !out.rows.joined.iter().any(|j| j.1 == uid) {
        out.rows.joined.push((p.circle, uid));
    }
    let visitor = Visitor {
        uid,
        device,
        store: s.store,
    };
    visitor.sessions(p, out, oid, when);
    if p.srng.random_bool(0.12) {
        write_review(out.rows, out.ids, &mut p.srng, cfg, s.store, uid, oid, when);
        out.sum.reviews += 1;
    }
    // Sometimes the order goes wrong and the customer writes to customer service.
    let n_items: i64 = s.basket.iter().map(|b| b.1).sum();
    out.sum.tickets += service_ticket(
        cfg,
        &mut p.vrng,
        out.rows,
        out.ids,
        uid,
        oid,
        when,
        s.dp,
        s.store,
        delivery,
        s.coupon_used,
        n_items,
    );
    social_acts(p, out, uid, oid, s);
}

/// A mini-program user browsing near a store.
struct Visitor<'v> {
    uid: i64,
    device: &'v str,
    store: &'v Store,
}

/// The funnel a session walks through; a paying session reaches the end.
const FUNNEL: [(&str, &str); 5] = [
    ("view", "home"),
    ("view", "menu"),
    ("click", "item"),
    ("add_cart", "cart"),
    ("pay", "pay"),
];

impl Visitor<'_> {
    /// One page event, located near the store.
    fn event(
        &self,
        out: &mut Out,
        srng: &mut ChaCha8Rng,
        session: Embed,
        ev: &str,
        page: &str,
        at: NaiveDateTime,
    ) {
        out.rows.events.push(vec![
            next(&mut out.ids.event).into(),
            self.uid.into(),
            Value::NullS, // the session id, once the ids are global
            ev.into(),
            page.into(),
            fmt_ts(at).into(),
            self.device.into(),
            (self.store.lat + srng.random_range(-0.01..0.01)).into(),
            (self.store.lon + srng.random_range(-0.01..0.01)).into(),
        ]);
        out.rows.fill_last(Tab::Events, 2, session);
        out.sum.events += 1;
    }

    /// The session that led to order `oid` at `when`, then the person's browses that stopped
    /// short of paying in the days before.
    fn sessions(&self, p: &mut Person, out: &mut Out, oid: i64, when: NaiveDateTime) {
        let uid = self.uid;
        let srng = &mut p.srng;
        let n = FUNNEL.len() as i64;
        // Steps in order, 5 to 40 seconds apart, the payment just before the order time.
        let gaps: Vec<i64> = (0..n).map(|_| srng.random_range(5..40)).collect();
        for (i, (ev, page)) in FUNNEL.iter().enumerate() {
            let et = when - Duration::seconds(gaps[i..].iter().sum::<i64>());
            let sid = Embed::Session {
                user: uid,
                order: oid,
            };
            self.event(out, srng, sid, ev, page, et);
        }
        // Browses that stopped short of paying: how many and how deep is the person's habit.
        let browses = rand_distr::Poisson::new(p.browse_rate.max(1e-6))
            .map(|d| d.sample(srng) as u32)
            .unwrap_or(0)
            .min(6);
        for b in 0..browses {
            let mut depth = 1;
            while depth < 4 && srng.random_bool(p.p_continue) {
                depth += 1;
            }
            let bt =
                when - Duration::days(srng.random_range(1..5)) - Duration::minutes(b as i64 * 7);
            for (i, (ev, page)) in FUNNEL.iter().take(depth).enumerate() {
                let bs = Embed::Browse {
                    user: uid,
                    order: oid,
                    n: b,
                };
                self.event(
                    out,
                    srng,
                    bs,
                    ev,
                    page,
                    bt + Duration::seconds(i as i64 * 20),
                );
            }
        }
    }
}

/// Shares (mostly to a friend in the circle, sometimes to anyone, sometimes to a group chat with
/// no recipient; the campaign is the month's share campaign), a group order (拼单) with friends,
/// or a friend paying for the order (代付).
fn social_acts(p: &mut Person, out: &mut Out, uid: i64, oid: i64, s: &Sale) {
    let (srng, circle, when) = (&mut p.srng, p.circle, s.when);
    if srng.random_bool((0.04 * p.sociability).min(0.6)) {
        let to = match out.social.friend(srng, circle, uid) {
            Some(f) if srng.random_bool(0.85) => Value::I(f),
            _ if out.wx_users_before > 0 && srng.random_bool(0.4) => {
                Value::I(srng.random_range(1..=out.wx_users_before))
            }
            _ => Value::NullI,
        };
        out.rows.shares.push(vec![
            next(&mut out.ids.share).into(),
            uid.into(),
            to,
            (if srng.random_bool(0.5) {
                "item"
            } else {
                "coupon"
            })
            .into(),
            format!("CMP{}", when.format("%Y%m")).into(),
            fmt_ts(when + Duration::minutes(10)).into(),
        ]);
        out.sum.shares += 1;
    }
    if srng.random_bool((0.03 * p.sociability).min(0.3)) {
        let mut members = vec![uid];
        for _ in 0..srng.random_range(1..=3) {
            if let Some(f) = out.social.friend(srng, circle, uid) {
                if !members.contains(&f) {
                    members.push(f);
                }
            }
        }
        if members.len() > 1 {
            for m in members {
                out.rows.groups.push(vec![
                    next(&mut out.ids.group_row).into(),
                    Value::NullS, // the group id, once the ids are global
                    oid.into(),
                    m.into(),
                    s.ts.clone().into(),
                ]);
                out.rows
                    .fill_last(Tab::Groups, 1, Embed::Group { order: oid });
            }
            out.sum.group_orders += 1;
        }
    }
    if srng.random_bool(0.02) {
        if let Some(f) = out.social.friend(srng, circle, uid) {
            out.rows.paid_by.push(vec![
                next(&mut out.ids.paid_row).into(),
                oid.into(),
                uid.into(),
                f.into(),
                s.ts.clone().into(),
            ]);
            out.sum.paid_by_friend += 1;
        }
    }
}

/// An order at the till: a member if they have one (and remembered it), else anonymous; with
/// the POS's dirt (malformed times, unknown stores, duplicate syncs, unknown items).
fn till_order(cfg: &SimConfig, p: &mut Person, led: &mut Ledger, out: &mut Out, s: &Sale) {
    let dirt = cfg.dirt;
    let (pid, store, when) = (p.pid, s.store, s.when);
    let rng = &mut p.rng;
    let member_id = if p.has_member && rng.random_bool(0.9) {
        let mid = *led.member.get_or_insert_with(|| {
            let mid = next(&mut out.ids.member);
            push_member(rng, out.rows, mid, pid, &p.phone, store, when, dirt);
            out.sum.members += 1;
            mid
        });
        if led.dup_member.is_none() && rng.random_bool(0.01 * dirt) {
            // Registered again at another till with the same phone.
            let d = next(&mut out.ids.member);
            push_member(rng, out.rows, d, pid, &p.phone, store, when, 0.0);
            out.sum.members += 1;
            led.dup_member = Some(d);
        }
        Some(match led.dup_member {
            Some(d) if rng.random_bool(0.5) => d,
            _ => mid,
        })
    } else {
        None
    };
    let oid = next(&mut out.ids.order);
    let mut store_id = store.id;
    let mut ots = s.ts.clone();
    if rng.random_bool(0.001 * dirt) {
        ots = if rng.random_bool(0.5) {
            String::new()
        } else {
            format!("{}-02-30 25:61:00", when.format("%Y"))
        };
    }
    if rng.random_bool(0.0005 * dirt) {
        store_id = 9999;
    }
    let pay = ["wechat_pay", "alipay", "cash", "card"][weighted(rng, &[0.55, 0.35, 0.05, 0.05])];
    // The payer's account as the payment provider reports it to the till: the person's own
    // most of the time, a companion's now and then, and nothing on tills that do not keep it.
    let pr = &mut p.prng;
    let payer: Option<String> = match pay {
        "wechat_pay" | "alipay" if pr.random_bool(0.9) => {
            let who = if pr.random_bool(0.06) {
                pid.wrapping_add(1 + pr.random_range(0..400))
            } else {
                pid
            };
            Some(if pay == "wechat_pay" {
                person_openid(cfg.seed, who)
            } else {
                person_alipay(cfg.seed, who)
            })
        }
        _ => None,
    };
    let order_row = vec![
        oid.into(),
        Value::NullS, // the order number, once the ids are global
        store_id.into(),
        member_id.into(),
        ots.into(),
        (s.total - s.discount).into(),
        s.discount.into(),
        pay.into(),
        s.status.into(),
        if s.coupon_used {
            Value::from(format!("CP{:04}", p.vrng.random_range(0..200)))
        } else {
            Value::NullS
        },
        s.upd.clone().into(),
        payer.into(),
    ];
    if member_id.is_none() {
        out.rows.anon.push(vec![oid.into(), (pid as i64).into()]);
    }
    if rng.random_bool(0.003 * dirt) {
        let mut dup = order_row.clone();
        dup[0] = next(&mut out.ids.order).into();
        if member_id.is_none() {
            out.rows
                .anon
                .push(vec![dup[0].clone(), (pid as i64).into()]);
        }
        out.rows.orders.push(dup);
        out.rows.fill_last(
            Tab::Orders,
            1,
            Embed::PosOrderNo {
                store: store.id,
                order: oid,
            },
        );
    }
    out.rows.orders.push(order_row);
    out.rows.fill_last(
        Tab::Orders,
        1,
        Embed::PosOrderNo {
            store: store.id,
            order: oid,
        },
    );
    out.sum.pos_orders += 1;
    for (k, q) in &s.basket {
        let bad = rng.random_bool(0.001 * dirt);
        let pid_v: i64 = if bad { 999 } else { *k as i64 + 1 };
        out.rows.items.push(vec![
            next(&mut out.ids.item).into(),
            oid.into(),
            pid_v.into(),
            (*q).into(),
            MENU[*k].3.into(),
            s.upd.clone().into(),
        ]);
        out.sum.items += 1;
    }
}

/// The person's truth row (their latent parameters, what they did, alive at the cut-off) and
/// which source ids are theirs.
fn record_truth(
    ctx: &Ctx,
    p: &Person,
    led: &Ledger,
    rows: &mut Rows,
    times: &[f64],
    dropout_at: Option<f64>,
) {
    let cfg = ctx.cfg;
    let tp = cfg.params;
    let pid = p.pid;
    let start_dt = cfg.start.and_time(chrono::NaiveTime::MIN);
    let cutoff_off = (cfg.cutoff - cfg.start).num_days() as f64;
    let alive_at_cutoff = match dropout_at {
        Some(d) => d >= cutoff_off,
        None => true,
    } && p.t0 < cutoff_off;
    let fav_dp = Daypart::ALL[(0..5).max_by_key(|i| led.dp_count[*i]).unwrap_or(1)];
    let fav_sku = MENU[(0..MENU.len())
        .max_by_key(|i| led.sku_count[*i])
        .unwrap_or(0)]
    .0;
    let dt = |x: f64| fmt_ts(start_dt + Duration::seconds((x * 86400.0) as i64));
    rows.persons.push(vec![
        (pid as i64).into(),
        p.lambda.into(),
        p.p_drop.into(),
        p.nu.into(),
        (tp.p / p.nu * 100.0).into(),
        p.hol_mult.into(),
        dt(p.t0).into(),
        dt(*times.iter().rfind(|t| **t < cutoff_off).unwrap_or(&p.t0)).into(),
        dropout_at.map(dt).into(),
        (alive_at_cutoff as i64).into(),
        (led.n_src as i64).into(),
        led.n_future.into(),
        led.future_spend.into(),
        ctx.stores[p.home].id.into(),
        (led.member.is_some() as i64).into(),
        (led.wx_user.is_some() as i64).into(),
        fav_dp.code().into(),
        fav_sku.into(),
        p.circle.into(),
        p.sociability.into(),
        p.browse_rate.into(),
        p.p_continue.into(),
    ]);
    for m in led.member.iter().copied().chain(led.dup_member) {
        rows.ids
            .push(vec!["member".into(), m.into(), (pid as i64).into()]);
    }
    for u in led.wx_user.iter().copied().chain(led.wx_user2) {
        rows.ids
            .push(vec!["wx".into(), u.into(), (pid as i64).into()]);
    }
}

/// The problems a customer-service ticket can be about.
pub const CAUSES: [&str; 4] = [
    "late_order",
    "wrong_item",
    "coupon_failure",
    "quality_complaint",
];

/// What drives one person's purchases: BG/NBD's rate λ (per day) and dropout p, with their
/// holiday multiplier normalised so λ stays the mean daily rate.
struct Demand {
    lambda: f64,
    p_drop: f64,
    hol_mult: f64,
    mean_mult: f64,
    max_mult: f64,
}

/// Purchase times (days since the start) from `t0` until `horizon` or dropout: candidate
/// arrivals at the maximum rate, kept with the day's demand multiplier (thinning); after each
/// repeat purchase the person drops out with probability p. Returns the times and the dropout.
fn purchase_times(
    rng: &mut ChaCha8Rng,
    d: &Demand,
    t0: f64,
    horizon: f64,
    cfg: &SimConfig,
) -> (Vec<f64>, Option<f64>) {
    let mut times: Vec<f64> = vec![t0];
    let exp = Exp::new(d.lambda * d.max_mult).expect("positive distribution parameters");
    let mut t = t0;
    loop {
        loop {
            t += exp.sample(rng);
            if t >= horizon {
                return (times, None);
            }
            let day = cfg.start + Duration::days(t as i64);
            if rng.random::<f64>() < day_mult(day, d.hol_mult) / d.mean_mult / d.max_mult {
                break;
            }
        }
        times.push(t);
        if rng.random::<f64>() < d.p_drop {
            return (times, Some(t));
        }
    }
}

/// Items from the person's tastes at this daypart, rung up until their list price covers what
/// they pay (`paid` fen); an item far above what is left is put back. Returns the basket of
/// (item, quantity) and its list total (≥ `paid`; the gap is the discount).
fn ring_up(
    rng: &mut ChaCha8Rng,
    paid: i64,
    weights: &[f64],
    when: NaiveDateTime,
    cfg: &SimConfig,
    sku_count: &mut [u32],
) -> (Vec<(usize, i64)>, i64) {
    let mut basket: Vec<(usize, i64)> = Vec::new();
    let mut total = 0i64;
    let mut put_back = 0;
    while total < paid {
        let room = paid - total;
        let mut k = weighted(rng, weights);
        if !launched(MENU[k].0, when, cfg) {
            continue;
        }
        if MENU[k].3 > room + 1000 {
            put_back += 1;
            if put_back < 8 {
                continue;
            }
            k = cheapest_item();
        }
        let qty = if room >= 2 * MENU[k].3 && rng.random_bool(0.15) {
            2
        } else {
            1
        };
        total += MENU[k].3 * qty;
        sku_count[k] += qty as u32;
        if let Some(b) = basket.iter_mut().find(|b| b.0 == k) {
            b.1 += qty;
        } else {
            basket.push((k, qty));
        }
    }
    (basket, total)
}

/// A review of one order: one to three aspects, each good or bad by the store's quality on it
/// (drifting over the years) and the customer's mood, in phrases, with a rating that follows
/// them; sometimes a closing remark, rarely an instruction aimed at an LLM, sometimes empty.
#[allow(clippy::too_many_arguments)]
fn write_review(
    rows: &mut Rows,
    ids: &mut Ids,
    srng: &mut ChaCha8Rng,
    cfg: &SimConfig,
    store: &Store,
    uid: i64,
    oid: i64,
    when: NaiveDateTime,
) {
    let dirt = cfg.dirt;
    let rid = next(&mut ids.review);
    let years = (when.date() - cfg.start).num_days() as f64 / 365.0;
    let z: f64 = rand_distr::StandardNormal.sample(srng);
    let mood = 0.7 * z;
    let k = [1, 2, 3][weighted(srng, &[0.5, 0.35, 0.15])];
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < k {
        let a = weighted(srng, &[0.35, 0.15, 0.15, 0.08, 0.17, 0.10]);
        if !picked.contains(&a) {
            picked.push(a);
        }
    }
    let mut parts: Vec<&str> = Vec::new();
    let mut pos = 0;
    for &a in &picked {
        let logit = store.aspect_q[a] + store.aspect_trend[a] * years + mood;
        let good = srng.random_bool(1.0 / (1.0 + (-logit).exp()));
        pos += good as usize;
        let (p, ng) = ASPECT_PHRASES[a];
        let list = if good { p } else { ng };
        parts.push(list[srng.random_range(0..list.len())]);
        rows.review_aspects.push(vec![
            rid.into(),
            ASPECTS[a].into(),
            (if good { 1i64 } else { -1 }).into(),
        ]);
    }
    let frac = pos as f64 / picked.len() as f64;
    let rating: i64 = if frac == 1.0 {
        srng.random_range(4..=5)
    } else if frac == 0.0 {
        srng.random_range(1..=2)
    } else if frac >= 0.5 {
        srng.random_range(3..=4)
    } else {
        srng.random_range(2..=3)
    };
    if srng.random_bool(0.4) {
        let close = if frac >= 0.5 {
            REVIEW_CLOSE_POS
        } else {
            REVIEW_CLOSE_NEG
        };
        parts.push(close[srng.random_range(0..close.len())]);
    }
    if srng.random_bool(0.003) {
        parts.push(REVIEW_INJECTIONS[srng.random_range(0..REVIEW_INJECTIONS.len())]);
    }
    let mut text = parts.join("，");
    text.push(if rating >= 4 { '！' } else { '。' });
    let content = if srng.random_bool(0.05 * dirt) {
        Value::NullS
    } else {
        Value::from(text)
    };
    rows.reviews.push(vec![
        rid.into(),
        uid.into(),
        oid.into(),
        store.id.into(),
        rating.into(),
        content,
        fmt_ts(when + Duration::hours(2)).into(),
    ]);
}

/// Whether this order goes wrong, and if so the ticket the customer writes. Each cause has its
/// drivers: delivery at lunch or dinner from a slow store is late; big baskets get a wrong item;
/// coupons fail; stores with poor taste or hygiene get quality complaints. Many messages are
/// vague, so the order's context matters as much as the words. Tickets older than 120 days
/// before the cut-off are closed with the cause an agent found (5% of them wrong).
#[allow(clippy::too_many_arguments)]
fn service_ticket(
    cfg: &SimConfig,
    vrng: &mut ChaCha8Rng,
    rows: &mut Rows,
    ids: &mut Ids,
    uid: i64,
    oid: i64,
    when: NaiveDateTime,
    dp: Daypart,
    store: &Store,
    delivery: bool,
    coupon_used: bool,
    n_items: i64,
) -> u64 {
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let peak = matches!(dp, Daypart::Lunch | Daypart::Dinner);
    let rates = [
        if delivery {
            0.06 * sig(-store.aspect_q[4]) * if peak { 1.6 } else { 0.6 }
        } else {
            0.002
        },
        0.003 * n_items as f64,
        if coupon_used { 0.05 } else { 0.0 },
        0.03 * sig(-(store.aspect_q[0] + store.aspect_q[5]) / 2.0),
    ];
    let total: f64 = rates.iter().sum();
    if vrng.random::<f64>() >= total {
        return 0;
    }
    let cause = weighted(vrng, &rates);
    const SPECIFIC: [&[&str]; 4] = [
        &[
            "等了一个多小时还没到",
            "外卖太慢了",
            "超时送达",
            "骑手迟迟不来",
            "说好半小时，结果一小时",
        ],
        &[
            "送错了",
            "少了一份",
            "我点的不是这个",
            "漏了饮料",
            "给错了口味",
        ],
        &[
            "优惠券用不了",
            "券核销失败",
            "显示优惠券已失效",
            "领了券但结账没减",
            "优惠没生效",
        ],
        &["热狗是凉的", "面包发硬", "吃出头发", "味道不对", "肠没熟"],
    ];
    const GENERIC: &[&str] = &[
        "订单有问题，请尽快处理",
        "很不满意",
        "你们怎么回事",
        "麻烦联系我一下",
        "体验很差",
        "希望给个说法",
    ];
    let mut parts: Vec<&str> = Vec::new();
    let u = vrng.random::<f64>();
    if u < 0.45 {
        parts.push(GENERIC[vrng.random_range(0..GENERIC.len())]);
    } else {
        let l = SPECIFIC[cause];
        parts.push(l[vrng.random_range(0..l.len())]);
        if u > 0.9 {
            // A second complaint in passing, about something else.
            let o = (cause + vrng.random_range(1..4)) % 4;
            parts.push(SPECIFIC[o][vrng.random_range(0..SPECIFIC[o].len())]);
        }
        if vrng.random_bool(0.5) {
            parts.push(GENERIC[vrng.random_range(0..GENERIC.len())]);
        }
    }
    let created = when
        + if cause == 0 {
            Duration::minutes(vrng.random_range(50..150))
        } else {
            Duration::minutes(vrng.random_range(20..1440))
        };
    let closed = created.date() < cfg.cutoff - Duration::days(120);
    let resolved = if !closed {
        Value::NullS
    } else if vrng.random_bool(0.05) {
        Value::from(CAUSES[(cause + vrng.random_range(1..4)) % 4])
    } else {
        Value::from(CAUSES[cause])
    };
    let tid = next(&mut ids.ticket);
    rows.tickets.push(vec![
        tid.into(),
        uid.into(),
        oid.into(),
        fmt_ts(created).into(),
        parts.join("，").into(),
        (if closed { "closed" } else { "open" }).into(),
        resolved,
        fmt_ts(created).into(),
    ]);
    rows.ticket_truth
        .push(vec![tid.into(), CAUSES[cause].into()]);
    1
}

/// Marketing consent as the registration form recorded it: 1 granted (below `yes`), 0 refused
/// (below `asked`), NULL never asked. Drawn from a hash of the row, not the generator's stream,
/// so adding it moved no other value.
fn consent_flag(what: &[&str], id: i64, yes: f64, asked: f64) -> Value {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ id as u64;
    for w in what {
        for b in w.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    // splitmix64 finaliser: the low bits of FNV alone are not uniform enough.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < yes {
        Value::I(1)
    } else if u < asked {
        Value::I(0)
    } else {
        Value::NullI
    }
}

#[allow(clippy::too_many_arguments)]
fn push_member(
    rng: &mut ChaCha8Rng,
    rows: &mut Rows,
    mid: i64,
    _pid: u64,
    phone: &str,
    store: &Store,
    when: NaiveDateTime,
    dirt: f64,
) {
    let (ph, verified) = match rng.random_range(0..1000) as f64 {
        x if x < 20.0 * dirt => (
            PLACEHOLDER_PHONES[rng.random_range(0..PLACEHOLDER_PHONES.len())].to_string(),
            0,
        ),
        x if x < 30.0 * dirt => (store.staff_phone.clone(), 0),
        x if x < 35.0 * dirt => (phone[..10].to_string(), 0), // a digit short: malformed
        x if x < 45.0 * dirt => {
            // A typo in one digit, unverified.
            let mut b = phone.as_bytes().to_vec();
            let i = rng.random_range(3..11);
            b[i] = b'0' + ((b[i] - b'0' + 1) % 10);
            (String::from_utf8(b).expect("ASCII digits stay ASCII"), 0)
        }
        _ => (
            fmt_phone(rng, phone),
            if rng.random_bool(0.8) { 1 } else { 0 },
        ),
    };
    let name = format!(
        "{}{}",
        SURNAMES[rng.random_range(0..SURNAMES.len())],
        GIVEN[rng.random_range(0..GIVEN.len())]
    );
    let birthday = if rng.random_bool(0.4) {
        Value::from(format!(
            "{}-{:02}-{:02}",
            rng.random_range(1960..2008),
            rng.random_range(1..13),
            rng.random_range(1..29)
        ))
    } else {
        Value::NullS
    };
    let created = fmt_ts(when - Duration::minutes(1));
    rows.members.push(vec![
        mid.into(),
        Value::NullS, // the card number, once the ids are global
        ph.into(),
        (verified as i64).into(),
        name.into(),
        (if rng.random_bool(0.5) { "F" } else { "M" }).into(),
        birthday,
        store.id.into(),
        created.clone().into(),
        created.clone().into(),
        consent_flag(&["sms", &created], mid, 0.62, 0.90),
        created.into(),
    ]);
    rows.fill_last(Tab::Members, 1, Embed::Card { member: mid });
}

fn push_wx_user(
    rng: &mut ChaCha8Rng,
    rows: &mut Rows,
    uid: i64,
    openid: Option<&str>,
    phone: Option<&str>,
    card_of_member: Option<i64>,
    when: NaiveDateTime,
) {
    // A second account is another WeChat id: a fresh openid (drawn either way, so the stream
    // stays where it was).
    let drawn = rand_token(rng, "oXy", 25);
    let openid = openid.map_or(drawn, str::to_string);
    let unionid: Value = if rng.random_bool(0.7) {
        rand_token(rng, "uN", 26).into()
    } else {
        Value::NullS
    };
    let ph: Value = match phone {
        Some(p) if rng.random_bool(0.6) => p.to_string().into(),
        _ => Value::NullS,
    };
    let created = fmt_ts(when - Duration::minutes(rng.random_range(2..600)));
    rows.wx_users.push(vec![
        uid.into(),
        openid.into(),
        unionid,
        ph,
        Value::NullS, // the bound card number, if any, once the ids are global
        format!("微信用户{}", rng.random_range(1000..9999)).into(),
        created.clone().into(),
        created.clone().into(),
        consent_flag(&["wechat", &created], uid, 0.55, 0.85),
        consent_flag(&["push", &created], uid, 0.35, 0.80),
        created.into(),
    ]);
    if let Some(member) = card_of_member {
        rows.fill_last(Tab::WxUsers, 4, Embed::Card { member });
    }
}
