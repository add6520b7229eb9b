//! The metastore: c360's mutable operational state, as opposed to the analytics data in the
//! warehouse — ETL runs, the identity graph with its journal and blocks, API keys, the audit
//! trail, campaigns and their members, saved audiences with their versions and sizes, triggered journeys and their sends, experiments, live orders and events, the stream log, the
//! insight cache and settings (the hashing secret among them).
//!
//! It owns the schema: numbered migrations in `migrations/` are applied at open, inside a
//! transaction, and the version is recorded in `schema_migrations`, so a metastore written by an
//! older release upgrades in place. SQLite (default, a file beside the warehouse) or PostgreSQL;
//! MySQL/MariaDB is refused with a clear error (it has neither transactional DDL nor the
//! `ON CONFLICT` the upserts use). Ids come from the database ([`Metastore::insert_with_id`]).
//!
//! It is not the warehouse and computes nothing; it holds no HTTP or domain rules.

use c360_db::migrate::{Migration, MigrationReport};
use c360_db::tx::Tx;
use c360_db::{Backend, Db, DbError, Value};
use c360_model::Secret;

pub use c360_db::Result;

/// The schema, oldest first. Append only: a released migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "ids_and_settings",
        sql: include_str!("../migrations/0002_ids_and_settings.sql"),
    },
    Migration {
        version: 3,
        name: "retention_and_quarantine",
        sql: include_str!("../migrations/0003_retention_and_quarantine.sql"),
    },
    Migration {
        version: 4,
        name: "identity_staging",
        sql: include_str!("../migrations/0004_identity_staging.sql"),
    },
    Migration {
        version: 5,
        name: "live_orders_by_customer",
        sql: include_str!("../migrations/0005_live_orders_by_customer.sql"),
    },
    Migration {
        version: 6,
        name: "payer_ids",
        sql: include_str!("../migrations/0006_payer_ids.sql"),
    },
    Migration {
        version: 7,
        name: "audiences",
        sql: include_str!("../migrations/0007_audiences.sql"),
    },
    Migration {
        version: 8,
        name: "journeys",
        sql: include_str!("../migrations/0008_journeys.sql"),
    },
    Migration {
        version: 9,
        name: "consent_and_privacy",
        sql: include_str!("../migrations/0009_consent_and_privacy.sql"),
    },
];

/// The warehouse watermark naming the newest ETL run whose identity changes a manifest holds.
pub const IDENTITY_RUN_WATERMARK: &str = "identity.run";

/// The newest run whose identity changes a manifest with these watermarks carries.
pub fn committed_identity_run(
    watermarks: &std::collections::BTreeMap<String, String>,
) -> Option<i64> {
    watermarks
        .get(IDENTITY_RUN_WATERMARK)
        .and_then(|v| v.parse().ok())
}

/// One customer-id change an ETL run made to a source key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    pub source_key: String,
    /// `assign` (the key had no customer) or `move`.
    pub action: &'static str,
    pub from_customer: Option<i64>,
    pub to_customer: i64,
    pub rule: &'static str,
}

/// What [`Metastore::settle_identity`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Runs whose staged changes were applied (the warehouse had committed them).
    pub applied: Vec<i64>,
    /// Runs whose staged changes were dropped (no warehouse commit carries them).
    pub discarded: Vec<i64>,
}

/// An id space whose next value the database hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    EtlRuns,
    IdentityJournal,
    StreamLog,
    Campaigns,
    Experiments,
    AuditLog,
    Audiences,
    PrivacyRequests,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Counter::EtlRuns => "etl_runs",
            Counter::IdentityJournal => "identity_journal",
            Counter::StreamLog => "stream_log",
            Counter::Campaigns => "campaigns",
            Counter::Experiments => "experiments",
            Counter::AuditLog => "audit_log",
            Counter::Audiences => "audiences",
            Counter::PrivacyRequests => "privacy_requests",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Metastore {
    pub db: Db,
    /// What opening it migrated.
    pub migrations: MigrationReport,
}

impl Metastore {
    /// Connects (creating the SQLite file or PostgreSQL database if missing) and brings the
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Metastore> {
        let backend = Backend::of(&c360_db::normalize_url(url))?;
        if backend == Backend::MySql {
            return Err(DbError::Unsupported(
                "MySQL/MariaDB cannot hold the metastore: use SQLite (the default, a file in the warehouse directory) or postgres://… (--metastore / C360_METASTORE); MySQL stays supported as a source".into(),
            ));
        }
        let db = Db::connect(url).await?;
        let migrations = c360_db::migrate::migrate(&db, MIGRATIONS).await?;
        if !migrations.applied.is_empty() {
            tracing::info!(
                from = migrations.from,
                to = migrations.to,
                "metastore schema migrated"
            );
        }
        Ok(Metastore { db, migrations })
    }

    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// The recorded schema version.
    pub async fn schema_version(&self) -> Result<i64> {
        c360_db::migrate::schema_version(&self.db).await
    }

    /// Takes `n` consecutive ids of `counter` inside `tx`; returns the first. The counter row is
    /// written first, so concurrent takers serialise on it and never share an id; a rolled-back
    /// transaction gives its ids back.
    pub async fn take_ids(tx: &mut Tx, counter: Counter, n: i64) -> Result<i64> {
        // One statement; the row lock the update takes is held to the end of `tx`.
        let rows = tx
            .fetch(
                "UPDATE id_counters SET value = value + ? WHERE name = ? RETURNING value",
                &[n.into(), counter.name().into()],
            )
            .await?;
        let last = rows
            .first()
            .and_then(|r| c360_db::get_i64(r, "value"))
            .ok_or_else(|| {
                DbError::Migration(format!("id counter {} is missing", counter.name()))
            })?;
        Ok(last - n + 1)
    }

    /// Inserts `row(id)` into `table(cols)` with the next id of `counter`, in one transaction.
    pub async fn insert_with_id(
        &self,
        counter: Counter,
        table: &str,
        cols: &[&str],
        row: impl FnOnce(i64) -> Vec<Value>,
    ) -> Result<i64> {
        let mut tx = self.db.begin().await?;
        let id = Self::take_ids(&mut tx, counter, 1).await?;
        self.db
            .write_rows_in(tx.sqlx(), table, cols, None, &[row(id)])
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A setting, if set.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let rows = self
            .db
            .fetch("SELECT value FROM settings WHERE name = ?", &[name.into()])
            .await?;
        Ok(rows.first().and_then(|r| c360_db::get_text(r, "value")))
    }

    /// Sets a setting (insert or replace).
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        self.db
            .upsert_rows(
                "settings",
                &["name", "value"],
                "name",
                &[vec![name.into(), value.into()]],
            )
            .await
    }

    /// The secret personal identifiers are hashed with. Generated (32 random bytes) and stored
    /// on first use; a `provided` one is stored if none is yet, and must equal the stored one
    /// otherwise (hashes made with two secrets would never match, and the graph would split).
    pub async fn hash_secret(&self, provided: Option<&Secret>) -> Result<Secret> {
        let stored = self.setting("hash_secret").await?;
        match (stored, provided) {
            (Some(s), Some(p)) if s != p.expose() => Err(DbError::Unsupported(
                "the hashing secret given (--salt / C360_SALT) differs from the one this metastore's identity graph was hashed with; leave it unset to use the stored one".into(),
            )),
            (Some(s), _) => {
                if self.setting("hash_secret_legacy").await?.is_some() {
                    tracing::warn!("this metastore's identity graph is hashed with the old public default secret (kept so the hashes still match); re-run the ETL into a fresh metastore to move to a generated one");
                }
                Ok(Secret::new(s))
            }
            (None, provided) => {
                let s = match provided {
                    Some(p) => p.expose().to_string(),
                    None => {
                        let mut raw = [0u8; 32];
                        rand::Rng::fill(&mut rand::rng(), &mut raw[..]);
                        hex::encode(raw)
                    }
                };
                // Two first runs racing: the first insert wins and both read it back.
                self.db
                    .execute(
                        "INSERT INTO settings (name, value) VALUES ('hash_secret', ?) ON CONFLICT (name) DO NOTHING",
                        &[s.into()],
                    )
                    .await?;
                let s = self.setting("hash_secret").await?.ok_or_else(|| {
                    DbError::Migration("hash_secret was not stored".into())
                })?;
                Ok(Secret::new(s))
            }
        }
    }

    /// The key personal identifiers are hashed with: [`Metastore::hash_secret`] and the scheme
    /// this metastore's identity graph uses (HMAC-SHA256, or salted SHA-256 for a graph hashed
    /// before migration 3).
    pub async fn pii_key(&self, provided: Option<&Secret>) -> Result<c360_model::pii::PiiKey> {
        use c360_model::pii::{HashScheme, PiiKey};
        let secret = self.hash_secret(provided).await?;
        let scheme = match self.setting("hash_scheme").await? {
            None => HashScheme::HmacSha256,
            Some(s) => HashScheme::parse(&s).ok_or_else(|| {
                DbError::Migration(format!("hash_scheme {s:?} is not one c360 knows"))
            })?,
        };
        if scheme == HashScheme::SaltedSha256 {
            tracing::warn!("this metastore's identity graph is hashed with salted SHA-256 (kept so the hashes still match); a fresh metastore uses HMAC-SHA256");
        }
        Ok(PiiKey::new(secret, scheme))
    }

    /// A secret of this metastore by name (32 random bytes, hex), generated and stored on first
    /// use; every process sharing the metastore reads the same one. Never logged.
    pub async fn generated_secret(&self, name: &str) -> Result<Secret> {
        if let Some(s) = self.setting(name).await? {
            return Ok(Secret::new(s));
        }
        let mut raw = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut raw[..]);
        // Two first uses racing: the first insert wins and both read it back.
        self.db
            .execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                &[name.into(), hex::encode(raw).into()],
            )
            .await?;
        let s = self
            .setting(name)
            .await?
            .ok_or_else(|| DbError::Migration(format!("{name} was not stored")))?;
        Ok(Secret::new(s))
    }

    /// Stages `run_id`'s identity changes (replacing any staged before for that run). They
    /// take effect in [`Metastore::settle_identity`], once the warehouse commit carrying them
    /// is published.
    pub async fn stage_identity<I>(&self, run_id: i64, changes: I) -> Result<u64>
    where
        I: IntoIterator<Item = IdentityChange>,
        I::IntoIter: Send,
    {
        // Rows are converted and written a chunk at a time, in one transaction: a first run
        // stages every node (millions at national scale), so the cells are never all held.
        const CHUNK: usize = 8192;
        let at = chrono::Utc::now().to_rfc3339();
        let cols = [
            "run_id",
            "source_key",
            "action",
            "from_customer",
            "to_customer",
            "rule",
            "at",
        ];
        let mut tx = self.db.begin().await?;
        tx.execute(
            "DELETE FROM identity_staged WHERE run_id = ?",
            &[run_id.into()],
        )
        .await?;
        let mut changes = changes.into_iter();
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
        let mut staged = 0u64;
        loop {
            rows.clear();
            rows.extend(changes.by_ref().take(CHUNK).map(|c| {
                vec![
                    run_id.into(),
                    c.source_key.into(),
                    c.action.into(),
                    c.from_customer.into(),
                    c.to_customer.into(),
                    c.rule.into(),
                    at.clone().into(),
                ]
            }));
            if rows.is_empty() {
                break;
            }
            staged += rows.len() as u64;
            self.db
                .write_rows_in(tx.sqlx(), "identity_staged", &cols, None, &rows)
                .await?;
        }
        tx.commit().await?;
        Ok(staged)
    }

    /// Brings the identity graph in line with the warehouse: every staged run up to
    /// `committed` (the current manifest's [`IDENTITY_RUN_WATERMARK`]) is applied to
    /// `identity_nodes` and journaled, each in one transaction, exactly once however many
    /// processes settle at the same time. With `discard_uncommitted` (only the ETL, holding the
    /// warehouse's writer lock, may ask: a running load's staging is not yet committed) runs
    /// past it are dropped, since no commit will ever carry them.
    pub async fn settle_identity(
        &self,
        committed: Option<i64>,
        discard_uncommitted: bool,
    ) -> Result<Settled> {
        let runs: Vec<i64> = self
            .db
            .fetch_all("SELECT DISTINCT run_id FROM identity_staged ORDER BY run_id")
            .await?
            .iter()
            .filter_map(|r| c360_db::get_i64(r, "run_id"))
            .collect();
        let mut out = Settled::default();
        for run in runs {
            if committed.is_some_and(|c| run <= c) {
                if self.apply_staged(run).await? {
                    out.applied.push(run);
                }
            } else if discard_uncommitted {
                let n = self
                    .db
                    .execute(
                        "DELETE FROM identity_staged WHERE run_id = ?",
                        &[run.into()],
                    )
                    .await?;
                tracing::warn!(
                    run_id = run,
                    changes = n,
                    "identity changes of a run that never committed were discarded"
                );
                out.discarded.push(run);
            }
        }
        Ok(out)
    }

    /// Applies one staged run in one transaction; false when another process got there first.
    async fn apply_staged(&self, run: i64) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        // The first statement writes the run's staged rows: a second settler waits here until
        // the first commits (which deletes them), then finds none.
        let n = tx
            .execute(
                "UPDATE identity_staged SET at = at WHERE run_id = ?",
                &[run.into()],
            )
            .await? as i64;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE identity_nodes SET customer_id = (SELECT s.to_customer FROM identity_staged s \
             WHERE s.run_id = ? AND s.source_key = identity_nodes.source_key) \
             WHERE source_key IN (SELECT source_key FROM identity_staged WHERE run_id = ?)",
            &[run.into(), run.into()],
        )
        .await?;
        let first = Self::take_ids(&mut tx, Counter::IdentityJournal, n).await?;
        tx.execute(
            "INSERT INTO identity_journal (seq, run_id, at, action, source_key, from_customer, to_customer, rule) \
             SELECT ? + ROW_NUMBER() OVER (ORDER BY source_key) - 1, run_id, at, action, source_key, from_customer, to_customer, rule \
             FROM identity_staged WHERE run_id = ?",
            &[first.into(), run.into()],
        )
        .await?;
        tx.execute(
            "DELETE FROM identity_staged WHERE run_id = ?",
            &[run.into()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(run_id = run, changes = n, "identity changes applied");
        Ok(true)
    }

    /// Starts an ETL run; returns its id.
    pub async fn start_run(&self) -> Result<i64> {
        let at = chrono::Utc::now().to_rfc3339();
        self.insert_with_id(
            Counter::EtlRuns,
            "etl_runs",
            &["run_id", "started_at", "status"],
            |id| vec![id.into(), at.into(), "running".into()],
        )
        .await
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        version: u64,
        stats: &str,
    ) -> Result<()> {
        self.db
            .execute(
                "UPDATE etl_runs SET finished_at = ?, status = ?, manifest_version = ?, stats = ? WHERE run_id = ?",
                &[
                    chrono::Utc::now().to_rfc3339().into(),
                    status.into(),
                    (version as i64).into(),
                    stats.into(),
                    run_id.into(),
                ],
            )
            .await?;
        Ok(())
    }
}

/// A migrated metastore is used wherever a plain connection is: its tables' readers and writers
/// take `&Db`.
impl std::ops::Deref for Metastore {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}
