//! Numbers and times out of their domain are refused with the field named, and nothing out of
//! range reaches an aggregate: an order total beyond a till's, a quantity beyond a counter's,
//! an i64 near its maximum, a time in the future or before 1990, a date parameter far off.

use axum::http::StatusCode;
use c360_server::AppState;
use serde_json::json;

use super::{call, fixture, serve_cfg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_domain_numbers_and_times_are_refused() {
    let f = fixture(3_000, 47).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let a = Some(f.admin.as_str());
    let order = |no: &str, total: i64, qty: i64, price: i64, time: Option<&str>| {
        let mut o = json!({"order_no": no, "store_id": f.store, "total_fen": total,
                           "items": [{"product_id": 1, "qty": qty, "unit_price_fen": price}]});
        if let Some(t) = time {
            o["order_time"] = json!(t);
        }
        o
    };
    for (body, status, field) in [
        (
            order("B1", 1_000_001, 1, 100_000, None),
            StatusCode::BAD_REQUEST,
            "total_fen",
        ),
        (
            order("B2", i64::MAX, 1, 100_000, None),
            StatusCode::BAD_REQUEST,
            "total_fen",
        ),
        (
            order("B3", 500, 1001, 100, None),
            StatusCode::BAD_REQUEST,
            "items[0].qty",
        ),
        (
            order("B4", 500, 1, 100_001, None),
            StatusCode::BAD_REQUEST,
            "items[0].unit_price_fen",
        ),
        (
            order("B5", 500, 1, 500, Some("2099-01-01 12:00:00")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_time",
        ),
        (
            order("B6", 500, 1, 500, Some("1989-12-31 12:00:00")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_time",
        ),
    ] {
        let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(body.clone())).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
    }
    let lines: Vec<_> = (0..201)
        .map(|_| json!({"product_id": 1, "qty": 1, "unit_price_fen": 10}))
        .collect();
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/orders",
        a,
        Some(json!({"order_no": "B7", "store_id": f.store, "total_fen": 10, "items": lines})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The largest order a till may ring up, twice: the counters add up and nothing overflows.
    for no in ["MAX-1", "MAX-2"] {
        let (s, v) = call(
            &st,
            "POST",
            "/api/v1/orders",
            a,
            Some(order(no, 1_000_000, 10, 100_000, None)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, o) = call(&st, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["live"]["revenue_fen"], 2_000_000);
    // The document states the same range for every date it declares.
    let (_, doc) = call(&st, "GET", "/api-docs/openapi.json", None, None).await;
    let mut dates = 0;
    check_dates(&doc, &mut dates);
    assert!(dates >= 12, "{dates} dates in the document");
    use chrono::Datelike;
    assert_eq!(
        (
            c360_core::query::FIRST_DAY.year(),
            c360_core::query::LAST_DAY.year()
        ),
        (1990, 2099),
        "DAY_PATTERN spells 199x and 20xx"
    );
    // Date parameters out of range are a 400, not a panic.
    for q in [
        "from=2024-01-01&to=%2B262142-12-31",
        "from=2024-01-01&to=2150-01-01",
        "from=1970-01-01&to=2024-01-01",
    ] {
        let (s, v) = call(
            &st,
            "GET",
            &format!("/api/v1/campaigns/program?{q}"),
            a,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    let (s, v) = call(
        &st,
        "GET",
        "/api/v1/customers/1/timeline?from=0001-01-01",
        a,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The server restarts on what it acknowledged.
    drop(st);
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (_, o) = call(&st, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(o["live"]["orders"], 2);

    // An order from before its store opened is refused.
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/orders",
        a,
        Some(order("EARLY", 500, 1, 500, Some("2000-06-01 12:00:00"))),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("before store"),
        "{v}"
    );

    // Rows written before today's bounds (as the overflow attack left them), and one naming a
    // store the snapshot lacks: the server starts anyway, serves, moves them to quarantine with
    // their reasons and reports how many.
    drop(st);
    let db = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let day = c360_db::get_i64(
        &db.fetch("SELECT day FROM live_orders WHERE order_no = 'MAX-1'", &[])
            .await
            .unwrap()[0],
        "day",
    )
    .unwrap();
    for (no, store, total) in [
        ("POISON-1", f.store, i64::MAX - 1),
        ("POISON-2", f.store, i64::MAX - 1),
        ("POISON-3", 987_654, 500),
    ] {
        db.execute(
            "INSERT INTO live_orders (order_no, customer_id, store_id, order_time, day, total_fen, items, received_at, received_by) VALUES (?, NULL, ?, '2030-01-01 12:00:00', ?, ?, '[]', 'now', 'attacker')",
            &[no.into(), store.into(), day.into(), total.into()],
        )
        .await
        .unwrap();
    }
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (s, o) = call(&st, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["live"]["orders"], 2);
    assert_eq!(o["live"]["revenue_fen"], 2_000_000);
    let (_, h) = call(&st, "GET", "/api/v1/health", None, None).await;
    assert_eq!(h["live_quarantined"], 3, "{h}");
    let q = db
        .fetch(
            "SELECT row_key, reason, row_json FROM live_quarantine ORDER BY row_key",
            &[],
        )
        .await
        .unwrap();
    let reasons: Vec<(String, String)> = q
        .iter()
        .map(|r| {
            (
                c360_db::get_text(r, "row_key").unwrap(),
                c360_db::get_text(r, "reason").unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].1.starts_with("total_fen") && reasons[1].1.starts_with("total_fen"),
        "{reasons:?}"
    );
    assert!(reasons[2].1.starts_with("store_id"), "{reasons:?}");
    assert!(c360_db::get_text(&q[0], "row_json")
        .unwrap()
        .contains("attacker"));
    let left = db
        .fetch(
            "SELECT COUNT(*) AS n FROM live_orders WHERE order_no LIKE 'POISON%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(c360_db::get_i64(&left[0], "n"), Some(0));
    // And the next start finds nothing more to quarantine.
    drop(st);
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (_, h) = call(&st, "GET", "/api/v1/health", None, None).await;
    assert_eq!(h["live_quarantined"], 3);
    db.close().await;
}

/// Every `format: date` schema in the document carries `DAY_PATTERN`.
fn check_dates(v: &serde_json::Value, n: &mut usize) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("format").and_then(|f| f.as_str()) == Some("date") {
                assert_eq!(
                    m.get("pattern").and_then(|p| p.as_str()),
                    Some(c360_core::query::DAY_PATTERN),
                    "{v}"
                );
                *n += 1;
            }
            m.values().for_each(|x| check_dates(x, n));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| check_dates(x, n)),
        _ => {}
    }
}
