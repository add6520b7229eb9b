//! Reading an entity's rows through its contract ([`crate::contract::Plan`]): from a table or a
//! query on SQLite, MySQL/MariaDB or PostgreSQL, or from CSV, JSON-lines or Parquet files, each
//! row's values converted to canonical ones ([`Row`]). A value that cannot be read is kept as
//! [`Cell::Bad`] with the reason, for the step to quarantine with its row and field.
//!
//! On MySQL and PostgreSQL every mapped column is read as text (`CAST(… AS CHAR/TEXT)`) and
//! parsed here: their DECIMAL, DATETIME, TINYINT, UUID … columns all arrive the same way, and a
//! malformed value is an error on its row rather than a failed query or a silent zero.
//! SQLite's values are read as they are stored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use c360_db::{Backend, Db};
use futures::TryStreamExt;
use sqlx_core::any::AnyValueKind;

use crate::contract::{
    Cell, FileFormat, IncKind, Kind, Location, Origin, Plan, Raw, Resolved, SourceAt, TimeFormat,
};
use crate::error::{EtlError, Result};

/// One row, its values in the entity's field order.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// Where the row is: its position in the read (1-based), and its file for file sources.
    pub line: u64,
    pub file: Option<std::sync::Arc<str>>,
}

impl Row {
    pub fn int(&self, f: usize) -> Option<i64> {
        match &self.cells[f] {
            Cell::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn float(&self, f: usize) -> Option<f64> {
        match &self.cells[f] {
            Cell::Float(v) => Some(*v),
            Cell::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// Text, or an integer written out; None for empty and unreadable values.
    pub fn text(&self, f: usize) -> Option<String> {
        match &self.cells[f] {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(v) => Some(v.to_string()),
            _ => None,
        }
    }
    /// Non-blank text.
    pub fn some_text(&self, f: usize) -> Option<String> {
        self.text(f).filter(|t| !t.trim().is_empty())
    }
    /// A person key, non-blank.
    pub fn key(&self, f: usize) -> Option<String> {
        self.some_text(f)
    }
    /// The value as the checks want it: Ok(None) when empty, Err with the reason when the
    /// source's value could not be read.
    pub fn time(&self, f: usize) -> std::result::Result<Option<chrono::NaiveDateTime>, String> {
        match &self.cells[f] {
            Cell::Time(t) => Ok(Some(*t)),
            Cell::Null => Ok(None),
            Cell::Bad(e) => Err(e.clone()),
            other => Err(format!("not a time: {other:?}")),
        }
    }
    pub fn date(&self, f: usize) -> std::result::Result<Option<chrono::NaiveDate>, String> {
        match &self.cells[f] {
            Cell::Date(d) => Ok(Some(*d)),
            Cell::Time(t) => Ok(Some(t.date())),
            Cell::Null => Ok(None),
            Cell::Bad(e) => Err(e.clone()),
            other => Err(format!("not a date: {other:?}")),
        }
    }
    /// An integer field's value, or why not.
    pub fn checked_int(&self, f: usize) -> std::result::Result<Option<i64>, String> {
        match &self.cells[f] {
            Cell::Int(i) => Ok(Some(*i)),
            Cell::Null => Ok(None),
            Cell::Bad(e) => Err(e.clone()),
            other => Err(format!("not an integer: {other:?}")),
        }
    }
    /// The reason a value could not be read, if it could not.
    pub fn bad(&self, f: usize) -> Option<&str> {
        match &self.cells[f] {
            Cell::Bad(e) => Some(e),
            _ => None,
        }
    }
}

/// What one read saw.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub rows: u64,
    /// The largest incremental value seen (what the next run reads from).
    pub watermark: Option<String>,
}

/// The present entities' sources, connected.
pub struct Sources {
    pub resolved: Resolved,
    dbs: HashMap<String, Db>,
    /// Keys per statement when a whole table is read from MySQL/PostgreSQL by its integer key
    /// (see [`slices`]); [`SLICE_KEYS`] unless the run says otherwise.
    pub slice_keys: i64,
    /// Source ids of erased customers (`M:…`, `U:…`, `PAY:…`): their rows are not loaded, and
    /// an order of theirs loads as an anonymous sale.
    pub erased: std::collections::HashSet<String>,
}

impl Sources {
    /// Connects to every database a present entity reads (each once). A database must exist.
    pub async fn open(resolved: Resolved) -> Result<Sources> {
        let mut dbs = HashMap::new();
        for p in resolved.plans.values() {
            if let SourceAt::Db(url) = &p.at {
                if !dbs.contains_key(&p.source) {
                    let db = Db::connect_existing(url)
                        .await
                        .map_err(|e| EtlError::Source {
                            table: p.source.clone(),
                            reason: e.to_string(),
                        })?;
                    dbs.insert(p.source.clone(), db);
                }
            }
        }
        Ok(Sources {
            resolved,
            dbs,
            slice_keys: SLICE_KEYS,
            erased: Default::default(),
        })
    }

    /// `key` unless it names an erased customer.
    pub fn keep(&self, key: String) -> Option<String> {
        (self.erased.is_empty() || !self.erased.contains(&key)).then_some(key)
    }

    /// Whether `prefix:id` names an erased customer (no key is built while none is erased:
    /// this is asked once per source row).
    pub fn is_erased(&self, prefix: &str, id: &str) -> bool {
        !self.erased.is_empty() && self.erased.contains(&format!("{prefix}:{id}"))
    }

    pub fn plan(&self, entity: &str) -> Option<&Plan> {
        self.resolved.plan(entity)
    }

    pub fn db(&self, source: &str) -> Option<&Db> {
        self.dbs.get(source)
    }

    pub async fn close(&self) {
        for db in self.dbs.values() {
            db.close().await;
        }
    }

    /// Streams the entity's rows after `watermark` (all rows when None or empty), in key
    /// order, at most `limit` of them.
    pub async fn stream(
        &self,
        plan: &Plan,
        watermark: Option<&str>,
        limit: Option<u64>,
        each: impl FnMut(&Row),
    ) -> Result<Read> {
        match &plan.at {
            SourceAt::Db(_) => {
                let db = self.dbs.get(&plan.source).ok_or_else(|| EtlError::Source {
                    table: plan.spec.name.into(),
                    reason: format!("source {} is not connected", plan.source),
                })?;
                stream_db(db, plan, watermark, limit, self.slice_keys, each).await
            }
            SourceAt::Dir(dir) => stream_files(dir, plan, limit, each),
        }
    }

    /// How many rows the entity has in its source.
    pub async fn count(&self, plan: &Plan) -> Result<u64> {
        match &plan.at {
            SourceAt::Db(_) => {
                let db = self.dbs.get(&plan.source).ok_or_else(|| EtlError::Source {
                    table: plan.spec.name.into(),
                    reason: format!("source {} is not connected", plan.source),
                })?;
                let sql = format!("SELECT COUNT(*) AS n FROM {}", from(db.backend, plan));
                let rows = db.fetch_all(&sql).await.map_err(src_err(plan))?;
                Ok(rows
                    .first()
                    .and_then(|r| c360_db::get_i64(r, "n"))
                    .unwrap_or(0) as u64)
            }
            SourceAt::Dir(dir) => Ok(stream_files(dir, plan, None, |_| {})?.rows),
        }
    }

    /// The mapped columns the source lacks (empty when the mapping fits the live schema); an
    /// error when the table, query or files cannot be read at all.
    pub async fn missing_columns(&self, plan: &Plan) -> Result<Vec<String>> {
        let wanted = mapped_columns(plan);
        match &plan.at {
            SourceAt::Db(_) => {
                let db = self.dbs.get(&plan.source).ok_or_else(|| EtlError::Source {
                    table: plan.spec.name.into(),
                    reason: format!("source {} is not connected", plan.source),
                })?;
                let b = db.backend;
                let probe = |cols: &[&str]| {
                    format!(
                        "SELECT {} FROM {} WHERE 1 = 0",
                        cols.iter()
                            .map(|c| col_ref(b, plan, c))
                            .collect::<Vec<_>>()
                            .join(", "),
                        from(b, plan)
                    )
                };
                let all: Vec<&str> = wanted.iter().map(String::as_str).collect();
                if db.fetch_all(&probe(&all)).await.is_ok() {
                    return Ok(vec![]);
                }
                // The table or query itself must work; then each column on its own.
                let bare = format!("SELECT 1 FROM {} WHERE 1 = 0", from(b, plan));
                if let Err(e) = db.fetch_all(&bare).await {
                    return Err(src_err(plan)(e));
                }
                let mut missing = Vec::new();
                for c in &wanted {
                    if db.fetch_all(&probe(&[c.as_str()])).await.is_err() {
                        missing.push(c.clone());
                    }
                }
                Ok(missing)
            }
            SourceAt::Dir(dir) => {
                let have = file_columns(dir, plan)?;
                Ok(wanted.into_iter().filter(|c| !have.contains(c)).collect())
            }
        }
    }
}

fn src_err(plan: &Plan) -> impl FnOnce(c360_db::DbError) -> EtlError + '_ {
    move |e| EtlError::Source {
        table: format!("{} ({})", plan.spec.name, plan.place()),
        reason: e.to_string(),
    }
}

/// The source columns a plan reads: its mapped fields' and the incremental column.
pub fn mapped_columns(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in &plan.fields {
        if let Origin::Column(c) = &f.origin {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    if let Some(i) = &plan.incremental {
        if !out.contains(&i.column) {
            out.push(i.column.clone());
        }
    }
    out
}

fn quote(b: Backend, ident: &str) -> String {
    // SQLite reads a double-quoted name it cannot resolve as a string literal (a missing column
    // would read as its own name): backticks, which it only ever reads as names.
    let q = if b == Backend::Postgres { '"' } else { '`' };
    ident
        .split('.')
        .map(|p| format!("{q}{p}{q}"))
        .collect::<Vec<_>>()
        .join(".")
}

fn from(b: Backend, plan: &Plan) -> String {
    match &plan.location {
        Location::Table(t) => quote(b, t),
        Location::Query(q) => format!("({}) src", q.trim()),
        Location::Files { .. } => String::new(),
    }
}

fn col_ref(b: Backend, plan: &Plan, c: &str) -> String {
    match &plan.location {
        Location::Query(_) => format!("src.{}", quote(b, c)),
        _ => quote(b, c),
    }
}

/// A column as this backend should return it (text on the servers, see the module doc).
fn read_expr(b: Backend, plan: &Plan, c: &str) -> String {
    let r = col_ref(b, plan, c);
    match b {
        Backend::Sqlite => r,
        Backend::MySql => format!("CAST({r} AS CHAR)"),
        Backend::Postgres => format!("CAST({r} AS TEXT)"),
    }
}

/// A slice of an integer key's range that one statement reads (see [`slices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slice {
    /// Rows whose key is NULL.
    Null,
    /// `lo <= key < hi`.
    Between(i64, i64),
    /// `lo <= key`: the last slice, open so rows added during the read are read as one
    /// statement would.
    From(i64),
}

/// The SELECT for one read and its bound values: the watermark (if any), then the slice's
/// bounds (if any).
fn select(
    b: Backend,
    plan: &Plan,
    watermark: Option<&str>,
    limit: Option<u64>,
    slice: Option<Slice>,
) -> (String, Vec<c360_db::Value>) {
    let cols = mapped_columns(plan);
    let list: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} AS c{i}", read_expr(b, plan, c)))
        .collect();
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), from(b, plan));
    let mut binds: Vec<c360_db::Value> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if let (Some(inc), Some(wm)) = (&plan.incremental, watermark.filter(|w| !w.is_empty())) {
        let c = col_ref(b, plan, &inc.column);
        let numeric = inc.kind == IncKind::Id || inc.time_format.numeric();
        let op = match inc.kind {
            IncKind::Id => ">",
            IncKind::UpdatedAt => ">=",
        };
        let ph = b.ph(1);
        if numeric {
            // A watermark that is not a number was not written by this code: read everything.
            if let Ok(i) = wm.trim().parse::<i64>() {
                binds.push(i.into());
                conds.push(format!("{c} {op} {ph}"));
            }
        } else {
            let rhs = match (b, &inc.time_format) {
                // A native timestamp compared with a bound text needs the type said.
                (Backend::Postgres, TimeFormat::Datetime) if has_offset(wm) => {
                    format!("CAST({ph} AS TIMESTAMPTZ)")
                }
                (Backend::Postgres, TimeFormat::Datetime) => format!("CAST({ph} AS TIMESTAMP)"),
                _ => ph,
            };
            binds.push(wm.to_string().into());
            conds.push(format!("{c} {op} {rhs}"));
        }
    }
    // Key order when the key is a column; else the order the incremental column gives.
    let key_col = plan
        .column(plan.spec.key)
        .map(str::to_string)
        .or_else(|| plan.incremental.as_ref().map(|i| i.column.clone()));
    if let (Some(s), Some(k)) = (slice, plan.column(plan.spec.key)) {
        let k = col_ref(b, plan, k);
        match s {
            Slice::Null => conds.push(format!("{k} IS NULL")),
            Slice::From(lo) => {
                binds.push(lo.into());
                conds.push(format!("{k} >= {}", b.ph(binds.len())));
            }
            Slice::Between(lo, hi) => {
                binds.push(lo.into());
                binds.push(hi.into());
                conds.push(format!(
                    "{k} >= {} AND {k} < {}",
                    b.ph(binds.len() - 1),
                    b.ph(binds.len())
                ));
            }
        }
    }
    if !conds.is_empty() {
        sql.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    if let Some(k) = key_col {
        sql.push_str(&format!(" ORDER BY {}", col_ref(b, plan, &k)));
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    (sql, binds)
}

/// Keys per slice of a whole-table read from MySQL/PostgreSQL (the default of
/// `EtlConfig::source_slice`).
pub const SLICE_KEYS: i64 = 1 << 20;
/// At most this many slices, however wide the key range.
const MAX_SLICES: i64 = 4096;
/// Rows per block handed from a server read's task, and blocks it may run ahead.
const BLOCK_ROWS: usize = 4096;
const BLOCKS_AHEAD: usize = 8;

/// How a read from MySQL/PostgreSQL is cut into statements: a whole-table read of a table
/// whose key is an integer column becomes one statement per range of `SLICE_KEYS` keys (plus
/// one for NULL keys, where the server's `ORDER BY` puts them), read one after the other on
/// their own connections, the next one started while the one before is handed over. No
/// statement then holds a server's snapshot or result buffers for the whole table, and the
/// rows come in the same order as from one statement. Incremental reads, limited reads, queries
/// and text keys stay one statement (`[None]`).
async fn slices(
    db: &Db,
    plan: &Plan,
    watermark: Option<&str>,
    limit: Option<u64>,
    slice_keys: i64,
) -> Result<Vec<Option<Slice>>> {
    let one = vec![None];
    let (Location::Table(_), Some(k), None) = (&plan.location, plan.column(plan.spec.key), limit)
    else {
        return Ok(one);
    };
    if watermark.is_some_and(|w| !w.is_empty()) {
        return Ok(one);
    }
    let k = col_ref(db.backend, plan, k);
    let sql = format!(
        "SELECT MIN({k}) AS lo, MAX({k}) AS hi FROM {}",
        from(db.backend, plan)
    );
    let rows = db.fetch_all(&sql).await.map_err(src_err(plan))?;
    let int = |i: usize| match rows
        .first()
        .and_then(|r| r.values.get(i))
        .map(|v| raw_of(&v.kind))
    {
        Some(Raw::Int(x)) => Some(x),
        _ => None,
    };
    let (Some(lo), Some(hi)) = (int(0), int(1)) else {
        // Empty, or a key the server does not hold as an integer: one statement.
        return Ok(one);
    };
    // hi >= lo, so the width is positive; in 128 bits nothing overflows.
    let width = (i128::from(hi) - i128::from(lo) + 1).unsigned_abs();
    let span = u128::from(slice_keys.max(1).unsigned_abs())
        .max(width.div_ceil(u128::from(MAX_SLICES.unsigned_abs())));
    let n = width.div_ceil(span);
    let (n, span) = (n as i128, span as i128);
    if n <= 1 {
        return Ok(one);
    }
    let mut out = Vec::with_capacity(n as usize + 1);
    // MySQL sorts NULL first, PostgreSQL last.
    if db.backend == Backend::MySql {
        out.push(Some(Slice::Null));
    }
    for i in 0..n {
        let a = (i128::from(lo) + i * span) as i64;
        if i + 1 == n {
            out.push(Some(Slice::From(a)));
        } else {
            out.push(Some(Slice::Between(
                a,
                (i128::from(lo) + (i + 1) * span) as i64,
            )));
        }
    }
    if db.backend == Backend::Postgres {
        out.push(Some(Slice::Null));
    }
    Ok(out)
}

fn has_offset(v: &str) -> bool {
    let t = v.trim();
    t.ends_with('Z')
        || t.get(19..)
            .is_some_and(|tail| tail.contains('+') || tail.contains('-'))
}

fn raw_of(v: &AnyValueKind) -> Raw<'_> {
    match v {
        AnyValueKind::Null(_) => Raw::Null,
        AnyValueKind::Bool(b) => Raw::Bool(*b),
        AnyValueKind::SmallInt(i) => Raw::Int(i64::from(*i)),
        AnyValueKind::Integer(i) => Raw::Int(i64::from(*i)),
        AnyValueKind::BigInt(i) => Raw::Int(*i),
        AnyValueKind::Real(f) => Raw::Float(f64::from(*f)),
        AnyValueKind::Double(f) => Raw::Float(*f),
        AnyValueKind::Text(s) => Raw::Text(Cow::Borrowed(s.as_str())),
        AnyValueKind::TextSlice(s) => Raw::Text(Cow::Borrowed(s)),
        AnyValueKind::Blob(b) => Raw::Text(String::from_utf8_lossy(b)),
        // A kind added by a later sqlx: read as empty rather than guessed at.
        _ => Raw::Null,
    }
}

/// Tracks the largest incremental value seen.
struct Mark {
    numeric: bool,
    text: Option<String>,
    int: Option<i64>,
}

impl Mark {
    fn new(plan: &Plan) -> Option<Mark> {
        plan.incremental.as_ref().map(|i| Mark {
            numeric: i.kind == IncKind::Id || i.time_format.numeric(),
            text: None,
            int: None,
        })
    }
    fn see(&mut self, r: &Raw<'_>) {
        if self.numeric {
            let v = match r {
                Raw::Int(i) => Some(*i),
                Raw::Float(f) => Some(*f as i64),
                Raw::Text(t) => t.trim().parse().ok(),
                _ => None,
            };
            if let Some(v) = v {
                self.int = Some(self.int.map_or(v, |m| m.max(v)));
            }
        } else {
            let v = match r {
                Raw::Null => return,
                other => other.show(),
            };
            if !v.is_empty() && self.text.as_ref().is_none_or(|m| v > *m) {
                self.text = Some(v);
            }
        }
    }
    fn get(self) -> Option<String> {
        if self.numeric {
            self.int.map(|i| i.to_string())
        } else {
            self.text
        }
    }
}

async fn stream_db(
    db: &Db,
    plan: &Plan,
    watermark: Option<&str>,
    limit: Option<u64>,
    slice_keys: i64,
    mut each: impl FnMut(&Row),
) -> Result<Read> {
    if db.backend == Backend::Sqlite {
        let (sql, binds) = select(db.backend, plan, watermark, limit, None);
        if c360_db::bulk::sqlite_file(&db.url).is_some() {
            return stream_sqlite(db, plan, &sql, &binds, each);
        }
        // An in-memory SQLite database (tests): through the pool that holds it.
        let mut rows = Decode::new(plan);
        let mut q = c360_db::query(sql);
        for v in binds {
            q = match v {
                c360_db::Value::I(i) => q.bind(i),
                c360_db::Value::S(t) => q.bind(t),
                _ => q,
            };
        }
        let mut s = q.fetch(&db.pool);
        while let Some(r) = s.try_next().await.map_err(|e| EtlError::Source {
            table: format!("{} ({})", plan.spec.name, plan.place()),
            reason: e.to_string(),
        })? {
            each(rows.next(|i| r.values.get(i).map(|v| raw_of(&v.kind))));
        }
        return Ok(rows.read());
    }
    // MySQL/MariaDB and PostgreSQL: their own drivers, slice after slice, each read on a task
    // of its own while the rows before it are handed over.
    let slices = slices(db, plan, watermark, limit, slice_keys).await?;
    let start = |s: Option<Slice>| {
        let (sql, binds) = select(db.backend, plan, watermark, limit, s);
        c360_db::server::read_text(&db.url, sql, binds, BLOCK_ROWS, BLOCKS_AHEAD)
            .map_err(src_err(plan))
    };
    let mut rows = Decode::new(plan);
    let mut next = slices.first().map(|s| start(*s)).transpose()?;
    let mut k = 0;
    while let Some(mut cur) = next.take() {
        k += 1;
        next = slices.get(k).map(|s| start(*s)).transpose()?;
        while let Some(block) = cur.next().await.map_err(src_err(plan))? {
            for r in 0..block.rows() {
                each(rows.next(|i| {
                    (i < block.cols()).then(|| {
                        block
                            .get(r, i)
                            .map_or(Raw::Null, |b| Raw::Text(String::from_utf8_lossy(b)))
                    })
                }));
            }
        }
    }
    Ok(rows.read())
}

/// Turns a database row's values into a [`Row`] (in the entity's field order, counted from 1)
/// and follows the incremental column: one per read, whichever driver reads.
struct Decode<'p> {
    plan: &'p Plan,
    /// Field -> position in the SELECT (None for constants and missing fields).
    at: Vec<Option<usize>>,
    /// The incremental column's position.
    wm_at: Option<usize>,
    mark: Option<Mark>,
    row: Row,
}

impl<'p> Decode<'p> {
    fn new(plan: &'p Plan) -> Decode<'p> {
        let cols = mapped_columns(plan);
        let at = plan
            .fields
            .iter()
            .map(|f| match &f.origin {
                Origin::Column(c) => cols.iter().position(|x| x == c),
                _ => None,
            })
            .collect();
        let wm_at = plan
            .incremental
            .as_ref()
            .and_then(|i| cols.iter().position(|x| *x == i.column));
        Decode {
            plan,
            at,
            wm_at,
            mark: Mark::new(plan),
            row: Row {
                cells: Vec::with_capacity(plan.fields.len()),
                line: 0,
                file: None,
            },
        }
    }

    /// The next row, from its values by position in the SELECT.
    fn next<'v>(&mut self, value: impl Fn(usize) -> Option<Raw<'v>>) -> &Row {
        self.row.line += 1;
        self.row.cells.clear();
        for (f, a) in self.plan.fields.iter().zip(&self.at) {
            let raw = a.and_then(&value).unwrap_or(Raw::Null);
            self.row.cells.push(f.convert(raw));
        }
        if let (Some(m), Some(v)) = (self.mark.as_mut(), self.wm_at.and_then(&value)) {
            m.see(&v);
        }
        &self.row
    }

    /// What the read saw.
    fn read(self) -> Read {
        Read {
            rows: self.row.line,
            watermark: self.mark.and_then(Mark::get),
        }
    }
}

fn raw_of_val<'a>(v: &c360_db::bulk::Val<'a>) -> Raw<'a> {
    use c360_db::bulk::Val;
    match *v {
        Val::Null => Raw::Null,
        Val::Int(i) => Raw::Int(i),
        Val::Float(f) => Raw::Float(f),
        Val::Text(t) => Raw::Text(Cow::Borrowed(t)),
        Val::Blob(b) => Raw::Text(String::from_utf8_lossy(b)),
    }
}

/// A SQLite file's rows through SQLite's own API on this thread ([`c360_db::bulk::sqlite_each`]):
/// the same statement, values and row numbers as through sqlx, without an owned `Any` value per
/// column sent from sqlx's worker thread.
fn stream_sqlite(
    db: &Db,
    plan: &Plan,
    sql: &str,
    binds: &[c360_db::Value],
    mut each: impl FnMut(&Row),
) -> Result<Read> {
    let mut rows = Decode::new(plan);
    c360_db::bulk::sqlite_each(&db.url, sql, binds, |vals| {
        each(rows.next(|i| vals.get(i).map(raw_of_val)));
    })
    .map_err(src_err(plan))?;
    Ok(rows.read())
}

// ---------------------------------------------------------------------------------------------
// Files.

/// The files a plan names, sorted: a path (absolute, or under the source's directory) whose
/// last part may hold `*` and `?`.
pub fn files_of(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(pattern);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains('*') && !name.contains('?') {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(EtlError::Source {
                table: pattern.into(),
                reason: format!("no file {}", full.display()),
            })
        };
    }
    let parent = full.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(parent)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| glob_match(&name, &n.to_string_lossy()))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(EtlError::Source {
            table: pattern.into(),
            reason: format!("no file matches {}", full.display()),
        });
    }
    Ok(out)
}

fn glob_match(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn format_of(path: &Path, declared: Option<FileFormat>) -> Result<FileFormat> {
    if let Some(f) = declared {
        return Ok(f);
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "csv" | "tsv" | "txt" => Ok(FileFormat::Csv),
        "jsonl" | "ndjson" | "json" => Ok(FileFormat::Jsonl),
        "parquet" | "pq" => Ok(FileFormat::Parquet),
        _ => Err(EtlError::Source {
            table: path.display().to_string(),
            reason: "unknown file type: say format = \"csv\", \"jsonl\" or \"parquet\"".into(),
        }),
    }
}

/// One record of a file, by column name.
trait Record {
    fn get(&self, col: &str) -> Raw<'_>;
}

struct CsvRecord<'a> {
    names: &'a HashMap<String, usize>,
    fields: Vec<&'a str>,
}

impl Record for CsvRecord<'_> {
    fn get(&self, col: &str) -> Raw<'_> {
        match self.names.get(col).and_then(|i| self.fields.get(*i)) {
            Some(&"") => Raw::Null,
            Some(v) => Raw::Text(Cow::Borrowed(v)),
            None => Raw::Null,
        }
    }
}

impl Record for serde_json::Map<String, serde_json::Value> {
    fn get(&self, col: &str) -> Raw<'_> {
        match serde_json::Map::get(self, col) {
            None | Some(serde_json::Value::Null) => Raw::Null,
            Some(serde_json::Value::Bool(b)) => Raw::Bool(*b),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => Raw::Int(i),
                None => Raw::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Some(serde_json::Value::String(s)) => Raw::Text(Cow::Borrowed(s)),
            Some(other) => Raw::Text(Cow::Owned(other.to_string())),
        }
    }
}

/// Reads a plan's files. A row whose key field is missing is keyed by its content: the hash of
/// its mapped values and how many identical rows came before it, so a re-import keys it the same.
fn stream_files(
    dir: &Path,
    plan: &Plan,
    limit: Option<u64>,
    mut each: impl FnMut(&Row),
) -> Result<Read> {
    let Location::Files {
        pattern,
        format,
        delimiter,
        header,
    } = &plan.location
    else {
        return Ok(Read::default());
    };
    let key_missing = plan.fields[plan.spec.key].origin == Origin::Missing;
    let mut seen: HashMap<i64, u64> = HashMap::new();
    let n = std::cell::Cell::new(0u64);
    let mut row = Row::default();
    let mut emit = |rec: &dyn Record, file: &std::sync::Arc<str>, line: u64| -> bool {
        if limit.is_some_and(|l| n.get() >= l) {
            return false;
        }
        n.set(n.get() + 1);
        row.line = line;
        row.file = Some(file.clone());
        row.cells.clear();
        let mut content = String::new();
        for f in &plan.fields {
            let raw = match &f.origin {
                Origin::Column(c) => rec.get(c),
                _ => Raw::Null,
            };
            if key_missing {
                content.push_str(&raw.show());
                content.push('\u{1f}');
            }
            row.cells.push(f.convert(raw));
        }
        if key_missing {
            let base = crate::contract::text_id(&content);
            let k = seen.entry(base).or_insert(0);
            *k += 1;
            row.cells[plan.spec.key] =
                Cell::Int(crate::contract::text_id(&format!("{content}#{k}")));
        }
        each(&row);
        true
    };
    for path in files_of(dir, pattern)? {
        let file: std::sync::Arc<str> = path.display().to_string().into();
        let io = |e: std::io::Error| EtlError::Source {
            table: file.to_string(),
            reason: e.to_string(),
        };
        match format_of(&path, *format)? {
            FileFormat::Csv => {
                let text = std::fs::read_to_string(&path).map_err(io)?;
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                let delim = delimiter.as_deref().unwrap_or(",");
                if delim == "whitespace" {
                    let mut lines = text
                        .lines()
                        .enumerate()
                        .filter(|(_, l)| !l.trim().is_empty());
                    let names = header_names(if *header {
                        lines
                            .next()
                            .map(|(_, l)| l.split_whitespace().map(str::to_string).collect())
                    } else {
                        None
                    });
                    for (i, l) in lines {
                        let rec = CsvRecord {
                            names: &names,
                            fields: l.split_whitespace().collect(),
                        };
                        if !emit(&rec, &file, i as u64 + 1) {
                            break;
                        }
                    }
                } else {
                    let d = csv_delimiter(delim, &file)?;
                    let mut rd = csv::ReaderBuilder::new()
                        .delimiter(d)
                        .has_headers(*header)
                        .flexible(true)
                        .from_reader(text.as_bytes());
                    let names = header_names(if *header {
                        Some(
                            rd.headers()
                                .map_err(|e| EtlError::Source {
                                    table: file.to_string(),
                                    reason: e.to_string(),
                                })?
                                .iter()
                                .map(|h| h.trim().to_string())
                                .collect(),
                        )
                    } else {
                        None
                    });
                    let mut rec = csv::StringRecord::new();
                    loop {
                        match rd.read_record(&mut rec) {
                            Ok(false) => break,
                            Ok(true) => {
                                let line = rec.position().map_or(0, |p| p.line());
                                let r = CsvRecord {
                                    names: &names,
                                    fields: rec.iter().collect(),
                                };
                                if !emit(&r, &file, line) {
                                    break;
                                }
                            }
                            Err(e) => {
                                return Err(EtlError::Source {
                                    table: file.to_string(),
                                    reason: format!("not valid CSV: {e}"),
                                })
                            }
                        }
                    }
                }
            }
            FileFormat::Jsonl => {
                let text = std::fs::read_to_string(&path).map_err(io)?;
                for (i, l) in text.lines().enumerate() {
                    if l.trim().is_empty() {
                        continue;
                    }
                    let obj: serde_json::Map<String, serde_json::Value> =
                        match serde_json::from_str(l) {
                            Ok(o) => o,
                            Err(e) => {
                                return Err(EtlError::Source {
                                    table: file.to_string(),
                                    reason: format!("line {}: not a JSON object: {e}", i + 1),
                                })
                            }
                        };
                    if !emit(&obj, &file, i as u64 + 1) {
                        break;
                    }
                }
            }
            FileFormat::Parquet => {
                let mut line = 0u64;
                for b in c360_warehouse::manifest::read_parquet(&path)? {
                    let names: HashMap<String, usize> = b
                        .schema()
                        .fields()
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (f.name().clone(), i))
                        .collect();
                    for r in 0..b.num_rows() {
                        line += 1;
                        let rec = ArrowRecord {
                            names: &names,
                            batch: &b,
                            row: r,
                        };
                        if !emit(&rec, &file, line) {
                            break;
                        }
                    }
                }
            }
        }
        if limit.is_some_and(|l| n.get() >= l) {
            break;
        }
    }
    Ok(Read {
        rows: n.get(),
        watermark: None,
    })
}

/// A CSV delimiter from the contract: one character, or `\t` / `tab`.
fn csv_delimiter(d: &str, file: &str) -> Result<u8> {
    match d {
        "\\t" | "tab" => Ok(b'\t'),
        d if d.len() == 1 => Ok(d.as_bytes()[0]),
        d => Err(EtlError::Source {
            table: file.to_string(),
            reason: format!("delimiter {d:?} is not one character, \"tab\" or \"whitespace\""),
        }),
    }
}

/// Column name -> position: the header's names, and positions `1`, `2` … either way.
fn header_names(header: Option<Vec<String>>) -> HashMap<String, usize> {
    let mut m: HashMap<String, usize> = (0..256).map(|i| ((i + 1).to_string(), i)).collect();
    if let Some(h) = header {
        for (i, n) in h.into_iter().enumerate() {
            m.insert(n, i);
        }
    }
    m
}

struct ArrowRecord<'a> {
    names: &'a HashMap<String, usize>,
    batch: &'a c360_warehouse::arrow::record_batch::RecordBatch,
    row: usize,
}

impl Record for ArrowRecord<'_> {
    fn get(&self, col: &str) -> Raw<'_> {
        use c360_warehouse::arrow::array::{
            Array, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
            Int64Array, Int8Array, UInt32Array,
        };
        use c360_warehouse::arrow::datatypes::DataType;
        let Some(a) = self.names.get(col).map(|i| self.batch.column(*i)) else {
            return Raw::Null;
        };
        let i = self.row;
        if a.is_null(i) {
            return Raw::Null;
        }
        macro_rules! int {
            ($t:ty) => {
                a.as_any()
                    .downcast_ref::<$t>()
                    .map_or(Raw::Null, |x| Raw::Int(i64::from(x.value(i))))
            };
        }
        match a.data_type() {
            DataType::Int8 => int!(Int8Array),
            DataType::Int16 => int!(Int16Array),
            DataType::Int32 => int!(Int32Array),
            DataType::UInt32 => int!(UInt32Array),
            DataType::Int64 => a
                .as_any()
                .downcast_ref::<Int64Array>()
                .map_or(Raw::Null, |x| Raw::Int(x.value(i))),
            DataType::Float32 => a
                .as_any()
                .downcast_ref::<Float32Array>()
                .map_or(Raw::Null, |x| Raw::Float(f64::from(x.value(i)))),
            DataType::Float64 => a
                .as_any()
                .downcast_ref::<Float64Array>()
                .map_or(Raw::Null, |x| Raw::Float(x.value(i))),
            DataType::Boolean => a
                .as_any()
                .downcast_ref::<BooleanArray>()
                .map_or(Raw::Null, |x| Raw::Bool(x.value(i))),
            DataType::Utf8 => Raw::Text(Cow::Borrowed(a.as_string::<i32>().value(i))),
            DataType::LargeUtf8 => Raw::Text(Cow::Borrowed(a.as_string::<i64>().value(i))),
            DataType::Utf8View => Raw::Text(Cow::Borrowed(a.as_string_view().value(i))),
            _ => match c360_warehouse::arrow::util::display::array_value_to_string(a, i) {
                Ok(s) => Raw::Text(Cow::Owned(s)),
                Err(_) => Raw::Null,
            },
        }
    }
}

/// The column names a plan's files have (the union over its files).
fn file_columns(dir: &Path, plan: &Plan) -> Result<Vec<String>> {
    let Location::Files {
        pattern,
        format,
        delimiter,
        header,
    } = &plan.location
    else {
        return Ok(vec![]);
    };
    let mut out: Vec<String> = Vec::new();
    let mut add = |c: String| {
        if !out.contains(&c) {
            out.push(c)
        }
    };
    for path in files_of(dir, pattern)? {
        match format_of(&path, *format)? {
            FileFormat::Csv => {
                let text = std::fs::read_to_string(&path)?;
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let delim = delimiter.as_deref().unwrap_or(",");
                let cells: Vec<String> = if delim == "whitespace" {
                    first.split_whitespace().map(str::to_string).collect()
                } else {
                    let mut rd = csv::ReaderBuilder::new()
                        .delimiter(csv_delimiter(delim, &path.display().to_string())?)
                        .has_headers(false)
                        .flexible(true)
                        .from_reader(first.as_bytes());
                    rd.records()
                        .next()
                        .and_then(|r| r.ok())
                        .map(|r| r.iter().map(|c| c.trim().to_string()).collect())
                        .unwrap_or_default()
                };
                if *header {
                    cells.into_iter().for_each(&mut add);
                } else {
                    (1..=cells.len()).for_each(|i| add(i.to_string()));
                }
            }
            FileFormat::Jsonl => {
                let text = std::fs::read_to_string(&path)?;
                for l in text.lines().filter(|l| !l.trim().is_empty()).take(1000) {
                    if let Ok(o) =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l)
                    {
                        o.keys().cloned().for_each(&mut add);
                    }
                }
            }
            FileFormat::Parquet => {
                for b in c360_warehouse::manifest::read_parquet(&path)?
                    .iter()
                    .take(1)
                {
                    b.schema()
                        .fields()
                        .iter()
                        .for_each(|f| add(f.name().clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Whether a plan's field is a time read from text (for messages).
pub fn is_time(plan: &Plan, f: usize) -> bool {
    plan.fields[f].spec.kind == Kind::Time
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        assert!(glob_match("orders*.csv", "orders-2025.csv"));
        assert!(glob_match("*.csv", ".csv"));
        assert!(!glob_match("orders*.csv", "items.csv"));
        assert!(glob_match("o?.txt", "o1.txt"));
        assert!(!glob_match("o?.txt", "o12.txt"));
    }

    #[test]
    fn the_select_quotes_names_and_binds_the_watermark() {
        let c = crate::contract::Contract::simulator().with_urls("pos.db", "wx.db");
        let r = c.resolve().unwrap();
        let p = r.plan("orders").unwrap();
        let (sql, b) = select(Backend::MySql, p, Some("2025-01-01 00:00:00"), None, None);
        assert!(sql.contains("CAST(`order_time` AS CHAR)"), "{sql}");
        assert!(sql.contains("WHERE `updated_at` >= ?"), "{sql}");
        assert!(sql.ends_with("ORDER BY `order_id`"), "{sql}");
        assert!(matches!(b.as_slice(), [c360_db::Value::S(_)]));
        let p = r.plan("events").unwrap();
        let (sql, b) = select(Backend::Postgres, p, Some("41"), Some(3), None);
        assert!(sql.contains("WHERE \"event_id\" > $1"), "{sql}");
        assert!(sql.ends_with("LIMIT 3"), "{sql}");
        assert!(matches!(b.as_slice(), [c360_db::Value::I(41)]));
        // A slice of the key range: its bounds bound after the watermark's.
        let (sql, b) = select(
            Backend::Postgres,
            p,
            Some("41"),
            None,
            Some(Slice::Between(7, 9)),
        );
        assert!(
            sql.contains(
                "WHERE \"event_id\" > $1 AND \"event_id\" >= $2 AND \"event_id\" < $3 ORDER BY"
            ),
            "{sql}"
        );
        assert!(matches!(
            b.as_slice(),
            [
                c360_db::Value::I(41),
                c360_db::Value::I(7),
                c360_db::Value::I(9)
            ]
        ));
        let (sql, b) = select(Backend::MySql, p, None, None, Some(Slice::Null));
        assert!(sql.contains("WHERE `event_id` IS NULL ORDER BY"), "{sql}");
        assert!(b.is_empty());
        let p = r.plan("group_orders").unwrap();
        let (sql, _) = select(Backend::Sqlite, p, None, None, None);
        assert!(sql.contains(") src ORDER BY src.`row_id`"), "{sql}");
    }

    /// The same orders as CSV, JSON lines and Parquet read to the same canonical rows, keyed
    /// the same way by their content (no order id), with the n-th identical row told apart.
    #[test]
    fn csv_jsonl_and_parquet_read_alike() {
        use c360_warehouse::arrow::array::{Float64Array, StringArray};
        use c360_warehouse::arrow::datatypes::{DataType, Field, Schema};
        use c360_warehouse::datafusion::parquet::arrow::ArrowWriter;
        let d = tempfile::tempdir().unwrap();
        let rows = [
            ("C1", "2024-01-02", 12.5),
            ("C2", "2024-02-03", 7.0),
            ("C1", "2024-01-02", 12.5),
        ];
        let mut csv = String::from("customer,date,amount\n");
        let mut jsonl = String::new();
        for (c, t, a) in rows {
            csv.push_str(&format!("{c},{t},{a}\n"));
            jsonl.push_str(&format!(
                "{{\"customer\": \"{c}\", \"date\": \"{t}\", \"amount\": {a}}}\n"
            ));
        }
        std::fs::write(d.path().join("o.csv"), csv).unwrap();
        std::fs::write(d.path().join("o.jsonl"), jsonl).unwrap();
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Utf8, false),
            Field::new("date", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, false),
        ]));
        let b = c360_warehouse::arrow::record_batch::RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                std::sync::Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                std::sync::Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(d.path().join("o.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, schema, None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        let mut seen = Vec::new();
        for file in ["o.csv", "o.jsonl", "o.parquet"] {
            let c = crate::contract::Contract::from_toml(&format!(
                "[sources.f]\ndir = {:?}\n[entities.orders]\nsource = \"f\"\nfile = {file:?}\nmissing = [\"order_id\"]\n\
                 money = \"yuan\"\ntime_format = \"%Y-%m-%d\"\ncolumns = {{ member_id = \"customer\", order_time = \"date\", total = \"amount\", status = {{ value = \"paid\" }} }}\n",
                d.path().display().to_string()
            ))
            .unwrap();
            let r = c.resolve().unwrap();
            let plan = r.plan("orders").unwrap();
            let mut got = Vec::new();
            let read = stream_files(d.path(), plan, None, |row| {
                got.push(row.cells.clone());
            })
            .unwrap();
            assert_eq!(read.rows, 3, "{file}");
            use crate::contract::orders as O;
            assert_eq!(got[0][O::TOTAL], Cell::Int(1250), "{file}");
            assert_eq!(got[0][O::MEMBER_ID], Cell::Text("C1".into()), "{file}");
            assert_eq!(got[0][O::STATUS], Cell::Text("paid".into()), "{file}");
            // Identical rows get distinct keys; the same row in any file the same key.
            assert_ne!(got[0][O::ORDER_ID], got[2][O::ORDER_ID], "{file}");
            seen.push(got);
        }
        assert_eq!(seen[0], seen[1], "CSV and JSON lines");
        assert_eq!(seen[0], seen[2], "CSV and Parquet");
    }
}
