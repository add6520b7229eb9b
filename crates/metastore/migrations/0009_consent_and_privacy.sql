-- Marketing consent per source row, as the source recorded it: 1 granted, 0 refused, NULL never
-- asked; `consent_at` is when the person last said so (the latest statement wins across a
-- customer's rows).
ALTER TABLE identity_nodes ADD COLUMN consent_wechat BIGINT;
ALTER TABLE identity_nodes ADD COLUMN consent_sms BIGINT;
ALTER TABLE identity_nodes ADD COLUMN consent_push BIGINT;
ALTER TABLE identity_nodes ADD COLUMN consent_at VARCHAR(19);
-- Personal-data requests (PIPL articles 45 and 47): an export or an erasure of one customer, who
-- asked for it, and when it was done. An erasure is pending until the warehouse and its caches
-- are rewritten; the metastore's own rows go at once.
CREATE TABLE privacy_requests (request_id BIGINT PRIMARY KEY, kind VARCHAR(16) NOT NULL, customer_id BIGINT NOT NULL, status VARCHAR(16) NOT NULL, requested_by VARCHAR(100), requested_at VARCHAR(40) NOT NULL, reason VARCHAR(200), completed_at VARCHAR(40), detail TEXT);
-- The source ids of erased customers: the ETL never loads them again (their orders stay as
-- anonymous sales). Internal ids only, nothing that names the person.
CREATE TABLE erased_keys (source_key VARCHAR(80) PRIMARY KEY, request_id BIGINT NOT NULL, at VARCHAR(40) NOT NULL);
INSERT INTO id_counters (name, value) VALUES ('privacy_requests', 0)
