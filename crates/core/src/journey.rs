//! Triggered journeys: messages fired by what a customer just did (or stopped doing) rather than
//! by a campaign someone launches — a welcome after the first order, "miss you" when a customer
//! is overdue against their own cadence (the BG/NBD `overdue` score, not one fixed lapse rule),
//! thanks after a big order, and a recovery offer after a service ticket.
//!
//! - **Fired** from each refresh (every customer of the new snapshot, [`fire_refresh`]) and from
//!   live orders (the server calls [`fire_order`] after the order is durable). The refresh is the
//!   backstop of the live path: both name a trigger by the same key (`welcome:<customer>`,
//!   `big_spender:<order number>`, …), so an order seen live and again in the next snapshot fires
//!   once, and a server killed before it fired loses nothing.
//! - **Guarded** like campaigns: the global holdout, a per-journey holdout (assigned by hash, so
//!   its effect can be measured), the frequency cap across campaigns and journeys, quiet hours,
//!   and a cooldown per customer and journey. A live order cancels the customer's pending
//!   "miss you".
//! - **Recorded**: every trigger is a row of `journey_sends` (arm, status, send time, coupon,
//!   why), and each firing is one audit entry with its counts.
//!
//! Nothing here sends a message: `send_at` is the plan a messaging gateway would follow.

use std::collections::{BTreeMap, HashMap};

use c360_analytics::experiment::{assign, stable_hash};
use c360_db::{get_i64, get_text, Db, Value as V};
use c360_model::Channel;
use c360_warehouse::Session;
use chrono::{Duration, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};

use crate::campaign::{global_holdout_pct, in_global_holdout, send_time, Offer};
use crate::query::{local_midnight, query_with, ScalarValue};
use crate::{bad, CoreResult};

/// The four journeys.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JourneyKind {
    /// After a customer's first order.
    Welcome,
    /// When a customer is overdue against their own purchase cadence.
    MissYou,
    /// After an order of at least `threshold` fen.
    BigSpender,
    /// After a service ticket.
    Recovery,
}

impl JourneyKind {
    pub const ALL: [JourneyKind; 4] = [
        JourneyKind::Welcome,
        JourneyKind::MissYou,
        JourneyKind::BigSpender,
        JourneyKind::Recovery,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyKind::Welcome => "welcome",
            JourneyKind::MissYou => "miss_you",
            JourneyKind::BigSpender => "big_spender",
            JourneyKind::Recovery => "recovery",
        }
    }
    pub fn parse(s: &str) -> Option<JourneyKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The threshold when the spec gives none: overdue score for "miss you", order value (fen)
    /// for big spenders.
    fn default_threshold(self) -> f64 {
        match self {
            JourneyKind::MissYou => 0.8,
            JourneyKind::BigSpender => 10_000.0,
            _ => 0.0,
        }
    }
}

/// How a journey runs.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneySpec {
    pub enabled: bool,
    /// wechat (subscription message), sms or push.
    pub channel: Channel,
    pub offer: Offer,
    /// "miss you": the overdue score (0..1) from which a customer is missed (default 0.8);
    /// big spender: the order value in fen (default 10000). Unused by the others.
    pub threshold: Option<f64>,
    /// "miss you" only: customers less likely than this to still be a customer are left alone.
    #[serde(default = "default_min_alive")]
    #[schema(minimum = 0, maximum = 1)]
    pub min_p_alive: f64,
    /// Share of the triggered customers kept as this journey's holdout (percent).
    #[serde(default = "default_holdout")]
    #[schema(minimum = 0, maximum = 50)]
    pub holdout_pct: f64,
    /// At most one message of this journey to a customer in this many days.
    #[serde(default = "default_cooldown")]
    #[schema(minimum = 1, maximum = 365)]
    pub cooldown_days: i64,
    /// At most this many messages to one customer (campaigns and journeys) in `cap_days` days.
    #[serde(default = "default_cap")]
    #[schema(minimum = 1, maximum = 100)]
    pub frequency_cap: u32,
    #[serde(default = "default_cap_days")]
    #[schema(minimum = 1, maximum = 60)]
    pub cap_days: i64,
    #[serde(default = "default_quiet_start")]
    #[schema(maximum = 23)]
    pub quiet_start: u32,
    #[serde(default = "default_quiet_end")]
    #[schema(maximum = 23)]
    pub quiet_end: u32,
}

fn default_min_alive() -> f64 {
    0.2
}
fn default_holdout() -> f64 {
    10.0
}
fn default_cooldown() -> i64 {
    30
}
fn default_cap() -> u32 {
    2
}
fn default_cap_days() -> i64 {
    7
}
fn default_quiet_start() -> u32 {
    22
}
fn default_quiet_end() -> u32 {
    8
}

impl JourneySpec {
    pub fn validate(&self, kind: JourneyKind) -> CoreResult<()> {
        if !(0.0..=50.0).contains(&self.holdout_pct) {
            return Err(bad("holdout_pct: must be within 0..=50"));
        }
        if !(1..=365).contains(&self.cooldown_days) {
            return Err(bad("cooldown_days: must be 1 to 365"));
        }
        if !(1..=100).contains(&self.frequency_cap) || !(1..=60).contains(&self.cap_days) {
            return Err(bad(
                "frequency_cap, cap_days: at least 1 message in 1 to 60 days",
            ));
        }
        if self.quiet_start > 23 || self.quiet_end > 23 {
            return Err(bad("quiet_start, quiet_end: hours 0 to 23"));
        }
        if !(0.0..=1.0).contains(&self.min_p_alive) {
            return Err(bad("min_p_alive: must be within 0..=1"));
        }
        if self.offer.discount_fen < 0 || self.offer.discount_fen > 100_000 {
            return Err(bad("offer.discount_fen: must be 0 to 100000"));
        }
        if let Some(t) = self.threshold {
            let ok = match kind {
                JourneyKind::MissYou => (0.0..=1.0).contains(&t),
                JourneyKind::BigSpender => (1.0..=10_000_000.0).contains(&t),
                _ => t.is_finite(),
            };
            if !ok {
                return Err(bad(format!(
                    "threshold: {t} does not fit {} (an overdue score 0..1 for miss_you, fen for big_spender)",
                    kind.as_str()
                )));
            }
        }
        Ok(())
    }
    fn threshold_or_default(&self, kind: JourneyKind) -> f64 {
        self.threshold.unwrap_or(kind.default_threshold())
    }
}

/// A journey as stored (None: never configured, so off).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Journey {
    pub kind: JourneyKind,
    pub spec: Option<JourneySpec>,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
    /// Sends per arm and status (`treatment/planned`, `holdout/not_sent`, …).
    pub counts: BTreeMap<String, i64>,
}

pub async fn get(meta: &Db, kind: JourneyKind) -> CoreResult<Journey> {
    get_in(meta, kind, None).await
}

/// A journey with its counts over the customers of `stores` (all when None).
pub async fn get_in(meta: &Db, kind: JourneyKind, stores: Option<&[i64]>) -> CoreResult<Journey> {
    let rows = meta
        .fetch(
            "SELECT spec, updated_by, updated_at FROM journeys WHERE kind = ?",
            &[kind.as_str().into()],
        )
        .await?;
    let r = rows.first();
    let spec = match r.and_then(|r| get_text(r, "spec")) {
        Some(t) => Some(serde_json::from_str(&t)?),
        None => None,
    };
    let mut counts = BTreeMap::new();
    let scope = match stores {
        None => String::new(),
        Some(s) => format!(" AND home_store_id IN {}", crate::query::in_list(s)),
    };
    for c in meta
        .fetch(
            &format!("SELECT arm, status, COUNT(*) AS n FROM journey_sends WHERE kind = ?{scope} GROUP BY arm, status"),
            &[kind.as_str().into()],
        )
        .await?
    {
        counts.insert(
            format!(
                "{}/{}",
                get_text(&c, "arm").unwrap_or_default(),
                get_text(&c, "status").unwrap_or_default()
            ),
            get_i64(&c, "n").unwrap_or(0),
        );
    }
    Ok(Journey {
        kind,
        spec,
        updated_by: r.and_then(|r| get_text(r, "updated_by")),
        updated_at: r.and_then(|r| get_text(r, "updated_at")),
        counts,
    })
}

pub async fn list(meta: &Db) -> CoreResult<Vec<Journey>> {
    list_in(meta, None).await
}

pub async fn list_in(meta: &Db, stores: Option<&[i64]>) -> CoreResult<Vec<Journey>> {
    let mut out = Vec::new();
    for k in JourneyKind::ALL {
        out.push(get_in(meta, k, stores).await?);
    }
    Ok(out)
}

/// Configures a journey (on or off).
pub async fn set(meta: &Db, kind: JourneyKind, spec: &JourneySpec, by: &str) -> CoreResult<()> {
    spec.validate(kind)?;
    meta.upsert_rows(
        "journeys",
        &["kind", "spec", "updated_by", "updated_at"],
        "kind",
        &[vec![
            kind.as_str().into(),
            serde_json::to_string(spec)?.into(),
            by.into(),
            chrono::Utc::now().to_rfc3339().into(),
        ]],
    )
    .await?;
    Ok(())
}

/// One trigger: who, why, when it happened and its idempotency key.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub key: String,
    pub customer_id: i64,
    pub home_store_id: Option<i64>,
    /// The local time of what triggered it (the send is planned from then).
    pub at: NaiveDateTime,
    pub reason: String,
    /// Whether the customer consented to the journey's channel: one who has not is recorded
    /// (status `no_consent`, in no arm) and never messaged.
    pub consented: bool,
}

/// One planned (or held out, capped, cooled-down) message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Send {
    pub trigger_key: String,
    pub kind: JourneyKind,
    pub customer_id: i64,
    pub home_store_id: Option<i64>,
    /// treatment, holdout or global_holdout.
    pub arm: String,
    /// planned, not_sent (holdouts), capped, cooldown or cancelled.
    pub status: String,
    pub coupon_code: Option<String>,
    pub discount_fen: Option<i64>,
    pub sku: Option<String>,
    /// Local time `YYYY-MM-DD HH:MM:SS`.
    pub send_at: String,
    pub source: String,
    pub reason: String,
    pub fired_at: String,
}

const SEND_COLUMNS: [&str; 13] = [
    "trigger_key",
    "kind",
    "customer_id",
    "home_store_id",
    "arm",
    "status",
    "coupon_code",
    "discount_fen",
    "sku",
    "send_at",
    "source",
    "reason",
    "fired_at",
];

fn coupon(kind: JourneyKind, key: &str) -> String {
    let s = crate::campaign::code8(stable_hash(&["journey-coupon", key]));
    let k = match kind {
        JourneyKind::Welcome => 'W',
        JourneyKind::MissYou => 'M',
        JourneyKind::BigSpender => 'B',
        JourneyKind::Recovery => 'R',
    };
    format!("J{k}-{s}")
}

/// Plans the sends of `triggers` for journey `kind` and stores the new ones (a trigger key seen
/// before stores nothing). Returns counts per status of what was stored.
pub async fn fire(
    meta: &Db,
    kind: JourneyKind,
    spec: &JourneySpec,
    triggers: &[Trigger],
    source: &str,
    actor: &str,
) -> CoreResult<BTreeMap<String, i64>> {
    let mut counts = BTreeMap::new();
    if !spec.enabled || triggers.is_empty() {
        return Ok(counts);
    }
    let gpct = global_holdout_pct(meta).await?;
    // Customers erased (the snapshot may still hold them) trigger nothing.
    let erased = crate::privacy::pending_erased_ids(meta).await?;
    let triggers: Vec<&Trigger> = triggers
        .iter()
        .filter(|t| !erased.contains(&t.customer_id))
        .collect();
    // Recent messages per customer (campaigns and journeys): the cap and the cooldown.
    let earliest = triggers.iter().map(|t| t.at).min().unwrap_or_default()
        - Duration::days(spec.cooldown_days.max(spec.cap_days) + 1);
    let since = c360_model::fmt_ts(earliest);
    let mut planned: HashMap<i64, Vec<NaiveDateTime>> = HashMap::new();
    let mut last_of_kind: HashMap<i64, NaiveDateTime> = HashMap::new();
    for r in meta
        .fetch(
            "SELECT customer_id, send_at FROM campaign_members WHERE status IN ('planned', 'sent') AND send_at >= ?",
            &[since.clone().into()],
        )
        .await?
    {
        if let (Some(c), Some(t)) = (get_i64(&r, "customer_id"), get_text(&r, "send_at")) {
            if let Ok(t) = c360_model::parse_ts(&t) {
                planned.entry(c).or_default().push(t);
            }
        }
    }
    for r in meta
        .fetch(
            "SELECT customer_id, kind, status, send_at FROM journey_sends WHERE send_at >= ? AND status IN ('planned', 'sent', 'not_sent')",
            &[since.into()],
        )
        .await?
    {
        let (Some(c), Some(t)) = (get_i64(&r, "customer_id"), get_text(&r, "send_at")) else {
            continue;
        };
        let Ok(t) = c360_model::parse_ts(&t) else {
            continue;
        };
        if get_text(&r, "status").as_deref() != Some("not_sent") {
            planned.entry(c).or_default().push(t);
        }
        if get_text(&r, "kind").as_deref() == Some(kind.as_str()) {
            let e = last_of_kind.entry(c).or_insert(t);
            *e = (*e).max(t);
        }
    }
    let weights = [spec.holdout_pct / 100.0, 1.0 - spec.holdout_pct / 100.0];
    let salt = format!("journey:{}", kind.as_str());
    let fired_at = chrono::Utc::now().to_rfc3339();
    let mut rows = Vec::with_capacity(triggers.len());
    // Planned here: a customer with two triggers in one firing gets one message.
    for t in triggers {
        let c = t.customer_id;
        let arm = if !t.consented {
            "none"
        } else if in_global_holdout(c, gpct) {
            "global_holdout"
        } else if assign(&salt, &c.to_string(), &weights) == 0 {
            "holdout"
        } else {
            "treatment"
        };
        // An hour after what triggered it, out of quiet hours.
        let base = t.at + Duration::hours(1);
        let mut at = send_time(
            base.date(),
            base.time().hour(),
            spec.quiet_start,
            spec.quiet_end,
        );
        if at < base {
            at = send_time(
                base.date() + Duration::days(1),
                0,
                spec.quiet_start,
                spec.quiet_end,
            );
        }
        let status = if !t.consented {
            "no_consent"
        } else if last_of_kind
            .get(&c)
            .is_some_and(|l| (at - *l).num_days().abs() < spec.cooldown_days)
        {
            "cooldown"
        } else if arm != "treatment" {
            "not_sent"
        } else if planned.get(&c).map_or(0, |v| {
            v.iter()
                .filter(|p| (at - **p).num_days().abs() < spec.cap_days)
                .count()
        }) >= spec.frequency_cap as usize
        {
            "capped"
        } else {
            "planned"
        };
        if status == "planned" {
            planned.entry(c).or_default().push(at);
        }
        if status == "planned" || status == "not_sent" {
            last_of_kind.insert(c, at);
        }
        let offered = status == "planned";
        rows.push(vec![
            V::from(t.key.clone()),
            kind.as_str().into(),
            c.into(),
            t.home_store_id.into(),
            arm.into(),
            status.into(),
            offered.then(|| coupon(kind, &t.key)).into(),
            offered.then_some(spec.offer.discount_fen).into(),
            if offered {
                spec.offer.sku.clone()
            } else {
                None
            }
            .into(),
            c360_model::fmt_ts(at).into(),
            source.into(),
            t.reason.clone().into(),
            fired_at.clone().into(),
        ]);
    }
    let mut tx = meta.begin().await?;
    let stored: std::collections::HashSet<String> = tx
        .insert_new("journey_sends", &SEND_COLUMNS, "trigger_key", &rows)
        .await?
        .into_iter()
        .collect();
    for r in &rows {
        if let (V::S(k), V::S(s)) = (&r[0], &r[5]) {
            if stored.contains(k) {
                *counts.entry(s.clone()).or_default() += 1;
            }
        }
    }
    if !stored.is_empty() {
        crate::audit::record_many_in(
            &mut tx,
            &[crate::audit::Entry {
                actor,
                role: "system",
                action: "journey.fire",
                target: &format!("journey:{}", kind.as_str()),
                outcome: "ok",
                detail: serde_json::json!({"source": source, "sends": counts}),
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(counts)
}

/// The triggers of journey `kind` in a snapshot whose observation ends on day `as_of` (the day
/// after its last order): customers overdue now, first orders, big orders and service tickets
/// of the snapshot's last `cooldown_days` days.
pub async fn refresh_triggers(
    sess: &Session,
    kind: JourneyKind,
    spec: &JourneySpec,
    as_of: i64,
) -> CoreResult<Vec<Trigger>> {
    let end = c360_model::Day(as_of).date();
    let from = local_midnight(end - Duration::days(spec.cooldown_days.min(30)));
    let at_end = end.and_hms_opt(9, 0, 0).unwrap_or_default() - Duration::days(1);
    let t = spec.threshold_or_default(kind);
    let (sql, params): (&str, Vec<ScalarValue>) = match kind {
        JourneyKind::MissYou => (
            "SELECT c.customer_id, c.home_store_id, c.overdue AS v, NULL AS at, NULL AS k, {consent} FROM v_customer_360 c \
             WHERE c.overdue >= $1 AND c.p_alive >= $2 ORDER BY c.customer_id",
            vec![ScalarValue::Float64(Some(t)), ScalarValue::Float64(Some(spec.min_p_alive))],
        ),
        JourneyKind::Welcome => (
            "SELECT c.customer_id, c.home_store_id, c.order_count AS v, \
               CAST(c.first_order_time AS VARCHAR) AS at, NULL AS k, {consent} FROM v_customer_360 c \
             WHERE c.order_count = 1 AND c.first_order_time >= $1 ORDER BY c.customer_id",
            vec![from],
        ),
        JourneyKind::BigSpender => (
            "SELECT o.customer_id, c.home_store_id, o.total_fen AS v, CAST(o.order_time AS VARCHAR) AS at, \
               o.order_no AS k, {consent} FROM orders o JOIN v_customer_360 c ON c.customer_id = o.customer_id \
             WHERE o.status = 'paid' AND o.total_fen >= $1 AND o.order_time >= $2 ORDER BY o.order_time, o.order_no",
            vec![ScalarValue::Float64(Some(t)), from],
        ),
        JourneyKind::Recovery => (
            "SELECT t.customer_id, c.home_store_id, 0 AS v, CAST(t.created_at AS VARCHAR) AS at, \
               t.ticket_key AS k, {consent} FROM service_tickets t JOIN v_customer_360 c ON c.customer_id = t.customer_id \
             WHERE t.created_at >= $1 ORDER BY t.created_at, t.ticket_key",
            vec![from],
        ),
    };
    // The channel's consent column (a name from a fixed set, not a value).
    let sql = sql.replace(
        "{consent}",
        &format!(
            "c.{} AS consented",
            crate::campaign::consent_column(spec.channel)
        ),
    );
    let rows = query_with(sess, &sql, params).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let c = r["customer_id"].as_i64()?;
            let at = r["at"]
                .as_str()
                .and_then(|s| c360_model::parse_ts(&s.replace('T', " ")[..19.min(s.len())]).ok())
                .unwrap_or(at_end);
            let (key, reason) = match kind {
                JourneyKind::MissYou => (
                    format!("miss_you:{c}:{as_of}"),
                    format!("overdue {:.2}", r["v"].as_f64().unwrap_or(0.0)),
                ),
                JourneyKind::Welcome => (format!("welcome:{c}"), "first order".to_string()),
                JourneyKind::BigSpender => (
                    format!("big_spender:{}", r["k"].as_str()?),
                    format!("order of {} fen", r["v"].as_i64().unwrap_or(0)),
                ),
                JourneyKind::Recovery => (
                    format!("recovery:{}", r["k"].as_str()?),
                    "service ticket".to_string(),
                ),
            };
            Some(Trigger {
                key,
                customer_id: c,
                home_store_id: r["home_store_id"].as_i64(),
                at,
                reason,
                consented: r["consented"].as_bool() == Some(true),
            })
        })
        .collect())
}

/// Fires every enabled journey on a snapshot (the ETL runs it after each refresh). Returns
/// the counts per journey and status of the new sends.
pub async fn fire_refresh(
    sess: &Session,
    meta: &Db,
) -> CoreResult<BTreeMap<String, BTreeMap<String, i64>>> {
    let mut out = BTreeMap::new();
    let as_of = crate::audience::as_of(sess).await?;
    for j in list(meta).await? {
        let Some(spec) = j.spec.filter(|s| s.enabled) else {
            continue;
        };
        let triggers = refresh_triggers(sess, j.kind, &spec, as_of).await?;
        let c = fire(meta, j.kind, &spec, &triggers, "refresh", "etl").await?;
        out.insert(j.kind.as_str().to_string(), c);
    }
    Ok(out)
}

/// What a live order triggers: a welcome when it is the customer's first, thanks when it is
/// big; and it cancels the customer's pending "miss you" (they came back).
#[allow(clippy::too_many_arguments)]
pub async fn fire_order(
    meta: &Db,
    customer_id: i64,
    home_store_id: Option<i64>,
    consent: crate::campaign::Consent,
    order_no: &str,
    total_fen: i64,
    at: NaiveDateTime,
    orders_before: f64,
    actor: &str,
) -> CoreResult<BTreeMap<String, BTreeMap<String, i64>>> {
    let mut out = BTreeMap::new();
    // One read when no journey is configured (the common case on the hot path).
    let mut specs: HashMap<String, JourneySpec> = HashMap::new();
    for r in meta.fetch("SELECT kind, spec FROM journeys", &[]).await? {
        if let (Some(k), Some(t)) = (get_text(&r, "kind"), get_text(&r, "spec")) {
            specs.insert(k, serde_json::from_str(&t)?);
        }
    }
    if specs.is_empty() {
        return Ok(out);
    }
    if specs.contains_key("miss_you") {
        meta.execute(
            "UPDATE journey_sends SET status = 'cancelled', reason = reason || '; came back' WHERE kind = 'miss_you' AND customer_id = ? AND status = 'planned' AND send_at > ?",
            &[customer_id.into(), c360_model::fmt_ts(at).into()],
        )
        .await?;
    }
    for kind in [JourneyKind::Welcome, JourneyKind::BigSpender] {
        let Some(spec) = specs.get(kind.as_str()).filter(|s| s.enabled) else {
            continue;
        };
        let t = match kind {
            JourneyKind::Welcome if orders_before < 0.5 => Trigger {
                key: format!("welcome:{customer_id}"),
                customer_id,
                home_store_id,
                at,
                reason: "first order".into(),
                consented: consent.allows(spec.channel),
            },
            JourneyKind::BigSpender if total_fen as f64 >= spec.threshold_or_default(kind) => {
                Trigger {
                    key: format!("big_spender:{order_no}"),
                    customer_id,
                    home_store_id,
                    at,
                    reason: format!("order of {total_fen} fen"),
                    consented: consent.allows(spec.channel),
                }
            }
            _ => continue,
        };
        let c = fire(meta, kind, spec, &[t], "live", actor).await?;
        out.insert(kind.as_str().to_string(), c);
    }
    Ok(out)
}

/// The sends of journey `kind`, newest first, limited to customers of `stores` when given.
pub async fn sends(
    meta: &Db,
    kind: JourneyKind,
    stores: Option<&[i64]>,
    limit: i64,
) -> CoreResult<Vec<Send>> {
    let rows = meta
        .fetch(
            "SELECT * FROM journey_sends WHERE kind = ? ORDER BY fired_at DESC, trigger_key LIMIT ?",
            &[kind.as_str().into(), (limit * if stores.is_some() { 50 } else { 1 }).into()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Send {
            trigger_key: get_text(r, "trigger_key").unwrap_or_default(),
            kind,
            customer_id: get_i64(r, "customer_id").unwrap_or(0),
            home_store_id: get_i64(r, "home_store_id"),
            arm: get_text(r, "arm").unwrap_or_default(),
            status: get_text(r, "status").unwrap_or_default(),
            coupon_code: get_text(r, "coupon_code"),
            discount_fen: get_i64(r, "discount_fen"),
            sku: get_text(r, "sku"),
            send_at: get_text(r, "send_at").unwrap_or_default(),
            source: get_text(r, "source").unwrap_or_default(),
            reason: get_text(r, "reason").unwrap_or_default(),
            fired_at: get_text(r, "fired_at").unwrap_or_default(),
        })
        .filter(|s| stores.is_none_or(|st| s.home_store_id.is_some_and(|h| st.contains(&h))))
        .take(limit as usize)
        .collect())
}
