-- Saved audiences (标签/人群): the current definition of each, every version it has had, and
-- its size at each warehouse snapshot. Membership itself is derived (a bitmap per snapshot in
-- the serving index, adjusted by live orders), so nothing here grows with the customers.
CREATE TABLE audiences (audience_id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, status VARCHAR(16) NOT NULL, version BIGINT NOT NULL, spec TEXT NOT NULL, created_by VARCHAR(100), created_at VARCHAR(40), updated_at VARCHAR(40));
CREATE TABLE audience_versions (audience_id BIGINT NOT NULL, version BIGINT NOT NULL, spec TEXT NOT NULL, changed_by VARCHAR(100), changed_at VARCHAR(40), PRIMARY KEY (audience_id, version));
CREATE TABLE audience_sizes (audience_id BIGINT NOT NULL, version BIGINT NOT NULL, wh_version BIGINT NOT NULL, as_of_day BIGINT, size BIGINT NOT NULL, measured_at VARCHAR(40), PRIMARY KEY (audience_id, version, wh_version));
INSERT INTO id_counters (name, value) VALUES ('audiences', 0)
