//! Store-level and switchback experiments for menu and price tests, where one customer cannot be
//! shown one price and their neighbour another: whole stores are randomised (store design), or
//! each store switches between arms day by day (switchback). Plans come with the minimum
//! detectable effect from the pre-period; results are read from the warehouse's store-days and
//! analysed with the cluster and switchback tests of [`c360_analytics::experiment`].

use std::collections::HashMap;

use c360_analytics::experiment::{
    assign, cluster_test, phi_cdf, srm, switchback_arm, switchback_test, ClusterUnit, Moments,
    SwitchbackCell,
};
use c360_db::{get_i64, get_text, Db};
use c360_warehouse::Session;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::query::{parse_day, query as q};
use crate::{bad, CoreError, CoreResult};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// "store" (stores randomised) or "switchback" (store × day randomised).
    #[schema(pattern = "^(store|switchback)$")]
    pub design: String,
    /// What changes in the treatment (e.g. "HD03 at 19.9 instead of 22").
    #[serde(default)]
    pub hypothesis: String,
    /// Stores taking part; empty = all (a store manager: all of theirs).
    #[serde(default)]
    pub stores: Vec<i64>,
    #[schema(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub start: String,
    #[schema(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub end: String,
    /// revenue or orders, per store-day.
    #[serde(default = "default_metric")]
    #[schema(pattern = "^(revenue|orders)$")]
    pub metric: String,
    /// Share of stores (or store-days) treated.
    #[serde(default = "default_share")]
    #[schema(minimum = 0.1, maximum = 0.9)]
    pub treatment_share: f64,
}

fn default_metric() -> String {
    "revenue".into()
}
fn default_share() -> f64 {
    0.5
}

impl ExperimentSpec {
    pub fn validate(&self) -> CoreResult<(NaiveDate, NaiveDate)> {
        if self.name.trim().is_empty() {
            return Err(bad("name: required"));
        }
        if self.name.chars().count() > 200 || self.name.contains('\0') {
            return Err(bad("name: at most 200 characters, no NUL"));
        }
        if self.design != "store" && self.design != "switchback" {
            return Err(bad(format!(
                "design: {:?} is not store or switchback",
                self.design
            )));
        }
        if self.metric != "revenue" && self.metric != "orders" {
            return Err(bad(format!(
                "metric: {:?} is not revenue or orders",
                self.metric
            )));
        }
        if !(0.1..=0.9).contains(&self.treatment_share) {
            return Err(bad("treatment_share: must be within 0.1..=0.9"));
        }
        let (s, e) = (
            parse_day("start", &self.start)?,
            parse_day("end", &self.end)?,
        );
        if e < s || (e - s).num_days() > 120 {
            return Err(bad("end: must be after start, at most 120 days"));
        }
        if self.design == "switchback" && (e - s).num_days() < 6 {
            return Err(bad("end: a switchback needs at least 7 days"));
        }
        Ok((s, e))
    }
}

pub async fn create(
    meta: &c360_metastore::Metastore,
    spec: &ExperimentSpec,
    by: &str,
) -> CoreResult<i64> {
    spec.validate()?;
    let text = serde_json::to_string(spec)?;
    let at = chrono::Utc::now().to_rfc3339();
    Ok(meta
        .insert_with_id(
            c360_metastore::Counter::Experiments,
            "experiments",
            &[
                "experiment_id",
                "name",
                "design",
                "spec",
                "created_by",
                "created_at",
            ],
            |id| {
                vec![
                    id.into(),
                    spec.name.clone().into(),
                    spec.design.clone().into(),
                    text.clone().into(),
                    by.into(),
                    at.clone().into(),
                ]
            },
        )
        .await?)
}

pub async fn get(meta: &Db, id: i64) -> CoreResult<(ExperimentSpec, String)> {
    let r = meta
        .fetch(
            "SELECT spec, created_by FROM experiments WHERE experiment_id = ?",
            &[id.into()],
        )
        .await?;
    let r = r
        .first()
        .ok_or_else(|| CoreError::NotFound(format!("experiment {id} does not exist")))?;
    Ok((
        serde_json::from_str(&get_text(r, "spec").unwrap_or_default())?,
        get_text(r, "created_by").unwrap_or_default(),
    ))
}

/// A stored experiment.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub experiment_id: i64,
    pub spec: Option<ExperimentSpec>,
    pub created_by: String,
    pub created_at: String,
}

pub async fn list(meta: &Db) -> CoreResult<Vec<Experiment>> {
    let rows = meta
        .fetch_all("SELECT experiment_id, spec, created_by, created_at FROM experiments ORDER BY experiment_id DESC")
        .await?;
    Ok(rows
        .iter()
        .map(|r| Experiment {
            experiment_id: get_i64(r, "experiment_id").unwrap_or(0),
            spec: get_text(r, "spec").and_then(|s| serde_json::from_str(&s).ok()),
            created_by: get_text(r, "created_by").unwrap_or_default(),
            created_at: get_text(r, "created_at").unwrap_or_default(),
        })
        .collect())
}

/// Which stores (or store-days) are treated.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub store_id: i64,
    /// A store-level design: whether the store is treated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treated: Option<bool>,
    /// A switchback: the days the store is treated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treated_days: Option<Vec<String>>,
}

/// An experiment's plan: its assignment and the smallest effect it can detect.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub experiment_id: i64,
    pub spec: ExperimentSpec,
    pub stores: usize,
    pub days: i64,
    #[schema(value_type = Option<f64>)]
    pub baseline_per_store_day: f64,
    /// Minimum detectable effect (α 0.05, power 0.8), in the metric's units and relative.
    #[schema(value_type = Option<f64>)]
    pub mde_abs: f64,
    pub mde_rel: Option<f64>,
    pub schedule: Vec<Assignment>,
}

/// An experiment's results so far.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Results {
    pub experiment_id: i64,
    pub spec: ExperimentSpec,
    pub stores: usize,
    pub days_observed: i64,
    pub days_planned: i64,
    pub complete: bool,
    pub result: c360_analytics::experiment::Frequentist,
    #[schema(value_type = Option<f64>)]
    pub chance_to_win: f64,
    /// Sample ratio check (store-level designs only).
    pub srm: Option<c360_analytics::experiment::Srm>,
    pub analysis: &'static str,
}

/// Store-day metric between two days (inclusive start, exclusive end).
async fn store_days(
    sess: &Session,
    metric: &str,
    stores: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> CoreResult<HashMap<(i64, i64), f64>> {
    let m = if metric == "orders" {
        "COUNT(*)"
    } else {
        "SUM(total_fen)"
    };
    let mut f = crate::query::Filter::new("status = 'paid'");
    f.one_of("store_id", stores)
        .days("order_time", Some(from), to.pred_opt());
    let rows = crate::query::query_with(
        sess,
        &format!(
            "SELECT store_id, CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT) AS day, \
             CAST({m} AS DOUBLE) AS y FROM orders WHERE {} \
             GROUP BY store_id, CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT)",
            f.sql()
        ),
        f.params,
    )
    .await?;
    let base = from
        .signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive())
        .num_days();
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                (r["store_id"].as_i64()?, r["day"].as_i64()? - base),
                r["y"].as_f64().unwrap_or(0.0),
            ))
        })
        .collect())
}

async fn stores_of(
    sess: &Session,
    spec: &ExperimentSpec,
    scope: Option<&[i64]>,
) -> CoreResult<Vec<i64>> {
    let all: Vec<i64> = q(sess, "SELECT store_id FROM stores ORDER BY store_id")
        .await?
        .iter()
        .filter_map(|r| r["store_id"].as_i64())
        .collect();
    let mut s: Vec<i64> = if spec.stores.is_empty() {
        all.clone()
    } else {
        if let Some(x) = spec.stores.iter().find(|x| !all.contains(x)) {
            return Err(bad(format!("stores: {x} is not a store")));
        }
        spec.stores.clone()
    };
    if let Some(sc) = scope {
        if !spec.stores.is_empty() {
            if let Some(x) = s.iter().find(|x| !sc.contains(x)) {
                return Err(CoreError::Forbidden(format!(
                    "stores: {x} is not one of your stores"
                )));
            }
        }
        s.retain(|x| sc.contains(x));
    }
    if s.len() < 2 {
        return Err(bad("stores: an experiment needs at least 2 stores"));
    }
    Ok(s)
}

fn arm_of(id: i64, spec: &ExperimentSpec, store: i64, day: i64) -> bool {
    let salt = format!("experiment:{id}");
    if spec.design == "store" {
        assign(
            &salt,
            &format!("store:{store}"),
            &[1.0 - spec.treatment_share, spec.treatment_share],
        ) == 1
    } else {
        switchback_arm(&salt, store, day)
    }
}

/// An experiment with its stores and each store's pre-period series (as many days as the test,
/// right before it): what both the plan and the results start from.
struct Setup {
    spec: ExperimentSpec,
    start: NaiveDate,
    end: NaiveDate,
    stores: Vec<i64>,
    days: i64,
    per: HashMap<i64, Vec<f64>>,
}

async fn setup(sess: &Session, meta: &Db, id: i64, scope: Option<&[i64]>) -> CoreResult<Setup> {
    let (spec, _) = get(meta, id).await?;
    let (start, end) = spec.validate()?;
    let stores = stores_of(sess, &spec, scope).await?;
    let days = (end - start).num_days() + 1;
    let pre = store_days(
        sess,
        &spec.metric,
        &stores,
        start - Duration::days(days),
        start,
    )
    .await?;
    let per = stores
        .iter()
        .map(|s| {
            (
                *s,
                (0..days)
                    .map(|d| *pre.get(&(*s, d)).unwrap_or(&0.0))
                    .collect(),
            )
        })
        .collect();
    Ok(Setup {
        spec,
        start,
        end,
        stores,
        days,
        per,
    })
}

/// The assignment and what the design can detect, from a pre-period as long as the test.
pub async fn plan(sess: &Session, meta: &Db, id: i64, scope: Option<&[i64]>) -> CoreResult<Plan> {
    let Setup {
        spec,
        start,
        stores,
        days,
        per,
        ..
    } = setup(sess, meta, id, scope).await?;
    // Per-store mean and the day-to-day residual spread.
    let means: Vec<f64> = stores.iter().map(|s| Moments::of(&per[s]).mean).collect();
    let resid: Vec<f64> = stores
        .iter()
        .flat_map(|s| {
            let m = Moments::of(&per[s]).mean;
            per[s].iter().map(move |v| v - m).collect::<Vec<_>>()
        })
        .collect();
    let level = Moments::of(&means).mean;
    let z = 1.959_964 + 0.841_621; // α 0.05 two-sided, power 0.8
    let mde = if spec.design == "store" {
        let n_t = (stores.len() as f64 * spec.treatment_share).max(1.0);
        let n_c = (stores.len() as f64 - n_t).max(1.0);
        // Store means vary a lot; CUPED on the pre-period takes most of it out, so the
        // residual spread of the store means is the day noise averaged over the test.
        let sd = (Moments::of(&resid).var / days as f64).sqrt();
        z * sd * (1.0 / n_t + 1.0 / n_c).sqrt()
    } else {
        let sd = Moments::of(&resid).var.sqrt();
        z * sd * (4.0 / (stores.len() as f64 * days as f64)).sqrt()
    };
    let schedule = stores
        .iter()
        .map(|s| {
            if spec.design == "store" {
                Assignment {
                    store_id: *s,
                    treated: Some(arm_of(id, &spec, *s, 0)),
                    treated_days: None,
                }
            } else {
                let on: Vec<String> = (0..days)
                    .filter(|d| arm_of(id, &spec, *s, *d))
                    .map(|d| (start + Duration::days(d)).to_string())
                    .collect();
                Assignment {
                    store_id: *s,
                    treated: None,
                    treated_days: Some(on),
                }
            }
        })
        .collect();
    Ok(Plan {
        experiment_id: id,
        stores: stores.len(),
        days,
        baseline_per_store_day: level,
        mde_abs: mde,
        mde_rel: (level > 0.0).then(|| mde / level),
        schedule,
        spec,
    })
}

/// Results from the warehouse's store-days in the test window.
pub async fn results(
    sess: &Session,
    meta: &Db,
    id: i64,
    scope: Option<&[i64]>,
) -> CoreResult<Results> {
    let Setup {
        spec,
        start,
        end,
        stores,
        days,
        per,
    } = setup(sess, meta, id, scope).await?;
    let post = store_days(sess, &spec.metric, &stores, start, end + Duration::days(1)).await?;
    let observed_days = post
        .keys()
        .map(|k| k.1)
        .max()
        .map_or(0, |d| d + 1)
        .min(days);
    let f = if spec.design == "store" {
        let mut units = Vec::new();
        for s in &stores {
            let pre_mean = Moments::of(&per[s]).mean;
            for d in 0..observed_days {
                units.push(ClusterUnit {
                    cluster: *s,
                    treated: arm_of(id, &spec, *s, 0),
                    y: *post.get(&(*s, d)).unwrap_or(&0.0),
                    x: pre_mean,
                });
            }
        }
        cluster_test(&units, 0.05)
    } else {
        let mut cells = Vec::new();
        for s in &stores {
            for d in 0..observed_days {
                cells.push(SwitchbackCell {
                    store: *s,
                    period: d,
                    treated: arm_of(id, &spec, *s, d),
                    y: *post.get(&(*s, d)).unwrap_or(&0.0),
                });
            }
        }
        switchback_test(&cells, 0.05)
    };
    let treated = stores.iter().filter(|s| arm_of(id, &spec, **s, 0)).count() as u64;
    let srm_check = (spec.design == "store").then(|| {
        srm(
            &[stores.len() as u64 - treated, treated],
            &[1.0 - spec.treatment_share, spec.treatment_share],
        )
    });
    let z = if f.se > 0.0 { f.diff / f.se } else { 0.0 };
    Ok(Results {
        experiment_id: id,
        stores: stores.len(),
        days_observed: observed_days,
        days_planned: days,
        complete: observed_days >= days,
        result: f,
        chance_to_win: phi_cdf(z),
        srm: srm_check,
        analysis: if spec.design == "store" {
            "per-store means with CUPED on the pre-period, Welch across stores"
        } else {
            "within-store treated-day minus control-day means after day fixed effects, paired t across stores"
        },
        spec,
    })
}
