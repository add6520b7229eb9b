//! Acting on profiles end to end: a campaign suggested from the segments, created, launched and
//! then lived through by the simulated customers (who redeem its coupons at the POS and in the
//! mini-program), loaded by the ETL and evaluated against the causal truth; store-level and
//! switchback experiments; customer-service diagnosis; roles and the audit trail.

use std::collections::HashMap;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_experiments_service_and_audit() {
    let f = fixture(30_000, 71).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (a, an, m) = (
        Some(f.admin.as_str()),
        Some(f.analyst.as_str()),
        Some(f.manager.as_str()),
    );

    // Suggestions from the segments, one per RFM class with enough customers.
    let (s, sg) = call(&st, "GET", "/api/v1/campaigns/suggestions", an, None).await;
    assert_eq!(s, StatusCode::OK, "{sg}");
    let sugg = sg["suggestions"].as_array().unwrap();
    assert!(sugg.len() >= 4, "{sg}");
    let winback = sugg
        .iter()
        .find(|x| x["rfm_class"] == "重要挽留客户")
        .expect("a win-back suggestion");
    let mut spec = winback["spec"].clone();
    assert_eq!(spec["offer"]["kind"], "favourite_item");
    assert_eq!(spec["offer"]["daypart"], "usual");
    // It starts on the snapshot's "today": the day after the last data.
    assert_eq!(spec["start"], json!(f.sim.cutoff.to_string()));

    // Bad specs are refused with the field named; nothing is stored. A body that does not parse
    // is a 400; one the domain refuses (a value out of range, an end before the start) a 422.
    for (field, v, want, status) in [
        ("channel", json!("fax"), "channel", StatusCode::BAD_REQUEST),
        (
            "holdout_pct",
            json!(0),
            "holdout_pct",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "end",
            json!("2020-01-01"),
            "end",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let mut b = spec.clone();
        b[field] = v;
        let (s, e) = call(&st, "POST", "/api/v1/campaigns", an, Some(b)).await;
        assert_eq!(s, status, "{field}: {e}");
        assert!(e["message"].as_str().unwrap().starts_with(want), "{e}");
    }
    // A store manager's campaign must stay within their stores.
    let (s, _) = call(&st, "POST", "/api/v1/campaigns", m, Some(spec.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let mut mine = spec.clone();
    mine["audience"]["store_ids"] = json!([f.store]);
    mine["name"] = json!("manager's own");
    let (s, c) = call(&st, "POST", "/api/v1/campaigns", m, Some(mine)).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");

    // The analyst creates the win-back campaign (a bigger holdout, to measure well) and launches.
    spec["holdout_pct"] = json!(30);
    spec["frequency_cap"] = json!(1);
    let (s, c) = call(&st, "POST", "/api/v1/campaigns", an, Some(spec.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let id = c["campaign_id"].as_i64().unwrap();
    let (s, l) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id}/launch"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{l}");
    let audience = l["audience"].as_i64().unwrap();
    // Everyone in the class who accepts the campaign's channel; the rest are counted apart.
    let channel = spec["channel"].as_str().unwrap().to_string();
    let class_size = count(
        &f.wh,
        "SELECT COUNT(*) FROM customer_segmentation WHERE rfm_class = '重要挽留客户'",
    )
    .await;
    let consenting = count(
        &f.wh,
        &format!("SELECT COUNT(*) FROM v_customer_360 WHERE rfm_class = '重要挽留客户' AND consent_{channel}"),
    )
    .await;
    assert_eq!(audience, consenting);
    assert_eq!(audience + l["no_consent"].as_i64().unwrap(), class_size);
    let arms = &l["arms"];
    let hold = arms["holdout"].as_i64().unwrap();
    let treat = arms["treatment"].as_i64().unwrap();
    let global = arms["global_holdout"].as_i64().unwrap_or(0);
    assert_eq!(hold + treat + global, audience);
    assert!(global > 0 && (global as f64) < 0.1 * audience as f64, "{l}");
    let (s, again) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id}/launch"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");

    // Members: personal offers, unique coupon codes, sends outside quiet hours.
    let (_, mem) = call(
        &st,
        "GET",
        &format!("/api/v1/campaigns/{id}/members?limit=5000"),
        an,
        None,
    )
    .await;
    let ms = mem["members"].as_array().unwrap();
    assert_eq!(ms.len() as i64, audience);
    let mut codes = std::collections::HashSet::new();
    for x in ms.iter().filter(|x| x["arm"] == "treatment") {
        assert!(codes.insert(x["coupon_code"].as_str().unwrap().to_string()));
        let hour: u32 = x["send_at"].as_str().unwrap()[11..13].parse().unwrap();
        assert!((8..22).contains(&hour), "{x}");
        assert!(x["sku"].is_string(), "{x}");
        // An hour before their usual daypart opens (breakfast's 6:00 is quiet: 8:00).
        let dp = x["daypart"].as_str().unwrap();
        let want = match dp {
            "breakfast" => 8,
            "lunch" => 9,
            "afternoon" => 13,
            "dinner" => 16,
            _ => 20,
        };
        assert_eq!(hour, want, "{x}");
    }
    for x in ms.iter().filter(|x| x["arm"] != "treatment") {
        assert!(
            x["coupon_code"].is_null() && x["status"] == "not_sent",
            "{x}"
        );
    }
    // A second campaign on the same people the same day: the cap (1 message in 7 days) defers it.
    let mut second = spec.clone();
    second["name"] = json!("second wave");
    second["end"] = spec["start"].clone();
    let (_, c2) = call(&st, "POST", "/api/v1/campaigns", an, Some(second)).await;
    let id2 = c2["campaign_id"].as_i64().unwrap();
    let (s, l2) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id2}/launch"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{l2}");
    let capped = l2["capped"].as_i64().unwrap();
    let mut both = 0;
    let first_treated: std::collections::HashSet<i64> = ms
        .iter()
        .filter(|x| x["arm"] == "treatment")
        .map(|x| x["customer_id"].as_i64().unwrap())
        .collect();
    let (_, mem2) = call(
        &st,
        "GET",
        &format!("/api/v1/campaigns/{id2}/members?limit=5000"),
        an,
        None,
    )
    .await;
    for x in mem2["members"].as_array().unwrap() {
        if x["arm"] != "holdout"
            && x["arm"] != "global_holdout"
            && first_treated.contains(&x["customer_id"].as_i64().unwrap())
        {
            both += 1;
            assert_eq!(x["status"], "capped", "{x}");
        }
    }
    assert_eq!(capped, both);
    let (s, _) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id2}/status"),
        an,
        Some(json!({"action": "cancel"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Two launches of one draft at the same moment: exactly one wins, the members are written
    // once; two concurrent moves out of one state likewise.
    let mut race = spec.clone();
    race["name"] = json!("race");
    let (_, c3) = call(&st, "POST", "/api/v1/campaigns", an, Some(race)).await;
    let id3 = c3["campaign_id"].as_i64().unwrap();
    let launch3 = format!("/api/v1/campaigns/{id3}/launch");
    let ((s1, l1), (s2, l2)) = tokio::join!(
        call(&st, "POST", &launch3, an, None),
        call(&st, "POST", &launch3, a, None)
    );
    let mut got = [s1, s2];
    got.sort();
    assert_eq!(got, [StatusCode::OK, StatusCode::CONFLICT], "{l1} {l2}");
    let won = if s1 == StatusCode::OK { &l1 } else { &l2 };
    assert_eq!(
        count_meta(
            &f,
            &format!("SELECT COUNT(*) AS n FROM campaign_members WHERE campaign_id = {id3}")
        )
        .await,
        won["audience"].as_i64().unwrap()
    );
    let status3 = format!("/api/v1/campaigns/{id3}/status");
    let ((s1, _), (s2, _)) = tokio::join!(
        call(&st, "POST", &status3, an, Some(json!({"action": "pause"}))),
        call(&st, "POST", &status3, a, Some(json!({"action": "pause"})))
    );
    let mut got = [s1, s2];
    got.sort();
    assert_eq!(got, [StatusCode::OK, StatusCode::CONFLICT]);
    let (s, _) = call(&st, "POST", &status3, an, Some(json!({"action": "cancel"}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        count_meta(&f, &format!("SELECT COUNT(*) AS n FROM campaign_members WHERE campaign_id = {id3} AND status = 'planned'")).await,
        0,
        "the cancelled race campaign holds its messages"
    );

    // Time passes: the simulated customers live through the campaign's window with it.
    let meta = c360_db::Db::connect(&f.etl.metastore()).await.unwrap();
    let mut tr = Vec::new();
    for (mm, keys) in c360_server::campaign::members_with_keys(&meta, id)
        .await
        .unwrap()
    {
        if mm.arm == "global_holdout" {
            continue;
        }
        tr.push(c360_sim::world::Treatment {
            campaign_id: id,
            source_keys: keys,
            treated: mm.arm == "treatment",
            coupon_code: mm.coupon_code.clone().unwrap_or_default(),
            discount_fen: mm.discount_fen.unwrap_or(0),
            send_at: c360_model::parse_ts(&mm.send_at).unwrap(),
            daypart: mm
                .daypart
                .as_deref()
                .and_then(|d| c360_model::Daypart::ALL.into_iter().find(|x| x.code() == d)),
            sku: mm.sku.clone(),
        });
    }
    let world = c360_sim::world::WorldConfig {
        pos_url: f.sim.pos_url.clone(),
        wx_url: f.sim.wx_url.clone(),
        truth_url: f.sim.truth_url.clone(),
        seed: 71,
        from: f.sim.cutoff,
        // Through the campaign's evaluation window (14 days + 7 of attribution), no further.
        days: 22,
    };
    let rep = c360_sim::world::advance(&world, &tr).await.unwrap();
    eprintln!("{}", serde_json::to_string(&rep).unwrap());
    assert!(
        rep.extra_orders > 10 && rep.coupon_on_natural > 0,
        "{rep:?}"
    );
    c360_etl::run(&f.etl).await.unwrap();
    assert!(st.reload().await.unwrap());

    let (s, r) = call(
        &st,
        "GET",
        &format!("/api/v1/campaigns/{id}/results"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    eprintln!("{}", serde_json::to_string_pretty(&r["arms"]).unwrap());
    assert_eq!(r["window"]["complete"], true, "{}", r["window"]);
    assert_eq!(r["srm"]["mismatch"], false);
    let arm = &r["arms"][0];
    // Every redemption is attributed by its code: at the till and in the mini-program.
    let truth = c360_db::Db::connect(&f.sim.truth_url).await.unwrap();
    let t = truth
        .fetch_all(&format!(
            "SELECT SUM(redeemed) AS red, SUM(realized_uplift_fen) AS up, COUNT(*) AS n FROM campaign_truth WHERE campaign_id = {id} AND treated = 1"
        ))
        .await
        .unwrap();
    let red = c360_db::get_i64(&t[0], "red").unwrap();
    let up = c360_db::get_f64(&t[0], "up").unwrap_or(0.0);
    let n_t = c360_db::get_i64(&t[0], "n").unwrap();
    assert_eq!(arm["redemptions"].as_i64().unwrap(), red, "{arm}");
    assert!(arm["redeemed_at_pos"].as_i64().unwrap() > 0);
    assert!(arm["redeemed_in_mini_program"].as_i64().unwrap() > 0);
    assert_eq!(r["unattributed_redemptions"], 0);
    // The incremental revenue per member (CUPED) covers the true causal effect.
    let truth_ate = up / n_t as f64;
    let est = &arm["revenue_per_member_cuped"];
    let ci = est["ci"].as_array().unwrap();
    eprintln!(
        "truth ATE {truth_ate:.1} fen/member; estimate {} {ci:?}",
        est["diff"]
    );
    assert!(ci[0].as_f64().unwrap() <= truth_ate && truth_ate <= ci[1].as_f64().unwrap());
    // CUPED narrows the interval against the raw comparison.
    let raw = &arm["revenue_per_member"]["ci"];
    let w = |c: &Value| c[1].as_f64().unwrap() - c[0].as_f64().unwrap();
    assert!(w(&est["ci"]) <= w(raw), "{} vs {}", est["ci"], raw);
    assert!(arm["guardrails"]["refund_rate"].is_string());

    // Uplift: the model's scores rank the members by their true uplift.
    let scores =
        c360_server::campaign::uplift_scores(&st.snapshot().await.unwrap().sess, &meta, id)
            .await
            .unwrap();
    let mut person_of: HashMap<String, i64> = HashMap::new();
    for x in truth
        .fetch_all("SELECT system, source_id, person_id FROM ids")
        .await
        .unwrap()
    {
        let sys = c360_db::get_text(&x, "system").unwrap();
        person_of.insert(
            format!(
                "{}:{}",
                if sys == "member" { "M" } else { "U" },
                c360_db::get_i64(&x, "source_id").unwrap()
            ),
            c360_db::get_i64(&x, "person_id").unwrap(),
        );
    }
    let mut exp_up: HashMap<i64, f64> = HashMap::new();
    for x in truth
        .fetch_all(&format!(
            "SELECT person_id, expected_uplift_fen FROM campaign_truth WHERE campaign_id = {id}"
        ))
        .await
        .unwrap()
    {
        exp_up.insert(
            c360_db::get_i64(&x, "person_id").unwrap(),
            c360_db::get_f64(&x, "expected_uplift_fen").unwrap(),
        );
    }
    let keys: HashMap<i64, Vec<String>> = c360_server::campaign::members_with_keys(&meta, id)
        .await
        .unwrap()
        .into_iter()
        .map(|(mm, k)| (mm.customer_id, k))
        .collect();
    let (mut ps, mut ts) = (Vec::new(), Vec::new());
    for (cid, sc) in &scores {
        if let Some(p) = keys[cid].iter().find_map(|k| person_of.get(k)) {
            if let Some(u) = exp_up.get(p) {
                ps.push(*sc);
                ts.push(*u);
            }
        }
    }
    let rho = c360_eval::dims::spearman(&ps, &ts);
    eprintln!(
        "uplift: {} members scored, Spearman with the true expected uplift {rho:.3}; qini {}",
        ps.len(),
        r["uplift"]["qini_coefficient"]
    );
    assert!(ps.len() as f64 > 0.9 * (hold + treat) as f64);
    assert!(rho > 0.1, "{rho}");
    truth.close().await;

    // The programme as a whole against the global holdout (5% of all customers, by hash).
    let to = f.sim.cutoff + chrono::Duration::days(21);
    let (s, pg) = call(
        &st,
        "GET",
        &format!("/api/v1/campaigns/program?from={}&to={to}", f.sim.cutoff),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{pg}");
    let share = pg["global_holdout"].as_f64().unwrap() / pg["customers"].as_f64().unwrap();
    assert!((0.03..0.07).contains(&share), "{pg}");
    assert_eq!(pg["srm"]["mismatch"], false, "{pg}");
    assert!(pg["customers_messaged"].as_i64().unwrap() >= treat, "{pg}");
    let (s, _) = call(
        &st,
        "GET",
        "/api/v1/campaigns/program?from=2025-10-01&to=soon",
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Pausing holds the unsent messages; resuming releases them.
    let planned = |st: AppState| async move {
        let (_, v) = call(
            &st,
            "GET",
            &format!("/api/v1/campaigns/{id}/members?limit=5000"),
            an,
            None,
        )
        .await;
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["status"] == "planned")
            .count()
    };
    let before = planned(st.clone()).await;
    assert!(before > 0);
    let (s, _) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id}/status"),
        an,
        Some(json!({"action": "pause"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(planned(st.clone()).await, 0);
    let (s, _) = call(
        &st,
        "POST",
        &format!("/api/v1/campaigns/{id}/status"),
        an,
        Some(json!({"action": "resume"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(planned(st.clone()).await, before);
    // Pause, resume, complete; nothing else.
    for (act, want) in [
        ("pause", StatusCode::OK),
        ("pause", StatusCode::CONFLICT),
        ("resume", StatusCode::OK),
        ("complete", StatusCode::OK),
        ("resume", StatusCode::CONFLICT),
    ] {
        let (s, v) = call(
            &st,
            "POST",
            &format!("/api/v1/campaigns/{id}/status"),
            an,
            Some(json!({"action": act})),
        )
        .await;
        assert_eq!(s, want, "{act}: {v}");
    }

    // A store-level test and a switchback over 21 of those days (no true effect: an A/A test).
    let start = f.sim.cutoff;
    let exp = |design: &str| json!({"name": format!("{design} test"), "design": design, "start": start.to_string(), "end": (start + chrono::Duration::days(20)).to_string(), "hypothesis": "HD03 at 19.9"});
    let (s, p) = call(&st, "POST", "/api/v1/experiments", an, Some(exp("store"))).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert!(p["mde_rel"].as_f64().unwrap() > 0.0);
    let treated = p["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["treated"] == true)
        .count();
    assert!(treated > 10 && treated < 40, "{treated}");
    let eid = p["experiment_id"].as_i64().unwrap();
    let (s, er) = call(
        &st,
        "GET",
        &format!("/api/v1/experiments/{eid}/results"),
        an,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{er}");
    assert_eq!(er["days_observed"], 21);
    assert!(er["result"]["p_value"].as_f64().unwrap() > 0.0);
    let (s, p) = call(
        &st,
        "POST",
        "/api/v1/experiments",
        an,
        Some(exp("switchback")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    for x in p["schedule"].as_array().unwrap() {
        let on = x["treated_days"].as_array().unwrap().len();
        assert!((3..=18).contains(&on), "{x}");
    }
    let mut other = exp("store");
    other["stores"] = json!([f.store, f.store + 1]);
    let (s, _) = call(&st, "POST", "/api/v1/experiments", m, Some(other)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Customer service: open tickets with a diagnosis and a resolution.
    let (s, tk) = call(&st, "GET", "/api/v1/service/tickets?limit=20", an, None).await;
    assert_eq!(s, StatusCode::OK, "{tk}");
    let first = &tk["tickets"][0];
    assert!(
        first["predicted_cause"].is_string()
            && first["resolution"]["compensation_fen"].as_i64().unwrap() > 0,
        "{first}"
    );
    let key = first["ticket_key"].as_str().unwrap();
    let (s, d) = call(
        &st,
        "POST",
        "/api/v1/service/diagnose",
        an,
        Some(json!({"ticket_key": key})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let psum: f64 = d["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["p"].as_f64().unwrap())
        .sum();
    assert!((psum - 1.0).abs() < 1e-9);
    let (s, d) = call(
        &st,
        "POST",
        "/api/v1/service/diagnose",
        an,
        Some(json!({"message": "优惠券用不了，结账没减"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["predicted_cause"], "coupon_failure", "{d}");
    let (s, e) = call(&st, "POST", "/api/v1/service/diagnose", an, Some(json!({}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // The manager sees only their stores' tickets.
    let (_, mt) = call(&st, "GET", "/api/v1/service/tickets?limit=500", m, None).await;
    for x in mt["tickets"].as_array().unwrap() {
        assert_eq!(x["store_id"], f.store, "{x}");
    }
    let foreign = tk["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["store_id"] != f.store)
        .unwrap();
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/service/diagnose",
        m,
        Some(json!({"ticket_key": foreign["ticket_key"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The audit trail: every write and every refusal; only admins read it.
    let (s, _) = call(&st, "GET", "/api/v1/audit", an, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, au) = call(&st, "GET", "/api/v1/audit?limit=1000", a, None).await;
    assert_eq!(s, StatusCode::OK, "{au}");
    let entries = au["entries"].as_array().unwrap();
    let has = |action: &str, actor: &str, outcome: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["actor"] == actor && e["outcome"] == outcome)
    };
    assert!(has("campaign.create", "analyst", "ok"));
    assert!(has("campaign.create", "analyst", "rejected"));
    assert!(has("campaign.create", "manager", "denied"));
    assert!(has("campaign.launch", "analyst", "ok"));
    assert!(has("campaign.launch", "analyst", "rejected"));
    assert!(has("campaign.pause", "analyst", "rejected"));
    assert!(has("experiment.create", "manager", "denied"));
    assert!(has("service.diagnose", "manager", "denied"));
    assert!(has("audit.read", "analyst", "denied"));
    // Sequence numbers are dense and details carry no personal data.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] == w[1] + 1), "{seqs:?}");
    assert!(
        !au.to_string().contains("phone"),
        "personal data in the audit trail"
    );
    meta.close().await;
}
