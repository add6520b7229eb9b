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
}

async fn completions(State(f): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    f.calls.fetch_add(1, Ordering::SeqCst);
    f.bodies.lock().unwrap().push(body.clone());
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
    let fake = Fake {
        reply: Arc::new(Mutex::new(sections("忠实顾客，价值稳定。"))),
        calls: Arc::new(AtomicUsize::new(0)),
        bodies: Arc::new(Mutex::new(Vec::new())),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", l.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let cfg = || {
        let mut c = serve_cfg(&f);
        c.llm = Some(LlmConfig {
            base_url: base.clone(),
            model: "deepseek-chat".into(),
            api_key: c360_insights::llm::Secret::new("sk-x"),
            timeout: Duration::from_secs(5),
            max_retries: 0,
            json_mode: true,
        });
        c
    };
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
