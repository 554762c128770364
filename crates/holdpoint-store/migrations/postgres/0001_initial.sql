-- Holdpoint store, PostgreSQL dialect. Times are microseconds since the Unix epoch (UTC); JSON
-- columns are JSONB. Keep in step with migrations/sqlite/0001_initial.sql.

-- Every change to tokens and settings, written in the same transaction as the change itself.
CREATE TABLE store_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT,
    detail JSONB NOT NULL
);

-- Static bearer tokens, only as SHA-256 hashes.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    user_groups JSONB NOT NULL,
    uid TEXT,
    description TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_by TEXT NOT NULL
);
CREATE INDEX tokens_username ON tokens (username);

-- Settings shared by every replica (the freeze lives here).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value JSONB NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'executing', 'executed', 'failed',
                                         'denied', 'expired', 'cancelled', 'unknown')),
    mode TEXT NOT NULL CHECK (mode IN ('execute', 'grant')),
    binding_key TEXT NOT NULL,
    requester_username TEXT NOT NULL,
    requester JSONB NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    content_type TEXT,
    headers JSONB NOT NULL,
    body BYTEA NOT NULL,
    body_sha256 TEXT NOT NULL,
    summary JSONB NOT NULL,
    namespace TEXT,
    kubectl_command TEXT,
    kubectl_session TEXT,
    rule TEXT NOT NULL,
    reviewers JSONB NOT NULL,
    quorum BIGINT NOT NULL CHECK (quorum >= 1),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    executor TEXT,
    result_status BIGINT,
    result_content_type TEXT,
    result_body BYTEA,
    result_truncated BOOLEAN
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
    at BIGINT NOT NULL,
    PRIMARY KEY (approval_id, reviewer)
);

CREATE TABLE approval_events (
    approval_id TEXT NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (approval_id, seq)
);
