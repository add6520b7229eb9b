//! A chain whose source contract provides only orders: the server serves profiles, segments and
//! predictions, and each view that needs an entity it lacks answers 409 `not_in_sources` naming it.

use axum::http::StatusCode;
use c360_server::{AppState, ServeConfig};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_name_the_entities_an_orders_only_chain_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("customer,date,amount\n");
    for c in 0..80u32 {
        for k in 0..(1 + c % 5) {
            let day = 1 + (c * 31 + k * 47) % 400;
            let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
                + chrono::Duration::days(day as i64);
            csv.push_str(&format!("K{c},{d},{}.50\n", 12 + (c + k) % 40));
        }
    }
    std::fs::write(dir.path().join("orders.csv"), csv).unwrap();
    let contract = c360_etl::contract::Contract::from_toml(&format!(
        "[sources.export]\ndir = {:?}\n[entities.orders]\nsource = \"export\"\nfile = \"orders.csv\"\nmissing = [\"order_id\"]\n\
         money = \"yuan\"\ntime_format = \"%Y-%m-%d\"\ncolumns = {{ member_id = \"customer\", order_time = \"date\", total = \"amount\", status = {{ value = \"paid\" }} }}\n",
        dir.path().display().to_string()
    ))
    .unwrap();
    let wh = dir.path().join("wh");
    let etl = c360_etl::EtlConfig {
        warehouse: wh.clone(),
        contract: Some(contract),
        progress: false,
        ..Default::default()
    };
    c360_etl::run(&etl).await.unwrap();
    let db = c360_db::Db::connect(&etl.metastore()).await.unwrap();
    let admin = create_key(&db, "admin", Role::Admin, &[]).await.unwrap();
    db.close().await;
    let st = AppState::open(ServeConfig {
        warehouse: wh,
        metastore: etl.metastore(),
        poll: std::time::Duration::from_secs(60),
        llm: None,
        limits: Default::default(),
    })
    .await
    .unwrap();
    let a = Some(admin.as_str());
    let (s, h) = call(&st, "GET", "/api/v1/health", None, None).await;
    assert_eq!(
        (s, h["loaded_entities"].clone()),
        (StatusCode::OK, json!(["orders"]))
    );
    // What orders alone can tell.
    for path in [
        "/api/v1/overview",
        "/api/v1/segments",
        "/api/v1/customers?page_size=5",
        "/api/v1/compare/daypart",
    ] {
        let (s, v) = call(&st, "GET", path, a, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    let (_, l) = call(&st, "GET", "/api/v1/customers?page_size=1", a, None).await;
    let id = l["items"][0]["customer_id"].as_i64().unwrap();
    let (s, p) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/predictions"),
        a,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    // What needs more says what.
    for (path, needs) in [
        (
            "/api/v1/network".to_string(),
            "shares or group_orders or paid_by",
        ),
        (format!("/api/v1/customers/{id}/network"), "shares"),
        ("/api/v1/sentiment".to_string(), "reviews"),
        (format!("/api/v1/customers/{id}/emotion"), "reviews"),
        ("/api/v1/behavior/funnel".to_string(), "events"),
        ("/api/v1/behavior/paths".to_string(), "events"),
        ("/api/v1/service/tickets".to_string(), "tickets"),
        ("/api/v1/recommendations".to_string(), "order_items"),
        (
            format!("/api/v1/customers/{id}/recommendations"),
            "order_items",
        ),
        ("/api/v1/compare/store".to_string(), "stores"),
        ("/api/v1/compare/product".to_string(), "order_items"),
    ] {
        let (s, v) = call(&st, "GET", &path, a, None).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_in_sources")),
            "{path}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(needs),
            "{path}: {v}"
        );
    }
}
