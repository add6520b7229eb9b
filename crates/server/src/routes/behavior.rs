//! Behaviour across customers: the menu → item → cart → pay funnel per segment, and page paths.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Q};
use crate::state::{Answer, AppState};
use crate::support::*;
use c360_analytics::behavior::{Funnel, STEPS};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// Segment dimension: none (default), tier, rfm_class, lifecycle, cluster or device.
    #[param(value_type = Option<doc::FunnelBy>)]
    by: Option<String>,
    /// First day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    #[param(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    to: Option<String>,
}

/// Sessions through menu → item → cart → pay.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelSteps {
    pub sessions: u64,
    /// Sessions that reached each step.
    pub reached: Vec<u64>,
    /// reached[i] / reached[i-1] (the first: / sessions).
    pub step_conversion: Vec<f64>,
    /// 1 − step_conversion.
    pub drop_off: Vec<f64>,
    /// pay / sessions.
    pub overall_conversion: f64,
}

impl From<Funnel> for FunnelSteps {
    fn from(f: Funnel) -> Self {
        FunnelSteps {
            sessions: f.sessions,
            reached: f.reached.to_vec(),
            step_conversion: f.step_conversion.to_vec(),
            drop_off: f.drop_off.to_vec(),
            overall_conversion: f.overall_conversion,
        }
    }
}

/// One segment's funnel and session shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentFunnel {
    pub segment: String,
    pub funnel: FunnelSteps,
    pub avg_duration_s: f64,
    pub avg_events: f64,
    pub bounce_rate: f64,
}

/// The funnel per segment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Funnels {
    pub by: String,
    /// The step names, in order.
    pub steps: Vec<&'static str>,
    pub segments: Vec<SegmentFunnel>,
}

/// A page path's sessions and conversion.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExitPage {
    pub page: String,
    pub sessions: u64,
    pub share: f64,
}

/// Common paths and where unpaid sessions left.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paths {
    /// path, sessions, conversion, avg_duration_s.
    pub paths: Vec<Row>,
    pub exits: Vec<ExitPage>,
}

#[utoipa::path(get, path = "/api/v1/behavior/funnel", params(FunnelParams), responses((status = 200, body = Funnels, description = "Sessions reaching menu → item → cart → pay, step conversion and drop-off, per segment"), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn behavior_funnel(
    State(st): State<AppState>,
    p: Principal,
    Q(fp): Q<FunnelParams>,
) -> ApiResult<Answer<Funnels>> {
    st.needs("the funnel", &["events"]).await?;
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
    let (from, to) = days_of(fp.from.as_deref(), fp.to.as_deref())?;
    let mut w = scoped(&p, "TRUE", "s.home_store_id");
    w.days("x.started_at", from, to);
    let key = format!("funnel|{}|{by}|{}", p.scope_key(), w.key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let rows = qf(
                &s,
                &format!(
                    "SELECT COALESCE({col}, '(unknown)') AS segment, x.max_step, COUNT(*) AS n, \
                     SUM(x.duration_s) AS dur, SUM(x.events) AS ev, SUM(CASE WHEN x.events = 1 THEN 1 ELSE 0 END) AS bounces \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE {} GROUP BY 1, 2",
                    w.sql()
                ),
                &w,
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
            let segments = segs
                .into_iter()
                .map(|(segment, (by_max, dur, ev, bounces))| {
                    let f = Funnel::from_max_steps(&by_max);
                    let n = f.sessions.max(1) as f64;
                    SegmentFunnel {
                        segment,
                        funnel: f.into(),
                        avg_duration_s: dur / n,
                        avg_events: ev / n,
                        bounce_rate: bounces / n,
                    }
                })
                .collect();
            Ok(Funnels { by, steps: STEPS.to_vec(), segments })
        })
        .await
}

#[utoipa::path(get, path = "/api/v1/behavior/paths", params(RangeParams), responses((status = 200, body = Paths, description = "Most common page paths with their conversion, and where sessions that did not pay left"), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "not_in_sources: the view needs a source entity the chain's source contract does not provide")))]
pub async fn behavior_paths(
    State(st): State<AppState>,
    p: Principal,
    Q(r): Q<RangeParams>,
) -> ApiResult<Answer<Paths>> {
    st.needs("page paths", &["events"]).await?;
    let (from, to) = r.days()?;
    let limit = bounded("limit", r.limit, 20, 1, 500)?;
    let mut w = scoped(&p, "TRUE", "s.home_store_id");
    w.days("x.started_at", from, to);
    let mut x = scoped(&p, "x.max_step < 4", "s.home_store_id");
    x.days("x.started_at", from, to);
    let key = format!("paths|{}|{}|{limit}", p.scope_key(), w.key());
    let st2 = st.clone();
    st.answer(key, || async move {
            let s = st2.snapshot().await?;
            let mut wl = w.clone();
            let lim = wl.value(limit as i64);
            let paths = qf(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions, AVG(CASE WHEN x.max_step = 4 THEN 1.0 ELSE 0.0 END) AS conversion, \
                     AVG(x.duration_s) AS avg_duration_s \
                     FROM customer_sessions x LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE {} GROUP BY x.path ORDER BY sessions DESC, x.path LIMIT {lim}",
                    w.sql()
                ),
                &wl,
            )
            .await?;
            // Exit page of the sessions that did not pay: the last page of their path.
            let exits = qf(
                &s,
                &format!(
                    "SELECT x.path, COUNT(*) AS sessions FROM customer_sessions x \
                     LEFT JOIN customer_segmentation s ON x.customer_id = s.customer_id \
                     WHERE {} GROUP BY x.path",
                    x.sql()
                ),
                &x,
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
            let mut exits: Vec<ExitPage> = by_exit
                .into_iter()
                .map(|(page, n)| ExitPage { page, sessions: n, share: n as f64 / total.max(1) as f64 })
                .collect();
            exits.sort_by_key(|e| std::cmp::Reverse(e.sessions));
            Ok(Paths { paths: rows(paths), exits })
        })
        .await
}
