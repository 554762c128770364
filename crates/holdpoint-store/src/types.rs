//! The values the store keeps: tokens, settings, approvals with their votes and events.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest upstream response body kept with an executed approval; longer bodies are cut and
/// marked `truncated`.
pub const MAX_RESULT_BODY: usize = 64 * 1024;

/// Lowercase hex of a byte string.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where an approval is in its lifecycle.
///
/// ```text
/// pending ──vote(deny)──▶ denied          pending ──cancel──▶ cancelled
///    │ quorum of approvals                pending/approved(grant) ──ttl──▶ expired
///    ▼
/// approved ──begin_execute──▶ executing ──finish_execute──▶ executed | failed
///    │ (grant)                    └──recover_after_crash──▶ unknown (never resent)
///    └──consume_grant──▶ executed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for reviewers.
    Pending,
    /// Quorum reached; not yet sent (execute) or not yet used (grant).
    Approved,
    /// The gateway is sending the request upstream right now.
    Executing,
    /// Sent; the upstream answered (any status: see the result).
    Executed,
    /// Sending failed (no answer from the upstream).
    Failed,
    /// A reviewer denied it.
    Denied,
    /// Its time to live passed before it was decided (or, for grant, used).
    Expired,
    /// The requester withdrew it.
    Cancelled,
    /// The gateway stopped while sending it: the outcome is unknown and it is never resent.
    Unknown,
}

impl ApprovalState {
    /// Every state.
    pub const ALL: [ApprovalState; 9] = [
        Self::Pending,
        Self::Approved,
        Self::Executing,
        Self::Executed,
        Self::Failed,
        Self::Denied,
        Self::Expired,
        Self::Cancelled,
        Self::Unknown,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Executing => "executing",
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Pending, approved or executing: an identical request attaches to such an approval.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Approved | Self::Executing)
    }

    /// No further transition will happen.
    pub fn is_final(self) -> bool {
        !self.is_live()
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What approval does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The gateway sends the stored request itself once approved.
    #[default]
    Execute,
    /// The same caller may send the identical request once within the time to live.
    Grant,
}

impl ApprovalMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Grant => "grant",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "execute" => Some(Self::Execute),
            "grant" => Some(Self::Grant),
            _ => None,
        }
    }
}

impl fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked: the authenticated identity plus where the request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// Username.
    pub username: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Stable id, if the authenticator gave one.
    #[serde(default)]
    pub uid: Option<String>,
    /// Extra attributes.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
    /// The authenticator that produced the identity.
    pub authenticator: String,
    /// The peer address (`ip:port`).
    #[serde(default)]
    pub source: Option<String>,
}

/// The exact request an approval binds: what is stored is what is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestBinding {
    /// HTTP method.
    pub method: String,
    /// Raw path, as received (already checked by the classifier).
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The headers that are forwarded with it (name, value), in order. Never credentials.
    pub headers: Vec<(String, String)>,
    /// The body bytes that will be sent.
    pub body: Vec<u8>,
    /// Lowercase hex SHA-256 of `body` (the store recomputes and checks it).
    pub body_sha256: String,
}

impl RequestBinding {
    /// A binding; computes `body_sha256`.
    pub fn new(
        method: impl Into<String>,
        path: impl Into<String>,
        query: impl Into<String>,
        content_type: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        let body_sha256 = sha256_hex(&body);
        Self {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            content_type,
            headers,
            body,
            body_sha256,
        }
    }

    /// The binding key of this request sent by `username`: see [`binding_key`].
    pub fn binding_key(&self, username: &str) -> String {
        binding_key(
            username,
            &self.method,
            &self.path,
            &self.query,
            self.content_type.as_deref(),
            &self.body_sha256,
        )
    }
}

/// Bodies may hold secrets (a `Secret` being created): `Debug` shows only their size and hash.
impl fmt::Debug for RequestBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBinding")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("content_type", &self.content_type)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .field("body_sha256", &self.body_sha256)
            .finish()
    }
}

/// SHA-256 (lowercase hex) over the requester's username, method, path, query, content type and
/// body SHA-256, each length-prefixed so no two different tuples collide. Two requests with the
/// same key are "the identical request of the same caller".
pub fn binding_key(
    username: &str,
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&str>,
    body_sha256: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"holdpoint-binding-v1\0");
    for part in [
        Some(username),
        Some(method),
        Some(path),
        Some(query),
        content_type,
        Some(body_sha256),
    ] {
        match part {
            Some(p) => {
                h.update([1u8]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    hex(&h.finalize())
}

/// What the request is, as the classifier saw it (shown to reviewers, used for filters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestSummary {
    /// Kubernetes verb (`create`, `patch`, `delete`, ...).
    pub verb: String,
    /// API group (empty for the core group).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Resource (plural).
    #[serde(default)]
    pub resource: String,
    /// Subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Who may decide, from the matching policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Reviewers {
    /// Usernames.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups: any member may review.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Reviewers {
    /// Whether this voter is one of the reviewers.
    pub fn includes(&self, voter: &Voter) -> bool {
        self.users.contains(&voter.username) || self.groups.iter().any(|g| voter.groups.contains(g))
    }
    /// No reviewer at all (such an approval could never be decided: the store refuses it).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// A request to hold, as the hold phase builds it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// Who asked.
    pub requester: Requester,
    /// The exact request.
    pub request: RequestBinding,
    /// Its classification.
    pub summary: RequestSummary,
    /// `Kubectl-Command` header, if sent.
    pub kubectl_command: Option<String>,
    /// `Kubectl-Session` header, if sent.
    pub kubectl_session: Option<String>,
    /// The policy rule that asked for approval.
    pub rule: String,
    /// Who may decide.
    pub reviewers: Reviewers,
    /// Distinct approving reviewers needed (at least 1).
    pub quorum: u32,
    /// What approval does.
    pub mode: ApprovalMode,
    /// Now, from the injected clock.
    pub created_at: Timestamp,
    /// When a pending (or unused grant) approval expires.
    pub expires_at: Timestamp,
}

/// The upstream's answer to an executed approval, bounded by [`MAX_RESULT_BODY`].
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamResult {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body, at most [`MAX_RESULT_BODY`] bytes.
    pub body: Vec<u8>,
    /// The body was longer and was cut.
    pub truncated: bool,
}

impl UpstreamResult {
    /// A result; cuts the body to [`MAX_RESULT_BODY`].
    pub fn new(status: u16, content_type: Option<String>, mut body: Vec<u8>) -> Self {
        let truncated = body.len() > MAX_RESULT_BODY;
        body.truncate(MAX_RESULT_BODY);
        Self {
            status,
            content_type,
            body,
            truncated,
        }
    }
}

impl fmt::Debug for UpstreamResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamResult")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// A stored approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// `ap-` and 10 lowercase base32 characters.
    pub id: String,
    /// Current state.
    pub state: ApprovalState,
    /// What approval does.
    pub mode: ApprovalMode,
    /// See [`binding_key`].
    pub binding_key: String,
    /// Who asked.
    pub requester: Requester,
    /// The exact request.
    pub request: RequestBinding,
    /// Its classification.
    pub summary: RequestSummary,
    /// `Kubectl-Command` header.
    pub kubectl_command: Option<String>,
    /// `Kubectl-Session` header.
    pub kubectl_session: Option<String>,
    /// The policy rule.
    pub rule: String,
    /// Who may decide.
    pub reviewers: Reviewers,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Created.
    pub created_at: Timestamp,
    /// Expires (pending, or an unused grant).
    pub expires_at: Timestamp,
    /// When it was approved, denied, cancelled or expired.
    pub decided_at: Option<Timestamp>,
    /// Which gateway instance began executing it.
    pub executor: Option<String>,
    /// The upstream's answer once executed.
    pub result: Option<UpstreamResult>,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Approve.
    Approve,
    /// Deny (a reason is required).
    Deny,
}

impl Decision {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// The authenticated reviewer casting a vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Username.
    pub username: String,
    /// Groups (matched against [`Reviewers::groups`]).
    pub groups: Vec<String>,
}

/// A stored vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The approval.
    pub approval_id: String,
    /// Reviewer username.
    pub reviewer: String,
    /// Approve or deny.
    pub decision: Decision,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// What a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteResult {
    /// The approval after the vote (state `approved` when this vote reached the quorum,
    /// `denied` after a denial, else still `pending`).
    pub approval: Approval,
    /// False when this reviewer had already voted: the earlier vote stands, nothing changed.
    pub counted: bool,
    /// Distinct approving reviewers so far.
    pub approvals: u32,
}

/// A state transition, written before it takes effect (in the same transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalEvent {
    /// The approval.
    pub approval_id: String,
    /// 1, 2, ... per approval.
    pub seq: i64,
    /// The state before (`None` for creation).
    pub from_state: Option<ApprovalState>,
    /// The state after.
    pub to_state: ApprovalState,
    /// Who caused it (a username, or `holdpoint` for expiry and crash recovery).
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// The upstream answered (whatever the status).
    Executed,
    /// No answer (connection failed, timeout).
    Failed,
}

/// Filters for [`crate::Store::list_approvals`]; newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// Only this state.
    pub state: Option<ApprovalState>,
    /// Only this requester username.
    pub requester: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only approvals of this request (see [`binding_key`]).
    pub binding_key: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: u32,
}

impl Default for ApprovalFilter {
    fn default() -> Self {
        Self {
            state: None,
            requester: None,
            namespace: None,
            binding_key: None,
            limit: 100,
        }
    }
}

/// A static token to store (its hash only).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// The identity it authenticates as.
    pub username: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Stable id.
    pub uid: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// Who created it.
    pub created_by: String,
}

/// A stored static token (hash and metadata; the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// `tk-` and 10 lowercase base32 characters.
    pub id: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// Username.
    pub username: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Stable id.
    pub uid: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// Who created it.
    pub created_by: String,
}

impl StoredToken {
    /// Neither expired nor revoked at `now`.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Which tokens to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// One token by id.
    Id(String),
    /// Every token of a user.
    User(String),
}

/// A stored setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Key.
    pub key: String,
    /// Value.
    pub value: serde_json::Value,
    /// Who set it.
    pub updated_by: String,
    /// When.
    pub updated_at: Timestamp,
}

/// What a freeze does to mutating requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FreezeMode {
    /// Refused with 403.
    #[default]
    Deny,
    /// Held for approval.
    Hold,
}

/// The freeze, stored as the `freeze` setting so it survives restarts and reaches every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Freeze {
    /// On or off.
    pub on: bool,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Deny or hold.
    #[serde(default)]
    pub mode: FreezeMode,
    /// Who switched it (empty when never set).
    #[serde(default)]
    pub by: String,
    /// When (absent when never set).
    #[serde(default)]
    pub at: Option<Timestamp>,
}

/// A token or setting change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreEvent {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// `token.create`, `token.revoke`, `setting.set`.
    pub kind: String,
    /// Token id or setting key.
    pub subject: String,
    /// Why.
    pub reason: Option<String>,
    /// What (the new setting value; a new token's user, groups and expiry).
    pub detail: serde_json::Value,
}
