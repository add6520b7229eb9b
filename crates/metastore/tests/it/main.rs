//! The metastore's schema and ids on SQLite and PostgreSQL: fresh databases migrate to the
//! latest version, an old release's file upgrades in place, concurrent openers and id takers
//! never collide, MySQL is refused, and the hashing secret is generated once and kept.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use c360_db::{get_i64, get_text, Db};
use c360_metastore::{Counter, Metastore, MIGRATIONS};

const PG: &str = "postgres://postgres@127.0.0.1:5432";

fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap()
}

async fn count(db: &Db, sql: &str) -> i64 {
    get_i64(&db.fetch(sql, &[]).await.unwrap()[0], "n").unwrap()
}

async fn fresh_pg(name: &str) -> String {
    let url = format!("{PG}/{name}");
    c360_db::reset_database(&url).await.unwrap();
    url
}

#[tokio::test]
async fn fresh_sqlite_migrates_once_and_keeps_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let m = Metastore::open(&url).await.unwrap();
    assert_eq!(m.migrations.from, 0);
    assert_eq!(m.migrations.to, latest());
    assert_eq!(m.schema_version().await.unwrap(), latest());
    let s1 = m.hash_secret(None).await.unwrap();
    assert_eq!(s1.expose().len(), 64, "32 random bytes, hex");
    assert_ne!(s1.expose(), "c360-default-salt");
    m.close().await;

    let m = Metastore::open(&url).await.unwrap();
    assert!(m.migrations.applied.is_empty(), "nothing to apply twice");
    assert_eq!(m.hash_secret(None).await.unwrap().expose(), s1.expose());
    let other = c360_model::Secret::new("something-else");
    let e = m.hash_secret(Some(&other)).await.unwrap_err().to_string();
    assert!(e.contains("differs"), "{e}");
    // Ids are dense and start at 1.
    let a = m.start_run().await.unwrap();
    let b = m.start_run().await.unwrap();
    assert_eq!((a, b), (1, 2));
    assert_eq!(count(&m, "SELECT COUNT(*) AS n FROM etl_runs").await, 2);
}

#[tokio::test]
async fn a_given_secret_is_stored_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let m = Metastore::open(&url).await.unwrap();
    let mine = c360_model::Secret::new("chain-secret-123");
    assert_eq!(
        m.hash_secret(Some(&mine)).await.unwrap().expose(),
        "chain-secret-123"
    );
    assert_eq!(
        m.hash_secret(None).await.unwrap().expose(),
        "chain-secret-123"
    );
}

#[tokio::test]
async fn mysql_is_refused_with_a_clear_error() {
    let e = Metastore::open("mysql://root@127.0.0.1:3306/c360_meta")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("MySQL/MariaDB cannot hold the metastore"), "{e}");
    assert!(e.contains("postgres://"), "{e}");
}

/// A metastore file written by the release before migrations (main at a94df04: `c360 demo`
/// on 3k orders, an API key, a campaign launched, an experiment, audit entries) upgrades in
/// place: every row is still there, ids continue after the old maximum, and the identity graph
/// keeps the secret it was hashed with.
#[tokio::test]
async fn a_metastore_of_the_previous_release_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metastore-a94df04.db"
        ),
        &path,
    )
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    let raw = Db::connect(&url).await.unwrap();
    let tables = [
        "etl_runs",
        "identity_nodes",
        "identity_journal",
        "api_keys",
        "campaigns",
        "campaign_members",
        "experiments",
        "audit_log",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(&raw, &format!("SELECT COUNT(*) AS n FROM {t}")).await);
    }
    let max_campaign = count(&raw, "SELECT MAX(campaign_id) AS n FROM campaigns").await;
    let max_audit = count(&raw, "SELECT MAX(seq) AS n FROM audit_log").await;
    let max_run = count(&raw, "SELECT MAX(run_id) AS n FROM etl_runs").await;
    raw.close().await;
    assert!(
        before.iter().all(|n| *n > 0),
        "the fixture holds every kind of row: {before:?}"
    );

    let m = Metastore::open(&url).await.unwrap();
    assert_eq!(m.migrations.from, 0, "the old release recorded no version");
    assert_eq!(m.migrations.applied, (1..=latest()).collect::<Vec<_>>());
    for (t, n) in tables.iter().zip(&before) {
        assert_eq!(
            count(&m, &format!("SELECT COUNT(*) AS n FROM {t}")).await,
            *n,
            "{t}"
        );
    }
    assert_eq!(
        m.hash_secret(None).await.unwrap().expose(),
        "c360-default-salt",
        "the graph was hashed with the old default; it must keep matching"
    );
    assert!(m.setting("hash_secret_legacy").await.unwrap().is_some());
    let run = m.start_run().await.unwrap();
    assert_eq!(run, max_run + 1);
    let mut tx = m.begin().await.unwrap();
    let c = Metastore::take_ids(&mut tx, Counter::Campaigns, 1)
        .await
        .unwrap();
    let a = Metastore::take_ids(&mut tx, Counter::AuditLog, 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(c, max_campaign + 1);
    assert_eq!(a, max_audit + 1);
    // The old rows still read as before.
    let r = m
        .fetch(
            "SELECT status FROM campaigns WHERE campaign_id = ?",
            &[1i64.into()],
        )
        .await
        .unwrap();
    assert_eq!(get_text(&r[0], "status").as_deref(), Some("running"));
}

#[tokio::test]
async fn postgres_concurrent_openers_and_id_takers_never_collide() {
    let url = fresh_pg("c360_meta_it_concurrent").await;
    // Four processes' worth of openers at once on a fresh database.
    let opens = futures_join(
        (0..4)
            .map(|_| {
                let u = url.clone();
                tokio::spawn(async move { Metastore::open(&u).await.map(|m| m.migrations) })
            })
            .collect(),
    )
    .await;
    let applied: Vec<i64> = opens
        .into_iter()
        .flat_map(|r| r.unwrap().unwrap().applied)
        .collect();
    assert_eq!(
        applied,
        (1..=latest()).collect::<Vec<_>>(),
        "each migration applied once"
    );
    let m = Metastore::open(&url).await.unwrap();
    assert_eq!(m.schema_version().await.unwrap(), latest());
    assert_eq!(
        count(
            &m,
            "SELECT COUNT(*) AS n FROM schema_migrations WHERE version > 0"
        )
        .await,
        latest()
    );
    // 8 writers × 25 audit rows through separate pools: ids unique and dense.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let u = url.clone();
        tasks.push(tokio::spawn(async move {
            let m = Metastore::open(&u).await.unwrap();
            let mut ids = Vec::new();
            for i in 0..25 {
                ids.push(
                    m.insert_with_id(Counter::AuditLog, "audit_log", &["seq", "actor"], |seq| {
                        vec![seq.into(), format!("w{w}-{i}").into()]
                    })
                    .await
                    .unwrap(),
                );
            }
            ids
        }));
    }
    let mut all: Vec<i64> = futures_join(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
    let s1 = m.hash_secret(None).await.unwrap();
    let again = Metastore::open(&url).await.unwrap();
    assert_eq!(again.hash_secret(None).await.unwrap().expose(), s1.expose());
}

async fn futures_join<T>(
    hs: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await);
    }
    out
}

/// A customer's live orders (read on every profile request) come by index, not by a scan of
/// every order received since the snapshot.
#[tokio::test]
async fn a_customers_live_orders_are_read_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let m = Metastore::open(&url).await.unwrap();
    let plan = m
        .fetch(
            "EXPLAIN QUERY PLAN SELECT order_no, store_id, order_time, total_fen FROM live_orders WHERE customer_id = ? AND day >= ? ORDER BY order_time DESC",
            &[7i64.into(), 100i64.into()],
        )
        .await
        .unwrap();
    let detail: Vec<String> = plan
        .iter()
        .map(|r| get_text(r, "detail").unwrap())
        .collect();
    assert!(
        detail
            .iter()
            .any(|d| d.contains("USING INDEX live_orders_customer_day")),
        "{detail:?}"
    );
}
