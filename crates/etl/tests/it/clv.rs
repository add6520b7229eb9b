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
    let e = c360_etl::evaluate::evaluate_clv(&wh, &sim.truth_url)
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
    // Holdout: customers as the warehouse sees them (split and anonymous purchases included).
    assert!(e.holdout_customers > 1000);
    let ratio = e.predicted_purchases / e.actual_purchases;
    assert!(
        (0.7..1.4).contains(&ratio),
        "predicted/actual {ratio} ({e:?})"
    );
    assert!(e.pearson > 0.4, "pearson {}", e.pearson);
    assert!(e.auc_alive > 0.65, "auc {}", e.auc_alive);
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
