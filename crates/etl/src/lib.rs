//! The ten-step ETL that merges the POS (`cyrg2025`) and the mini-program (`cyrgweixin`) into
//! the `hotdog2030` warehouse, resolving one customer across both.
//!
//! Steps: 1 dimensions, 2 products, 3 POS members, 4 mini-program users, 5 orders and items,
//! 6 identity resolution (after the orders, whose payment accounts are evidence), 7 behaviour events, 8 reviews, shares, ties and service tickets, 9 data-quality report,
//! 10 analytics refresh. Facts are extracted incrementally by watermark and merged by key, and
//! steps 1–9 publish one atomic warehouse commit that carries the new watermarks, so a rerun
//! loads nothing twice and a run killed midway loses nothing. Bad rows are quarantined with
//! table, row, field and reason — never dropped silently.
//!
//! It is not the analytics: step 10 writes what `c360-core` and `c360-analytics` compute, and
//! nothing here scores itself against the simulator's truth (that is `c360-eval`).

mod config;
pub mod contract;
pub mod enrich;
mod error;
mod extract;
pub mod identity;
pub mod privacy;
mod quality;
pub mod refresh;
mod report;
pub mod rows;
pub mod source;
mod spool;

pub use config::EtlConfig;
pub use error::{EtlError, Result};
pub use quality::MEMORY as QUALITY_MEMORY;
pub use report::{EtlReport, StepReport};

use std::time::Instant;

use c360_metastore::Metastore;
use c360_warehouse::{Session, Warehouse, WriterLock};
use indicatif::{ProgressBar, ProgressStyle};

pub const STEP_NAMES: [&str; 10] = [
    "dimensions",
    "products",
    "pos_members",
    "wx_users",
    "orders",
    "identity",
    "behavior",
    "reviews",
    "quality",
    "refresh",
];

pub(crate) struct Ui {
    on: bool,
}

impl Ui {
    pub fn step(&self, n: usize) -> ProgressBar {
        let pb = if self.on {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} step {prefix:>2}/10 {msg} {pos} rows {per_sec}",
            )
            .expect("a fixed, valid template"),
        );
        pb.set_prefix(n.to_string());
        pb.set_message(STEP_NAMES[n - 1]);
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }
}

/// Runs all ten steps once.
pub async fn run(cfg: &EtlConfig) -> Result<EtlReport> {
    let wh = Warehouse::open(&cfg.warehouse)?;
    // One writer for the whole run, load and refresh: no other run commits in between.
    let lock = wh.lock()?;
    let meta = Metastore::open(&cfg.metastore()).await?;
    // A run killed after its warehouse commit left its identity changes staged: apply them; one
    // killed before it left changes no commit carries: drop them (we hold the writer lock).
    let settled = meta
        .settle_identity(
            c360_metastore::committed_identity_run(&wh.current()?.watermarks),
            true,
        )
        .await?;
    if settled != Default::default() {
        tracing::info!(applied = ?settled.applied, discarded = ?settled.discarded, "identity graph settled with the warehouse");
    }
    let salt = meta.pii_key(cfg.salt.as_ref()).await?;
    let mut src = source::Sources::open(cfg.resolved()?).await?;
    src.slice_keys = cfg.source_slice;
    src.erased = c360_core::privacy::erased_keys(&meta.db).await?;
    let run_id = meta.start_run().await?;
    let ui = Ui { on: cfg.progress };
    tracing::info!(run_id, entities = src.resolved.plans.len(), absent = ?src.resolved.absent, "etl start");

    let result = run_steps(cfg, &salt, &wh, &lock, &meta, &src, run_id, &ui).await;
    match &result {
        Ok(r) => {
            let stats = serde_json::to_string(r).unwrap_or_default();
            meta.finish_run(run_id, "ok", r.manifest_version, &stats)
                .await?;
        }
        Err(e) => {
            let _ = meta.finish_run(run_id, "failed", 0, &e.to_string()).await;
        }
    }
    src.close().await;
    meta.db.close().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_steps(
    cfg: &EtlConfig,
    salt: &c360_model::pii::PiiKey,
    wh: &Warehouse,
    lock: &WriterLock,
    meta: &Metastore,
    src: &source::Sources,
    run_id: i64,
    ui: &Ui,
) -> Result<EtlReport> {
    let mut txn = wh.begin_locked(lock, run_id)?;
    txn.abort_before_publish = cfg.fail_at.as_deref() == Some("commit");
    let mut report = EtlReport {
        run_id,
        ..Default::default()
    };
    let mut q = extract::Quarantine::new(run_id);
    let mut ctx = extract::Ctx::default();
    let rss = report::RssPeak::start();

    macro_rules! step {
        ($n:expr, $pb:ident, $call:expr) => {{
            let t = Instant::now();
            if let Some(r) = &rss {
                r.take_mib();
            }
            let $pb = ui.step($n);
            let before = q.len();
            let (extracted, loaded) = $call.await?;
            let r = StepReport {
                step: $n,
                name: STEP_NAMES[$n - 1],
                extracted,
                loaded,
                quarantined: (q.len() - before) as u64,
                millis: t.elapsed().as_millis(),
                peak_mib: rss.as_ref().map_or(0, |r| r.take_mib()),
            };
            $pb.finish_and_clear();
            tracing::info!(
                step = r.step,
                name = r.name,
                extracted,
                loaded,
                quarantined = r.quarantined,
                ms = r.millis as u64,
                peak_mib = r.peak_mib,
                "step done"
            );
            report.steps.push(r);
            config::fail_point(cfg, STEP_NAMES[$n - 1])?;
        }};
    }

    step!(
        1,
        pb,
        extract::dimensions(src, wh, &mut txn, &mut q, &mut ctx, &pb)
    );
    step!(
        2,
        pb,
        extract::products(src, wh, &mut txn, &mut q, &mut ctx, &pb)
    );
    step!(
        3,
        pb,
        extract::pos_members(salt, src, &ctx, meta, &mut txn, &mut q, run_id, &pb)
    );
    step!(
        4,
        pb,
        extract::wx_users(salt, src, &ctx, meta, &mut txn, &mut q, run_id, &pb)
    );
    step!(
        5,
        pb,
        extract::orders(salt, src, wh, &mut txn, &mut q, &mut ctx, &pb)
    );
    step!(
        6,
        pb,
        identity::resolve(cfg, wh, meta, &mut txn, &mut ctx, run_id, &pb)
    );
    step!(7, pb, async {
        let (a, b) = extract::events(src, &mut txn, &mut q, &pb).await?;
        let (c, d) = extract::live_events(&meta.db, &mut txn, &mut q).await?;
        Result::Ok((a + c, b + d))
    });
    step!(
        8,
        pb,
        extract::reviews_and_shares(src, &mut txn, &mut q, &pb)
    );
    q.flush(&mut txn)?;
    // Erasures requested since the last run: their rows leave this snapshot.
    let (erasures, erased) = privacy::pending(meta).await?;
    let scrubbed = privacy::scrub(&mut txn, &erased)?;
    // Which entities the warehouse has ever loaded: the views that need an entity the chain
    // never declared say so (`core::sources`).
    let mut loaded: std::collections::BTreeSet<String> = txn
        .base()
        .notes
        .get(c360_core::sources::NOTE)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    loaded.extend(src.resolved.plans.keys().map(|s| s.to_string()));
    txn.note(c360_core::sources::NOTE, serde_json::json!(loaded));
    step!(9, pb, quality::report(cfg, wh, &mut txn, &report, &pb));
    let m = txn.commit()?;
    // The commit point has passed: the staged identity changes now take effect (a crash here
    // is repaired by whoever next opens the warehouse, see `Metastore::settle_identity`).
    config::fail_point(cfg, "identity_apply")?;
    meta.settle_identity(c360_metastore::committed_identity_run(&m.watermarks), false)
        .await?;
    report.manifest_version = m.version;
    report.customers = ctx.customers;
    report.merged_keys = ctx.merged_keys;
    step!(10, pb, refresh::refresh(cfg, wh, lock, run_id, &pb));
    report.manifest_version = wh.current()?.version;
    refresh_audiences(wh, meta).await;
    privacy::finish(wh, lock, meta, &erasures, scrubbed).await?;
    Ok(report)
}

/// Recomputes every saved audience on the new snapshot and records its size, then fires the
/// triggered journeys on it (overdue customers, first and big orders, service tickets). The snapshot is
/// committed either way: an audience that fails is reported, and a server computes what it
/// does not find.
pub(crate) async fn refresh_audiences(wh: &Warehouse, meta: &Metastore) {
    let r: c360_core::CoreResult<_> = async {
        let sess = Session::open(wh).await?;
        let idx = c360_core::serving::ServingIndex::open(&c360_core::serving::dir_of(
            wh,
            sess.manifest.version,
        ));
        if let Ok(mut idx) = idx {
            idx.register(&sess).await?;
        }
        let done = c360_core::audience::refresh_all(wh, &sess, meta).await?;
        match c360_core::journey::fire_refresh(&sess, &meta.db).await {
            Ok(fired) if !fired.is_empty() => tracing::info!(?fired, "journeys fired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "journeys were not fired"),
        }
        Ok(done)
    }
    .await;
    match r {
        Ok(done) if !done.is_empty() => {
            let failed = done.iter().filter(|d| d.1.is_err()).count();
            tracing::info!(audiences = done.len(), failed, "audiences refreshed");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "audiences were not refreshed"),
    }
}

/// Opens a query session on the current snapshot.
pub async fn session(warehouse: &std::path::Path) -> Result<Session> {
    let wh = Warehouse::open(warehouse)?;
    Ok(Session::open(&wh).await?)
}

/// Re-runs only step 10 (the analytics refresh) on the current snapshot.
pub async fn refresh_only(cfg: &EtlConfig, run_id: i64) -> Result<()> {
    let wh = Warehouse::open(&cfg.warehouse)?;
    let lock = wh.lock()?;
    let pb = ProgressBar::hidden();
    refresh::refresh(cfg, &wh, &lock, run_id, &pb).await?;
    let meta = Metastore::open(&cfg.metastore()).await?;
    refresh_audiences(&wh, &meta).await;
    Ok(())
}
