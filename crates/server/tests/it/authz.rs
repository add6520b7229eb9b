//! The authorization matrix: every operation of the OpenAPI document, called as an admin, an
//! analyst, a store manager naming their own store's things, the same manager naming another
//! store's, and with a revoked key. The statuses come from one table; every answer the manager
//! gets is searched for anything of another store (store ids, customers by their home store,
//! the customers along a share cascade); and the refused writes are checked to have changed
//! nothing.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use c360_server::auth::{create_key, revoke_key, Role};
use c360_server::authz::{Callers, RULES};
use c360_server::AppState;
use serde_json::{json, Value};

use super::{call, fixture, serve_cfg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Admin,
    Analyst,
    /// The store manager, naming their own store's things.
    Own,
    /// The same manager, naming another store's.
    Other,
    Revoked,
}
use Who::*;

const WHO: [Who; 5] = [Admin, Analyst, Own, Other, Revoked];

/// The things one caller's requests name.
#[derive(Debug, Clone)]
struct Named {
    store: i64,
    /// Two stores, for an experiment (it needs at least two).
    pair: [i64; 2],
    customer: i64,
    campaign: i64,
    experiment: i64,
    ticket: String,
    /// Three saved audiences of the caller's stores: read and changed, compared, archived.
    audiences: [i64; 3],
    /// A customer of the caller's stores whom an erasure may take (not `customer`).
    victim: i64,
}

/// The status each caller gets: admin, analyst, own, other (a revoked key always gets 401).
fn expected(method: &str, path: &str) -> [u16; 4] {
    match (method, path) {
        ("get", "/api/v1/customers/{id}")
        | ("get", "/api/v1/customers/{id}/timeline")
        | ("get", "/api/v1/customers/{id}/behavior")
        | ("get", "/api/v1/customers/{id}/emotion")
        | ("get", "/api/v1/customers/{id}/preferences")
        | ("get", "/api/v1/customers/{id}/recommendations")
        | ("get", "/api/v1/customers/{id}/predictions")
        | ("get", "/api/v1/customers/{id}/insights")
        | ("get", "/api/v1/customers/{id}/network")
        | ("get", "/api/v1/customers")
        | ("get", "/api/v1/sentiment")
        | ("get", "/api/v1/recommendations")
        | ("get", "/api/v1/menu")
        | ("get", "/api/v1/campaigns/{id}")
        | ("get", "/api/v1/campaigns/{id}/results")
        | ("get", "/api/v1/campaigns/{id}/members")
        | ("post", "/api/v1/campaigns/{id}/launch")
        | ("post", "/api/v1/campaigns/{id}/status")
        | ("get", "/api/v1/experiments/{id}/results")
        | ("post", "/api/v1/service/diagnose") => [200, 200, 200, 403],
        ("post", "/api/v1/campaigns") | ("post", "/api/v1/experiments") => [201, 201, 201, 403],
        ("post", "/api/v1/audiences") => [201, 201, 201, 403],
        ("post", "/api/v1/audiences/preview") => [200, 200, 200, 403],
        // Another store's audience is as good as absent.
        ("post", "/api/v1/audiences/{id}/lookalike") => [201, 201, 201, 404],
        ("get", "/api/v1/audiences/{id}")
        | ("put", "/api/v1/audiences/{id}")
        | ("delete", "/api/v1/audiences/{id}")
        | ("get", "/api/v1/audiences/{id}/members")
        | ("get", "/api/v1/audiences/{id}/export")
        | ("get", "/api/v1/audiences/overlap") => [200, 200, 200, 404],
        ("post", "/api/v1/orders") => [201, 403, 201, 403],
        ("post", "/api/v1/events") => [201, 403, 403, 403],
        ("post", "/api/v1/events/batch") => [200, 403, 403, 403],
        ("put", "/api/v1/campaigns/settings")
        | ("get", "/api/v1/audit")
        | ("post", "/api/v1/privacy/customers/{id}/export")
        | ("get", "/api/v1/privacy/requests") => [200, 403, 403, 403],
        ("post", "/api/v1/privacy/customers/{id}/erase") => [202, 403, 403, 403],
        ("put", "/api/v1/journeys/{kind}") => [200, 200, 403, 403],
        _ => [200, 200, 200, 200],
    }
}

/// The request `who` makes for an operation: its URL and body.
fn request(method: &str, path: &str, who: Who, n: &Named, day: &Days) -> (String, Option<Value>) {
    let tag = format!("{who:?}").to_lowercase();
    let url = path
        .replace("{dim}", "store")
        .replace("{kind}", "welcome")
        .replace(
            "{id}",
            &if path.starts_with("/api/v1/campaigns") {
                n.campaign
            } else if method == "delete" && path.starts_with("/api/v1/audiences") {
                n.audiences[2]
            } else if path.starts_with("/api/v1/audiences") {
                n.audiences[0]
            } else if path.starts_with("/api/v1/experiments") {
                n.experiment
            } else if path.ends_with("/erase") {
                n.victim
            } else {
                n.customer
            }
            .to_string(),
        );
    let query = match path {
        "/api/v1/customers" | "/api/v1/sentiment" | "/api/v1/recommendations" | "/api/v1/menu" => {
            format!("?store_id={}", n.store)
        }
        "/api/v1/campaigns/program" => format!("?from={}&to={}", day.start, day.end),
        "/api/v1/audiences/overlap" => format!("?ids={},{}", n.audiences[0], n.audiences[1]),
        _ => String::new(),
    };
    let body = match (method, path) {
        ("post", "/api/v1/orders") => Some(json!({
            "order_no": format!("AUTHZ-{tag}"), "customer_id": n.customer, "store_id": n.store,
            "total_fen": 2500, "items": [{"product_id": 1, "qty": 1, "unit_price_fen": 2500}]})),
        ("post", "/api/v1/events") => Some(json!({
            "event_id": format!("authz-{tag}"), "customer_id": n.customer, "session_id": "authz",
            "action_type": "view", "page": "menu"})),
        ("post", "/api/v1/events/batch") => Some(json!({"events": [{
            "event_id": format!("authz-batch-{tag}"), "customer_id": n.customer, "session_id": "authz",
            "action_type": "view", "page": "menu"}]})),
        ("post", "/api/v1/campaigns") => Some(campaign_spec(&format!("authz {tag}"), n.store, day)),
        ("post", "/api/v1/campaigns/{id}/launch") => None,
        ("post", "/api/v1/campaigns/{id}/status") => Some(json!({"action": "pause"})),
        ("put", "/api/v1/campaigns/settings") => Some(json!({"global_holdout_pct": 5.0})),
        ("post", "/api/v1/experiments") => {
            Some(experiment_spec(&format!("authz {tag}"), n.pair, day))
        }
        ("post", "/api/v1/service/diagnose") => Some(json!({"ticket_key": n.ticket})),
        ("post", "/api/v1/audiences")
        | ("post", "/api/v1/audiences/preview")
        | ("put", "/api/v1/audiences/{id}") => {
            Some(audience_spec(&format!("authz {tag}"), n.store))
        }
        ("put", "/api/v1/journeys/{kind}") => Some(json!({
            "enabled": false, "channel": "wechat",
            "offer": {"kind": "amount_off", "discount_fen": 300, "sku": "HD01"}})),
        ("post", "/api/v1/audiences/{id}/lookalike") => {
            Some(json!({"name": format!("authz like {tag}"), "size": 5}))
        }
        ("post", "/api/v1/sentiment/score") => Some(json!({"texts": ["热狗很好吃"]})),
        ("post", "/api/v1/privacy/customers/{id}/erase") => {
            Some(json!({"reason": format!("authz {tag}")}))
        }
        _ => None,
    };
    (format!("{url}{query}"), body)
}

/// The window every campaign and experiment of the test runs in.
pub(super) struct Days {
    pub(super) start: String,
    pub(super) end: String,
}

pub(super) fn campaign_spec(name: &str, store: i64, day: &Days) -> Value {
    json!({
        "name": name, "channel": "wechat", "start": day.start, "end": day.end,
        "audience": {"store_ids": [store]},
        "offer": {"kind": "favourite_item", "discount_fen": 300},
        "holdout_pct": 20
    })
}

pub(super) fn audience_spec(name: &str, store: i64) -> Value {
    json!({
        "name": name, "store_ids": [store],
        "rule": {"any": [{"field": {"field": "order_count", "op": "ge", "values": [2]}},
                         {"bought": {"daypart": "lunch", "min_times": 1}}]}
    })
}

pub(super) fn experiment_spec(name: &str, stores: [i64; 2], day: &Days) -> Value {
    json!({"name": name, "design": "switchback", "start": day.start, "end": day.end, "stores": stores})
}

/// Everything in `v` that belongs to a store not in `own`: store ids, customers (by their home
/// store) and the customers along a cascade. `stores`: whether store ids count (not in a
/// customer's own history, where an order at another store is still their order).
fn leaks(
    v: &Value,
    own: &[i64],
    stores: bool,
    home: &HashMap<i64, i64>,
    at: &str,
    out: &mut Vec<String>,
) {
    let foreign = |c: i64| home.get(&c).is_some_and(|h| !own.contains(h));
    let other = |n: &serde_json::Number| n.as_i64().is_some_and(|s| !own.contains(&s));
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}.{k}");
                match (k.as_str(), x) {
                    ("store_id" | "home_store_id", Value::Number(n)) if stores && other(n) => {
                        out.push(format!("{here} = {n}"))
                    }
                    ("customer_id" | "root_customer_id", Value::Number(n))
                        if n.as_i64().is_some_and(foreign) =>
                    {
                        out.push(format!("{here} = {n} (another store's customer)"))
                    }
                    ("store_ids" | "stores", Value::Array(a))
                        if stores
                            && a.iter()
                                .any(|s| s.as_i64().is_some_and(|s| !own.contains(&s))) =>
                    {
                        out.push(format!("{here} = {x}"))
                    }
                    ("longest_path", Value::String(s)) => {
                        let ids: Vec<i64> = serde_json::from_str(s).unwrap_or_default();
                        if ids.iter().any(|c| foreign(*c)) {
                            out.push(format!("{here} = {s} (another store's customers)"));
                        }
                    }
                    _ => leaks(x, own, stores, home, &here, out),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaks(x, own, stores, home, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_for_every_role() {
    let f = fixture(6_000, 43).await;
    // Who lives where, from the warehouse; the manager runs the two stores with the most
    // customers, "another store" is the next two.
    let sess = c360_etl::session(&f.wh).await.unwrap();
    let busiest = c360_core::json::rows(
        &sess
            .query("SELECT home_store_id AS s FROM customer_segmentation WHERE home_store_id IS NOT NULL GROUP BY home_store_id ORDER BY COUNT(*) DESC, home_store_id LIMIT 4")
            .await
            .unwrap(),
    )
    .unwrap();
    let busiest: Vec<i64> = busiest.iter().map(|r| r["s"].as_i64().unwrap()).collect();
    let (own, others) = ([busiest[0], busiest[1]], [busiest[2], busiest[3]]);
    let db = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let manager = create_key(&db, "two stores", Role::StoreManager, &own)
        .await
        .unwrap();
    let revoked = create_key(&db, "gone", Role::Analyst, &[]).await.unwrap();
    revoke_key(&db, "gone").await.unwrap();
    db.close().await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(manager.as_str()),
    );
    let key = |w: Who| match w {
        Admin => f.admin.as_str(),
        Analyst => f.analyst.as_str(),
        Own | Other => manager.as_str(),
        Revoked => revoked.as_str(),
    };

    let homes = c360_core::json::rows(
        &sess
            .query("SELECT customer_id, home_store_id FROM customer_segmentation WHERE home_store_id IS NOT NULL")
            .await
            .unwrap(),
    )
    .unwrap();
    let home: HashMap<i64, i64> = homes
        .iter()
        .map(|r| {
            (
                r["customer_id"].as_i64().unwrap(),
                r["home_store_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let of_store = |s: i64| {
        let mut v: Vec<i64> = home
            .iter()
            .filter(|(_, h)| **h == s)
            .map(|(c, _)| *c)
            .collect();
        v.sort_unstable();
        v
    };
    let (mine, victim) = {
        let v = of_store(own[0]);
        (v[0], v[1])
    };
    let (theirs, their_victim) = {
        let v = of_store(others[0]);
        (v[0], v[1])
    };
    let other_store = others[0];
    let day = Days {
        start: f.sim.cutoff.to_string(),
        end: (f.sim.cutoff + chrono::Duration::days(13)).to_string(),
    };

    // Tickets of the manager's store and of another.
    let (_, tk) = call(&st, "GET", "/api/v1/service/tickets?limit=500", a, None).await;
    let tickets = tk["tickets"].as_array().unwrap();
    let ticket_of = |mine_too: bool| {
        tickets
            .iter()
            .find(|t| t["store_id"].as_i64().is_some_and(|s| own.contains(&s)) == mine_too)
            .map(|t| t["ticket_key"].as_str().unwrap().to_string())
            .unwrap()
    };
    // One draft campaign per caller, so each launch and pause acts on its own; the other
    // store's is the admin's.
    let mut campaign = HashMap::new();
    for (w, k, store) in [
        (Admin, a, other_store),
        (Analyst, an, other_store),
        (Own, m, own[0]),
        (Other, a, other_store),
    ] {
        let spec = campaign_spec(&format!("matrix {w:?}"), store, &day);
        let (s, c) = call(&st, "POST", "/api/v1/campaigns", k, Some(spec)).await;
        assert_eq!(s, StatusCode::CREATED, "{w:?}: {c}");
        campaign.insert(w, c["campaign_id"].as_i64().unwrap());
    }
    let mut experiment = HashMap::new();
    for (w, k, stores) in [(Own, m, own), (Other, a, others)] {
        let spec = experiment_spec(&format!("matrix {w:?}"), stores, &day);
        let (s, e) = call(&st, "POST", "/api/v1/experiments", k, Some(spec)).await;
        assert_eq!(s, StatusCode::CREATED, "{w:?}: {e}");
        experiment.insert(w, e["experiment_id"].as_i64().unwrap());
    }
    let mut audiences = HashMap::new();
    for (w, k, store) in [
        (Admin, a, other_store),
        (Analyst, an, other_store),
        (Own, m, own[0]),
        (Other, a, other_store),
    ] {
        let mut ids = [0i64; 3];
        for (i, id) in ids.iter_mut().enumerate() {
            let spec = audience_spec(&format!("matrix {w:?} {i}"), store);
            let (s, c) = call(&st, "POST", "/api/v1/audiences", k, Some(spec)).await;
            assert_eq!(s, StatusCode::CREATED, "{w:?}: {c}");
            *id = c["audience_id"].as_i64().unwrap();
        }
        audiences.insert(w, ids);
    }
    let named = |w: Who| {
        let other = w == Other;
        Named {
            store: if other { other_store } else { own[0] },
            pair: if other { others } else { own },
            customer: if other { theirs } else { mine },
            campaign: campaign[&if w == Revoked { Admin } else { w }],
            experiment: experiment[&if other { Other } else { Own }],
            ticket: ticket_of(!other),
            audiences: audiences[&if w == Revoked { Admin } else { w }],
            victim: if other { their_victim } else { victim },
        }
    };
    let (_, settings_before) = call(&st, "GET", "/api/v1/campaigns/settings", a, None).await;

    // The walk, in the document's order.
    let (_, doc) = call(&st, "GET", "/api-docs/openapi.json", None, None).await;
    let mut walked = HashSet::new();
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            walked.insert((method.to_uppercase(), path.clone()));
            let want = expected(method, path);
            let public = path == "/api/v1/health";
            for w in WHO {
                let n = named(w);
                let (url, body) = request(method, path, w, &n, &day);
                let (s, v) = call(&st, &method.to_uppercase(), &url, Some(key(w)), body).await;
                let want = match w {
                    _ if public => 200,
                    Revoked => 401,
                    Admin => want[0],
                    Analyst => want[1],
                    Own => want[2],
                    Other => want[3],
                };
                if s.as_u16() != want {
                    failures.push(format!("{method} {url} as {w:?}: {s} (want {want}): {v}"));
                    continue;
                }
                if matches!(w, Own | Other) && s.is_success() {
                    let mut l = Vec::new();
                    let own_history = path.starts_with("/api/v1/customers/{id}");
                    leaks(&v, &own, !own_history, &home, "", &mut l);
                    if path == "/api/v1/compare/{dim}" {
                        for r in v["rows"].as_array().unwrap() {
                            if !r["id"].as_i64().is_some_and(|s| own.contains(&s)) {
                                l.push(format!("rows[].id = {}", r["id"]));
                            }
                        }
                    }
                    if !l.is_empty() {
                        failures.push(format!("{method} {url} as {w:?} leaks: {}", l.join("; ")));
                    }
                }
                if s == StatusCode::FORBIDDEN {
                    assert_eq!(v["code"], "forbidden", "{method} {url}");
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The table of rules and the document name the same operations.
    let ruled: HashSet<(String, String)> = RULES
        .iter()
        .filter(|r| r.path != "/ws")
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(
        ruled, walked,
        "authz::RULES and the OpenAPI document differ"
    );
    assert!(RULES
        .iter()
        .all(|r| r.path == "/api/v1/health" || r.callers != Callers::Anyone));

    // The refused writes changed nothing.
    let (_, c) = call(
        &st,
        "GET",
        &format!("/api/v1/campaigns/{}", campaign[&Other]),
        a,
        None,
    )
    .await;
    assert_eq!(c["status"], "draft", "{c}");
    let (_, l) = call(&st, "GET", "/api/v1/campaigns", a, None).await;
    let names: Vec<&str> = l["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"authz own") && !names.contains(&"authz other"),
        "{names:?}"
    );
    let (_, e) = call(&st, "GET", "/api/v1/experiments", a, None).await;
    assert!(!e.to_string().contains("authz other"), "{e}");
    let (_, s) = call(&st, "GET", "/api/v1/campaigns/settings", a, None).await;
    assert_eq!(
        s,
        json!({"global_holdout_pct": 5.0}),
        "the admin's change only"
    );
    assert_ne!(settings_before, json!(null));
    let meta = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let orders = meta
        .fetch_all(
            "SELECT order_no FROM live_orders WHERE order_no LIKE 'AUTHZ-%' ORDER BY order_no",
        )
        .await
        .unwrap();
    let orders: Vec<String> = orders
        .iter()
        .map(|r| c360_db::get_text(r, "order_no").unwrap())
        .collect();
    assert_eq!(orders, ["AUTHZ-admin", "AUTHZ-own"]);

    // A share cascade's path runs through customers of any store: a manager gets the cascades
    // that start in their stores, without the path.
    let (_, nm) = call(&st, "GET", "/api/v1/network?limit=200", m, None).await;
    let (_, na) = call(&st, "GET", "/api/v1/network?limit=200", a, None).await;
    let (cm, ca) = (
        nm["cascades"].as_array().unwrap(),
        na["cascades"].as_array().unwrap(),
    );
    assert!(
        !cm.is_empty() && cm.len() < ca.len(),
        "{} of {}",
        cm.len(),
        ca.len()
    );
    assert!(cm.iter().all(|c| c["longest_path"].is_null()), "{nm}");
    assert!(ca.iter().all(|c| c["longest_path"].is_string()));

    // A manager may ring up another store's customer at their own till, but the answer does not
    // carry that customer's profile; naming another store's order in a ticket is refused.
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/orders",
        m,
        Some(json!({"order_no": "AUTHZ-visitor", "customer_id": theirs, "store_id": own[0],
                    "total_fen": 2500, "items": [{"product_id": 1, "qty": 1, "unit_price_fen": 2500}]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(
        v["live"].is_null(),
        "another store's customer's profile: {v}"
    );
    let foreign_order = c360_core::json::rows(
        &sess
            .query(&format!(
                "SELECT order_id FROM orders WHERE store_id = {} LIMIT 1",
                others[0]
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    let foreign_order = foreign_order[0]["order_id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &st,
        "POST",
        "/api/v1/service/diagnose",
        m,
        Some(json!({"message": "订单少了一个热狗", "order_id": foreign_order})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}
