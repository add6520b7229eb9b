//! Campaigns that act on profiles: suggested from segments, targeted by audience filters,
//! personalised (the customer's favourite item at their usual daypart), scheduled around quiet
//! hours and frequency caps, split into a global holdout, a per-campaign holdout and A/B variants
//! by deterministic hashing, and evaluated automatically from the warehouse: coupon redemptions
//! at the POS and in the mini-program attributed by coupon code, incremental revenue and
//! retention against the holdout (CUPED, Bayesian and always-valid), guardrails, sample ratio
//! mismatch, multiple-testing correction and an uplift model.
//!
//! The engine takes a warehouse [`Session`] and the metastore [`Db`], so the CLI uses it without a
//! server. It writes only the metastore (campaigns, members); nothing here sends real messages —
//! `send_at` is the plan a messaging gateway would follow.

use std::collections::{HashMap, HashSet};

use c360_analytics::experiment::{
    self as ab, assign, bayes, cuped, guardrail, holm, srm, unit_uniform, welch, Moments,
};
use c360_analytics::uplift::{qini, TLearner};
use c360_db::{get_i64, get_text, Db, Value as V};
use c360_model::{CampaignAction, CampaignStatus, Channel, Daypart, MemberStatus, OfferKind};
use c360_warehouse::Session;
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

use crate::query::{local_midnight, parse_day, query as q, query_with, Filter};
use crate::{bad, CoreError, CoreResult};

/// Days of spend before a campaign's start kept per member as the CUPED covariate.
pub const PRE_DAYS: i64 = 180;

/// Share of all customers no campaign ever reaches (the global holdout), unless set otherwise.
pub const GLOBAL_HOLDOUT_PCT: f64 = 5.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// RFM classes (the 8: 重要价值客户 … 一般挽留客户); empty = any.
    #[serde(default)]
    pub rfm_class: Vec<String>,
    /// Tiers: 核心客户, 活跃客户, 机会客户, 沉睡/新客户 (as the segmentation names them).
    #[serde(default)]
    pub tier: Vec<String>,
    #[serde(default)]
    pub lifecycle: Vec<String>,
    /// Only customers whose 90-day churn probability is at least this.
    #[schema(minimum = 0, maximum = 1)]
    pub min_churn: Option<f64>,
    /// Home stores; empty = all (a store manager's campaigns are always limited to theirs).
    #[serde(default)]
    pub store_ids: Vec<i64>,
    /// Cap on the audience (highest CLV first).
    pub max_size: Option<usize>,
    /// Only members of this saved audience (its membership at launch; the filters above still
    /// apply).
    pub audience_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// favourite_item (a coupon on the customer's most bought item), amount_off, free_item.
    pub kind: OfferKind,
    /// Coupon value in fen.
    pub discount_fen: i64,
    /// For amount_off / free_item: the item; favourite_item picks each customer's own.
    pub sku: Option<String>,
    /// "usual" (each customer's most frequent daypart) or a daypart code; none = any time.
    pub daypart: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The arm's name (not "holdout" or "global_holdout").
    #[schema(min_length = 1, max_length = 32)]
    pub name: String,
    pub weight: f64,
    /// This arm's offer (default: the campaign's).
    pub offer: Option<Offer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub audience: Audience,
    pub offer: Offer,
    /// wechat (subscription message), sms or push.
    pub channel: Channel,
    /// First and last send day (YYYY-MM-DD).
    #[schema(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub start: String,
    #[schema(format = Date, pattern = r"^(199[0-9]|20[0-9]{2})-[0-9]{2}-[0-9]{2}$")]
    pub end: String,
    /// Days after `end` during which redemptions and orders still count.
    #[serde(default = "default_attr")]
    #[schema(minimum = 0, maximum = 60)]
    pub attribution_days: i64,
    /// At most this many messages to one customer (all campaigns) in `cap_days` days.
    #[serde(default = "default_cap")]
    #[schema(minimum = 1)]
    pub frequency_cap: u32,
    #[serde(default = "default_cap_days")]
    #[schema(minimum = 1)]
    pub cap_days: i64,
    /// No sends from this hour to `quiet_end` (local time).
    #[serde(default = "default_quiet_start")]
    #[schema(maximum = 23)]
    pub quiet_start: u32,
    #[serde(default = "default_quiet_end")]
    #[schema(maximum = 23)]
    pub quiet_end: u32,
    /// Share of the audience kept as this campaign's holdout (percent).
    #[serde(default = "default_holdout")]
    #[schema(minimum = 1, maximum = 50)]
    pub holdout_pct: f64,
    /// A/B arms; none = one treatment arm.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

fn default_attr() -> i64 {
    7
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
fn default_holdout() -> f64 {
    10.0
}

fn daypart_of(code: &str) -> Option<Daypart> {
    Daypart::ALL.into_iter().find(|d| d.code() == code)
}

fn check_offer(path: &str, o: &Offer) -> CoreResult<()> {
    if !(0..=100_000).contains(&o.discount_fen) {
        return Err(bad(format!(
            "{path}.discount_fen: {} is outside 0..=100000",
            o.discount_fen
        )));
    }
    if o.kind != OfferKind::FavouriteItem && o.sku.is_none() {
        return Err(bad(format!("{path}.sku: required for {}", o.kind)));
    }
    if let Some(sku) = &o.sku {
        if !looks_like_sku(sku) {
            return Err(bad(format!("{path}.sku: {sku:?} is not on the menu")));
        }
    }
    if let Some(d) = &o.daypart {
        if d != "usual" && daypart_of(d).is_none() {
            return Err(bad(format!(
                "{path}.daypart: {d:?} is not usual, breakfast, lunch, afternoon, dinner or late_night"
            )));
        }
    }
    Ok(())
}

/// Menu skus look like two letters and two digits (HD01); the warehouse check happens at launch.
fn looks_like_sku(sku: &str) -> bool {
    sku.len() == 4
        && sku.chars().take(2).all(|c| c.is_ascii_uppercase())
        && sku.chars().skip(2).all(|c| c.is_ascii_digit())
}

impl CampaignSpec {
    /// Checks every field; the error names the field and why.
    pub fn validate(&self) -> CoreResult<(NaiveDate, NaiveDate)> {
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(bad("name: must be 1 to 100 characters"));
        }
        // The name and the arms' names are columns of their own (NUL, which PostgreSQL text
        // cannot hold, is refused on every backend alike).
        if self.name.contains('\0') {
            return Err(bad("name: must not contain NUL"));
        }
        check_offer("offer", &self.offer)?;
        let start = parse_day("start", &self.start)?;
        let end = parse_day("end", &self.end)?;
        if end < start {
            return Err(bad("end: before start"));
        }
        if (end - start).num_days() > 92 {
            return Err(bad("end: a campaign runs at most 92 days"));
        }
        if !(0..=60).contains(&self.attribution_days) {
            return Err(bad("attribution_days: must be 0..=60"));
        }
        if self.frequency_cap == 0 || self.cap_days < 1 {
            return Err(bad("frequency_cap: at least 1 message in at least 1 day"));
        }
        if self.quiet_start > 23 || self.quiet_end > 23 {
            return Err(bad("quiet_start/quiet_end: hours 0..=23"));
        }
        if !(1.0..=50.0).contains(&self.holdout_pct) {
            return Err(bad(
                "holdout_pct: must be 1..=50 (without a holdout the effect cannot be measured)",
            ));
        }
        let mut names = HashSet::new();
        for (i, v) in self.variants.iter().enumerate() {
            if v.name.is_empty() || v.name == "holdout" || v.name == "global_holdout" {
                return Err(bad(format!("variants[{i}].name: empty or reserved")));
            }
            if v.name.contains('\0') || v.name.chars().count() > 32 {
                return Err(bad(format!(
                    "variants[{i}].name: at most 32 characters, no NUL"
                )));
            }
            if !names.insert(&v.name) {
                return Err(bad(format!("variants[{i}].name: {:?} twice", v.name)));
            }
            if !(v.weight > 0.0 && v.weight.is_finite()) {
                return Err(bad(format!("variants[{i}].weight: must be > 0")));
            }
            if let Some(o) = &v.offer {
                check_offer(&format!("variants[{i}].offer"), o)?;
            }
        }
        if let Some(c) = self.audience.min_churn {
            if !(0.0..=1.0).contains(&c) {
                return Err(bad("audience.min_churn: must be within 0..=1"));
            }
        }
        for c in &self.audience.rfm_class {
            if c360_model::RfmClass::parse(c).is_none() {
                return Err(bad(format!(
                    "audience.rfm_class: {c:?} is not one of the 8 RFM classes"
                )));
            }
        }
        Ok((start, end))
    }

    /// (arm name, weight, offer) of each treated arm.
    fn arms(&self) -> Vec<(String, f64, Offer)> {
        if self.variants.is_empty() {
            vec![("treatment".into(), 1.0, self.offer.clone())]
        } else {
            self.variants
                .iter()
                .map(|v| {
                    (
                        v.name.clone(),
                        v.weight,
                        v.offer.clone().unwrap_or_else(|| self.offer.clone()),
                    )
                })
                .collect()
        }
    }
}

/// The snapshot's "today": the day after the RFM as-of date.
pub async fn today(sess: &Session) -> CoreResult<NaiveDate> {
    let r = q(
        sess,
        "SELECT CAST(MAX(as_of) AS VARCHAR) AS d FROM customer_segmentation",
    )
    .await?;
    let d = r
        .first()
        .and_then(|v| v["d"].as_str())
        .ok_or(CoreError::NoData)?;
    Ok(parse_day("as_of", d)? + Duration::days(1))
}

/// Campaign ideas from the segments as they are now: who, how many, what they are worth, and
/// the offer that fits them.
pub async fn suggest(sess: &Session, stores: Option<&[i64]>) -> CoreResult<Vec<Suggestion>> {
    let mut scope = Filter::new("rfm_class IS NOT NULL");
    scope.scope("home_store_id", stores);
    let rows = query_with(
        sess,
        &format!(
            "SELECT rfm_class, COUNT(*) AS customers, AVG(p_churn_90d) AS churn, \
             SUM(COALESCE(clv_12m_fen, 0)) AS clv_fen, AVG(avg_order_fen) AS aov_fen \
             FROM v_customer_360 WHERE {} GROUP BY rfm_class ORDER BY clv_fen DESC",
            scope.sql()
        ),
        scope.params,
    )
    .await?;
    let start = today(sess).await?;
    let mut out = Vec::new();
    for r in rows {
        let class = r["rfm_class"].as_str().unwrap_or_default().to_string();
        let n = r["customers"].as_i64().unwrap_or(0);
        if n < 20 {
            continue;
        }
        let aov = r["aov_fen"].as_f64().unwrap_or(2500.0);
        // What each class needs (the playbook of the 8 RFM classes).
        use c360_model::RfmClass as C;
        // 一般价值客户 and any class this playbook does not know: raise the basket.
        let (goal_zh, goal_en, kind, disc_share, days) = match C::parse(&class) {
            Some(C::ImportantRetain) => (
                "挽回：用其最爱单品在常用时段召回",
                "Win back with their favourite item at their usual daypart",
                OfferKind::FavouriteItem,
                0.25,
                14,
            ),
            Some(C::ImportantKeep) => (
                "唤醒：常用时段最爱单品券",
                "Re-engage with a favourite-item coupon at their usual time",
                OfferKind::FavouriteItem,
                0.2,
                14,
            ),
            Some(C::ImportantDevelop) => (
                "提频：第二单立减",
                "Raise frequency with an amount-off coupon",
                OfferKind::FavouriteItem,
                0.15,
                21,
            ),
            Some(C::ImportantValue) => (
                "维护：会员专享新品尝鲜",
                "Keep them close with a members' new-item tasting",
                OfferKind::FavouriteItem,
                0.1,
                21,
            ),
            Some(C::GeneralRetain) => (
                "低成本召回",
                "Low-cost win-back",
                OfferKind::FavouriteItem,
                0.15,
                14,
            ),
            Some(C::GeneralKeep) => (
                "常用时段提醒",
                "Usual-daypart reminder",
                OfferKind::FavouriteItem,
                0.1,
                14,
            ),
            Some(C::GeneralDevelop) => (
                "培养习惯：最爱单品券",
                "Build the habit with a favourite-item coupon",
                OfferKind::FavouriteItem,
                0.15,
                21,
            ),
            _ => (
                "提升客单：加购小食",
                "Raise basket size with a snack add-on",
                OfferKind::FavouriteItem,
                0.1,
                21,
            ),
        };
        let discount = ((aov * disc_share / 100.0).round() * 100.0).clamp(300.0, 2000.0) as i64;
        let spec = CampaignSpec {
            name: format!("{class} · {goal_zh}"),
            audience: Audience {
                rfm_class: vec![class.clone()],
                store_ids: stores.map(|s| s.to_vec()).unwrap_or_default(),
                ..Default::default()
            },
            offer: Offer {
                kind,
                discount_fen: discount,
                sku: None,
                daypart: Some("usual".into()),
            },
            channel: Channel::Wechat,
            start: start.to_string(),
            end: (start + Duration::days(days)).to_string(),
            attribution_days: 7,
            frequency_cap: 2,
            cap_days: 7,
            quiet_start: 22,
            quiet_end: 8,
            holdout_pct: 10.0,
            variants: vec![],
        };
        out.push(Suggestion {
            rfm_class: class,
            goal_zh,
            goal_en,
            customers: n,
            avg_churn: r["churn"].as_f64(),
            clv_fen: r["clv_fen"].as_f64(),
            spec,
        });
    }
    Ok(out)
}

/// A campaign idea for one RFM class, ready to create.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub rfm_class: String,
    pub goal_zh: &'static str,
    pub goal_en: &'static str,
    pub customers: i64,
    pub avg_churn: Option<f64>,
    pub clv_fen: Option<f64>,
    pub spec: CampaignSpec,
}

/// Stores a draft campaign; returns its id.
pub async fn create(
    meta: &c360_metastore::Metastore,
    spec: &CampaignSpec,
    by: &str,
) -> CoreResult<i64> {
    spec.validate()?;
    let text = serde_json::to_string(spec)?;
    let at = chrono::Utc::now().to_rfc3339();
    Ok(meta
        .insert_with_id(
            c360_metastore::Counter::Campaigns,
            "campaigns",
            &[
                "campaign_id",
                "name",
                "status",
                "spec",
                "created_by",
                "created_at",
                "audience_size",
            ],
            |id| {
                vec![
                    id.into(),
                    spec.name.clone().into(),
                    "draft".into(),
                    text.clone().into(),
                    by.into(),
                    at.clone().into(),
                    0i64.into(),
                ]
            },
        )
        .await?)
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub campaign_id: i64,
    pub name: String,
    pub status: CampaignStatus,
    pub spec: CampaignSpec,
    pub created_by: String,
    pub created_at: String,
    pub launched_at: Option<String>,
    pub audience_size: i64,
}

pub async fn get(meta: &Db, id: i64) -> CoreResult<Campaign> {
    let r = meta
        .fetch(
            "SELECT * FROM campaigns WHERE campaign_id = ?",
            &[id.into()],
        )
        .await?;
    let r = r
        .first()
        .ok_or_else(|| CoreError::NotFound(format!("campaign {id} does not exist")))?;
    Ok(Campaign {
        campaign_id: id,
        name: get_text(r, "name").unwrap_or_default(),
        status: stored_state(r, "status", CampaignStatus::parse)?,
        spec: serde_json::from_str(&get_text(r, "spec").unwrap_or_default())?,
        created_by: get_text(r, "created_by").unwrap_or_default(),
        created_at: get_text(r, "created_at").unwrap_or_default(),
        launched_at: get_text(r, "launched_at"),
        audience_size: get_i64(r, "audience_size").unwrap_or(0),
    })
}

pub async fn list(meta: &Db) -> CoreResult<Vec<Campaign>> {
    let r = meta
        .fetch_all("SELECT campaign_id FROM campaigns ORDER BY campaign_id DESC")
        .await?;
    let mut out = Vec::new();
    for x in r {
        out.push(get(meta, get_i64(&x, "campaign_id").unwrap_or(0)).await?);
    }
    Ok(out)
}

/// Pause, resume, complete or cancel; only the moves a campaign's life allows. The move is one
/// conditional update (`… WHERE status IN (the states it may leave)`) in a transaction with the
/// members it holds or releases, so two concurrent moves cannot both apply.
pub async fn transition(meta: &Db, id: i64, action: CampaignAction) -> CoreResult<CampaignStatus> {
    let (from, to) = action.moves();
    let mut tx = meta.begin().await?;
    let mut args: Vec<V> = vec![to.as_str().into(), id.into()];
    args.extend(from.iter().map(|s| V::from(s.as_str())));
    let marks = vec!["?"; from.len()].join(", ");
    let moved = tx
        .execute(
            &format!(
                "UPDATE campaigns SET status = ? WHERE campaign_id = ? AND status IN ({marks})"
            ),
            &args,
        )
        .await?;
    if moved == 0 {
        drop(tx);
        let c = get(meta, id).await?;
        return Err(CoreError::Conflict(format!(
            "action: cannot {action} a campaign that is {}",
            c.status
        )));
    }
    let members = match action {
        CampaignAction::Pause | CampaignAction::Cancel => {
            Some((MemberStatus::Suppressed, MemberStatus::Planned))
        }
        // Messages held by the pause go out again (a gateway skips send times already past).
        CampaignAction::Resume => Some((MemberStatus::Planned, MemberStatus::Suppressed)),
        CampaignAction::Complete => None,
    };
    if let Some((now, was)) = members {
        tx.execute(
            "UPDATE campaign_members SET status = ? WHERE campaign_id = ? AND status = ?",
            &[now.as_str().into(), id.into(), was.as_str().into()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(to)
}

/// The global holdout percentage (campaign_settings), default [`GLOBAL_HOLDOUT_PCT`].
pub async fn global_holdout_pct(meta: &Db) -> CoreResult<f64> {
    let r = meta
        .fetch_all("SELECT value FROM campaign_settings WHERE name = 'global_holdout_pct'")
        .await?;
    Ok(r.first()
        .and_then(|r| get_text(r, "value"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(GLOBAL_HOLDOUT_PCT))
}

pub async fn set_global_holdout_pct(meta: &Db, pct: f64) -> CoreResult<()> {
    if !(0.0..=20.0).contains(&pct) {
        return Err(bad("global_holdout_pct: must be within 0..=20"));
    }
    meta.upsert_rows(
        "campaign_settings",
        &["name", "value"],
        "name",
        &[vec!["global_holdout_pct".into(), pct.to_string().into()]],
    )
    .await?;
    Ok(())
}

/// Whether a customer is in the global holdout (fixed by hash; independent of any campaign).
pub fn in_global_holdout(customer_id: i64, pct: f64) -> bool {
    unit_uniform("c360-global-holdout", &customer_id.to_string()) * 100.0 < pct
}

fn coupon_code(campaign: i64, customer: i64) -> String {
    let h = ab::stable_hash(&["coupon", &campaign.to_string(), &customer.to_string()]);
    format!("C{campaign}-{}", code8(h))
}

/// Eight characters of a coupon code from a hash's top 40 bits (no I or O, which read as 1 and 0).
pub(crate) fn code8(h: u64) -> String {
    let mut x = h >> 24;
    let mut s = String::new();
    for _ in 0..8 {
        s.push(b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[(x % 34) as usize] as char);
        x /= 34;
    }
    s
}

/// The send time: `hour` on `day`, moved out of quiet hours to the next allowed hour.
pub fn send_time(day: NaiveDate, hour: u32, quiet_start: u32, quiet_end: u32) -> NaiveDateTime {
    let quiet = |h: u32| {
        if quiet_start == quiet_end {
            false
        } else if quiet_start > quiet_end {
            h >= quiet_start || h < quiet_end
        } else {
            h >= quiet_start && h < quiet_end
        }
    };
    let mut t = day.and_time(NaiveTime::from_hms_opt(hour.min(23), 0, 0).expect("hour below 24"));
    for _ in 0..24 {
        if !quiet(t.hour()) {
            break;
        }
        t += Duration::hours(1);
    }
    t
}

/// Materialises the audience: arms, personal offers, coupon codes and send times. Returns
/// counts per arm.
///
/// `saved`: the members of the saved audience the spec names (`audience.audience_id`), which
/// the caller reads (a server with the live changes since the snapshot).
pub async fn launch(
    sess: &Session,
    meta: &Db,
    id: i64,
    scope: Option<&[i64]>,
    saved: Option<&roaring::RoaringTreemap>,
) -> CoreResult<Launched> {
    let c = get(meta, id).await?;
    if c.status != CampaignStatus::Draft {
        return Err(CoreError::Conflict(format!(
            "campaign {id} is {}, not a draft",
            c.status
        )));
    }
    let spec = &c.spec;
    let (start, end) = spec.validate()?;
    let a = &spec.audience;
    let mut w = Filter::new("rfm_class IS NOT NULL");
    if !a.rfm_class.is_empty() {
        w.one_of("rfm_class", &a.rfm_class);
    }
    if !a.tier.is_empty() {
        w.one_of("tier", &a.tier);
    }
    if !a.lifecycle.is_empty() {
        w.one_of("lifecycle", &a.lifecycle);
    }
    if let Some(m) = a.min_churn {
        w.ge("p_churn_90d", m);
    }
    let mut stores: Vec<i64> = a.store_ids.clone();
    if let Some(sc) = scope {
        if stores.is_empty() {
            stores = sc.to_vec();
        } else if let Some(x) = stores.iter().find(|s| !sc.contains(s)) {
            return Err(CoreError::Forbidden(format!(
                "audience.store_ids: {x} is not one of your stores"
            )));
        }
    }
    if !stores.is_empty() {
        w.one_of("home_store_id", &stores);
    }
    if a.audience_id.is_some() && saved.is_none() {
        return Err(CoreError::Internal(
            "launch: the saved audience's members were not read".into(),
        ));
    }
    // Only customers who consented to the campaign's channel become members, before any arm is
    // drawn: holdouts are as reachable as the treated, so the comparison stays fair.
    let consent_col = consent_column(spec.channel);
    let refused_clause = format!("{} AND c.{consent_col} IS NOT TRUE", w.sql());
    let refused_params = w.params.clone();
    w.eq(consent_col, true);
    let clause = w.sql();
    // With a saved audience the cap applies after its members are picked out.
    let limit = match (a.max_size, saved) {
        (Some(m), None) => format!(" LIMIT {}", w.value(m as i64)),
        _ => String::new(),
    };
    // Pre-period spend (the CUPED covariate) over the PRE_DAYS before the start: longer than the
    // window, because a win-back audience has by definition bought little just before it.
    let pre_from = w.value(local_midnight(start - Duration::days(PRE_DAYS)));
    let start_at = w.value(local_midnight(start));
    let rows = query_with(
        sess,
        &format!(
            "WITH pre AS (SELECT customer_id, SUM(total_fen) AS pre_fen FROM orders \
               WHERE status = 'paid' AND order_time >= {pre_from} \
               AND order_time < {start_at} GROUP BY customer_id), \
             fav AS (SELECT customer_id, product_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY qty DESC, product_id) AS rk \
               FROM v_customer_products), \
             dp AS (SELECT customer_id, daypart, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY SUM(orders) DESC, daypart) AS rk \
               FROM v_customer_time GROUP BY customer_id, daypart) \
             SELECT c.customer_id, c.home_store_id, COALESCE(pre.pre_fen, 0) AS pre_fen, p.sku AS fav_sku, dp.daypart AS usual \
             FROM v_customer_360 c LEFT JOIN pre ON pre.customer_id = c.customer_id \
             LEFT JOIN fav ON fav.customer_id = c.customer_id AND fav.rk = 1 \
             LEFT JOIN products p ON p.product_id = fav.product_id \
             LEFT JOIN dp ON dp.customer_id = c.customer_id AND dp.rk = 1 \
             WHERE {clause} ORDER BY COALESCE(c.clv_12m_fen, 0) DESC, c.customer_id{limit}"
        ),
        w.params,
    )
    .await?;
    // Those left out: counted in SQL, or (a saved audience) their ids against its members.
    let no_consent = match saved {
        None => query_with(
            sess,
            &format!("SELECT COUNT(*) AS n FROM v_customer_360 c WHERE {refused_clause}"),
            refused_params,
        )
        .await?
        .first()
        .and_then(|r| r["n"].as_i64())
        .unwrap_or(0) as usize,
        Some(m) => query_with(
            sess,
            &format!("SELECT c.customer_id FROM v_customer_360 c WHERE {refused_clause}"),
            refused_params,
        )
        .await?
        .iter()
        .filter_map(|r| r["customer_id"].as_i64())
        .filter(|c| m.contains(*c as u64))
        .count(),
    };
    let skus: HashSet<String> = q(sess, "SELECT sku FROM products")
        .await?
        .iter()
        .filter_map(|r| r["sku"].as_str().map(String::from))
        .collect();
    for (_, _, o) in spec.arms() {
        if let Some(s) = &o.sku {
            if !skus.contains(s) {
                return Err(bad(format!("offer.sku: {s:?} is not a product")));
            }
        }
    }
    let gpct = global_holdout_pct(meta).await?;
    let arms = spec.arms();
    let treat_w: f64 = arms.iter().map(|a| a.1).sum();
    let mut weights = vec![spec.holdout_pct / 100.0];
    for a in &arms {
        weights.push((1.0 - spec.holdout_pct / 100.0) * a.1 / treat_w);
    }
    // Messages already planned for these customers by other campaigns (frequency cap).
    let mut planned: HashMap<i64, Vec<NaiveDateTime>> = HashMap::new();
    for r in meta
        .fetch(
            "SELECT customer_id, send_at FROM campaign_members WHERE campaign_id <> ? AND status IN ('planned', 'sent')",
            &[id.into()],
        )
        .await?
    {
        if let (Some(cid), Some(t)) = (get_i64(&r, "customer_id"), get_text(&r, "send_at")) {
            if let Ok(t) = c360_model::parse_ts(&t) {
                planned.entry(cid).or_default().push(t);
            }
        }
    }
    let salt = format!("campaign:{id}");
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut out: Vec<Vec<V>> = Vec::new();
    let mut capped = 0usize;
    // Erased customers whose warehouse part is pending are still in the snapshot: never in a
    // send list.
    let erased = crate::privacy::pending_erased_ids(meta).await?;
    let picked = rows.iter().filter(|r| {
        r["customer_id"]
            .as_i64()
            .is_some_and(|c| !erased.contains(&c) && saved.is_none_or(|m| m.contains(c as u64)))
    });
    let picked: Vec<&serde_json::Value> = match (a.max_size, saved) {
        (Some(m), Some(_)) => picked.take(m).collect(),
        _ => picked.collect(),
    };
    for r in picked {
        let Some(cid) = r["customer_id"].as_i64() else {
            continue;
        };
        let (arm, offer) = if in_global_holdout(cid, gpct) {
            ("global_holdout".to_string(), None)
        } else {
            let k = assign(&salt, &cid.to_string(), &weights);
            if k == 0 {
                ("holdout".to_string(), None)
            } else {
                (arms[k - 1].0.clone(), Some(arms[k - 1].2.clone()))
            }
        };
        *counts.entry(arm.clone()).or_default() += 1;
        let usual = r["usual"].as_str().and_then(daypart_of);
        let o = offer.as_ref().unwrap_or(&spec.offer);
        let dp = match o.daypart.as_deref() {
            Some("usual") => usual,
            Some(x) => daypart_of(x),
            None => None,
        };
        let sku = match o.kind {
            OfferKind::FavouriteItem => r["fav_sku"].as_str().map(String::from),
            _ => o.sku.clone(),
        };
        // An hour before the daypart opens (so the message is read before the meal), moved
        // out of quiet hours, on the first day the frequency cap allows.
        let hour = dp.map_or(11, |d| d.hours().0.saturating_sub(1));
        let mut status = if offer.is_some() {
            MemberStatus::Planned
        } else {
            MemberStatus::NotSent
        };
        let mut at = send_time(start, hour, spec.quiet_start, spec.quiet_end);
        if offer.is_some() {
            let mine = planned.entry(cid).or_default();
            while mine
                .iter()
                .filter(|t| (at - **t).num_days().abs() < spec.cap_days)
                .count()
                >= spec.frequency_cap as usize
            {
                at += Duration::days(1);
                if at.date() > end {
                    break;
                }
            }
            if at.date() > end {
                status = MemberStatus::Capped;
                capped += 1;
            } else {
                mine.push(at);
            }
        }
        out.push(vec![
            id.into(),
            cid.into(),
            arm.into(),
            offer.as_ref().map(|_| coupon_code(id, cid)).into(),
            offer.as_ref().map(|o| o.discount_fen).into(),
            sku.into(),
            dp.map(|d| d.code().to_string()).into(),
            c360_model::fmt_ts(at).into(),
            status.as_str().into(),
            r["home_store_id"].as_i64().into(),
            r["pre_fen"].as_i64().unwrap_or(0).into(),
        ]);
    }
    // Claim the draft and write its members in one transaction: the conditional update lets
    // exactly one of two concurrent launches through; the other rolls back and is told.
    let mut tx = meta.begin().await?;
    let claimed = tx
        .execute(
            "UPDATE campaigns SET status = 'running', launched_at = ?, audience_size = ? WHERE campaign_id = ? AND status = 'draft'",
            &[
                chrono::Utc::now().to_rfc3339().into(),
                (out.len() as i64).into(),
                id.into(),
            ],
        )
        .await?;
    if claimed == 0 {
        return Err(CoreError::Conflict(format!(
            "campaign {id} is no longer a draft (launched meanwhile)"
        )));
    }
    tx.execute(
        "DELETE FROM campaign_members WHERE campaign_id = ?",
        &[id.into()],
    )
    .await?;
    meta.write_rows_in(
        tx.sqlx(),
        "campaign_members",
        &[
            "campaign_id",
            "customer_id",
            "arm",
            "coupon_code",
            "discount_fen",
            "sku",
            "daypart",
            "send_at",
            "status",
            "home_store_id",
            "pre_spend_fen",
        ],
        None,
        &out,
    )
    .await?;
    tx.commit().await?;
    Ok(Launched {
        campaign_id: id,
        audience: out.len(),
        arms: counts,
        capped,
        no_consent,
        global_holdout_pct: gpct,
    })
}

/// A customer's marketing consent per channel (never asked counts as no).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consent {
    pub wechat: bool,
    pub sms: bool,
    pub push: bool,
}

impl Consent {
    /// The consent a `v_customer_360` row records.
    pub fn of_row(r: &serde_json::Value) -> Consent {
        let yes = |c: Channel| r[consent_column(c)].as_bool() == Some(true);
        Consent {
            wechat: yes(Channel::Wechat),
            sms: yes(Channel::Sms),
            push: yes(Channel::Push),
        }
    }
    pub fn allows(self, channel: Channel) -> bool {
        match channel {
            Channel::Wechat => self.wechat,
            Channel::Sms => self.sms,
            Channel::Push => self.push,
        }
    }
}

/// The `v_customer_360` column holding a customer's consent to `channel`.
pub fn consent_column(channel: Channel) -> &'static str {
    match channel {
        Channel::Wechat => "consent_wechat",
        Channel::Sms => "consent_sms",
        Channel::Push => "consent_push",
    }
}

/// A launched campaign's audience.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Launched {
    pub campaign_id: i64,
    /// Members (every arm, holdouts included).
    pub audience: usize,
    /// Members per arm.
    pub arms: std::collections::BTreeMap<String, usize>,
    /// Treated members the frequency cap held back.
    pub capped: usize,
    /// Customers the audience matched who have not consented to the campaign's channel (never
    /// asked, refused or withdrawn): not members, in no arm.
    pub no_consent: usize,
    pub global_holdout_pct: f64,
}

/// The whole marketing programme's effect: every customer in the global holdout (never reached by
/// any campaign; a random share by hash) against every other customer, revenue per customer over
/// `[from, to]`, CUPED on the same length of time before. An intent-to-treat estimate: customers
/// no campaign targeted dilute it, as they should.
pub async fn program_effect(
    sess: &Session,
    meta: &Db,
    from: NaiveDate,
    to: NaiveDate,
    scope: Option<&[i64]>,
) -> CoreResult<ProgramEffect> {
    if to < from {
        return Err(bad("to: before from"));
    }
    let pct = global_holdout_pct(meta).await?;
    let days = (to - from).num_days() + 1;
    let mut f = Filter::new("c.rfm_class IS NOT NULL");
    f.scope("c.home_store_id", scope);
    let scope_sql = f.sql();
    let pre_at = f.value(local_midnight(from - Duration::days(days)));
    let stop_at = f.value(local_midnight(to + Duration::days(1)));
    let from_at = f.value(local_midnight(from));
    let rows = query_with(
        sess,
        &format!(
            "WITH w AS (SELECT customer_id, \
               SUM(CASE WHEN order_time >= {from_at} THEN total_fen ELSE 0 END) AS post, \
               SUM(CASE WHEN order_time < {from_at} THEN total_fen ELSE 0 END) AS pre \
               FROM orders WHERE status = 'paid' AND order_time >= {pre_at} \
               AND order_time < {stop_at} GROUP BY customer_id) \
             SELECT c.customer_id, COALESCE(w.post, 0) AS post, COALESCE(w.pre, 0) AS pre \
             FROM v_customer_360 c LEFT JOIN w ON w.customer_id = c.customer_id \
             WHERE {scope_sql}"
        ),
        f.params,
    )
    .await?;
    let mut held = Vec::new();
    let (mut y, mut x) = (Vec::new(), Vec::new());
    for r in &rows {
        let cid = r["customer_id"].as_i64().unwrap_or(0);
        held.push(in_global_holdout(cid, pct));
        y.push(r["post"].as_f64().unwrap_or(0.0));
        x.push(r["pre"].as_f64().unwrap_or(0.0));
    }
    let (adj, theta) = cuped(&y, &x);
    let pick = |v: &[f64], h: bool| {
        Moments::of(
            &v.iter()
                .zip(&held)
                .filter(|(_, g)| **g == h)
                .map(|(a, _)| *a)
                .collect::<Vec<_>>(),
        )
    };
    let n_h = held.iter().filter(|h| **h).count();
    let reached: i64 = meta
        .fetch(
            "SELECT COUNT(DISTINCT customer_id) AS n FROM campaign_members WHERE status IN ('planned', 'sent') \
             AND send_at >= ? AND send_at < ?",
            &[
                format!("{from} 00:00:00").into(),
                format!("{} 00:00:00", to + Duration::days(1)).into(),
            ],
        )
        .await?
        .first()
        .and_then(|r| get_i64(r, "n"))
        .unwrap_or(0);
    let (c, t) = (pick(&adj, true), pick(&adj, false));
    let n = (held.len() - n_h) as f64;
    let f = welch(c, t, 0.05);
    Ok(ProgramEffect {
        from: from.to_string(),
        to: to.to_string(),
        global_holdout_pct: pct,
        customers: held.len(),
        global_holdout: n_h,
        customers_messaged: reached,
        srm: srm(
            &[n_h as u64, (held.len() - n_h) as u64],
            &[pct, 100.0 - pct],
        ),
        revenue_per_customer: arm_json("programme", pick(&y, true), pick(&y, false), 1e4),
        revenue_per_customer_cuped: arm_json("programme", c, t, 1e4),
        incremental_revenue_fen: f.diff * n,
        incremental_revenue_ci: vec![f.ci_low * n, f.ci_high * n],
        cuped_theta: theta,
    })
}

/// Every campaign together against the global holdout.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProgramEffect {
    pub from: String,
    pub to: String,
    #[schema(value_type = Option<f64>)]
    pub global_holdout_pct: f64,
    /// Customers counted (in the caller's stores).
    pub customers: usize,
    /// Of them, in the global holdout.
    pub global_holdout: usize,
    /// Of them, messaged by any campaign.
    pub customers_messaged: i64,
    pub srm: ab::Srm,
    pub revenue_per_customer: ArmEffect,
    pub revenue_per_customer_cuped: ArmEffect,
    #[schema(value_type = Option<f64>)]
    pub incremental_revenue_fen: f64,
    #[schema(value_type = Vec<Option<f64>>)]
    pub incremental_revenue_ci: Vec<f64>,
    #[schema(value_type = Option<f64>)]
    pub cuped_theta: f64,
}

/// One member as planned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub customer_id: i64,
    pub arm: String,
    pub coupon_code: Option<String>,
    pub discount_fen: Option<i64>,
    pub sku: Option<String>,
    pub daypart: Option<String>,
    pub send_at: String,
    pub status: MemberStatus,
    pub home_store_id: Option<i64>,
    pub pre_spend_fen: i64,
}

pub async fn members(meta: &Db, id: i64) -> CoreResult<Vec<Member>> {
    let r = meta
        .fetch(
            "SELECT * FROM campaign_members WHERE campaign_id = ? ORDER BY customer_id",
            &[id.into()],
        )
        .await?;
    r.iter()
        .map(|r| {
            Ok(Member {
                customer_id: get_i64(r, "customer_id").unwrap_or(0),
                arm: get_text(r, "arm").unwrap_or_default(),
                coupon_code: get_text(r, "coupon_code"),
                discount_fen: get_i64(r, "discount_fen"),
                sku: get_text(r, "sku"),
                daypart: get_text(r, "daypart"),
                send_at: get_text(r, "send_at").unwrap_or_default(),
                status: stored_state(r, "status", MemberStatus::parse)?,
                home_store_id: get_i64(r, "home_store_id"),
                pre_spend_fen: get_i64(r, "pre_spend_fen").unwrap_or(0),
            })
        })
        .collect()
}

/// A state column read back: a value this release does not know is an internal error naming it.
fn stored_state<T>(
    r: &c360_db::sqlx::any::AnyRow,
    col: &str,
    parse: fn(&str) -> Option<T>,
) -> CoreResult<T> {
    let v = get_text(r, col).unwrap_or_default();
    parse(&v).ok_or_else(|| CoreError::Internal(format!("stored {col} {v:?} is not a known state")))
}

/// Members with their customers' source keys (`M:…`, `U:…`) from the identity graph: what a
/// messaging gateway, or the simulator, needs to reach them in the source systems.
pub async fn members_with_keys(meta: &Db, id: i64) -> CoreResult<Vec<(Member, Vec<String>)>> {
    let mut keys: HashMap<i64, Vec<String>> = HashMap::new();
    for r in meta
        .fetch(
            "SELECT n.source_key, n.customer_id FROM identity_nodes n JOIN campaign_members m \
             ON m.customer_id = n.customer_id WHERE m.campaign_id = ?",
            &[id.into()],
        )
        .await?
    {
        if let (Some(k), Some(c)) = (get_text(&r, "source_key"), get_i64(&r, "customer_id")) {
            keys.entry(c).or_default().push(k);
        }
    }
    Ok(members(meta, id)
        .await?
        .into_iter()
        .map(|m| {
            let k = keys.remove(&m.customer_id).unwrap_or_default();
            (m, k)
        })
        .collect())
}

/// One arm's metric against its comparison group: Welch, Bayesian and always-valid.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmEffect {
    pub arm: String,
    #[schema(value_type = Option<f64>)]
    pub control_mean: f64,
    #[schema(value_type = Option<f64>)]
    pub treatment_mean: f64,
    /// treatment − control.
    #[schema(value_type = Option<f64>)]
    pub diff: f64,
    /// 95% interval of `diff`.
    #[schema(value_type = Vec<Option<f64>>)]
    pub ci: Vec<f64>,
    #[schema(value_type = Option<f64>)]
    pub p_value: f64,
    /// diff / control mean (none when the control mean is 0).
    pub lift: Option<f64>,
    pub lift_ci: Vec<Option<f64>>,
    #[schema(value_type = Option<f64>)]
    pub chance_to_win: f64,
    #[schema(value_type = Option<f64>)]
    pub expected_loss: f64,
    /// mSPRT p-value, valid however often it is looked at.
    #[schema(value_type = Option<f64>)]
    pub always_valid_p: f64,
}

/// A number, or none when it is not finite (JSON has no NaN).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn arm_json(name: &str, c: Moments, t: Moments, seq_tau: f64) -> ArmEffect {
    let f = welch(c, t, 0.05);
    let b = bayes(c, t);
    ArmEffect {
        arm: name.to_string(),
        control_mean: f.control_mean,
        treatment_mean: f.treatment_mean,
        diff: f.diff,
        ci: vec![f.ci_low, f.ci_high],
        p_value: f.p_value,
        lift: finite(f.lift),
        lift_ci: vec![finite(f.lift_ci_low), finite(f.lift_ci_high)],
        chance_to_win: b.chance_to_win,
        expected_loss: b.expected_loss_treatment,
        always_valid_p: ab::msprt_p(f.diff, f.se * f.se, seq_tau),
    }
}

/// Guardrail verdicts of an arm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Guardrails {
    pub refund_rate: ab::GuardrailStatus,
    pub orders_per_member: ab::GuardrailStatus,
}

/// One treated arm against the campaign's holdout.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArmResult {
    pub arm: String,
    pub members: usize,
    /// Members messaged (planned or sent).
    pub sent: usize,
    /// Members the frequency cap held back.
    pub capped: usize,
    pub revenue_per_member: ArmEffect,
    pub revenue_per_member_cuped: ArmEffect,
    pub retention: ArmEffect,
    #[schema(value_type = Option<f64>)]
    pub incremental_revenue_fen: f64,
    #[schema(value_type = Vec<Option<f64>>)]
    pub incremental_revenue_ci: Vec<f64>,
    #[schema(value_type = Option<f64>)]
    pub incremental_retained: f64,
    #[schema(value_type = Option<f64>)]
    pub raw_revenue_diff: f64,
    pub redemptions: i64,
    #[schema(value_type = Option<f64>)]
    pub redemption_rate: f64,
    pub redeemed_at_pos: i64,
    pub redeemed_in_mini_program: i64,
    pub attributed_revenue_fen: i64,
    pub discount_cost_fen: i64,
    /// Incremental revenue per fen of discount (none without discount cost).
    pub roi: Option<f64>,
    pub guardrails: Guardrails,
    /// Holm-adjusted over every comparison of the campaign.
    #[schema(value_type = Option<f64>)]
    pub holm_p_revenue: f64,
    #[schema(value_type = Option<f64>)]
    pub holm_p_retention: f64,
}

/// A variant against the first arm (the A/B question).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Versus {
    pub arm: String,
    pub against: String,
    pub revenue_per_member_cuped: ArmEffect,
    pub retention: ArmEffect,
    #[schema(value_type = Option<f64>)]
    pub holm_p_revenue: f64,
    #[schema(value_type = Option<f64>)]
    pub holm_p_retention: f64,
}

/// The evaluation window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub from: String,
    /// The last day of the window (its end plus the attribution days).
    pub to: String,
    /// The last day the warehouse has orders for.
    pub data_until: Option<String>,
    /// Whether the data covers the whole window.
    pub complete: bool,
}

/// A customer's predicted uplift.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpliftScore {
    pub customer_id: i64,
    #[schema(value_type = Option<f64>)]
    pub uplift_fen: f64,
}

/// The uplift model of a campaign.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Uplift {
    pub model: &'static str,
    #[schema(value_type = Option<f64>)]
    pub qini_coefficient: f64,
    pub curve: Vec<c360_analytics::uplift::QiniPoint>,
    pub gain_top_30pct_share_of_total: Option<f64>,
    pub top_customers: Vec<UpliftScore>,
}

/// A campaign's results: per arm against the holdout.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CampaignResults {
    pub campaign: Campaign,
    /// Why there is nothing to evaluate (not launched, or no members in the caller's stores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub members: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub holdout: usize,
    pub global_holdout: usize,
    pub arms: Vec<ArmResult>,
    pub variants: Vec<Versus>,
    /// Every treated member against the global holdout (none below 10 held out).
    pub vs_global_holdout: Option<ArmEffect>,
    pub srm: Option<ab::Srm>,
    pub cuped_theta: Option<f64>,
    pub unattributed_redemptions: i64,
    /// Coupon orders of a member placed under another customer id or none (counted as
    /// redemptions; their revenue is not moved into the member's outcome, which keeps the arms
    /// comparable).
    pub redeemed_under_another_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplift: Option<Uplift>,
}

/// Evaluates a campaign from the warehouse as it is now: per arm against the holdout.
pub async fn evaluate(
    sess: &Session,
    meta: &Db,
    id: i64,
    scope: Option<&[i64]>,
) -> CoreResult<CampaignResults> {
    let c = get(meta, id).await?;
    let (start, end) = c.spec.validate()?;
    let mut ms = members(meta, id).await?;
    if let Some(sc) = scope {
        ms.retain(|m| m.home_store_id.is_some_and(|s| sc.contains(&s)));
    }
    if ms.is_empty() {
        return Ok(CampaignResults {
            campaign: c,
            note: Some("not launched or no members in scope".into()),
            members: 0,
            window: None,
            holdout: 0,
            global_holdout: 0,
            arms: vec![],
            variants: vec![],
            vs_global_holdout: None,
            srm: None,
            cuped_theta: None,
            unattributed_redemptions: 0,
            redeemed_under_another_id: 0,
            uplift: None,
        });
    }
    let stop = end + Duration::days(c.spec.attribution_days + 1);
    let data_end = q(
        sess,
        "SELECT CAST(MAX(order_time) AS VARCHAR) AS t FROM orders",
    )
    .await?;
    let data_end = data_end
        .first()
        .and_then(|r| r["t"].as_str())
        .and_then(|t| NaiveDate::parse_from_str(&t[..10.min(t.len())], "%Y-%m-%d").ok());
    let Outcomes {
        post,
        redemptions,
        redeemed_by,
        misattributed,
        other_id,
    } = outcomes(sess, id, &ms, start, stop).await?;
    let feat = uplift_features(sess, &ms, start).await?;
    let outcome = |m: &Member| post.get(&m.customer_id).copied().unwrap_or_default();
    let by_arm = |arm: &str| -> Vec<&Member> { ms.iter().filter(|m| m.arm == arm).collect() };
    let holdout = by_arm("holdout");
    let arms: Vec<String> = c.spec.arms().into_iter().map(|a| a.0).collect();
    // CUPED θ pooled over holdout and treated arms.
    let pool: Vec<&Member> = ms.iter().filter(|m| m.arm != "global_holdout").collect();
    let y: Vec<f64> = pool.iter().map(|m| outcome(m).0).collect();
    let x: Vec<f64> = pool.iter().map(|m| m.pre_spend_fen as f64).collect();
    let (adj, theta) = cuped(&y, &x);
    let adj_of: HashMap<i64, f64> = pool
        .iter()
        .zip(&adj)
        .map(|(m, a)| (m.customer_id, *a))
        .collect();
    let mom = |v: &[&Member], f: &dyn Fn(&Member) -> f64| {
        Moments::of(&v.iter().map(|m| f(m)).collect::<Vec<_>>())
    };
    let rev = |m: &Member| outcome(m).0;
    let retained = |m: &Member| (outcome(m).1 > 0.0) as u8 as f64;
    let refund_rate = |m: &Member| {
        let o = outcome(m);
        if o.1 + o.2 > 0.0 {
            o.2 / (o.1 + o.2)
        } else {
            0.0
        }
    };
    let cup = |m: &Member| adj_of.get(&m.customer_id).copied().unwrap_or(0.0);
    let hold_rev = mom(&holdout, &rev);
    // The mSPRT's mixing scale, fixed before the window from pre-period data only: half the
    // spread of members' pre-period spend, scaled to the window's length.
    let window_days = (stop - start).num_days() as f64;
    let pre_scaled: Vec<f64> = pool
        .iter()
        .map(|m| m.pre_spend_fen as f64 * window_days / PRE_DAYS as f64)
        .collect();
    let tau = (0.5 * Moments::of(&pre_scaled).var.sqrt())
        .max(100.0)
        .powi(2);
    let mut results = Vec::new();
    let mut pvals = Vec::new();
    for a in &arms {
        let t = by_arm(a);
        let rv = welch(hold_rev, mom(&t, &rev), 0.05);
        let cu = welch(mom(&holdout, &cup), mom(&t, &cup), 0.05);
        let rt = welch(mom(&holdout, &retained), mom(&t, &retained), 0.05);
        pvals.push(cu.p_value);
        pvals.push(rt.p_value);
        let red = redemptions.get(a).copied().unwrap_or_default();
        let discount_cost: i64 = t
            .iter()
            .filter(|m| redeemed_by.contains(&m.customer_id))
            .map(|m| m.discount_fen.unwrap_or(0))
            .sum();
        let n_t = t.len() as f64;
        let inc = cu.diff * n_t;
        results.push(ArmResult {
            arm: a.clone(),
            members: t.len(),
            sent: t
                .iter()
                .filter(|m| matches!(m.status, MemberStatus::Planned | MemberStatus::Sent))
                .count(),
            capped: t
                .iter()
                .filter(|m| m.status == MemberStatus::Capped)
                .count(),
            revenue_per_member: arm_json(a, hold_rev, mom(&t, &rev), tau),
            revenue_per_member_cuped: arm_json(a, mom(&holdout, &cup), mom(&t, &cup), tau),
            retention: arm_json(a, mom(&holdout, &retained), mom(&t, &retained), 0.01),
            incremental_revenue_fen: inc,
            incremental_revenue_ci: vec![cu.ci_low * n_t, cu.ci_high * n_t],
            incremental_retained: rt.diff * n_t,
            raw_revenue_diff: rv.diff,
            redemptions: red.0,
            redemption_rate: red.0 as f64 / n_t.max(1.0),
            redeemed_at_pos: red.2,
            redeemed_in_mini_program: red.3,
            attributed_revenue_fen: red.1,
            discount_cost_fen: discount_cost,
            roi: (discount_cost > 0).then(|| inc / discount_cost as f64),
            guardrails: Guardrails {
                refund_rate: guardrail(
                    mom(&holdout, &refund_rate),
                    mom(&t, &refund_rate),
                    0.1,
                    false,
                    0.05,
                ),
                orders_per_member: guardrail(
                    mom(&holdout, &|m: &Member| outcome(m).1),
                    mom(&t, &|m: &Member| outcome(m).1),
                    0.02,
                    true,
                    0.05,
                ),
            },
            holm_p_revenue: f64::NAN,
            holm_p_retention: f64::NAN,
        });
    }
    // The A/B question itself: every other arm against the first, on the CUPED revenue and on
    // retention, in the same Holm family as the comparisons with the holdout.
    let mut versus = Vec::new();
    if let Some(first) = arms.first() {
        let base = by_arm(first);
        for a in arms.iter().skip(1) {
            let t = by_arm(a);
            let cu = welch(mom(&base, &cup), mom(&t, &cup), 0.05);
            let rt = welch(mom(&base, &retained), mom(&t, &retained), 0.05);
            pvals.push(cu.p_value);
            pvals.push(rt.p_value);
            versus.push(Versus {
                arm: a.clone(),
                against: first.clone(),
                revenue_per_member_cuped: arm_json(a, mom(&base, &cup), mom(&t, &cup), tau),
                retention: arm_json(a, mom(&base, &retained), mom(&t, &retained), 0.01),
                holm_p_revenue: f64::NAN,
                holm_p_retention: f64::NAN,
            });
        }
    }
    let adj_p = holm(&pvals);
    // Holm's adjustment keeps the p-values in the order they were pushed: two per arm, then
    // two per variant.
    for (i, r) in results.iter_mut().enumerate() {
        r.holm_p_revenue = adj_p[2 * i];
        r.holm_p_retention = adj_p[2 * i + 1];
    }
    let off = 2 * results.len();
    for (i, r) in versus.iter_mut().enumerate() {
        r.holm_p_revenue = adj_p[off + 2 * i];
        r.holm_p_retention = adj_p[off + 2 * i + 1];
    }
    // Planned split vs what happened (excluding the global holdout, assigned before).
    let treat_w: f64 = c.spec.arms().iter().map(|a| a.1).sum();
    let mut counts = vec![holdout.len() as u64];
    let mut weights = vec![c.spec.holdout_pct];
    for a in c.spec.arms() {
        counts.push(by_arm(&a.0).len() as u64);
        weights.push((100.0 - c.spec.holdout_pct) * a.1 / treat_w);
    }
    let s = srm(&counts, &weights);
    // Every treated arm against the global holdout (customers no campaign reaches).
    let gh = by_arm("global_holdout");
    let treated_all: Vec<&Member> = ms
        .iter()
        .filter(|m| m.arm != "holdout" && m.arm != "global_holdout")
        .collect();
    let global = (gh.len() >= 10)
        .then(|| arm_json("all_treated", mom(&gh, &rev), mom(&treated_all, &rev), tau));
    // Uplift: a T-learner cross-fitted on two halves (by customer id parity), its Qini on the
    // half it did not see, and how much of the gain the top 30% by predicted uplift holds.
    let rows: Vec<(&Member, bool)> = pool
        .iter()
        .filter(|m| feat.contains_key(&m.customer_id))
        .map(|m| (*m, m.arm != "holdout"))
        .collect();
    let mut score: Vec<f64> = vec![0.0; rows.len()];
    for fold in 0..2 {
        let (tr, te): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|i| rows[*i].0.customer_id.rem_euclid(2) as usize != fold);
        let xs: Vec<Vec<f64>> = tr
            .iter()
            .map(|i| feat[&rows[*i].0.customer_id].clone())
            .collect();
        let ts: Vec<bool> = tr.iter().map(|i| rows[*i].1).collect();
        let ys: Vec<f64> = tr.iter().map(|i| rev(rows[*i].0)).collect();
        if ts.iter().filter(|t| **t).count() < 20 || ts.iter().filter(|t| !**t).count() < 20 {
            continue;
        }
        let m = TLearner::fit(&xs, &ts, &ys, 10.0);
        for i in te {
            score[i] = m.uplift(&feat[&rows[i].0.customer_id]);
        }
    }
    let tflags: Vec<bool> = rows.iter().map(|r| r.1).collect();
    let ys: Vec<f64> = rows.iter().map(|r| rev(r.0)).collect();
    let (curve, qini_coef) = qini(&score, &tflags, &ys, 20);
    let total_gain = curve.last().map_or(0.0, |p| p.gain);
    let top30 = curve
        .iter()
        .min_by(|a, b| (a.share - 0.3).abs().total_cmp(&(b.share - 0.3).abs()))
        .map_or(0.0, |p| p.gain);
    let mut top: Vec<(i64, f64)> = rows
        .iter()
        .zip(&score)
        .map(|(r, s)| (r.0.customer_id, *s))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(CampaignResults {
        window: Some(Window {
            from: start.to_string(),
            to: (stop - Duration::days(1)).to_string(),
            data_until: data_end.map(|d| d.to_string()),
            complete: data_end.is_some_and(|d| d >= stop - Duration::days(1)),
        }),
        campaign: c,
        note: None,
        members: ms.len(),
        holdout: holdout.len(),
        global_holdout: gh.len(),
        arms: results,
        variants: versus,
        vs_global_holdout: global,
        srm: Some(s),
        cuped_theta: Some(theta),
        unattributed_redemptions: misattributed,
        redeemed_under_another_id: other_id,
        uplift: Some(Uplift {
            model: "T-learner (ridge on recency, frequency, monetary, churn, CLV with squares and interactions), 2-fold cross-fit",
            qini_coefficient: qini_coef,
            curve,
            gain_top_30pct_share_of_total: (total_gain.abs() > 0.0).then(|| top30 / total_gain),
            top_customers: top
                .iter()
                .take(20)
                .map(|(c, s)| UpliftScore { customer_id: *c, uplift_fen: *s })
                .collect(),
        }),
    })
}

/// What members did in the window: per member (revenue, orders, refunds, discount) under their
/// own customer id, the same for every arm; and the redemptions per arm, by coupon code.
struct Outcomes {
    post: HashMap<i64, (f64, f64, f64, f64)>,
    /// arm -> (redemptions, revenue, at the POS, in the mini-program)
    redemptions: HashMap<String, (i64, i64, i64, i64)>,
    redeemed_by: HashSet<i64>,
    /// Codes of this campaign that match no member.
    misattributed: i64,
    /// Redeemed under another customer id than the member's.
    other_id: i64,
}

async fn outcomes(
    sess: &Session,
    id: i64,
    ms: &[Member],
    start: NaiveDate,
    stop: NaiveDate,
) -> CoreResult<Outcomes> {
    let ids: Vec<i64> = ms.iter().map(|m| m.customer_id).collect();
    let mut window = Filter::new("TRUE");
    window.days("order_time", Some(start), stop.pred_opt());
    let mut members = window.clone();
    members.one_of("customer_id", &ids);
    // Post-period outcomes per member, and every coupon redemption with its channel.
    let mut post: HashMap<i64, (f64, f64, f64, f64)> = HashMap::new(); // revenue, orders, refunds, discount
    for r in query_with(
        sess,
        &format!(
            "SELECT customer_id, SUM(CASE WHEN status = 'paid' THEN total_fen ELSE 0 END) AS rev, \
             SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END) AS n, \
             SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) AS refunds, \
             SUM(COALESCE(discount_fen, 0)) AS disc \
             FROM orders WHERE {} GROUP BY customer_id",
            members.sql()
        ),
        members.params,
    )
    .await?
    {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        post.insert(
            r["customer_id"].as_i64().unwrap_or(0),
            (f("rev"), f("n"), f("refunds"), f("disc")),
        );
    }
    let codes: HashMap<String, (i64, String)> = ms
        .iter()
        .filter_map(|m| Some((m.coupon_code.clone()?, (m.customer_id, m.arm.clone()))))
        .collect();
    let mut redemptions: HashMap<String, (i64, i64, i64, i64)> = HashMap::new(); // arm -> (n, revenue, pos, wx)
    let mut redeemed_by: HashSet<i64> = HashSet::new();
    let mut misattributed = 0i64;
    let mut other_id = 0i64;
    window.cond("coupon_code LIKE {}", vec![format!("C{id}-%").into()]);
    for r in query_with(
        sess,
        &format!(
            "SELECT customer_id, coupon_code, source, total_fen FROM orders \
             WHERE status = 'paid' AND {}",
            window.sql()
        ),
        window.params,
    )
    .await?
    {
        let code = r["coupon_code"].as_str().unwrap_or_default();
        let Some((cid, arm)) = codes.get(code) else {
            misattributed += 1;
            continue;
        };
        // The code says whose coupon it was, and the redemption counts for the member's arm.
        // The order's revenue stays where identity put it: a treated member's coupon order placed
        // anonymously or under an unmerged second account was once moved into their outcome,
        // while the holdout's orders of the same kind could never be, which biased the effect
        // upwards. Outcomes are measured on what both arms can see, the orders under each
        // member's own customer id (payment accounts included).
        if r["customer_id"].as_i64() != Some(*cid) {
            other_id += 1;
        }
        let e = redemptions.entry(arm.clone()).or_default();
        e.0 += 1;
        e.1 += r["total_fen"].as_i64().unwrap_or(0);
        if r["source"].as_str() == Some("pos") {
            e.2 += 1;
        } else {
            e.3 += 1;
        }
        redeemed_by.insert(*cid);
    }
    Ok(Outcomes {
        post,
        redemptions,
        redeemed_by,
        misattributed,
        other_id,
    })
}

/// The uplift model's features per member, as of the campaign's start (point in time: only
/// orders before it), log scaled: days since the last order, orders, spend, days since the
/// first order, the pre-period spend recorded at launch, and the orders missed since the last
/// one at their own past rate. (Read from the profile after the window, as
/// they once were, recency, frequency, spend, churn and CLV already hold the outcome the model
/// predicts.) A member with no order before the start has recency and tenure 0 and no spend.
async fn uplift_features(
    sess: &Session,
    ms: &[Member],
    start: NaiveDate,
) -> CoreResult<HashMap<i64, Vec<f64>>> {
    let ids: Vec<i64> = ms.iter().map(|m| m.customer_id).collect();
    let mut f = Filter::new("status = 'paid'");
    f.one_of("customer_id", &ids);
    f.days("order_time", None, start.pred_opt());
    let mut before: HashMap<i64, (f64, f64, f64, f64)> = HashMap::new();
    let day = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| NaiveDate::parse_from_str(&t[..10.min(t.len())], "%Y-%m-%d").ok())
            .map_or(0.0, |d| (start - d).num_days() as f64)
    };
    for r in query_with(
        sess,
        &format!(
            "SELECT customer_id, COUNT(*) AS n, SUM(total_fen) AS spend, \
             CAST(MAX(order_time) AS VARCHAR) AS last, CAST(MIN(order_time) AS VARCHAR) AS first \
             FROM orders WHERE {} GROUP BY customer_id",
            f.sql()
        ),
        f.params,
    )
    .await?
    {
        before.insert(
            r["customer_id"].as_i64().unwrap_or(0),
            (
                day(&r["last"]),
                r["n"].as_f64().unwrap_or(0.0),
                r["spend"].as_f64().unwrap_or(0.0),
                day(&r["first"]),
            ),
        );
    }
    Ok(ms
        .iter()
        .map(|m| {
            let (recency, n, spend, tenure) =
                before.get(&m.customer_id).copied().unwrap_or_default();
            // Orders their own past rate says they have missed since the last one: "lapsed,
            // and used to come often" in one number.
            let missed = recency * n / tenure.max(30.0);
            let spend_yuan = |fen: f64| (fen / 100.0).max(0.0).ln_1p();
            (
                m.customer_id,
                vec![
                    recency.ln_1p(),
                    n.ln_1p(),
                    spend_yuan(spend),
                    tenure.ln_1p(),
                    spend_yuan(m.pre_spend_fen as f64),
                    missed.ln_1p(),
                ],
            )
        })
        .collect())
}

/// Re-fitted on all members (no cross-fitting): the model a next wave would target with.
pub async fn uplift_scores(sess: &Session, meta: &Db, id: i64) -> CoreResult<Vec<(i64, f64)>> {
    let ms = members(meta, id).await?;
    let c = get(meta, id).await?;
    let (start, end) = c.spec.validate()?;
    let stop = end + Duration::days(c.spec.attribution_days + 1);
    let post = outcomes(sess, id, &ms, start, stop).await?.post;
    let rev: HashMap<i64, f64> = post.iter().map(|(k, v)| (*k, v.0)).collect();
    let arm_of: HashMap<i64, &str> = ms.iter().map(|m| (m.customer_id, m.arm.as_str())).collect();
    let by_id = uplift_features(sess, &ms, start).await?;
    let mut feat: Vec<(i64, Vec<f64>, bool)> = by_id
        .into_iter()
        .filter_map(|(cid, f)| {
            let arm = arm_of.get(&cid).copied().unwrap_or("global_holdout");
            (arm != "global_holdout").then(|| (cid, f, arm != "holdout"))
        })
        .collect();
    feat.sort_by_key(|f| f.0);
    let xs: Vec<Vec<f64>> = feat.iter().map(|f| f.1.clone()).collect();
    let ts: Vec<bool> = feat.iter().map(|f| f.2).collect();
    let ys: Vec<f64> = feat
        .iter()
        .map(|f| rev.get(&f.0).copied().unwrap_or(0.0))
        .collect();
    let m = TLearner::fit(&xs, &ts, &ys, 10.0);
    Ok(feat.iter().map(|f| (f.0, m.uplift(&f.1))).collect())
}
