//! Whole-table reads from MySQL/MariaDB and PostgreSQL through sqlx's own drivers, not `Any`.
//!
//! Through `Any`, every value of every row becomes an owned `AnyValue` (a `String` per text
//! column) and every row a fresh `AnyRow` with its column list, which cost the ETL more than
//! the server's own work. [`read_text`] instead opens a connection of the server's own driver,
//! runs the statement (values bound) on a task of its own, and copies each row's values, as
//! the server sent them, into blocks of a few thousand rows: one byte buffer and one offset per
//! value ([`TextBlock`]). The caller takes the blocks from a bounded channel, so reading and
//! decoding on that task overlap the caller's work on the rows before, and memory stays at
//! `depth` blocks whatever the table's size.
//!
//! The ETL reads every column as text (`CAST(… AS CHAR/TEXT)`), so a value's bytes are its text
//! in both protocols (PostgreSQL's binary format of `text` is its UTF-8 bytes).

use std::str::FromStr;

use futures::StreamExt;
use sqlx::error::BoxDynError;
use sqlx::{ConnectOptions, Connection, Row, ValueRef};
use tokio::sync::mpsc;

use crate::{what_of, Backend, DbError, Result, Value};

/// Rows of text values, row-major: value `(r, c)` is `text[ends[i-1]..ends[i]]` for
/// `i = r * cols + c`, or NULL when `null[i]`.
#[derive(Debug, Default)]
pub struct TextBlock {
    cols: usize,
    text: Vec<u8>,
    ends: Vec<usize>,
    null: Vec<bool>,
}

impl TextBlock {
    fn new(cols: usize, rows: usize) -> TextBlock {
        TextBlock {
            cols,
            text: Vec::with_capacity(rows * cols * 8),
            ends: Vec::with_capacity(rows * cols),
            null: Vec::with_capacity(rows * cols),
        }
    }

    fn push(&mut self, v: Option<&[u8]>) {
        if let Some(b) = v {
            self.text.extend_from_slice(b);
        }
        self.ends.push(self.text.len());
        self.null.push(v.is_none());
    }

    /// Columns per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rows in the block.
    pub fn rows(&self) -> usize {
        self.ends.len().checked_div(self.cols).unwrap_or(0)
    }

    /// The value of row `r`, column `c`: None when NULL (or out of range).
    pub fn get(&self, r: usize, c: usize) -> Option<&[u8]> {
        if c >= self.cols {
            return None;
        }
        let i = r * self.cols + c;
        if *self.null.get(i)? {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..self.ends[i]])
    }

    /// Bytes held (for memory accounting).
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 8 + self.null.capacity()
    }
}

/// A read under way: its blocks in order, then the end (or the error that ended it).
pub struct ServerRead {
    rx: mpsc::Receiver<Result<TextBlock>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerRead {
    /// The next block; Ok(None) once every row has been handed over.
    pub async fn next(&mut self) -> Result<Option<TextBlock>> {
        match self.rx.recv().await {
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

impl Drop for ServerRead {
    /// A read dropped before its end (the caller failed) stops its task and connection.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of a read on one driver: connect, bind, stream rows into blocks, send them on.
/// (One macro rather than one generic function: sqlx's executor bounds on a generic
/// connection do not name simply.)
macro_rules! pump {
    ($opts:ty, $args:ty, $url:expr, $sql:expr, $binds:expr, $block_rows:expr, $tx:expr, $bytes:expr, $setup:expr) => {{
        let (url, sql, binds, block_rows, tx) = ($url, $sql, $binds, $block_rows, $tx);
        let opts = <$opts>::from_str(url).map_err(|source| DbError::Sql {
            what: crate::redact(url),
            source,
        })?;
        let mut conn = opts.connect().await.map_err(|source| DbError::Sql {
            what: crate::redact(url),
            source,
        })?;
        let setup: Option<&str> = $setup;
        if let Some(s) = setup {
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(s.to_string()))
                .await
                .map_err(fail(sql))?;
        }
        let mut args = <$args>::default();
        for v in binds {
            crate::bind_one(&mut args, v, || what_of(sql))?;
        }
        let bytes = $bytes;
        {
            let mut rows =
                sqlx::query_with(sqlx::AssertSqlSafe(sql.to_string()), args).fetch(&mut conn);
            let mut block: Option<TextBlock> = None;
            while let Some(row) = rows.next().await {
                let row = row.map_err(fail(sql))?;
                let n = row.len();
                let b = block.get_or_insert_with(|| TextBlock::new(n, block_rows));
                for i in 0..n {
                    let v = row.try_get_raw(i).map_err(fail(sql))?;
                    if v.is_null() {
                        b.push(None);
                    } else {
                        let x: &[u8] = bytes(v).map_err(|e| {
                            DbError::Unsupported(format!(
                                "reading column {} of {}: {e}",
                                i + 1,
                                what_of(sql)
                            ))
                        })?;
                        b.push(Some(x));
                    }
                }
                if b.rows() >= block_rows {
                    let full = block.take().unwrap_or_default();
                    if tx.send(Ok(full)).await.is_err() {
                        // The caller stopped reading.
                        return Ok(());
                    }
                }
            }
            if let Some(b) = block.take() {
                let _ = tx.send(Ok(b)).await;
            }
        }
        let _ = conn.close().await;
        Ok(())
    }};
}

/// Starts reading `sql` with `binds` from the MySQL/MariaDB or PostgreSQL database at `url` on a
/// connection of its own: `block_rows` rows per block, at most `depth` blocks ahead of the
/// caller. Must be called inside a Tokio runtime.
pub fn read_text(
    url: &str,
    sql: String,
    binds: Vec<Value>,
    block_rows: usize,
    depth: usize,
) -> Result<ServerRead> {
    let backend = Backend::of(url)?;
    if backend == Backend::Sqlite {
        return Err(DbError::Unsupported(
            "read_text reads MySQL/MariaDB or PostgreSQL; SQLite files go through bulk::sqlite_each"
                .into(),
        ));
    }
    let (tx, rx) = mpsc::channel(depth.max(1));
    let url = url.to_string();
    let block_rows = block_rows.max(1);
    let task = tokio::spawn(async move {
        let r: Result<()> = match backend {
            Backend::Postgres => {
                async {
                    pump!(
                        sqlx::postgres::PgConnectOptions,
                        sqlx::postgres::PgArguments,
                        &url,
                        &sql,
                        &binds,
                        block_rows,
                        &tx,
                        pg_bytes,
                        None
                    )
                }
                .await
            }
            _ => {
                async {
                    pump!(
                        sqlx::mysql::MySqlConnectOptions,
                        sqlx::mysql::MySqlArguments,
                        &url,
                        &sql,
                        &binds,
                        block_rows,
                        &tx,
                        mysql_bytes,
                        Some("SET NAMES utf8mb4")
                    )
                }
                .await
            }
        };
        if let Err(e) = r {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(ServerRead { rx, task })
}

/// Why a read failed: the statement's start and the driver's error.
fn fail(sql: &str) -> impl Fn(sqlx::Error) -> DbError + '_ {
    move |source| DbError::Sql {
        what: what_of(sql),
        source,
    }
}

fn pg_bytes(v: sqlx::postgres::PgValueRef<'_>) -> std::result::Result<&[u8], BoxDynError> {
    v.as_bytes()
}

fn mysql_bytes(v: sqlx::mysql::MySqlValueRef<'_>) -> std::result::Result<&[u8], BoxDynError> {
    <&[u8] as sqlx::Decode<sqlx::MySql>>::decode(v)
}
