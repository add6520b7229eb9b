//! Group commit of live ingestion: many orders and events posted at once share transactions,
//! yet each is stored once, answered only after its commit, re-scored in order (a customer's
//! concurrent orders all count), and replayed the same after a restart.

use std::collections::HashSet;

use axum::http::StatusCode;
use c360_server::AppState;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_share_commits_and_each_counts_once() {
    let f = fixture(3_000, 41).await;
    // 233 requests from one key at once: this test is about group commit, not the per-key rate
    // limit (tested in auth), which a fast enough run would otherwise trip (burst 200).
    let mut cfg = serve_cfg(&f);
    cfg.limits.requests_per_sec = 0.0;
    let st = AppState::open(cfg).await.unwrap();
    let a = f.admin.clone();
    // Three customers with orders, and their home stores.
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let b = sess
        .query("SELECT customer_id, home_store_id FROM customer_segmentation WHERE home_store_id IS NOT NULL AND frequency > 0 ORDER BY customer_id LIMIT 3")
        .await
        .unwrap();
    let mut who: Vec<(i64, i64)> = Vec::new();
    for b in &b {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        let stores = b
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            who.push((ids.value(i), stores.value(i)));
        }
    }
    assert_eq!(who.len(), 3);
    let mut before = Vec::new();
    for (c, _) in &who {
        let (_, p) = call(
            &st,
            "GET",
            &format!("/api/v1/customers/{c}"),
            Some(&a),
            None,
        )
        .await;
        before.push(p["profile"]["order_count"].as_i64().unwrap());
    }
    let per_customer = 60;
    // 180 orders and 30 resends of them, and 20 event posts, all at once.
    let mut tasks = Vec::new();
    for (k, (c, store)) in who.iter().enumerate() {
        for i in 0..per_customer {
            let st = st.clone();
            let a = a.clone();
            let order = json!({"order_no": format!("GC-{k}-{i}"), "customer_id": c, "store_id": store, "total_fen": 1000 + i});
            let resend = i % 6 == 0;
            tasks.push(tokio::spawn(async move {
                let first =
                    call(&st, "POST", "/api/v1/orders", Some(&a), Some(order.clone())).await;
                let again = if resend {
                    Some(call(&st, "POST", "/api/v1/orders", Some(&a), Some(order)).await)
                } else {
                    None
                };
                (first, again)
            }));
        }
    }
    let mut ev_tasks = Vec::new();
    for i in 0..20 {
        let st = st.clone();
        let a = a.clone();
        let c = who[i % 3].0;
        ev_tasks.push(tokio::spawn(async move {
            call(&st, "POST", "/api/v1/events/batch", Some(&a), Some(json!({"events": [
                {"event_id": format!("gce-{i}-a"), "customer_id": c, "session_id": "gc", "action_type": "view", "page": "menu"},
                {"event_id": format!("gce-{i}-b"), "customer_id": c, "session_id": "gc", "action_type": "click", "page": "item"},
                {"event_id": format!("gce-{}-a", (i + 1) % 20), "customer_id": c, "session_id": "gc", "action_type": "view", "page": "menu"}
            ]}))).await
        }));
    }
    let mut seqs = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let ((s, v), again) = t.await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(
            seqs.insert(v["seq"].as_i64().unwrap()),
            "each order its own sequence number"
        );
        created += 1;
        if let Some((s2, v2)) = again {
            assert_eq!(
                (s2, v2["created"].as_bool()),
                (StatusCode::OK, Some(false)),
                "{v2}"
            );
        }
    }
    assert_eq!(created, 3 * per_customer);
    let mut ev_created = 0;
    for t in ev_tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        ev_created += v["created"].as_i64().unwrap();
    }
    // 40 distinct events (each batch resends one of its neighbour's).
    assert_eq!(ev_created, 40);
    // Each stored once; each order announced once.
    assert_eq!(
        count_meta(
            &f,
            "SELECT COUNT(*) AS n FROM live_orders WHERE order_no LIKE 'GC-%'"
        )
        .await,
        180
    );
    assert_eq!(
        count_meta(
            &f,
            "SELECT COUNT(*) AS n FROM live_events WHERE event_id LIKE 'gce-%'"
        )
        .await,
        40
    );
    assert_eq!(
        count_meta(
            &f,
            "SELECT COUNT(*) AS n FROM stream_log WHERE topic = 'orders' AND payload LIKE '%GC-%'"
        )
        .await,
        180
    );
    // Every concurrent order of a customer counts in their live profile.
    for ((c, _), n0) in who.iter().zip(&before) {
        let (_, p) = call(
            &st,
            "GET",
            &format!("/api/v1/customers/{c}"),
            Some(&a),
            None,
        )
        .await;
        assert_eq!(
            p["live"]["orders"].as_f64().unwrap() as i64,
            n0 + per_customer as i64,
            "customer {c}"
        );
    }
    // They shared transactions: far fewer commits than the 230 requests that wrote.
    let (commits, jobs) = st.inner().ingest.stats();
    assert_eq!(
        jobs,
        180 + 30 + 20,
        "every write went through the committer"
    );
    assert!(commits < jobs, "{commits} commits for {jobs} jobs");
    // The same order posted twice at once (one batch, most likely): stored once, one 201.
    let (c, store) = who[0];
    let mut twins = Vec::new();
    for i in 0..20 {
        for _ in 0..2 {
            let st = st.clone();
            let a = a.clone();
            let order = json!({"order_no": format!("TW-{i}"), "customer_id": c, "store_id": store, "total_fen": 700});
            twins.push(tokio::spawn(async move {
                call(&st, "POST", "/api/v1/orders", Some(&a), Some(order)).await
            }));
        }
    }
    let mut twin_created = 0;
    for t in twins {
        let (s, v) = t.await.unwrap();
        match s {
            StatusCode::CREATED => twin_created += 1,
            StatusCode::OK => assert_eq!(v["created"], false, "{v}"),
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(twin_created, 20, "one of each twin stored");
    assert_eq!(
        count_meta(
            &f,
            "SELECT COUNT(*) AS n FROM stream_log WHERE topic = 'orders' AND payload LIKE '%TW-%'"
        )
        .await,
        20
    );
    // A restart replays the same.
    drop(st);
    let st2 = AppState::open(serve_cfg(&f)).await.unwrap();
    for ((c, _), n0) in who.iter().zip(&before) {
        let (_, p) = call(
            &st2,
            "GET",
            &format!("/api/v1/customers/{c}"),
            Some(&a),
            None,
        )
        .await;
        assert_eq!(
            p["live"]["orders"].as_f64().unwrap() as i64,
            n0 + per_customer as i64 + if *c == who[0].0 { 20 } else { 0 },
            "customer {c} after a restart"
        );
    }
    let (_, o) = call(&st2, "GET", "/api/v1/overview", Some(&a), None).await;
    assert_eq!(o["live"]["orders"], 200);
}
