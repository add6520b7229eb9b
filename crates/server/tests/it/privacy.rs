//! Personal-data requests through the API: an admin exports a customer and erases one; from
//! that moment the server serves nothing of them (profile, timeline, audiences, live orders),
//! the request is pending until the ETL's part, and the next run completes it. Store managers
//! and analysts can do neither (the authorization matrix walks that too).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_takes_effect_at_once_and_completes_at_the_next_run() {
    let f = fixture(6_000, 47).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(f.manager.as_str()),
    );
    let c = count(
        &f.wh,
        &format!(
            "SELECT MIN(customer_id) FROM v_customer_360 WHERE home_store_id = {} AND order_count > 1",
            f.store
        ),
    )
    .await;
    let (s, p) = call(&st, "GET", &format!("/api/v1/customers/{c}"), m, None).await;
    assert_eq!(s, StatusCode::OK, "{p}");

    // The export: theirs, whole, and recorded.
    let export = format!("/api/v1/privacy/customers/{c}/export");
    let (s, e) = call(&st, "POST", &export, m, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, d) = call(&st, "POST", &export, a, None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["customer_id"], c);
    assert_eq!(
        d["orders"].as_array().unwrap().len() as i64,
        p["profile"]["order_count"].as_i64().unwrap()
    );
    assert!(!d["accounts"].as_array().unwrap().is_empty());
    assert!(!d.to_string().contains("phone_hash"));

    let (_, lv) = call(&st, "GET", &format!("/api/v1/customers?q={c}"), a, None).await;
    assert!(
        lv["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["customer_id"] == c),
        "{lv}"
    );

    // A saved audience holding them.
    let (s, au) = call(
        &st,
        "POST",
        "/api/v1/audiences",
        an,
        Some(json!({"name": "them", "sql": format!("SELECT customer_id FROM v_customer_360 WHERE customer_id = {c}")})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{au}");
    let members = format!(
        "/api/v1/audiences/{}/members?limit=10",
        au["audience_id"].as_i64().unwrap()
    );
    let ids = |v: &Value| -> Vec<i64> {
        v["customers"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["customer_id"].as_i64()).collect())
            .unwrap_or_default()
    };
    let (_, mv) = call(&st, "GET", &members, an, None).await;
    assert!(ids(&mv).contains(&c), "{mv}");

    // The erasure: refused to the analyst, accepted for the admin (202, pending).
    let erase = format!("/api/v1/privacy/customers/{c}/erase");
    let body = json!({"reason": "ticket 42"});
    let (s, _) = call(&st, "POST", &erase, an, Some(body.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = call(&st, "POST", &erase, a, Some(json!({"reason": "  "}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, r) = call(&st, "POST", &erase, a, Some(body.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["status"], "pending");
    // From now on nothing of them is served.
    for path in ["", "/timeline", "/predictions", "/preferences"] {
        let (s, v) = call(&st, "GET", &format!("/api/v1/customers/{c}{path}"), a, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (_, mv) = call(&st, "GET", &members, an, None).await;
    assert!(!ids(&mv).contains(&c), "{mv}");
    let (s, lv) = call(&st, "GET", &format!("/api/v1/customers?q={c}"), a, None).await;
    assert_eq!(s, StatusCode::OK, "{lv}");
    assert!(
        !lv["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["customer_id"] == c),
        "{lv}"
    );
    let order = json!({"order_no": "P-1", "customer_id": c, "store_id": f.store, "total_fen": 2000,
                       "items": [{"product_id": 1, "qty": 1, "unit_price_fen": 2000}]});
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = call(&st, "POST", &export, a, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(&st, "POST", &erase, a, Some(body)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // The next ETL run completes it; the server's new snapshot no longer has them at all.
    c360_etl::run(&f.etl).await.unwrap();
    let (_, l) = call(&st, "GET", "/api/v1/privacy/requests", a, None).await;
    let reqs = l["requests"].as_array().unwrap();
    let done = reqs
        .iter()
        .find(|r| r["kind"] == "erase" && r["customer_id"] == c)
        .unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert!(reqs
        .iter()
        .any(|r| r["kind"] == "export" && r["customer_id"] == c));
    st.reload().await.unwrap();
    assert_eq!(
        count(
            &f.wh,
            &format!("SELECT COUNT(*) FROM v_customer_360 WHERE customer_id = {c}")
        )
        .await,
        0
    );
    let (s, _) = call(&st, "GET", &format!("/api/v1/customers/{c}"), a, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Audited: the export, the erasure, the refusals, the completion.
    let (_, au) = call(&st, "GET", "/api/v1/audit?limit=200", a, None).await;
    let has = |action: &str, outcome: &str| {
        au["entries"].as_array().unwrap().iter().any(|e| {
            e["action"] == action
                && e["outcome"] == outcome
                && e["target"] == format!("customer:{c}")
        })
    };
    assert!(has("privacy.export", "ok"));
    assert!(has("privacy.erase", "ok"));
    assert!(has("privacy.erase", "rejected"));
    assert!(has("privacy.erase.complete", "ok"));
}
