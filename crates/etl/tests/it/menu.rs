//! Menu engineering on a simulated chain: unit costs arrive through the source contract, the
//! quadrants follow their lines, attach rates match a direct count, and the two launches the
//! simulator makes (a hot dog and a drink, half-way) are found to take their revenue from the
//! rest of the menu — in the simulator a customer's spend is decided before the items, so a new
//! item brings no new money: the true share is 1.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_quadrants_attach_rates_and_launch_cannibalisation() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_cfg(dir.path(), 60_000, 67);
    c360_sim::simulate(&sim).await.unwrap();
    let wh = dir.path().join("wh");
    run(&etl_cfg(&sim, wh.clone())).await;
    let sess = session(&wh).await;
    let first = sess
        .scalar_i64("SELECT CAST(FLOOR((to_unixtime(MIN(order_time)) + 28800) / 86400) AS BIGINT) FROM fact_orders")
        .await
        .unwrap();
    let last = sess
        .scalar_i64("SELECT CAST(FLOOR((to_unixtime(MAX(order_time)) + 28800) / 86400) AS BIGINT) FROM fact_orders")
        .await
        .unwrap();
    let (from, to) = (c360_model::Day(first).date(), c360_model::Day(last).date());
    let m = c360_core::menu::analyse(&sess, from, to, None)
        .await
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&m.launches).unwrap());
    assert_eq!(m.items.len(), c360_sim::catalog::MENU.len());
    let units: i64 = m.items.iter().map(|i| i.units).sum();
    assert_eq!(
        units,
        count(&wh, "SELECT SUM(i.qty) FROM order_items i JOIN orders o ON o.order_id = i.order_id WHERE o.status = 'paid'").await
    );
    let mix: f64 = m.items.iter().map(|i| i.mix).sum();
    assert!((mix - 1.0).abs() < 1e-9);
    let line = m.margin_line_fen.unwrap();
    let mut quadrants = std::collections::HashSet::new();
    for i in &m.items {
        // The cost is the simulator's, through the contract.
        assert_eq!(
            i.cost_fen,
            Some(c360_sim::catalog::unit_cost_fen(&i.sku)),
            "{}",
            i.sku
        );
        let q = i.quadrant.as_deref().unwrap();
        let want = match (i.mix >= m.popularity_line, i.margin_fen.unwrap() >= line) {
            (true, true) => "star",
            (true, false) => "plowhorse",
            (false, true) => "puzzle",
            (false, false) => "dog",
        };
        assert_eq!(q, want, "{i:?}");
        quadrants.insert(q.to_string());
        assert!((0.0..=1.0).contains(&i.attach_rate), "{i:?}");
    }
    assert!(quadrants.len() >= 3, "{quadrants:?}");
    // The attach rate of fries to a hot dog, counted directly.
    let fries = m.items.iter().find(|i| i.sku == "SN01").unwrap();
    let with_dog = "SELECT DISTINCT i.order_id FROM order_items i JOIN orders o ON o.order_id = i.order_id \
                    JOIN products p ON p.product_id = i.product_id WHERE o.status = 'paid' AND p.category = '热狗'";
    let dogs = count(&wh, &format!("SELECT COUNT(*) FROM ({with_dog})")).await as f64;
    let both = count(
        &wh,
        &format!("SELECT COUNT(DISTINCT i.order_id) FROM order_items i JOIN ({with_dog}) d ON d.order_id = i.order_id WHERE i.product_id = {}", fries.product_id),
    )
    .await as f64;
    assert!(
        (fries.attach_rate - both / dogs).abs() < 1e-9,
        "{} vs {}",
        fries.attach_rate,
        both / dogs
    );

    // One store is a part of the chain.
    let store = count(&wh, "SELECT MIN(store_id) FROM orders").await;
    let one = c360_core::menu::analyse(&sess, from, to, Some(&[store]))
        .await
        .unwrap();
    assert!(one.orders > 0 && one.orders < m.orders);

    // The launch: both items (launched the same day) as one, its revenue taken from the rest
    // of the menu — the truth is all of it.
    assert_eq!(m.launches.len(), 1, "{:?}", m.launches);
    let l = &m.launches[0];
    assert_eq!(
        l.skus,
        vec!["HD07".to_string(), "DR06".to_string()],
        "{l:?}"
    );
    assert!(l.new_items_per_order_fen > 0.0, "{l:?}");
    assert!(
        l.cannibalised_low < 1.0 && 1.0 < l.cannibalised_high,
        "{l:?}"
    );
    assert!(l.cannibalised_high - l.cannibalised_low < 1.0, "{l:?}");
    assert!(l.by_category.len() >= 3, "{l:?}");
}
