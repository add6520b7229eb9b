//! Bulk loading and reading of a SQLite file through SQLite's C API (the library sqlx already
//! links; no second SQLite).
//!
//! [`SqliteBulk`] loads: one prepared statement per table, bound and stepped row after row,
//! inside one transaction per batch. For writers of whole tables that nobody reads meanwhile —
//! the simulator — where sqlx's per-row async hop and per-value copies cost more than SQLite does.
//!
//! [`sqlite_each`] reads: one statement stepped on the caller's thread, each row handed over as
//! borrowed values ([`Val`]) — for the ETL's whole-table reads, where sqlx's `Any` row (an
//! owned value per column, decoded on a worker thread and sent over a channel) cost several
//! times what SQLite's own step does.
//!
//! Values are always bound, never spliced; table and column names come from the caller's own
//! fixed lists.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr;

use libsqlite3_sys as ffi;

use crate::{DbError, Result, Value};

/// One connection to a SQLite file, for bulk loading. Not shared: one thread at a time.
pub struct SqliteBulk {
    db: *mut ffi::sqlite3,
    path: String,
    stmts: HashMap<String, *mut ffi::sqlite3_stmt>,
    in_tx: bool,
}

// The connection is used by one thread at a time (`&mut self`), and SQLite is built threadsafe.
unsafe impl Send for SqliteBulk {}

impl SqliteBulk {
    /// Opens (creating if missing) the SQLite file at `url` (`sqlite://path` or a bare path)
    /// for a bulk load: no rollback journal or fsync while loading (a load that dies is
    /// redone from the start), a large page cache, exclusive locking.
    pub fn open(url: &str) -> Result<SqliteBulk> {
        let path = sqlite_path(url).to_string();
        let c = CString::new(path.clone())
            .map_err(|_| DbError::Unsupported(format!("SQLite path {path:?} holds a NUL")))?;
        let mut db = ptr::null_mut();
        // SAFETY: `c` is a valid C string and `db` receives the handle (closed in Drop, also
        // when open fails, as SQLite asks).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let mut me = SqliteBulk {
            db,
            path,
            stmts: HashMap::new(),
            in_tx: false,
        };
        if rc != ffi::SQLITE_OK {
            return Err(me.err("open", rc));
        }
        me.exec(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536; \
             PRAGMA locking_mode=EXCLUSIVE; PRAGMA temp_store=MEMORY",
        )?;
        Ok(me)
    }

    /// The error SQLite reports for `what` on this connection.
    fn err(&self, what: &str, rc: c_int) -> DbError {
        DbError::Unsupported(format!(
            "SQLite bulk load of {}: {what}: {}",
            self.path,
            errmsg(self.db, rc)
        ))
    }

    /// Runs statements without values (pragmas, DDL, BEGIN/COMMIT).
    pub fn exec(&mut self, sql: &str) -> Result<()> {
        let c =
            CString::new(sql).map_err(|_| DbError::Unsupported("SQL holds a NUL byte".into()))?;
        let mut msg: *mut c_char = ptr::null_mut();
        // SAFETY: valid handle and C string; SQLite allocates `msg`, freed below.
        let rc = unsafe { ffi::sqlite3_exec(self.db, c.as_ptr(), None, ptr::null_mut(), &mut msg) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `msg` is null or SQLite's allocation.
            let text = unsafe {
                let t = if msg.is_null() {
                    format!("code {rc}")
                } else {
                    CStr::from_ptr(msg).to_string_lossy().into_owned()
                };
                ffi::sqlite3_free(msg.cast());
                t
            };
            return Err(DbError::Unsupported(format!(
                "SQLite bulk load of {}: {}: {text}",
                self.path,
                crate::what_of(sql)
            )));
        }
        Ok(())
    }

    /// Inserts `rows` into `table(cols)` inside the open batch (one is begun if none is).
    pub fn insert(&mut self, table: &str, cols: &[&str], rows: &[Vec<Value>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if !self.in_tx {
            self.exec("BEGIN")?;
            self.in_tx = true;
        }
        let key = format!("{table}({})", cols.join(","));
        let stmt = match self.stmts.get(&key) {
            Some(s) => *s,
            None => {
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                );
                let c = CString::new(sql)
                    .map_err(|_| DbError::Unsupported("SQL holds a NUL byte".into()))?;
                let mut s = ptr::null_mut();
                // SAFETY: valid handle and C string; the statement is finalized in Drop.
                let rc = unsafe {
                    ffi::sqlite3_prepare_v2(self.db, c.as_ptr(), -1, &mut s, ptr::null_mut())
                };
                if rc != ffi::SQLITE_OK {
                    return Err(self.err(&format!("prepare insert into {table}"), rc));
                }
                self.stmts.insert(key, s);
                s
            }
        };
        for (n, row) in rows.iter().enumerate() {
            if row.len() != cols.len() {
                return Err(DbError::Unsupported(format!(
                    "insert into {table}: row {n} has {} values for {} columns",
                    row.len(),
                    cols.len()
                )));
            }
            // SAFETY: `stmt` is a live statement of this connection with `cols.len()`
            // parameters. Text is bound without a copy (SQLITE_STATIC): `row` outlives the
            // step, and the reset right after it lets go of every binding.
            unsafe {
                for (i, v) in row.iter().enumerate() {
                    let i = i as c_int + 1;
                    let rc = match v {
                        Value::I(x) => ffi::sqlite3_bind_int64(stmt, i, *x),
                        Value::F(x) => ffi::sqlite3_bind_double(stmt, i, *x),
                        Value::S(s) => ffi::sqlite3_bind_text(
                            stmt,
                            i,
                            s.as_ptr().cast(),
                            s.len() as c_int,
                            ffi::SQLITE_STATIC(),
                        ),
                        Value::NullI | Value::NullS | Value::NullF => {
                            ffi::sqlite3_bind_null(stmt, i)
                        }
                    };
                    if rc != ffi::SQLITE_OK {
                        let e = self.err(&format!("bind row {n} of {table}"), rc);
                        ffi::sqlite3_reset(stmt);
                        ffi::sqlite3_clear_bindings(stmt);
                        return Err(e);
                    }
                }
                let rc = ffi::sqlite3_step(stmt);
                let e = (rc != ffi::SQLITE_DONE)
                    .then(|| self.err(&format!("insert row {n} into {table}"), rc));
                ffi::sqlite3_reset(stmt);
                ffi::sqlite3_clear_bindings(stmt);
                if let Some(e) = e {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Commits the open batch, if any.
    pub fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            self.exec("COMMIT")?;
        }
        Ok(())
    }

    /// Commits and leaves the file as every other connection expects it (WAL journal).
    pub fn finish(mut self) -> Result<()> {
        self.commit()?;
        self.exec("PRAGMA locking_mode=NORMAL; PRAGMA journal_mode=WAL")
    }
}

impl Drop for SqliteBulk {
    fn drop(&mut self) {
        // SAFETY: every statement belongs to this connection and is finalized once, then the
        // connection is closed once.
        unsafe {
            for s in self.stmts.values() {
                ffi::sqlite3_finalize(*s);
            }
            ffi::sqlite3_close(self.db);
        }
    }
}

/// One value of a row read by [`sqlite_each`], as SQLite stores it; text and blobs borrowed
/// until the next row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// The message SQLite holds for the last call on `db` that returned `rc`.
fn errmsg(db: *mut ffi::sqlite3, rc: c_int) -> String {
    // SAFETY: `db` is a handle SQLite gave (or null, which SQLite answers for); the message is
    // copied before any other call on it.
    unsafe {
        let m = ffi::sqlite3_errmsg(db);
        if m.is_null() {
            format!("code {rc}")
        } else {
            CStr::from_ptr(m).to_string_lossy().into_owned()
        }
    }
}

/// The path in a `sqlite:` URL (or a bare path), without its `?options`.
fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or("")
}

/// The file a `sqlite:` URL (or a bare path) names, if it is an existing file (not `:memory:`).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = sqlite_path(url);
    let p = std::path::Path::new(path);
    (!path.is_empty() && !path.starts_with(':') && p.is_file()).then(|| p.to_path_buf())
}

/// Runs the query `sql` with `binds` on the SQLite file at `url`, read-only, and calls `each`
/// with every row's values in column order; returns the number of rows. Blocking: the caller's
/// thread steps the statement. Text that is not UTF-8 arrives as a blob.
pub fn sqlite_each(
    url: &str,
    sql: &str,
    binds: &[Value],
    mut each: impl FnMut(&[Val<'_>]),
) -> Result<u64> {
    let path = sqlite_file(url)
        .ok_or_else(|| DbError::Unsupported(format!("{url:?} is not a SQLite file")))?;
    let shown = path.display().to_string();
    let c = CString::new(path.to_string_lossy().into_owned())
        .map_err(|_| DbError::Unsupported(format!("SQLite path {shown:?} holds a NUL")))?;
    let fail = |db: *mut ffi::sqlite3, what: &str, rc: c_int| {
        DbError::Unsupported(format!(
            "SQLite read of {shown}: {what}: {} ({})",
            errmsg(db, rc),
            crate::what_of(sql)
        ))
    };
    /// Closes the connection and finalizes the statement however the read ends.
    struct Guard(*mut ffi::sqlite3, *mut ffi::sqlite3_stmt);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: each handle is null or live and owned here, released once.
            unsafe {
                ffi::sqlite3_finalize(self.1);
                ffi::sqlite3_close(self.0);
            }
        }
    }
    let mut g = Guard(ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid C string; the handle is closed by the guard, also when open fails.
    let rc = unsafe {
        ffi::sqlite3_open_v2(
            c.as_ptr(),
            &mut g.0,
            ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_NOMUTEX,
            ptr::null(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(fail(g.0, "open", rc));
    }
    // SAFETY: valid handle; other connections may write meanwhile, so wait for their locks as
    // sqlx does (5 s); the page cache is this read's own.
    unsafe {
        ffi::sqlite3_busy_timeout(g.0, 5000);
    }
    let q = CString::new(sql).map_err(|_| DbError::Unsupported("SQL holds a NUL byte".into()))?;
    // SAFETY: valid handle and C string; the statement is finalized by the guard.
    let rc = unsafe { ffi::sqlite3_prepare_v2(g.0, q.as_ptr(), -1, &mut g.1, ptr::null_mut()) };
    if rc != ffi::SQLITE_OK {
        return Err(fail(g.0, "prepare", rc));
    }
    for (i, v) in binds.iter().enumerate() {
        let i = i as c_int + 1;
        // SAFETY: live statement; text is copied by SQLite (SQLITE_TRANSIENT).
        let rc = unsafe {
            match v {
                Value::I(x) => ffi::sqlite3_bind_int64(g.1, i, *x),
                Value::F(x) => ffi::sqlite3_bind_double(g.1, i, *x),
                Value::S(s) => ffi::sqlite3_bind_text(
                    g.1,
                    i,
                    s.as_ptr().cast(),
                    s.len() as c_int,
                    ffi::SQLITE_TRANSIENT(),
                ),
                Value::NullI | Value::NullS | Value::NullF => ffi::sqlite3_bind_null(g.1, i),
            }
        };
        if rc != ffi::SQLITE_OK {
            return Err(fail(g.0, &format!("bind parameter {i}"), rc));
        }
    }
    // SAFETY: live statement.
    let n_cols = unsafe { ffi::sqlite3_column_count(g.1) } as usize;
    // Borrowed values of the current row only: emptied before each step.
    let mut row: Vec<Val<'_>> = Vec::with_capacity(n_cols);
    let mut n = 0u64;
    loop {
        // SAFETY: live statement.
        let rc = unsafe { ffi::sqlite3_step(g.1) };
        if rc == ffi::SQLITE_DONE {
            break;
        }
        if rc != ffi::SQLITE_ROW {
            return Err(fail(g.0, &format!("step after row {n}"), rc));
        }
        n += 1;
        row.clear();
        for i in 0..n_cols as c_int {
            // SAFETY: the statement is on a row with `n_cols` columns. Text and blob pointers
            // stay valid until the next step, and the borrowed values do not outlive `each`
            // below: `row` is emptied before the next step reads into it.
            let v = unsafe {
                match ffi::sqlite3_column_type(g.1, i) {
                    ffi::SQLITE_INTEGER => Val::Int(ffi::sqlite3_column_int64(g.1, i)),
                    ffi::SQLITE_FLOAT => Val::Float(ffi::sqlite3_column_double(g.1, i)),
                    ffi::SQLITE_TEXT => {
                        let p = ffi::sqlite3_column_text(g.1, i);
                        let len = ffi::sqlite3_column_bytes(g.1, i) as usize;
                        let b: &[u8] = if p.is_null() {
                            &[]
                        } else {
                            std::slice::from_raw_parts(p, len)
                        };
                        match std::str::from_utf8(b) {
                            Ok(t) => Val::Text(t),
                            Err(_) => Val::Blob(b),
                        }
                    }
                    ffi::SQLITE_BLOB => {
                        let p = ffi::sqlite3_column_blob(g.1, i);
                        let len = ffi::sqlite3_column_bytes(g.1, i) as usize;
                        if p.is_null() {
                            Val::Blob(&[])
                        } else {
                            Val::Blob(std::slice::from_raw_parts(p.cast(), len))
                        }
                    }
                    _ => Val::Null,
                }
            };
            row.push(v);
        }
        each(&row);
    }
    Ok(n)
}
