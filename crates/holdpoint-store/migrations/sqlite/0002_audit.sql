-- The audit log (issue 6), SQLite dialect. Keep in step with migrations/postgres/0002_audit.sql.
--
-- One hash chain over every event: `hash` = SHA-256 over `prev_hash` and the event's columns
-- (see `holdpoint_store::audit::event_hash`), `prev_hash` = the hash of the event before (32 zero
-- bytes for the first). `seq` is assigned under the lock of the `audit_chain` row, which also
-- keeps the chain head, so several writers (replicas) append to one chain.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,
    audit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    username TEXT,
    session_id TEXT NOT NULL,
    event TEXT NOT NULL,
    request_body BLOB,
    response_body BLOB,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_session ON audit_events (session_id, seq);
CREATE INDEX audit_events_user ON audit_events (username, at);
CREATE INDEX audit_events_audit_id ON audit_events (audit_id);

-- The chain head (one row) and the lock every append takes.
CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_chain (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Signed checkpoints: Ed25519 over (seq, hash of event seq, at).
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);

-- The open time-gap session of each caller without a session header.
CREATE TABLE audit_gap_sessions (
    caller TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    last_at INTEGER NOT NULL
);

-- How far each sink (issue 6: JSON-lines file, webhook) has delivered: sinks read the events from
-- here, so a sink that fails loses nothing; it resumes after the last sequence number delivered.
CREATE TABLE audit_sink_cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
