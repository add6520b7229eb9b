-- An ETL run's identity changes are staged here and reach identity_nodes and identity_journal
-- only after the warehouse commit that carries them (its watermark `identity.run` names the
-- run) is published. A crash in between cannot leave the graph and the warehouse disagreeing:
-- whoever next opens the pair applies a staged run the warehouse committed and the ETL, under
-- its writer lock, discards one it did not.
CREATE TABLE identity_staged (run_id BIGINT NOT NULL, source_key VARCHAR(32) NOT NULL, action VARCHAR(16) NOT NULL, from_customer BIGINT, to_customer BIGINT NOT NULL, rule VARCHAR(64), at VARCHAR(40) NOT NULL, PRIMARY KEY (run_id, source_key));
