//! Steps 1–4 and 6–8: read each source table (incrementally where it grows), validate every row
//! at the edge, turn good rows into Arrow batches and bad ones into quarantine rows that name
//! the table, row, field and reason.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use c360_db::{get_f64, get_i64, get_text, Db, Value};
use c360_metastore::Metastore;
use c360_model::{fmt_ts, holiday, mask_str, parse_date, parse_ts, ts_micros, Daypart, Fen, Phone};
use c360_warehouse::arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Txn, Warehouse};
use chrono::{Datelike, NaiveDate};
use futures::TryStreamExt;
use indicatif::ProgressBar;

use crate::error::{EtlError, Result};

/// Facts carried between steps of one run.
#[derive(Default)]
pub struct Ctx {
    pub stores: HashSet<i64>,
    pub products: HashMap<i64, i64>,
    pub customers: u64,
    pub merged_keys: u64,
}

pub struct QRow {
    pub table: String,
    pub row_id: String,
    pub field: String,
    pub reason: String,
    pub value: Option<String>,
}

/// Rows that failed validation. Personal values are masked before they are kept.
pub struct Quarantine {
    run_id: i64,
    rows: Vec<QRow>,
}

impl Quarantine {
    pub fn new(run_id: i64) -> Self {
        Quarantine {
            run_id,
            rows: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// The checked row, or `None` with the refusal quarantined against `table`'s `row_id`.
    pub fn passed<T>(
        &mut self,
        table: &str,
        row_id: impl ToString,
        checked: std::result::Result<T, crate::rows::Refusal>,
    ) -> Option<T> {
        match checked {
            Ok(c) => Some(c),
            Err((field, reason)) => {
                self.add(table, row_id, field, reason, None);
                None
            }
        }
    }

    pub fn add(
        &mut self,
        table: &str,
        row_id: impl ToString,
        field: &str,
        reason: impl ToString,
        value: Option<&str>,
    ) {
        self.rows.push(QRow {
            table: table.into(),
            row_id: row_id.to_string(),
            field: field.into(),
            reason: reason.to_string(),
            value: value.map(mask_str),
        });
    }
    pub fn flush(&mut self, txn: &mut Txn) -> Result<()> {
        let month = chrono::Local::now().format("%Y-%m").to_string();
        let n = self.rows.len();
        let mut k = StringBuilder::new();
        let mut t = StringBuilder::new();
        let mut r = StringBuilder::new();
        let mut f = StringBuilder::new();
        let mut why = StringBuilder::new();
        let mut v = StringBuilder::new();
        let mut run = Int64Builder::new();
        let mut m = StringBuilder::new();
        for q in &self.rows {
            k.append_value(format!("{}:{}:{}", q.table, q.row_id, q.field));
            t.append_value(&q.table);
            r.append_value(&q.row_id);
            f.append_value(&q.field);
            why.append_value(&q.reason);
            v.append_option(q.value.as_deref());
            run.append_value(self.run_id);
            m.append_value(&month);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(k.finish()),
            Arc::new(t.finish()),
            Arc::new(r.finish()),
            Arc::new(f.finish()),
            Arc::new(why.finish()),
            Arc::new(v.finish()),
            Arc::new(run.finish()),
            Arc::new(m.finish()),
        ];
        let b = RecordBatch::try_new(tables::schema("quarantine"), cols)?;
        txn.upsert("quarantine", vec![b])?;
        tracing::info!(rows = n, "quarantine flushed");
        Ok(())
    }
}

fn src_err(table: &str) -> impl FnOnce(c360_db::DbError) -> EtlError + '_ {
    move |e| EtlError::Source {
        table: table.into(),
        reason: e.to_string(),
    }
}

fn sqlx_err(table: &str) -> impl FnOnce(sqlx::Error) -> EtlError + '_ {
    move |e| EtlError::Source {
        table: table.into(),
        reason: e.to_string(),
    }
}

fn date32(d: NaiveDate) -> i32 {
    // Arrow's Date32 is days since the epoch; every date c360 handles is in 1900..2200.
    c360_model::Day::of(d).0 as i32
}

fn tsb() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("+08:00")
}

fn watermark(txn: &Txn, key: &str) -> String {
    txn.base().watermarks.get(key).cloned().unwrap_or_default()
}

/// Streams `sql` with one bound text parameter (the watermark).
async fn stream_rows(
    db: &Db,
    table: &str,
    sql: &str,
    wm: &str,
    mut each: impl FnMut(&sqlx::any::AnyRow),
) -> Result<()> {
    // The first load reads whole tables in key order (a plain scan); later loads use the
    // watermark index.
    let initial = wm.is_empty() || wm == "0";
    let q = match sql.split_once(" WHERE ") {
        Some((head, tail)) if initial => {
            let order = tail.find(" ORDER BY ").map(|i| &tail[i..]).unwrap_or("");
            c360_db::query(format!("{head}{order}"))
        }
        _ => c360_db::query(sql.to_string()).bind(wm.to_string()),
    };
    let mut s = q.fetch(&db.pool);
    while let Some(row) = s.try_next().await.map_err(sqlx_err(table))? {
        each(&row);
    }
    Ok(())
}

/// A required field of a row, or a quarantine entry naming the table, row, field and reason.
fn required<T>(
    q: &mut Quarantine,
    table: &str,
    id: i64,
    field: &str,
    v: Option<T>,
    reason: &str,
) -> Option<T> {
    if v.is_none() {
        q.add(table, id, field, reason, None);
    }
    v
}

/// Step 1: cities and stores (small; reloaded whole every run).
pub async fn dimensions(
    pos: &Db,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &mut Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let cities = pos
        .fetch_all("SELECT city_id, name, province, tier, lat, lon FROM cities ORDER BY city_id")
        .await
        .map_err(src_err("cities"))?;
    let mut city: HashMap<i64, (String, i64)> = HashMap::new();
    let (mut id, mut name, mut prov, mut tier, mut lat, mut lon) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    for r in &cities {
        let Some(cid) = get_i64(r, "city_id") else {
            continue;
        };
        let Some(n) = get_text(r, "name").filter(|s| !s.trim().is_empty()) else {
            q.add("cities", cid, "name", "missing city name", None);
            continue;
        };
        let t = get_i64(r, "tier");
        city.insert(cid, (n.clone(), t.unwrap_or(0)));
        id.append_value(cid);
        name.append_value(&n);
        prov.append_option(get_text(r, "province"));
        tier.append_option(t);
        lat.append_option(get_f64(r, "lat"));
        lon.append_option(get_f64(r, "lon"));
    }
    let b = RecordBatch::try_new(
        tables::schema("cities"),
        vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(prov.finish()),
            Arc::new(tier.finish()),
            Arc::new(lat.finish()),
            Arc::new(lon.finish()),
        ],
    )?;
    txn.replace("cities", vec![b])?;

    let stores = pos
        .fetch_all("SELECT store_id, store_code, name, city_id, store_type, lat, lon, open_date, status FROM stores ORDER BY store_id")
        .await
        .map_err(src_err("stores"))?;
    let mut sid = Int64Builder::new();
    let mut code = StringBuilder::new();
    let mut sname = StringBuilder::new();
    let mut scity = Int64Builder::new();
    let mut cname = StringBuilder::new();
    let mut stier = Int64Builder::new();
    let mut stype = StringBuilder::new();
    let mut slat = Float64Builder::new();
    let mut slon = Float64Builder::new();
    let mut open = Date32Builder::new();
    let mut status = StringBuilder::new();
    let mut loaded = 0u64;
    for r in &stores {
        let Some(s) = get_i64(r, "store_id") else {
            continue;
        };
        let c = get_i64(r, "city_id");
        let Some((cn, ct)) = c.and_then(|c| city.get(&c)).cloned() else {
            q.add(
                "stores",
                s,
                "city_id",
                format!("unknown city {:?}", c),
                None,
            );
            continue;
        };
        let la = get_f64(r, "lat").filter(|v| (3.0..54.0).contains(v));
        let lo = get_f64(r, "lon").filter(|v| (73.0..136.0).contains(v));
        if la.is_none() || lo.is_none() {
            q.add(
                "stores",
                s,
                "lat/lon",
                "coordinates missing or outside China; kept without location",
                None,
            );
        }
        let od = match get_text(r, "open_date").map(|t| parse_date(&t)) {
            Some(Ok(d)) => Some(date32(d)),
            Some(Err(e)) => {
                q.add("stores", s, "open_date", e, None);
                None
            }
            None => None,
        };
        ctx.stores.insert(s);
        sid.append_value(s);
        code.append_value(get_text(r, "store_code").unwrap_or_else(|| format!("S{s:04}")));
        sname.append_option(get_text(r, "name"));
        scity.append_option(c);
        cname.append_value(cn);
        stier.append_value(ct);
        stype.append_option(get_text(r, "store_type"));
        slat.append_option(la);
        slon.append_option(lo);
        open.append_option(od);
        status.append_option(get_text(r, "status"));
        loaded += 1;
    }
    pb.set_position(loaded);
    let b = RecordBatch::try_new(
        tables::schema("stores"),
        vec![
            Arc::new(sid.finish()),
            Arc::new(code.finish()),
            Arc::new(sname.finish()),
            Arc::new(scity.finish()),
            Arc::new(cname.finish()),
            Arc::new(stier.finish()),
            Arc::new(stype.finish()),
            Arc::new(slat.finish()),
            Arc::new(slon.finish()),
            Arc::new(open.finish()),
            Arc::new(status.finish()),
        ],
    )?;
    txn.replace("stores", vec![b])?;
    Ok((
        (cities.len() + stores.len()) as u64,
        loaded + city.len() as u64,
    ))
}

/// Step 2: the menu.
pub async fn products(
    pos: &Db,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &mut Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let rows = pos
        .fetch_all("SELECT product_id, sku, name, category, price_fen, launched FROM products ORDER BY product_id")
        .await
        .map_err(src_err("products"))?;
    let (mut id, mut sku, mut name, mut cat, mut price, mut launched) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Date32Builder::new(),
    );
    for r in &rows {
        let Some(p) = get_i64(r, "product_id") else {
            continue;
        };
        let pr = match get_text(r, "price_fen").map(|t| Fen::parse(&t)) {
            Some(Ok(f)) if f.0 > 0 => f.0,
            other => {
                q.add(
                    "products",
                    p,
                    "price_fen",
                    format!(
                        "price must be a positive number of fen, got {:?}",
                        other.map(|o| o.ok())
                    ),
                    None,
                );
                continue;
            }
        };
        let c = get_text(r, "category").unwrap_or_default();
        if !["热狗", "小食", "饮品", "套餐"].contains(&c.as_str()) {
            q.add(
                "products",
                p,
                "category",
                format!("unknown category '{c}', kept"),
                None,
            );
        }
        ctx.products.insert(p, pr);
        id.append_value(p);
        sku.append_value(get_text(r, "sku").unwrap_or_else(|| format!("P{p}")));
        name.append_option(get_text(r, "name"));
        cat.append_value(c);
        price.append_value(pr);
        launched.append_option(
            get_text(r, "launched")
                .and_then(|t| parse_date(&t).ok())
                .map(date32),
        );
    }
    pb.set_position(ctx.products.len() as u64);
    let b = RecordBatch::try_new(
        tables::schema("products"),
        vec![
            Arc::new(id.finish()),
            Arc::new(sku.finish()),
            Arc::new(name.finish()),
            Arc::new(cat.finish()),
            Arc::new(price.finish()),
            Arc::new(launched.finish()),
        ],
    )?;
    txn.replace("products", vec![b])?;
    Ok((rows.len() as u64, ctx.products.len() as u64))
}

fn mask_name(n: &str) -> String {
    let mut c = n.trim().chars();
    match c.next() {
        Some(first) => format!("{first}{}", "*".repeat(c.count().max(1))),
        None => String::new(),
    }
}

pub const NODE_COLS: &[&str] = &[
    "source_key",
    "phone_hash",
    "phone_verified",
    "unionid_hash",
    "card_no",
    "bound_card_no",
    "phone_masked",
    "name_masked",
    "gender",
    "birth_year",
    "register_store_id",
    "created_at",
    "updated_run",
];

/// Step 3: POS members become identity nodes `M:<member_id>`.
pub async fn pos_members(
    salt: &c360_model::pii::PiiKey,
    pos: &Db,
    meta: &Metastore,
    txn: &mut Txn,
    q: &mut Quarantine,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let wm = watermark(txn, "pos.members");
    let sql = format!(
        "SELECT member_id, card_no, phone, phone_verified, name, gender, birthday, register_store_id, created_at, updated_at \
         FROM members WHERE updated_at >= {} ORDER BY member_id",
        pos.backend.ph(1)
    );
    let mut nodes: Vec<Vec<Value>> = Vec::new();
    let mut max_wm = wm.clone();
    let mut n = 0u64;
    stream_rows(pos, "members", &sql, &wm, |r| {
        n += 1;
        let Some(mid) = get_i64(r, "member_id") else {
            return;
        };
        if let Some(u) = get_text(r, "updated_at") {
            if u > max_wm {
                max_wm = u;
            }
        }
        let raw = get_text(r, "phone").unwrap_or_default();
        let (ph_hash, ph_mask) = match Phone::parse(&raw) {
            Ok(p) if p.is_placeholder() => {
                q.add(
                    "members",
                    mid,
                    "phone",
                    "placeholder number: kept masked, never used to link",
                    Some(&raw),
                );
                (Value::NullS, Value::from(p.masked()))
            }
            Ok(p) => (Value::from(p.hashed(salt)), Value::from(p.masked())),
            Err(e) => {
                q.add("members", mid, "phone", e, Some(&raw));
                (Value::NullS, Value::NullS)
            }
        };
        let created = match get_text(r, "created_at").map(|t| parse_ts(&t)) {
            Some(Ok(t)) => Value::from(fmt_ts(t)),
            Some(Err(e)) => {
                q.add("members", mid, "created_at", e, None);
                Value::NullS
            }
            None => Value::NullS,
        };
        let birth_year = get_text(r, "birthday")
            .and_then(|b| parse_date(&b).ok())
            .map(|d| d.year() as i64);
        nodes.push(vec![
            format!("M:{mid}").into(),
            ph_hash,
            get_i64(r, "phone_verified").unwrap_or(0).into(),
            Value::NullS,
            get_text(r, "card_no").into(),
            Value::NullS,
            ph_mask,
            get_text(r, "name").map(|n| mask_name(&n)).into(),
            get_text(r, "gender").into(),
            birth_year.into(),
            get_i64(r, "register_store_id").into(),
            created,
            run_id.into(),
        ]);
        pb.inc(1);
    })
    .await?;
    let loaded = nodes.len() as u64;
    meta.db
        .upsert_rows("identity_nodes", NODE_COLS, "source_key", &nodes)
        .await?;
    txn.set_watermark("pos.members", max_wm);
    Ok((n, loaded))
}

/// Step 4: mini-program users become identity nodes `U:<user_id>`.
pub async fn wx_users(
    salt: &c360_model::pii::PiiKey,
    wx: &Db,
    meta: &Metastore,
    txn: &mut Txn,
    q: &mut Quarantine,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let wm = watermark(txn, "wx.users");
    let sql = format!(
        "SELECT user_id, openid, unionid, phone, member_card_no, created_at, updated_at FROM wx_users \
         WHERE updated_at >= {} ORDER BY user_id",
        wx.backend.ph(1)
    );
    let mut nodes: Vec<Vec<Value>> = Vec::new();
    let mut max_wm = wm.clone();
    let mut n = 0u64;
    stream_rows(wx, "wx_users", &sql, &wm, |r| {
        n += 1;
        let Some(uid) = get_i64(r, "user_id") else {
            return;
        };
        if let Some(u) = get_text(r, "updated_at") {
            if u > max_wm {
                max_wm = u;
            }
        }
        if get_text(r, "openid").filter(|o| o.len() >= 10).is_none() {
            q.add(
                "wx_users",
                uid,
                "openid",
                "missing or short openid: user not loaded",
                None,
            );
            return;
        }
        let raw = get_text(r, "phone").unwrap_or_default();
        let (ph_hash, ph_mask) = if raw.trim().is_empty() {
            (Value::NullS, Value::NullS)
        } else {
            match Phone::parse(&raw) {
                Ok(p) if p.is_placeholder() => {
                    q.add(
                        "wx_users",
                        uid,
                        "phone",
                        "placeholder number: never used to link",
                        Some(&raw),
                    );
                    (Value::NullS, Value::from(p.masked()))
                }
                Ok(p) => (Value::from(p.hashed(salt)), Value::from(p.masked())),
                Err(e) => {
                    q.add("wx_users", uid, "phone", e, Some(&raw));
                    (Value::NullS, Value::NullS)
                }
            }
        };
        let unionid = get_text(r, "unionid")
            .filter(|u| !u.trim().is_empty())
            .map(|u| salt.hash(u.trim()));
        let created = get_text(r, "created_at")
            .and_then(|t| parse_ts(&t).ok())
            .map(fmt_ts);
        nodes.push(vec![
            format!("U:{uid}").into(),
            ph_hash,
            1i64.into(), // WeChat getPhoneNumber numbers are verified by WeChat
            unionid.into(),
            Value::NullS,
            get_text(r, "member_card_no")
                .filter(|c| !c.trim().is_empty())
                .into(),
            ph_mask,
            Value::NullS,
            Value::NullS,
            Value::NullI,
            Value::NullI,
            created.into(),
            run_id.into(),
        ]);
        pb.inc(1);
    })
    .await?;
    let loaded = nodes.len() as u64;
    meta.db
        .upsert_rows("identity_nodes", NODE_COLS, "source_key", &nodes)
        .await?;
    txn.set_watermark("wx.users", max_wm);
    Ok((n, loaded))
}

struct OrderCols {
    key: StringBuilder,
    source: StringBuilder,
    sid: Int64Builder,
    no: StringBuilder,
    store: Int64Builder,
    cust: StringBuilder,
    time: TimestampMicrosecondBuilder,
    month: StringBuilder,
    total: Int64Builder,
    disc: Int64Builder,
    channel: StringBuilder,
    pay: StringBuilder,
    status: StringBuilder,
    coupon: StringBuilder,
    daypart: StringBuilder,
    holiday: StringBuilder,
    rows: usize,
}

impl OrderCols {
    fn new() -> Self {
        OrderCols {
            key: StringBuilder::new(),
            source: StringBuilder::new(),
            sid: Int64Builder::new(),
            no: StringBuilder::new(),
            store: Int64Builder::new(),
            cust: StringBuilder::new(),
            time: tsb(),
            month: StringBuilder::new(),
            total: Int64Builder::new(),
            disc: Int64Builder::new(),
            channel: StringBuilder::new(),
            pay: StringBuilder::new(),
            status: StringBuilder::new(),
            coupon: StringBuilder::new(),
            daypart: StringBuilder::new(),
            holiday: StringBuilder::new(),
            rows: 0,
        }
    }
    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            tables::schema("fact_orders"),
            vec![
                Arc::new(self.key.finish()),
                Arc::new(self.source.finish()),
                Arc::new(self.sid.finish()),
                Arc::new(self.no.finish()),
                Arc::new(self.store.finish()),
                Arc::new(self.cust.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.month.finish()),
                Arc::new(self.total.finish()),
                Arc::new(self.disc.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.pay.finish()),
                Arc::new(self.status.finish()),
                Arc::new(self.coupon.finish()),
                Arc::new(self.daypart.finish()),
                Arc::new(self.holiday.finish()),
            ],
        )?)
    }
}

/// One source's order tables, described for the shared loader.
struct OrderSource<'a> {
    db: &'a Db,
    source: &'static str,
    prefix: &'static str,
    orders: &'static str,
    items: &'static str,
    cust_col: &'static str,
    cust_prefix: &'static str,
    sql: String,
}

/// Step 6: orders and their items from both systems.
pub async fn orders(
    pos: &Db,
    wx: &Db,
    wh: &Warehouse,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let pos_coupon = if pos
        .fetch_all("SELECT coupon_code FROM orders WHERE 1 = 0")
        .await
        .is_ok()
    {
        "coupon_code"
    } else {
        "NULL"
    };
    let sources = [
        OrderSource {
            db: pos,
            source: "pos",
            prefix: "P",
            orders: "orders",
            items: "order_items",
            cust_col: "member_id",
            cust_prefix: "M",
            // Coupons redeemed at the till (older POS versions have no such column).
            sql: format!(
                "SELECT order_id, order_no, store_id, member_id, order_time, total_fen, discount_fen, pay_method, \
                  'pos' AS channel, status, {} AS coupon_code, updated_at FROM orders",
                pos_coupon
            ),
        },
        OrderSource {
            db: wx,
            source: "wx",
            prefix: "W",
            orders: "wx_orders",
            items: "wx_order_items",
            cust_col: "user_id",
            cust_prefix: "U",
            sql: "SELECT order_id, order_no, store_id, user_id, order_time, total_fen, discount_fen, 'wechat_pay' AS pay_method, \
                  channel, status, coupon_code, updated_at FROM wx_orders"
                .into(),
        },
    ];
    let mut cols = OrderCols::new();
    let mut items_batches = Vec::new();
    let mut extracted = 0u64;
    let mut loaded_items = 0u64;
    for s in &sources {
        let wm_key = format!("{}.{}", s.source, s.orders);
        let wm = watermark(txn, &wm_key);
        let sql = format!(
            "{} WHERE updated_at >= {} ORDER BY order_id",
            s.sql,
            s.db.backend.ph(1)
        );
        let mut max_wm = wm.clone();
        // order_key -> month, for the items of this batch.
        let mut month_of: HashMap<i64, String> = HashMap::new();
        let mut seen_no: HashMap<(i64, String), i64> = HashMap::new();
        stream_rows(s.db, s.orders, &sql, &wm, |r| {
            extracted += 1;
            pb.inc(1);
            let Some(oid) = get_i64(r, "order_id") else {
                return;
            };
            if let Some(u) = get_text(r, "updated_at") {
                if u > max_wm {
                    max_wm = u;
                }
            }
            let raw = crate::rows::SourceOrder {
                status: get_text(r, "status"),
                order_time: get_text(r, "order_time"),
                store_id: get_i64(r, "store_id"),
                total_fen: get_text(r, "total_fen"),
            };
            let Some(crate::rows::CheckedOrder {
                status,
                time: t,
                store,
                total_fen: total,
            }) = q.passed(s.orders, oid, crate::rows::check_order(&raw, &ctx.stores))
            else {
                return;
            };
            let no = get_text(r, "order_no").unwrap_or_default();
            if !no.is_empty() {
                if let Some(first) = seen_no.get(&(store, no.clone())) {
                    q.add(
                        s.orders,
                        oid,
                        "order_no",
                        format!(
                            "duplicate of {}:{first} (same store and order_no)",
                            s.prefix
                        ),
                        None,
                    );
                    return;
                }
                seen_no.insert((store, no.clone()), oid);
            }
            // A customer id not yet known (late-arriving member/user) is kept: the `orders`
            // view resolves it once the id arrives, and the quality report measures the gap.
            let cust = get_i64(r, s.cust_col).map(|c| format!("{}:{c}", s.cust_prefix));
            let month = t.format("%Y-%m").to_string();
            month_of.insert(oid, month.clone());
            cols.key.append_value(format!("{}:{oid}", s.prefix));
            cols.source.append_value(s.source);
            cols.sid.append_value(oid);
            cols.no.append_value(&no);
            cols.store.append_value(store);
            cols.cust.append_option(cust);
            cols.time.append_value(ts_micros(t));
            cols.month.append_value(&month);
            cols.total.append_value(total);
            cols.disc
                .append_value(get_i64(r, "discount_fen").unwrap_or(0).max(0));
            cols.channel
                .append_value(get_text(r, "channel").unwrap_or_else(|| s.source.into()));
            cols.pay.append_option(get_text(r, "pay_method"));
            cols.status.append_value(&status);
            cols.coupon.append_option(get_text(r, "coupon_code"));
            cols.daypart.append_value(Daypart::of(t).code());
            cols.holiday.append_option(holiday(t.date()));
            cols.rows += 1;
        })
        .await?;
        txn.set_watermark(&wm_key, max_wm);
        let (b, n) = load_items(s, txn, q, ctx, wh, &month_of, pb, &mut extracted).await?;
        loaded_items += n;
        items_batches.push(b);
    }
    let loaded_orders = cols.rows as u64;
    let ob = cols.finish()?;
    txn.upsert("fact_orders", vec![ob])?;
    txn.upsert("fact_order_items", items_batches)?;
    Ok((extracted, loaded_orders + loaded_items))
}

#[allow(clippy::too_many_arguments)]
async fn load_items(
    s: &OrderSource<'_>,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &Ctx,
    wh: &Warehouse,
    month_of: &HashMap<i64, String>,
    pb: &ProgressBar,
    extracted: &mut u64,
) -> Result<(RecordBatch, u64)> {
    let wm_key = format!("{}.{}", s.source, s.items);
    let wm = watermark(txn, &wm_key);
    let sql = format!(
        "SELECT item_id, order_id, product_id, qty, unit_price_fen, updated_at FROM {} WHERE updated_at >= {} ORDER BY item_id",
        s.items,
        s.db.backend.ph(1)
    );
    let mut max_wm = wm.clone();
    struct Item {
        id: i64,
        order: i64,
        product: i64,
        qty: i64,
        price: i64,
    }
    let mut good: Vec<Item> = Vec::new();
    stream_rows(s.db, s.items, &sql, &wm, |r| {
        *extracted += 1;
        pb.inc(1);
        let Some(id) = get_i64(r, "item_id") else {
            return;
        };
        if let Some(u) = get_text(r, "updated_at") {
            if u > max_wm {
                max_wm = u;
            }
        }
        let raw = crate::rows::SourceItem {
            order_id: get_i64(r, "order_id"),
            product_id: get_i64(r, "product_id"),
            qty: get_i64(r, "qty"),
            unit_price_fen: get_i64(r, "unit_price_fen"),
        };
        let Some(crate::rows::CheckedItem {
            order,
            product,
            qty,
            price,
        }) = q.passed(s.items, id, crate::rows::check_item(&raw, &ctx.products))
        else {
            return;
        };
        good.push(Item {
            id,
            order,
            product,
            qty,
            price,
        });
    })
    .await?;
    txn.set_watermark(&wm_key, max_wm);
    // Items whose order is not in this batch: look the order up in the warehouse snapshot.
    let missing: HashSet<i64> = good
        .iter()
        .filter(|i| !month_of.contains_key(&i.order))
        .map(|i| i.order)
        .collect();
    let mut known: HashMap<i64, String> = HashMap::new();
    if !missing.is_empty() {
        let sess = c360_warehouse::Session::at(wh, txn.base().clone()).await?;
        let ids: Vec<String> = missing
            .iter()
            .map(|i| format!("{}:{i}", s.prefix))
            .collect();
        for chunk in ids.chunks(5000) {
            let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT source_order_id, month FROM fact_orders WHERE order_key IN ({})",
                marks.join(",")
            );
            let params = chunk
                .iter()
                .map(|k| c360_warehouse::query::ScalarValue::Utf8(Some(k.clone())))
                .collect();
            for b in sess.query_with(&sql, params).await? {
                let idc = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<c360_warehouse::arrow::array::Int64Array>()
                    .expect("source_order_id is Int64");
                let mc = c360_warehouse::manifest::str_col(&b, "month");
                for i in 0..b.num_rows() {
                    known.insert(idc.value(i), mc.value(i).to_string());
                }
            }
        }
    }
    let (mut key, mut okey, mut prod, mut qty, mut price, mut amount, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
    );
    let mut n = 0u64;
    for it in good {
        let Some(m) = month_of.get(&it.order).or_else(|| known.get(&it.order)) else {
            q.add(
                s.items,
                it.id,
                "order_id",
                format!(
                    "order {}:{} not loaded (missing or quarantined)",
                    s.prefix, it.order
                ),
                None,
            );
            continue;
        };
        key.append_value(format!("{}:{}", s.prefix, it.id));
        okey.append_value(format!("{}:{}", s.prefix, it.order));
        prod.append_value(it.product);
        qty.append_value(it.qty);
        price.append_value(it.price);
        amount.append_value(it.price * it.qty);
        month.append_value(m);
        n += 1;
    }
    let b = RecordBatch::try_new(
        tables::schema("fact_order_items"),
        vec![
            Arc::new(key.finish()),
            Arc::new(okey.finish()),
            Arc::new(prod.finish()),
            Arc::new(qty.finish()),
            Arc::new(price.finish()),
            Arc::new(amount.finish()),
            Arc::new(month.finish()),
        ],
    )?;
    Ok((b, n))
}

/// Rounds a coordinate to 0.01° (about 1 km): location is sensitive and kept coarse.
fn coarse(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
        .map(|x| (x * 100.0).round() / 100.0)
}

fn id_watermark(txn: &Txn, key: &str) -> i64 {
    txn.base()
        .watermarks
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Rows of `customer_behavior_tracks_raw`, whichever way the events came in.
struct Tracks {
    key: StringBuilder,
    cust: StringBuilder,
    sess: StringBuilder,
    act: StringBuilder,
    page: StringBuilder,
    time: TimestampMicrosecondBuilder,
    dev: StringBuilder,
    lat: Float64Builder,
    lon: Float64Builder,
    month: StringBuilder,
}

impl Default for Tracks {
    fn default() -> Self {
        Tracks {
            key: StringBuilder::new(),
            cust: StringBuilder::new(),
            sess: StringBuilder::new(),
            act: StringBuilder::new(),
            page: StringBuilder::new(),
            time: tsb(),
            dev: StringBuilder::new(),
            lat: Float64Builder::new(),
            lon: Float64Builder::new(),
            month: StringBuilder::new(),
        }
    }
}

impl Tracks {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        key: String,
        customer_key: String,
        session: Option<String>,
        action: &str,
        page: Option<String>,
        t: chrono::NaiveDateTime,
        device: Option<String>,
        (lat, lon): (Option<f64>, Option<f64>),
    ) {
        self.key.append_value(key);
        self.cust.append_value(customer_key);
        self.sess.append_option(session);
        self.act.append_value(action);
        self.page.append_option(page);
        self.time.append_value(ts_micros(t));
        self.dev.append_option(device);
        self.lat.append_option(lat);
        self.lon.append_option(lon);
        self.month.append_value(t.format("%Y-%m").to_string());
    }

    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            tables::schema("customer_behavior_tracks_raw"),
            vec![
                Arc::new(self.key.finish()),
                Arc::new(self.cust.finish()),
                Arc::new(self.sess.finish()),
                Arc::new(self.act.finish()),
                Arc::new(self.page.finish()),
                Arc::new(self.time.finish()),
                Arc::new(self.dev.finish()),
                Arc::new(self.lat.finish()),
                Arc::new(self.lon.finish()),
                Arc::new(self.month.finish()),
            ],
        )?)
    }
}

/// Step 7: page events from the mini-program (append-only; watermark is the last event id).
pub async fn events(
    wx: &Db,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let wm = id_watermark(txn, "wx.wx_events");
    let sql = format!(
        "SELECT event_id, user_id, session_id, event_type, page, event_time, device, lat, lon FROM wx_events \
         WHERE event_id > CAST({} AS BIGINT) ORDER BY event_id",
        wx.backend.ph(1)
    );
    let sql = if wx.backend == c360_db::Backend::MySql {
        sql.replace("AS BIGINT", "AS SIGNED")
    } else {
        sql
    };
    let mut tracks = Tracks::default();
    let mut n = 0u64;
    let mut loaded = 0u64;
    let mut max_id = wm;
    stream_rows(wx, "wx_events", &sql, &wm.to_string(), |r| {
        n += 1;
        pb.inc(1);
        let Some(id) = get_i64(r, "event_id") else {
            return;
        };
        max_id = max_id.max(id);
        let user = get_i64(r, "user_id").map(|u| format!("U:{u}"));
        let Some(ck) = required(q, "wx_events", id, "user_id", user, "missing user") else {
            return;
        };
        let time_v = get_text(r, "event_time").and_then(|t| parse_ts(&t).ok());
        let Some(t) = required(
            q,
            "wx_events",
            id,
            "event_time",
            time_v,
            "missing or malformed",
        ) else {
            return;
        };
        let Some(a) = get_text(r, "event_type").filter(|a| !a.is_empty()) else {
            q.add("wx_events", id, "event_type", "missing", None);
            return;
        };
        tracks.push(
            format!("E:{id}"),
            ck,
            get_text(r, "session_id"),
            &a,
            get_text(r, "page"),
            t,
            get_text(r, "device"),
            (coarse(get_f64(r, "lat")), coarse(get_f64(r, "lon"))),
        );
        loaded += 1;
    })
    .await?;
    txn.upsert("customer_behavior_tracks_raw", vec![tracks.finish()?])?;
    txn.set_watermark("wx.wx_events", max_id.to_string());
    Ok((n, loaded))
}

/// Step 7, second half: page events posted to the server (`POST /events`, kept in the
/// metastore's `live_events`) join the tracks, keyed by their event id so a rerun adds nothing
/// twice. They name the resolved customer id (key `C:{id}`), not a source id. Anonymous events
/// (no customer) are not tracks and are skipped.
pub async fn live_events(meta: &Db, txn: &mut Txn, q: &mut Quarantine) -> Result<(u64, u64)> {
    if meta
        .fetch_all("SELECT event_id FROM live_events WHERE 1 = 0")
        .await
        .is_err()
    {
        // No server has run against this metastore yet.
        return Ok((0, 0));
    }
    let rows = meta
        .fetch_all(
            "SELECT event_id, customer_id, session_id, action_type, page, event_time, device FROM live_events ORDER BY event_id",
        )
        .await?;
    let mut tracks = Tracks::default();
    let mut loaded = 0u64;
    for r in &rows {
        let id = get_text(r, "event_id").unwrap_or_default();
        let Some(c) = get_i64(r, "customer_id") else {
            // An anonymous visitor's event belongs to no customer: not a track.
            continue;
        };
        let Some(t) = get_text(r, "event_time").and_then(|t| parse_ts(&t).ok()) else {
            q.add(
                "live_events",
                &id,
                "event_time",
                "missing or malformed",
                None,
            );
            continue;
        };
        tracks.push(
            format!("L:{id}"),
            format!("C:{c}"),
            get_text(r, "session_id"),
            &get_text(r, "action_type").unwrap_or_default(),
            get_text(r, "page"),
            t,
            get_text(r, "device"),
            (None, None),
        );
        loaded += 1;
    }
    txn.upsert("customer_behavior_tracks_raw", vec![tracks.finish()?])?;
    Ok((rows.len() as u64, loaded))
}

/// Masks phone numbers (however typed), e-mail addresses, WeChat ids and openid-like tokens in
/// free text (see `c360_model::pii::scrub`).
pub fn scrub_text(s: &str) -> String {
    c360_model::pii::scrub(s)
}

/// Step 8: reviews (raw text kept as untrusted input, numbers scrubbed) and shares.
pub async fn reviews_and_shares(
    wx: &Db,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let cast = if wx.backend == c360_db::Backend::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let wm = id_watermark(txn, "wx.wx_reviews");
    let sql = format!(
        "SELECT review_id, user_id, order_id, store_id, rating, content, created_at FROM wx_reviews \
         WHERE review_id > CAST({} AS {cast}) ORDER BY review_id",
        wx.backend.ph(1)
    );
    let (
        mut key,
        mut cust,
        mut ord,
        mut store,
        mut rating,
        mut content,
        mut at,
        mut sent,
        mut month,
    ) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
        tsb(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    let mut n = 0u64;
    let mut loaded = 0u64;
    let mut max_id = wm;
    stream_rows(wx, "wx_reviews", &sql, &wm.to_string(), |r| {
        n += 1;
        pb.inc(1);
        let Some(id) = get_i64(r, "review_id") else {
            return;
        };
        max_id = max_id.max(id);
        let user = get_i64(r, "user_id").map(|u| format!("U:{u}"));
        let Some(ck) = required(q, "wx_reviews", id, "user_id", user, "missing user") else {
            return;
        };
        let Some(rt) = get_i64(r, "rating").filter(|x| (1..=5).contains(x)) else {
            q.add("wx_reviews", id, "rating", "missing or outside 1..=5", None);
            return;
        };
        let time_v = get_text(r, "created_at").and_then(|t| parse_ts(&t).ok());
        let Some(t) = required(
            q,
            "wx_reviews",
            id,
            "created_at",
            time_v,
            "missing or malformed",
        ) else {
            return;
        };
        let text = get_text(r, "content").filter(|c| !c.trim().is_empty());
        if text.is_none() {
            q.add(
                "wx_reviews",
                id,
                "content",
                "empty review text: rating kept",
                None,
            );
        }
        key.append_value(format!("R:{id}"));
        cust.append_value(ck);
        ord.append_option(get_i64(r, "order_id").map(|o| format!("W:{o}")));
        store.append_option(get_i64(r, "store_id"));
        rating.append_value(rt);
        content.append_option(text.map(|c| scrub_text(&c)));
        at.append_value(ts_micros(t));
        sent.append_null();
        month.append_value(t.format("%Y-%m").to_string());
        loaded += 1;
    })
    .await?;
    let b = RecordBatch::try_new(
        tables::schema("customer_emotion_raw"),
        vec![
            Arc::new(key.finish()),
            Arc::new(cust.finish()),
            Arc::new(ord.finish()),
            Arc::new(store.finish()),
            Arc::new(rating.finish()),
            Arc::new(content.finish()),
            Arc::new(at.finish()),
            Arc::new(sent.finish()),
            Arc::new(month.finish()),
        ],
    )?;
    txn.upsert("customer_emotion_raw", vec![b])?;
    txn.set_watermark("wx.wx_reviews", max_id.to_string());

    let wm = id_watermark(txn, "wx.wx_shares");
    let sql = format!(
        "SELECT share_id, user_id, to_user_id, page, campaign, share_time FROM wx_shares \
         WHERE share_id > CAST({} AS {cast}) ORDER BY share_id",
        wx.backend.ph(1)
    );
    let (mut key, mut from, mut to, mut page, mut camp, mut at, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        tsb(),
        StringBuilder::new(),
    );
    let mut max_id = wm;
    stream_rows(wx, "wx_shares", &sql, &wm.to_string(), |r| {
        n += 1;
        pb.inc(1);
        let Some(id) = get_i64(r, "share_id") else {
            return;
        };
        max_id = max_id.max(id);
        let user = get_i64(r, "user_id").map(|u| format!("U:{u}"));
        let Some(ck) = required(q, "wx_shares", id, "user_id", user, "missing user") else {
            return;
        };
        let time_v = get_text(r, "share_time").and_then(|t| parse_ts(&t).ok());
        let Some(t) = required(
            q,
            "wx_shares",
            id,
            "share_time",
            time_v,
            "missing or malformed",
        ) else {
            return;
        };
        let tk = get_i64(r, "to_user_id").map(|u| format!("U:{u}"));
        key.append_value(format!("H:{id}"));
        from.append_value(ck);
        to.append_option(tk);
        page.append_option(get_text(r, "page"));
        camp.append_option(get_text(r, "campaign"));
        at.append_value(ts_micros(t));
        month.append_value(t.format("%Y-%m").to_string());
        loaded += 1;
    })
    .await?;
    let b = RecordBatch::try_new(
        tables::schema("customer_shares_raw"),
        vec![
            Arc::new(key.finish()),
            Arc::new(from.finish()),
            Arc::new(to.finish()),
            Arc::new(page.finish()),
            Arc::new(camp.finish()),
            Arc::new(at.finish()),
            Arc::new(month.finish()),
        ],
    )?;
    txn.upsert("customer_shares_raw", vec![b])?;
    txn.set_watermark("wx.wx_shares", max_id.to_string());
    let (tn, tl) = ties(wx, txn, q, pb).await?;
    let (sn, sl) = tickets(wx, txn, q, pb).await?;
    Ok((n + tn + sn, loaded + tl + sl))
}

/// Customer-service tickets from the mini-program, with the cause an agent recorded when one
/// was closed. Re-read from the ticket id watermark minus the still-open ones would be exact;
/// tickets change status, so every run re-reads them by `updated_at` and upserts by key.
/// Sources without the table are skipped.
async fn tickets(
    wx: &Db,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    const T: &str = "wx_service_tickets";
    if wx
        .fetch_all(&format!("SELECT ticket_id FROM {T} WHERE 1 = 0"))
        .await
        .is_err()
    {
        tracing::info!(table = T, "source has no such table; skipped");
        return Ok((0, 0));
    }
    let wm_key = format!("wx.{T}");
    let wm = watermark(txn, &wm_key);
    let sql = format!(
        "SELECT ticket_id, user_id, order_id, created_at, message, status, resolved_cause, updated_at \
         FROM {T} WHERE updated_at >= {} ORDER BY ticket_id",
        wx.backend.ph(1)
    );
    let (mut key, mut cust, mut ord, mut at, mut msg, mut status, mut cause, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        tsb(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut n, mut loaded) = (0u64, 0u64);
    let mut max_wm = wm.clone();
    stream_rows(wx, T, &sql, &wm, |r| {
        n += 1;
        pb.inc(1);
        let Some(id) = get_i64(r, "ticket_id") else {
            return;
        };
        if let Some(u) = get_text(r, "updated_at") {
            if u > max_wm {
                max_wm = u;
            }
        }
        let user = get_i64(r, "user_id").map(|u| format!("U:{u}"));
        let Some(ck) = required(q, T, id, "user_id", user, "missing user") else {
            return;
        };
        let time_v = get_text(r, "created_at").and_then(|t| parse_ts(&t).ok());
        let Some(t) = required(q, T, id, "created_at", time_v, "missing or malformed") else {
            return;
        };
        let st = get_text(r, "status").unwrap_or_default();
        if st != "open" && st != "closed" {
            q.add(T, id, "status", "not open or closed", Some(&st));
            return;
        }
        let c = get_text(r, "resolved_cause").filter(|c| !c.is_empty());
        if let Some(c) = &c {
            if !c360_analytics::service::CAUSES.contains(&c.as_str()) {
                q.add(T, id, "resolved_cause", "unknown cause", Some(c));
                return;
            }
        }
        key.append_value(format!("T:{id}"));
        cust.append_value(ck);
        ord.append_option(get_i64(r, "order_id").map(|o| format!("W:{o}")));
        at.append_value(ts_micros(t));
        msg.append_option(get_text(r, "message").map(|m| scrub_text(&m)));
        status.append_value(st);
        cause.append_option(c);
        month.append_value(t.format("%Y-%m").to_string());
        loaded += 1;
    })
    .await?;
    let b = RecordBatch::try_new(
        tables::schema("service_tickets_raw"),
        vec![
            Arc::new(key.finish()),
            Arc::new(cust.finish()),
            Arc::new(ord.finish()),
            Arc::new(at.finish()),
            Arc::new(msg.finish()),
            Arc::new(status.finish()),
            Arc::new(cause.finish()),
            Arc::new(month.finish()),
        ],
    )?;
    txn.upsert("service_tickets_raw", vec![b])?;
    txn.set_watermark(&wm_key, max_wm);
    Ok((n, loaded))
}

/// Social ties from the mini-program: who joined whose group order (拼单) and who paid for a
/// friend's order (代付). Sources without these tables (older mini-program versions) are skipped.
async fn ties(wx: &Db, txn: &mut Txn, q: &mut Quarantine, pb: &ProgressBar) -> Result<(u64, u64)> {
    let cast = if wx.backend == c360_db::Backend::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let (mut key, mut kind, mut cust, mut other, mut refid, mut at, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        tsb(),
        StringBuilder::new(),
    );
    let (mut n, mut loaded) = (0u64, 0u64);
    for (table, k, sql, when_col) in [
        (
            "wx_order_groups",
            "group",
            "SELECT g.row_id, g.group_id, g.order_id, g.user_id, g.joined_at, o.user_id AS owner_id \
             FROM wx_order_groups g LEFT JOIN wx_orders o ON o.order_id = g.order_id",
            "joined_at",
        ),
        (
            "wx_paid_by",
            "paid_by",
            "SELECT row_id, order_id, user_id, payer_user_id, paid_at FROM wx_paid_by",
            "paid_at",
        ),
    ] {
        if wx
            .fetch_all(&format!("SELECT row_id FROM {table} WHERE 1 = 0"))
            .await
            .is_err()
        {
            tracing::info!(table, "source has no such table; skipped");
            continue;
        }
        let wm_key = format!("wx.{table}");
        let wm = id_watermark(txn, &wm_key);
        let col = if k == "group" { "g.row_id" } else { "row_id" };
        let sql = format!(
            "{sql} WHERE {col} > CAST({} AS {cast}) ORDER BY {col}",
            wx.backend.ph(1)
        );
        let mut max_id = wm;
        stream_rows(wx, table, &sql, &wm.to_string(), |r| {
            n += 1;
            pb.inc(1);
            let Some(id) = get_i64(r, "row_id") else {
                return;
            };
            max_id = max_id.max(id);
            let (who, whom) = if k == "group" {
                // The member and the group's initiator (the owner of the group order).
                (get_i64(r, "user_id"), get_i64(r, "owner_id"))
            } else {
                (get_i64(r, "payer_user_id"), get_i64(r, "user_id"))
            };
            let field = if k == "group" { "user_id" } else { "payer_user_id" };
            let Some(ck) = required(q, table, id, field, who.map(|u| format!("U:{u}")), "missing user")
            else {
                return;
            };
            if k == "paid_by" && whom.is_none() {
                q.add(table, id, "user_id", "missing user", None);
                return;
            }
            let time_v = get_text(r, when_col).and_then(|t| parse_ts(&t).ok());
            let Some(t) = required(q, table, id, when_col, time_v, "missing or malformed") else {
                return;
            };
            let reference = if k == "group" {
                get_text(r, "group_id")
            } else {
                get_i64(r, "order_id").map(|o| format!("W:{o}"))
            };
            key.append_value(format!("{}:{id}", if k == "group" { "TG" } else { "TP" }));
            kind.append_value(k);
            cust.append_value(ck);
            other.append_option(whom.map(|u| format!("U:{u}")));
            refid.append_option(reference);
            at.append_value(ts_micros(t));
            month.append_value(t.format("%Y-%m").to_string());
            loaded += 1;
        })
        .await?;
        txn.set_watermark(&wm_key, max_id.to_string());
    }
    let b = RecordBatch::try_new(
        tables::schema("customer_ties_raw"),
        vec![
            Arc::new(key.finish()),
            Arc::new(kind.finish()),
            Arc::new(cust.finish()),
            Arc::new(other.finish()),
            Arc::new(refid.finish()),
            Arc::new(at.finish()),
            Arc::new(month.finish()),
        ],
    )?;
    txn.upsert("customer_ties_raw", vec![b])?;
    Ok((n, loaded))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scrubs_phone_numbers_from_text() {
        assert_eq!(
            super::scrub_text("打我电话13912345678谢谢"),
            "打我电话[号码已隐藏]谢谢"
        );
        assert_eq!(super::scrub_text("等了20分钟"), "等了20分钟");
    }
}
