//! The hold phase: a request policy decided to hold waits here for reviewers.
//!
//! [`crate::approvals::Approvals`] is the real implementation (approvals in the store, reviewers
//! deciding through the API). [`NoHold`] refuses held requests (fail closed: a request that
//! should wait for a human is never forwarded without one); tests that need no store use it.

use std::fmt::Debug;

use futures::future::BoxFuture;
use http::{HeaderMap, Response};

use super::Exchange;
use super::decide::Approval;
use crate::body::Body;
use crate::error::GatewayError;

/// How a held request continues once the hold phase lets it go.
#[derive(Debug)]
pub enum HoldOutcome {
    /// Approved for this caller's own request (grant, or an upgrade): forward it now.
    Forward,
    /// The gateway already sent the approved request itself (execute): this is the answer.
    Respond(Response<Body>),
}

/// Waits for (or refuses) a held request.
pub trait Holder: Send + Sync + Debug {
    /// Called only for requests policy decided to hold. `headers` are the caller's request
    /// headers; `upgrade` is true for exec, attach and port-forward upgrades (which can only
    /// run on the caller's own connection).
    /// The holder notes the approval on `exchange.approval` for the record phase.
    fn hold<'a>(
        &'a self,
        exchange: &'a mut Exchange,
        headers: &'a HeaderMap,
        action: &'a Approval,
        upgrade: bool,
    ) -> BoxFuture<'a, Result<HoldOutcome, GatewayError>>;
}

/// Refuses every held request: there is no approval workflow to wait for.
#[derive(Debug, Default)]
pub struct NoHold;

impl Holder for NoHold {
    fn hold<'a>(
        &'a self,
        _exchange: &'a mut Exchange,
        _headers: &'a HeaderMap,
        _action: &'a Approval,
        _upgrade: bool,
    ) -> BoxFuture<'a, Result<HoldOutcome, GatewayError>> {
        Box::pin(async {
            Err(GatewayError::Forbidden(
                "this request needs approval, and no approval workflow is configured".into(),
            ))
        })
    }
}
