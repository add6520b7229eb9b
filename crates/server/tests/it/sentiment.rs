//! Texts collected elsewhere (Meituan, Dianping, surveys) scored through the API by the
//! snapshot's stored sentiment model.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_from_elsewhere_are_scored_by_the_stored_model() {
    let f = fixture(2_000, 50).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let texts = json!({"texts": ["热狗非常好吃，服务也很热情", "太难吃了，等了一个小时，服务态度差", "", "价格"]});
    // Any role may score texts: nothing of the chain's is read or returned but the model.
    for key in [&f.admin, &f.analyst, &f.manager] {
        let (s, v) = call(
            &st,
            "POST",
            "/api/v1/sentiment/score",
            Some(key),
            Some(texts.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let r = v["results"].as_array().unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0]["polarity"], "positive", "{v}");
        assert_eq!(r[1]["polarity"], "negative", "{v}");
        assert!(r[0]["aspects"]["taste"].as_f64().unwrap() > 0.0, "{v}");
        assert!(r[1]["aspects"]["service"].as_f64().unwrap() < 0.0, "{v}");
        assert!(r[0]["aspects"].get("hygiene").is_none(), "{v}");
        for x in r {
            let p = x["probability"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p));
            assert!((x["score"].as_f64().unwrap() - (2.0 * p - 1.0)).abs() < 1e-9);
        }
        assert_eq!(v["model"]["version"], 1, "{v}");
        assert!(
            v["model"]["held_out_corpus"]["auc"].as_f64().unwrap() > 0.8,
            "{v}"
        );
    }
    for bad in [
        json!({"texts": []}),
        json!({"texts": "好吃"}),
        json!({"text": ["好吃"]}),
    ] {
        let (s, v) = call(
            &st,
            "POST",
            "/api/v1/sentiment/score",
            Some(&f.analyst),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {v}");
    }
    let many = json!({"texts": vec!["好吃"; 1001]});
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/sentiment/score",
        Some(&f.analyst),
        Some(many),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(&st, "POST", "/api/v1/sentiment/score", None, Some(texts)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
