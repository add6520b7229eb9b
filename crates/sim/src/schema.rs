//! DDL of the two source systems as the chain runs them. Timestamps are local Asia/Shanghai wall
//! time stored as `VARCHAR(19)` `YYYY-MM-DD HH:MM:SS` (as the legacy systems do), so malformed
//! values can exist and must be caught by the ETL. Money is integer fen.

/// cyrg2025: the store POS.
pub const POS_TABLES: &[&str] = &[
    "order_items",
    "orders",
    "members",
    "products",
    "stores",
    "cities",
];
pub const POS_DDL: &str = "
CREATE TABLE cities (city_id BIGINT PRIMARY KEY, name VARCHAR(32) NOT NULL, province VARCHAR(32), tier BIGINT, lat DOUBLE PRECISION, lon DOUBLE PRECISION);
CREATE TABLE stores (store_id BIGINT PRIMARY KEY, store_code VARCHAR(16) NOT NULL, name VARCHAR(64), city_id BIGINT, store_type VARCHAR(16), lat DOUBLE PRECISION, lon DOUBLE PRECISION, open_date VARCHAR(10), status VARCHAR(16), updated_at VARCHAR(19));
CREATE TABLE products (product_id BIGINT PRIMARY KEY, sku VARCHAR(16) NOT NULL, name VARCHAR(64), category VARCHAR(16), price_fen BIGINT, launched VARCHAR(10), updated_at VARCHAR(19), cost_fen BIGINT);
CREATE TABLE members (member_id BIGINT PRIMARY KEY, card_no VARCHAR(32), phone VARCHAR(32), phone_verified BIGINT, name VARCHAR(32), gender VARCHAR(4), birthday VARCHAR(10), register_store_id BIGINT, created_at VARCHAR(19), updated_at VARCHAR(19), sms_consent BIGINT, consent_at VARCHAR(19));
CREATE TABLE orders (order_id BIGINT PRIMARY KEY, order_no VARCHAR(32), store_id BIGINT, member_id BIGINT, order_time VARCHAR(19), total_fen BIGINT, discount_fen BIGINT, pay_method VARCHAR(16), status VARCHAR(16), coupon_code VARCHAR(32), updated_at VARCHAR(19), payer_id VARCHAR(64));
CREATE TABLE order_items (item_id BIGINT PRIMARY KEY, order_id BIGINT, product_id BIGINT, qty BIGINT, unit_price_fen BIGINT, updated_at VARCHAR(19));
CREATE INDEX ix_orders_upd ON orders(updated_at);
CREATE INDEX ix_items_upd ON order_items(updated_at);
CREATE INDEX ix_members_upd ON members(updated_at)
";

/// cyrgweixin: the WeChat mini-program.
pub const WX_TABLES: &[&str] = &[
    "wx_service_tickets",
    "wx_paid_by",
    "wx_order_groups",
    "wx_shares",
    "wx_reviews",
    "wx_events",
    "wx_order_items",
    "wx_orders",
    "wx_users",
];
pub const WX_DDL: &str = "
CREATE TABLE wx_users (user_id BIGINT PRIMARY KEY, openid VARCHAR(64) NOT NULL, unionid VARCHAR(64), phone VARCHAR(32), member_card_no VARCHAR(32), nickname VARCHAR(64), created_at VARCHAR(19), updated_at VARCHAR(19), subscribe_consent BIGINT, push_consent BIGINT, consent_at VARCHAR(19));
CREATE TABLE wx_orders (order_id BIGINT PRIMARY KEY, order_no VARCHAR(32), user_id BIGINT, store_id BIGINT, order_time VARCHAR(19), total_fen BIGINT, discount_fen BIGINT, channel VARCHAR(16), status VARCHAR(16), coupon_code VARCHAR(32), updated_at VARCHAR(19));
CREATE TABLE wx_order_items (item_id BIGINT PRIMARY KEY, order_id BIGINT, product_id BIGINT, qty BIGINT, unit_price_fen BIGINT, updated_at VARCHAR(19));
CREATE TABLE wx_events (event_id BIGINT PRIMARY KEY, user_id BIGINT, session_id VARCHAR(32), event_type VARCHAR(16), page VARCHAR(32), event_time VARCHAR(19), device VARCHAR(16), lat DOUBLE PRECISION, lon DOUBLE PRECISION);
CREATE TABLE wx_reviews (review_id BIGINT PRIMARY KEY, user_id BIGINT, order_id BIGINT, store_id BIGINT, rating BIGINT, content VARCHAR(500), created_at VARCHAR(19));
CREATE TABLE wx_shares (share_id BIGINT PRIMARY KEY, user_id BIGINT, to_user_id BIGINT, page VARCHAR(32), campaign VARCHAR(32), share_time VARCHAR(19));
CREATE TABLE wx_order_groups (row_id BIGINT PRIMARY KEY, group_id VARCHAR(32), order_id BIGINT, user_id BIGINT, joined_at VARCHAR(19));
CREATE TABLE wx_paid_by (row_id BIGINT PRIMARY KEY, order_id BIGINT, user_id BIGINT, payer_user_id BIGINT, paid_at VARCHAR(19));
CREATE TABLE wx_service_tickets (ticket_id BIGINT PRIMARY KEY, user_id BIGINT, order_id BIGINT, created_at VARCHAR(19), message VARCHAR(500), status VARCHAR(16), resolved_cause VARCHAR(32), updated_at VARCHAR(19));
CREATE INDEX ix_wxo_upd ON wx_orders(updated_at);
CREATE INDEX ix_wxi_upd ON wx_order_items(updated_at);
CREATE INDEX ix_wxu_upd ON wx_users(updated_at)
";

/// Ground truth, kept apart from both systems: who every id really is, the latent parameters,
/// and what each person does after the cut-off date.
pub const TRUTH_TABLES: &[&str] = &[
    "params",
    "persons",
    "ids",
    "future_orders",
    "review_aspects",
    "store_aspects",
    "service_truth",
    "campaign_truth",
    "anon_orders",
];
pub const TRUTH_DDL: &str = "
CREATE TABLE params (name VARCHAR(32) PRIMARY KEY, value VARCHAR(64));
CREATE TABLE persons (person_id BIGINT PRIMARY KEY, lambda DOUBLE PRECISION, p_drop DOUBLE PRECISION, nu DOUBLE PRECISION, mean_spend_fen DOUBLE PRECISION, holiday_mult DOUBLE PRECISION, first_order VARCHAR(19), last_order VARCHAR(19), dropout_at VARCHAR(19), alive_at_cutoff BIGINT, n_orders BIGINT, n_future BIGINT, future_spend_fen BIGINT, home_store_id BIGINT, has_member BIGINT, has_wx BIGINT, fav_daypart VARCHAR(16), fav_sku VARCHAR(16), circle_id BIGINT, sociability DOUBLE PRECISION, browse_rate DOUBLE PRECISION, p_continue DOUBLE PRECISION);
CREATE TABLE ids (system VARCHAR(16), source_id BIGINT, person_id BIGINT, PRIMARY KEY (system, source_id));
CREATE TABLE future_orders (person_id BIGINT, order_time VARCHAR(19), total_fen BIGINT, channel VARCHAR(8));
CREATE TABLE review_aspects (review_id BIGINT, aspect VARCHAR(8), polarity BIGINT, PRIMARY KEY (review_id, aspect));
CREATE TABLE store_aspects (store_id BIGINT, aspect VARCHAR(8), quality DOUBLE PRECISION, trend_per_year DOUBLE PRECISION, PRIMARY KEY (store_id, aspect));
CREATE TABLE service_truth (ticket_id BIGINT PRIMARY KEY, cause VARCHAR(32));
CREATE TABLE anon_orders (order_id BIGINT PRIMARY KEY, person_id BIGINT);
CREATE TABLE campaign_truth (campaign_id BIGINT, person_id BIGINT, treated BIGINT, p_persuade DOUBLE PRECISION, p_annoy DOUBLE PRECISION, expected_uplift_fen DOUBLE PRECISION, realized_uplift_fen BIGINT, redeemed BIGINT, extra_order BIGINT, lost_orders BIGINT, PRIMARY KEY (campaign_id, person_id))
";

/// A DDL script's table statements and its index statements, apart: the simulator builds the
/// indexes after loading the rows (one sort each instead of a random B-tree insert per row).
pub fn tables_and_indexes(ddl: &str) -> (String, String) {
    let (mut tables, mut indexes) = (Vec::new(), Vec::new());
    for stmt in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if stmt.starts_with("CREATE INDEX") {
            indexes.push(stmt);
        } else {
            tables.push(stmt);
        }
    }
    (tables.join(";\n"), indexes.join(";\n"))
}
