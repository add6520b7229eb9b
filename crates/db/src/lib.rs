//! Database access shared by the simulator, the ETL sources and the metastore: one sqlx `Any`
//! code path for SQLite (default, embedded), MySQL/MariaDB and PostgreSQL, chosen by URL.
//!
//! It knows how to connect (creating the database or SQLite file if missing), how to run a
//! statement with bound values on any backend (callers write `?`; PostgreSQL gets `$n`), how to
//! insert many rows per statement, transactions, and how to apply numbered migrations. It holds
//! no schema: the metastore and the simulator bring their own.

use std::str::FromStr;

use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::{Any, AnyPool, Arguments, Executor};

pub use sqlx;

pub mod bulk;
pub mod migrate;
pub mod server;
pub mod tx;

/// A query from SQL this crate's callers assemble from their own fixed fragments; every value
/// is bound, never spliced. (sqlx 0.9 asks for this assertion on non-literal SQL.)
pub fn query(sql: impl Into<String>) -> sqlx::query::Query<'static, Any, AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql.into()))
}

pub(crate) fn query_with(
    sql: String,
    args: AnyArguments,
) -> sqlx::query::Query<'static, Any, AnyArguments> {
    sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL '{0}': use sqlite://path, mysql://… or postgres://…")]
    Url(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("schema migration: {0}")]
    Migration(String),
    #[error("database error on {what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: sqlx::Error,
    },
}

pub type Result<T> = std::result::Result<T, DbError>;

/// Which server a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Backend::MySql)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::Url(redact(url)))
        }
    }
    /// The n-th (1-based) bind placeholder.
    pub fn ph(self, n: usize) -> String {
        match self {
            Backend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }
    /// Rewrites `?` placeholders (outside quoted literals) to this backend's form.
    pub fn placeholders(self, sql: &str) -> String {
        if self != Backend::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let (mut n, mut quote) = (0, None::<char>);
        for c in sql.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    out.push(c);
                }
                (Some(q), _) if c == q => {
                    quote = None;
                    out.push(c);
                }
                (None, '?') => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(c),
            }
        }
        out
    }
    /// Column type for a 64-bit float.
    pub fn double(self) -> &'static str {
        "DOUBLE PRECISION"
    }
    /// Largest number of bind parameters in one statement we allow ourselves.
    pub fn max_binds(self) -> usize {
        match self {
            Backend::Sqlite => 30_000,
            _ => 60_000,
        }
    }
}

/// A URL with any password replaced, safe to log.
pub fn redact(url: &str) -> String {
    if let (Some(s), Some(at)) = (url.find("://"), url.rfind('@')) {
        if let Some(c) = url[s + 3..at].find(':') {
            return format!("{}:***{}", &url[..s + 3 + c], &url[at..]);
        }
    }
    url.to_string()
}

/// A connection pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub url: String,
}

/// The start of a statement, to name it in an error (never its values: they are bound).
pub(crate) fn what_of(sql: &str) -> String {
    sql.chars().take(120).collect()
}

/// Binds each value in order.
pub(crate) fn bind_all(args: &[Value], sql: &str) -> Result<AnyArguments> {
    let mut a = AnyArguments::default();
    for v in args {
        bind_one(&mut a, v, || what_of(sql))?;
    }
    Ok(a)
}

/// Binds one value, on any driver's arguments (`Any` or a server's own, [`server`]); `what`
/// names the statement in the error.
pub(crate) fn bind_one<A>(a: &mut A, v: &Value, what: impl FnOnce() -> String) -> Result<()>
where
    A: Arguments,
    for<'t> i64: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> f64: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> String: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<i64>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<f64>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
    for<'t> Option<String>: sqlx::Encode<'t, A::Database> + sqlx::Type<A::Database>,
{
    let r = match v {
        Value::I(x) => a.add(*x),
        Value::F(x) => a.add(*x),
        Value::S(x) => a.add(x.clone()),
        Value::NullI => a.add(Option::<i64>::None),
        Value::NullS => a.add(Option::<String>::None),
        Value::NullF => a.add(Option::<f64>::None),
    };
    r.map_err(|e| DbError::Sql {
        what: format!("bind {}", what()),
        source: sqlx::Error::Encode(e),
    })
}

pub(crate) fn sql_err(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> DbError {
    let what = what.into();
    move |source| DbError::Sql { what, source }
}

/// Accepts a bare path as a SQLite file.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") || url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite://{url}")
    }
}

impl Db {
    /// Connects, creating the SQLite file or the server database if it does not exist yet.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::open(url, true).await
    }

    /// Connects to a database that must exist already (a source: a mistyped URL is an error,
    /// not a new empty database).
    pub async fn connect_existing(url: &str) -> Result<Db> {
        Db::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url);
        let backend = Backend::of(&url)?;
        match backend {
            Backend::Sqlite if !create => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if !std::path::Path::new(&path).exists() {
                    return Err(DbError::Unsupported(format!(
                        "SQLite file {path} does not exist"
                    )));
                }
            }
            Backend::MySql | Backend::Postgres if !create => {}
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                }
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                    .map_err(sql_err(redact(&url)))?
                    .create_if_missing(true);
                // Creates the file; the Any pool below then opens it.
                let c = sqlx::sqlite::SqlitePool::connect_with(opts)
                    .await
                    .map_err(sql_err(redact(&url)))?;
                c.close().await;
            }
            Backend::MySql | Backend::Postgres => ensure_server_database(&url, backend).await?,
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 1 } else { 4 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                    }
                    if backend == Backend::MySql {
                        conn.execute("SET NAMES utf8mb4").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(sql_err(redact(&url)))?;
        Ok(Db { pool, backend, url })
    }

    pub async fn exec(&self, sql: &str) -> Result<u64> {
        let r = query(sql)
            .execute(&self.pool)
            .await
            .map_err(sql_err(sql.chars().take(120).collect::<String>()))?;
        Ok(r.rows_affected())
    }

    /// Runs several `;`-separated statements one by one (portable across drivers).
    pub async fn exec_script(&self, script: &str) -> Result<()> {
        for stmt in script.split(';') {
            if !stmt.trim().is_empty() {
                self.exec(stmt).await?;
            }
        }
        Ok(())
    }

    pub async fn fetch_all(&self, sql: &str) -> Result<Vec<sqlx::any::AnyRow>> {
        query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err(sql.chars().take(120).collect::<String>()))
    }

    /// Runs one statement with `?` placeholders and bound values; returns the rows affected.
    pub async fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        let sql = self.backend.placeholders(sql);
        let r = query_with(sql.clone(), bind_all(args, &sql)?)
            .execute(&self.pool)
            .await
            .map_err(sql_err(what_of(&sql)))?;
        Ok(r.rows_affected())
    }

    /// Runs one query with `?` placeholders and bound values.
    pub async fn fetch(&self, sql: &str, args: &[Value]) -> Result<Vec<sqlx::any::AnyRow>> {
        let sql = self.backend.placeholders(sql);
        query_with(sql.clone(), bind_all(args, &sql)?)
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err(what_of(&sql)))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts rows into `table(cols)`, many rows per statement, all in one transaction.
    pub async fn insert_rows(&self, table: &str, cols: &[&str], rows: &[Vec<Value>]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(sql_err("begin"))?;
        self.write_rows_in(&mut tx, table, cols, None, rows).await?;
        tx.commit().await.map_err(sql_err("commit"))
    }

    /// Inserts rows, replacing the given columns of any row with the same `key`, in one transaction.
    pub async fn upsert_rows(
        &self,
        table: &str,
        cols: &[&str],
        key: &str,
        rows: &[Vec<Value>],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(sql_err("begin"))?;
        self.write_rows_in(&mut tx, table, cols, Some(key), rows)
            .await?;
        tx.commit().await.map_err(sql_err("commit"))
    }

    /// Inserts the rows whose `key` is not in the table yet; rows already there are left as
    /// they are (SQLite and PostgreSQL).
    pub async fn insert_missing_rows(
        &self,
        table: &str,
        cols: &[&str],
        key: &str,
        rows: &[Vec<Value>],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(sql_err("begin"))?;
        for chunk in statement_chunks(rows, self.backend, cols.len()) {
            let (mut sql, args) = self.values_sql(table, cols, chunk)?;
            match self.backend {
                Backend::MySql => sql = sql.replacen("INSERT INTO", "INSERT IGNORE INTO", 1),
                _ => sql.push_str(&format!(" ON CONFLICT ({key}) DO NOTHING")),
            }
            query_with(sql, args)
                .execute(&mut *tx)
                .await
                .map_err(sql_err(format!("insert into {table}")))?;
        }
        tx.commit().await.map_err(sql_err("commit"))
    }

    /// Writes rows inside the caller's transaction: a plain insert, or an upsert on `key`
    /// (only `cols` are overwritten on conflict).
    pub async fn write_rows_in(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        table: &str,
        cols: &[&str],
        key: Option<&str>,
        rows: &[Vec<Value>],
    ) -> Result<()> {
        let tail = match key {
            None => String::new(),
            Some(key) => {
                let sets: Vec<String> = cols
                    .iter()
                    .filter(|c| **c != key)
                    .map(|c| match self.backend {
                        Backend::MySql => format!("{c} = VALUES({c})"),
                        _ => format!("{c} = excluded.{c}"),
                    })
                    .collect();
                match self.backend {
                    Backend::MySql => format!(" ON DUPLICATE KEY UPDATE {}", sets.join(",")),
                    _ => format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(",")),
                }
            }
        };
        for chunk in statement_chunks(rows, self.backend, cols.len()) {
            let (sql, args) = self.values_sql(table, cols, chunk)?;
            query_with(sql + &tail, args)
                .execute(&mut **tx)
                .await
                .map_err(sql_err(format!("write into {table}")))?;
        }
        Ok(())
    }
}

/// One bindable cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    I(i64),
    F(f64),
    S(String),
    NullI,
    NullS,
    NullF,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::S(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::S(v.to_string())
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map(Value::I).unwrap_or(Value::NullI)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map(Value::S).unwrap_or(Value::NullS)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::I(i64::from(v))
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I(i64::from(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::S(v.clone())
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map(|s| Value::S(s.to_string())).unwrap_or(Value::NullS)
    }
}
impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        v.map(Value::F).unwrap_or(Value::NullF)
    }
}

async fn ensure_server_database(url: &str, backend: Backend) -> Result<()> {
    // Split off the database name: scheme://auth@host:port/NAME?params
    let (base, params) = match url.split_once('?') {
        Some((b, p)) => (b, format!("?{p}")),
        None => (url, String::new()),
    };
    let slash = base
        .rfind('/')
        .filter(|i| *i > base.find("://").unwrap_or(0) + 2);
    let Some(slash) = slash else { return Ok(()) };
    let name = &base[slash + 1..];
    if name.is_empty() {
        return Ok(());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::Url(format!(
            "database name '{name}' must be [A-Za-z0-9_]"
        )));
    }
    let admin_db = if backend == Backend::Postgres {
        "postgres"
    } else {
        ""
    };
    let admin_url = format!("{}/{admin_db}{params}", &base[..slash]);
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .map_err(sql_err(redact(&admin_url)))?;
    match backend {
        Backend::MySql => {
            query(format!(
                "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .execute(&admin)
            .await
            .map_err(sql_err("create database"))?;
        }
        Backend::Postgres => {
            let rows = query("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name.to_string())
                .fetch_all(&admin)
                .await
                .map_err(sql_err("pg_database"))?;
            if rows.is_empty() {
                // A concurrent creator may win the race; that is fine.
                let _ = query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&admin)
                    .await;
            }
        }
        Backend::Sqlite => {}
    }
    admin.close().await;
    Ok(())
}

/// Drops and recreates a server database, or deletes a SQLite file (used by `c360 sim --fresh`
/// and tests).
pub async fn reset_database(url: &str) -> Result<()> {
    sqlx::any::install_default_drivers();
    let url = normalize_url(url);
    let backend = Backend::of(&url)?;
    if backend == Backend::Sqlite {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or("");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        return Ok(());
    }
    let base = url.split('?').next().unwrap_or(&url);
    let slash = base.rfind('/').unwrap_or(base.len());
    let name = &base[slash + 1..];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::Url(redact(&url)));
    }
    let admin_db = if backend == Backend::Postgres {
        "postgres"
    } else {
        ""
    };
    let admin_url = format!("{}/{admin_db}", &base[..slash]);
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .map_err(sql_err(redact(&admin_url)))?;
    let q = match backend {
        Backend::MySql => format!("DROP DATABASE IF EXISTS `{name}`"),
        _ => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    };
    query(q)
        .execute(&admin)
        .await
        .map_err(sql_err("drop database"))?;
    admin.close().await;
    Ok(())
}

/// Reads a column that may be stored as integer or text, as text (for validation at the edge).
pub fn get_text(row: &sqlx::any::AnyRow, col: &str) -> Option<String> {
    use sqlx::Row;
    if let Ok(v) = row.try_get::<Option<String>, _>(col) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(col) {
        return v.map(|x| x.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(col) {
        return v.map(|x| x.to_string());
    }
    None
}

pub fn get_i64(row: &sqlx::any::AnyRow, col: &str) -> Option<i64> {
    use sqlx::Row;
    if let Ok(v) = row.try_get::<Option<i64>, _>(col) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(col) {
        return v.map(i64::from);
    }
    row.try_get::<Option<String>, _>(col)
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse().ok())
}

/// A row as a JSON object of its columns: integers, reals and text as they are stored, NULL as
/// null (for an export; columns keep the query's names).
pub fn row_json(row: &sqlx::any::AnyRow) -> serde_json::Value {
    use sqlx::{Column, Row};
    let mut m = serde_json::Map::new();
    for c in row.columns() {
        let name = c.name();
        let v = if let Ok(v) = row.try_get::<Option<i64>, _>(name) {
            v.map_or(serde_json::Value::Null, serde_json::Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(name) {
            v.map_or(serde_json::Value::Null, serde_json::Value::from)
        } else {
            get_text(row, name).map_or(serde_json::Value::Null, serde_json::Value::from)
        };
        m.insert(name.to_string(), v);
    }
    serde_json::Value::Object(m)
}

pub fn get_f64(row: &sqlx::any::AnyRow, col: &str) -> Option<f64> {
    use sqlx::Row;
    if let Ok(v) = row.try_get::<Option<f64>, _>(col) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<f32>, _>(col) {
        return v.map(f64::from);
    }
    get_i64(row, col).map(|x| x as f64)
}

impl Db {
    fn values_sql(
        &self,
        table: &str,
        cols: &[&str],
        chunk: &[Vec<Value>],
    ) -> Result<(String, AnyArguments)> {
        values_sql(self.backend, table, cols, chunk)
    }
}

/// `rows` of `ncols` values each, cut into statements within the backend's bind limit (at most
/// 2,000 rows): full ones, then the rest in
/// power-of-two sizes (237 rows: 128, 64, 32, 8, 4, 1). A multi-row statement's text depends on
/// its row count, so a few fixed sizes let the connection's statement cache reuse the prepared
/// statement where arbitrary sizes would each be parsed anew.
pub(crate) fn statement_chunks<T>(rows: &[T], backend: Backend, ncols: usize) -> Vec<&[T]> {
    let per_stmt = (backend.max_binds() / ncols.max(1)).clamp(1, 2000);
    let full = rows.len() / per_stmt * per_stmt;
    let mut out: Vec<&[T]> = rows[..full].chunks(per_stmt).collect();
    let mut rest = &rows[full..];
    while !rest.is_empty() {
        let n = 1usize << rest.len().ilog2();
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// `INSERT INTO table (cols) VALUES (…),(…)` for `chunk`, with its bound values.
pub(crate) fn values_sql(
    backend: Backend,
    table: &str,
    cols: &[&str],
    chunk: &[Vec<Value>],
) -> Result<(String, AnyArguments)> {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(","));
    let mut args = AnyArguments::default();
    let mut n = 0;
    for (i, row) in chunk.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                sql.push(',');
            }
            n += 1;
            sql.push_str(&backend.ph(n));
            bind_one(&mut args, v, || table.to_string())?;
        }
        sql.push(')');
    }
    Ok((sql, args))
}

#[cfg(test)]
mod tests {
    use super::{statement_chunks, Backend};

    #[test]
    fn statements_take_full_chunks_then_powers_of_two() {
        let rows: Vec<u32> = (0..5237).collect();
        // One column: the 2,000-row cap applies.
        let pg = Backend::Postgres;
        let sizes: Vec<usize> = statement_chunks(&rows, pg, 1)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![2000, 2000, 1024, 128, 64, 16, 4, 1]);
        let back: Vec<u32> = statement_chunks(&rows, pg, 1).concat();
        assert_eq!(back, rows, "every row once, in order");
        assert!(statement_chunks::<u32>(&[], pg, 1).is_empty());
        // 10,000 columns: SQLite's bind limit allows three rows a statement.
        let wide: Vec<usize> = statement_chunks(&[1, 2, 3, 4, 5, 6, 7], Backend::Sqlite, 10_000)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(wide, vec![3, 3, 1]);
    }
}
