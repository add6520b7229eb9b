-- The schema as c360 created it before migrations existed (every table IF NOT EXISTS, so a
-- metastore written by that release passes through this step unchanged).
CREATE TABLE IF NOT EXISTS etl_runs (run_id BIGINT PRIMARY KEY, started_at VARCHAR(40), finished_at VARCHAR(40), status VARCHAR(16), manifest_version BIGINT, stats TEXT);
CREATE TABLE IF NOT EXISTS identity_nodes (source_key VARCHAR(32) PRIMARY KEY, phone_hash VARCHAR(64), phone_verified BIGINT, unionid_hash VARCHAR(64), card_no VARCHAR(32), bound_card_no VARCHAR(32), phone_masked VARCHAR(16), name_masked VARCHAR(16), gender VARCHAR(4), birth_year BIGINT, register_store_id BIGINT, created_at VARCHAR(19), customer_id BIGINT, updated_run BIGINT);
CREATE TABLE IF NOT EXISTS identity_journal (seq BIGINT PRIMARY KEY, run_id BIGINT, at VARCHAR(40), action VARCHAR(16), source_key VARCHAR(32), from_customer BIGINT, to_customer BIGINT, rule VARCHAR(64));
CREATE TABLE IF NOT EXISTS identity_blocks (source_key VARCHAR(32) PRIMARY KEY, reason VARCHAR(200), at VARCHAR(40));
CREATE TABLE IF NOT EXISTS api_keys (key_hash VARCHAR(64) PRIMARY KEY, name VARCHAR(100), role VARCHAR(16), stores TEXT, created_at VARCHAR(40), revoked BIGINT);
CREATE TABLE IF NOT EXISTS stream_log (seq BIGINT PRIMARY KEY, topic VARCHAR(64), store_id BIGINT, payload TEXT, at VARCHAR(40));
CREATE TABLE IF NOT EXISTS live_orders (order_no VARCHAR(64) PRIMARY KEY, customer_id BIGINT, store_id BIGINT, order_time VARCHAR(19), day BIGINT, total_fen BIGINT, items TEXT, received_at VARCHAR(40), received_by VARCHAR(100));
CREATE TABLE IF NOT EXISTS live_events (event_id VARCHAR(64) PRIMARY KEY, customer_id BIGINT, session_id VARCHAR(64), action_type VARCHAR(32), page VARCHAR(64), event_time VARCHAR(19), device VARCHAR(32), received_at VARCHAR(40));
CREATE TABLE IF NOT EXISTS insight_cache (cache_key VARCHAR(64) PRIMARY KEY, model VARCHAR(100), insight TEXT, created_at VARCHAR(40));
CREATE TABLE IF NOT EXISTS campaigns (campaign_id BIGINT PRIMARY KEY, name VARCHAR(200), status VARCHAR(16), spec TEXT, created_by VARCHAR(64), created_at VARCHAR(40), launched_at VARCHAR(40), audience_size BIGINT);
CREATE TABLE IF NOT EXISTS campaign_members (campaign_id BIGINT, customer_id BIGINT, arm VARCHAR(32), coupon_code VARCHAR(40), discount_fen BIGINT, sku VARCHAR(16), daypart VARCHAR(16), send_at VARCHAR(19), status VARCHAR(16), home_store_id BIGINT, pre_spend_fen BIGINT, PRIMARY KEY (campaign_id, customer_id));
CREATE TABLE IF NOT EXISTS campaign_settings (name VARCHAR(64) PRIMARY KEY, value VARCHAR(200));
CREATE TABLE IF NOT EXISTS experiments (experiment_id BIGINT PRIMARY KEY, name VARCHAR(200), design VARCHAR(16), spec TEXT, created_by VARCHAR(100), created_at VARCHAR(40));
CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, at VARCHAR(40), actor VARCHAR(100), role VARCHAR(16), action VARCHAR(64), target VARCHAR(128), outcome VARCHAR(16), detail TEXT)
