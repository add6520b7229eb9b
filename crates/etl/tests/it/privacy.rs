//! Consent and personal-data rights on a simulated chain: per-channel consent read from both
//! sources (the latest statement of any of a customer's accounts wins), a withdrawal at the
//! source taking effect at the next run, campaigns and journeys sending only to consenting
//! customers; a customer's data exported whole; a customer erased from the warehouse (Parquet
//! rewritten, older versions purged), the serving index, the audience bitmaps and the metastore,
//! with the chain's sales unchanged, and never loaded again by a later run.

use std::collections::{HashMap, HashSet};

use super::*;
use c360_core::campaign::{self, CampaignSpec};
use c360_core::privacy;
use c360_db::{get_i64, get_text, Db};
use c360_metastore::Metastore;

/// (statement, when) per channel of every source account, as the sources hold them.
async fn source_consent(sim: &c360_sim::SimConfig) -> HashMap<String, [Option<(bool, String)>; 3]> {
    let mut out = HashMap::new();
    let pos = Db::connect(&sim.pos_url).await.unwrap();
    for r in pos
        .fetch_all("SELECT member_id, sms_consent, consent_at FROM members")
        .await
        .unwrap()
    {
        let at = get_text(&r, "consent_at").unwrap_or_default();
        let s = get_i64(&r, "sms_consent").map(|v| (v == 1, at));
        out.insert(
            format!("M:{}", get_i64(&r, "member_id").unwrap()),
            [None, s, None],
        );
    }
    let wx = Db::connect(&sim.wx_url).await.unwrap();
    for r in wx
        .fetch_all("SELECT user_id, subscribe_consent, push_consent, consent_at FROM wx_users")
        .await
        .unwrap()
    {
        let at = get_text(&r, "consent_at").unwrap_or_default();
        let w = get_i64(&r, "subscribe_consent").map(|v| (v == 1, at.clone()));
        let p = get_i64(&r, "push_consent").map(|v| (v == 1, at));
        out.insert(
            format!("U:{}", get_i64(&r, "user_id").unwrap()),
            [w, None, p],
        );
    }
    out
}

async fn table(s: &Session, sql: &str) -> Vec<serde_json::Value> {
    c360_core::query::query(s, sql).await.unwrap()
}

async fn n(db: &Db, sql: &str, args: &[c360_db::Value]) -> i64 {
    get_i64(&db.fetch(sql, args).await.unwrap()[0], "n").unwrap()
}

fn sms_campaign(name: &str) -> CampaignSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "audience": {}, "channel": "sms",
        "offer": {"kind": "amount_off", "discount_fen": 300, "sku": "HD01"},
        "start": "2030-01-01", "end": "2030-01-07"
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_read_from_the_sources_and_enforced_on_every_send() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 15_000, 71);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let sess = session(&wh).await;

    // Every customer's consent is the latest statement of any of their accounts.
    let src = source_consent(&sim).await;
    let mut expected: HashMap<i64, [Option<(bool, String)>; 3]> = HashMap::new();
    for r in table(&sess, "SELECT source_key, customer_id FROM customer_keys").await {
        let (Some(k), Some(c)) = (r["source_key"].as_str(), r["customer_id"].as_i64()) else {
            continue;
        };
        let Some(st) = src.get(k) else { continue };
        let e = expected.entry(c).or_default();
        for ch in 0..3 {
            if let Some((g, at)) = &st[ch] {
                let newer = match &e[ch] {
                    None => true,
                    Some((g0, at0)) => at > at0 || (at == at0 && *g0 && !g),
                };
                if newer {
                    e[ch] = Some((*g, at.clone()));
                }
            }
        }
    }
    let rows = table(
        &sess,
        "SELECT customer_id, consent_wechat, consent_sms, consent_push FROM customers",
    )
    .await;
    let mut seen = [[0usize; 3]; 3];
    for r in &rows {
        let c = r["customer_id"].as_i64().unwrap();
        let want = expected.remove(&c).unwrap_or_default();
        for (ch, col) in ["consent_wechat", "consent_sms", "consent_push"]
            .iter()
            .enumerate()
        {
            let got = r[*col].as_bool();
            assert_eq!(got, want[ch].as_ref().map(|w| w.0), "customer {c} {col}");
            seen[ch][match got {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            }] += 1;
        }
    }
    for (ch, s) in seen.iter().enumerate() {
        assert!(s.iter().all(|k| *k > 50), "channel {ch}: {s:?}");
    }

    // A campaign's members all consented to its channel, before any arm was drawn.
    let meta = Metastore::open(&cfg.metastore()).await.unwrap();
    let id = campaign::create(&meta, &sms_campaign("sms"), "t")
        .await
        .unwrap();
    let l = campaign::launch(&sess, &meta.db, id, None, None)
        .await
        .unwrap();
    let scored = table(
        &sess,
        "SELECT customer_id, consent_sms FROM v_customer_360 WHERE rfm_class IS NOT NULL",
    )
    .await;
    let consenting: HashSet<i64> = scored
        .iter()
        .filter(|r| r["consent_sms"].as_bool() == Some(true))
        .map(|r| r["customer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(l.audience, consenting.len());
    assert_eq!(l.no_consent, scored.len() - consenting.len());
    assert!(l.no_consent > 0 && l.audience > 0, "{l:?}");
    let members = campaign::members(&meta.db, id).await.unwrap();
    assert!(members.iter().all(|m| consenting.contains(&m.customer_id)));
    assert!(members.iter().any(|m| m.arm == "holdout"));

    // Journeys record the customers without consent and message none of them.
    let spec: c360_core::journey::JourneySpec = serde_json::from_value(serde_json::json!({
        "enabled": true, "channel": "sms", "threshold": 0.5, "holdout_pct": 20,
        "offer": {"kind": "amount_off", "discount_fen": 500, "sku": "HD01"}
    }))
    .unwrap();
    c360_core::journey::set(
        &meta.db,
        c360_core::journey::JourneyKind::MissYou,
        &spec,
        "t",
    )
    .await
    .unwrap();
    c360_core::journey::fire_refresh(&sess, &meta.db)
        .await
        .unwrap();
    let sends = meta
        .db
        .fetch("SELECT customer_id, arm, status FROM journey_sends", &[])
        .await
        .unwrap();
    let mut refused = 0;
    for r in &sends {
        let c = get_i64(r, "customer_id").unwrap();
        let status = get_text(r, "status").unwrap();
        if consenting.contains(&c) {
            assert_ne!(status, "no_consent");
        } else {
            assert_eq!(status, "no_consent", "customer {c}");
            assert_eq!(get_text(r, "arm").unwrap(), "none");
            refused += 1;
        }
    }
    assert!(
        refused > 0 && refused < sends.len(),
        "{refused} of {}",
        sends.len()
    );

    // A member withdraws at the till: the next run reads it and the next campaign leaves them out.
    let who = *consenting.iter().min().unwrap();
    let keys = privacy::warehouse_keys(&sess, who).await.unwrap();
    let pos = Db::connect(&sim.pos_url).await.unwrap();
    let mut withdrew = 0;
    for k in keys.iter().filter_map(|k| k.strip_prefix("M:")) {
        withdrew += pos
            .execute(
                "UPDATE members SET sms_consent = 0, consent_at = '2030-01-02 10:00:00', updated_at = '2030-01-02 10:00:00' WHERE member_id = ?",
                &[k.parse::<i64>().unwrap().into()],
            )
            .await
            .unwrap();
    }
    // Their SMS consent may come from a member card (the sources state SMS consent there only).
    assert!(withdrew > 0, "{keys:?}");
    run(&cfg).await;
    let sess = session(&wh).await;
    let now = table(
        &sess,
        &format!("SELECT consent_sms FROM customers WHERE customer_id = {who}"),
    )
    .await;
    assert_eq!(now[0]["consent_sms"].as_bool(), Some(false));
    let id2 = campaign::create(&meta, &sms_campaign("sms again"), "t")
        .await
        .unwrap();
    campaign::launch(&sess, &meta.db, id2, None, None)
        .await
        .unwrap();
    let m2 = campaign::members(&meta.db, id2).await.unwrap();
    assert!(!m2.iter().any(|m| m.customer_id == who));
    assert_eq!(m2.len(), consenting.len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_exported_whole_and_erased_everywhere_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 15_000, 73);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let meta = Metastore::open(&cfg.metastore()).await.unwrap();
    let sess = session(&wh).await;
    // Someone with orders at the till and online, reviews and page events.
    let pick = table(
        &sess,
        "SELECT c.customer_id FROM v_customer_360 c \
         WHERE c.member_count > 0 AND c.wx_user_count > 0 AND c.review_count > 0 AND c.event_count > 0 \
         AND c.rfm_class IS NOT NULL ORDER BY c.order_count DESC, c.customer_id LIMIT 2",
    )
    .await;
    let (x, y) = (
        pick[0]["customer_id"].as_i64().unwrap(),
        pick[1]["customer_id"].as_i64().unwrap(),
    );
    let orders_of = |c: i64| format!("SELECT COUNT(*) FROM orders WHERE customer_id = {c}");
    let x_orders = count(&wh, &orders_of(x)).await;
    assert!(x_orders >= 2);
    // They are in a campaign, a journey's sends, a saved audience, and ordered live.
    let mut everyone = sms_campaign("everyone");
    everyone.channel = c360_model::Channel::Wechat;
    let cid = campaign::create(&meta, &everyone, "t").await.unwrap();
    campaign::launch(&sess, &meta.db, cid, None, None)
        .await
        .unwrap();
    let aud: c360_core::audience::AudienceSpec = serde_json::from_value(serde_json::json!({
        "name": "everyone", "sql": "SELECT customer_id FROM v_customer_360"
    }))
    .unwrap();
    let aid = c360_core::audience::create(&meta, &aud, "t").await.unwrap();
    let a = c360_core::audience::get(&meta, aid).await.unwrap();
    let w = Warehouse::open(&wh).unwrap();
    assert!(c360_core::audience::members(&w, &sess, &meta, &a)
        .await
        .unwrap()
        .contains(x as u64));
    for c in [x, y] {
        meta.db
            .execute(
                "INSERT INTO live_orders (order_no, customer_id, store_id, order_time, day, total_fen, items, received_at, received_by) VALUES (?, ?, 1, '2030-01-01 12:00:00', 1, 2500, '[]', 'now', 't')",
                &[format!("L-{c}").into(), c.into()],
            )
            .await
            .unwrap();
        meta.db
            .execute(
                "INSERT INTO journey_sends (trigger_key, kind, customer_id, arm, status, send_at, source, reason, fired_at) VALUES (?, 'welcome', ?, 'treatment', 'planned', '2030-01-01 13:00:00', 'live', 'first order', 'now')",
                &[format!("welcome:{c}").into(), c.into()],
            )
            .await
            .unwrap();
    }
    meta.db
        .execute(
            "INSERT INTO insight_cache (cache_key, model, insight, created_at) VALUES ('k', 'm', 'about them', 'now')",
            &[],
        )
        .await
        .unwrap();

    // The export holds everything, and is recorded and audited.
    let d = privacy::export(Some(&sess), &meta, x, "dpo", "admin")
        .await
        .unwrap();
    assert_eq!(d.orders.len() as i64, x_orders);
    assert!(d.accounts.len() >= 2, "{:?}", d.accounts);
    assert!(d.accounts.iter().all(|a| a.get("phone_hash").is_none()));
    assert!(!d.reviews.is_empty() && !d.events.is_empty() && !d.order_items.is_empty());
    assert_eq!(d.live_orders.len(), 1);
    let theirs = |t: &str| {
        format!("SELECT COUNT(*) FROM {t} x JOIN customer_keys k ON x.customer_key = k.source_key WHERE k.customer_id = {x}")
    };
    assert_eq!(
        d.shares.len() as i64,
        count(&wh, &theirs("customer_shares_raw")).await
    );
    assert_eq!(
        d.ties.len() as i64,
        count(&wh, &theirs("customer_ties_raw")).await
    );
    assert_eq!(d.journeys.len(), 1);
    assert!(d.campaigns.len() <= 1);
    assert_eq!(d.profile.as_ref().unwrap()["customer_id"], x);
    assert_eq!(
        n(
            &meta.db,
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'privacy.export' AND target = ?",
            &[format!("customer:{x}").into()]
        )
        .await,
        1
    );

    // Erase x now; y is accepted (as a server does) and completed by the next ETL run.
    let before = (
        count(&wh, "SELECT COUNT(*) FROM fact_orders").await,
        count(&wh, "SELECT SUM(total_fen) FROM fact_orders").await,
    );
    let xkeys = privacy::warehouse_keys(&sess, x).await.unwrap();
    let ykeys = privacy::warehouse_keys(&sess, y).await.unwrap();
    assert!(xkeys.iter().any(|k| k.starts_with("M:")) && xkeys.iter().any(|k| k.starts_with("U:")));
    let rx = privacy::erase(&meta, x, &xkeys, "dpo", "admin", "request 1")
        .await
        .unwrap();
    assert_eq!(rx.status, "pending");
    // Gone from the metastore at once.
    for (sql, want) in [
        (
            "SELECT COUNT(*) AS n FROM identity_nodes WHERE customer_id = ?",
            0,
        ),
        (
            "SELECT COUNT(*) AS n FROM campaign_members WHERE customer_id = ?",
            0,
        ),
        (
            "SELECT COUNT(*) AS n FROM journey_sends WHERE customer_id = ?",
            0,
        ),
        (
            "SELECT COUNT(*) AS n FROM live_orders WHERE customer_id = ?",
            0,
        ),
    ] {
        assert_eq!(n(&meta.db, sql, &[x.into()]).await, want, "{sql}");
    }
    assert_eq!(
        n(
            &meta.db,
            "SELECT COUNT(*) AS n FROM live_orders WHERE order_no = ?",
            &[format!("L-{x}").into()]
        )
        .await,
        1,
        "the sale stays"
    );
    assert_eq!(
        n(&meta.db, "SELECT COUNT(*) AS n FROM insight_cache", &[]).await,
        0
    );
    assert_eq!(c360_etl::privacy::apply(&cfg).await.unwrap(), 1);
    privacy::erase(&meta, y, &ykeys, "dpo", "admin", "request 2")
        .await
        .unwrap();
    run(&cfg).await;

    let sess = session(&wh).await;
    for c in [x, y] {
        assert_eq!(
            count(
                &wh,
                &format!("SELECT COUNT(*) FROM customers WHERE customer_id = {c}")
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &wh,
                &format!("SELECT COUNT(*) FROM v_customer_360 WHERE customer_id = {c}")
            )
            .await,
            0
        );
        assert_eq!(count(&wh, &orders_of(c)).await, 0);
        for t in [
            "customer_segmentation",
            "customer_predictions",
            "review_sentiment",
            "customer_network",
            "customer_sessions",
        ] {
            assert_eq!(
                count(
                    &wh,
                    &format!("SELECT COUNT(*) FROM {t} WHERE customer_id = {c}")
                )
                .await,
                0,
                "{t}"
            );
        }
    }
    let mut all_keys = xkeys.clone();
    all_keys.extend(ykeys.clone());
    let list = all_keys
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(",");
    for (t, col) in [
        ("customer_keys", "source_key"),
        ("fact_orders", "customer_key"),
        ("customer_behavior_tracks_raw", "customer_key"),
        ("customer_emotion_raw", "customer_key"),
        ("customer_shares_raw", "customer_key"),
        ("customer_shares_raw", "to_customer_key"),
        ("customer_ties_raw", "customer_key"),
        ("customer_ties_raw", "other_key"),
        ("service_tickets_raw", "customer_key"),
        ("payer_links", "customer_key"),
    ] {
        assert_eq!(
            count(
                &wh,
                &format!("SELECT COUNT(*) FROM {t} WHERE {col} IN ({list})")
            )
            .await,
            0,
            "{t}.{col}"
        );
    }
    // Their orders stay as anonymous sales: the chain's revenue did not move.
    assert_eq!(
        (
            count(&wh, "SELECT COUNT(*) FROM fact_orders").await,
            count(&wh, "SELECT SUM(total_fen) FROM fact_orders").await
        ),
        before
    );
    // One version left; its serving index and audience bitmap know nothing of them.
    let w = Warehouse::open(&wh).unwrap();
    let v = w.current().unwrap().version;
    assert_eq!(std::fs::read_dir(wh.join("_manifests")).unwrap().count(), 1);
    let served: Vec<_> = std::fs::read_dir(wh.join("_serving"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(served, vec![std::ffi::OsString::from(format!("v{v:08}"))]);
    let idx = c360_core::serving::ServingIndex::open(&c360_core::serving::dir_of(&w, v)).unwrap();
    for c in [x, y] {
        assert!(idx.rows("v_customer_360", c).unwrap().is_empty());
        assert!(idx.orders(c).unwrap().is_empty());
    }
    let members = c360_core::audience::members(&w, &sess, &meta, &a)
        .await
        .unwrap();
    assert!(!members.contains(x as u64) && !members.contains(y as u64));
    assert!(members.len() > 100);
    // The metastore and the requests.
    for c in [x, y] {
        assert_eq!(
            n(
                &meta.db,
                "SELECT COUNT(*) AS n FROM identity_nodes WHERE customer_id = ?",
                &[c.into()]
            )
            .await,
            0
        );
        assert_eq!(n(&meta.db, "SELECT COUNT(*) AS n FROM privacy_requests WHERE customer_id = ? AND kind = 'erase' AND status = 'done'", &[c.into()]).await, 1);
        assert_eq!(n(&meta.db, "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'privacy.erase.complete' AND target = ?", &[format!("customer:{c}").into()]).await, 1);
    }
    for k in &all_keys {
        assert_eq!(
            n(
                &meta.db,
                "SELECT COUNT(*) AS n FROM identity_nodes WHERE source_key = ?",
                &[k.clone().into()]
            )
            .await,
            0,
            "{k}"
        );
    }
    // Asking again: already erased; exporting: nothing left.
    let again = privacy::erase(&meta, x, &[], "dpo", "admin", "again")
        .await
        .unwrap_err();
    assert!(
        matches!(again, c360_core::CoreError::Conflict(_)),
        "{again}"
    );
    assert!(matches!(
        privacy::export(Some(&sess), &meta, x, "dpo", "admin")
            .await
            .unwrap_err(),
        c360_core::CoreError::NotFound(_)
    ));

    // The sources still hold them, and they order again at the till: a later run loads the
    // order as an anonymous sale and brings back nobody.
    let pos = Db::connect(&sim.pos_url).await.unwrap();
    let mid: i64 = xkeys
        .iter()
        .find_map(|k| k.strip_prefix("M:"))
        .unwrap()
        .parse()
        .unwrap();
    pos.execute(
        "INSERT INTO orders (order_id, order_no, store_id, member_id, order_time, total_fen, discount_fen, pay_method, status, coupon_code, updated_at, payer_id) \
         SELECT MAX(order_id) + 1, 'ERASED-1', 1, ?, '2030-01-03 12:00:00', 3100, 0, 'cash', 'paid', NULL, '2030-01-03 12:00:00', NULL FROM orders",
        &[mid.into()],
    )
    .await
    .unwrap();
    pos.execute(
        "UPDATE members SET updated_at = '2030-01-03 12:00:00' WHERE member_id = ?",
        &[mid.into()],
    )
    .await
    .unwrap();
    run(&cfg).await;
    assert_eq!(
        count(&wh, "SELECT COUNT(*) FROM fact_orders").await,
        before.0 + 1
    );
    assert_eq!(
        count(
            &wh,
            "SELECT COUNT(*) FROM fact_orders WHERE order_no = 'ERASED-1' AND customer_key IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &wh,
            &format!("SELECT COUNT(*) FROM customer_keys WHERE source_key IN ({list})")
        )
        .await,
        0
    );
    assert_eq!(
        n(
            &meta.db,
            "SELECT COUNT(*) AS n FROM identity_nodes WHERE source_key = ?",
            &[format!("M:{mid}").into()]
        )
        .await,
        0
    );
}
