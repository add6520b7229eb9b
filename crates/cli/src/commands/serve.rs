//! `c360 serve`: the REST API, WebSocket push and dashboard.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::Settings;

pub async fn run(s: &Settings, warehouse: PathBuf, metastore: String) -> Result<()> {
    let cfg = c360_server::ServeConfig {
        metastore,
        warehouse,
        poll: std::time::Duration::from_secs_f64(s.poll_secs.max(0.1)),
        llm: s.llm(),
        limits: c360_server::Limits {
            requests_per_sec: s.rate_limit.max(0.0),
            burst: s.rate_burst.max(1.0),
            llm_per_min: s.llm_rate_per_min.max(0.0),
            index_slice_customers: super::etl::slice_customers()?,
            ..Default::default()
        },
    };
    let state = c360_server::AppState::open(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("starting the server: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&s.addr)
        .await
        .with_context(|| format!("binding {}", s.addr))?;
    let addr = listener.local_addr()?;
    println!("c360 serving on http://{addr}/  (API docs: http://{addr}/swagger-ui/)  Ctrl-C stops");
    c360_server::run(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
