//! The warehouse's tables: their Arrow schemas, keys and partitioning, and the SQL views over
//! them (`orders`, `order_items`, `v_customer_360`, …) that users query.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every load replaces the whole table (dimensions, derived tables).
    Replace,
    /// Rows are merged by key into month partitions (facts).
    Upsert,
}

pub struct TableDef {
    pub name: &'static str,
    pub mode: Mode,
    /// Unique key column (Utf8) for upserts.
    pub key: &'static str,
    /// Utf8 partition column (`YYYY-MM`) for upserts.
    pub partition: Option<&'static str>,
    pub schema: fn() -> SchemaRef,
}

pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+08:00".into()))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}
use DataType::{Float64 as F64, Int64 as I64, Utf8 as S};

fn cities() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("city_id", I64, false),
        f("name", S, false),
        f("province", S, true),
        f("tier", I64, true),
        f("lat", F64, true),
        f("lon", F64, true),
    ]))
}
fn stores() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("store_id", I64, false),
        f("store_code", S, false),
        f("name", S, true),
        f("city_id", I64, true),
        f("city", S, true),
        f("tier", I64, true),
        f("store_type", S, true),
        f("lat", F64, true),
        f("lon", F64, true),
        f("open_date", DataType::Date32, true),
        f("status", S, true),
    ]))
}
fn products() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("product_id", I64, false),
        f("sku", S, false),
        f("name", S, true),
        f("category", S, true),
        f("price_fen", I64, true),
        f("launched", DataType::Date32, true),
        // Unit cost (ingredients, packaging) when the contract maps it.
        f("cost_fen", I64, true),
    ]))
}
fn customers() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("customer_id", I64, false),
        f("phone_hash", S, true),
        f("phone_masked", S, true),
        f("name_masked", S, true),
        f("gender", S, true),
        f("birth_year", I64, true),
        f("member_count", I64, false),
        f("wx_user_count", I64, false),
        f("register_store_id", I64, true),
        f("first_seen", ts(), true),
        f("source_keys", S, false),
        // Marketing consent per channel: the latest statement of any of the customer's source
        // rows (true granted, false refused or withdrawn, NULL never asked: no consent).
        f("consent_wechat", DataType::Boolean, true),
        f("consent_sms", DataType::Boolean, true),
        f("consent_push", DataType::Boolean, true),
    ]))
}
fn customer_keys() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("source_key", S, false),
        f("customer_id", I64, false),
        f("rule", S, false),
    ]))
}
/// Payment accounts seen paying a known member's or user's orders: identity evidence (a till
/// payment by the account a mini-program user pays with, or by one account on two days).
fn payer_links() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("payer_hash", S, false),
        f("customer_key", S, false),
        f("first_day", I64, false),
        f("last_day", I64, false),
    ]))
}
fn fact_orders() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("order_key", S, false),
        f("source", S, false),
        f("source_order_id", I64, false),
        f("order_no", S, true),
        // None only for a chain that declares no stores (an export of orders alone).
        f("store_id", I64, true),
        f("customer_key", S, true),
        f("order_time", ts(), false),
        f("month", S, false),
        f("total_fen", I64, false),
        f("discount_fen", I64, false),
        f("channel", S, false),
        f("pay_method", S, true),
        f("status", S, false),
        f("coupon_code", S, true),
        f("daypart", S, false),
        f("holiday", S, true),
    ]))
}
fn fact_order_items() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("item_key", S, false),
        f("order_key", S, false),
        f("product_id", I64, false),
        f("qty", I64, false),
        f("unit_price_fen", I64, false),
        f("amount_fen", I64, false),
        f("month", S, false),
    ]))
}
fn behavior() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("event_key", S, false),
        f("customer_key", S, false),
        f("session_id", S, true),
        f("action_type", S, false),
        f("page", S, true),
        f("event_time", ts(), false),
        f("device", S, true),
        f("lat_coarse", F64, true),
        f("lon_coarse", F64, true),
        f("month", S, false),
    ]))
}
fn emotion() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("review_key", S, false),
        f("customer_key", S, false),
        f("order_key", S, true),
        f("store_id", I64, true),
        f("rating", I64, false),
        f("content", S, true),
        f("created_at", ts(), false),
        f("sentiment", F64, true),
        f("month", S, false),
    ]))
}
fn shares() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("share_key", S, false),
        f("customer_key", S, false),
        f("to_customer_key", S, true),
        f("page", S, true),
        f("campaign", S, true),
        f("share_time", ts(), false),
        f("month", S, false),
    ]))
}
fn tickets() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("ticket_key", S, false),
        f("customer_key", S, false),
        f("order_key", S, true),
        f("created_at", ts(), false),
        f("message", S, true),
        f("status", S, false),
        // The cause an agent recorded when closing the ticket; NULL while open.
        f("resolved_cause", S, true),
        f("month", S, false),
    ]))
}
fn ties() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("tie_key", S, false),
        // "group": customer_key joined group order ref_id started by other_key; "paid_by":
        // customer_key paid order ref_id for other_key.
        f("kind", S, false),
        f("customer_key", S, false),
        f("other_key", S, true),
        f("ref_id", S, true),
        f("at", ts(), false),
        f("month", S, false),
    ]))
}
fn review_sentiment() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("review_key", S, false),
        f("customer_id", I64, true),
        f("store_id", I64, true),
        f("created_at", ts(), false),
        f("month", S, false),
        f("rating", I64, false),
        f("sentiment", F64, false),
        f("taste", F64, true),
        f("service", F64, true),
        f("price", F64, true),
        f("environment", F64, true),
        f("speed", F64, true),
        f("hygiene", F64, true),
    ]))
}
fn sessions() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("session_id", S, false),
        f("customer_id", I64, true),
        f("started_at", ts(), false),
        f("ended_at", ts(), false),
        f("events", I64, false),
        f("duration_s", I64, false),
        // Furthest funnel step reached in order: 0 none, 1 menu, 2 item, 3 cart, 4 pay.
        f("max_step", I64, false),
        f("path", S, false),
        f("device", S, true),
    ]))
}
fn network() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("customer_id", I64, false),
        f("pagerank", F64, false),
        f("influence_rank", I64, false),
        f("community", I64, false),
        f("community_size", I64, false),
        f("ties_out", I64, false),
        f("ties_in", I64, false),
        f("shares_sent", I64, false),
        f("cascade_reach", I64, false),
        f("seed_rank", I64, true),
        f("seed_spread", F64, true),
    ]))
}
fn cascades() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("campaign", S, false),
        f("root_customer_id", I64, false),
        f("reached", I64, false),
        f("depth", I64, false),
        f("longest_path", S, false),
    ]))
}
fn segmentation() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("customer_id", I64, false),
        f("recency_days", I64, false),
        f("frequency", I64, false),
        f("monetary_fen", I64, false),
        f("r_score", I64, false),
        f("f_score", I64, false),
        f("m_score", I64, false),
        f("rfm_class", S, false),
        f("tier", S, false),
        f("as_of", DataType::Date32, false),
        f("rfm_segment", S, false),
        f("city_id", I64, true),
        f("lifecycle", S, false),
        f("cluster", I64, true),
        f("value_growth", F64, true),
        f("home_store_id", I64, true),
    ]))
}
fn predictions() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("customer_id", I64, false),
        f("model", S, false),
        f("metric", S, false),
        f("horizon_days", I64, true),
        f("value", F64, false),
        f("as_of", DataType::Date32, false),
    ]))
}
fn quarantine() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("q_key", S, false),
        f("source_table", S, false),
        f("row_id", S, false),
        f("field", S, false),
        f("reason", S, false),
        f("value_masked", S, true),
        f("run_id", I64, false),
        f("month", S, false),
    ]))
}
fn dq_report() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("table_name", S, false),
        f("check", S, false),
        f("value", F64, false),
        f("detail", S, true),
    ]))
}

pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "cities",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: cities,
    },
    TableDef {
        name: "stores",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: stores,
    },
    TableDef {
        name: "products",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: products,
    },
    TableDef {
        name: "customers",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: customers,
    },
    TableDef {
        name: "customer_keys",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: customer_keys,
    },
    TableDef {
        name: "payer_links",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: payer_links,
    },
    TableDef {
        name: "fact_orders",
        mode: Mode::Upsert,
        key: "order_key",
        partition: Some("month"),
        schema: fact_orders,
    },
    TableDef {
        name: "fact_order_items",
        mode: Mode::Upsert,
        key: "item_key",
        partition: Some("month"),
        schema: fact_order_items,
    },
    TableDef {
        name: "customer_behavior_tracks_raw",
        mode: Mode::Upsert,
        key: "event_key",
        partition: Some("month"),
        schema: behavior,
    },
    TableDef {
        name: "customer_emotion_raw",
        mode: Mode::Upsert,
        key: "review_key",
        partition: Some("month"),
        schema: emotion,
    },
    TableDef {
        name: "customer_shares_raw",
        mode: Mode::Upsert,
        key: "share_key",
        partition: Some("month"),
        schema: shares,
    },
    TableDef {
        name: "customer_ties_raw",
        mode: Mode::Upsert,
        key: "tie_key",
        partition: Some("month"),
        schema: ties,
    },
    TableDef {
        name: "service_tickets_raw",
        mode: Mode::Upsert,
        key: "ticket_key",
        partition: Some("month"),
        schema: tickets,
    },
    TableDef {
        name: "review_sentiment",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: review_sentiment,
    },
    TableDef {
        name: "customer_sessions",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: sessions,
    },
    TableDef {
        name: "customer_network",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: network,
    },
    TableDef {
        name: "network_cascades",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: cascades,
    },
    TableDef {
        name: "customer_segmentation",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: segmentation,
    },
    TableDef {
        name: "customer_predictions",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: predictions,
    },
    TableDef {
        name: "quarantine",
        mode: Mode::Upsert,
        key: "q_key",
        partition: Some("month"),
        schema: quarantine,
    },
    TableDef {
        name: "dq_report",
        mode: Mode::Replace,
        key: "",
        partition: None,
        schema: dq_report,
    },
];

pub fn def(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

/// The schema of one of [`TABLES`], by a name written in the code (a wrong name is a bug).
pub fn schema(name: &'static str) -> datafusion::arrow::datatypes::SchemaRef {
    (def(name).expect("a table c360 defines").schema)()
}

/// Views resolving facts to the current customer id (identity can change; facts keep the source
/// key), in the seed's names.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "service_tickets",
        "SELECT t.ticket_key, k.customer_id, t.order_key, t.created_at, t.message, t.status, \
         t.resolved_cause FROM service_tickets_raw t \
         LEFT JOIN customer_keys k ON t.customer_key = k.source_key",
    ),
    (
        "orders",
        "SELECT o.order_key AS order_id, o.source, o.source_order_id, o.order_no, o.store_id, \
         k.customer_id, o.customer_key, o.order_time, o.month, o.total_fen, o.discount_fen, o.channel, \
         o.pay_method, o.status, o.coupon_code, o.daypart, o.holiday \
         FROM fact_orders o LEFT JOIN customer_keys k ON o.customer_key = k.source_key",
    ),
    (
        "order_items",
        "SELECT i.item_key AS item_id, i.order_key AS order_id, i.product_id, i.qty, i.unit_price_fen, \
         i.amount_fen, i.month FROM fact_order_items i",
    ),
    (
        "customer_behavior_tracks",
        // Events posted to the server name the customer id itself (key `C:{id}`). (A CASE, not
        // COALESCE: DataFusion drops a COALESCE whose first argument is non-null before the join.)
        "SELECT b.event_key AS track_id, \
         CASE WHEN b.customer_key LIKE 'C:%' THEN CAST(substr(b.customer_key, 3) AS BIGINT) ELSE k.customer_id END AS customer_id, \
         b.session_id, b.action_type, b.page, b.event_time, \
         b.device, b.lat_coarse, b.lon_coarse FROM customer_behavior_tracks_raw b \
         LEFT JOIN customer_keys k ON b.customer_key = k.source_key",
    ),
    (
        "customer_emotion",
        "SELECT e.review_key AS emotion_id, k.customer_id, e.order_key AS order_id, e.store_id, e.rating, \
         e.content, e.created_at, COALESCE(r.sentiment, e.sentiment) AS sentiment, r.taste, r.service, \
         r.price, r.environment, r.speed, r.hygiene FROM customer_emotion_raw e \
         LEFT JOIN customer_keys k ON e.customer_key = k.source_key \
         LEFT JOIN review_sentiment r ON e.review_key = r.review_key",
    ),
    (
        "v_customer_360",
        "WITH o AS (SELECT customer_id, COUNT(*) AS order_count, SUM(total_fen) AS total_spend_fen, \
           MIN(order_time) AS first_order_time, MAX(order_time) AS last_order_time, \
           SUM(CASE WHEN source = 'wx' THEN 1 ELSE 0 END) AS wx_orders, \
           approx_distinct(store_id) AS store_count \
           FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL GROUP BY customer_id), \
         e AS (SELECT customer_id, AVG(rating) AS avg_rating, COUNT(*) AS review_count FROM customer_emotion GROUP BY customer_id), \
         b AS (SELECT customer_id, COUNT(*) AS event_count, approx_distinct(session_id) AS session_count FROM customer_behavior_tracks GROUP BY customer_id), \
         p AS (SELECT customer_id, \
           MAX(CASE WHEN metric = 'p_alive' THEN value END) AS p_alive, \
           MAX(CASE WHEN metric = 'expected_purchases' THEN value END) AS expected_purchases_365d, \
           MAX(CASE WHEN metric = 'expected_spend_fen' THEN value END) AS expected_spend_fen, \
           MAX(CASE WHEN metric = 'clv_fen' THEN value END) AS clv_12m_fen, \
           MAX(CASE WHEN metric = 'p_churn_90d' THEN value END) AS p_churn_90d, \
           MAX(CASE WHEN metric = 'next_order_days' THEN value END) AS next_order_days, \
           MAX(CASE WHEN metric = 'overdue' THEN value END) AS overdue \
           FROM customer_predictions GROUP BY customer_id) \
         SELECT c.customer_id, c.phone_masked, c.name_masked, c.gender, c.birth_year, c.member_count, c.wx_user_count, \
           c.register_store_id, c.first_seen, \
           COALESCE(o.order_count, 0) AS order_count, COALESCE(o.total_spend_fen, 0) AS total_spend_fen, \
           CASE WHEN o.order_count > 0 THEN o.total_spend_fen / o.order_count END AS avg_order_fen, \
           o.first_order_time, o.last_order_time, COALESCE(o.wx_orders, 0) AS wx_orders, o.store_count, \
           s.recency_days, s.frequency, s.monetary_fen, s.r_score, s.f_score, s.m_score, s.rfm_class, s.tier, \
           s.rfm_segment, s.lifecycle, s.cluster, s.value_growth, s.city_id AS home_city_id, s.home_store_id, \
           p.p_alive, p.expected_purchases_365d, p.expected_spend_fen, p.clv_12m_fen, p.p_churn_90d, \
           p.next_order_days, p.overdue, \
           e.avg_rating, COALESCE(e.review_count, 0) AS review_count, \
           COALESCE(b.event_count, 0) AS event_count, b.session_count, \
           c.consent_wechat, c.consent_sms, c.consent_push \
         FROM customers c LEFT JOIN o ON c.customer_id = o.customer_id \
         LEFT JOIN customer_segmentation s ON c.customer_id = s.customer_id \
         LEFT JOIN e ON c.customer_id = e.customer_id LEFT JOIN b ON c.customer_id = b.customer_id \
         LEFT JOIN p ON c.customer_id = p.customer_id",
    ),
    (
        "v_customer_time",
        "SELECT customer_id, daypart, CAST(date_part('dow', order_time) AS BIGINT) AS weekday, \
           holiday IS NOT NULL AS is_holiday, COUNT(*) AS orders, \
           CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER (PARTITION BY customer_id) AS share \
         FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL \
         GROUP BY customer_id, daypart, CAST(date_part('dow', order_time) AS BIGINT), holiday IS NOT NULL",
    ),
    (
        "v_customer_products",
        "SELECT o.customer_id, p.category, p.product_id, p.name, SUM(i.qty) AS qty, SUM(i.amount_fen) AS spend_fen, \
           CAST(SUM(i.qty) AS DOUBLE) / SUM(SUM(i.qty)) OVER (PARTITION BY o.customer_id) AS share \
         FROM order_items i JOIN orders o ON i.order_id = o.order_id JOIN products p ON i.product_id = p.product_id \
         WHERE o.status = 'paid' AND o.customer_id IS NOT NULL GROUP BY o.customer_id, p.category, p.product_id, p.name",
    ),
    (
        "v_customer_channel",
        "SELECT customer_id, channel, COUNT(*) AS orders, SUM(total_fen) AS spend_fen, \
           CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER (PARTITION BY customer_id) AS share \
         FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL GROUP BY customer_id, channel",
    ),
    (
        "v_customer_geo",
        "WITH v AS (SELECT customer_id, store_id, COUNT(*) AS n FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL GROUP BY customer_id, store_id), \
         h AS (SELECT customer_id, store_id FROM (SELECT customer_id, store_id, \
               ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY n DESC, store_id) AS rn FROM v) x WHERE rn = 1) \
         SELECT h.customer_id, h.store_id AS home_store_id, hs.city AS home_city, hs.tier AS home_city_tier, \
           COUNT(DISTINCT v.store_id) AS stores_visited, COUNT(DISTINCT s.city_id) AS cities_visited, \
           SUM(v.n * 6371.0 * 2 * asin(sqrt(power(sin(radians(s.lat - hs.lat) / 2), 2) + \
             cos(radians(hs.lat)) * cos(radians(s.lat)) * power(sin(radians(s.lon - hs.lon) / 2), 2)))) / SUM(v.n) AS avg_km_from_home \
         FROM h JOIN stores hs ON h.store_id = hs.store_id JOIN v ON v.customer_id = h.customer_id \
         JOIN stores s ON v.store_id = s.store_id GROUP BY h.customer_id, h.store_id, hs.city, hs.tier",
    ),
    (
        "v_segment_daypart",
        "SELECT s.tier, s.rfm_class, o.daypart, COUNT(*) AS orders, \
           CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER (PARTITION BY s.tier, s.rfm_class) AS share \
         FROM orders o JOIN customer_segmentation s ON o.customer_id = s.customer_id WHERE o.status = 'paid' \
         GROUP BY s.tier, s.rfm_class, o.daypart",
    ),
    (
        "v_segment_category",
        "SELECT s.tier, s.rfm_class, p.category, SUM(i.qty) AS qty, \
           CAST(SUM(i.qty) AS DOUBLE) / SUM(SUM(i.qty)) OVER (PARTITION BY s.tier, s.rfm_class) AS share \
         FROM order_items i JOIN orders o ON i.order_id = o.order_id JOIN products p ON i.product_id = p.product_id \
         JOIN customer_segmentation s ON o.customer_id = s.customer_id WHERE o.status = 'paid' \
         GROUP BY s.tier, s.rfm_class, p.category",
    ),
    (
        "v_holiday_effect",
        "WITH d AS (SELECT CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT) AS day, MAX(holiday) AS holiday, \
                    COUNT(*) AS orders FROM orders WHERE status = 'paid' \
                    GROUP BY CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT)), \
         w AS (SELECT day, holiday, orders, \
                 SUM(CASE WHEN holiday IS NULL THEN orders ELSE 0 END) OVER (ORDER BY day RANGE BETWEEN 14 PRECEDING AND 14 FOLLOWING) AS base_orders, \
                 SUM(CASE WHEN holiday IS NULL THEN 1 ELSE 0 END) OVER (ORDER BY day RANGE BETWEEN 14 PRECEDING AND 14 FOLLOWING) AS base_days \
               FROM d) \
         SELECT COALESCE(holiday, '(none)') AS holiday, COUNT(*) AS days, AVG(orders) AS orders_per_day, \
           AVG(CAST(orders AS DOUBLE) * base_days / base_orders) AS lift_vs_days_around \
         FROM w GROUP BY COALESCE(holiday, '(none)') ORDER BY lift_vs_days_around DESC",
    ),
    (
        // Each customer's holiday effect: repeat orders per holiday day against repeat orders per
        // other day after their first order (the first order starts the relationship and says
        // nothing about their rhythm), shrunk toward the chain's ratio with a prior weight of 3
        // expected holiday orders, since most customers have few holiday orders.
        "v_customer_holiday_base",
        "WITH od AS (SELECT customer_id, CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT) AS day, \
                     MAX(holiday) IS NOT NULL AS is_hol, COUNT(*) AS n \
                     FROM orders WHERE status = 'paid' AND customer_id IS NOT NULL \
                     GROUP BY customer_id, CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT)), \
         cal AS (SELECT day, is_hol, SUM(CASE WHEN is_hol THEN 1 ELSE 0 END) OVER (ORDER BY day DESC) AS hol_from, \
                   ROW_NUMBER() OVER (ORDER BY day DESC) AS days_from \
                 FROM (SELECT CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT) AS day, \
                         MAX(holiday) IS NOT NULL AS is_hol FROM orders \
                       GROUP BY CAST(FLOOR((to_unixtime(order_time) + 28800) / 86400) AS BIGINT)) x), \
         f AS (SELECT customer_id, MIN(day) AS first_day FROM od GROUP BY customer_id), \
         c AS (SELECT f.customer_id, f.first_day, \
                 SUM(CASE WHEN od.day > f.first_day AND od.is_hol THEN od.n ELSE 0 END) AS holiday_orders, \
                 SUM(CASE WHEN od.day > f.first_day AND NOT od.is_hol THEN od.n ELSE 0 END) AS other_orders \
               FROM f JOIN od ON f.customer_id = od.customer_id GROUP BY f.customer_id, f.first_day), \
         e AS (SELECT c.customer_id, c.holiday_orders, c.other_orders, \
                 cal.hol_from - CASE WHEN cal.is_hol THEN 1 ELSE 0 END AS holiday_days, \
                 cal.days_from - 1 - (cal.hol_from - CASE WHEN cal.is_hol THEN 1 ELSE 0 END) AS other_days \
               FROM c JOIN cal ON c.first_day = cal.day), \
         x AS (SELECT customer_id, holiday_orders, other_orders, holiday_days, other_days, \
                 CAST(other_orders AS DOUBLE) / GREATEST(other_days, 1) * holiday_days AS expected FROM e) \
         SELECT customer_id, holiday_orders, other_orders, holiday_days, other_days, expected FROM x",
    ),
    (
        // The chain's ratio (`pool`) sums the per-customer counts over every customer; a build
        // a slice of customers at a time sums it slice by slice (`core::serving`) and applies
        // the last SELECT's formula with it.
        "v_customer_holiday",
        "WITH x AS (SELECT * FROM v_customer_holiday_base), \
         pool AS (SELECT (CAST(SUM(holiday_orders) AS DOUBLE) / SUM(holiday_days)) / \
                         (CAST(SUM(other_orders) AS DOUBLE) / SUM(other_days)) AS lift FROM x) \
         SELECT x.customer_id, x.holiday_orders, x.holiday_days, x.other_orders, x.other_days, \
           CASE WHEN x.expected > 0 THEN x.holiday_orders / x.expected END AS holiday_lift_raw, \
           (x.holiday_orders + 3.0 * pool.lift) / (x.expected + 3.0) AS holiday_lift \
         FROM x CROSS JOIN pool",
    ),
    (
        "v_segment_holiday",
        "WITH d AS (SELECT s.tier, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT) AS day, \
                    MAX(o.holiday) AS holiday, COUNT(*) AS orders \
                    FROM orders o JOIN customer_segmentation s ON o.customer_id = s.customer_id WHERE o.status = 'paid' \
                    GROUP BY s.tier, CAST(FLOOR((to_unixtime(o.order_time) + 28800) / 86400) AS BIGINT)), \
         w AS (SELECT tier, day, holiday, orders, \
                 SUM(CASE WHEN holiday IS NULL THEN orders ELSE 0 END) OVER (PARTITION BY tier ORDER BY day RANGE BETWEEN 14 PRECEDING AND 14 FOLLOWING) AS base_orders, \
                 SUM(CASE WHEN holiday IS NULL THEN 1 ELSE 0 END) OVER (PARTITION BY tier ORDER BY day RANGE BETWEEN 14 PRECEDING AND 14 FOLLOWING) AS base_days \
               FROM d) \
         SELECT tier, COUNT(*) AS holiday_days, AVG(CAST(orders AS DOUBLE) * base_days / base_orders) AS holiday_lift \
         FROM w WHERE holiday IS NOT NULL AND base_orders > 0 GROUP BY tier ORDER BY tier",
    ),
];
