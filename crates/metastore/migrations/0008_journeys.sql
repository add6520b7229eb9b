-- Triggered journeys (welcome, miss you, big spender, recovery): each one's settings, and every
-- trigger it planned, keyed by what triggered it so a trigger seen live and again by the next
-- refresh is stored once.
CREATE TABLE journeys (kind VARCHAR(16) PRIMARY KEY, spec TEXT NOT NULL, updated_by VARCHAR(100), updated_at VARCHAR(40));
CREATE TABLE journey_sends (trigger_key VARCHAR(160) PRIMARY KEY, kind VARCHAR(16) NOT NULL, customer_id BIGINT NOT NULL, home_store_id BIGINT, arm VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, coupon_code VARCHAR(32), discount_fen BIGINT, sku VARCHAR(16), send_at VARCHAR(19) NOT NULL, source VARCHAR(16) NOT NULL, reason TEXT, fired_at VARCHAR(40) NOT NULL);
CREATE INDEX journey_sends_customer ON journey_sends (customer_id, kind, send_at);
CREATE INDEX journey_sends_send_at ON journey_sends (send_at)
