//! Sources on real servers: the POS on MariaDB, the mini-program on PostgreSQL, the metastore on
//! PostgreSQL — and the result must equal the embedded SQLite run of the same simulation.
//! `.ci/run` starts both servers; without them these tests fail rather than pass silently.

use super::*;

const MARIADB: &str = "mysql://root@127.0.0.1:3306";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_and_postgres_sources_match_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let lite = sim_cfg(dir.path(), 4_000, 21);
    c360_sim::simulate(&lite).await.unwrap();
    let wh_lite = dir.path().join("lite");
    run(&etl_cfg(&lite, wh_lite.clone())).await;

    let mut srv = lite.clone();
    srv.pos_url = format!("{MARIADB}/c360_it_pos");
    srv.wx_url = format!("{POSTGRES}/c360_it_wx");
    srv.truth_url = dir.path().join("truth2.db").display().to_string();
    c360_sim::simulate(&srv)
        .await
        .expect("simulate into MariaDB and PostgreSQL (are they running?)");
    let meta = format!("{POSTGRES}/c360_it_meta");
    c360_db::reset_database(&meta).await.unwrap();
    let wh_srv = dir.path().join("srv");
    let mut cfg = etl_cfg(&srv, wh_srv.clone());
    cfg.metastore_url = Some(meta.clone());
    // Whole tables read in slices of 500 keys (~8 statements for orders, more for items).
    cfg.source_slice = 500;
    run(&cfg).await;
    assert_eq!(fingerprint(&wh_srv).await, fingerprint(&wh_lite).await);

    // Incremental on the servers too: a second run adds nothing.
    run(&cfg).await;
    assert_eq!(fingerprint(&wh_srv).await, fingerprint(&wh_lite).await);
    let e = c360_eval::evaluate_identity(&meta, &srv.truth_url)
        .await
        .unwrap();
    assert!(e.precision >= 0.99 && e.recall >= 0.5, "{e:?}");
}

/// A whole table read from a server in slices of its integer key — gaps, negative keys, NULL
/// keys, text that is not ASCII — gives the same rows, in the same order and with the same row
/// numbers, as one statement.
async fn slices_read_like_one_statement(url: &str) {
    use c360_etl::contract::Contract;
    use c360_etl::source::Sources;
    c360_db::reset_database(url).await.unwrap();
    let db = c360_db::Db::connect(url).await.unwrap();
    db.exec(
        "CREATE TABLE cities (city_id BIGINT NULL, name VARCHAR(32), province VARCHAR(32), \
         tier BIGINT, lat DOUBLE PRECISION, lon DOUBLE PRECISION)",
    )
    .await
    .unwrap();
    let ids = [
        None,
        Some(1),
        Some(2),
        Some(3),
        Some(7),
        Some(8),
        Some(40),
        Some(41),
        Some(42),
        Some(-5),
        None,
    ];
    let rows: Vec<Vec<c360_db::Value>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            vec![
                id.map_or(c360_db::Value::NullI, c360_db::Value::I),
                format!("城市{i}").into(),
                if i % 3 == 0 {
                    c360_db::Value::NullS
                } else {
                    "省".to_string().into()
                },
                (i as i64).into(),
                c360_db::Value::F(30.0 + i as f64 / 8.0),
                c360_db::Value::F(120.5),
            ]
        })
        .collect();
    db.insert_rows(
        "cities",
        &["city_id", "name", "province", "tier", "lat", "lon"],
        &rows,
    )
    .await
    .unwrap();
    db.close().await;

    let resolved = Contract::simulator().with_urls(url, url).resolve().unwrap();
    let mut src = Sources::open(resolved).await.unwrap();
    async fn read(src: &Sources) -> (u64, Vec<String>) {
        let plan = src.plan("cities").unwrap().clone();
        let mut out = Vec::new();
        let r = src
            .stream(&plan, None, None, |row| out.push(format!("{row:?}")))
            .await
            .unwrap();
        (r.rows, out)
    }
    src.slice_keys = 1 << 20;
    let (n, whole) = read(&src).await;
    assert_eq!(n, ids.len() as u64);
    assert_eq!(whole.len(), ids.len());
    assert!(whole.iter().any(|r| r.contains("城市0")), "{whole:?}");
    // Rows of equal keys (the NULLs) come in no defined order, in one statement as in slices:
    // those are compared as a set, every other row in order with its row number.
    let canon = |rows: &[String]| {
        let (mut nulls, keyed): (Vec<String>, Vec<String>) = rows
            .iter()
            .cloned()
            .partition(|r| r.starts_with("Row { cells: [Null"));
        for r in &mut nulls {
            *r = r.split(", line:").next().unwrap_or_default().to_string();
        }
        nulls.sort();
        (keyed, nulls)
    };
    assert_eq!(canon(&whole).1.len(), 2);
    for k in [1, 3, 5, 100] {
        src.slice_keys = k;
        let (n, sliced) = read(&src).await;
        assert_eq!(n, ids.len() as u64, "{url}, {k} keys a slice");
        assert_eq!(canon(&sliced), canon(&whole), "{url}, {k} keys a slice");
    }
    src.close().await;
    c360_db::reset_database(url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_reads_in_slices_like_one_statement() {
    slices_read_like_one_statement(&format!("{MARIADB}/c360_it_slices")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_in_slices_like_one_statement() {
    slices_read_like_one_statement(&format!("{POSTGRES}/c360_it_slices")).await;
}
