//! The WebSocket on a real loopback socket: live pushes, replay after a reconnect (nothing
//! missed), store-scoped delivery, auth on the upgrade, and a new ETL snapshot announced.

use super::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A single-use WebSocket ticket for `key`, got with the key in the Authorization header.
async fn ticket(st: &AppState, key: &str) -> String {
    let (s, v) = call(st, "POST", "/api/v1/ws/ticket", Some(key), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["expires_in_secs"], 30);
    v["ticket"].as_str().unwrap().to_string()
}

async fn connect(st: &AppState, addr: &str, key: &str) -> Ws {
    let t = ticket(st, key).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?ticket={t}"))
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
    let mut admin = connect(&st, &addr, &f.admin).await;
    assert_eq!(next_of(&mut admin, "hello").await["role"], "admin");
    subscribe(
        &mut admin,
        &["orders", "metrics", &format!("customer:{cust}")],
        None,
    )
    .await;
    let mut mgr = connect(&st, &addr, &f.manager).await;
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
    let mut admin = connect(&st, &addr, &f.admin).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_travel_only_in_the_header_and_a_revoked_key_is_cut_off_everywhere() {
    let f = fixture(1_500, 47).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (addr, stop_tx, server) = spawn_server(&st).await;

    // The key in a URL or another header opens nothing.
    let e = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?key={}", f.admin))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let req = axum::http::Request::builder()
        .uri("/api/v1/me")
        .header("x-api-key", &f.admin)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(c360_server::app(st.clone()), req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A ticket opens one socket: used again, or forged, it is refused.
    let t = ticket(&st, &f.admin).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?ticket={t}"))
        .await
        .unwrap();
    assert_eq!(next_of(&mut ws, "hello").await["role"], "admin");
    let again = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?ticket={t}")).await;
    assert!(
        again.unwrap_err().to_string().contains("401"),
        "a ticket is single-use"
    );
    let mut forged = ticket(&st, &f.admin).await;
    forged.pop();
    forged.push('x');
    let bad = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?ticket={forged}")).await;
    assert!(bad.unwrap_err().to_string().contains("401"));

    // Oversized subscriptions are refused with a reason; the socket stays usable.
    let many: Vec<String> = (0..40).map(|i| format!("customer:{i}")).collect();
    ws.send(Message::Text(
        json!({"type": "subscribe", "topics": many})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let err = next_of(&mut ws, "error").await;
    assert!(
        err["message"].as_str().unwrap().contains("at most 32"),
        "{err}"
    );
    subscribe(&mut ws, &["orders"], None).await;
    // A frame over the limit closes the socket.
    let (mut big, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/ws?ticket={}",
        ticket(&st, &f.admin).await
    ))
    .await
    .unwrap();
    let _ = big.send(Message::Text("x".repeat(64 * 1024).into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "an oversized frame ends the socket");

    // A key revoked by another process (as `c360 apikey revoke` does, straight in the
    // metastore): its open socket is closed with 4401 and its next request is refused.
    let db = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let temp = create_key(&db, "temp", Role::Analyst, &[]).await.unwrap();
    // A key made by another process is taken up within the key poll (0.4 s).
    let mut s = StatusCode::UNAUTHORIZED;
    for _ in 0..50 {
        s = call(&st, "GET", "/api/v1/me", Some(&temp), None).await.0;
        if s == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s, StatusCode::OK, "the new key was never accepted");
    let mut tws = connect(&st, &addr, &temp).await;
    next_of(&mut tws, "hello").await;
    subscribe(&mut tws, &["orders"], None).await;
    assert_eq!(c360_server::auth::revoke_key(&db, "temp").await.unwrap(), 1);
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tws.next().await {
                Some(Ok(Message::Close(Some(c)))) => return Some(u16::from(c.code)),
                None | Some(Err(_)) | Some(Ok(Message::Close(None))) => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("the revoked key's socket closes");
    assert_eq!(code, Some(c360_server::routes::ws::CLOSE_REVOKED));
    let (s, _) = call(&st, "GET", "/api/v1/me", Some(&temp), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Other keys' sockets stay open.
    ws.send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    next_of(&mut ws, "pong").await;
    db.close().await;

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let f = fixture(1_500, 48).await;
    let st = AppState::open(c360_server::ServeConfig {
        limits: c360_server::state::Limits {
            requests_per_sec: 0.5,
            burst: 3.0,
            llm_per_min: 1.0,
            ..Default::default()
        },
        ..serve_cfg(&f)
    })
    .await
    .unwrap();
    let me = || {
        axum::http::Request::builder()
            .uri("/api/v1/me")
            .header("authorization", format!("Bearer {}", f.analyst))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    for _ in 0..3 {
        let r = tower::ServiceExt::oneshot(c360_server::app(st.clone()), me())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = tower::ServiceExt::oneshot(c360_server::app(st.clone()), me())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body = http_body_util::BodyExt::collect(r.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "too_many_requests");
    // Another key has its own budget.
    let (s, _) = call(&st, "GET", "/api/v1/me", Some(&f.admin), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_bounded_and_a_pruned_log_answers_too_old() {
    let f = fixture(1_500, 49).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (addr, stop_tx, server) = spawn_server(&st).await;
    let hub = st.hub();
    let first = hub.publish("orders", None, json!({"n": 0})).await.unwrap();
    for n in 1..6 {
        hub.publish("orders", None, json!({"n": n})).await.unwrap();
    }
    // Within what the log holds: the missed events are replayed.
    let mut ws = connect(&st, &addr, &f.admin).await;
    next_of(&mut ws, "hello").await;
    subscribe(&mut ws, &["orders"], Some(first)).await;
    let got = drain(&mut ws, Duration::from_millis(800)).await;
    assert_eq!(got.len(), 5, "{got:?}");
    // The log kept by size: only the newest 2 stay, and a client further behind is told so.
    let gone = hub.prune(Duration::from_secs(3600), 2).await.unwrap();
    assert!(gone >= 4, "{gone} pruned");
    let mut late = connect(&st, &addr, &f.admin).await;
    next_of(&mut late, "hello").await;
    late.send(Message::Text(
        json!({"type": "subscribe", "topics": ["orders"], "since": first})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let old = next_of(&mut late, "too_old").await;
    assert_eq!(old["since"], first);
    assert_eq!(old["head"], hub.head());
    assert!(
        old["message"].as_str().unwrap().contains("refetch"),
        "{old}"
    );
    assert!(
        drain(&mut late, Duration::from_millis(500))
            .await
            .is_empty(),
        "nothing replayed"
    );
    // And by age: everything older than a moment goes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.prune(Duration::from_millis(1), 1_000_000)
        .await
        .unwrap();
    assert!(hub.too_old(first).await.unwrap().is_some());
    assert!(hub.too_old(hub.head()).await.unwrap().is_none());
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
