//! Journeys through the API and live orders: configured by an analyst (not a store manager),
//! fired by a big live order once (a resend fires nothing), and a pending "miss you" cancelled
//! when the customer comes back.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_orders_fire_journeys_once_and_cancel_miss_you() {
    let f = fixture(6_000, 45).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(f.manager.as_str()),
    );
    let spec = |threshold: f64| {
        json!({"enabled": true, "channel": "wechat", "threshold": threshold, "holdout_pct": 0,
               "offer": {"kind": "amount_off", "discount_fen": 500, "sku": "HD01"}})
    };
    let (s, _) = call(
        &st,
        "PUT",
        "/api/v1/journeys/big_spender",
        m,
        Some(spec(20_000.0)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = call(&st, "PUT", "/api/v1/journeys/birthday", an, Some(spec(1.0))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = call(&st, "PUT", "/api/v1/journeys/miss_you", an, Some(spec(7.0))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["message"].as_str().unwrap().starts_with("threshold"),
        "{e}"
    );
    let (s, j) = call(
        &st,
        "PUT",
        "/api/v1/journeys/big_spender",
        an,
        Some(spec(20_000.0)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["spec"]["enabled"], true);

    // A customer of the manager's store who accepts WeChat messages; a small order triggers
    // nothing, a big one thanks them.
    let c = count(
        &f.wh,
        &format!("SELECT MIN(customer_id) FROM v_customer_360 WHERE home_store_id = {} AND order_count > 1 AND consent_wechat", f.store),
    )
    .await;
    let order = |no: &str, total: i64| {
        json!({"order_no": no, "customer_id": c, "store_id": f.store, "total_fen": total,
               "items": [{"product_id": 1, "qty": 1, "unit_price_fen": total}]})
    };
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order("J-1", 2_000))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, l) = call(&st, "GET", "/api/v1/journeys/big_spender/sends", an, None).await;
    assert!(l["sends"].as_array().unwrap().is_empty(), "{l}");
    for _ in 0..2 {
        let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(order("J-2", 25_000))).await;
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{v}");
    }
    let (_, l) = call(&st, "GET", "/api/v1/journeys/big_spender/sends", an, None).await;
    let sends = l["sends"].as_array().unwrap();
    assert_eq!(sends.len(), 1, "{l}");
    let x = &sends[0];
    assert_eq!(x["trigger_key"], "big_spender:J-2");
    assert_eq!(
        (x["customer_id"].as_i64(), x["source"].as_str()),
        (Some(c), Some("live"))
    );
    assert!(
        x["status"] == "planned" || x["arm"] == "global_holdout",
        "{x}"
    );
    let hour: u32 = x["send_at"].as_str().unwrap()[11..13].parse().unwrap();
    assert!((8..22).contains(&hour), "{x}");
    // The manager sees it (their store's customer); the list counts it.
    let (_, l) = call(&st, "GET", "/api/v1/journeys/big_spender/sends", m, None).await;
    assert_eq!(l["sends"].as_array().unwrap().len(), 1, "{l}");
    let (_, js) = call(&st, "GET", "/api/v1/journeys", m, None).await;
    let bs = js["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "big_spender")
        .unwrap();
    assert_eq!(
        bs["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        1
    );

    // "Miss you" planned by a refresh is cancelled when the customer orders.
    let (s, _) = call(&st, "PUT", "/api/v1/journeys/miss_you", an, Some(spec(0.0))).await;
    assert_eq!(s, StatusCode::OK);
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let meta = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    c360_core::journey::fire_refresh(&sess, &meta)
        .await
        .unwrap();
    let planned = meta
        .fetch(
            "SELECT customer_id FROM journey_sends WHERE kind = 'miss_you' AND status = 'planned' ORDER BY customer_id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let back = c360_db::get_i64(&planned[0], "customer_id").unwrap();
    // Planned from the snapshot's last day (in the simulated past): pending means its send time
    // is still ahead of the order that brings the customer back.
    meta.execute(
        "UPDATE journey_sends SET send_at = '2099-01-01 10:00:00' WHERE kind = 'miss_you' AND customer_id = ?",
        &[back.into()],
    )
    .await
    .unwrap();
    let store = count(
        &f.wh,
        &format!(
            "SELECT COALESCE(home_store_id, 1) FROM v_customer_360 WHERE customer_id = {back}"
        ),
    )
    .await;
    let o = json!({"order_no": "J-3", "customer_id": back, "store_id": store, "total_fen": 1500,
                   "items": [{"product_id": 1, "qty": 1, "unit_price_fen": 1500}]});
    let (s, v) = call(&st, "POST", "/api/v1/orders", a, Some(o)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let r = meta
        .fetch(
            "SELECT status FROM journey_sends WHERE kind = 'miss_you' AND customer_id = ?",
            &[back.into()],
        )
        .await
        .unwrap();
    assert_eq!(
        c360_db::get_text(&r[0], "status").as_deref(),
        Some("cancelled")
    );
}
