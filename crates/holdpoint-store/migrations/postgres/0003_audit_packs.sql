-- The audit log packed (issue 6), PostgreSQL dialect. Keep in step with
-- migrations/sqlite/0003_audit_packs.sql.
--
-- One row per appended batch instead of one per event: `payload` holds the batch's events (each
-- with its own seq, prev_hash and hash: the chain is unchanged), compressed together (format:
-- `holdpoint_store::pack`). The other columns only locate packs; readers take every event's
-- sequence number and contents from the payload.
CREATE TABLE audit_packs (
    first_seq BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    min_at BIGINT NOT NULL,
    max_at BIGINT NOT NULL,
    events BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX audit_packs_max_at ON audit_packs (max_at);

-- Which packs hold a session's (`s` || session id) or a caller's (`u` || username) events.
CREATE TABLE audit_pack_keys (
    key TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    PRIMARY KEY (key, first_seq)
);

-- Events written one row each before this migration are packed by `Store::open`
-- (`repack_legacy_audit`), which empties this table; its indexes are no longer needed.
DROP INDEX audit_events_at;
DROP INDEX audit_events_session;
DROP INDEX audit_events_user;
DROP INDEX audit_events_audit_id;
