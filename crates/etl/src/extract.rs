//! Steps 1–4 and 6–8: read each entity through the source contract (incrementally where it
//! grows), validate every row at the edge, turn good rows into Arrow batches and bad ones into
//! quarantine rows that name the entity, row, field and reason. An entity the contract declares
//! absent is skipped (what the warehouse already holds of it stays).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use c360_db::Value;
use c360_metastore::Metastore;
use c360_model::{fmt_ts, holiday, mask_str, ts_micros, Daypart, Phone};
use c360_warehouse::arrow::array::{
    Array, ArrayRef, Date32Builder, Float64Builder, Int64Array, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use c360_warehouse::arrow::record_batch::RecordBatch;
use c360_warehouse::{tables, Txn, Warehouse};
use chrono::{Datelike, NaiveDate};
use indicatif::ProgressBar;

use crate::contract::{self as c, Cell, Plan};
use crate::error::Result;
use crate::source::{Row, Sources};
use crate::spool::{Kind, Spool};

/// Facts carried between steps of one run.
#[derive(Default)]
pub struct Ctx {
    /// The stores orders may name; None when the chain declares no stores (not checked).
    pub stores: Option<HashSet<i64>>,
    /// The menu with list prices; None when the chain declares no products.
    pub products: Option<HashMap<i64, i64>>,
    pub customers: u64,
    pub merged_keys: u64,
    /// Payment accounts seen on this run's orders of a known member or user:
    /// (payer hash, customer key) → (first, last) day of an order they were seen together on.
    pub payer_pairs: HashMap<(String, String), (i32, i32)>,
}

/// The customer key of an order without a member or user but with a payment account: the
/// account's keyed hash. It resolves to a customer when identity links the account to one
/// (`customer_keys`), and stays anonymous otherwise.
pub const PAYER_PREFIX: &str = "PAY";

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
    /// The checked row, or `None` with the refusal quarantined against `table`'s `row_id`
    /// (named only then: most rows pass).
    pub fn passed<T>(
        &mut self,
        table: &str,
        row_id: impl FnOnce() -> String,
        checked: std::result::Result<T, crate::rows::Refusal>,
    ) -> Option<T> {
        match checked {
            Ok(c) => Some(c),
            Err((field, reason)) => {
                self.add(table, row_id(), field, reason, None);
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

    /// Whether every value of the row could be read. A value that could not is quarantined
    /// naming its field, the source column and why: for a required field the row is refused
    /// (false); an optional one is noted and read as empty ("kept without it").
    pub fn readable(&mut self, plan: &Plan, r: &Row) -> bool {
        let mut ok = true;
        for (i, f) in plan.fields.iter().enumerate() {
            if let Some(why) = r.bad(i) {
                let column = plan
                    .column(i)
                    .filter(|col| *col != f.spec.name)
                    .map_or(String::new(), |col| format!(" (column {col})"));
                if f.spec.required {
                    self.add(
                        plan.spec.name,
                        row_id(plan, r),
                        f.spec.name,
                        format!("{why}{column}"),
                        None,
                    );
                    return false;
                }
                self.add(
                    plan.spec.name,
                    row_id(plan, r),
                    f.spec.name,
                    format!("{why}{column}; kept without it"),
                    None,
                );
                ok = true;
            }
        }
        ok
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

/// How a quarantine entry names a row: its key, or where it is when the key is unreadable.
pub fn row_id(plan: &Plan, r: &Row) -> String {
    // A file's row is found by its file and line (its key may be a hash of its content).
    if let Some(f) = &r.file {
        return format!("{f}:{}", r.line);
    }
    match &r.cells[plan.spec.key] {
        Cell::Int(i) => i.to_string(),
        Cell::Text(t) if !t.is_empty() => t.clone(),
        _ => format!("row {}", r.line),
    }
}

/// `YYYY-MM` of a moment (the month partition), without chrono's pattern interpreter.
fn month_of_time(t: impl chrono::Datelike) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

fn date32(d: NaiveDate) -> i32 {
    // Arrow's Date32 is days since the epoch; every date c360 handles is in 1900..2200.
    c360_model::Day::of(d).0 as i32
}

/// A text column builder sized for a chunk of `CHUNK` rows of about `bytes` bytes each (so a
/// chunk is not built by repeated doubling and copying).
fn text(bytes: usize) -> StringBuilder {
    StringBuilder::with_capacity(CHUNK, CHUNK * bytes)
}

/// An integer column builder sized for a chunk.
fn ints() -> Int64Builder {
    Int64Builder::with_capacity(CHUNK)
}

fn tsb() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("+08:00")
}

/// Reads an entity after its watermark and moves the watermark on; Ok(None) when the contract
/// declares it absent.
async fn read(
    src: &Sources,
    txn: &mut Txn,
    entity: &str,
    each: impl FnMut(&Plan, &Row),
) -> Result<Option<u64>> {
    let Some(plan) = src.plan(entity) else {
        tracing::info!(entity, "absent in the source contract; skipped");
        return Ok(None);
    };
    let key = plan.watermark_key();
    let wm = plan
        .incremental
        .as_ref()
        .and_then(|_| txn.base().watermarks.get(&key).cloned());
    let mut each = each;
    let r = src
        .stream(plan, wm.as_deref(), None, |row| each(plan, row))
        .await?;
    if let Some(w) = r.watermark {
        // Never backwards: a read that saw nothing newer keeps the old mark.
        let keep = match (&wm, plan.incremental.as_ref()) {
            (Some(old), Some(i)) if i.kind == c::IncKind::Id || i.time_format.numeric() => {
                old.parse::<i64>().ok() > w.parse::<i64>().ok()
            }
            (Some(old), Some(_)) => *old > w,
            _ => false,
        };
        if !keep {
            txn.set_watermark(&key, w);
        }
    }
    Ok(Some(r.rows))
}

/// The ids of a dimension the warehouse already holds (for entities absent from this run's
/// contract): None when it holds none.
async fn known_ids(wh: &Warehouse, txn: &Txn, table: &str, col: &str) -> Result<Option<Vec<i64>>> {
    if txn
        .base()
        .tables
        .get(table)
        .is_none_or(|t| t.partitions.is_empty())
    {
        return Ok(None);
    }
    let sess = c360_warehouse::Session::at(wh, txn.base().clone()).await?;
    let mut out = Vec::new();
    for b in sess.query(&format!("SELECT {col} FROM {table}")).await? {
        if let Some(a) = b.column(0).as_any().downcast_ref::<Int64Array>() {
            out.extend((0..a.len()).filter(|i| !a.is_null(*i)).map(|i| a.value(i)));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Step 1: cities and stores (small; reloaded whole every run).
pub async fn dimensions(
    src: &Sources,
    wh: &Warehouse,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &mut Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::cities as C;
    use c::stores as S;
    let mut city: HashMap<i64, (String, i64)> = HashMap::new();
    let (mut id, mut name, mut prov, mut tier, mut lat, mut lon) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let n_cities = read(src, txn, "cities", |plan, r| {
        if !q.readable(plan, r) {
            return;
        }
        let Some(cid) = r.int(C::CITY_ID) else {
            return;
        };
        let Some(n) = r.some_text(C::NAME) else {
            q.add("cities", row_id(plan, r), "name", "missing city name", None);
            return;
        };
        let t = r.int(C::TIER);
        city.insert(cid, (n.clone(), t.unwrap_or(0)));
        id.append_value(cid);
        name.append_value(&n);
        prov.append_option(r.text(C::PROVINCE));
        tier.append_option(t);
        lat.append_option(r.float(C::LAT));
        lon.append_option(r.float(C::LON));
    })
    .await?;
    let cities_known = match n_cities {
        Some(_) => {
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
            true
        }
        None => {
            // Absent here: the cities an earlier run loaded still name the stores.
            if txn.base().tables.contains_key("cities") {
                let sess = c360_warehouse::Session::at(wh, txn.base().clone()).await?;
                for b in sess
                    .query("SELECT city_id, name, CAST(COALESCE(tier, 0) AS BIGINT) FROM cities")
                    .await?
                {
                    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().cloned();
                    let names = c360_warehouse::manifest::str_col(&b, "name").clone();
                    let tiers = b.column(2).as_any().downcast_ref::<Int64Array>().cloned();
                    if let (Some(ids), Some(tiers)) = (ids, tiers) {
                        for i in 0..b.num_rows() {
                            city.insert(ids.value(i), (names.value(i).to_string(), tiers.value(i)));
                        }
                    }
                }
            }
            !city.is_empty()
        }
    };

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
    let mut stores = HashSet::new();
    let n_stores = read(src, txn, "stores", |plan, r| {
        let Some(s) = r.int(S::STORE_ID) else {
            q.readable(plan, r);
            return;
        };
        let c = r.int(S::CITY_ID);
        let known = c.and_then(|c| city.get(&c)).cloned();
        if known.is_none() && cities_known {
            q.add(
                "stores",
                row_id(plan, r),
                "city_id",
                format!("unknown city {:?}", c),
                None,
            );
            return;
        }
        let la = r.float(S::LAT).filter(|v| (3.0..54.0).contains(v));
        let lo = r.float(S::LON).filter(|v| (73.0..136.0).contains(v));
        if la.is_none() || lo.is_none() {
            q.add(
                "stores",
                row_id(plan, r),
                "lat/lon",
                "coordinates missing or outside China; kept without location",
                None,
            );
        }
        let od = match r.date(S::OPEN_DATE) {
            Ok(d) => d.map(date32),
            Err(e) => {
                q.add("stores", row_id(plan, r), "open_date", e, None);
                None
            }
        };
        stores.insert(s);
        sid.append_value(s);
        code.append_value(
            r.some_text(S::STORE_CODE)
                .unwrap_or_else(|| format!("S{s:04}")),
        );
        sname.append_option(r.text(S::NAME));
        scity.append_option(c);
        cname.append_option(known.as_ref().map(|k| k.0.clone()));
        stier.append_option(known.map(|k| k.1));
        stype.append_option(r.text(S::STORE_TYPE));
        slat.append_option(la);
        slon.append_option(lo);
        open.append_option(od);
        status.append_option(r.text(S::STATUS));
        loaded += 1;
    })
    .await?;
    pb.set_position(loaded);
    match n_stores {
        Some(_) => {
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
            ctx.stores = Some(stores);
        }
        None => {
            ctx.stores = known_ids(wh, txn, "stores", "store_id")
                .await?
                .map(|v| v.into_iter().collect());
        }
    }
    Ok((
        n_cities.unwrap_or(0) + n_stores.unwrap_or(0),
        loaded
            + if n_cities.is_some() {
                city.len() as u64
            } else {
                0
            },
    ))
}

/// Step 2: the menu.
pub async fn products(
    src: &Sources,
    wh: &Warehouse,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &mut Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::products as P;
    let (mut id, mut sku, mut name, mut cat, mut price, mut launched, mut cost) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Date32Builder::new(),
        Int64Builder::new(),
    );
    let mut menu: HashMap<i64, i64> = HashMap::new();
    let n = read(src, txn, "products", |plan, r| {
        let Some(p) = r.int(P::PRODUCT_ID) else {
            q.readable(plan, r);
            return;
        };
        let pr = match &r.cells[P::PRICE] {
            Cell::Int(f) if *f > 0 => *f,
            other => {
                q.add(
                    "products",
                    row_id(plan, r),
                    "price",
                    format!("price must be a positive number of fen, got {other:?}"),
                    None,
                );
                return;
            }
        };
        let c = r.text(P::CATEGORY).unwrap_or_default();
        if !["热狗", "小食", "饮品", "套餐"].contains(&c.as_str()) {
            q.add(
                "products",
                row_id(plan, r),
                "category",
                format!("unknown category '{c}', kept"),
                None,
            );
        }
        let unit_cost = match &r.cells[P::COST] {
            Cell::Int(f) if (0..=pr).contains(f) => Some(*f),
            Cell::Null => None,
            other => {
                q.add(
                    "products",
                    row_id(plan, r),
                    "cost",
                    format!("cost must be 0 to the price ({pr}) in fen, got {other:?}; product kept without a cost"),
                    None,
                );
                None
            }
        };
        menu.insert(p, pr);
        cost.append_option(unit_cost);
        id.append_value(p);
        sku.append_value(r.some_text(P::SKU).unwrap_or_else(|| format!("P{p}")));
        name.append_option(r.text(P::NAME));
        cat.append_value(c);
        price.append_value(pr);
        launched.append_option(r.date(P::LAUNCHED).ok().flatten().map(date32));
    })
    .await?;
    match n {
        Some(n) => {
            pb.set_position(menu.len() as u64);
            let b = RecordBatch::try_new(
                tables::schema("products"),
                vec![
                    Arc::new(id.finish()),
                    Arc::new(sku.finish()),
                    Arc::new(name.finish()),
                    Arc::new(cat.finish()),
                    Arc::new(price.finish()),
                    Arc::new(launched.finish()),
                    Arc::new(cost.finish()),
                ],
            )?;
            txn.replace("products", vec![b])?;
            let loaded = menu.len() as u64;
            ctx.products = Some(menu);
            Ok((n, loaded))
        }
        None => {
            ctx.products = known_ids(wh, txn, "products", "product_id")
                .await?
                .map(|v| v.into_iter().map(|p| (p, 0)).collect());
            Ok((0, 0))
        }
    }
}

fn mask_name(n: &str) -> String {
    let mut c = n.trim().chars();
    match c.next() {
        Some(first) => format!("{first}{}", "*".repeat(c.count().max(1))),
        None => String::new(),
    }
}

/// A payment account as identity evidence: the keyed hash of the method and the provider's
/// account id (never the id itself), so a WeChat openid and an Alipay id cannot collide.
pub fn payer_hash(salt: &c360_model::pii::PiiKey, method: &str, account: &str) -> String {
    salt.hash(&format!("{method}:{account}"))
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
    "payer_hash",
    "consent_wechat",
    "consent_sms",
    "consent_push",
    "consent_at",
];

/// The kinds of [`NODE_COLS`], for spooling node rows.
const NODE_KINDS: &[Kind] = &[
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Text,
];

/// Upserts the spooled node rows into `identity_nodes` in one transaction, a chunk at a time.
async fn upsert_nodes(meta: &Metastore, nodes: Spool) -> Result<u64> {
    let n = nodes.len();
    let mut tx = meta.db.begin().await?;
    let mut r = nodes.replay()?;
    while let Some(rows) = r.next_chunk()? {
        meta.db
            .write_rows_in(
                tx.sqlx(),
                "identity_nodes",
                NODE_COLS,
                Some("source_key"),
                &rows,
            )
            .await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// An identity node with only its key (a customer known from their orders alone).
fn bare_node(key: String, first: Option<chrono::NaiveDateTime>, run_id: i64) -> Vec<Value> {
    vec![
        key.into(),
        Value::NullS,
        0i64.into(),
        Value::NullS,
        Value::NullS,
        Value::NullS,
        Value::NullS,
        Value::NullS,
        Value::NullS,
        Value::NullI,
        Value::NullI,
        first.map(fmt_ts).into(),
        run_id.into(),
        Value::NullS,
        Value::NullI,
        Value::NullI,
        Value::NullI,
        Value::NullS,
    ]
}

/// A source row's marketing consent as four node values (wechat, sms, push, when): a flag
/// the row states but cannot be read is quarantined and taken as never asked (no consent); the
/// time falls back to when the row was created.
fn consent_values(
    plan: &Plan,
    r: &Row,
    q: &mut Quarantine,
    table: &str,
    fields: [usize; 4],
    created: Option<&str>,
) -> [Value; 4] {
    let mut out = [Value::NullI, Value::NullI, Value::NullI, Value::NullS];
    for (k, &f) in fields[..3].iter().enumerate() {
        if let Some(e) = r.bad(f) {
            let name = ["consent_wechat", "consent_sms", "consent_push"][k];
            q.add(
                table,
                row_id(plan, r),
                name,
                format!("{e}; taken as never asked (no consent)"),
                None,
            );
        } else if let Some(v) = r.int(f) {
            out[k] = Value::I(i64::from(v != 0));
        }
    }
    out[3] = match r.time(fields[3]) {
        Ok(Some(t)) => fmt_ts(t).into(),
        Ok(None) => created.map(str::to_string).into(),
        Err(e) => {
            q.add(table, row_id(plan, r), "consent_at", e, None);
            created.map(str::to_string).into()
        }
    };
    out
}

/// Where the chain has orders but not the people behind them (no members or users table: an
/// export of orders), each customer id the orders name becomes an identity node of its own, so
/// that it is a customer. Nodes already there are left as they are.
#[allow(clippy::too_many_arguments)]
async fn nodes_from_orders(
    src: &Sources,
    stores: Option<&HashSet<i64>>,
    txn: &Txn,
    meta: &Metastore,
    entity: &str,
    field: usize,
    prefix: &str,
    run_id: i64,
) -> Result<u64> {
    let Some(plan) = src.plan(entity) else {
        return Ok(0);
    };
    let wm = plan
        .incremental
        .as_ref()
        .and_then(|_| txn.base().watermarks.get(&plan.watermark_key()).cloned());
    let mut first: HashMap<String, Option<chrono::NaiveDateTime>> = HashMap::new();
    src.stream(plan, wm.as_deref(), None, |r| {
        // Only orders step 6 will load make a customer (it quarantines the others).
        let unreadable = plan
            .fields
            .iter()
            .enumerate()
            .any(|(i, f)| f.spec.required && r.bad(i).is_some());
        let order = crate::rows::SourceOrder {
            status: r.text(c::orders::STATUS),
            order_time: r.time(c::orders::ORDER_TIME).ok().flatten(),
            store_id: r.int(c::orders::STORE_ID),
            total_fen: r.int(c::orders::TOTAL),
        };
        if unreadable || crate::rows::check_order(&order, stores).is_err() {
            return;
        }
        if let Some(k) = r.key(field).filter(|k| !src.is_erased(prefix, k)) {
            let t = r.time(c::orders::ORDER_TIME).ok().flatten();
            let e = first.entry(k).or_insert(t);
            if t.is_some() && (e.is_none() || t < *e) {
                *e = t;
            }
        }
    })
    .await?;
    let mut nodes: Vec<Vec<Value>> = first
        .into_iter()
        .map(|(k, t)| bare_node(format!("{prefix}:{k}"), t, run_id))
        .collect();
    nodes.sort_by(|a, b| format!("{:?}", a[0]).cmp(&format!("{:?}", b[0])));
    meta.db
        .insert_missing_rows("identity_nodes", NODE_COLS, "source_key", &nodes)
        .await?;
    Ok(nodes.len() as u64)
}

/// Step 3: POS members become identity nodes `M:<member_id>`.
#[allow(clippy::too_many_arguments)]
pub async fn pos_members(
    salt: &c360_model::pii::PiiKey,
    src: &Sources,
    ctx: &Ctx,
    meta: &Metastore,
    txn: &mut Txn,
    q: &mut Quarantine,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::members as M;
    let mut nodes = Spool::new(txn.scratch_path("nodes"), NODE_KINDS);
    let mut spool_err = None;
    let n = read(src, txn, "members", |plan, r| {
        let Some(mid) = r.key(M::MEMBER_ID) else {
            q.readable(plan, r);
            return;
        };
        if src.is_erased("M", &mid) {
            return;
        }
        let raw = r.text(M::PHONE).unwrap_or_default();
        let (ph_hash, ph_mask) = match Phone::parse(&raw) {
            Ok(p) if p.is_placeholder() => {
                q.add(
                    "members",
                    row_id(plan, r),
                    "phone",
                    "placeholder number: kept masked, never used to link",
                    Some(&raw),
                );
                (Value::NullS, Value::from(p.masked()))
            }
            Ok(p) => (Value::from(p.hashed(salt)), Value::from(p.masked())),
            Err(e) => {
                q.add("members", row_id(plan, r), "phone", e, Some(&raw));
                (Value::NullS, Value::NullS)
            }
        };
        let created = match r.time(M::CREATED_AT) {
            Ok(Some(t)) => Value::from(fmt_ts(t)),
            Err(e) => {
                q.add("members", row_id(plan, r), "created_at", e, None);
                Value::NullS
            }
            Ok(None) => Value::NullS,
        };
        let birth_year = r.date(M::BIRTHDAY).ok().flatten().map(|d| d.year() as i64);
        let consent = consent_values(
            plan,
            r,
            q,
            "members",
            [
                M::CONSENT_WECHAT,
                M::CONSENT_SMS,
                M::CONSENT_PUSH,
                M::CONSENT_AT,
            ],
            match &created {
                Value::S(c) => Some(c.as_str()),
                _ => None,
            },
        );
        let mut row = vec![
            format!("M:{mid}").into(),
            ph_hash,
            r.int(M::PHONE_VERIFIED).unwrap_or(0).into(),
            Value::NullS,
            r.some_text(M::CARD_NO).into(),
            Value::NullS,
            ph_mask,
            r.text(M::NAME).map(|n| mask_name(&n)).into(),
            r.text(M::GENDER).into(),
            birth_year.into(),
            r.int(M::REGISTER_STORE_ID).into(),
            created,
            run_id.into(),
            Value::NullS,
        ];
        row.extend(consent);
        if let Err(e) = nodes.push(row) {
            spool_err.get_or_insert(e);
        }
        pb.inc(1);
    })
    .await?;
    let Some(n) = n else {
        let bare = nodes_from_orders(
            src,
            ctx.stores.as_ref(),
            txn,
            meta,
            "orders",
            c::orders::MEMBER_ID,
            "M",
            run_id,
        )
        .await?;
        return Ok((0, bare));
    };
    if let Some(e) = spool_err {
        return Err(e);
    }
    let loaded = upsert_nodes(meta, nodes).await?;
    Ok((n, loaded))
}

/// Step 4: mini-program users become identity nodes `U:<user_id>`.
#[allow(clippy::too_many_arguments)]
pub async fn wx_users(
    salt: &c360_model::pii::PiiKey,
    src: &Sources,
    ctx: &Ctx,
    meta: &Metastore,
    txn: &mut Txn,
    q: &mut Quarantine,
    run_id: i64,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::wx_users as U;
    let mut nodes = Spool::new(txn.scratch_path("nodes"), NODE_KINDS);
    let mut spool_err = None;
    let n = read(src, txn, "wx_users", |plan, r| {
        let Some(uid) = r.key(U::USER_ID) else {
            q.readable(plan, r);
            return;
        };
        if src.is_erased("U", &uid) {
            return;
        }
        if r.some_text(U::OPENID).filter(|o| o.len() >= 10).is_none() {
            q.add(
                "wx_users",
                row_id(plan, r),
                "openid",
                "missing or short openid: user not loaded",
                None,
            );
            return;
        }
        let raw = r.text(U::PHONE).unwrap_or_default();
        let (ph_hash, ph_mask) = if raw.trim().is_empty() {
            (Value::NullS, Value::NullS)
        } else {
            match Phone::parse(&raw) {
                Ok(p) if p.is_placeholder() => {
                    q.add(
                        "wx_users",
                        row_id(plan, r),
                        "phone",
                        "placeholder number: never used to link",
                        Some(&raw),
                    );
                    (Value::NullS, Value::from(p.masked()))
                }
                Ok(p) => (Value::from(p.hashed(salt)), Value::from(p.masked())),
                Err(e) => {
                    q.add("wx_users", row_id(plan, r), "phone", e, Some(&raw));
                    (Value::NullS, Value::NullS)
                }
            }
        };
        let unionid = r.some_text(U::UNIONID).map(|u| salt.hash(u.trim()));
        let created = r.time(U::CREATED_AT).ok().flatten().map(fmt_ts);
        let consent = consent_values(
            plan,
            r,
            q,
            "wx_users",
            [
                U::CONSENT_WECHAT,
                U::CONSENT_SMS,
                U::CONSENT_PUSH,
                U::CONSENT_AT,
            ],
            created.as_deref(),
        );
        let mut row = vec![
            format!("U:{uid}").into(),
            ph_hash,
            1i64.into(), // WeChat getPhoneNumber numbers are verified by WeChat
            unionid.into(),
            Value::NullS,
            r.some_text(U::MEMBER_CARD_NO).into(),
            ph_mask,
            Value::NullS,
            Value::NullS,
            Value::NullI,
            Value::NullI,
            created.into(),
            run_id.into(),
            // What WeChat Pay names this user at a till bound to the same app.
            payer_hash(
                salt,
                "wechat_pay",
                r.some_text(U::OPENID).unwrap_or_default().trim(),
            )
            .into(),
        ];
        row.extend(consent);
        if let Err(e) = nodes.push(row) {
            spool_err.get_or_insert(e);
        }
        pb.inc(1);
    })
    .await?;
    let Some(n) = n else {
        let bare = nodes_from_orders(
            src,
            ctx.stores.as_ref(),
            txn,
            meta,
            "wx_orders",
            c::wx_orders::USER_ID,
            "U",
            run_id,
        )
        .await?;
        return Ok((0, bare));
    };
    if let Some(e) = spool_err {
        return Err(e);
    }
    let loaded = upsert_nodes(meta, nodes).await?;
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
            key: text(16),
            source: text(2),
            sid: ints(),
            no: text(20),
            store: ints(),
            cust: text(12),
            time: TimestampMicrosecondBuilder::with_capacity(CHUNK).with_timezone("+08:00"),
            month: text(7),
            total: ints(),
            disc: ints(),
            channel: text(8),
            pay: text(10),
            status: text(8),
            coupon: text(2),
            daypart: text(9),
            holiday: text(2),
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

/// One system's order entities, described for the shared loader. The two entities have the
/// same fields in the same places (`orders` and `wx_orders`, `order_items` and `wx_order_items`).
struct OrderSource {
    source: &'static str,
    prefix: &'static str,
    orders: &'static str,
    items: &'static str,
    cust_field: usize,
    cust_prefix: &'static str,
}

const ORDER_SOURCES: [OrderSource; 2] = [
    OrderSource {
        source: "pos",
        prefix: "P",
        orders: "orders",
        items: "order_items",
        cust_field: c::orders::MEMBER_ID,
        cust_prefix: "M",
    },
    OrderSource {
        source: "wx",
        prefix: "W",
        orders: "wx_orders",
        items: "wx_order_items",
        cust_field: c::wx_orders::USER_ID,
        cust_prefix: "U",
    },
];

/// Coupons redeemed on an order entity's orders, read from their own entity: order id → code.
async fn redemptions(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    of: &str,
) -> Result<HashMap<i64, String>> {
    let mut out = HashMap::new();
    if src.plan("coupon_redemptions").and_then(|p| p.of.as_deref()) != Some(of) {
        return Ok(out);
    }
    read(src, txn, "coupon_redemptions", |plan, r| {
        if !q.readable(plan, r) {
            return;
        }
        if let (Some(o), Some(code)) = (
            r.int(c::coupon_redemptions::ORDER_ID),
            r.some_text(c::coupon_redemptions::COUPON_CODE),
        ) {
            out.insert(o, code);
        }
    })
    .await?;
    Ok(out)
}

/// Rows built before they go to the warehouse's streaming upsert: the step's memory holds one
/// chunk, whatever the number of orders.
const CHUNK: usize = 65_536;

/// Each order of the run → its month, in about 2 bytes an order when order ids are dense (pages
/// of 1,024 ids), falling back to a hash map when they are not.
#[derive(Default)]
struct MonthOf {
    names: Vec<String>,
    index: HashMap<String, u16>,
    pages: HashMap<i64, Box<[u16; 1024]>>,
    sparse: Option<HashMap<i64, u16>>,
    n: u64,
}

impl MonthOf {
    fn insert(&mut self, id: i64, month: &str) {
        let m = match self.index.get(month) {
            Some(m) => *m,
            None => {
                let m = self.names.len() as u16 + 1;
                self.names.push(month.to_string());
                self.index.insert(month.to_string(), m);
                m
            }
        };
        self.n += 1;
        if let Some(s) = &mut self.sparse {
            s.insert(id, m);
            return;
        }
        self.pages
            .entry(id.div_euclid(1024))
            .or_insert_with(|| Box::new([0; 1024]))[id.rem_euclid(1024) as usize] = m;
        // Fewer than 64 ids a page: a page costs more than a map entry; switch.
        if self.pages.len() > 4096 && self.n < 64 * self.pages.len() as u64 {
            let mut s = HashMap::with_capacity(self.n as usize);
            for (p, page) in self.pages.drain() {
                for (k, v) in page.iter().enumerate() {
                    if *v != 0 {
                        s.insert(p * 1024 + k as i64, *v);
                    }
                }
            }
            self.sparse = Some(s);
        }
    }
    fn get(&self, id: i64) -> Option<&str> {
        let m = match &self.sparse {
            Some(s) => *s.get(&id)?,
            None => self.pages.get(&id.div_euclid(1024))?[id.rem_euclid(1024) as usize],
        };
        (m != 0).then(|| self.names[m as usize - 1].as_str())
    }
    fn remove(&mut self, id: i64) {
        match &mut self.sparse {
            Some(s) => {
                s.remove(&id);
            }
            None => {
                if let Some(p) = self.pages.get_mut(&id.div_euclid(1024)) {
                    p[id.rem_euclid(1024) as usize] = 0;
                }
            }
        }
    }
}

/// Step 6: orders and their items from both systems, streamed into the warehouse in chunks.
pub async fn orders(
    salt: &c360_model::pii::PiiKey,
    src: &Sources,
    wh: &Warehouse,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &mut Ctx,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::orders as O;
    let mut up = txn.upsert_stream("fact_orders")?;
    let mut up_items = txn.upsert_stream("fact_order_items")?;
    let mut extracted = 0u64;
    let mut loaded_orders = 0u64;
    let mut loaded_items = 0u64;
    for s in &ORDER_SOURCES {
        let mut coupons = redemptions(src, txn, q, s.orders).await?;
        let mut month_of = MonthOf::default();
        // (store, order_no) of every order, to find repeats whatever their number.
        let mut numbers = c360_warehouse::upsert::KeyGroups::new(&wh.root)?;
        let mut cols = OrderCols::new();
        let mut failed: Option<crate::error::EtlError> = None;
        let n = read(src, txn, s.orders, |plan, r| {
            pb.inc(1);
            if failed.is_some() || !q.readable(plan, r) {
                return;
            }
            let Some(oid) = r.int(O::ORDER_ID) else {
                return;
            };
            let raw = crate::rows::SourceOrder {
                status: r.text(O::STATUS),
                order_time: r.time(O::ORDER_TIME).ok().flatten(),
                store_id: r.int(O::STORE_ID),
                total_fen: r.int(O::TOTAL),
            };
            let Some(crate::rows::CheckedOrder {
                status,
                time: t,
                store,
                total_fen: total,
            }) = q.passed(
                s.orders,
                || row_id(plan, r),
                crate::rows::check_order(&raw, ctx.stores.as_ref()),
            )
            else {
                return;
            };
            let no = r.text(O::ORDER_NO).unwrap_or_default();
            if !no.is_empty() {
                let key = format!("{store:?}\u{0}{no}");
                if let Err(e) = numbers.add(key.as_bytes(), oid as u64) {
                    failed = Some(e.into());
                    return;
                }
            }
            // A customer id not yet known (late-arriving member/user) is kept: the `orders`
            // view resolves it once the id arrives, and the quality report measures the gap.
            let payer = r.some_text(O::PAYER_ID).and_then(|a| {
                let a = a.trim();
                (!a.is_empty()).then(|| {
                    payer_hash(
                        salt,
                        r.some_text(O::PAY_METHOD).as_deref().unwrap_or("other"),
                        a,
                    )
                })
            });
            let cust = r
                .key(s.cust_field)
                .map(|c| format!("{}:{c}", s.cust_prefix));
            // An erased customer's order stays as an anonymous sale, without its payer.
            let (cust, payer) = match cust.map(|c| src.keep(c)) {
                Some(None) => (None, None),
                Some(c) => (c, payer),
                None => (None, payer.filter(|p| !src.is_erased(PAYER_PREFIX, p))),
            };
            let cust = match (cust, payer) {
                (Some(c), Some(p)) => {
                    let day = t.date().num_days_from_ce();
                    let e = ctx.payer_pairs.entry((p, c.clone())).or_insert((day, day));
                    e.0 = e.0.min(day);
                    e.1 = e.1.max(day);
                    Some(c)
                }
                (None, Some(p)) => Some(format!("{PAYER_PREFIX}:{p}")),
                (c, None) => c,
            };
            let month = month_of_time(t);
            month_of.insert(oid, &month);
            let coupon = r.some_text(O::COUPON_CODE).or_else(|| coupons.remove(&oid));
            let _ = write!(cols.key, "{}:{oid}", s.prefix);
            cols.key.append_value("");
            cols.source.append_value(s.source);
            cols.sid.append_value(oid);
            cols.no.append_value(&no);
            cols.store.append_option(store);
            cols.cust.append_option(cust);
            cols.time.append_value(ts_micros(t));
            cols.month.append_value(&month);
            cols.total.append_value(total);
            cols.disc
                .append_value(r.int(O::DISCOUNT).unwrap_or(0).max(0));
            cols.channel
                .append_value(r.some_text(O::CHANNEL).unwrap_or_else(|| s.source.into()));
            cols.pay.append_option(r.some_text(O::PAY_METHOD));
            cols.status.append_value(&status);
            cols.coupon.append_option(coupon);
            cols.daypart.append_value(Daypart::of(t).code());
            cols.holiday.append_option(holiday(t.date()));
            cols.rows += 1;
            if cols.rows >= CHUNK {
                loaded_orders += cols.rows as u64;
                let full = std::mem::replace(&mut cols, OrderCols::new());
                if let Err(e) = full.finish().and_then(|b| Ok(up.push(b)?)) {
                    failed = Some(e);
                }
            }
        })
        .await?;
        if let Some(e) = failed {
            return Err(e);
        }
        loaded_orders += cols.rows as u64;
        up.push(cols.finish()?)?;
        // A repeated (store, order_no): the first order read stays, the later ones are
        // withdrawn and quarantined naming it (their items then find no order).
        numbers.repeated(|ids| {
            let first = ids[0] as i64;
            for later in &ids[1..] {
                let later = *later as i64;
                q.add(
                    s.orders,
                    later,
                    "order_no",
                    format!(
                        "duplicate of {}:{first} (same store and order_no)",
                        s.prefix
                    ),
                    None,
                );
                up.retract(&format!("{}:{later}", s.prefix));
                month_of.remove(later);
                loaded_orders -= 1;
            }
            Ok(())
        })?;
        let Some(n) = n else { continue };
        extracted += n;
        // Redemptions of orders loaded by an earlier run: those orders again, with the coupon.
        if !coupons.is_empty() {
            for b in with_coupons(wh, txn, s.prefix, &coupons).await? {
                up.push(b)?;
            }
        }
        if let Some(n) = load_items(
            s,
            src,
            txn,
            q,
            ctx,
            wh,
            &month_of,
            &mut up_items,
            pb,
            &mut extracted,
        )
        .await?
        {
            loaded_items += n;
        }
    }
    txn.finish_upsert(up)?;
    txn.finish_upsert(up_items)?;
    Ok((extracted, loaded_orders + loaded_items))
}

/// The warehouse's rows of the given orders with their coupon set.
async fn with_coupons(
    wh: &Warehouse,
    txn: &Txn,
    prefix: &str,
    coupons: &HashMap<i64, String>,
) -> Result<Vec<RecordBatch>> {
    let sess = c360_warehouse::Session::at(wh, txn.base().clone()).await?;
    let keys: Vec<String> = coupons.keys().map(|o| format!("{prefix}:{o}")).collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(5000) {
        let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT * FROM fact_orders WHERE order_key IN ({})",
            marks.join(",")
        );
        let params = chunk
            .iter()
            .map(|k| c360_warehouse::query::ScalarValue::Utf8(Some(k.clone())))
            .collect();
        for b in sess.query_with(&sql, params).await? {
            let ids = b
                .column_by_name("source_order_id")
                .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
                .cloned();
            let Some(ids) = ids else { continue };
            let codes: c360_warehouse::arrow::array::StringArray = (0..b.num_rows())
                .map(|i| coupons.get(&ids.value(i)).cloned())
                .collect();
            let schema = tables::schema("fact_orders");
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            if let Ok(i) = schema.index_of("coupon_code") {
                cols[i] = Arc::new(codes);
            }
            out.push(RecordBatch::try_new(schema, cols)?);
        }
    }
    Ok(out)
}

/// An order line's columns, built a chunk at a time.
struct ItemCols {
    key: StringBuilder,
    okey: StringBuilder,
    prod: Int64Builder,
    qty: Int64Builder,
    price: Int64Builder,
    amount: Int64Builder,
    month: StringBuilder,
    rows: usize,
}

impl ItemCols {
    fn new() -> Self {
        ItemCols {
            key: text(16),
            okey: text(16),
            prod: ints(),
            qty: ints(),
            price: ints(),
            amount: ints(),
            month: text(16),
            rows: 0,
        }
    }
    fn append(&mut self, prefix: &str, it: &Item, month: &str) {
        // Written into the builders' buffers, not through a String per key.
        let _ = write!(self.key, "{prefix}:{}", it.id);
        self.key.append_value("");
        let _ = write!(self.okey, "{prefix}:{}", it.order);
        self.okey.append_value("");
        self.prod.append_value(it.product);
        self.qty.append_value(it.qty);
        self.price.append_value(it.price);
        self.amount.append_value(it.price * it.qty);
        self.month.append_value(month);
        self.rows += 1;
    }
    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            tables::schema("fact_order_items"),
            vec![
                Arc::new(self.key.finish()),
                Arc::new(self.okey.finish()),
                Arc::new(self.prod.finish()),
                Arc::new(self.qty.finish()),
                Arc::new(self.price.finish()),
                Arc::new(self.amount.finish()),
                Arc::new(self.month.finish()),
            ],
        )?)
    }
}

struct Item {
    id: i64,
    order: i64,
    product: i64,
    qty: i64,
    price: i64,
}

/// The order lines of one system, streamed into `up`: a line takes its order's month from this
/// run's orders, or else from the warehouse (an order loaded by an earlier run); a line whose
/// order is in neither is quarantined.
#[allow(clippy::too_many_arguments)]
async fn load_items(
    s: &OrderSource,
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    ctx: &Ctx,
    wh: &Warehouse,
    month_of: &MonthOf,
    up: &mut c360_warehouse::Upsert,
    pb: &ProgressBar,
    extracted: &mut u64,
) -> Result<Option<u64>> {
    use c::order_items as I;
    // Lines whose order is not in this run (normally few: late lines of earlier orders).
    let mut elsewhere: Vec<Item> = Vec::new();
    let mut cols = ItemCols::new();
    let mut loaded = 0u64;
    let mut failed: Option<crate::error::EtlError> = None;
    let n = read(src, txn, s.items, |plan, r| {
        pb.inc(1);
        if failed.is_some() || !q.readable(plan, r) {
            return;
        }
        let Some(id) = r.int(I::ITEM_ID) else {
            return;
        };
        let raw = crate::rows::SourceItem {
            order_id: r.int(I::ORDER_ID),
            product_id: r.int(I::PRODUCT_ID),
            qty: r.int(I::QTY),
            unit_price_fen: r.int(I::UNIT_PRICE),
        };
        let Some(crate::rows::CheckedItem {
            order,
            product,
            qty,
            price,
        }) = q.passed(
            s.items,
            || row_id(plan, r),
            crate::rows::check_item(&raw, ctx.products.as_ref()),
        )
        else {
            return;
        };
        let it = Item {
            id,
            order,
            product,
            qty,
            price,
        };
        match month_of.get(order) {
            Some(m) => {
                cols.append(s.prefix, &it, m);
                if cols.rows >= CHUNK {
                    loaded += cols.rows as u64;
                    let full = std::mem::replace(&mut cols, ItemCols::new());
                    if let Err(e) = full.finish().and_then(|b| Ok(up.push(b)?)) {
                        failed = Some(e);
                    }
                }
            }
            None => elsewhere.push(it),
        }
    })
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let Some(n) = n else {
        return Ok(None);
    };
    *extracted += n;
    // Lines of orders not in this run: look the orders up in the warehouse snapshot.
    let missing: HashSet<i64> = elsewhere.iter().map(|i| i.order).collect();
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
                    .downcast_ref::<Int64Array>()
                    .expect("source_order_id is Int64");
                let mc = c360_warehouse::manifest::str_col(&b, "month");
                for i in 0..b.num_rows() {
                    known.insert(idc.value(i), mc.value(i).to_string());
                }
            }
        }
    }
    for it in elsewhere {
        let Some(m) = known.get(&it.order) else {
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
        cols.append(s.prefix, &it, m);
    }
    loaded += cols.rows as u64;
    up.push(cols.finish()?)?;
    Ok(Some(loaded))
}

/// Rounds a coordinate to 0.01° (about 1 km): location is sensitive and kept coarse.
fn coarse(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
        .map(|x| (x * 100.0).round() / 100.0)
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
    rows: usize,
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
            rows: 0,
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
        self.month.append_value(month_of_time(t));
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

/// A required time of a row, or its refusal quarantined (missing, or what could not be read).
fn required_time(
    q: &mut Quarantine,
    plan: &Plan,
    r: &Row,
    f: usize,
) -> Option<chrono::NaiveDateTime> {
    match r.time(f) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            q.add(
                plan.spec.name,
                row_id(plan, r),
                plan.fields[f].spec.name,
                "missing or malformed",
                None,
            );
            None
        }
        Err(e) => {
            q.add(
                plan.spec.name,
                row_id(plan, r),
                plan.fields[f].spec.name,
                format!("missing or malformed: {e}"),
                None,
            );
            None
        }
    }
}

/// A required person key of a row (`U:<id>`), or "missing user" quarantined.
/// An erased customer's row is skipped without a word (it is not bad input).
fn required_user(
    src: &Sources,
    q: &mut Quarantine,
    plan: &Plan,
    r: &Row,
    f: usize,
) -> Option<String> {
    match r.key(f) {
        Some(u) => src.keep(format!("U:{u}")),
        None => {
            q.add(
                plan.spec.name,
                row_id(plan, r),
                plan.fields[f].spec.name,
                "missing user",
                None,
            );
            None
        }
    }
}

/// Step 7: page events from the mini-program (append-only; watermark is the last event id).
pub async fn events(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::events as E;
    let mut up = txn.upsert_stream("customer_behavior_tracks_raw")?;
    let mut tracks = Tracks::default();
    let mut loaded = 0u64;
    let mut failed: Option<crate::error::EtlError> = None;
    let n = read(src, txn, "events", |plan, r| {
        pb.inc(1);
        if failed.is_some() {
            return;
        }
        let Some(id) = r.int(E::EVENT_ID) else {
            q.readable(plan, r);
            return;
        };
        let Some(ck) = required_user(src, q, plan, r, E::USER_ID) else {
            return;
        };
        let Some(t) = required_time(q, plan, r, E::EVENT_TIME) else {
            return;
        };
        let Some(a) = r.some_text(E::EVENT_TYPE) else {
            q.add(
                "events",
                row_id(plan, r),
                "event_type",
                r.bad(E::EVENT_TYPE).unwrap_or("missing"),
                None,
            );
            return;
        };
        tracks.push(
            format!("E:{id}"),
            ck,
            r.text(E::SESSION_ID),
            &a,
            r.text(E::PAGE),
            t,
            r.text(E::DEVICE),
            (coarse(r.float(E::LAT)), coarse(r.float(E::LON))),
        );
        loaded += 1;
        tracks.rows += 1;
        if tracks.rows >= CHUNK {
            if let Err(e) = std::mem::take(&mut tracks)
                .finish()
                .and_then(|b| Ok(up.push(b)?))
            {
                failed = Some(e);
            }
        }
    })
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let Some(n) = n else { return Ok((0, 0)) };
    up.push(tracks.finish()?)?;
    txn.finish_upsert(up)?;
    Ok((n, loaded))
}

/// Step 7, second half: page events posted to the server (`POST /events`, kept in the
/// metastore's `live_events`) join the tracks, keyed by their event id so a rerun adds nothing
/// twice. They name the resolved customer id (key `C:{id}`), not a source id. Anonymous events
/// (no customer) are not tracks and are skipped.
pub async fn live_events(
    meta: &c360_db::Db,
    txn: &mut Txn,
    q: &mut Quarantine,
) -> Result<(u64, u64)> {
    use c360_db::{get_i64, get_text};
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
        let Some(cid) = get_i64(r, "customer_id") else {
            // An anonymous visitor's event belongs to no customer: not a track.
            continue;
        };
        let Some(t) = get_text(r, "event_time").and_then(|t| c360_model::parse_ts(&t).ok()) else {
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
            format!("C:{cid}"),
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

/// Step 8: reviews (raw text kept as untrusted input, numbers scrubbed), shares, ties and
/// service tickets.
pub async fn reviews_and_shares(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let (rn, rl) = reviews(src, txn, q, pb).await?;
    let (hn, hl) = shares(src, txn, q, pb).await?;
    let (tn, tl) = ties(src, txn, q, pb).await?;
    let (sn, sl) = tickets(src, txn, q, pb).await?;
    Ok((rn + hn + tn + sn, rl + hl + tl + sl))
}

async fn reviews(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::reviews as R;
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
    let mut loaded = 0u64;
    let n = read(src, txn, "reviews", |plan, r| {
        pb.inc(1);
        let Some(id) = r.int(R::REVIEW_ID) else {
            q.readable(plan, r);
            return;
        };
        let Some(ck) = required_user(src, q, plan, r, R::USER_ID) else {
            return;
        };
        let Some(rt) = r.int(R::RATING).filter(|x| (1..=5).contains(x)) else {
            q.add(
                "reviews",
                row_id(plan, r),
                "rating",
                "missing or outside 1..=5",
                None,
            );
            return;
        };
        let Some(t) = required_time(q, plan, r, R::CREATED_AT) else {
            return;
        };
        let text = r.some_text(R::CONTENT);
        if text.is_none() {
            q.add(
                "reviews",
                row_id(plan, r),
                "content",
                "empty review text: rating kept",
                None,
            );
        }
        key.append_value(format!("R:{id}"));
        cust.append_value(ck);
        ord.append_option(r.int(R::ORDER_ID).map(|o| format!("W:{o}")));
        store.append_option(r.int(R::STORE_ID));
        rating.append_value(rt);
        content.append_option(text.map(|c| scrub_text(&c)));
        at.append_value(ts_micros(t));
        sent.append_null();
        month.append_value(month_of_time(t));
        loaded += 1;
    })
    .await?;
    let Some(n) = n else { return Ok((0, 0)) };
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
    Ok((n, loaded))
}

async fn shares(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::shares as H;
    let (mut key, mut from, mut to, mut page, mut camp, mut at, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        tsb(),
        StringBuilder::new(),
    );
    let mut loaded = 0u64;
    let n = read(src, txn, "shares", |plan, r| {
        pb.inc(1);
        let Some(id) = r.int(H::SHARE_ID) else {
            q.readable(plan, r);
            return;
        };
        let Some(ck) = required_user(src, q, plan, r, H::USER_ID) else {
            return;
        };
        let Some(t) = required_time(q, plan, r, H::SHARE_TIME) else {
            return;
        };
        key.append_value(format!("H:{id}"));
        from.append_value(ck);
        to.append_option(
            r.key(H::TO_USER_ID)
                .and_then(|u| src.keep(format!("U:{u}"))),
        );
        page.append_option(r.text(H::PAGE));
        camp.append_option(r.text(H::CAMPAIGN));
        at.append_value(ts_micros(t));
        month.append_value(month_of_time(t));
        loaded += 1;
    })
    .await?;
    let Some(n) = n else { return Ok((0, 0)) };
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
    Ok((n, loaded))
}

/// Customer-service tickets, with the cause an agent recorded when one was closed. Tickets
/// change status, so they are read by their last-modified time and merged by key.
async fn tickets(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    use c::tickets as T;
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
    let mut loaded = 0u64;
    let n = read(src, txn, "tickets", |plan, r| {
        pb.inc(1);
        let Some(id) = r.int(T::TICKET_ID) else {
            q.readable(plan, r);
            return;
        };
        let Some(ck) = required_user(src, q, plan, r, T::USER_ID) else {
            return;
        };
        let Some(t) = required_time(q, plan, r, T::CREATED_AT) else {
            return;
        };
        let st = r.text(T::STATUS).unwrap_or_default();
        if st != "open" && st != "closed" {
            let why = r.bad(T::STATUS).unwrap_or("not open or closed");
            q.add("tickets", row_id(plan, r), "status", why, Some(&st));
            return;
        }
        let cz = r.some_text(T::RESOLVED_CAUSE);
        if let Some(why) = r.bad(T::RESOLVED_CAUSE) {
            q.add("tickets", row_id(plan, r), "resolved_cause", why, None);
            return;
        }
        if let Some(cz) = &cz {
            if !c360_analytics::service::CAUSES.contains(&cz.as_str()) {
                q.add(
                    "tickets",
                    row_id(plan, r),
                    "resolved_cause",
                    "unknown cause",
                    Some(cz),
                );
                return;
            }
        }
        key.append_value(format!("T:{id}"));
        cust.append_value(ck);
        ord.append_option(r.int(T::ORDER_ID).map(|o| format!("W:{o}")));
        at.append_value(ts_micros(t));
        msg.append_option(r.text(T::MESSAGE).map(|m| scrub_text(&m)));
        status.append_value(st);
        cause.append_option(cz);
        month.append_value(month_of_time(t));
        loaded += 1;
    })
    .await?;
    let Some(n) = n else { return Ok((0, 0)) };
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
    Ok((n, loaded))
}

/// Social ties from the mini-program: who joined whose group order (拼单) and who paid for a
/// friend's order (代付).
async fn ties(
    src: &Sources,
    txn: &mut Txn,
    q: &mut Quarantine,
    pb: &ProgressBar,
) -> Result<(u64, u64)> {
    let (mut key, mut kind, mut cust, mut other, mut refid, mut at, mut month) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        tsb(),
        StringBuilder::new(),
    );
    let (mut n, mut loaded, mut any) = (0u64, 0u64, false);
    {
        use c::group_orders as G;
        let read_n = read(src, txn, "group_orders", |plan, r| {
            pb.inc(1);
            let Some(id) = r.int(G::ROW_ID) else {
                q.readable(plan, r);
                return;
            };
            // The member and the group's initiator (the owner of the group order).
            let Some(ck) = required_user(src, q, plan, r, G::USER_ID) else {
                return;
            };
            let Some(t) = required_time(q, plan, r, G::JOINED_AT) else {
                return;
            };
            key.append_value(format!("TG:{id}"));
            kind.append_value("group");
            cust.append_value(ck);
            other.append_option(r.key(G::OWNER_ID).and_then(|u| src.keep(format!("U:{u}"))));
            refid.append_option(r.text(G::GROUP_ID));
            at.append_value(ts_micros(t));
            month.append_value(month_of_time(t));
            loaded += 1;
        })
        .await?;
        if let Some(x) = read_n {
            n += x;
            any = true;
        }
    }
    {
        use c::paid_by as B;
        let read_n = read(src, txn, "paid_by", |plan, r| {
            pb.inc(1);
            let Some(id) = r.int(B::ROW_ID) else {
                q.readable(plan, r);
                return;
            };
            let Some(ck) = required_user(src, q, plan, r, B::PAYER_USER_ID) else {
                return;
            };
            let Some(whom) = r.key(B::USER_ID) else {
                q.add("paid_by", row_id(plan, r), "user_id", "missing user", None);
                return;
            };
            let Some(t) = required_time(q, plan, r, B::PAID_AT) else {
                return;
            };
            key.append_value(format!("TP:{id}"));
            kind.append_value("paid_by");
            cust.append_value(ck);
            other.append_option(src.keep(format!("U:{whom}")));
            refid.append_option(r.int(B::ORDER_ID).map(|o| format!("W:{o}")));
            at.append_value(ts_micros(t));
            month.append_value(month_of_time(t));
            loaded += 1;
        })
        .await?;
        if let Some(x) = read_n {
            n += x;
            any = true;
        }
    }
    if !any {
        return Ok((0, 0));
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
