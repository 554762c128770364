//! What the policy answers: the verdict for one request, and the parameters of an `approve`
//! action that the hold phase and the approval store need.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Who may approve a held request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    /// Usernames that may approve.
    #[serde(default)]
    pub users: Vec<String>,
    /// Members of these groups may approve.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Reviewers {
    /// Whether a caller with this username and these groups is one of the reviewers.
    pub fn includes(&self, username: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == username)
            || self.groups.iter().any(|g| groups.iter().any(|cg| cg == g))
    }

    /// `true` when nobody could ever approve.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// What approval does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The gateway sends the held request itself as soon as it is approved (the default).
    #[default]
    Execute,
    /// The approval lets the same caller send the identical request once within its `ttl`.
    Grant,
}

/// The parameters of an `approve` action: everything the hold phase and the store need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who may approve.
    pub reviewers: Reviewers,
    /// How many distinct reviewers must approve (at least 1).
    pub quorum: u32,
    /// How long the pending approval lives before it expires.
    #[serde(serialize_with = "serialize_duration")]
    pub ttl: Duration,
    /// How long the caller's connection is held waiting for the decision before it gets the
    /// "pending" answer. See [`DEFAULT_HOLD`] for how the default was chosen.
    #[serde(serialize_with = "serialize_duration")]
    pub hold: Duration,
    /// What approval does.
    pub mode: ApprovalMode,
}

/// The default `quorum`.
pub const DEFAULT_QUORUM: u32 = 1;

/// The default `ttl` of a pending approval: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The default `hold`: 5 seconds.
///
/// client-go retries a `429` with `Retry-After` by itself, up to 10 times, so a plain client-go
/// caller (kubectl, kubernetes-mcp-server) waits about `11 × hold + 10 × Retry-After` before it
/// sees the pending message. With a 5 s hold and a 1 s `Retry-After` that is about 65 s, well
/// under the 120 s an agent's tool call typically gets; with the original 25 s it would
/// be about 285 s and the agent would see a hang. Humans at kubectl can raise `hold` per rule
/// (e.g. `hold: 25s`), and `holdpoint wait ID` waits as long as needed.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(5);

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Refuse it; the message is shown to the caller.
    Deny {
        /// Shown to the caller in the 403 Status.
        message: String,
    },
    /// Hold it until reviewers approve.
    Approve(Approval),
}

/// The policy's answer: the verdict and which rule gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The name of the rule that matched, `default` for the default action, or `freeze` when
    /// the freeze decided.
    pub rule: String,
    /// What to do.
    pub verdict: Verdict,
}

/// The name reported when the default action decided.
pub const DEFAULT_RULE: &str = "default";
/// The name reported when the freeze decided.
pub const FREEZE_RULE: &str = "freeze";

/// What a freeze does to mutating requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezeMode {
    /// Every mutating request is denied (the default).
    #[default]
    Deny,
    /// Every mutating request is held for approval (with the policy's `freeze.approval`, or the
    /// matching rule's approval); requests the rules deny stay denied.
    Hold,
}

/// A freeze in force (the store keeps it; the policy only reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Freeze {
    /// Why, shown to callers.
    pub reason: String,
    /// Deny or hold.
    #[serde(default)]
    pub mode: FreezeMode,
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let signed = jiff::SignedDuration::try_from(*d).unwrap_or(jiff::SignedDuration::MAX);
    s.serialize_str(&format!("{signed:#}"))
}

/// What a caller may see unmasked: the kinds the matching reveal rules name, and those rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RevealGrant {
    /// Object kinds served unmasked (sorted, no duplicates).
    pub kinds: Vec<String>,
    /// The reveal rules that granted them, in file order.
    pub rules: Vec<String>,
}

impl RevealGrant {
    /// Whether nothing is revealed.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}
