//! Numbered schema migrations. Each is applied once, in order, inside one transaction together
//! with its row in `schema_migrations`, so a crash leaves the schema at a recorded version and
//! the next start finishes the job. Two processes starting at once serialise on a lock row: the
//! second sees what the first applied and applies nothing twice.
//!
//! A migration is portable SQL (`;`-separated statements, `--` comments),
//! run the same on SQLite and PostgreSQL. An applied version is never run again.

use crate::{Db, DbError, Result, Value};

/// One numbered migration (`version` > 0, strictly increasing in the list).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version before (0: a database this runner never saw).
    pub from: i64,
    /// The schema version now.
    pub to: i64,
    /// Versions applied by this call.
    pub applied: Vec<i64>,
}

/// Applies every migration newer than the database's recorded version. The database may be
/// newer than this program (a later release ran on it): that is an error, not a downgrade.
pub async fn migrate(db: &Db, migrations: &[Migration]) -> Result<MigrationReport> {
    if db.backend == crate::Backend::MySql {
        return Err(DbError::Migration(
            "migrations run on SQLite and PostgreSQL only, not MySQL/MariaDB".into(),
        ));
    }
    for w in migrations.windows(2) {
        if w[1].version <= w[0].version {
            return Err(DbError::Migration(format!(
                "migrations out of order: {} after {}",
                w[1].version, w[0].version
            )));
        }
    }
    // PostgreSQL can fail two concurrent `CREATE TABLE IF NOT EXISTS` of one name (the loser
    // trips over the winner's catalogue row); the table then exists, so try again.
    let mut tries = 0;
    loop {
        match db
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at VARCHAR(40) NOT NULL)",
                &[],
            )
            .await
        {
            Ok(_) => break,
            Err(e) if tries >= 5 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
            }
        }
    }
    let mut tx = db.begin().await?;
    // The lock row: a write first, so a second migrator (another process) waits here until this
    // transaction ends, and then reads what it applied.
    let now = now();
    tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (0, 'lock', ?) \
         ON CONFLICT (version) DO UPDATE SET applied_at = excluded.applied_at",
        &[now.clone().into()],
    )
    .await?;
    let rows = tx
        .fetch("SELECT MAX(version) AS v FROM schema_migrations", &[])
        .await?;
    let from = rows
        .first()
        .and_then(|r| crate::get_i64(r, "v"))
        .unwrap_or(0);
    let latest = migrations.last().map_or(0, |m| m.version);
    if from > latest {
        return Err(DbError::Migration(format!(
            "the database is at schema version {from}, newer than this program's {latest}: upgrade c360"
        )));
    }
    let mut applied = Vec::new();
    for m in migrations.iter().filter(|m| m.version > from) {
        for stmt in statements(m.sql) {
            tx.execute(&stmt, &[]).await.map_err(|e| {
                DbError::Migration(format!("migration {} ({}): {e}", m.version, m.name))
            })?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            &[m.version.into(), m.name.into(), Value::S(now.clone())],
        )
        .await?;
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(MigrationReport {
        from,
        to: from.max(latest),
        applied,
    })
}

/// The statements of a migration: split on `;` and with `--` comments removed, both only
/// outside quoted literals.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), _) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), _) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The recorded schema version (0 when none).
pub async fn schema_version(db: &Db) -> Result<i64> {
    let rows = db
        .fetch("SELECT MAX(version) AS v FROM schema_migrations", &[])
        .await?;
    Ok(rows
        .first()
        .and_then(|r| crate::get_i64(r, "v"))
        .unwrap_or(0))
}

fn now() -> String {
    // Seconds since the epoch in UTC: enough to order migrations; no chrono in this crate.
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix:{s}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_split_outside_literals_and_comments() {
        let s = super::statements("-- a; b\nSELECT '--x;' AS v; -- c;\nSELECT 2;\n\n-- end");
        assert_eq!(s, ["SELECT '--x;' AS v", "SELECT 2"]);
    }
}
