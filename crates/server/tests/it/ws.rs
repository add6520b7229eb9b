//! The WebSocket on a real loopback socket: live pushes, replay after a reconnect (nothing
//! missed), store-scoped delivery, auth on the upgrade, and a new ETL snapshot announced.

use super::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, key: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?key={key}"))
        .await
        .unwrap();
    ws
}

/// The next message of `type` (skipping others), within 10 s.
async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = ws.next().await.expect("socket open").unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == ty {
                    return v;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {ty} message"))
}

/// Collects events until `quiet` passes without one.
async fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(quiet, ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "event" {
                out.push(v);
            }
        }
    }
    out
}

async fn subscribe(ws: &mut Ws, topics: &[&str], since: Option<i64>) -> i64 {
    ws.send(Message::Text(
        json!({"type": "subscribe", "topics": topics, "since": since})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    next_of(ws, "subscribed").await["head"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pushes_live_changes_and_replays_what_a_client_missed() {
    let f = fixture(4_000, 43).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (addr, stop_tx, server) = spawn_server(&st).await;

    // No key, no socket.
    let e = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");

    let other = super::other_store(&f).await;
    let cust = super::count(&f.wh, &format!("SELECT customer_id FROM v_customer_360 WHERE home_store_id = {} ORDER BY order_count DESC, customer_id LIMIT 1", f.store)).await;
    let mut admin = connect(&addr, &f.admin).await;
    assert_eq!(next_of(&mut admin, "hello").await["role"], "admin");
    subscribe(
        &mut admin,
        &["orders", "metrics", &format!("customer:{cust}")],
        None,
    )
    .await;
    let mut mgr = connect(&addr, &f.manager).await;
    subscribe(&mut mgr, &["orders", "metrics"], None).await;

    let a = Some(f.admin.as_str());
    let post = |no: &str, store: i64, customer: Option<i64>, fen: i64| json!({"order_no": no, "store_id": store, "customer_id": customer, "total_fen": fen});
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/orders",
        a,
        Some(post("W1", f.store, Some(cust), 2500)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/orders",
        a,
        Some(post("W2", other, None, 1800)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let got = drain(&mut admin, Duration::from_millis(800)).await;
    let topics: Vec<&str> = got.iter().map(|e| e["topic"].as_str().unwrap()).collect();
    assert_eq!(
        topics,
        vec![
            "orders",
            &format!("customer:{cust}"),
            "metrics",
            "orders",
            "metrics"
        ]
    );
    assert_eq!(
        got[1]["data"]["orders"].as_f64().unwrap() as i64,
        super::count(
            &f.wh,
            &format!("SELECT order_count FROM v_customer_360 WHERE customer_id = {cust}")
        )
        .await
            + 1
    );
    assert_eq!(got[4]["data"]["live_orders"], 2);
    // The manager sees their store's order and their figures only.
    let seen = drain(&mut mgr, Duration::from_millis(500)).await;
    let orders: Vec<&Value> = seen.iter().filter(|e| e["topic"] == "orders").collect();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["data"]["order_no"], "W1");
    let last_metrics = seen.iter().rev().find(|e| e["topic"] == "metrics").unwrap();
    assert_eq!(last_metrics["data"]["live_orders"], 1);
    assert_eq!(last_metrics["data"]["live_revenue_fen"], 2500);

    // The admin drops off; orders keep coming; on reconnect with the last seq nothing is missed.
    let last_seq = got.last().unwrap()["seq"].as_i64().unwrap();
    admin.close(None).await.unwrap();
    for i in 0..5 {
        call(
            &st,
            "POST",
            "/api/v1/orders",
            a,
            Some(post(&format!("W{}", 10 + i), f.store, None, 1000 + i)),
        )
        .await;
    }
    let mut admin = connect(&addr, &f.admin).await;
    subscribe(&mut admin, &["orders"], Some(last_seq)).await;
    let missed = drain(&mut admin, Duration::from_millis(800)).await;
    let nos: Vec<&str> = missed
        .iter()
        .map(|e| e["data"]["order_no"].as_str().unwrap())
        .collect();
    assert_eq!(nos, vec!["W10", "W11", "W12", "W13", "W14"]);
    let seqs: Vec<i64> = missed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // And live again after the replay, with no duplicate.
    call(
        &st,
        "POST",
        "/api/v1/orders",
        a,
        Some(post("W20", f.store, None, 990)),
    )
    .await;
    let live = drain(&mut admin, Duration::from_millis(800)).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["data"]["order_no"], "W20");

    // An ETL run elsewhere: the server picks up the new snapshot and says so.
    subscribe(&mut admin, &["etl"], None).await;
    c360_etl::run(&f.etl).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let e = next_of(&mut admin, "event").await;
            if e["topic"] == "etl" {
                return e;
            }
        }
    })
    .await
    .expect("etl event");
    assert!(ev["data"]["version"].as_u64().unwrap() >= 2);
    assert_eq!(
        ev["data"]["customers"],
        super::count(&f.wh, "SELECT COUNT(*) FROM customer_segmentation").await
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
