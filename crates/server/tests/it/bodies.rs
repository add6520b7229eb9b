//! A property test over every JSON body the API takes: arbitrary JSON, and valid bodies with one
//! field replaced by arbitrary JSON, removed, or joined by an unknown one. Whatever arrives, the
//! answer is never a 5xx, every refusal has the one error shape with a message, and a refused
//! order or event stores nothing.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::authz::{campaign_spec, experiment_spec, Days};
use super::*;

/// Any JSON value, nested a few levels, with the API's own field names among the keys.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            -1e3f64..1e3,
            any::<f64>().prop_filter("finite", |f| f.is_finite())
        ]
        .prop_map(Value::from),
        prop_oneof![
            "\\PC{0,16}",
            Just("2025-13-45".to_string()),
            Just("+262142-12-31".to_string())
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("order_no".to_string()),
        Just("customer_id".to_string()),
        Just("store_id".to_string()),
        Just("total_fen".to_string()),
        Just("items".to_string()),
        Just("qty".to_string()),
        Just("events".to_string()),
        Just("name".to_string()),
        Just("start".to_string()),
        Just("end".to_string()),
        "[a-z_]{1,12}",
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A change to a valid body.
#[derive(Debug, Clone)]
enum Change {
    Whole(Value),
    Replace(usize, Value),
    Remove(usize),
    Add(String, Value),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        any_json().prop_map(Change::Whole),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Change::Replace(i, v)),
        any::<usize>().prop_map(Change::Remove),
        ("[a-z_]{1,12}", any_json()).prop_map(|(k, v)| Change::Add(k, v)),
    ]
}

fn apply(valid: &Value, c: &Change) -> Value {
    let mut b = valid.clone();
    let Some(o) = b.as_object_mut() else {
        return b;
    };
    let keys: Vec<String> = o.keys().cloned().collect();
    match c {
        Change::Whole(v) => return v.clone(),
        Change::Replace(i, v) => {
            o.insert(keys[i % keys.len()].clone(), v.clone());
        }
        Change::Remove(i) => {
            o.remove(&keys[i % keys.len()]);
        }
        Change::Add(k, v) => {
            o.insert(k.clone(), v.clone());
        }
    }
    b
}

#[test]
fn no_json_body_gets_a_5xx_and_a_refused_one_changes_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture(2_000, 49));
    let st = rt.block_on(async {
        let mut cfg = serve_cfg(&f);
        cfg.limits.requests_per_sec = 0.0;
        AppState::open(cfg).await.unwrap()
    });
    let (customer, store) = rt.block_on(async {
        let c = count(&f.wh, "SELECT customer_id FROM v_customer_360 WHERE home_store_id IS NOT NULL ORDER BY customer_id LIMIT 1").await;
        let s = count(&f.wh, &format!("SELECT home_store_id FROM v_customer_360 WHERE customer_id = {c}")).await;
        (c, s)
    });
    let pair = rt.block_on(async {
        let a = count(&f.wh, "SELECT MIN(store_id) FROM stores").await;
        let b = count(
            &f.wh,
            &format!("SELECT MIN(store_id) FROM stores WHERE store_id > {a}"),
        )
        .await;
        [a, b]
    });
    let day = Days {
        start: f.sim.cutoff.to_string(),
        end: (f.sim.cutoff + chrono::Duration::days(13)).to_string(),
    };
    // A campaign to change the status of.
    let campaign = rt.block_on(async {
        let (s, c) = call(
            &st,
            "POST",
            "/api/v1/campaigns",
            Some(&f.admin),
            Some(campaign_spec("props", store, &day)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        c["campaign_id"].as_i64().unwrap()
    });
    let event = json!({"event_id": "props-e", "customer_id": customer, "session_id": "props",
        "action_type": "view", "page": "menu"});
    let routes: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/api/v1/orders".into(),
            json!({"order_no": "props-o", "customer_id": customer,
            "store_id": store, "total_fen": 2500,
            "items": [{"product_id": 1, "qty": 1, "unit_price_fen": 2500}]}),
        ),
        ("POST", "/api/v1/events".into(), event.clone()),
        (
            "POST",
            "/api/v1/events/batch".into(),
            json!({"events": [event]}),
        ),
        (
            "POST",
            "/api/v1/campaigns".into(),
            campaign_spec("props", store, &day),
        ),
        (
            "POST",
            format!("/api/v1/campaigns/{campaign}/status"),
            json!({"action": "pause"}),
        ),
        (
            "PUT",
            "/api/v1/campaigns/settings".into(),
            json!({"global_holdout_pct": 5.0}),
        ),
        (
            "POST",
            "/api/v1/experiments".into(),
            experiment_spec("props", pair, &day),
        ),
        (
            "POST",
            "/api/v1/service/diagnose".into(),
            json!({"message": "订单少了一个热狗"}),
        ),
    ];
    let live = |table: &'static str| {
        let url = f.etl.metastore();
        async move {
            let db = c360_db::Db::connect(&url).await.unwrap();
            let n = c360_db::get_i64(
                &db.fetch_all(&format!("SELECT COUNT(*) AS n FROM {table}"))
                    .await
                    .unwrap()[0],
                "n",
            )
            .unwrap();
            db.close().await;
            n
        }
    };
    for (method, uri, valid) in &routes {
        let mut runner = TestRunner::new(Config {
            cases: 150,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&change(), |c| {
            let body = apply(valid, &c);
            let stored = |rt: &tokio::runtime::Runtime| {
                rt.block_on(async { (live("live_orders").await, live("live_events").await) })
            };
            let before = stored(&rt);
            let (s, v) = rt.block_on(call(&st, method, uri, Some(&f.admin), Some(body.clone())));
            prop_assert!(!s.is_server_error(), "{method} {uri} {body} -> {s} {v}");
            if s.is_client_error() {
                prop_assert!(
                    v["code"].is_string() && v["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{method} {uri} {body} -> {s} {v}"
                );
                prop_assert_eq!(
                    stored(&rt),
                    before,
                    "a refused body stored something: {} {}",
                    uri,
                    body
                );
            } else {
                prop_assert!(s.is_success(), "{method} {uri} {body} -> {s} {v}");
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{method} {uri}: {e}");
        }
    }
}
