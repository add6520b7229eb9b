//! Values reach every backend bound, never spliced: quotes, backslashes, an injection attempt,
//! `?` and `$1` inside values, emoji, CJK and control characters are stored and read back
//! unchanged on SQLite, PostgreSQL and MariaDB, through single statements, transactions,
//! bulk inserts and upserts. NUL, which PostgreSQL text cannot hold, is refused there with an
//! error rather than cut short.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use c360_db::{get_f64, get_i64, get_text, Db, Value};

const NASTY: &[&str] = &[
    "it's",
    "say \"hi\"",
    "back\\slash\\",
    "\\'; DROP TABLE t; --",
    "'); DELETE FROM t WHERE ('1' = '1",
    "what? $1 ? :name",
    "100% _under_",
    "热狗套餐（大）",
    "🌭🔥 emoji",
    "tab\tnew\nline\rcr",
    "ends with a quote'",
    "",
];

async fn roundtrip(url: &str, nul_ok: bool) {
    c360_db::reset_database(url).await.unwrap();
    let db = Db::connect(url).await.unwrap();
    db.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, k VARCHAR(200))",
        &[],
    )
    .await
    .unwrap();
    for (i, s) in NASTY.iter().enumerate() {
        let n = db
            .execute(
                "INSERT INTO t (id, s, k) VALUES (?, ?, ?)",
                &[(i as i64).into(), (*s).into(), (*s).into()],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    for (i, s) in NASTY.iter().enumerate() {
        let rows = db
            .fetch(
                "SELECT id, s FROM t WHERE s = ? AND k = ?",
                &[(*s).into(), (*s).into()],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{url}: {s:?}");
        assert_eq!(get_i64(&rows[0], "id"), Some(i as i64));
        assert_eq!(get_text(&rows[0], "s").as_deref(), Some(*s), "{url}");
    }
    // A literal `?` in the SQL text is not a placeholder.
    let rows = db
        .fetch(
            "SELECT s FROM t WHERE s = ? OR s = 'what?'",
            &[NASTY[0].into()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // Bulk insert and upsert in a transaction.
    let rows: Vec<Vec<Value>> = NASTY
        .iter()
        .enumerate()
        .map(|(i, s)| vec![(100 + i as i64).into(), (*s).into(), Value::NullS])
        .collect();
    db.insert_rows("t", &["id", "s", "k"], &rows).await.unwrap();
    let upd: Vec<Vec<Value>> = NASTY
        .iter()
        .enumerate()
        .map(|(i, s)| vec![(100 + i as i64).into(), format!("{s}·2").into()])
        .collect();
    db.upsert_rows("t", &["id", "s"], "id", &upd).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.execute(
        "UPDATE t SET k = ? WHERE id = ?",
        &["事务'\\".into(), 100i64.into()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for (i, s) in NASTY.iter().enumerate() {
        let r = db
            .fetch(
                "SELECT s, k FROM t WHERE id = ?",
                &[(100 + i as i64).into()],
            )
            .await
            .unwrap();
        assert_eq!(get_text(&r[0], "s"), Some(format!("{s}·2")), "{url}");
    }
    let r = db
        .fetch("SELECT k FROM t WHERE id = 100", &[])
        .await
        .unwrap();
    assert_eq!(get_text(&r[0], "k").as_deref(), Some("事务'\\"));
    // A transaction dropped without commit leaves nothing behind.
    {
        let mut tx = db.begin().await.unwrap();
        tx.execute("DELETE FROM t", &[]).await.unwrap();
    }
    let n = db.fetch("SELECT COUNT(*) AS n FROM t", &[]).await.unwrap();
    assert_eq!(get_i64(&n[0], "n"), Some(2 * NASTY.len() as i64));
    // NUL: kept where the backend can hold it, refused (never truncated) where it cannot.
    let r = db
        .execute(
            "INSERT INTO t (id, s) VALUES (?, ?)",
            &[999i64.into(), "a\0b".into()],
        )
        .await;
    if nul_ok {
        r.unwrap();
        let got = db
            .fetch("SELECT s FROM t WHERE id = 999", &[])
            .await
            .unwrap();
        assert_eq!(get_text(&got[0], "s").as_deref(), Some("a\0b"), "{url}");
    } else {
        assert!(r.is_err(), "{url}: NUL must be refused, not cut");
        let got = db
            .fetch("SELECT COUNT(*) AS n FROM t WHERE id = 999", &[])
            .await
            .unwrap();
        assert_eq!(get_i64(&got[0], "n"), Some(0));
    }
    db.close().await;
}

#[tokio::test]
async fn sqlite_binds_every_value() {
    let d = tempfile::tempdir().unwrap();
    roundtrip(
        &format!("sqlite://{}", d.path().join("t.db").display()),
        true,
    )
    .await;
}

#[tokio::test]
async fn postgres_binds_every_value() {
    roundtrip("postgres://postgres@127.0.0.1:5432/c360_db_it", false).await;
}

#[tokio::test]
async fn mariadb_binds_every_value() {
    roundtrip("mysql://root@127.0.0.1:3306/c360_db_it", true).await;
}

#[tokio::test]
async fn sqlite_bulk_load_keeps_every_value_and_names_the_row_it_refuses() {
    use c360_db::bulk::SqliteBulk;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bulk.db").display());
    let db = Db::connect(&url).await.unwrap();
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, f DOUBLE PRECISION, n BIGINT)")
        .await
        .unwrap();
    db.close().await;
    let hostile = "'; DROP TABLE t; -- 热狗 \u{1F32D} \"q\"";
    let rows: Vec<Vec<Value>> = (1..=2000i64)
        .map(|i| {
            vec![
                i.into(),
                if i % 7 == 0 {
                    Value::NullS
                } else {
                    format!("{hostile}{i}").into()
                },
                (i as f64 / 3.0).into(),
                if i % 5 == 0 {
                    Value::NullI
                } else {
                    (-i).into()
                },
            ]
        })
        .collect();
    let cols = ["id", "s", "f", "n"];
    let mut w = SqliteBulk::open(&url).unwrap();
    w.insert("t", &cols, &rows[..1000]).unwrap();
    w.commit().unwrap();
    w.insert("t", &cols, &rows[1000..]).unwrap();
    // A duplicate key is refused with the row it is in; the open batch is not committed.
    let dup = vec![rows[0].clone(), rows[3].clone()];
    let e = w.insert("t", &cols, &dup).unwrap_err().to_string();
    assert!(e.contains("row 0 into t") && e.contains("UNIQUE"), "{e}");
    drop(w);
    let db = Db::connect(&url).await.unwrap();
    let n = db.fetch_all("SELECT COUNT(*) AS n FROM t").await.unwrap();
    assert_eq!(get_i64(&n[0], "n"), Some(1000));
    let r = db
        .fetch_all("SELECT s, f, n FROM t WHERE id = 998")
        .await
        .unwrap();
    assert_eq!(get_text(&r[0], "s").unwrap(), format!("{hostile}998"));
    assert_eq!(get_f64(&r[0], "f"), Some(998.0 / 3.0));
    assert_eq!(get_i64(&r[0], "n"), Some(-998));
    let r = db
        .fetch_all("SELECT s, n FROM t WHERE id = 35")
        .await
        .unwrap();
    assert_eq!(get_text(&r[0], "s"), None);
    assert_eq!(get_i64(&r[0], "n"), None);
    db.close().await;
    // A finished load leaves the file in WAL mode, as every other connection expects.
    let mut w = SqliteBulk::open(&url).unwrap();
    w.insert("t", &cols, &rows[1000..]).unwrap();
    w.finish().unwrap();
    let db = Db::connect(&url).await.unwrap();
    let n = db.fetch_all("SELECT COUNT(*) AS n FROM t").await.unwrap();
    assert_eq!(get_i64(&n[0], "n"), Some(2000));
    let m = db.fetch_all("PRAGMA journal_mode").await.unwrap();
    assert_eq!(get_text(&m[0], "journal_mode").unwrap(), "wal");
}

#[tokio::test]
async fn sqlite_each_reads_what_sqlx_reads_with_bound_values_and_names_the_file_it_cannot_read() {
    use c360_db::bulk::{sqlite_each, Val};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("read.db").display());
    let db = Db::connect(&url).await.unwrap();
    db.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, f DOUBLE PRECISION, n BIGINT, b BLOB)",
    )
    .await
    .unwrap();
    // Values as a messy source stores them: text in an integer column, an integer in a text
    // column, NULLs, a blob that is not UTF-8.
    db.exec(
        "INSERT INTO t VALUES (1, '热狗 ''q''', 1.5, 7, NULL), (2, NULL, NULL, 'abc', x'ff00'), \
         (3, 42, -0.25, NULL, x'6869'), (4, '', 3, -9, NULL)",
    )
    .await
    .unwrap();
    let sql = "SELECT id, s, f, n, b FROM t WHERE id >= ? ORDER BY id";
    let mut got = Vec::new();
    let n = sqlite_each(&url, sql, &[2i64.into()], |row| {
        got.push(
            row.iter()
                .map(|v| match v {
                    Val::Null => "null".to_string(),
                    Val::Int(i) => format!("i{i}"),
                    Val::Float(f) => format!("f{f}"),
                    Val::Text(t) => format!("t{t}"),
                    Val::Blob(b) => format!("b{b:?}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
        )
    })
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        got,
        [
            "i2 null null tabc b[255, 0]",
            "i3 t42 f-0.25 null b[104, 105]",
            "i4 t f3 i-9 null",
        ]
    );
    // The same rows through sqlx's Any driver: the same kinds.
    let rows = db
        .fetch_all("SELECT id, s, f, n FROM t WHERE id = 1")
        .await
        .unwrap();
    let mut first = Vec::new();
    sqlite_each(
        &url,
        "SELECT id, s, f, n FROM t WHERE id = ?",
        &[1i64.into()],
        |r| {
            first = r.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
        },
    )
    .unwrap();
    assert_eq!(get_text(&rows[0], "s").unwrap(), "热狗 'q'");
    assert_eq!(
        first,
        ["Int(1)", "Text(\"热狗 'q'\")", "Float(1.5)", "Int(7)"]
    );
    db.close().await;
    // A statement SQLite refuses, and a file that is not there, are named.
    let e = sqlite_each(&url, "SELECT nope FROM t", &[], |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("read.db") && e.contains("no such column: nope"),
        "{e}"
    );
    let gone = format!("sqlite://{}", dir.path().join("gone.db").display());
    let e = sqlite_each(&gone, "SELECT 1", &[], |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gone.db") && e.contains("not a SQLite file"),
        "{e}"
    );
}
