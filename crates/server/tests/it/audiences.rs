//! Saved audiences through the API: create, preview, size and members moving with live
//! orders, versions, export in both formats, overlap, a campaign targeting an audience, and
//! store managers kept to their stores (and away from SQL).

use super::*;

async fn raw(state: &AppState, uri: &str, key: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder()
        .method("GET")
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, ctype, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_follow_live_orders_export_and_stay_in_scope() {
    let f = fixture(8_000, 43).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(f.manager.as_str()),
    );
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let rows = c360_core::query::query(
        &sess,
        "SELECT product_id, sku FROM products ORDER BY product_id LIMIT 1",
    )
    .await
    .unwrap();
    let (pid, sku) = (
        rows[0]["product_id"].as_i64().unwrap(),
        rows[0]["sku"].as_str().unwrap().to_string(),
    );
    let s0 = f.store;
    let bought = json!({"bought": {"sku": sku, "store_id": s0, "min_times": 1}});
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/audiences",
        an,
        Some(json!({"name": "买过此品的本店客人", "rule": bought})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["audience_id"].as_i64().unwrap();
    let want = count(
        &f.wh,
        &format!(
            "SELECT COUNT(DISTINCT o.customer_id) FROM orders o JOIN order_items i ON i.order_id = o.order_id \
             WHERE o.status = 'paid' AND o.customer_id IS NOT NULL AND o.store_id = {s0} AND i.product_id = {pid}"
        ),
    )
    .await;
    let (s, d) = call(&st, "GET", &format!("/api/v1/audiences/{id}"), an, None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["size"], want, "{d}");
    assert_eq!(d["versions"].as_array().unwrap().len(), 1);
    assert_eq!(d["sizes"][0]["size"], want, "the size is recorded: {d}");

    // A customer who never bought it there buys it now, live: they join.
    let x = count(
        &f.wh,
        &format!(
            "SELECT MIN(c.customer_id) FROM v_customer_360 c WHERE c.order_count > 0 AND c.customer_id NOT IN \
             (SELECT o.customer_id FROM orders o JOIN order_items i ON i.order_id = o.order_id \
              WHERE o.customer_id IS NOT NULL AND o.store_id = {s0} AND i.product_id = {pid})"
        ),
    )
    .await;
    let order = json!({"order_no": "AUD-1", "customer_id": x, "store_id": s0, "total_fen": 1500,
                       "items": [{"product_id": pid, "qty": 1, "unit_price_fen": 1500}]});
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, d) = call(&st, "GET", &format!("/api/v1/audiences/{id}"), an, None).await;
    assert_eq!(d["size"], want + 1, "{d}");
    let mut found = false;
    let mut offset = 0;
    while !found && offset <= want {
        let (_, p) = call(
            &st,
            "GET",
            &format!("/api/v1/audiences/{id}/members?limit=1000&offset={offset}"),
            an,
            None,
        )
        .await;
        found = p["customers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["customer_id"] == x);
        offset += 1000;
    }
    assert!(found, "customer {x} is listed");

    // Export: CSV and Parquet, every member once, no personal data.
    let key = f.analyst.as_str();
    let (s, ct, body) = raw(&st, &format!("/api/v1/audiences/{id}/export"), key).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.lines().count() as i64, want + 2, "header + members");
    assert!(text.lines().next().unwrap().starts_with("customer_id,"));
    let (s, ct, body) = raw(
        &st,
        &format!("/api/v1/audiences/{id}/export?format=parquet"),
        key,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/vnd.apache.parquet");
    assert_eq!(&body[..4], b"PAR1");
    let (s, _, _) = raw(
        &st,
        &format!("/api/v1/audiences/{id}/export?format=xlsx"),
        key,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A new version; the old one stays in the history.
    let (s, v) = call(
        &st,
        "PUT",
        &format!("/api/v1/audiences/{id}"),
        an,
        Some(json!({"name": "买过两次", "rule": {"bought": {"sku": sku, "store_id": s0, "min_times": 2}}})),
    )
    .await;
    assert_eq!((s, v["version"].as_i64()), (StatusCode::OK, Some(2)), "{v}");
    let (_, d) = call(&st, "GET", &format!("/api/v1/audiences/{id}"), an, None).await;
    assert_eq!(d["versions"].as_array().unwrap().len(), 2);
    assert!(d["size"].as_i64().unwrap() < want, "{d}");

    // Overlap with a second audience.
    let (_, v) = call(
        &st,
        "POST",
        "/api/v1/audiences",
        an,
        Some(json!({"name": "core", "rule": {"field": {"field": "tier", "op": "eq", "values": ["核心客户"]}}})),
    )
    .await;
    let core = v["audience_id"].as_i64().unwrap();
    let (s, o) = call(
        &st,
        "GET",
        &format!("/api/v1/audiences/overlap?ids={id},{core}"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["intersections"][0][1], o["intersections"][1][0]);
    assert!(o["intersections"][0][1].as_u64().unwrap() <= o["sizes"][0].as_u64().unwrap());

    // SQL that writes is refused naming the field; a preview saves nothing.
    let (s, e) = call(
        &st,
        "POST",
        "/api/v1/audiences/preview",
        an,
        Some(json!({"name": "x", "sql": "DELETE FROM orders"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(e["message"].as_str().unwrap().starts_with("sql:"), "{e}");
    let (s, p) = call(
        &st,
        "POST",
        "/api/v1/audiences/preview",
        an,
        Some(json!({"name": "x", "sql": "SELECT customer_id FROM v_customer_360 WHERE order_count >= 2"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let two = count(
        &f.wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE order_count >= 2",
    )
    .await;
    assert_eq!(p["size"], two);
    assert!(!p["sample"].as_array().unwrap().is_empty());

    // Store managers: only their stores' audiences, never SQL, never the chain's.
    let (_, l) = call(&st, "GET", "/api/v1/audiences", m, None).await;
    assert!(l["audiences"].as_array().unwrap().is_empty(), "{l}");
    let (s, _) = call(&st, "GET", &format!("/api/v1/audiences/{id}"), m, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &st,
        "GET",
        &format!("/api/v1/audiences/{id}/export"),
        m,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for body in [
        json!({"name": "x", "rule": {"all": []}}),
        json!({"name": "x", "store_ids": [f.store], "sql": "SELECT customer_id FROM customers"}),
        json!({"name": "x", "store_ids": [f.store + 1], "rule": {"all": []}}),
    ] {
        let (s, e) = call(&st, "POST", "/api/v1/audiences", m, Some(body.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}: {e}");
    }
    let mine = json!({"name": "本店核心", "store_ids": [f.store], "rule": {"field": {"field": "tier", "op": "in", "values": ["核心客户", "活跃客户"]}}});
    let (s, p) = call(
        &st,
        "POST",
        "/api/v1/audiences/preview",
        m,
        Some(mine.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(p["size"].as_i64().unwrap() > 0);
    assert!(p["sample"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["home_store_id"] == f.store));
    let (s, v) = call(&st, "POST", "/api/v1/audiences", m, Some(mine)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mid = v["audience_id"].as_i64().unwrap();
    let (s, v) = call(
        &st,
        "POST",
        &format!("/api/v1/audiences/{mid}/lookalike"),
        m,
        Some(json!({"name": "像本店核心的客人", "size": 20})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let lid = v["audience_id"].as_i64().unwrap();
    let (_, p) = call(
        &st,
        "GET",
        &format!("/api/v1/audiences/{lid}/members?limit=100"),
        m,
        None,
    )
    .await;
    let got = p["customers"].as_array().unwrap();
    assert!(!got.is_empty() && got.len() <= 20, "{p}");
    assert!(got.iter().all(|c| c["home_store_id"] == f.store), "{p}");

    // A campaign targets a saved audience: its members come from it.
    let (_, sg) = call(&st, "GET", "/api/v1/campaigns/suggestions", an, None).await;
    let mut spec = sg["suggestions"][0]["spec"].clone();
    spec["audience"] = json!({"audience_id": core});
    let (s, c) = call(&st, "POST", "/api/v1/campaigns", an, Some(spec.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let cid = c["campaign_id"].as_i64().unwrap();
    let (s, l) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{cid}/launch"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    let (_, d) = call(&st, "GET", &format!("/api/v1/audiences/{core}"), an, None).await;
    // The saved audience's members who accept the channel; the rest are counted apart.
    assert_eq!(
        l["audience"].as_i64().unwrap() + l["no_consent"].as_i64().unwrap(),
        d["size"].as_i64().unwrap(),
        "{l} {d}"
    );
    assert!(l["no_consent"].as_i64().unwrap() > 0, "{l}");
    spec["audience"] = json!({"audience_id": 999_999});
    let (s, _) = call(&st, "POST", "/api/v1/campaigns", an, Some(spec)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Archived: gone from the list, history kept; every change was audited.
    let (s, _) = call(
        &st,
        "DELETE",
        &format!("/api/v1/audiences/{core}"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, l) = call(&st, "GET", "/api/v1/audiences", an, None).await;
    assert!(l["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["audience"]["audience_id"] != core));
    let n = count_meta(
        &f,
        "SELECT COUNT(*) AS n FROM audit_log WHERE action IN ('audience.create', 'audience.update', 'audience.export', 'audience.archive')",
    )
    .await;
    assert!(n >= 8, "{n}");
}
