//! Server tests: the REST API through the router (no socket), auth and store scoping, ingestion
//! with idempotency and durability across a restart, cache invalidation, the WebSocket on a real
//! loopback socket (live push, replay after a reconnect, store filtering, a new ETL snapshot),
//! and the dashboard end to end in headless Chromium.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod act;
mod audiences;
mod authz;
mod bodies;
mod bounds;
mod e2e;
mod index;
mod ingest;
mod journeys;
mod llm;
mod privacy;
mod sentiment;
mod sources;
mod text;
mod ws;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use c360_server::auth::{create_key, Role};
use c360_server::{app, AppState, ServeConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub wh: PathBuf,
    pub sim: c360_sim::SimConfig,
    pub etl: c360_etl::EtlConfig,
    pub admin: String,
    pub analyst: String,
    pub manager: String,
    /// The store the manager key may see.
    pub store: i64,
}

pub fn serve_cfg(f: &Fixture) -> ServeConfig {
    ServeConfig {
        warehouse: f.wh.clone(),
        metastore: f.etl.metastore(),
        poll: Duration::from_millis(100),
        llm: None,
        limits: Default::default(),
    }
}

pub async fn fixture(orders: u64, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let sim = c360_sim::SimConfig {
        seed,
        orders,
        stores: 50,
        pos_url: p("pos.db"),
        wx_url: p("wx.db"),
        truth_url: p("truth.db"),
        progress: false,
        ..Default::default()
    };
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let etl = c360_etl::EtlConfig {
        pos_url: sim.pos_url.clone(),
        wx_url: sim.wx_url.clone(),
        warehouse: wh.clone(),
        progress: false,
        ..Default::default()
    };
    c360_etl::run(&etl).await.unwrap();
    let sess = c360_etl::session(&wh).await.unwrap();
    // The store with the most home customers.
    let store = sess
        .scalar_i64("SELECT home_store_id FROM customer_segmentation WHERE home_store_id IS NOT NULL GROUP BY home_store_id ORDER BY COUNT(*) DESC, home_store_id LIMIT 1")
        .await
        .unwrap();
    let db = c360_db::Db::connect(&etl.metastore()).await.unwrap();
    let admin = create_key(&db, "admin", Role::Admin, &[]).await.unwrap();
    let analyst = create_key(&db, "analyst", Role::Analyst, &[])
        .await
        .unwrap();
    let manager = create_key(&db, "manager", Role::StoreManager, &[store])
        .await
        .unwrap();
    assert!(create_key(&db, "nobody", Role::StoreManager, &[])
        .await
        .is_err());
    db.close().await;
    Fixture {
        _dir: dir,
        wh,
        sim,
        etl,
        admin,
        analyst,
        manager,
        store,
    }
}

/// Serves `st` on a loopback port; returns its address, the stop switch and the server task.
pub async fn spawn_server(
    st: &AppState,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(c360_server::run(listener, st.clone(), async {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx, server)
}

pub async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

async fn count_meta(f: &Fixture, sql: &str) -> i64 {
    let db = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let n = db.fetch_all(sql).await.unwrap()[0].clone();
    c360_db::get_i64(&n, "n").unwrap()
}

async fn count(wh: &Path, sql: &str) -> i64 {
    c360_etl::session(wh)
        .await
        .unwrap()
        .scalar_i64(sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_checks_roles_and_ingests_orders() {
    let f = fixture(6_000, 41).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(f.manager.as_str()),
    );

    // Auth on every route, one error shape.
    for uri in [
        "/api/v1/overview",
        "/api/v1/customers",
        "/api/v1/segments",
        "/api/v1/compare/city",
        "/api/v1/me",
    ] {
        let (s, v) = call(&st, "GET", uri, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(v["code"], "unauthorized");
        let (s, _) = call(&st, "GET", uri, Some("c360_wrong"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (_, me) = call(&st, "GET", "/api/v1/me", m, None).await;
    assert_eq!(me["role"], "store_manager");
    assert_eq!(me["stores"], json!([f.store]));

    // Overview equals the warehouse; the manager sees only their stores.
    let (s, o) = call(&st, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let paid = count(&f.wh, "SELECT COUNT(*) FROM orders WHERE status = 'paid'").await;
    assert_eq!(o["kpi"]["orders"], paid);
    let customers = count(&f.wh, "SELECT COUNT(*) FROM customer_segmentation").await;
    assert_eq!(o["customers"]["customers"], customers);
    let tier_sum: i64 = o["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["customers"].as_i64().unwrap())
        .sum();
    assert_eq!(tier_sum, customers);
    let (_, om) = call(&st, "GET", "/api/v1/overview", m, None).await;
    let store_orders = count(
        &f.wh,
        &format!(
            "SELECT COUNT(*) FROM orders WHERE status = 'paid' AND store_id = {}",
            f.store
        ),
    )
    .await;
    assert_eq!(om["kpi"]["orders"], store_orders);
    assert!(store_orders < paid);

    // Lists: filters, paging, sorting, and bad parameters named.
    let (_, l) = call(
        &st,
        "GET",
        "/api/v1/customers?tier=%E6%A0%B8%E5%BF%83%E5%AE%A2%E6%88%B7&page=1&page_size=7",
        an,
        None,
    )
    .await;
    let core = count(
        &f.wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE order_count > 0 AND tier = '核心客户'",
    )
    .await;
    assert_eq!(l["total"], core);
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len() as i64, core.min(7));
    assert!(items.iter().all(|c| c["tier"] == "核心客户"));
    let spends: Vec<i64> = items
        .iter()
        .map(|c| c["total_spend_fen"].as_i64().unwrap())
        .collect();
    assert!(
        spends.windows(2).all(|w| w[0] >= w[1]),
        "sorted by spend desc: {spends:?}"
    );
    let (_, p2) = call(
        &st,
        "GET",
        "/api/v1/customers?page=2&page_size=5&sort=customer_id&order=asc",
        an,
        None,
    )
    .await;
    let ids: Vec<i64> = p2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for (uri, field) in [
        ("/api/v1/customers?sort=phone", "sort"),
        ("/api/v1/customers?page_size=1000", "page_size"),
        ("/api/v1/customers?q=1%27%20OR%201=1", "q"),
        ("/api/v1/customers/1/behavior?from=2024-13-01", "from"),
        ("/api/v1/customers/1/predictions?type=magic", "type"),
        ("/api/v1/compare/planet", "dim"),
    ] {
        let (s, v) = call(&st, "GET", uri, an, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(v["code"], "bad_request");
        assert!(
            v["message"].as_str().unwrap().starts_with(field),
            "{uri}: {v}"
        );
    }
    let (_, mine) = call(&st, "GET", "/api/v1/customers?page_size=200", m, None).await;
    let mine_total = count(
        &f.wh,
        &format!(
            "SELECT COUNT(*) FROM v_customer_360 WHERE order_count > 0 AND home_store_id = {}",
            f.store
        ),
    )
    .await;
    assert_eq!(mine["total"], mine_total);
    assert!(mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["home_store_id"] == f.store));

    // One customer: the 360 row and every facet.
    let id = count(&f.wh, &format!("SELECT customer_id FROM v_customer_360 WHERE home_store_id = {} ORDER BY order_count DESC, customer_id LIMIT 1", f.store)).await;
    let other = count(&f.wh, &format!("SELECT customer_id FROM v_customer_360 WHERE home_store_id <> {} AND order_count > 0 ORDER BY customer_id LIMIT 1", f.store)).await;
    let (s, p) = call(&st, "GET", &format!("/api/v1/customers/{id}"), an, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        p["profile"]["order_count"],
        count(
            &f.wh,
            &format!("SELECT order_count FROM v_customer_360 WHERE customer_id = {id}")
        )
        .await
    );
    assert!(p["profile"]["phone_masked"]
        .as_str()
        .is_none_or(|ph| ph.contains("****")));
    assert!(p["live"].is_null());
    let (s, _) = call(&st, "GET", &format!("/api/v1/customers/{id}"), m, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&st, "GET", &format!("/api/v1/customers/{other}"), m, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, v) = call(&st, "DELETE", "/api/v1/segments", an, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (s, v) = call(&st, "GET", "/api/v1/nothing-here", an, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = call(&st, "GET", "/api/v1/customers/99999999", an, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (_, tl) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/timeline?limit=500"),
        an,
        None,
    )
    .await;
    assert_eq!(
        tl["orders"].as_array().unwrap().len() as i64,
        count(
            &f.wh,
            &format!("SELECT COUNT(*) FROM orders WHERE customer_id = {id}")
        )
        .await
    );
    let (_, b) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/behavior?from=2020-01-01&to=2030-12-31"),
        an,
        None,
    )
    .await;
    let dp_sum: i64 = b["dayparts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["orders"].as_i64().unwrap())
        .sum();
    assert_eq!(
        dp_sum,
        count(
            &f.wh,
            &format!("SELECT COUNT(*) FROM orders WHERE customer_id = {id} AND status = 'paid'")
        )
        .await
    );
    let (_, b0) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/behavior?from=2010-01-01&to=2010-12-31"),
        an,
        None,
    )
    .await;
    assert!(b0["dayparts"].as_array().unwrap().is_empty());
    let (_, bm) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/behavior"),
        m,
        None,
    )
    .await;
    assert!(
        bm["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("lat").is_none()),
        "no location for store managers"
    );
    let (s, _) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/emotion"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, pr) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/preferences"),
        an,
        None,
    )
    .await;
    assert!(!pr["products"].as_array().unwrap().is_empty());
    let (_, rc) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/recommendations"),
        an,
        None,
    )
    .await;
    let bought: Vec<i64> = pr["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["product_id"].as_i64().unwrap())
        .collect();
    // Hybrid recommendations: what they bought is marked so, and what they buy most is never
    // pushed out by new items.
    let items = rc["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    for x in items {
        let pid = x["product_id"].as_i64().unwrap();
        assert_eq!(
            x["bought_before"].as_bool().unwrap(),
            bought.contains(&pid),
            "{x}"
        );
    }
    let top = pr["products"][0]["product_id"].as_i64().unwrap();
    assert!(
        items.iter().any(|x| x["product_id"] == top),
        "favourite {top} missing: {rc}"
    );
    // Context: a breakfast cart with item 1 in it leaves item 1 out; bad input names the field.
    let (s, rc2) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/recommendations?daypart=breakfast&cart=1&k=5"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{rc2}");
    assert_eq!(rc2["daypart"], "breakfast");
    assert_eq!(rc2["items"].as_array().unwrap().len(), 5);
    assert!(rc2["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["product_id"] != 1));
    for (q, field, status) in [
        ("daypart=brunch", "daypart", StatusCode::BAD_REQUEST),
        ("cart=999", "cart", StatusCode::UNPROCESSABLE_ENTITY),
        ("cart=x", "cart", StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = call(
            &st,
            "GET",
            &format!("/api/v1/customers/{id}/recommendations?{q}"),
            an,
            None,
        )
        .await;
        assert_eq!(s, status, "{q}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
    }
    let (s, anon) = call(
        &st,
        "GET",
        "/api/v1/recommendations?daypart=lunch&store_id=1",
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(anon["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| !x["bought_before"].as_bool().unwrap()));

    // Behaviour: the funnel by tier covers every session once; paths and exits.
    let (s, fu) = call(&st, "GET", "/api/v1/behavior/funnel?by=tier", an, None).await;
    assert_eq!(s, StatusCode::OK, "{fu}");
    let sessions: u64 = fu["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["funnel"]["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(
        sessions as i64,
        count(&f.wh, "SELECT COUNT(*) FROM customer_sessions").await
    );
    for g in fu["segments"].as_array().unwrap() {
        let r: Vec<u64> = g["funnel"]["reached"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert!(r.windows(2).all(|w| w[0] >= w[1]), "funnel narrows: {g}");
    }
    let (s, v) = call(&st, "GET", "/api/v1/behavior/funnel?by=zodiac", an, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("by:"));
    let (_, fm) = call(&st, "GET", "/api/v1/behavior/funnel", m, None).await;
    let msess = fm["segments"][0]["funnel"]["sessions"].as_u64().unwrap();
    assert!(
        msess > 0 && msess < sessions,
        "manager sees their customers' sessions only"
    );
    let (s, pa) = call(&st, "GET", "/api/v1/behavior/paths?limit=5", an, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pa["paths"].as_array().unwrap().len(), 5);
    assert!(!pa["exits"].as_array().unwrap().is_empty());

    // Sentiment by aspect; a manager may not ask for another store.
    let (s, se) = call(&st, "GET", "/api/v1/sentiment", an, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        se["total"]["reviews"].as_i64().unwrap(),
        count(&f.wh, "SELECT COUNT(*) FROM review_sentiment").await
    );
    assert!(se["total"]["taste_n"].as_i64().unwrap() > 0);
    let other = if f.store == 1 { 2 } else { 1 };
    let (s, _) = call(
        &st,
        "GET",
        &format!("/api/v1/sentiment?store_id={other}"),
        m,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &st,
        "GET",
        &format!("/api/v1/sentiment?store_id={}", f.store),
        m,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Network: influencers in rank order, seeds, and a customer's own place.
    let (s, ne) = call(&st, "GET", "/api/v1/network?limit=5", an, None).await;
    assert_eq!(s, StatusCode::OK, "{ne}");
    let ranks: Vec<i64> = ne["influencers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["influence_rank"].as_i64().unwrap())
        .collect();
    assert_eq!(ranks, vec![1, 2, 3, 4, 5]);
    assert!(!ne["seeds"].as_array().unwrap().is_empty());
    assert!(ne["summary"]["modularity"].as_f64().unwrap() > 0.3);
    let top_id = ne["influencers"][0]["customer_id"].as_i64().unwrap();
    let (s, cn) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{top_id}/network"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cn["network"]["influence_rank"], 1);
    assert_eq!(cn["influence_percentile"], 1.0);
    let (_, nm) = call(&st, "GET", "/api/v1/network", m, None).await;
    assert!(
        nm["summary"].is_null(),
        "chain-wide figures are not for store managers"
    );
    let (_, pc) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/predictions?type=churn"),
        an,
        None,
    )
    .await;
    let metrics: Vec<&str> = pc["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, vec!["p_churn_90d"]);
    let (_, pa) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/predictions"),
        an,
        None,
    )
    .await;
    assert_eq!(pa["predictions"].as_array().unwrap().len(), 7);
    let (_, ins) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/insights?lang=en"),
        an,
        None,
    )
    .await;
    assert_eq!(ins["insight"]["value"]["title"], "Value");
    let n_orders = p["profile"]["order_count"].as_i64().unwrap();
    assert!(ins["insight"]["value"]["text"]
        .as_str()
        .unwrap()
        .contains(&format!("{n_orders} orders")));
    assert!(
        ins.to_string().find("phone").is_none(),
        "no personal data in insight facts"
    );

    let (_, seg) = call(&st, "GET", "/api/v1/segments", an, None).await;
    let grid_sum: i64 = seg["rfm_grid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["customers"].as_i64().unwrap())
        .sum();
    assert_eq!(grid_sum, customers);
    assert_eq!(seg["rfm_classes"].as_array().unwrap().len(), 8);
    for dim in ["city", "store", "product", "daypart"] {
        let (s, c) = call(&st, "GET", &format!("/api/v1/compare/{dim}"), an, None).await;
        assert_eq!(s, StatusCode::OK, "{dim}");
        assert!(!c["rows"].as_array().unwrap().is_empty(), "{dim}");
    }
    let (_, cm) = call(&st, "GET", "/api/v1/compare/store", m, None).await;
    assert!(cm["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] == f.store));

    // OpenAPI and Swagger UI are served locally.
    let (s, doc) = call(&st, "GET", "/api-docs/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/customers/{id}",
        "/api/v1/orders",
        "/api/v1/customers/{id}/insights",
        "/api/v1/compare/{dim}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    // The document declares the bearer scheme, and every operation but the health check needs
    // it and says so: walked without a key, each answers the 401 it documents.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = path == "/api/v1/health";
            let sec = &op["security"][0];
            assert_eq!(
                sec.get("bearer").is_some(),
                !public,
                "{method} {path}: {sec}"
            );
            assert!(op["responses"].get("500").is_some(), "{method} {path}");
            let url = path.replace("{id}", "1").replace("{dim}", "store");
            let body = (method != "get").then(|| json!({}));
            let (s, v) = call(&st, &method.to_uppercase(), &url, None, body).await;
            if public {
                assert_eq!(s, StatusCode::OK, "{method} {path}");
            } else {
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
                assert_eq!(v["code"], "unauthorized");
            }
            walked += 1;
        }
    }
    assert!(walked >= 40, "{walked} operations");
    // Text from a request is bound, never spliced: quotes, backslashes and an injection attempt
    // in filters find nothing (and break nothing); in a stored name they come back unchanged.
    for v in ["a'b", "x' OR '1'='1", "\\'; --", "热狗🌭"] {
        let q: String = v
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (s, l) = call(&st, "GET", &format!("/api/v1/customers?tier={q}"), a, None).await;
        assert_eq!(
            (s, l["total"].as_i64()),
            (StatusCode::OK, Some(0)),
            "{v}: {l}"
        );
        let (s, l) = call(&st, "GET", &format!("/api/v1/audit?action={q}"), a, None).await;
        assert_eq!(s, StatusCode::OK, "{v}: {l}");
    }
    let (s, ui) = call(&st, "GET", "/swagger-ui/", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        ui.as_str().unwrap_or("").contains("swagger"),
        "swagger ui html"
    );
    let (s, html) = call(&st, "GET", "/", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.as_str().unwrap().contains("<div id=\"root\">"));

    // Ingestion: roles, validation naming the field, durability, idempotency, live re-score.
    let store_of_id = p["profile"]["home_store_id"].as_i64().unwrap();
    let order = json!({"order_no": "LIVE-1", "customer_id": id, "store_id": store_of_id, "total_fen": 4200,
                       "items": [{"product_id": 1, "qty": 2, "unit_price_fen": 1500}, {"product_id": 9, "qty": 2, "unit_price_fen": 900}]});
    let (s, v) = call(&st, "POST", "/api/v1/orders", an, Some(order.clone())).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let mut bad = order.clone();
    bad["store_id"] = json!(987654);
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["message"].as_str().unwrap().starts_with("store_id"),
        "{v}"
    );
    let mut bad = order.clone();
    bad["items"][1]["qty"] = json!(0);
    let (_, v) = call(&st, "POST", "/api/v1/orders", a, Some(bad)).await;
    assert!(
        v["message"].as_str().unwrap().starts_with("items[1].qty"),
        "{v}"
    );
    let mut bad = order.clone();
    bad["total_fen"] = json!(99_999);
    let (_, v) = call(&st, "POST", "/api/v1/orders", a, Some(bad)).await;
    assert!(
        v["message"].as_str().unwrap().starts_with("total_fen"),
        "{v}"
    );
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/orders",
        m,
        Some(json!({"order_no": "X", "store_id": other_store(&f).await, "total_fen": 100})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a manager posts only for their stores"
    );

    let before = p["profile"]["order_count"].as_i64().unwrap();
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], true);
    assert_eq!(v["live"]["orders"].as_f64().unwrap() as i64, before + 1);
    assert!(
        v["live"]["score"]["prediction"]["p_alive"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order.clone())).await;
    assert_eq!(
        (s, v["created"].as_bool()),
        (StatusCode::OK, Some(false)),
        "a resend counts once"
    );
    let (_, o2) = call(&st, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(o2["live"]["orders"], 1);
    assert_eq!(o2["live"]["revenue_fen"], 4200);
    // The cached profile was invalidated: it now carries the live re-score.
    let (_, p2) = call(&st, "GET", &format!("/api/v1/customers/{id}"), an, None).await;
    assert_eq!(p2["live"]["orders"].as_f64().unwrap() as i64, before + 1);
    let (_, tl2) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/timeline"),
        an,
        None,
    )
    .await;
    assert_eq!(tl2["live_orders"][0]["order_no"], "LIVE-1");
    let (s, _) = call(&st, "POST", "/api/v1/events", a, Some(json!({"event_id": "e1", "customer_id": id, "session_id": "s1", "action_type": "view", "page": "menu"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = call(&st, "POST", "/api/v1/events", a, Some(json!({"event_id": "e2", "session_id": "s1", "action_type": "teleport", "page": "menu"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("action_type"));
    // A batch: one bad event rejects the batch and names it; a resent batch counts nothing twice.
    let ev = |i: usize, a: &str| json!({"event_id": format!("b{i}"), "customer_id": id, "session_id": "s2", "action_type": a, "page": "menu"});
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/events/batch",
        a,
        Some(json!({"events": [ev(1, "view"), ev(2, "fly")]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1].action_type"),
        "{v}"
    );
    let ev_before = count_meta(&f, "SELECT COUNT(*) AS n FROM live_events").await;
    let batch = json!({"events": [ev(1, "view"), ev(2, "click"), ev(3, "add_cart")]});
    let (s, v) = call(&st, "POST", "/api/v1/events/batch", a, Some(batch.clone())).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"created": 3, "duplicates": 0}));
    let (_, v) = call(&st, "POST", "/api/v1/events/batch", a, Some(batch)).await;
    assert_eq!(v, json!({"created": 0, "duplicates": 3}));
    assert_eq!(
        count_meta(&f, "SELECT COUNT(*) AS n FROM live_events").await,
        ev_before + 3
    );
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/events/batch",
        an,
        Some(json!({"events": [ev(4, "view")]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Cache: a repeated read is a hit.
    let (_, h0) = call(&st, "GET", "/api/v1/health", None, None).await;
    call(&st, "GET", "/api/v1/segments", an, None).await;
    call(&st, "GET", "/api/v1/segments", an, None).await;
    let (_, h1) = call(&st, "GET", "/api/v1/health", None, None).await;
    assert!(h1["cache_hits"].as_u64().unwrap() > h0["cache_hits"].as_u64().unwrap());

    // A restart keeps what was ingested: the live order is replayed from the metastore.
    drop(st);
    let st2 = AppState::open(serve_cfg(&f)).await.unwrap();
    let (_, o3) = call(&st2, "GET", "/api/v1/overview", a, None).await;
    assert_eq!(o3["live"]["orders"], 1);
    let (_, p3) = call(&st2, "GET", &format!("/api/v1/customers/{id}"), an, None).await;
    assert_eq!(p3["live"]["orders"].as_f64().unwrap() as i64, before + 1);

    // The next ETL run takes the posted events into the tracks and sessions, once.
    for _ in 0..2 {
        c360_etl::run(&f.etl).await.unwrap();
    }
    assert_eq!(
        count(
            &f.wh,
            "SELECT COUNT(*) FROM customer_behavior_tracks_raw WHERE event_key LIKE 'L:%'"
        )
        .await,
        4
    );
    assert_eq!(
        count(&f.wh, &format!("SELECT events * 10 + max_step FROM customer_sessions WHERE session_id = 's2' AND customer_id = {id}")).await,
        31,
        "three events; a click on the menu page is not the item step, so the strict funnel stops at menu"
    );
}

async fn other_store(f: &Fixture) -> i64 {
    count(
        &f.wh,
        &format!(
            "SELECT MIN(store_id) FROM stores WHERE store_id <> {}",
            f.store
        ),
    )
    .await
}

/// The committed `web/openapi.json` (the dashboard's TypeScript types are generated from it) is
/// the document this server serves: change a route or a schema and this fails until
/// `c360 openapi > web/openapi.json && npm --prefix web run gen:api` is run.
#[test]
fn committed_openapi_document_matches_the_server() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let now = c360_server::openapi::document();
    assert!(
        committed == now,
        "web/openapi.json is out of date: run `cargo run -p c360-cli -- openapi > web/openapi.json && npm --prefix web run gen:api`"
    );
}
