-- Holdpoint store, SQLite dialect. Times are microseconds since the Unix epoch (UTC); JSON
-- columns hold TEXT. Keep in step with migrations/postgres/0001_initial.sql.

-- Every change to tokens and settings, written in the same transaction as the change itself.
CREATE TABLE store_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL
);

-- Static bearer tokens, only as SHA-256 hashes.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    user_groups TEXT NOT NULL,
    uid TEXT,
    description TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    created_by TEXT NOT NULL
);
CREATE INDEX tokens_username ON tokens (username);

-- Settings shared by every replica (the freeze lives here).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'executing', 'executed', 'failed',
                                         'denied', 'expired', 'cancelled', 'unknown')),
    mode TEXT NOT NULL CHECK (mode IN ('execute', 'grant')),
    binding_key TEXT NOT NULL,
    requester_username TEXT NOT NULL,
    requester TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    content_type TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    body_sha256 TEXT NOT NULL,
    summary TEXT NOT NULL,
    namespace TEXT,
    kubectl_command TEXT,
    kubectl_session TEXT,
    rule TEXT NOT NULL,
    reviewers TEXT NOT NULL,
    quorum INTEGER NOT NULL CHECK (quorum >= 1),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    decided_at INTEGER,
    executor TEXT,
    result_status INTEGER,
    result_content_type TEXT,
    result_body BLOB,
    result_truncated INTEGER
);
-- At most one live approval per binding: concurrent identical requests attach to one row.
CREATE UNIQUE INDEX approvals_live_binding ON approvals (binding_key)
    WHERE state IN ('pending', 'approved', 'executing');
CREATE INDEX approvals_state_expiry ON approvals (state, expires_at);
CREATE INDEX approvals_requester ON approvals (requester_username, created_at);
CREATE INDEX approvals_namespace ON approvals (namespace, created_at);
CREATE INDEX approvals_created ON approvals (created_at);

CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    reviewer TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (approval_id, reviewer)
);

CREATE TABLE approval_events (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (approval_id, seq)
);
