-- Stream-log retention prunes by age: the time stamp gets an index.
CREATE INDEX stream_log_at ON stream_log (at);
-- Live rows a server could not apply when it started (out of their bounds, naming a store the
-- snapshot does not have, …) are moved here with the reason, instead of stopping the server;
-- nothing is deleted. kind: 'order'.
CREATE TABLE live_quarantine (kind VARCHAR(16) NOT NULL, row_key VARCHAR(64) NOT NULL, row_json TEXT NOT NULL, reason TEXT NOT NULL, at VARCHAR(40) NOT NULL, PRIMARY KEY (kind, row_key));
-- Identifiers are hashed with HMAC-SHA256 from now on; a metastore that already has a secret
-- (and so, perhaps, an identity graph hashed with it) keeps the salted SHA-256 it was made with.
INSERT INTO settings (name, value) SELECT 'hash_scheme', 'salted-sha256' FROM settings WHERE name = 'hash_secret';
