//! The metastore: mutable operational state that is not analytics data — ETL runs, the identity
//! graph (source ids, hashed keys, assigned customer ids), its merge journal and manual blocks.
//! SQLite by default (a file in the warehouse directory), PostgreSQL by URL; one sqlx code path.

use c360_db::{Backend, Db};

use crate::Result;

pub struct Metastore {
    pub db: Db,
}

const DDL: &str = "
CREATE TABLE IF NOT EXISTS etl_runs (run_id BIGINT PRIMARY KEY, started_at VARCHAR(40), finished_at VARCHAR(40), status VARCHAR(16), manifest_version BIGINT, stats TEXT);
CREATE TABLE IF NOT EXISTS identity_nodes (source_key VARCHAR(32) PRIMARY KEY, phone_hash VARCHAR(64), phone_verified BIGINT, unionid_hash VARCHAR(64), card_no VARCHAR(32), bound_card_no VARCHAR(32), phone_masked VARCHAR(16), name_masked VARCHAR(16), gender VARCHAR(4), birth_year BIGINT, register_store_id BIGINT, created_at VARCHAR(19), customer_id BIGINT, updated_run BIGINT);
CREATE TABLE IF NOT EXISTS identity_journal (seq BIGINT PRIMARY KEY, run_id BIGINT, at VARCHAR(40), action VARCHAR(16), source_key VARCHAR(32), from_customer BIGINT, to_customer BIGINT, rule VARCHAR(64));
CREATE TABLE IF NOT EXISTS identity_blocks (source_key VARCHAR(32) PRIMARY KEY, reason VARCHAR(200), at VARCHAR(40))
";

impl Metastore {
    pub async fn connect(url: &str) -> Result<Metastore> {
        let db = Db::connect(url).await?;
        db.exec_script(DDL).await?;
        Ok(Metastore { db })
    }

    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    pub async fn next_run_id(&self) -> Result<i64> {
        let rows = self
            .db
            .fetch_all("SELECT MAX(run_id) AS m FROM etl_runs")
            .await?;
        Ok(rows
            .first()
            .and_then(|r| c360_db::get_i64(r, "m"))
            .unwrap_or(0)
            + 1)
    }

    pub async fn start_run(&self, run_id: i64) -> Result<()> {
        self.db
            .insert_rows(
                "etl_runs",
                &["run_id", "started_at", "status"],
                &[vec![
                    run_id.into(),
                    chrono::Utc::now().to_rfc3339().into(),
                    "running".into(),
                ]],
            )
            .await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        version: u64,
        stats: &str,
    ) -> Result<()> {
        let b = self.db.backend;
        let sql = format!(
            "UPDATE etl_runs SET finished_at = {}, status = {}, manifest_version = {}, stats = {} WHERE run_id = {}",
            b.ph(1),
            b.ph(2),
            b.ph(3),
            b.ph(4),
            b.ph(5)
        );
        c360_db::query(sql)
            .bind(chrono::Utc::now().to_rfc3339())
            .bind(status.to_string())
            .bind(version as i64)
            .bind(stats.to_string())
            .bind(run_id)
            .execute(&self.db.pool)
            .await
            .map_err(|e| c360_db::DbError::Sql {
                what: "finish run".into(),
                source: e,
            })?;
        Ok(())
    }
}
