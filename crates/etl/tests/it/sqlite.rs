//! The embedded default: SQLite sources, SQLite metastore.

use c360_db::Db;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_everything_or_quarantines_it_and_resolves_identity() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 8_000, 11);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    let r = run(&cfg).await;
    assert_eq!(r.steps.len(), 10);

    // Nothing lost: every source order row is loaded or quarantined with a reason.
    let pos = Db::connect(&sim.pos_url).await.unwrap();
    let wx = Db::connect(&sim.wx_url).await.unwrap();
    let n_pos = c360_db::get_i64(
        &pos.fetch_all("SELECT COUNT(*) AS n FROM orders")
            .await
            .unwrap()[0],
        "n",
    )
    .unwrap();
    let n_wx = c360_db::get_i64(
        &wx.fetch_all("SELECT COUNT(*) AS n FROM wx_orders")
            .await
            .unwrap()[0],
        "n",
    )
    .unwrap();
    let loaded = count(&wh, "SELECT COUNT(*) FROM fact_orders").await;
    let dropped = count(
        &wh,
        "SELECT COUNT(DISTINCT source_table || row_id) FROM quarantine \
         WHERE source_table IN ('orders', 'wx_orders') AND reason NOT LIKE '%kept%'",
    )
    .await;
    assert!(
        dropped > 0,
        "the simulator makes dirty orders; some must be quarantined"
    );
    assert_eq!(
        loaded + dropped,
        n_pos + n_wx,
        "every order is loaded or quarantined"
    );
    let n_items = c360_db::get_i64(
        &pos.fetch_all("SELECT COUNT(*) AS n FROM order_items")
            .await
            .unwrap()[0],
        "n",
    )
    .unwrap()
        + c360_db::get_i64(
            &wx.fetch_all("SELECT COUNT(*) AS n FROM wx_order_items")
                .await
                .unwrap()[0],
            "n",
        )
        .unwrap();
    let items = count(&wh, "SELECT COUNT(*) FROM fact_order_items").await;
    let q_items = count(&wh, "SELECT COUNT(DISTINCT source_table || row_id) FROM quarantine WHERE source_table IN ('order_items', 'wx_order_items')").await;
    assert_eq!(items + q_items, n_items);

    // Quarantine rows name table, row, field and reason.
    let s = session(&wh).await;
    let b = s
        .query("SELECT reason FROM quarantine WHERE source_table = 'order_items' AND field = 'product_id' LIMIT 1")
        .await
        .unwrap();
    let reason = c360_warehouse::manifest::str_col(&b[0], "reason")
        .value(0)
        .to_string();
    assert!(
        reason.contains("unknown product") && reason.contains("999"),
        "{reason}"
    );
    assert!(
        count(
            &wh,
            "SELECT COUNT(*) FROM quarantine WHERE reason LIKE 'test order%'"
        )
        .await
            > 0
    );

    // Quality report: no duplicate keys, references resolve.
    for (t, c) in [
        ("fact_orders", "duplicate_keys"),
        ("fact_orders", "duplicate_order_no"),
        ("fact_order_items", "duplicate_keys"),
    ] {
        let v = count(&wh, &format!("SELECT CAST(value AS BIGINT) FROM dq_report WHERE table_name = '{t}' AND \"check\" = '{c}'")).await;
        assert_eq!(v, 0, "{t}.{c}");
    }
    let ri = count(
        &wh,
        "SELECT CAST(value * 1000 AS BIGINT) FROM dq_report WHERE \"check\" = 'ri_store'",
    )
    .await;
    assert_eq!(ri, 1000);

    // Identity against ground truth.
    let e = c360_eval::evaluate_identity(&cfg.metastore(), &sim.truth_url)
        .await
        .unwrap();
    assert!(e.precision >= 0.99, "precision {}", e.precision);
    assert!(e.recall >= 0.5, "recall {}", e.recall);
    assert!(e.customers < e.nodes, "some ids must merge");

    // Payment accounts: anonymous till orders tied to their buyer, scored against the truth;
    // the capture rate counts them, the member/user completeness does not; no raw account id
    // reaches the warehouse.
    let p = c360_eval::evaluate_payer_attribution(&wh, &sim.truth_url)
        .await
        .unwrap();
    assert!(p.attributed > 0, "{p:?}");
    // An account is credited with what it paid for: the simulator's companions pay 6% of the
    // till payments, and their orders go to the companion (about 14% of the attributed ones,
    // since a companion with a mini-program account is known more often than a walk-in buyer).
    assert!(p.precision >= 0.8, "payer attribution precision {p:?}");
    let rule_rows = count(
        &wh,
        "SELECT COUNT(*) FROM customer_keys WHERE rule = 'payer_id'",
    )
    .await;
    assert!(rule_rows > 0);
    let dq = |c: &str| {
        format!("SELECT CAST(value * 1000000 AS BIGINT) FROM dq_report WHERE table_name = 'fact_orders' AND \"check\" = '{c}'")
    };
    let capture = count(&wh, &dq("capture_rate")).await;
    let named = count(&wh, &dq("completeness_customer")).await;
    assert!(
        capture > named,
        "capture {capture} vs member/user orders {named}"
    );
    let raw = count(&wh, "SELECT COUNT(*) FROM fact_orders WHERE customer_key LIKE 'PAY:oXy%' OR customer_key LIKE 'PAY:2088%'").await;
    assert_eq!(raw, 0, "payment accounts are keyed-hashed");

    // Personal data: only masked phones leave the identity table.
    assert_eq!(count(&wh, "SELECT COUNT(*) FROM customers WHERE phone_masked IS NOT NULL AND phone_masked NOT LIKE '%****%'").await, 0);
    assert_eq!(
        count(
            &wh,
            "SELECT COUNT(*) FROM quarantine WHERE regexp_like(value_masked, '[0-9]{8}')"
        )
        .await,
        0
    );

    // The seed's tables and the 360 view answer SQL.
    for t in [
        "customers",
        "orders",
        "order_items",
        "stores",
        "products",
        "customer_behavior_tracks",
        "customer_segmentation",
        "customer_predictions",
        "customer_emotion",
    ] {
        s.query(&format!("SELECT * FROM {t} LIMIT 1"))
            .await
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    let n360 = count(&wh, "SELECT COUNT(*) FROM v_customer_360").await;
    assert_eq!(n360 as u64, r.customers);
    let seg = count(
        &wh,
        "SELECT COUNT(DISTINCT rfm_class) FROM customer_segmentation",
    )
    .await;
    assert_eq!(seg, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_loads_nothing_twice_and_failed_runs_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 5_000, 12);
    c360_sim::simulate(&sim).await.unwrap();

    let clean = dir.path().join("clean");
    run(&etl_cfg(&sim, clean.clone())).await;
    let want = fingerprint(&clean).await;
    run(&etl_cfg(&sim, clean.clone())).await;
    assert_eq!(
        fingerprint(&clean).await,
        want,
        "a rerun must not change anything"
    );

    // Fail after each step in turn, then rerun: the result is the same as a clean run.
    let wh = dir.path().join("failing");
    for step in ["identity", "orders", "reviews", "quality", "refresh_commit"] {
        let mut cfg = etl_cfg(&sim, wh.clone());
        cfg.fail_at = Some(step.into());
        let err = c360_etl::run(&cfg).await.expect_err("fail point");
        assert!(err.to_string().contains(step));
        let committed = count(&wh, "SELECT COUNT(*) FROM fact_orders").await;
        if step == "refresh_commit" {
            // That failure came after the load commit: all orders are in, segmentation is not.
            assert_eq!(committed, want[0]);
            assert_eq!(
                count(&wh, "SELECT COUNT(*) FROM customer_segmentation").await,
                0
            );
        } else {
            // No commit yet: the warehouse is readable and empty, uncommitted files invisible.
            assert_eq!(committed, 0, "after failing at {step}");
        }
    }
    run(&etl_cfg(&sim, wh.clone())).await;
    assert_eq!(fingerprint(&wh).await, want);
}

/// Moves rows at or after `cut` out of a source table into a holding table, or back.
async fn hold(db: &Db, table: &str, col: &str, cut: &str, back: bool) {
    if back {
        db.exec(&format!("INSERT INTO {table} SELECT * FROM held_{table}"))
            .await
            .unwrap();
        db.exec(&format!("DROP TABLE held_{table}")).await.unwrap();
    } else {
        db.exec(&format!(
            "CREATE TABLE held_{table} AS SELECT * FROM {table} WHERE {col} >= {cut}"
        ))
        .await
        .unwrap();
        db.exec(&format!("DELETE FROM {table} WHERE {col} >= {cut}"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_loads_equal_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 6_000, 13);
    c360_sim::simulate(&sim).await.unwrap();
    let one = dir.path().join("one");
    run(&etl_cfg(&sim, one.clone())).await;
    let want = fingerprint(&one).await;

    let pos = Db::connect(&sim.pos_url).await.unwrap();
    let wx = Db::connect(&sim.wx_url).await.unwrap();
    // Mutable tables are read by `updated_at`; append-only ones by their increasing id.
    let cut = "'2025-03-01 00:00:00'";
    let pos_t = [
        ("orders", "updated_at"),
        ("order_items", "updated_at"),
        ("members", "updated_at"),
    ];
    let wx_t = [
        ("wx_orders", "updated_at"),
        ("wx_order_items", "updated_at"),
        ("wx_users", "updated_at"),
        ("wx_events", "event_id"),
        ("wx_reviews", "review_id"),
        ("wx_shares", "share_id"),
        ("wx_order_groups", "row_id"),
        ("wx_paid_by", "row_id"),
    ];
    for (t, c) in pos_t {
        hold(&pos, t, c, cut, false).await;
    }
    for (t, c) in wx_t {
        let cut = if c.ends_with("_id") {
            format!("(SELECT MAX({c}) * 2 / 3 FROM {t})")
        } else {
            cut.to_string()
        };
        hold(&wx, t, c, &cut, false).await;
    }
    let inc = dir.path().join("inc");
    let r1 = run(&etl_cfg(&sim, inc.clone())).await;
    let first = count(&inc, "SELECT COUNT(*) FROM fact_orders").await;
    assert!(first > 0 && first < want[0]);
    for (t, c) in pos_t {
        hold(&pos, t, c, cut, true).await;
    }
    for (t, c) in wx_t {
        hold(&wx, t, c, "", true).await;
    }
    let r2 = run(&etl_cfg(&sim, inc.clone())).await;
    let orders2 = r2.steps.iter().find(|s| s.name == "orders").unwrap();
    let orders1 = r1.steps.iter().find(|s| s.name == "orders").unwrap();
    assert!(
        orders2.extracted < orders1.extracted + orders2.loaded,
        "second run only reads new rows"
    );
    assert_eq!(fingerprint(&inc).await, want, "incremental == one shot");
}

/// The quality step's checks under a budget far below what they would hold: they spill to disk
/// (sorts, grouped aggregates, sort-merge joins) and score exactly what they score unbounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_checks_spill_under_a_small_budget_and_score_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 6_000, 17);
    c360_sim::simulate(&sim).await.unwrap();
    let report = |wh: PathBuf| async move {
        let s = session(&wh).await;
        let b = s
            .query("SELECT table_name, \"check\", ROUND(value, 9) AS v FROM dq_report WHERE table_name NOT LIKE 'run:%' ORDER BY 1, 2")
            .await
            .unwrap();
        c360_warehouse::format_batches(&b)
    };
    let wide = dir.path().join("wide");
    run(&etl_cfg(&sim, wide.clone())).await;
    let narrow = dir.path().join("narrow");
    run(&EtlConfig {
        quality_memory: 1 << 20,
        ..etl_cfg(&sim, narrow.clone())
    })
    .await;
    let want = report(wide.clone()).await;
    assert!(want.contains("duplicate_keys") && want.contains("orders_without_items"));
    assert_eq!(report(narrow).await, want);

    // The reference checks are grouped aggregates over both tables; they score what the joins
    // they replaced score (written here as the joins).
    let joins = [
        ("fact_orders", "ri_store", "SELECT AVG(CASE WHEN s.store_id IS NULL THEN 0.0 ELSE 1.0 END) FROM fact_orders o LEFT JOIN stores s ON o.store_id = s.store_id"),
        ("fact_orders", "ri_customer", "SELECT AVG(CASE WHEN o.customer_key IS NULL OR k.source_key IS NOT NULL THEN 1.0 ELSE 0.0 END) FROM fact_orders o LEFT JOIN customer_keys k ON o.customer_key = k.source_key WHERE o.customer_key IS NULL OR o.customer_key NOT LIKE 'PAY:%'"),
        ("fact_orders", "validity_amounts", "SELECT AVG(CASE WHEN o.total_fen + o.discount_fen = i.s THEN 1.0 ELSE 0.0 END) FROM fact_orders o JOIN (SELECT order_key, SUM(amount_fen) AS s FROM fact_order_items GROUP BY order_key) i ON o.order_key = i.order_key"),
        ("fact_orders", "orders_without_items", "SELECT CAST(COUNT(*) AS DOUBLE) FROM fact_orders o LEFT JOIN (SELECT DISTINCT order_key FROM fact_order_items) i ON o.order_key = i.order_key WHERE i.order_key IS NULL"),
        ("fact_order_items", "ri_order", "SELECT AVG(CASE WHEN o.order_key IS NULL THEN 0.0 ELSE 1.0 END) FROM fact_order_items i LEFT JOIN fact_orders o ON i.order_key = o.order_key"),
        ("fact_order_items", "ri_product", "SELECT AVG(CASE WHEN p.product_id IS NULL THEN 0.0 ELSE 1.0 END) FROM fact_order_items i LEFT JOIN products p ON i.product_id = p.product_id"),
        ("customer_behavior_tracks_raw", "ri_customer", "SELECT AVG(CASE WHEN k.source_key IS NULL THEN 0.0 ELSE 1.0 END) FROM customer_behavior_tracks_raw b LEFT JOIN customer_keys k ON b.customer_key = k.source_key"),
        ("customer_emotion_raw", "ri_customer", "SELECT AVG(CASE WHEN k.source_key IS NULL THEN 0.0 ELSE 1.0 END) FROM customer_emotion_raw e LEFT JOIN customer_keys k ON e.customer_key = k.source_key"),
    ];
    let s = session(&wide).await;
    let one = |b: Vec<c360_warehouse::arrow::record_batch::RecordBatch>| {
        use c360_warehouse::arrow::array::{Array, AsArray};
        use c360_warehouse::arrow::datatypes::{DataType, Float64Type};
        let a = c360_warehouse::arrow::compute::cast(b[0].column(0), &DataType::Float64).unwrap();
        let a = a.as_primitive::<Float64Type>();
        if a.is_null(0) {
            0.0
        } else {
            a.value(0)
        }
    };
    let mut partial = 0;
    for (table, check, sql) in joins {
        let got = one(s
            .query(&format!(
                "SELECT value FROM dq_report WHERE table_name = '{table}' AND \"check\" = '{check}'"
            ))
            .await
            .unwrap());
        let join = one(s.query(sql).await.unwrap());
        assert!(
            (got - join).abs() < 1e-12,
            "{table}.{check}: {got} vs the join's {join}"
        );
        partial += usize::from(join > 0.0 && (join < 1.0 || check == "orders_without_items"));
    }
    assert!(
        partial >= 2,
        "the simulated sources leave some references unresolved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmerge_is_journaled_and_reversible() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 4_000, 14);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let s = session(&wh).await;
    let b = s
        .query("SELECT source_key, customer_id FROM customer_keys WHERE rule <> 'self' AND source_key LIKE 'U:%' ORDER BY source_key LIMIT 1")
        .await
        .unwrap();
    let key = c360_warehouse::manifest::str_col(&b[0], "source_key")
        .value(0)
        .to_string();
    let cid_of = |wh: std::path::PathBuf, key: String| async move {
        count(
            &wh,
            &format!("SELECT customer_id FROM customer_keys WHERE source_key = '{key}'"),
        )
        .await
    };
    let before = cid_of(wh.clone(), key.clone()).await;
    let customers_before = count(&wh, "SELECT COUNT(*) FROM customers").await;

    c360_etl::identity::unmerge(&cfg.metastore(), &key, "customer asked")
        .await
        .unwrap();
    run(&cfg).await;
    let after = cid_of(wh.clone(), key.clone()).await;
    assert_ne!(before, after, "unmerged key gets its own customer");
    assert_eq!(
        count(&wh, "SELECT COUNT(*) FROM customers").await,
        customers_before + 1
    );

    c360_etl::identity::remerge(&cfg.metastore(), &key)
        .await
        .unwrap();
    run(&cfg).await;
    assert_eq!(
        cid_of(wh.clone(), key.clone()).await,
        before,
        "remerge restores the original customer id"
    );
    let meta = Db::connect(&cfg.metastore()).await.unwrap();
    let j = meta
        .fetch_all(&format!(
            "SELECT action FROM identity_journal WHERE source_key = '{key}' ORDER BY seq"
        ))
        .await
        .unwrap();
    let actions: Vec<String> = j
        .iter()
        .map(|r| c360_db::get_text(r, "action").unwrap())
        .collect();
    assert_eq!(actions, ["assign", "move", "move"]);
}

/// Every (source key, customer) pair of the identity graph and of the warehouse's
/// `customer_keys`.
async fn graph_and_warehouse(
    cfg: &c360_etl::EtlConfig,
) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let meta = Db::connect(&cfg.metastore()).await.unwrap();
    let graph = meta
        .fetch_all(
            "SELECT source_key, customer_id FROM identity_nodes WHERE customer_id IS NOT NULL ORDER BY source_key",
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                c360_db::get_text(r, "source_key").unwrap(),
                c360_db::get_i64(r, "customer_id").unwrap(),
            )
        })
        .collect();
    meta.close().await;
    let mut wh = Vec::new();
    for b in session(&cfg.warehouse)
        .await
        // (Payment accounts are keys of a customer, not nodes of the graph.)
        .query("SELECT source_key, customer_id FROM customer_keys WHERE source_key NOT LIKE 'PAY:%' ORDER BY source_key")
        .await
        .unwrap()
    {
        let k = c360_warehouse::manifest::str_col(&b, "source_key");
        let c = b
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            wh.push((k.value(i).to_string(), c.value(i)));
        }
    }
    (graph, wh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_graph_and_warehouse_agree_whenever_a_run_stops() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 4_000, 15);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    let cfg = etl_cfg(&sim, wh.clone());
    run(&cfg).await;
    let (graph0, wh0) = graph_and_warehouse(&cfg).await;
    assert!(!graph0.is_empty());
    assert_eq!(graph0, wh0, "a clean run leaves them equal");
    // A merged mini-program key, cut loose: the next run moves it to a customer of its own.
    let key = graph0
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| {
            k.starts_with("U:") && {
                let c = graph0.iter().find(|(x, _)| x == k).unwrap().1;
                graph0.iter().filter(|(_, y)| *y == c).count() > 1
            }
        })
        .expect("a merged key");
    c360_etl::identity::unmerge(&cfg.metastore(), &key, "customer asked")
        .await
        .unwrap();
    let journal = |cfg: c360_etl::EtlConfig, key: String| async move {
        let meta = Db::connect(&cfg.metastore()).await.unwrap();
        let rows = meta
            .fetch(
                "SELECT action, run_id FROM identity_journal WHERE source_key = ? ORDER BY seq",
                &[key.into()],
            )
            .await
            .unwrap();
        meta.close().await;
        rows.iter()
            .map(|r| {
                (
                    c360_db::get_text(r, "action").unwrap(),
                    c360_db::get_i64(r, "run_id").unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = journal(cfg.clone(), key.clone()).await;
    assert_eq!(before.len(), 1, "{before:?}");

    // Stopped after identity resolution, before the warehouse commit: the graph has not moved.
    let mut failing = cfg.clone();
    failing.fail_at = Some("orders".into());
    c360_etl::run(&failing).await.expect_err("fail point");
    assert_eq!(
        graph_and_warehouse(&cfg).await,
        (graph0.clone(), wh0.clone())
    );
    assert_eq!(journal(cfg.clone(), key.clone()).await, before);

    // Stopped right after the warehouse commit, before the changes were applied: whoever opens
    // the pair next (a server reloading its snapshot does exactly this) applies them, once.
    failing.fail_at = Some("identity_apply".into());
    c360_etl::run(&failing).await.expect_err("fail point");
    let (graph, wh1) = graph_and_warehouse(&cfg).await;
    assert_ne!(wh1, wh0, "the warehouse committed the move");
    assert_eq!(graph, graph0, "the graph has not applied it yet");
    let meta = c360_metastore::Metastore::open(&cfg.metastore())
        .await
        .unwrap();
    let current = c360_warehouse::Warehouse::open(&wh)
        .unwrap()
        .current()
        .unwrap();
    let committed = c360_metastore::committed_identity_run(&current.watermarks);
    let settled = meta.settle_identity(committed, false).await.unwrap();
    assert_eq!(settled.applied.len(), 1, "{settled:?}");
    assert!(settled.discarded.is_empty(), "{settled:?}");
    assert_eq!(
        meta.settle_identity(committed, false).await.unwrap(),
        Default::default(),
        "applied exactly once"
    );
    meta.db.close().await;
    let (graph, wh2) = graph_and_warehouse(&cfg).await;
    assert_eq!(graph, wh2);
    let after = journal(cfg.clone(), key.clone()).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[1].0, "move");
    assert_eq!(
        Some(after[1].1),
        committed,
        "journaled under the run that made it"
    );

    // The next run finds nothing left to settle and nothing to change.
    run(&cfg).await;
    assert_eq!(graph_and_warehouse(&cfg).await, (wh2.clone(), wh2));
    assert_eq!(journal(cfg.clone(), key.clone()).await, after);
}
