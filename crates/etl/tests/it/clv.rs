//! Lifetime value against the simulator's ground truth: BG/NBD recovers the true population
//! parameters from true histories, and predictions made at the cut-off match what customers
//! really did in the following 365 days.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clv_recovers_truth_and_predicts_the_holdout_year() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 60_000, 31);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    run(&etl_cfg(&sim, wh.clone())).await;
    let e = c360_eval::clv::evaluate_clv(&wh, &sim.truth_url)
        .await
        .unwrap();
    let (t, f) = (&e.truth, &e.fit_on_persons);
    let rel = |got: f64, want: f64| (got - want).abs() / want;
    assert!(rel(f.r, t.r) < 0.2, "r {} vs {}", f.r, t.r);
    assert!(
        rel(f.alpha, t.alpha) < 0.2,
        "alpha {} vs {}",
        f.alpha,
        t.alpha
    );
    assert!(
        (f.a / (f.a + f.b) - t.a / (t.a + t.b)).abs() < 0.04,
        "E[p] {:?} vs {:?}",
        f,
        t
    );
    // Gamma-Gamma recovers the simulator's spend process from the clean repeat buyers.
    let gg = &e.gamma_gamma_on_clean;
    assert!(
        e.gamma_gamma_customers > 2000,
        "{}",
        e.gamma_gamma_customers
    );
    let mean = gg.p * gg.v / (gg.q - 1.0);
    let want = c360_eval::clv::gamma_gamma_truth_mean(t);
    assert!(
        rel(mean, want) < 0.05,
        "mean spend {mean} vs {want} ({gg:?})"
    );
    assert!(rel(gg.p, t.p) < 0.15, "GG p {gg:?} vs {t:?}");
    assert!(rel(gg.q, t.q) < 0.25, "GG q {gg:?} vs {t:?}");
    assert!(rel(gg.v, t.gamma) < 0.3, "GG gamma {gg:?} vs {t:?}");
    // Holidays: per customer, the shrunk lift ranks people by their true holiday appetite.
    let h = c360_eval::clv::evaluate_holiday(&wh, &sim.truth_url, 10)
        .await
        .unwrap();
    assert!(h.customers > 400, "{h:?}");
    assert!(rel(h.pooled_lift, h.true_mean_lift) < 0.15, "{h:?}");
    assert!(h.spearman > 0.1, "{h:?}");
    assert!(
        h.true_mult_top_quartile > h.true_mult_bottom_quartile * 1.1,
        "{h:?}"
    );
    // Holdout: every customer as the warehouse sees it (a person split over k customers counts
    // 1/k to each, merged persons add up; anonymous purchases are nobody's), and the clean
    // customers (one person each) beside it.
    eprintln!("{:#?}\n{:#?}", e.holdout, e.holdout_clean);
    for (h, what) in [(&e.holdout, "all"), (&e.holdout_clean, "clean")] {
        assert!(h.customers > 1000, "{what}: {h:?}");
        let ratio = h.predicted_purchases / h.actual_purchases;
        assert!(
            (0.7..1.4).contains(&ratio),
            "{what}: predicted/actual {ratio} ({h:?})"
        );
        assert!(h.pearson > 0.4, "{what}: pearson {}", h.pearson);
        assert!(h.auc_alive > 0.65, "{what}: auc {}", h.auc_alive);
        // The 12-month spend forecast behind value growth, against real spend.
        let spend_ratio = h.predicted_spend_fen / h.actual_spend_fen;
        assert!(
            (0.6..1.4).contains(&spend_ratio),
            "{what}: spend predicted/actual {spend_ratio}"
        );
        assert!(
            h.spend_pearson > 0.4,
            "{what}: spend pearson {}",
            h.spend_pearson
        );
    }
    assert!(e.holdout.customers > e.holdout_clean.customers);
    // Every customer got predictions.
    let n = count(
        &wh,
        "SELECT COUNT(DISTINCT customer_id) FROM customer_predictions",
    )
    .await;
    assert_eq!(
        n,
        count(&wh, "SELECT COUNT(*) FROM customer_segmentation").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_model_beats_chance_is_calibrated_and_profiles_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 40_000, 32);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    run(&etl_cfg(&sim, wh.clone())).await;
    let e = c360_eval::clv::evaluate_churn(&wh, &sim.truth_url)
        .await
        .unwrap();
    eprintln!("{e:#?}");
    for (h, what) in [(&e.all, "all"), (&e.clean, "clean")] {
        assert!(h.customers > 1000, "{what}: {h:?}");
        assert!(h.gbt.auc > 0.7, "{what}: {h:?}");
        assert!(h.gbt.lift_top10 > 1.2, "{what}: {h:?}");
        // Calibrated on a later period than it was trained on: deciles within 0.12 of observed.
        for (p, o, _) in &h.gbt.reliability {
            assert!((p - o).abs() < 0.12, "{what}: {h:?}");
        }
        // On one-time buyers BG/NBD says nothing (P(alive) = 1); the trees still rank them.
        assert!(h.gbt_auc_one_time > 0.6, "{what}: {h:?}");
        assert!(
            h.gbt_auc_repeat > 0.7 && h.btyd_auc_repeat > 0.7,
            "{what}: {h:?}"
        );
    }
    assert!(e.all.customers > e.clean.customers);

    // The predicted next visit beats both fixed rules on the truth's real next orders.
    let v = c360_eval::clv::evaluate_next_visit(&wh, &sim.truth_url)
        .await
        .unwrap();
    eprintln!("{v:#?}");
    assert!(v.customers > 500, "{v:?}");
    assert!(
        v.mae_model < v.mae_rule_30d && v.mae_model < v.mae_chain_median,
        "{v:?}"
    );
    assert!(v.overdue_auc > 0.6, "{v:?}");
    let stored = count(
        &wh,
        "SELECT COUNT(*) FROM customer_predictions WHERE metric = 'next_order_days'",
    )
    .await;
    assert!(stored > 0);

    // Every customer has tier, class, lifecycle, a cluster and a churn probability.
    let s = count(
        &wh,
        "SELECT COUNT(*) FROM v_customer_360 WHERE order_count > 0 AND \
         (tier IS NULL OR rfm_class IS NULL OR lifecycle IS NULL OR cluster IS NULL OR p_churn_90d IS NULL OR clv_12m_fen IS NULL)",
    )
    .await;
    assert_eq!(s, 0);
    let stages = count(
        &wh,
        "SELECT COUNT(DISTINCT lifecycle) FROM customer_segmentation",
    )
    .await;
    assert!(stages >= 5, "lifecycle stages {stages}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_rescores_a_customer_from_stored_models() {
    use c360_core::profile::{apply_order, live_profile, live_score};
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 8_000, 33);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    run(&etl_cfg(&sim, wh.clone())).await;
    let s = session(&wh).await;
    let models: c360_core::clv::FittedModels =
        serde_json::from_value(s.manifest.notes["models"].clone()).unwrap();
    let rfm: c360_analytics::rfm::RfmModel =
        serde_json::from_value(s.manifest.notes["rfm"].clone()).unwrap();
    let group: c360_core::profile::RfmGroup =
        serde_json::from_value(s.manifest.notes["rfm_group"].clone()).unwrap();
    // A repeat buyer who has not bought for a while.
    let id = count(&wh, "SELECT customer_id FROM customer_segmentation WHERE frequency >= 3 AND recency_days > 120 ORDER BY customer_id LIMIT 1").await;
    let before = live_profile(&s, id).await.unwrap().unwrap();
    let old = live_score(&before, Some(&models), &rfm, group);
    // The stored state reproduces what the refresh wrote.
    let tier = s
        .query(&format!(
            "SELECT tier FROM customer_segmentation WHERE customer_id = {id}"
        ))
        .await
        .unwrap();
    assert_eq!(
        c360_warehouse::manifest::str_col(&tier[0], "tier").value(0),
        old.rfm.tier.as_str()
    );
    let after = apply_order(&before, before.as_of, 3_000.0);
    let new = live_score(&after, Some(&models), &rfm, group);
    assert_eq!(after.features.orders, before.features.orders + 1.0);
    assert_eq!(after.features.recency, 1.0);
    assert_eq!(after.summary.x, before.summary.x + 1.0);
    assert_eq!(new.rfm.r, 5, "bought today: top recency score");
    let (p0, p1) = (old.prediction.unwrap(), new.prediction.unwrap());
    assert!(p1.p_alive > p0.p_alive);
    assert!(p1.expected_purchases > p0.expected_purchases);
    assert!(p1.clv_fen > p0.clv_fen);
    // Exactly what a batch prediction on the new summary gives (same parameters, closed form).
    let batch = c360_core::clv::predict(&models, &after.summary, after.mean_value_fen);
    assert_eq!(batch.clv_fen, p1.clv_fen);
}
