//! AI insights through the API with an LLM configured: a local server speaking the
//! chat-completions wire protocol stands in for the paid API. The answer is the model's when it
//! passes the checks, cached in the metastore across restarts, and the rule-based writer's (with
//! the reason) when the model invents a number.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use c360_server::{AppState, LlmConfig};
use serde_json::{json, Value};

use super::*;

#[derive(Clone)]
struct Fake {
    reply: Arc<Mutex<String>>,
    calls: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Told of every request as it arrives.
    reached: Arc<tokio::sync::Notify>,
    /// How long to sit on a request before answering, if at all.
    stall: Arc<Mutex<Option<Duration>>>,
}

impl Fake {
    fn new(reply: String) -> Fake {
        Fake {
            reply: Arc::new(Mutex::new(reply)),
            calls: Arc::new(AtomicUsize::new(0)),
            bodies: Arc::new(Mutex::new(Vec::new())),
            reached: Arc::new(tokio::sync::Notify::new()),
            stall: Arc::new(Mutex::new(None)),
        }
    }

    /// Serves the chat-completions route on a loopback port; returns its `/v1` base URL.
    async fn serve(&self) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", l.local_addr().unwrap());
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        base
    }
}

fn llm_cfg(f: &Fixture, base: &str, limits: c360_server::Limits) -> c360_server::ServeConfig {
    let mut c = serve_cfg(f);
    c.llm = Some(LlmConfig {
        base_url: base.to_string(),
        model: "deepseek-chat".into(),
        api_key: c360_insights::llm::Secret::new("sk-x"),
        timeout: Duration::from_secs(5),
        max_retries: 0,
        json_mode: true,
    });
    c.limits = limits;
    c
}

async fn completions(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    f.calls.fetch_add(1, Ordering::SeqCst);
    f.bodies.lock().unwrap().push(body.clone());
    f.reached.notify_one();
    let stall = *f.stall.lock().unwrap();
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let content = f.reply.lock().unwrap().clone();
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_764_000_000, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
}

fn sections(value_text: &str) -> String {
    json!({
        "value": {"title": "高价值常客", "text": value_text},
        "churn_risk": {"title": "风险", "text": "近期仍有购买。"},
        "marketing": {"title": "营销", "text": "在常来的时段推送常买的热狗。"},
        "product_strategy": {"title": "产品", "text": "推荐搭配饮品。"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_from_an_llm_are_checked_and_cached() {
    let f = fixture(4_000, 43).await;
    let fake = Fake::new(sections("忠实顾客，价值稳定。"));
    let base = fake.serve().await;
    let cfg = || llm_cfg(&f, &base, Default::default());
    let id = count(
        &f.wh,
        "SELECT customer_id FROM v_customer_360 ORDER BY order_count DESC, customer_id LIMIT 1",
    )
    .await;
    let an = Some(f.analyst.as_str());
    let st = AppState::open(cfg()).await.unwrap();
    let (s, v) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/insights"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["insight"]["writer"], "deepseek-chat", "{v}");
    assert_eq!(v["generation"]["cache"], "miss");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    // Nothing personal left the building: no masked phone, no customer number.
    let sent = fake.bodies.lock().unwrap()[0]["messages"].to_string();
    assert!(!sent.contains("phone") && !sent.contains("****"), "{sent}");
    assert!(!sent.contains(&format!("\"customer_id\":{id}")));
    // No customer-written text either: reviews go as aspect scores and counts.
    assert!(!sent.contains("REVIEWS"), "{sent}");
    assert!(
        sent.contains("review_count") && sent.contains("horizons"),
        "{sent}"
    );

    // A restart reads the answer from the metastore cache: no second call.
    drop(st);
    let st = AppState::open(cfg()).await.unwrap();
    let (_, v) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/insights"),
        an,
        None,
    )
    .await;
    assert_eq!(v["generation"]["cache"], "hit", "{v}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);

    // An invented figure is not shown: the rule-based writer answers and says why.
    *fake.reply.lock().unwrap() = sections("预计明年消费 ¥98,765。");
    let (_, v) = call(
        &st,
        "GET",
        &format!("/api/v1/customers/{id}/insights?lang=en"),
        an,
        None,
    )
    .await;
    assert_eq!(v["insight"]["writer"], "rules", "{v}");
    assert!(
        v["generation"]["reason"]
            .as_str()
            .unwrap()
            .contains("98,765"),
        "{v}"
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

/// The customer with the most orders among those with a POS member card, and that card.
async fn member_customer(f: &Fixture) -> (i64, i64) {
    let meta = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let b = sess
        .query("SELECT customer_id FROM v_customer_360 ORDER BY order_count DESC, customer_id LIMIT 50")
        .await
        .unwrap();
    let ids = datafusion::arrow::compute::cast(
        b[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .unwrap();
    let ids = ids
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap();
    for id in ids.iter().flatten() {
        let rows = meta
            .fetch(
                "SELECT source_key FROM identity_nodes WHERE customer_id = ? AND source_key LIKE 'M:%' ORDER BY source_key",
                &[id.into()],
            )
            .await
            .unwrap();
        if let Some(k) = rows
            .first()
            .and_then(|r| c360_db::get_text(r, "source_key"))
        {
            return (id, k[2..].parse().unwrap());
        }
    }
    panic!("no customer with a member card among the top 50")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_calls_are_budgeted_per_key_and_insights_expire_with_their_facts() {
    let f = fixture(4_000, 47).await;
    let fake = Fake::new(sections("忠实顾客，价值稳定。"));
    let base = fake.serve().await;
    let (id, member) = member_customer(&f).await;
    let other = count(
        &f.wh,
        &format!("SELECT customer_id FROM v_customer_360 WHERE customer_id <> {id} ORDER BY order_count DESC, customer_id LIMIT 1"),
    )
    .await;
    let (a, an) = (f.admin.clone(), f.analyst.clone());
    let insight = |st: AppState, key: String, id: i64| async move {
        call(
            &st,
            "GET",
            &format!("/api/v1/customers/{id}/insights"),
            Some(&key),
            None,
        )
        .await
    };

    // One model call a minute per key, the first at once.
    let budget = c360_server::Limits {
        llm_per_min: 1.0,
        ..Default::default()
    };
    let st = AppState::open(llm_cfg(&f, &base, budget.clone()))
        .await
        .unwrap();
    let (s, v) = insight(st.clone(), an.clone(), id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["generation"]["cache"], "miss", "{v}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    // The analyst's next model call is refused, with the wait; the cached one is not a call.
    let (s, v) = insight(st.clone(), an.clone(), other).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["code"], "too_many_requests", "{v}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "no call was made");
    let (s, v) = insight(st.clone(), an.clone(), id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Budgets are per key: the admin's is untouched.
    let (s, v) = insight(st.clone(), a.clone(), other).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["generation"]["cache"], "miss", "{v}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    // A new snapshot with the same facts: the stored insight still answers, without a call
    // (the analyst's budget is still spent, so a call would be refused).
    c360_etl::run(&f.etl).await.unwrap();
    assert!(st.reload().await.unwrap(), "a new snapshot");
    let (s, v) = insight(st.clone(), an.clone(), id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["generation"]["cache"], "hit", "{v}");
    let orders_before = v["facts"]["order_count"].as_i64().unwrap();
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    // The customer buys again at the till; the next ETL run changes their facts, and the
    // insight written from the old facts is not shown again: the model is asked anew.
    let pos = c360_db::Db::connect(&f.sim.pos_url).await.unwrap();
    let n = pos
        .execute(
            "INSERT INTO orders (order_id, order_no, store_id, member_id, order_time, total_fen, discount_fen, pay_method, status, coupon_code, updated_at) \
             SELECT (SELECT MAX(order_id) + 1 FROM orders), order_no || '-again', store_id, member_id, order_time, total_fen, discount_fen, pay_method, status, NULL, \
             (SELECT datetime(MAX(updated_at), '+1 second') FROM orders) \
             FROM orders WHERE member_id = ? AND status = 'paid' ORDER BY order_time DESC LIMIT 1",
            &[member.into()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    pos.close().await;
    c360_etl::run(&f.etl).await.unwrap();
    assert!(st.reload().await.unwrap());
    let st = AppState::open(llm_cfg(&f, &base, Default::default()))
        .await
        .unwrap();
    let (s, v) = insight(st.clone(), an.clone(), id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["facts"]["order_count"], orders_before + 1, "{v}");
    assert_eq!(v["generation"]["cache"], "miss", "{v}");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_answers_503_and_holds_its_slot_until_then() {
    let f = fixture(2_000, 48).await;
    let fake = Fake::new(sections("忠实顾客，价值稳定。"));
    *fake.stall.lock().unwrap() = Some(Duration::from_secs(30));
    let base = fake.serve().await;
    // One request at a time, each cut at three seconds.
    let limits = c360_server::Limits {
        max_in_flight: 1,
        request_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let st = AppState::open(llm_cfg(&f, &base, limits)).await.unwrap();
    let id = count(
        &f.wh,
        "SELECT customer_id FROM v_customer_360 ORDER BY order_count DESC, customer_id LIMIT 1",
    )
    .await;
    let slow = {
        let (st, key) = (st.clone(), f.analyst.clone());
        tokio::spawn(async move {
            call(
                &st,
                "GET",
                &format!("/api/v1/customers/{id}/insights"),
                Some(&key),
                None,
            )
            .await
        })
    };
    // The slow request holds the only slot while the model sits on it.
    fake.reached.notified().await;
    let quick = {
        let (st, key) = (st.clone(), f.analyst.clone());
        tokio::spawn(async move { call(&st, "GET", "/api/v1/me", Some(&key), None).await })
    };
    // Well inside the slow request's three seconds, the quick one is still waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !quick.is_finished(),
        "the second request waits for the slot"
    );
    let (s, v) = slow.await.unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["code"], "timeout", "{v}");
    let (s, v) = quick.await.unwrap();
    assert_eq!(s, StatusCode::OK, "then it is served: {v}");
}
