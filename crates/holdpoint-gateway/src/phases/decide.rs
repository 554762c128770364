//! The decide phase: policy says allow, deny, or hold for approval.
//!
//! The foundation allows everything; the policy engine replaces [`AllowAll`].

use std::fmt::Debug;

pub use holdpoint_policy::{Approval, ApprovalMode, Freeze, FreezeMode, Reviewers};

use super::Exchange;

/// What policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Decision {
    /// Forward it.
    Allow {
        /// The rule that matched, for audit.
        rule: String,
    },
    /// Refuse it with a message shown to the caller.
    Deny {
        /// The rule that matched.
        rule: String,
        /// Shown to the caller in the 403 Status.
        message: String,
    },
    /// Hold it until reviewers decide.
    Hold {
        /// The rule that matched.
        rule: String,
        /// The approve action's parameters: reviewers, quorum, ttl, hold, mode.
        approval: Approval,
    },
}

/// A policy.
pub trait Decider: Send + Sync + Debug {
    /// Decides for an authenticated, classified request (body already read when it has one).
    fn decide(&self, exchange: &Exchange) -> Decision;
}

/// Allows every request (the foundation's placeholder policy).
#[derive(Debug, Default)]
pub struct AllowAll;

impl Decider for AllowAll {
    fn decide(&self, _exchange: &Exchange) -> Decision {
        Decision::Allow {
            rule: "allow-all".into(),
        }
    }
}
