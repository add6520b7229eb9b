//! Source contracts: where each entity the ETL reads comes from, and how its values are to be
//! read. A chain's `c360.toml` (or a contract file it names) declares, per entity, a table with
//! a column mapping, a SQL query, or files; the incremental key; the time zone and time format;
//! the money unit; and code mappings (order status, channel, pay method …). Entities a chain
//! does not have are absent, and the steps that need them skip them and say so.
//!
//! This module is the contract language: the catalogue of entities and their canonical fields
//! ([`ENTITIES`]), the TOML it is written in ([`Contract`]), its validation into per-entity
//! plans ([`Contract::resolve`]) and the conversion of one source value into a canonical one
//! ([`FieldPlan::convert`]). Reading rows is `crate::source`; it knows no entity by name.
//!
//! Canonical values: ids are integers (text ids become stable 63-bit ids), person ids are text,
//! times are Asia/Shanghai wall time, money is integer fen, codes are the names c360 uses
//! (`paid`, `refunded` …). The simulator's own schema is one contract among others
//! (`examples/sim.toml`, [`Contract::simulator`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

/// What kind of value a canonical field holds, and so how a source value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A row id: an integer, or text made into a stable positive 63-bit integer.
    Id,
    /// A person's id in a source system (member, mini-program user): kept as text.
    Key,
    Int,
    Float,
    Text,
    /// A moment, converted to Asia/Shanghai wall time.
    Time,
    Date,
    /// An amount, converted to integer fen.
    Money,
    /// 1/0, true/false, y/n, 是/否.
    Bool,
    /// A value from a fixed set, mapped by the entity's `codes`.
    Code(Codes),
}

/// The fixed sets codes map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codes {
    OrderStatus,
    PayMethod,
    Channel,
    EventType,
    TicketStatus,
    Cause,
}

impl Codes {
    /// The canonical values (what a code mapping may map to).
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Codes::OrderStatus => &["paid", "refunded", "cancelled", "test"],
            Codes::PayMethod => &["wechat_pay", "alipay", "cash", "card", "other"],
            Codes::Channel => &["pos", "pickup", "delivery", "dine_in", "other"],
            Codes::EventType => &["view", "click", "add_cart", "pay", "share", "search"],
            Codes::TicketStatus => &["open", "closed"],
            Codes::Cause => &c360_analytics::service::CAUSES,
        }
    }
}

/// One canonical field of an entity.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// A row without it cannot be loaded (so it may not be declared missing).
    pub required: bool,
}

/// One entity c360 can read.
#[derive(Debug, Clone, Copy)]
pub struct EntitySpec {
    pub name: &'static str,
    pub about: &'static str,
    pub fields: &'static [FieldSpec],
    /// The field that keys a row (its id).
    pub key: usize,
}

impl EntitySpec {
    pub fn field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

macro_rules! entity {
    ($m:ident, $name:literal, $about:literal, key = $key:ident, [$($f:ident $fname:literal $kind:expr, $req:literal;)*]) => {
        /// Field positions of the entity's rows.
        pub mod $m {
            use super::*;
            #[allow(non_camel_case_types, dead_code, clippy::upper_case_acronyms)]
            #[repr(usize)]
            enum Ix { $($f,)* }
            $(#[allow(dead_code)] pub const $f: usize = Ix::$f as usize;)*
            pub const SPEC: EntitySpec = EntitySpec {
                name: $name,
                about: $about,
                fields: &[$(FieldSpec { name: $fname, kind: $kind, required: $req }),*],
                key: $key,
            };
        }
    };
}

use Kind::*;

/// Optional fields a contract must map to have read (the rest default to a column of their own
/// name): a contract written before they existed stays valid, and says nothing it did not.
/// `payer_id` is the payment account the provider reports to the till (WeChat Pay's openid
/// under the chain's app, Alipay's user id): identity evidence, hashed at extraction.
/// `consent_*` are the person's marketing consent per channel as the form or the platform recorded
/// it (yes, no, or empty when never asked) and `consent_at` when they last said so.
pub const OPT_IN: &[&str] = &[
    "payer_id",
    "cost",
    "consent_wechat",
    "consent_sms",
    "consent_push",
    "consent_at",
];

entity!(cities, "cities", "cities the chain's stores are in (read whole every run)", key = CITY_ID, [
    CITY_ID "city_id" Id, true;
    NAME "name" Text, true;
    PROVINCE "province" Text, false;
    TIER "tier" Int, false;
    LAT "lat" Float, false;
    LON "lon" Float, false;
]);
entity!(stores, "stores", "the chain's stores (read whole every run)", key = STORE_ID, [
    STORE_ID "store_id" Id, true;
    STORE_CODE "store_code" Text, false;
    NAME "name" Text, false;
    CITY_ID "city_id" Id, false;
    STORE_TYPE "store_type" Text, false;
    LAT "lat" Float, false;
    LON "lon" Float, false;
    OPEN_DATE "open_date" Date, false;
    STATUS "status" Text, false;
]);
entity!(products, "products", "the menu (read whole every run)", key = PRODUCT_ID, [
    PRODUCT_ID "product_id" Id, true;
    SKU "sku" Text, false;
    NAME "name" Text, false;
    CATEGORY "category" Text, false;
    PRICE "price" Money, true;
    LAUNCHED "launched" Date, false;
    // What one unit costs the chain (menu engineering's margins); opt-in.
    COST "cost" Money, false;
]);
entity!(members, "members", "the POS's members (customer key M:<member_id>)", key = MEMBER_ID, [
    MEMBER_ID "member_id" Key, true;
    CARD_NO "card_no" Text, false;
    PHONE "phone" Text, false;
    PHONE_VERIFIED "phone_verified" Bool, false;
    NAME "name" Text, false;
    GENDER "gender" Text, false;
    BIRTHDAY "birthday" Date, false;
    REGISTER_STORE_ID "register_store_id" Id, false;
    CREATED_AT "created_at" Time, false;
    CONSENT_WECHAT "consent_wechat" Bool, false;
    CONSENT_SMS "consent_sms" Bool, false;
    CONSENT_PUSH "consent_push" Bool, false;
    CONSENT_AT "consent_at" Time, false;
]);
entity!(wx_users, "wx_users", "the mini-program's users (customer key U:<user_id>)", key = USER_ID, [
    USER_ID "user_id" Key, true;
    OPENID "openid" Text, true;
    UNIONID "unionid" Text, false;
    PHONE "phone" Text, false;
    MEMBER_CARD_NO "member_card_no" Text, false;
    CREATED_AT "created_at" Time, false;
    CONSENT_WECHAT "consent_wechat" Bool, false;
    CONSENT_SMS "consent_sms" Bool, false;
    CONSENT_PUSH "consent_push" Bool, false;
    CONSENT_AT "consent_at" Time, false;
]);
entity!(orders, "orders", "the POS's orders (a member's, or anonymous)", key = ORDER_ID, [
    ORDER_ID "order_id" Id, true;
    ORDER_NO "order_no" Text, false;
    STORE_ID "store_id" Id, false;
    MEMBER_ID "member_id" Key, false;
    ORDER_TIME "order_time" Time, true;
    TOTAL "total" Money, true;
    DISCOUNT "discount" Money, false;
    PAY_METHOD "pay_method" Code(Codes::PayMethod), false;
    CHANNEL "channel" Code(Codes::Channel), false;
    STATUS "status" Code(Codes::OrderStatus), true;
    COUPON_CODE "coupon_code" Text, false;
    PAYER_ID "payer_id" Key, false;
]);
entity!(order_items, "order_items", "the lines of the POS's orders", key = ITEM_ID, [
    ITEM_ID "item_id" Id, true;
    ORDER_ID "order_id" Id, true;
    PRODUCT_ID "product_id" Id, true;
    QTY "qty" Int, true;
    UNIT_PRICE "unit_price" Money, true;
]);
// The same places as `orders` (the loader reads both with one set of positions).
entity!(wx_orders, "wx_orders", "the mini-program's orders (a user's)", key = ORDER_ID, [
    ORDER_ID "order_id" Id, true;
    ORDER_NO "order_no" Text, false;
    STORE_ID "store_id" Id, false;
    USER_ID "user_id" Key, false;
    ORDER_TIME "order_time" Time, true;
    TOTAL "total" Money, true;
    DISCOUNT "discount" Money, false;
    PAY_METHOD "pay_method" Code(Codes::PayMethod), false;
    CHANNEL "channel" Code(Codes::Channel), false;
    STATUS "status" Code(Codes::OrderStatus), true;
    COUPON_CODE "coupon_code" Text, false;
    PAYER_ID "payer_id" Key, false;
]);
entity!(wx_order_items, "wx_order_items", "the lines of the mini-program's orders", key = ITEM_ID, [
    ITEM_ID "item_id" Id, true;
    ORDER_ID "order_id" Id, true;
    PRODUCT_ID "product_id" Id, true;
    QTY "qty" Int, true;
    UNIT_PRICE "unit_price" Money, true;
]);
entity!(events, "events", "the mini-program's page events", key = EVENT_ID, [
    EVENT_ID "event_id" Id, true;
    USER_ID "user_id" Key, true;
    SESSION_ID "session_id" Text, false;
    EVENT_TYPE "event_type" Code(Codes::EventType), true;
    PAGE "page" Text, false;
    EVENT_TIME "event_time" Time, true;
    DEVICE "device" Text, false;
    LAT "lat" Float, false;
    LON "lon" Float, false;
]);
entity!(reviews, "reviews", "reviews with a star rating and text", key = REVIEW_ID, [
    REVIEW_ID "review_id" Id, true;
    USER_ID "user_id" Key, true;
    ORDER_ID "order_id" Id, false;
    STORE_ID "store_id" Id, false;
    RATING "rating" Int, true;
    CONTENT "content" Text, false;
    CREATED_AT "created_at" Time, true;
]);
entity!(shares, "shares", "who shared a page with whom", key = SHARE_ID, [
    SHARE_ID "share_id" Id, true;
    USER_ID "user_id" Key, true;
    TO_USER_ID "to_user_id" Key, false;
    PAGE "page" Text, false;
    CAMPAIGN "campaign" Text, false;
    SHARE_TIME "share_time" Time, true;
]);
entity!(group_orders, "group_orders", "who joined whose group order (拼单)", key = ROW_ID, [
    ROW_ID "row_id" Id, true;
    GROUP_ID "group_id" Text, false;
    ORDER_ID "order_id" Id, false;
    USER_ID "user_id" Key, true;
    JOINED_AT "joined_at" Time, true;
    OWNER_ID "owner_id" Key, false;
]);
entity!(paid_by, "paid_by", "who paid for a friend's order (代付)", key = ROW_ID, [
    ROW_ID "row_id" Id, true;
    ORDER_ID "order_id" Id, false;
    USER_ID "user_id" Key, true;
    PAYER_USER_ID "payer_user_id" Key, true;
    PAID_AT "paid_at" Time, true;
]);
entity!(tickets, "tickets", "customer-service tickets and the cause an agent recorded", key = TICKET_ID, [
    TICKET_ID "ticket_id" Id, true;
    USER_ID "user_id" Key, true;
    ORDER_ID "order_id" Id, false;
    CREATED_AT "created_at" Time, true;
    MESSAGE "message" Text, false;
    STATUS "status" Code(Codes::TicketStatus), true;
    RESOLVED_CAUSE "resolved_cause" Code(Codes::Cause), false;
]);
entity!(coupon_redemptions, "coupon_redemptions", "coupons redeemed on orders, where the orders table has no coupon column (`of` names the order entity)", key = ORDER_ID, [
    ORDER_ID "order_id" Id, true;
    COUPON_CODE "coupon_code" Text, true;
]);

/// Every entity, in the order the ETL reads them.
pub const ENTITIES: [EntitySpec; 16] = [
    cities::SPEC,
    stores::SPEC,
    products::SPEC,
    members::SPEC,
    wx_users::SPEC,
    orders::SPEC,
    order_items::SPEC,
    wx_orders::SPEC,
    wx_order_items::SPEC,
    events::SPEC,
    reviews::SPEC,
    shares::SPEC,
    group_orders::SPEC,
    paid_by::SPEC,
    tickets::SPEC,
    coupon_redemptions::SPEC,
];

pub fn spec(name: &str) -> Option<&'static EntitySpec> {
    ENTITIES.iter().find(|e| e.name == name)
}

// ---------------------------------------------------------------------------------------------
// The TOML.

/// A whole contract: named sources and the entities read from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    #[serde(default)]
    pub sources: BTreeMap<String, SourceDef>,
    #[serde(default)]
    pub entities: BTreeMap<String, EntityDef>,
}

/// A database (by URL) or a directory of files, with defaults for its entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDef {
    /// `sqlite://path` (or a bare path), `mysql://…`, `postgres://…`. For the sources named
    /// `pos` and `wx`, the `pos` / `wx` settings give it when this is unset.
    pub url: Option<String>,
    /// A directory of CSV, JSON-lines or Parquet files (instead of `url`).
    pub dir: Option<PathBuf>,
    pub time_zone: Option<String>,
    pub time_format: Option<String>,
    pub money: Option<Money>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Money {
    /// Integer fen (or cents).
    Fen,
    /// Decimal yuan (or dollars): `12.50` is 1250 fen.
    Yuan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncKind {
    /// A last-modified time: rows at or after the last value seen are read again (and merged
    /// by key), so a row updated in the same second is not missed.
    UpdatedAt,
    /// An id that only grows: rows after the last id seen.
    Id,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalDef {
    pub column: String,
    pub kind: IncKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

/// How one canonical field is read: a column name, or a table with overrides or a constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnDef {
    Name(String),
    Spec(ColumnSpec),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub column: Option<String>,
    /// A constant for every row (e.g. `channel = { value = "pos" }`).
    pub value: Option<String>,
    pub time_format: Option<String>,
    pub time_zone: Option<String>,
    pub money: Option<Money>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDef {
    pub source: Option<String>,
    pub table: Option<String>,
    pub query: Option<String>,
    /// File sources: a file name or glob under the source's `dir` (or an absolute path).
    pub file: Option<String>,
    #[serde(default)]
    pub absent: bool,
    /// Canonical field → source column (unmapped fields are read from a column of their own name).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnDef>,
    /// Optional fields the source does not have (read as empty).
    #[serde(default)]
    pub missing: Vec<String>,
    pub incremental: Option<IncrementalDef>,
    pub time_zone: Option<String>,
    pub time_format: Option<String>,
    pub money: Option<Money>,
    /// Field → (source code → canonical value).
    #[serde(default)]
    pub codes: BTreeMap<String, BTreeMap<String, String>>,
    /// coupon_redemptions: the order entity they belong to (`orders` or `wx_orders`).
    pub of: Option<String>,
    pub format: Option<FileFormat>,
    /// CSV: `,` (default), `\t`, `;`, `|` or `whitespace` (runs of spaces and tabs).
    pub delimiter: Option<String>,
    /// CSV: whether the first line names the columns (default true; without it, columns are
    /// named by position, `1`, `2` …).
    pub header: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Validation into plans.

/// A contract that does not hold together: every problem, each naming where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("source contract: {}", .0.join("; "))]
pub struct ContractError(pub Vec<String>);

/// How a time is written in the source.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeFormat {
    /// Text `YYYY-MM-DD HH:MM:SS` (or with `T`), as the simulator writes it.
    Text,
    /// A native DATETIME / TIMESTAMP column (read as text; fractions and offsets accepted).
    Datetime,
    UnixSeconds,
    UnixMillis,
    /// A chrono format, e.g. `%Y%m%d` or `%Y/%m/%d %H:%M`.
    Pattern(String),
}

impl TimeFormat {
    pub fn parse(s: &str) -> Result<TimeFormat, String> {
        Ok(match s {
            "text" => TimeFormat::Text,
            "datetime" => TimeFormat::Datetime,
            "unix_seconds" | "unix" => TimeFormat::UnixSeconds,
            "unix_millis" => TimeFormat::UnixMillis,
            p if p.contains('%') => {
                // A pattern must be able to write (and so read) a time.
                let probe = NaiveDate::from_ymd_opt(2024, 1, 2)
                    .and_then(|d| d.and_hms_opt(3, 4, 5))
                    .ok_or("date")?;
                let mut out = String::new();
                use std::fmt::Write;
                write!(out, "{}", probe.format(p))
                    .map_err(|_| format!("time format {p:?} is not a valid chrono format"))?;
                TimeFormat::Pattern(p.to_string())
            }
            other => {
                return Err(format!(
                    "time format {other:?} is not text, datetime, unix_seconds, unix_millis or a %-pattern"
                ))
            }
        })
    }
    /// Whether values are numbers (compared and bound as integers).
    pub fn numeric(&self) -> bool {
        matches!(self, TimeFormat::UnixSeconds | TimeFormat::UnixMillis)
    }
}

/// Where one canonical field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Column(String),
    Constant(String),
    Missing,
}

/// A canonical field as this contract reads it.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    pub spec: FieldSpec,
    pub origin: Origin,
    pub time_format: TimeFormat,
    pub zone: chrono_tz::Tz,
    pub money: Money,
    /// Source code → canonical value (empty: values pass as they are).
    pub codes: BTreeMap<String, String>,
}

/// Where an entity's rows are.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Table(String),
    Query(String),
    Files {
        pattern: String,
        format: Option<FileFormat>,
        delimiter: Option<String>,
        header: bool,
    },
}

/// Where a source is.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceAt {
    Db(String),
    Dir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Incremental {
    pub column: String,
    pub kind: IncKind,
    /// How the column's values are written (for an `updated_at` column).
    pub time_format: TimeFormat,
}

/// One present entity, ready to read.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: &'static EntitySpec,
    pub source: String,
    pub at: SourceAt,
    pub location: Location,
    pub fields: Vec<FieldPlan>,
    pub incremental: Option<Incremental>,
    /// coupon_redemptions: the order entity they belong to.
    pub of: Option<String>,
}

impl Plan {
    /// The watermark's name in the manifest: the source and its table (or the entity and a
    /// hash of its query), so a contract that points an entity elsewhere starts afresh.
    pub fn watermark_key(&self) -> String {
        match &self.location {
            Location::Table(t) => format!("{}.{t}", self.source),
            Location::Query(q) => format!("{}.{}.q{}", self.source, self.spec.name, short_hash(q)),
            Location::Files { pattern, .. } => {
                format!(
                    "{}.{}.f{}",
                    self.source,
                    self.spec.name,
                    short_hash(pattern)
                )
            }
        }
    }
    /// The source column of a canonical field, if it is read from one.
    pub fn column(&self, field: usize) -> Option<&str> {
        match &self.fields[field].origin {
            Origin::Column(c) => Some(c),
            _ => None,
        }
    }
    /// Where to say a field came from in an error: `field` or `field (column col)`.
    pub fn describe(&self, field: usize) -> String {
        let f = &self.fields[field];
        match &f.origin {
            Origin::Column(c) if c != f.spec.name => format!("{} (column {c})", f.spec.name),
            _ => f.spec.name.to_string(),
        }
    }
    /// The table, query or files, for messages.
    pub fn place(&self) -> String {
        match &self.location {
            Location::Table(t) => format!("table {t}"),
            Location::Query(_) => "query".into(),
            Location::Files { pattern, .. } => format!("files {pattern}"),
        }
    }
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..4])
}

/// The resolved contract: a plan for every present entity, the names of the absent ones.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub plans: BTreeMap<&'static str, Plan>,
    /// Entities declared absent or not declared at all.
    pub absent: Vec<&'static str>,
}

impl Resolved {
    pub fn plan(&self, entity: &str) -> Option<&Plan> {
        self.plans.get(entity)
    }
    pub fn has(&self, entity: &str) -> bool {
        self.plans.contains_key(entity)
    }
}

const SHANGHAI: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

fn zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("time zone {name:?} is not an IANA zone (e.g. Asia/Shanghai, UTC)"))
}

/// A SQL identifier from the contract: a column or table name (dots separate a schema), which
/// the reader quotes. Quotes, backticks, semicolons and control characters are refused.
pub fn check_ident(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("an empty name".into());
    }
    if s.chars()
        .any(|c| matches!(c, '"' | '`' | '\'' | ';' | '\\') || c.is_control())
    {
        return Err(format!(
            "{s:?} is not a plain name (no quotes, backticks, ';' or '\\')"
        ));
    }
    Ok(())
}

impl Contract {
    /// Reads a contract from TOML text (a contract file, or the `[sources]` and `[entities]`
    /// tables of `c360.toml`).
    pub fn from_toml(text: &str) -> Result<Contract, ContractError> {
        toml::from_str(text).map_err(|e| ContractError(vec![e.to_string()]))
    }

    /// The simulator's schema as a contract (`examples/sim.toml`).
    pub fn simulator() -> Contract {
        // The file is checked by a test; parsing a constant cannot fail at run time.
        Contract::from_toml(SIM_CONTRACT).expect("examples/sim.toml is a valid contract")
    }

    /// Fills the URL of the sources named `pos` and `wx` from the settings when the contract
    /// leaves it unset.
    pub fn with_urls(mut self, pos: &str, wx: &str) -> Contract {
        for (name, url) in [("pos", pos), ("wx", wx)] {
            if let Some(s) = self.sources.get_mut(name) {
                if s.url.is_none() && s.dir.is_none() {
                    s.url = Some(url.to_string());
                }
            }
        }
        self
    }

    /// Checks the whole contract and turns it into plans; every problem is reported at once.
    pub fn resolve(&self) -> Result<Resolved, ContractError> {
        let mut errs = Vec::new();
        for (name, s) in &self.sources {
            match (&s.url, &s.dir) {
                (Some(_), Some(_)) => {
                    errs.push(format!("sources.{name}: give url or dir, not both"))
                }
                (None, None) => errs.push(format!(
                    "sources.{name}: no url or dir (for pos and wx, the pos / wx settings give it)"
                )),
                _ => {}
            }
            if let Some(z) = &s.time_zone {
                if let Err(e) = zone(z) {
                    errs.push(format!("sources.{name}.time_zone: {e}"));
                }
            }
            if let Some(f) = &s.time_format {
                if let Err(e) = TimeFormat::parse(f) {
                    errs.push(format!("sources.{name}.time_format: {e}"));
                }
            }
        }
        for name in self.entities.keys() {
            if spec(name).is_none() {
                errs.push(format!(
                    "entities.{name}: not an entity c360 reads (known: {})",
                    ENTITIES
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let mut out = Resolved::default();
        for spec in ENTITIES.iter() {
            let Some(def) = self.entities.get(spec.name) else {
                out.absent.push(spec.name);
                continue;
            };
            if def.absent {
                out.absent.push(spec.name);
                continue;
            }
            match self.plan(spec, def) {
                Ok(p) => {
                    out.plans.insert(spec.name, p);
                }
                Err(mut e) => errs.append(&mut e),
            }
        }
        if let Some(p) = out.plans.get("coupon_redemptions") {
            let of = p.of.clone().unwrap_or_default();
            if !out.plans.contains_key(of.as_str()) {
                errs.push(format!(
                    "entities.coupon_redemptions.of: {of:?} is not a present order entity"
                ));
            } else if out.plans[of.as_str()].source != p.source {
                errs.push("entities.coupon_redemptions: must come from the same source as the orders they belong to".into());
            }
        }
        // Items without their orders' entity are allowed: an import of items alone finds their
        // orders in the warehouse (a line whose order is nowhere is quarantined, naming it).
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(ContractError(errs))
        }
    }

    fn plan(&self, spec: &'static EntitySpec, def: &EntityDef) -> Result<Plan, Vec<String>> {
        let at_ = format!("entities.{}", spec.name);
        let mut errs = Vec::new();
        let Some(source) = def.source.clone() else {
            return Err(vec![format!("{at_}: no source (or absent = true)")]);
        };
        let Some(sdef) = self.sources.get(&source) else {
            return Err(vec![format!("{at_}.source: no source named {source:?}")]);
        };
        let at = match (&sdef.url, &sdef.dir) {
            (Some(u), _) => SourceAt::Db(u.clone()),
            (None, Some(d)) => SourceAt::Dir(d.clone()),
            (None, None) => return Err(vec![]), // reported with the source
        };
        let location = match (&def.table, &def.query, &def.file, &at) {
            (Some(t), None, None, SourceAt::Db(_)) => {
                for part in t.split('.') {
                    if let Err(e) = check_ident(part) {
                        errs.push(format!("{at_}.table: {e}"));
                    }
                }
                Location::Table(t.clone())
            }
            (None, Some(q), None, SourceAt::Db(_)) => {
                if q.contains(';') {
                    errs.push(format!("{at_}.query: one SELECT, without ';'"));
                }
                Location::Query(q.clone())
            }
            (None, None, Some(f), SourceAt::Dir(_)) => Location::Files {
                pattern: f.clone(),
                format: def.format,
                delimiter: def.delimiter.clone(),
                header: def.header.unwrap_or(true),
            },
            (_, _, _, SourceAt::Db(_)) => {
                return Err(vec![format!(
                    "{at_}: a database source needs exactly one of table or query"
                )])
            }
            (_, _, _, SourceAt::Dir(_)) => {
                return Err(vec![format!(
                    "{at_}: a file source needs file (a name or glob)"
                )])
            }
        };
        if def.of.is_some() && spec.name != "coupon_redemptions" {
            errs.push(format!("{at_}.of: only coupon_redemptions take of"));
        }
        if spec.name == "coupon_redemptions"
            && !matches!(def.of.as_deref(), Some("orders" | "wx_orders"))
        {
            errs.push(format!("{at_}.of: must be \"orders\" or \"wx_orders\""));
        }
        let zone_of = |z: Option<&String>| -> Result<chrono_tz::Tz, String> {
            match z.or(def.time_zone.as_ref()).or(sdef.time_zone.as_ref()) {
                Some(z) => zone(z),
                None => Ok(SHANGHAI),
            }
        };
        let format_of = |f: Option<&String>| -> Result<TimeFormat, String> {
            match f.or(def.time_format.as_ref()).or(sdef.time_format.as_ref()) {
                Some(f) => TimeFormat::parse(f),
                None => Ok(TimeFormat::Text),
            }
        };
        for k in def.columns.keys() {
            if spec.field(k).is_none() {
                errs.push(format!(
                    "{at_}.columns.{k}: no such field (fields: {})",
                    spec.fields
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for m in &def.missing {
            match spec.field(m) {
                None => errs.push(format!("{at_}.missing: {m:?} is no field of {}", spec.name)),
                // Rows of files without an id are keyed by their content (`source`).
                Some(i) if i == spec.key && matches!(location, Location::Files { .. }) => {}
                Some(i) if spec.fields[i].required => errs.push(format!(
                    "{at_}.missing: {m} is required and cannot be missing{}",
                    if i == spec.key {
                        " (only files may lack their key: their rows are keyed by content)"
                    } else {
                        ""
                    }
                )),
                Some(_) if def.columns.contains_key(m) => {
                    errs.push(format!("{at_}: {m} is both mapped and missing"))
                }
                Some(_) => {}
            }
        }
        for (k, map) in &def.codes {
            match spec.field(k).map(|i| spec.fields[i].kind) {
                Some(Kind::Code(set)) => {
                    for (from, to) in map {
                        if !set.values().contains(&to.as_str()) {
                            errs.push(format!(
                                "{at_}.codes.{k}: {from:?} maps to {to:?}, which is not one of {}",
                                set.values().join(", ")
                            ));
                        }
                    }
                }
                _ => errs.push(format!("{at_}.codes.{k}: not a coded field")),
            }
        }
        let mut fields = Vec::new();
        for f in spec.fields {
            let col = def.columns.get(f.name);
            let cs = match col {
                Some(ColumnDef::Spec(s)) => s.clone(),
                Some(ColumnDef::Name(n)) => ColumnSpec {
                    column: Some(n.clone()),
                    ..Default::default()
                },
                None => ColumnSpec::default(),
            };
            let origin = if def.missing.iter().any(|m| m == f.name) {
                Origin::Missing
            } else {
                match (&cs.column, &cs.value) {
                    (Some(_), Some(_)) => {
                        errs.push(format!(
                            "{at_}.columns.{}: column or value, not both",
                            f.name
                        ));
                        Origin::Missing
                    }
                    (None, Some(v)) => Origin::Constant(v.clone()),
                    (Some(c), None) => Origin::Column(c.clone()),
                    // Fields added after contracts were written are read only when mapped.
                    (None, None) if OPT_IN.contains(&f.name) => Origin::Missing,
                    (None, None) => Origin::Column(f.name.to_string()),
                }
            };
            if let Origin::Column(c) = &origin {
                if !matches!(location, Location::Files { .. }) {
                    if let Err(e) = check_ident(c) {
                        errs.push(format!("{at_}.columns.{}: {e}", f.name));
                    }
                }
            }
            let zone = zone_of(cs.time_zone.as_ref()).unwrap_or_else(|e| {
                errs.push(format!("{at_}.{}: {e}", f.name));
                SHANGHAI
            });
            let time_format = format_of(cs.time_format.as_ref()).unwrap_or_else(|e| {
                errs.push(format!("{at_}.{}: {e}", f.name));
                TimeFormat::Text
            });
            let money = cs.money.or(def.money).or(sdef.money).unwrap_or(Money::Fen);
            fields.push(FieldPlan {
                spec: *f,
                origin,
                time_format,
                zone,
                money,
                codes: def.codes.get(f.name).cloned().unwrap_or_default(),
            });
        }
        let incremental = match (&def.incremental, &location) {
            (None, _) => None,
            (Some(_), Location::Files { .. }) => {
                errs.push(format!(
                    "{at_}.incremental: files are read whole and merged by key; no incremental key"
                ));
                None
            }
            (Some(i), _) => {
                if let Err(e) = check_ident(&i.column) {
                    errs.push(format!("{at_}.incremental.column: {e}"));
                }
                // The column's format: the field's if it is a mapped time field, else the entity's.
                let mapped = fields.iter().find(|f| {
                    f.spec.kind == Kind::Time && f.origin == Origin::Column(i.column.clone())
                });
                let time_format = match mapped {
                    Some(f) => f.time_format.clone(),
                    None => format_of(None).unwrap_or(TimeFormat::Text),
                };
                Some(Incremental {
                    column: i.column.clone(),
                    kind: i.kind,
                    time_format,
                })
            }
        };
        if errs.is_empty() {
            Ok(Plan {
                spec,
                source,
                at,
                location,
                fields,
                incremental,
                of: def.of.clone(),
            })
        } else {
            Err(errs)
        }
    }
}

/// The simulator's contract, shipped as `examples/sim.toml`.
pub const SIM_CONTRACT: &str = include_str!("../../../examples/sim.toml");

// ---------------------------------------------------------------------------------------------
// Values.

/// A value as a source gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(std::borrow::Cow<'a, str>),
    Bool(bool),
}

impl Raw<'_> {
    /// The value as a source would print it (for messages and code lookups).
    pub fn show(&self) -> String {
        match self {
            Raw::Null => String::new(),
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(t) => t.to_string(),
            Raw::Bool(b) => b.to_string(),
        }
    }
}

/// A canonical value, or why the source's value could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Time(NaiveDateTime),
    Date(NaiveDate),
    Bad(String),
}

/// The largest id a text id is hashed into (ids stay positive in an i64).
const ID_MASK: u64 = (1 << 62) - 1;

/// The stable id of a text id: the first 8 bytes of its SHA-256, in 1..2^62 (offset past any
/// integer id a source is likely to use, so a text id never meets a numeric one).
pub fn text_id(s: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    ((u64::from_be_bytes(b) & ID_MASK) | (1 << 61)) as i64
}

/// Parses a decimal amount of yuan into fen, exactly (no float): `12.5` and `12.50` are 1250;
/// digits past the second decimal must be zeros.
pub fn yuan_to_fen(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "not an amount in yuan: {:?}",
            t.chars().take(40).collect::<String>()
        )
    };
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 2 && frac[2..].bytes().any(|b| b != b'0') {
        return Err(format!(
            "{t:?}: more than two decimals of yuan (fractions of a fen)"
        ));
    }
    let mut fen: i64 = if int.is_empty() {
        0
    } else {
        int.parse::<i64>().map_err(|_| bad())?
    };
    let f2: String = frac.chars().chain("00".chars()).take(2).collect();
    fen = fen
        .checked_mul(100)
        .and_then(|v| v.checked_add(f2.parse::<i64>().unwrap_or(0)))
        .ok_or_else(bad)?;
    Ok(if neg { -fen } else { fen })
}

/// A DATETIME as a database prints it: `YYYY-MM-DD HH:MM:SS`, with `T`, fractions of a second
/// or an offset (`+08`, `+08:00`, `Z`); a bare date is midnight. With an offset the moment is
/// exact; without, it is wall time in `zone`.
fn parse_datetime(t: &str, zone: chrono_tz::Tz) -> Result<NaiveDateTime, String> {
    let t = t.trim();
    if let Some(n) = plain_datetime(t) {
        return local(n, zone);
    }
    let bad = || {
        format!(
            "not a date-time: {:?}",
            t.chars().take(40).collect::<String>()
        )
    };
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(t, f) {
            return Ok(dt.with_timezone(&SHANGHAI).naive_local());
        }
    }
    if let Some(z) = t.strip_suffix('Z') {
        if let Ok(n) = NaiveDateTime::parse_from_str(z, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(chrono::Utc
                .from_utc_datetime(&n)
                .with_timezone(&SHANGHAI)
                .naive_local());
        }
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .or_else(|_| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| bad())?;
    local(naive, zone)
}

/// `YYYY-MM-DD HH:MM:SS` (or with a `T`), the form nearly every source writes, read without
/// chrono's pattern interpreter (which the caller tries four times over otherwise). None for
/// any other form or an impossible date, which the patterns then read or refuse.
fn plain_datetime(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b' ' && b[10] != b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?.and_hms_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )
}

/// Wall time in `zone` as Asia/Shanghai wall time.
fn local(naive: NaiveDateTime, zone: chrono_tz::Tz) -> Result<NaiveDateTime, String> {
    if zone == SHANGHAI {
        return Ok(naive);
    }
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            Ok(t.with_timezone(&SHANGHAI).naive_local())
        }
        chrono::LocalResult::None => {
            Err(format!("{naive} does not exist in {zone} (a clock change)"))
        }
    }
}

fn unix(v: i64, millis: bool) -> Result<NaiveDateTime, String> {
    let (secs, nanos) = if millis {
        (v.div_euclid(1000), (v.rem_euclid(1000) * 1_000_000) as u32)
    } else {
        (v, 0)
    };
    // Before 1990 or past 2100 is a sentinel (0, -1) or a unit mix-up, not an order.
    if !(631_152_000..=4_102_444_800).contains(&secs) {
        return Err(format!(
            "{v} is not a Unix time in {} between 1990 and 2100",
            if millis { "milliseconds" } else { "seconds" }
        ));
    }
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.with_timezone(&SHANGHAI).naive_local())
        .ok_or_else(|| format!("{v} is not a Unix time"))
}

impl FieldPlan {
    /// The canonical value of one source value.
    pub fn convert(&self, raw: Raw<'_>) -> Cell {
        let raw = match (&self.origin, raw) {
            (Origin::Missing, _) => return Cell::Null,
            (Origin::Constant(c), _) => Raw::Text(c.as_str().into()),
            (_, r) => r,
        };
        if let Raw::Text(t) = &raw {
            if t.trim().is_empty() && self.spec.kind != Kind::Text && self.spec.kind != Kind::Time {
                return Cell::Null;
            }
        }
        if raw == Raw::Null {
            return Cell::Null;
        }
        match self.spec.kind {
            Kind::Id => match raw {
                Raw::Int(i) => Cell::Int(i),
                Raw::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Cell::Int(f as i64),
                Raw::Text(t) => match t.trim().parse::<i64>() {
                    Ok(i) => Cell::Int(i),
                    Err(_) => Cell::Int(text_id(t.trim())),
                },
                other => Cell::Bad(format!("not an id: {}", other.show())),
            },
            Kind::Key => match raw {
                Raw::Int(i) => Cell::Text(i.to_string()),
                Raw::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Cell::Text((f as i64).to_string())
                }
                Raw::Text(t) => Cell::Text(t.trim().to_string()),
                other => Cell::Bad(format!("not an id: {}", other.show())),
            },
            Kind::Int => match raw {
                Raw::Int(i) => Cell::Int(i),
                Raw::Bool(b) => Cell::Int(b as i64),
                Raw::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Cell::Int(f as i64),
                Raw::Text(t) => match t.trim().parse::<i64>() {
                    Ok(i) => Cell::Int(i),
                    Err(_) => Cell::Bad(format!("not an integer: {:?}", clip(&t))),
                },
                other => Cell::Bad(format!("not an integer: {}", other.show())),
            },
            Kind::Float => match raw {
                Raw::Int(i) => Cell::Float(i as f64),
                Raw::Float(f) => Cell::Float(f),
                Raw::Text(t) => match t.trim().parse::<f64>() {
                    Ok(f) if f.is_finite() => Cell::Float(f),
                    _ => Cell::Bad(format!("not a number: {:?}", clip(&t))),
                },
                other => Cell::Bad(format!("not a number: {}", other.show())),
            },
            Kind::Text => match raw {
                Raw::Text(t) => Cell::Text(t.into_owned()),
                other => Cell::Text(other.show()),
            },
            Kind::Bool => match raw {
                Raw::Bool(b) => Cell::Int(b as i64),
                Raw::Int(i) => Cell::Int((i != 0) as i64),
                Raw::Text(t) => match t.trim().to_lowercase().as_str() {
                    "1" | "true" | "t" | "y" | "yes" | "是" => Cell::Int(1),
                    "0" | "false" | "f" | "n" | "no" | "否" => Cell::Int(0),
                    _ => Cell::Bad(format!("not a yes/no value: {:?}", clip(&t))),
                },
                other => Cell::Bad(format!("not a yes/no value: {}", other.show())),
            },
            Kind::Code(_) => {
                let v = match &raw {
                    Raw::Float(f) if f.fract() == 0.0 => (*f as i64).to_string(),
                    r => r.show().trim().to_string(),
                };
                if self.codes.is_empty() {
                    Cell::Text(v)
                } else {
                    match self.codes.get(&v) {
                        Some(c) => Cell::Text(c.clone()),
                        None => Cell::Bad(format!(
                            "code {v:?} is not mapped (mapped: {})",
                            self.codes.keys().cloned().collect::<Vec<_>>().join(", ")
                        )),
                    }
                }
            }
            Kind::Money => match (self.money, raw) {
                (Money::Fen, Raw::Int(i)) => Cell::Int(i),
                (Money::Fen, Raw::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Cell::Int(f as i64)
                }
                (Money::Fen, Raw::Text(t)) => match c360_model::Fen::parse(&t) {
                    Ok(f) => Cell::Int(f.0),
                    Err(_) => match t.trim().parse::<i64>() {
                        Ok(v) => Cell::Int(v),
                        Err(_) => Cell::Bad(format!("not an amount in fen: {:?}", clip(&t))),
                    },
                },
                (Money::Yuan, Raw::Int(i)) => match i.checked_mul(100) {
                    Some(v) => Cell::Int(v),
                    None => Cell::Bad(format!("{i} yuan is out of range")),
                },
                (Money::Yuan, Raw::Float(f)) => {
                    // A float column: round to the fen (a DOUBLE cannot hold 0.1 exactly).
                    let v = (f * 100.0).round();
                    if v.is_finite() && v.abs() < 9.0e15 {
                        Cell::Int(v as i64)
                    } else {
                        Cell::Bad(format!("not an amount in yuan: {f}"))
                    }
                }
                (Money::Yuan, Raw::Text(t)) => match yuan_to_fen(&t) {
                    Ok(v) => Cell::Int(v),
                    Err(e) => Cell::Bad(e),
                },
                (_, other) => Cell::Bad(format!("not an amount: {}", other.show())),
            },
            Kind::Time => self.time(raw),
            Kind::Date => match raw {
                Raw::Text(t) => {
                    let s = t.trim();
                    let d = match &self.time_format {
                        TimeFormat::Pattern(p) => NaiveDate::parse_from_str(s, p)
                            .or_else(|_| NaiveDateTime::parse_from_str(s, p).map(|t| t.date()))
                            .map_err(|_| format!("not a date in format {p:?}: {:?}", clip(s))),
                        // A date, or a date-time whose time is dropped (a DATE read from a
                        // TIMESTAMP column).
                        _ => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                            .or_else(|e| match s.get(10..11) {
                                Some(" " | "T") => parse_datetime(s, self.zone)
                                    .map(|t| t.date())
                                    .map_err(|_| e),
                                _ => Err(e),
                            })
                            .map_err(|_| c360_model::ParseError::Date(clip(s)).to_string()),
                    };
                    match d {
                        Ok(d) => Cell::Date(d),
                        Err(e) => Cell::Bad(e),
                    }
                }
                Raw::Int(i) if self.time_format.numeric() => {
                    match unix(i, self.time_format == TimeFormat::UnixMillis) {
                        Ok(t) => Cell::Date(t.date()),
                        Err(e) => Cell::Bad(e),
                    }
                }
                other => Cell::Bad(format!("not a date: {}", other.show())),
            },
        }
    }

    fn time(&self, raw: Raw<'_>) -> Cell {
        let r = match (&self.time_format, raw) {
            (TimeFormat::Text, Raw::Text(t)) => c360_model::parse_ts(&t)
                .map_err(|e| e.to_string())
                .and_then(|n| local(n, self.zone)),
            (TimeFormat::Datetime, Raw::Text(t)) => parse_datetime(&t, self.zone),
            (TimeFormat::UnixSeconds | TimeFormat::UnixMillis, Raw::Int(i)) => {
                unix(i, self.time_format == TimeFormat::UnixMillis)
            }
            (TimeFormat::UnixSeconds | TimeFormat::UnixMillis, Raw::Text(t)) => {
                match t.trim().parse::<i64>() {
                    Ok(i) => unix(i, self.time_format == TimeFormat::UnixMillis),
                    Err(_) => Err(format!("not a Unix time: {:?}", clip(&t))),
                }
            }
            (TimeFormat::UnixSeconds | TimeFormat::UnixMillis, Raw::Float(f))
                if f.fract() == 0.0 =>
            {
                unix(f as i64, self.time_format == TimeFormat::UnixMillis)
            }
            (TimeFormat::Pattern(p), raw @ (Raw::Text(_) | Raw::Int(_))) => {
                let s = raw.show();
                let s = s.trim();
                NaiveDateTime::parse_from_str(s, p)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(s, p).map(|d| d.and_time(chrono::NaiveTime::MIN))
                    })
                    .map_err(|_| format!("not a time in format {p:?}: {:?}", clip(s)))
                    .and_then(|n| local(n, self.zone))
            }
            (f, other) => Err(format!("not a time ({f:?}): {:?}", clip(&other.show()))),
        };
        match r {
            Ok(t) => Cell::Time(t),
            Err(e) => Cell::Bad(e),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path reads exactly what chrono's pattern reads, and nothing it refuses.
    #[test]
    fn plain_datetimes_read_as_the_pattern_reads_them() {
        assert!(plain_datetime("2025-01-31 23:59:59").is_some());
        assert!(plain_datetime("2025-02-29 10:00:00").is_none());
        for t in [
            "2025-01-31 23:59:59",
            "2024-02-29 00:00:00",
            "2025-02-29 10:00:00",
            "2025-13-01 10:00:00",
            "2025-04-31 10:00:00",
            "2025-01-01 24:00:00",
            "2025-01-01 10:60:00",
            "2025-06-30 23:59:60",
            "2025-01-01T08:30:00",
            "2025-1-01 10:00:000",
            "2025-01-01 10:00:0x",
            "+025-01-01 10:00:00",
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2025-01-01 10:00:00Z",
        ] {
            let pattern = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
                .ok();
            // What the fast path claims, it reads as the pattern does; the rest is left to
            // the patterns (a signed year, a leap second, an impossible date).
            if let Some(n) = plain_datetime(t) {
                assert_eq!(Some(n), pattern, "{t}");
            }
            // Whatever path reads it, the whole parse agrees with the slow one.
            let slow = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok();
            if slow.is_some() {
                assert_eq!(parse_datetime(t, SHANGHAI).ok(), slow, "{t}");
            }
        }
    }

    fn field(kind: Kind) -> FieldPlan {
        FieldPlan {
            spec: FieldSpec {
                name: "f",
                kind,
                required: false,
            },
            origin: Origin::Column("f".into()),
            time_format: TimeFormat::Text,
            zone: SHANGHAI,
            money: Money::Fen,
            codes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_simulator_contract_resolves_with_every_entity() {
        let c = Contract::simulator().with_urls("pos.db", "wx.db");
        let r = c.resolve().unwrap();
        // The simulated POS keeps coupons on its orders: no table of redemptions.
        assert_eq!(r.absent, vec!["coupon_redemptions"]);
        assert_eq!(r.plans.len(), ENTITIES.len() - 1);
    }

    #[test]
    fn the_two_order_systems_have_their_fields_in_the_same_places() {
        for (a, b) in [
            (orders::SPEC, wx_orders::SPEC),
            (order_items::SPEC, wx_order_items::SPEC),
        ] {
            assert_eq!(a.fields.len(), b.fields.len());
            for (x, y) in a.fields.iter().zip(b.fields) {
                let person = |n: &str| n == "member_id" || n == "user_id";
                assert!(
                    x.name == y.name || (person(x.name) && person(y.name)),
                    "{} / {}",
                    x.name,
                    y.name
                );
                assert_eq!(x.kind, y.kind);
            }
        }
        assert_eq!(orders::MEMBER_ID, wx_orders::USER_ID);
    }

    #[test]
    fn yuan_is_read_exactly() {
        assert_eq!(yuan_to_fen("12.50"), Ok(1250));
        assert_eq!(yuan_to_fen("12.5"), Ok(1250));
        assert_eq!(yuan_to_fen("0.07"), Ok(7));
        assert_eq!(yuan_to_fen(" 3 "), Ok(300));
        assert_eq!(yuan_to_fen("12.5000"), Ok(1250));
        assert_eq!(yuan_to_fen("-1.01"), Ok(-101));
        assert!(yuan_to_fen("12.505").is_err());
        assert!(yuan_to_fen("1e3").is_err());
        assert!(yuan_to_fen("").is_err());
        assert!(yuan_to_fen(".").is_err());
        assert!(yuan_to_fen("99999999999999999999").is_err());
    }

    #[test]
    fn times_convert_to_shanghai_wall_time() {
        let mut f = field(Kind::Time);
        f.time_format = TimeFormat::UnixSeconds;
        // 2025-01-01 00:00:00 UTC is 08:00 in Shanghai.
        assert_eq!(
            f.convert(Raw::Int(1_735_689_600)),
            Cell::Time(c360_model::parse_ts("2025-01-01 08:00:00").unwrap())
        );
        assert!(matches!(f.convert(Raw::Int(0)), Cell::Bad(_)));
        assert!(matches!(f.convert(Raw::Int(-1)), Cell::Bad(_)));
        f.time_format = TimeFormat::UnixMillis;
        assert_eq!(
            f.convert(Raw::Int(1_735_689_600_500)),
            Cell::Time(
                c360_model::parse_ts("2025-01-01 08:00:00").unwrap()
                    + chrono::Duration::milliseconds(500)
            )
        );
        f.time_format = TimeFormat::Datetime;
        f.zone = chrono_tz::UTC;
        assert_eq!(
            f.convert(Raw::Text("2025-01-01 00:00:00.25".into())),
            Cell::Time(
                c360_model::parse_ts("2025-01-01 08:00:00").unwrap()
                    + chrono::Duration::milliseconds(250)
            )
        );
        // An offset wins over the zone.
        assert_eq!(
            f.convert(Raw::Text("2025-01-01 08:00:00+08".into())),
            Cell::Time(c360_model::parse_ts("2025-01-01 08:00:00").unwrap())
        );
        f.time_format = TimeFormat::Pattern("%Y%m%d".into());
        f.zone = SHANGHAI;
        assert_eq!(
            f.convert(Raw::Text("19970101".into())),
            Cell::Time(c360_model::parse_ts("1997-01-01 00:00:00").unwrap())
        );
        f.time_format = TimeFormat::Text;
        assert_eq!(
            f.convert(Raw::Text("2025-02-30 25:61:00".into())),
            Cell::Bad("not a timestamp 'YYYY-MM-DD HH:MM:SS': 2025-02-30 25:61:00".into())
        );
    }

    #[test]
    fn codes_map_and_unmapped_codes_are_named() {
        let mut f = field(Kind::Code(Codes::OrderStatus));
        assert_eq!(
            f.convert(Raw::Text("paid".into())),
            Cell::Text("paid".into())
        );
        f.codes = [("1".to_string(), "paid".to_string())]
            .into_iter()
            .collect();
        assert_eq!(f.convert(Raw::Int(1)), Cell::Text("paid".into()));
        assert_eq!(
            f.convert(Raw::Int(7)),
            Cell::Bad("code \"7\" is not mapped (mapped: 1)".into())
        );
    }

    #[test]
    fn text_ids_are_stable_and_apart_from_numbers() {
        let f = field(Kind::Id);
        assert_eq!(f.convert(Raw::Text(" 42 ".into())), Cell::Int(42));
        let a = f.convert(Raw::Text("SO-2025-0001".into()));
        assert_eq!(a, f.convert(Raw::Text("SO-2025-0001".into())));
        let Cell::Int(v) = a else { panic!() };
        assert!(v >= 1 << 61);
    }

    #[test]
    fn a_contract_with_mistakes_names_each_of_them() {
        let c = Contract::from_toml(
            r#"
            [sources.pos]
            url = "sqlite://x.db"
            time_zone = "Mars/Olympus"
            [entities.orders]
            source = "pos"
            table = "o"
            missing = ["total"]
            columns = { nonsense = "x", status = "st`x" }
            codes.status = { "1" = "paidd" }
            [entities.tickets]
            source = "nowhere"
            [entities.pizzas]
            source = "pos"
            "#,
        )
        .unwrap();
        let e = c.resolve().unwrap_err().to_string();
        for want in [
            "Mars/Olympus",
            "total is required",
            "columns.nonsense: no such field",
            "st`x",
            "\"paidd\"",
            "no source named \"nowhere\"",
            "entities.pizzas: not an entity",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }
}
