//! Simulator tests: determinism, consistency with its own ground truth, and realism checks.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use c360_db::{get_f64, get_i64, Db};
use c360_sim::{simulate, SimConfig};

fn cfg(dir: &std::path::Path, seed: u64, orders: u64) -> SimConfig {
    SimConfig {
        seed,
        orders,
        stores: 50,
        pos_url: dir.join("pos.db").display().to_string(),
        wx_url: dir.join("wx.db").display().to_string(),
        truth_url: dir.join("truth.db").display().to_string(),
        progress: false,
        ..Default::default()
    }
}

async fn one(db: &Db, sql: &str) -> i64 {
    get_i64(&db.fetch_all(sql).await.unwrap()[0], "v").unwrap_or(0)
}

async fn digest(c: &SimConfig) -> Vec<i64> {
    let pos = Db::connect(&c.pos_url).await.unwrap();
    let wx = Db::connect(&c.wx_url).await.unwrap();
    vec![
        one(&pos, "SELECT COUNT(*) AS v FROM orders").await,
        one(&pos, "SELECT SUM(total_fen) AS v FROM orders").await,
        one(&pos, "SELECT SUM(LENGTH(phone)) AS v FROM members").await,
        one(&wx, "SELECT COUNT(*) AS v FROM wx_orders").await,
        one(&wx, "SELECT SUM(total_fen) AS v FROM wx_orders").await,
        one(&wx, "SELECT COUNT(*) AS v FROM wx_events").await,
    ]
}

/// Every row of every table of the three databases, as text, in row order.
async fn everything(c: &SimConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for url in [&c.pos_url, &c.wx_url, &c.truth_url] {
        let db = Db::connect(url).await.unwrap();
        let tables = db
            .fetch_all("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .await
            .unwrap();
        for t in tables {
            let t = c360_db::get_text(&t, "name").unwrap();
            let cols: Vec<String> = db
                .fetch_all(&format!(
                    "SELECT name FROM pragma_table_info('{t}') ORDER BY cid"
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| format!("quote({})", c360_db::get_text(r, "name").unwrap()))
                .collect();
            let rows = db
                .fetch_all(&format!(
                    "SELECT {} AS v FROM {t} ORDER BY rowid",
                    cols.join(" || ',' || ")
                ))
                .await
                .unwrap();
            for r in rows {
                out.push((t.clone(), c360_db::get_text(&r, "v").unwrap()));
            }
        }
        db.close().await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_data_whatever_the_threads_other_seed_other_data() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let one_thread = SimConfig {
        threads: 1,
        ..cfg(a.path(), 5, 3000)
    };
    let three = SimConfig {
        threads: 3,
        ..cfg(b.path(), 5, 3000)
    };
    let s1 = simulate(&one_thread).await.unwrap();
    let s2 = simulate(&three).await.unwrap();
    simulate(&cfg(c.path(), 6, 3000)).await.unwrap();
    assert_eq!(s1.pos_orders, s2.pos_orders);
    assert_eq!(s1.persons, s2.persons);
    let (x, y) = (everything(&one_thread).await, everything(&three).await);
    assert!(x.len() > 10_000, "{} rows", x.len());
    assert_eq!(x.len(), y.len());
    if let Some(i) = (0..x.len()).find(|i| x[*i] != y[*i]) {
        panic!("row {i} differs: {:?} vs {:?}", x[i], y[i]);
    }
    assert_ne!(
        digest(&cfg(a.path(), 5, 3000)).await,
        digest(&cfg(c.path(), 6, 3000)).await
    );
    assert!(s1.pos_orders + s1.wx_orders >= 3000);
    // Ids are dense and every id a row names exists: order numbers and sessions name real ids.
    let wx = Db::connect(&one_thread.wx_url).await.unwrap();
    assert_eq!(
        one(&wx, "SELECT MAX(user_id) - COUNT(*) AS v FROM wx_users").await,
        0
    );
    assert_eq!(
        one(
            &wx,
            "SELECT COUNT(*) AS v FROM wx_events e WHERE NOT EXISTS (SELECT 1 FROM wx_users u WHERE u.user_id = e.user_id) OR e.session_id NOT LIKE '_' || e.user_id || '-%'"
        )
        .await,
        0
    );
    assert_eq!(
        one(
            &wx,
            "SELECT COUNT(*) AS v FROM wx_orders o WHERE o.order_no NOT LIKE 'WX%' OR CAST(substr(o.order_no, 11) AS INTEGER) NOT IN (SELECT order_id FROM wx_orders)"
        )
        .await,
        0
    );
    assert_eq!(
        one(
            &wx,
            "SELECT COUNT(*) AS v FROM wx_shares s WHERE s.to_user_id IS NOT NULL AND s.to_user_id NOT IN (SELECT user_id FROM wx_users)"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn sources_agree_with_ground_truth() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), 9, 20_000);
    let s = simulate(&c).await.unwrap();
    let truth = Db::connect(&c.truth_url).await.unwrap();
    // Every person's pre-cutoff orders are in the sources (test orders and duplicate syncs are extra rows).
    assert_eq!(
        one(&truth, "SELECT SUM(n_orders) AS v FROM persons").await as u64,
        s.pos_orders + s.wx_orders
    );
    assert_eq!(
        one(&truth, "SELECT COUNT(*) AS v FROM future_orders").await as u64,
        s.future_orders
    );
    // Every member and mini-program user has exactly one true person.
    assert_eq!(
        one(
            &truth,
            "SELECT COUNT(*) AS v FROM ids WHERE system = 'member'"
        )
        .await as u64,
        s.members
    );
    assert_eq!(
        one(&truth, "SELECT COUNT(*) AS v FROM ids WHERE system = 'wx'").await as u64,
        s.wx_users
    );
    // Nothing after the cut-off leaks into the sources.
    let pos = Db::connect(&c.pos_url).await.unwrap();
    assert_eq!(
        one(
            &pos,
            "SELECT COUNT(*) AS v FROM orders WHERE order_time >= '2025-10-01'"
        )
        .await,
        0
    );
    // The latent rates follow the configured Gamma(r, alpha): mean r/alpha within 10%.
    let r = truth
        .fetch_all("SELECT AVG(lambda) AS m, AVG(p_drop) AS p FROM persons")
        .await
        .unwrap();
    let mean_l = get_f64(&r[0], "m").unwrap();
    let want = c.params.r / c.params.alpha;
    assert!(
        (mean_l - want).abs() / want < 0.1,
        "mean lambda {mean_l} vs {want}"
    );
    let mean_p = get_f64(&r[0], "p").unwrap();
    let want_p = c.params.a / (c.params.a + c.params.b);
    assert!(
        (mean_p - want_p).abs() / want_p < 0.1,
        "mean p {mean_p} vs {want_p}"
    );
    // What people pay per order is Gamma(p, ν): relative to each person's mean p/ν, a future
    // order's paid amount has mean 1 and variance 1/p (the Gamma-Gamma assumption, exactly).
    let rel = truth
        .fetch_all(
            "SELECT f.total_fen / p.mean_spend_fen AS x FROM future_orders f \
             JOIN persons p ON f.person_id = p.person_id",
        )
        .await
        .unwrap();
    let xs: Vec<f64> = rel.iter().filter_map(|r| get_f64(r, "x")).collect();
    assert!(xs.len() > 5_000, "{} future orders", xs.len());
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
    assert!((m - 1.0).abs() < 0.03, "paid / mean spend averages {m}");
    assert!(
        (v * c.params.p - 1.0).abs() < 0.15,
        "paid / mean spend variance {v} vs 1/p = {}",
        1.0 / c.params.p
    );
    // List prices cover what is paid: the gap is a discount, never negative.
    assert_eq!(
        one(
            &pos,
            "SELECT COUNT(*) AS v FROM orders WHERE discount_fen < 0"
        )
        .await,
        0
    );
    // Holidays sell more per day than ordinary weekdays.
    let hol = one(&pos, "SELECT COUNT(*) AS v FROM orders WHERE substr(order_time, 1, 10) BETWEEN '2024-10-01' AND '2024-10-07'").await as f64 / 7.0;
    let ord = one(&pos, "SELECT COUNT(*) AS v FROM orders WHERE substr(order_time, 1, 10) BETWEEN '2024-10-14' AND '2024-10-18'").await as f64 / 5.0;
    assert!(hol > ord * 1.2, "holiday {hol}/day vs weekday {ord}/day");
}
