//! Holdpoint's policy engine. Pure: no I/O, no clock (the caller passes `now`), no store (the
//! caller passes the freeze state).
//!
//! * [`Policy::from_yaml`] parses a policy file ([`model`], unknown keys rejected, line numbers
//!   in errors), validates it and compiles it into a matcher;
//! * [`Policy::evaluate`] takes a [`Request`] (subject, `kube_request::RequestInfo`, dry run,
//!   decoded `object`/`oldObject`, mutating, now, freeze) and returns an [`Evaluation`]: the
//!   first matching rule's [`Verdict`] (allow, deny with a message, approve with an
//!   [`Approval`]), or the default action; a freeze overrides it for mutating requests;
//! * [`Policy::explain`] says why: every rule tried and the key that did not match;
//! * [`Policy::reveal_for`] says which object kinds a caller sees unmasked (`reveal` rules;
//!   masking is on for everyone by default);
//! * [`Policy::default_for_agents`] is the embedded default policy for AI agents
//!   (`default-policy.yaml`).
//!
//! Modules: `model` (the file schema), `policy` (validation, matcher, evaluation, explain),
//! `request` (the request view), `decision` (verdicts and approval parameters), `glob`.

pub mod decision;
mod glob;
pub mod model;
mod policy;
mod request;

pub use decision::{
    Approval, ApprovalMode, DEFAULT_HOLD, DEFAULT_QUORUM, DEFAULT_RULE, DEFAULT_TTL, Evaluation,
    FREEZE_RULE, Freeze, FreezeMode, RevealGrant, Reviewers, Verdict,
};
pub use policy::{Explanation, Key, Policy, PolicyError, RuleTrace, parse_duration};
pub use request::{Request, Subject};

/// The default policy for AI agents, as shipped (`crates/holdpoint-policy/default-policy.yaml`).
pub const DEFAULT_POLICY_YAML: &str = include_str!("../default-policy.yaml");

/// The compiled policy is shared across the gateway's threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
};
