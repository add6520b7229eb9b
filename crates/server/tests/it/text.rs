//! Hostile text through every text field of the API's bodies and its free-text parameters:
//! quotes, backslashes, SQL, emoji, CJK, control characters and NUL. What is stored is read back
//! unchanged, with the metastore on SQLite and on PostgreSQL. (MariaDB is refused as a
//! metastore — the metastore's tests check the refusal — and text from MariaDB sources is the
//! db and ETL tests' round trip.) NUL is kept where a field is stored as JSON and refused, naming
//! the field, where it is a column of its own (an order number: 400, as the document's pattern
//! says; a campaign's name: 422), alike on every backend, because PostgreSQL text cannot hold
//! it; the audit trail writes a refused NUL out as `\u0000` instead of losing the entry.

use axum::http::StatusCode;
use c360_server::auth::{create_key, Role};
use c360_server::{AppState, ServeConfig};
use serde_json::{json, Value};

use super::{call, fixture, serve_cfg};

const NASTY: [&str; 7] = [
    "it's \"quoted\"",
    "back\\slash \\' \\\\ \\n",
    "热狗🌭 emoji 👍🏽 ZWJ 👨‍👩‍👧",
    "中文：客户画像（测试）",
    "'; DROP TABLE campaigns; --",
    "tab\tnew\nline\r\u{7f}\u{1}",
    "%_ LIKE wildcards %% _",
];
const WITH_NUL: &str = "nul\0inside";

async fn roundtrip(st: &AppState, key: &str, key_name: &str, store: i64, customer: i64) {
    let k = Some(key);
    let (s, sg) = call(st, "GET", "/api/v1/campaigns/suggestions", k, None).await;
    assert_eq!(s, StatusCode::OK, "{sg}");
    let base = sg["suggestions"][0]["spec"].clone();
    for (i, text) in NASTY.iter().copied().chain([WITH_NUL]).enumerate() {
        let what = format!("{text:?}");
        // Campaigns: the name and a variant's name (stored inside the spec's JSON).
        let mut spec = base.clone();
        spec["name"] = json!(text);
        spec["variants"] = json!([{"name": format!("{text}-A"), "weight": 1.0}]);
        let (s, c) = call(st, "POST", "/api/v1/campaigns", k, Some(spec)).await;
        let id = if text.contains('\0') {
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {c}");
            assert!(c["message"].as_str().unwrap().starts_with("name"), "{c}");
            1
        } else {
            assert_eq!(s, StatusCode::CREATED, "{what}: {c}");
            let id = c["campaign_id"].as_i64().unwrap();
            let (_, got) = call(st, "GET", &format!("/api/v1/campaigns/{id}"), k, None).await;
            assert_eq!(got["name"], json!(text), "{what}");
            assert_eq!(got["spec"]["name"], json!(text), "{what}");
            assert_eq!(
                got["spec"]["variants"][0]["name"],
                json!(format!("{text}-A"))
            );
            id
        };
        // Experiments: name (a column: no NUL) and hypothesis (inside the spec's JSON).
        let start = base["start"].as_str().unwrap();
        let end = (c360_model::parse_date(start).unwrap() + chrono::Duration::days(20)).to_string();
        let exp = |name: &str| json!({"name": name, "design": "store", "start": start, "end": end, "hypothesis": text});
        let name = if text.contains('\0') {
            let (s, e) = call(st, "POST", "/api/v1/experiments", k, Some(exp(text))).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
            assert!(e["message"].as_str().unwrap().starts_with("name"), "{e}");
            "with a NUL in its hypothesis"
        } else {
            text
        };
        let (s, e) = call(st, "POST", "/api/v1/experiments", k, Some(exp(name))).await;
        assert_eq!(s, StatusCode::CREATED, "{what}: {e}");
        let eid = e["experiment_id"].clone();
        let (_, list) = call(st, "GET", "/api/v1/experiments", k, None).await;
        let mine = list["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["experiment_id"] == eid)
            .unwrap()
            .clone();
        assert_eq!(mine["spec"]["name"], json!(name), "{what}");
        assert_eq!(mine["spec"]["hypothesis"], json!(text), "{what}");

        // Column fields: an order's number, an event's ids, page and device.
        let order_no = format!("{text}#{i}");
        let order = json!({"order_no": order_no, "customer_id": customer, "store_id": store, "total_fen": 100});
        let event = json!({"event_id": format!("{text}#{i}"), "customer_id": customer, "session_id": text,
                           "action_type": "view", "page": text, "device": text});
        if text.contains('\0') {
            let (s, v) = call(st, "POST", "/api/v1/orders", k, Some(order)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert!(
                v["message"].as_str().unwrap().starts_with("order_no"),
                "{v}"
            );
            let (s, v) = call(st, "POST", "/api/v1/events", k, Some(event)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert!(
                v["message"].as_str().unwrap().starts_with("event_id"),
                "{v}"
            );
            continue;
        }
        let (s, v) = call(st, "POST", "/api/v1/orders", k, Some(order)).await;
        assert_eq!(s, StatusCode::CREATED, "{what}: {v}");
        let (_, tl) = call(
            st,
            "GET",
            &format!("/api/v1/customers/{customer}/timeline"),
            k,
            None,
        )
        .await;
        assert!(
            tl["live_orders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["order_no"] == json!(order_no)),
            "{what}: {tl}"
        );
        let (s, v) = call(st, "POST", "/api/v1/events", k, Some(event)).await;
        assert_eq!(s, StatusCode::CREATED, "{what}: {v}");
        let rows = st
            .inner()
            .meta
            .fetch(
                "SELECT session_id, page, device FROM live_events WHERE event_id = ?",
                &[format!("{text}#{i}").into()],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{what}");
        for col in ["session_id", "page", "device"] {
            assert_eq!(
                c360_db::get_text(&rows[0], col).as_deref(),
                Some(text),
                "{what}: {col}"
            );
        }

        // Free-text parameters: filters that match nothing answer empty, never an error.
        let enc = urlencode(text);
        for (uri, field) in [
            (
                format!("/api/v1/customers?tier={enc}&rfm_class={enc}&lifecycle={enc}"),
                "total",
            ),
            (format!("/api/v1/campaigns/{id}/members?arm={enc}"), "total"),
            (format!("/api/v1/audit?action={enc}"), "entries"),
        ] {
            let (s, v) = call(st, "GET", &uri, k, None).await;
            assert_eq!(s, StatusCode::OK, "{uri}: {v}");
            match &v[field] {
                Value::Array(a) => assert!(a.is_empty(), "{uri}: {v}"),
                n => assert_eq!(n, &json!(0), "{uri}: {v}"),
            }
        }
    }
    // The audit trail: the key's (hostile) name as the actor, each campaign's name as the target,
    // found again by filtering on that actor.
    let (s, a) = call(
        st,
        "GET",
        &format!("/api/v1/audit?limit=1000&actor={}", urlencode(key_name)),
        k,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let entries = a["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor"] == json!(key_name)), "{a}");
    for text in NASTY {
        assert!(
            entries.iter().any(|e| e["action"] == "campaign.create"
                && e["outcome"] == "ok"
                && e["target"] == json!(text)),
            "{text:?} not audited"
        );
    }
    assert!(
        entries.iter().any(|e| e["action"] == "campaign.create"
            && e["outcome"] == "rejected"
            && e["target"] == json!(WITH_NUL.replace('\0', "\\u0000"))),
        "the refused NUL name not audited"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_round_trips_through_every_field_on_sqlite_and_postgres() {
    let f = fixture(2500, 31).await;
    let db = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let customer = sess
        .scalar_i64(&format!(
            "SELECT MIN(customer_id) FROM customer_segmentation WHERE home_store_id = {}",
            f.store
        ))
        .await
        .unwrap();
    let key_name = "管理员 'o\"k\\ 🌭";
    let key = create_key(&db, key_name, Role::Admin, &[]).await.unwrap();
    db.close().await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    roundtrip(&st, &key, key_name, f.store, customer).await;

    // The same against a PostgreSQL metastore (migrated on open).
    let pg = "postgres://postgres@127.0.0.1:5432/c360_server_text";
    c360_db::reset_database(pg).await.unwrap();
    c360_metastore::Metastore::open(pg)
        .await
        .unwrap()
        .close()
        .await;
    let db = c360_db::Db::connect(pg).await.unwrap();
    let key = create_key(&db, key_name, Role::Admin, &[]).await.unwrap();
    db.close().await;
    let st = AppState::open(ServeConfig {
        metastore: pg.to_string(),
        ..serve_cfg(&f)
    })
    .await
    .unwrap();
    roundtrip(&st, &key, key_name, f.store, customer).await;
}
