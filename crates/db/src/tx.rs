//! A transaction with the same bound-value calls as [`crate::Db`]. Dropped without `commit`, it
//! rolls back, so an early `?` return never leaves half a change behind.

use sqlx::any::AnyRow;
use sqlx::Any;

use crate::{bind_all, query_with, sql_err, what_of, Backend, Result, Value};

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

    /// The underlying sqlx transaction (for [`crate::Db::write_rows_in`]).
    pub fn sqlx(&mut self) -> &mut sqlx::Transaction<'static, Any> {
        &mut self.inner
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await.map_err(sql_err("commit"))
    }
}
