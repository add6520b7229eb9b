//! Behaviour across customers: the menu → item → cart → pay funnel per segment, and page paths.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Q};
use crate::state::AppState;
use crate::support::*;
use c360_analytics::behavior::{Funnel, STEPS};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// Segment dimension: none (default), tier, rfm_class, lifecycle, cluster or device.
    by: Option<String>,
    /// First day (YYYY-MM-DD), inclusive.
    from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/behavior/funnel", params(FunnelParams), responses((status = 200, description = "Sessions reaching menu → item → cart → pay, step conversion and drop-off, per segment"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn behavior_funnel(
    State(st): State<AppState>,
    p: Principal,
    Q(fp): Q<FunnelParams>,
) -> ApiResult<Json<Value>> {
    let by = fp.by.clone().unwrap_or_else(|| "none".into());
    let col = match by.as_str() {
        "none" => "'all'",
        "tier" => "s.tier",
        "rfm_class" => "s.rfm_class",
        "lifecycle" => "s.lifecycle",
        "cluster" => "CAST(s.\"cluster\" AS VARCHAR)",
        "device" => "x.device",
        other => {
            return Err(ApiError::BadRequest(format!(
                "by: {other:?} is not one of none, tier, rfm_class, lifecycle, cluster, device"
            )))
        }
    };
    let w = day_bounds(
        &RangeParams {
            from: fp.from.clone(),
            to: fp.to.clone(),
            limit: None,
        },
        "x.started_at",
    )?;
    let key = format!("funnel|{}|{by}|{w}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let rows = q(
                &s,
                &format!(
                    "SELECT COALESCE({col}, '(unknown)') AS segment, x.max_step, COUNT(*) AS n, \
                     SUM(x.duration_s) AS dur, SUM(x.events) AS ev, SUM(CASE WHEN x.events = 1 THEN 1 ELSE 0 END) AS bounces \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE 1 = 1{w}{sc} GROUP BY 1, 2",
                    sc = customer_scope(&p, "s")
                ),
            )
            .await?;
            let mut segs: std::collections::BTreeMap<String, ([u64; 5], f64, f64, f64)> =
                Default::default();
            for r in &rows {
                let seg = r["segment"].as_str().unwrap_or("").to_string();
                let e = segs.entry(seg).or_default();
                let step = r["max_step"].as_i64().unwrap_or(0).clamp(0, 4) as usize;
                e.0[step] += r["n"].as_u64().unwrap_or(0);
                e.1 += r["dur"].as_f64().unwrap_or(0.0);
                e.2 += r["ev"].as_f64().unwrap_or(0.0);
                e.3 += r["bounces"].as_f64().unwrap_or(0.0);
            }
            let out: Vec<Value> = segs
                .into_iter()
                .map(|(seg, (by_max, dur, ev, bounces))| {
                    let f = Funnel::from_max_steps(&by_max);
                    let n = f.sessions.max(1) as f64;
                    json!({
                        "segment": seg,
                        "funnel": f,
                        "avg_duration_s": dur / n,
                        "avg_events": ev / n,
                        "bounce_rate": bounces / n,
                    })
                })
                .collect();
            Ok(json!({"by": by, "steps": STEPS, "segments": out}))
        })
        .await?;
    Ok(ok(v))
}

#[utoipa::path(get, path = "/api/v1/behavior/paths", params(RangeParams), responses((status = 200, description = "Most common page paths with their conversion, and where sessions that did not pay left")))]
pub async fn behavior_paths(
    State(st): State<AppState>,
    p: Principal,
    Q(r): Q<RangeParams>,
) -> ApiResult<Json<Value>> {
    let w = day_bounds(&r, "x.started_at")?;
    let limit = r.limit.unwrap_or(20).min(200);
    let key = format!("paths|{}|{w}|{limit}", p.scope_key());
    let st2 = st.clone();
    let v = st
        .cached(key, || async move {
            let s = st2.snapshot().await?;
            let sc = customer_scope(&p, "s");
            let paths = q(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions, AVG(CASE WHEN x.max_step = 4 THEN 1.0 ELSE 0.0 END) AS conversion, \
                     AVG(x.duration_s) AS avg_duration_s \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE 1 = 1{w}{sc} GROUP BY x.path ORDER BY sessions DESC, x.path LIMIT {limit}"
                ),
            )
            .await?;
            // Exit page of the sessions that did not pay: the last page of their path.
            let exits = q(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions FROM customer_sessions x \
                     LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE x.max_step < 4{w}{sc} GROUP BY x.path"
                ),
            )
            .await?;
            let mut by_exit: std::collections::BTreeMap<String, u64> = Default::default();
            let mut total = 0u64;
            for e in &exits {
                let last = e["path"].as_str().unwrap_or("").rsplit('>').next().unwrap_or("").to_string();
                let n = e["sessions"].as_u64().unwrap_or(0);
                *by_exit.entry(last).or_default() += n;
                total += n;
            }
            let mut exits: Vec<Value> = by_exit
                .into_iter()
                .map(|(page, n)| json!({"page": page, "sessions": n, "share": n as f64 / total.max(1) as f64}))
                .collect();
            exits.sort_by(|a, b| b["sessions"].as_u64().cmp(&a["sessions"].as_u64()));
            Ok(json!({"paths": paths, "exits": exits}))
        })
        .await?;
    Ok(ok(v))
}
