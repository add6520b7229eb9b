//! A transaction with the same bound-value calls as [`crate::Db`]. Dropped without `commit`, it
//! rolls back, so an early `?` return never leaves half a change behind.

use sqlx::any::AnyRow;
use sqlx::Any;

use crate::{bind_all, query_with, sql_err, values_sql, what_of, Backend, Result, Value};

pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    backend: Backend,
}

impl crate::Db {
    /// Starts a transaction; dropped without [`Tx::commit`] it rolls back.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = self.pool.begin().await.map_err(sql_err("begin"))?;
        Ok(Tx {
            inner,
            backend: self.backend,
        })
    }
}

impl Tx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// One statement with `?` placeholders and bound values; the rows affected.
    pub async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let sql = self.backend.placeholders(sql);
        let r = query_with(sql.clone(), bind_all(args, &sql)?)
            .execute(&mut *self.inner)
            .await
            .map_err(sql_err(what_of(&sql)))?;
        Ok(r.rows_affected())
    }

    /// One query with `?` placeholders and bound values.
    pub async fn fetch(&mut self, sql: &str, args: &[Value]) -> Result<Vec<AnyRow>> {
        let sql = self.backend.placeholders(sql);
        query_with(sql.clone(), bind_all(args, &sql)?)
            .fetch_all(&mut *self.inner)
            .await
            .map_err(sql_err(what_of(&sql)))
    }

    /// Inserts `rows` (values in `cols` order) in as few statements as the backend's bind limit
    /// allows.
    pub async fn insert(&mut self, table: &str, cols: &[&str], rows: &[Vec<Value>]) -> Result<()> {
        for chunk in crate::statement_chunks(rows, self.backend, cols.len()) {
            let (sql, args) = values_sql(self.backend, table, cols, chunk)?;
            query_with(sql, args)
                .execute(&mut *self.inner)
                .await
                .map_err(sql_err(format!("write into {table}")))?;
        }
        Ok(())
    }

    /// Inserts `rows` (values in `cols` order) in as few statements as the backend's bind limit
    /// allows, skipping a row whose `key` column is already stored (`ON CONFLICT (key) DO
    /// NOTHING`). Returns the keys (as text) of the rows it stored; a key repeated within `rows`
    /// is stored once.
    pub async fn insert_new(
        &mut self,
        table: &str,
        cols: &[&str],
        key: &str,
        rows: &[Vec<Value>],
    ) -> Result<Vec<String>> {
        use sqlx::Row;
        let mut stored = Vec::with_capacity(rows.len());
        for chunk in crate::statement_chunks(rows, self.backend, cols.len()) {
            let (sql, args) = values_sql(self.backend, table, cols, chunk)?;
            let sql = format!("{sql} ON CONFLICT ({key}) DO NOTHING RETURNING {key}");
            let got = query_with(sql, args)
                .fetch_all(&mut *self.inner)
                .await
                .map_err(sql_err(format!("write into {table}")))?;
            for r in &got {
                let k: String = r
                    .try_get::<String, _>(0)
                    .or_else(|_| r.try_get::<i64, _>(0).map(|v| v.to_string()))
                    .map_err(sql_err(format!("read back the keys written into {table}")))?;
                stored.push(k);
            }
        }
        Ok(stored)
    }

    /// The underlying sqlx transaction (for [`crate::Db::write_rows_in`]).
    pub fn sqlx(&mut self) -> &mut sqlx::Transaction<'static, Any> {
        &mut self.inner
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await.map_err(sql_err("commit"))
    }
}
