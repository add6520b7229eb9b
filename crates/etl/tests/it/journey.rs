//! Triggered journeys on a simulated chain: each refresh fires every enabled journey on the
//! customers the snapshot says are overdue, new, big spenders or had a service ticket; firing
//! twice stores nothing twice; holdouts, quiet hours, the frequency cap and the cooldown hold.

use std::collections::HashMap;

use super::*;
use c360_core::journey::{self, JourneyKind, JourneySpec};
use c360_metastore::Metastore;

fn spec(threshold: Option<f64>) -> JourneySpec {
    serde_json::from_value(serde_json::json!({
        "enabled": true, "channel": "wechat", "threshold": threshold, "holdout_pct": 20,
        "offer": {"kind": "amount_off", "discount_fen": 500, "sku": "HD01"}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_fire_once_with_holdouts_caps_quiet_hours_and_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 20_000, 61);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let meta = Metastore::open(&cfg.metastore()).await.unwrap();
    let big = 6_000.0;
    journey::set(&meta.db, JourneyKind::MissYou, &spec(Some(0.8)), "t")
        .await
        .unwrap();
    journey::set(&meta.db, JourneyKind::Welcome, &spec(None), "t")
        .await
        .unwrap();
    journey::set(&meta.db, JourneyKind::BigSpender, &spec(Some(big)), "t")
        .await
        .unwrap();
    journey::set(&meta.db, JourneyKind::Recovery, &spec(None), "t")
        .await
        .unwrap();
    // A bad setting names its field.
    let e = journey::set(&meta.db, JourneyKind::MissYou, &spec(Some(3.0)), "t")
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("threshold"), "{e}");

    // The next run fires them (the ETL's refresh).
    c360_etl::refresh_only(&cfg, 998).await.unwrap();
    let sess = session(&wh).await;
    let overdue = count(
        &wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE overdue >= 0.8 AND p_alive >= 0.2",
    )
    .await;
    let sends = |kind: &'static str| {
        let db = meta.db.clone();
        async move {
            db.fetch(
                "SELECT * FROM journey_sends WHERE kind = ? ORDER BY trigger_key",
                &[kind.into()],
            )
            .await
            .unwrap()
        }
    };
    let miss = sends("miss_you").await;
    assert!(overdue > 100, "{overdue}");
    assert_eq!(
        miss.len() as i64,
        overdue,
        "one trigger per overdue customer"
    );
    let n_big = sends("big_spender").await.len();
    let n_welcome = sends("welcome").await.len();
    let n_recovery = sends("recovery").await.len();
    assert!(
        n_big > 0 && n_welcome > 0 && n_recovery > 0,
        "{n_big} {n_welcome} {n_recovery}"
    );

    // Holdouts by hash, about a fifth; only the treated get a coupon.
    let all = meta
        .db
        .fetch("SELECT * FROM journey_sends", &[])
        .await
        .unwrap();
    let get = |r: &c360_db::sqlx::any::AnyRow, c: &str| c360_db::get_text(r, c).unwrap_or_default();
    // Holdouts are drawn among the customers who consented to the channel (the others are
    // recorded as no_consent, in no arm).
    let drawn: Vec<_> = all.iter().filter(|r| get(r, "arm") != "none").collect();
    assert!(drawn.len() < all.len(), "nobody without consent");
    let held = drawn.iter().filter(|r| get(r, "arm") == "holdout").count() as f64;
    let share = held / drawn.len() as f64;
    assert!((0.14..0.26).contains(&share), "holdout share {share}");
    for r in &all {
        let planned = get(r, "status") == "planned";
        assert_eq!(
            planned,
            !get(r, "coupon_code").is_empty(),
            "{}",
            get(r, "trigger_key")
        );
        if get(r, "arm") == "none" {
            assert_eq!(get(r, "status"), "no_consent");
        } else if get(r, "arm") != "treatment" {
            assert!(get(r, "status") == "not_sent" || get(r, "status") == "cooldown");
        }
        // Never in quiet hours (22:00–08:00).
        let hour: u32 = get(r, "send_at")[11..13].parse().unwrap();
        assert!((8..22).contains(&hour), "{}", get(r, "send_at"));
    }
    // The cap: at most 2 planned messages per customer within 7 days; the cooldown: at most one
    // per journey and customer within 30 days.
    let mut by_customer: HashMap<i64, Vec<(String, chrono::NaiveDateTime)>> = HashMap::new();
    for r in all.iter().filter(|r| get(r, "status") == "planned") {
        by_customer
            .entry(c360_db::get_i64(r, "customer_id").unwrap())
            .or_default()
            .push((
                get(r, "kind"),
                c360_model::parse_ts(&get(r, "send_at")).unwrap(),
            ));
    }
    let mut capped_somewhere = false;
    for v in by_customer.values() {
        for (k, t) in v {
            let near = v
                .iter()
                .filter(|(_, u)| (*u - *t).num_days().abs() < 7)
                .count();
            assert!(near <= 2, "{v:?}");
            capped_somewhere |= near == 2;
            let same = v
                .iter()
                .filter(|(k2, u)| k2 == k && (*u - *t).num_days().abs() < 30)
                .count();
            assert_eq!(same, 1, "{v:?}");
        }
    }
    let statuses: std::collections::HashSet<String> =
        all.iter().map(|r| get(r, "status")).collect();
    assert!(
        statuses.contains("planned") && statuses.contains("not_sent"),
        "{statuses:?}"
    );
    assert!(
        capped_somewhere || statuses.contains("capped") || statuses.contains("cooldown"),
        "the guards never had anything to do: {statuses:?}"
    );

    // Firing again stores nothing twice.
    let again = journey::fire_refresh(&sess, &meta.db).await.unwrap();
    assert!(again.values().all(|c| c.is_empty()), "{again:?}");
    let n = meta
        .db
        .fetch("SELECT COUNT(*) AS n FROM journey_sends", &[])
        .await
        .unwrap();
    assert_eq!(c360_db::get_i64(&n[0], "n").unwrap() as usize, all.len());
    // Each firing is audited with its counts.
    let a = meta
        .db
        .fetch(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'journey.fire'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(c360_db::get_i64(&a[0], "n").unwrap(), 4);
}
