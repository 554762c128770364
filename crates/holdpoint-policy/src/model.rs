//! The policy file's schema, as written by operators (YAML, camelCase keys like Kubernetes).
//!
//! Every struct rejects unknown keys, so a typo is an error with a line number, never a rule
//! that silently matches more than intended. These types only describe the file;
//! [`crate::Policy::compile`] validates them and builds the matcher. The commented reference is
//! `examples/policy.yaml`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::decision::{ApprovalMode, Reviewers};

/// The whole policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Ordered rules: the first one that matches decides.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// What happens when no rule matches.
    pub default: ActionSpec,
    /// How a freeze in hold mode holds requests.
    #[serde(default)]
    pub freeze: Option<FreezeSpec>,
    /// Who sees which kinds unmasked (everything is masked for everyone by default).
    #[serde(default)]
    pub reveal: Vec<RevealSpec>,
}

/// A reveal rule: objects of `kinds` reach `subjects` unmasked. Meant for named humans; every
/// reveal is recorded. All rules that match a caller apply together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevealSpec {
    /// Unique among the reveal rules; reported with every reveal.
    pub name: Spanned<String>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// Who: `users` and/or `groups` (names or globs, never `*` alone), optionally narrowed by
    /// `authenticators`.
    pub subjects: SubjectsSpec,
    /// Object kinds served unmasked, exactly as in the object's `kind` (`Secret`).
    pub kinds: Vec<String>,
}

/// One rule: a name, what it matches, what it does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name, reported in decisions, audit and `policy explain`.
    pub name: Spanned<String>,
    /// Free text for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// What the rule matches; every key given must match (AND); a key left out matches anything.
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    /// `allow`, `deny` or `approve`.
    pub action: Spanned<ActionKind>,
    /// For `deny`: the message the caller sees.
    #[serde(default)]
    pub message: Option<String>,
    /// For `approve`: who approves and how.
    #[serde(default)]
    pub approval: Option<ApprovalSpec>,
}

/// The default action (same keys as a rule's action).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// `allow`, `deny` or `approve`.
    pub action: Spanned<ActionKind>,
    /// For `deny`: the message the caller sees.
    #[serde(default)]
    pub message: Option<String>,
    /// For `approve`: who approves and how.
    #[serde(default)]
    pub approval: Option<ApprovalSpec>,
}

/// The three actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Forward the request.
    Allow,
    /// Refuse it with `message`.
    Deny,
    /// Hold it until `approval.reviewers` approve.
    Approve,
}

/// An `approve` action's parameters as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Users and groups who may approve (at least one).
    pub reviewers: Reviewers,
    /// Distinct reviewers needed (default 1).
    #[serde(default)]
    pub quorum: Option<u32>,
    /// Lifetime of the pending approval (default `1h`).
    #[serde(default)]
    pub ttl: Option<Spanned<String>>,
    /// How long the caller's connection is held (default `5s`).
    #[serde(default)]
    pub hold: Option<Spanned<String>>,
    /// `execute` (default) or `grant`.
    #[serde(default)]
    pub mode: Option<ApprovalMode>,
}

/// What a rule matches. Lists match if any entry matches; `*` matches anything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchSpec {
    /// Who is calling.
    #[serde(default)]
    pub subjects: Option<SubjectsSpec>,
    /// Kubernetes verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, ...; for non-resource URLs the lowercase HTTP method).
    #[serde(default)]
    pub verbs: Option<Vec<String>>,
    /// API groups (`""` is the core group).
    #[serde(default)]
    pub api_groups: Option<Vec<String>>,
    /// Resources with optional subresource, RBAC style: `pods` (not its subresources),
    /// `pods/exec`, `pods/*`, `*/scale`, `*` (everything, subresources included). Globs allowed.
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    /// Namespace names or globs (`prod-*`); `""` matches requests without a namespace
    /// (cluster-scoped objects, lists across all namespaces). A list/watch/deletecollection
    /// without a namespace may touch every namespace: it matches any `namespaces` of a
    /// deny/approve rule (fail closed).
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// Object names or globs. For `create`, the name in the body's `metadata.name`. A
    /// collection request, or a create whose name is unknown (no decodable body, `generateName`),
    /// matches any `names` of a deny/approve rule and an allow rule's only if it lists `""`.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// Non-resource paths or globs (`/logs`, `/debug/*`).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Option<Vec<String>>,
    /// `true`: only real dry runs (`dryRun=All`, exactly as the apiserver reads it);
    /// `false`: only requests that are not dry runs.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// `true`: only mutating requests; `false`: only reads (see `Request::mutating`).
    #[serde(default)]
    pub mutating: Option<bool>,
    /// Change windows.
    #[serde(default)]
    pub when: Option<WhenSpec>,
    /// CEL expressions over `object` and `oldObject`; all must be true.
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
}

/// Subjects: the caller must be one of `users` or in one of `groups` (when either is given),
/// and must have come through one of `authenticators` (when given).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectsSpec {
    /// Usernames or globs (`system:serviceaccount:agents:*`).
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names or globs.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Authenticator names or globs (`static-token`, `oidc:*`).
    #[serde(default)]
    pub authenticators: Vec<String>,
}

/// Time windows: `inside` matches while now is inside any of its windows; `outside` matches
/// while now is inside none of its windows. Both given: both must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// Windows the rule applies inside.
    #[serde(default)]
    pub inside: Vec<WindowSpec>,
    /// Windows the rule applies outside of.
    #[serde(default)]
    pub outside: Vec<WindowSpec>,
}

/// A window opens at every time the cron expression names and stays open for `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowSpec {
    /// Five-field cron expression (minute hour day-of-month month day-of-week), e.g.
    /// `0 10 * * TUE`.
    pub cron: Spanned<String>,
    /// How long the window stays open, e.g. `2h`.
    pub duration: Spanned<String>,
    /// IANA time zone the cron expression is read in (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
}

/// How a freeze in `hold` mode holds the requests the rules would allow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// The approval every frozen mutation then needs. Without it a freeze in `hold` mode denies
    /// what the rules allow (fail closed).
    pub approval: ApprovalSpec,
}
