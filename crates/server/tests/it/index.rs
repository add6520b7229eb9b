//! The per-snapshot serving index: built by the ETL, it holds exactly what the per-customer
//! views compute from the facts; the session reads the views from its Parquet files with the
//! same answers; a server rebuilds an index that is missing or damaged.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use c360_core::serving::{self, ServingIndex, VIEWS};
use c360_server::AppState;
use c360_warehouse::Warehouse;

use super::{call, fixture, serve_cfg};

/// Every view's rows per customer, each row as its JSON text, sorted (row order within a
/// customer is not part of a view's meaning).
/// One customer's rows of a view in the index, as JSON texts in order.
fn sorted_rows(idx: &ServingIndex, view: &str, id: i64) -> Vec<String> {
    let mut r: Vec<String> = idx
        .rows(view, id)
        .unwrap()
        .iter()
        .map(|r| rounded(r).to_string())
        .collect();
    r.sort();
    r
}

/// Floats to 9 significant digits: an average over a customer's rows is summed in whatever
/// order the aggregation's partitions meet, and the last bits of a double follow that order.
fn rounded(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap();
            Value::String(format!("{x:.9e}"))
        }
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), rounded(v))).collect()),
        x => x.clone(),
    }
}

async fn by_customer(sess: &c360_warehouse::Session, view: &str) -> BTreeMap<i64, Vec<String>> {
    let rows = c360_core::json::rows(
        &sess
            .query(&format!(
                "SELECT * FROM {view} WHERE customer_id IS NOT NULL"
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in rows {
        let id = r["customer_id"].as_i64().unwrap();
        out.entry(id).or_default().push(rounded(&r).to_string());
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_index_holds_what_the_views_compute() {
    let f = fixture(3_000, 52).await;
    let wh = Warehouse::open(&f.wh).unwrap();
    let version = wh.current().unwrap().version;
    let dir = serving::dir_of(&wh, version);
    assert!(
        dir.is_dir(),
        "the ETL builds the index of the version it commits"
    );

    // Row for row, the index equals the views computed from the facts.
    let fresh = c360_etl::session(&f.wh).await.unwrap();
    let idx = ServingIndex::open(&dir).unwrap();
    let mut customers = 0;
    for v in VIEWS {
        let want = by_customer(&fresh, v).await;
        assert!(!want.is_empty(), "{v} has rows");
        assert_eq!(idx.view(v).unwrap().len(), want.len(), "{v}: customers");
        for (id, rows) in &want {
            assert_eq!(&sorted_rows(&idx, v, *id), rows, "{v}, customer {id}");
        }
        if v == "v_customer_360" {
            customers = want.len();
        }
        // An id nobody has: no rows, not an error.
        assert!(idx.rows(v, -7).unwrap().is_empty());
    }
    assert!(customers > 100);

    // The live states the refresh handed to the build are those the snapshot computes.
    let want = c360_core::profile::live_profiles(&fresh).await.unwrap();
    assert_eq!(idx.live_len(), want.len());
    for p in want.as_slice().iter().step_by(7) {
        let got = idx.live(p.features.customer_id).unwrap().unwrap();
        assert_eq!(format!("{got:?}"), format!("{p:?}"));
    }

    // The session reads the views from the index's Parquet files, with the same answers.
    let served = c360_etl::session(&f.wh).await.unwrap();
    serving::open_or_build(&wh, &served, c360_core::slice::SLICE_CUSTOMERS)
        .await
        .unwrap();
    for sql in [
        "SELECT COUNT(*) AS n, SUM(order_count) AS o, SUM(total_spend_fen) AS s, \
         SUM(CAST(clv_12m_fen AS BIGINT)) AS c FROM v_customer_360",
        "SELECT tier, COUNT(*) AS n FROM v_customer_360 GROUP BY tier ORDER BY tier",
        "SELECT category, SUM(qty) AS q FROM v_customer_products GROUP BY category ORDER BY category",
        "SELECT COUNT(*) AS n, SUM(orders) AS o FROM v_customer_time",
    ] {
        let a = c360_warehouse::format_batches(&fresh.query(sql).await.unwrap());
        let b = c360_warehouse::format_batches(&served.query(sql).await.unwrap());
        assert_eq!(a, b, "{sql}");
    }
    let plan = c360_warehouse::format_batches(
        &served
            .query("EXPLAIN SELECT SUM(order_count) FROM v_customer_360")
            .await
            .unwrap(),
    );
    assert!(
        plan.contains("v_customer_360.parquet"),
        "the view is read from the index: {plan}"
    );

    // A timeline is read from the index: the customer's orders, newest first, in the range.
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let busiest = fresh
        .scalar_i64("SELECT customer_id FROM orders WHERE customer_id IS NOT NULL GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1")
        .await
        .unwrap();
    const DAY: &str = "CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT)";
    let mid_day = fresh
        .scalar_i64(&format!(
            "SELECT (MIN({DAY}) + MAX({DAY})) / 2 FROM orders WHERE customer_id = {busiest}"
        ))
        .await
        .unwrap();
    let mid =
        chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(mid_day);
    for (q, sql) in [
        (String::new(), String::new()),
        (format!("?from={mid}"), format!(" AND {DAY} >= {mid_day}")),
        (format!("?to={mid}"), format!(" AND {DAY} <= {mid_day}")),
    ] {
        let want = fresh
            .scalar_i64(&format!(
                "SELECT COUNT(*) FROM orders WHERE customer_id = {busiest}{sql}"
            ))
            .await
            .unwrap();
        let (s, v) = call(
            &st,
            "GET",
            &format!("/api/v1/customers/{busiest}/timeline{q}"),
            Some(&f.admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let orders = v["orders"].as_array().unwrap();
        assert_eq!(orders.len() as i64, want.min(50), "timeline{q}");
        let times: Vec<&str> = orders
            .iter()
            .map(|o| o["order_time"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
        assert!(orders
            .iter()
            .all(|o| o.get("day").is_none() && o["store_name"].is_string()));
    }
    drop(st);

    // A customer's slice of the facts answers the same SQL as the whole warehouse.
    let mut idx = ServingIndex::open(&dir).unwrap();
    idx.register(&served).await.unwrap();
    let top = |sql: &str| {
        let fresh = &fresh;
        let sql = sql.to_string();
        async move { fresh.scalar_i64(&sql).await.unwrap() }
    };
    let reviewer = top("SELECT customer_id FROM customer_emotion WHERE customer_id IS NOT NULL GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1").await;
    let browser = top("SELECT customer_id FROM customer_behavior_tracks WHERE customer_id IS NOT NULL GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1").await;
    let tables = ["orders", "customer_behavior_tracks", "customer_emotion"];
    for id in [busiest, reviewer, browser, -7] {
        let slice = idx.customer_facts(id, &tables).unwrap();
        let since = c360_core::query::local_midnight(mid);
        for (sql, params) in [
            (format!("SELECT daypart, COUNT(*) AS orders, SUM(total_fen) AS spend_fen FROM orders WHERE status = 'paid' AND customer_id = {id} GROUP BY daypart ORDER BY daypart"), vec![]),
            (format!("SELECT CAST(date_part('dow', order_time) AS BIGINT) AS weekday, COUNT(*) AS n FROM orders WHERE customer_id = {id} GROUP BY 1 ORDER BY 1"), vec![]),
            (format!("SELECT order_id, order_time, total_fen, holiday FROM orders WHERE customer_id = {id} AND order_time >= $1 ORDER BY order_time, order_id"), vec![since]),
            (format!("SELECT action_type, page, COUNT(*) AS events FROM customer_behavior_tracks WHERE customer_id = {id} GROUP BY action_type, page ORDER BY action_type, page"), vec![]),
            (format!("SELECT device, COUNT(*) AS n, ROUND(AVG(lat_coarse), 2) AS lat, COUNT(DISTINCT session_id) AS s, MAX(event_time) AS t FROM customer_behavior_tracks WHERE customer_id = {id} GROUP BY device ORDER BY device"), vec![]),
            (format!("SELECT emotion_id, store_id, rating, content, created_at, sentiment, taste, hygiene FROM customer_emotion WHERE customer_id = {id} ORDER BY created_at DESC, emotion_id"), vec![]),
        ] {
            let a = c360_warehouse::format_batches(&fresh.query_with(&sql, params.clone()).await.unwrap());
            let b = c360_warehouse::format_batches(&slice.query_with(&sql, params).await.unwrap());
            assert_eq!(a, b, "customer {id}: {sql}");
        }
    }
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    for (id, route) in [(browser, "behavior"), (reviewer, "emotion")] {
        let (s, v) = call(
            &st,
            "GET",
            &format!("/api/v1/customers/{id}/{route}"),
            Some(&f.admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{route}: {v}");
        let n = match route {
            "behavior" => v["actions"].as_array().unwrap().len(),
            _ => v["reviews"].as_array().unwrap().len(),
        };
        assert!(n > 0, "{route} of customer {id} has rows: {v}");
    }
    drop(st);

    // A server with no index builds one; a damaged one is rebuilt.
    let some_customer = *by_customer(&fresh, "v_customer_360")
        .await
        .keys()
        .nth(customers / 2)
        .unwrap();
    let uri = format!("/api/v1/customers/{some_customer}");
    for damage in ["remove", "truncate"] {
        match damage {
            "remove" => std::fs::remove_dir_all(&dir).unwrap(),
            _ => {
                let p = dir.join("v_customer_geo.pix");
                let len = std::fs::metadata(&p).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len - 5)
                    .unwrap();
                assert!(ServingIndex::open(&dir).is_err(), "a cut file is refused");
            }
        }
        let st = AppState::open(serve_cfg(&f)).await.unwrap();
        let (s, v) = call(&st, "GET", &uri, Some(&f.admin), None).await;
        assert_eq!(s, StatusCode::OK, "{damage}: {v}");
        assert_eq!(v["profile"]["customer_id"], some_customer, "{damage}");
        assert!(ServingIndex::open(&dir).is_ok(), "{damage}: rebuilt");
        let (s, _) = call(
            &st,
            "GET",
            "/api/v1/customers/999999999",
            Some(&f.admin),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{damage}");
    }
}

/// A build a slice of customers at a time is the same index as one in a single slice: the
/// same customers, the same rows per customer in every view, byte for byte the same keyed
/// facts (their order is total) and live states, and the same answers from its Parquet files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_built_in_slices_is_the_index_built_at_once() {
    let f = fixture(3_000, 53).await;
    let wh = Warehouse::open(&f.wh).unwrap();
    let dir = serving::dir_of(&wh, wh.current().unwrap().version);
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let customers = sess
        .scalar_i64("SELECT COUNT(*) FROM customers")
        .await
        .unwrap();
    assert!(customers > 300, "{customers} customers");
    // The ETL's build (one slice) aside; then the same version again in slices of 97.
    let whole = f.wh.join("whole-index");
    std::fs::rename(&dir, &whole).unwrap();
    serving::build_sliced(&wh, &sess, None, 97).await.unwrap();
    let (a, b) = (
        ServingIndex::open(&whole).unwrap(),
        ServingIndex::open(&dir).unwrap(),
    );
    for v in VIEWS {
        let ids = by_customer(&sess, v).await;
        assert_eq!(a.view(v).unwrap().len(), ids.len(), "{v}");
        assert_eq!(b.view(v).unwrap().len(), ids.len(), "{v}");
        for id in ids.keys() {
            assert_eq!(
                sorted_rows(&a, v, *id),
                sorted_rows(&b, v, *id),
                "{v}, customer {id}"
            );
        }
    }
    for file in [
        "customer_orders.pix",
        "customer_events.pix",
        "customer_reviews.pix",
        "live.bin",
    ] {
        let (x, y) = (
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(dir.join(file)).unwrap(),
        );
        assert!(x.len() > 1000, "{file} has rows");
        assert!(x == y, "{file} differs");
    }
    // Orders carry their items' text (a slice aggregates its own orders' items).
    let busiest = sess
        .scalar_i64("SELECT customer_id FROM orders WHERE customer_id IS NOT NULL GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1")
        .await
        .unwrap();
    assert!(b
        .orders(busiest)
        .unwrap()
        .iter()
        .any(|o| o["items"].as_str().is_some_and(|s| s.contains('×'))));
    // The sliced Parquet files answer as the views do.
    let served = c360_etl::session(&f.wh).await.unwrap();
    let mut b = b;
    b.register(&served).await.unwrap();
    for sql in [
        "SELECT COUNT(*) AS n, SUM(order_count) AS o, SUM(total_spend_fen) AS s, \
         SUM(CAST(clv_12m_fen AS BIGINT)) AS c, SUM(event_count) AS e FROM v_customer_360",
        "SELECT category, SUM(qty) AS q, COUNT(*) AS n FROM v_customer_products GROUP BY category ORDER BY category",
        "SELECT COUNT(*) AS n, SUM(orders) AS o FROM v_customer_time",
        "SELECT COUNT(*) AS n, SUM(holiday_orders) AS h FROM v_customer_holiday",
        "SELECT COUNT(*) AS n, SUM(stores_visited) AS s FROM v_customer_geo",
    ] {
        let x = c360_warehouse::format_batches(&sess.query(sql).await.unwrap());
        let y = c360_warehouse::format_batches(&served.query(sql).await.unwrap());
        assert_eq!(x, y, "{sql}");
    }
    // The refresh's features, computed a slice of customers at a time, are those computed at once.
    let asof = sess
        .scalar_i64("SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) - 30 FROM orders")
        .await
        .unwrap();
    let at_once = c360_core::profile::features_sliced(&sess, asof, usize::MAX)
        .await
        .unwrap();
    let sliced = c360_core::profile::features_sliced(&sess, asof, 61)
        .await
        .unwrap();
    assert!(
        at_once.len() > 200,
        "{} customers with features",
        at_once.len()
    );
    assert_eq!(format!("{at_once:?}"), format!("{sliced:?}"));
}
