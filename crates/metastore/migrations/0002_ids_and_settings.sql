-- Ids come from the database: one counter per id space, advanced inside the transaction that
-- inserts the row (dense, and safe with several processes on one metastore). Seeded from what
-- the tables already hold.
CREATE TABLE id_counters (name VARCHAR(64) PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO id_counters (name, value) SELECT 'etl_runs', COALESCE(MAX(run_id), 0) FROM etl_runs;
INSERT INTO id_counters (name, value) SELECT 'identity_journal', COALESCE(MAX(seq), 0) FROM identity_journal;
INSERT INTO id_counters (name, value) SELECT 'stream_log', COALESCE(MAX(seq), 0) FROM stream_log;
INSERT INTO id_counters (name, value) SELECT 'campaigns', COALESCE(MAX(campaign_id), 0) FROM campaigns;
INSERT INTO id_counters (name, value) SELECT 'experiments', COALESCE(MAX(experiment_id), 0) FROM experiments;
INSERT INTO id_counters (name, value) SELECT 'audit_log', COALESCE(MAX(seq), 0) FROM audit_log;
-- Settings owned by the metastore. The hashing secret is generated on first use; a metastore
-- whose identity graph was hashed with the old public default keeps it (marked legacy), since
-- the hashes cannot be recomputed without the raw values.
CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO settings (name, value) SELECT 'hash_secret', 'c360-default-salt' FROM identity_nodes LIMIT 1;
INSERT INTO settings (name, value) SELECT 'hash_secret_legacy', '1' FROM identity_nodes LIMIT 1
