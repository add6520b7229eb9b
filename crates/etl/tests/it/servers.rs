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
