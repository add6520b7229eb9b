//! The dashboard end to end in headless Debian Chromium (playwright-core): log in, read the
//! overview, open a customer, ask for the AI insight, switch language, use it on a phone-sized
//! screen, go offline and reload (the PWA shows the last data), and a store manager's scope.
//! Needs `/usr/bin/chromium` and `npm ci` in web/ (.ci/run installs both).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let web = root.join("web");
    assert!(
        Path::new("/usr/bin/chromium").exists() && web.join("node_modules/playwright-core").exists(),
        "the browser test needs Debian chromium and web/node_modules: apt-get install chromium && npm --prefix web ci (.ci/run does both)"
    );
    let f = fixture(5_000, 44).await;
    let st = AppState::open(serve_cfg(&f)).await.unwrap();
    let (addr, stop_tx, server) = spawn_server(&st).await;
    let customer = count(&f.wh, &format!("SELECT customer_id FROM v_customer_360 WHERE home_store_id = {} ORDER BY order_count DESC, customer_id LIMIT 1", f.store)).await;
    let customers = count(&f.wh, "SELECT COUNT(*) FROM customer_segmentation").await;
    let shots = std::env::var("C360_E2E_SHOTS")
        .unwrap_or_else(|_| f.wh.join("shots").display().to_string());
    let mut cmd = std::process::Command::new("node");
    cmd.arg(web.join("e2e/dashboard.mjs"))
        .env("C360_URL", format!("http://{addr}/"))
        .env("C360_ADMIN_KEY", &f.admin)
        .env("C360_MANAGER_KEY", &f.manager)
        .env("C360_CUSTOMER", customer.to_string())
        .env("C360_CUSTOMERS", customers.to_string())
        .env("C360_STORE", f.store.to_string())
        .env("C360_SHOTS", &shots);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(text.contains("e2e: all checks passed"));
}
