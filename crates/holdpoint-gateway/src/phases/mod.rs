//! The request pipeline: every request goes through the named phases in this order.
//!
//! ```text
//! classify ─▶ authenticate ─▶ (read body) ─▶ decide ─▶ hold ─▶ record.begin ─▶ forward ─▶ mask
//!     └──────────────── any error ──────────────────────────────────────────┐
//!                                                                           ▼
//!                                                   Status response ─▶ record.finish (always)
//! ```
//!
//! `classify` runs first because its path-safety check must refuse path tricks before anything
//! else looks at the request. Each phase is a module with a trait, so later capabilities
//! (policy, approvals, masking, audit) replace a phase without touching the others. The
//! [`Exchange`] carries what the phases learn about one request.

pub mod authenticate;
pub mod classify;
pub mod decide;
pub mod forward;
pub mod hold;
pub mod mask;
pub mod record;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use kube_request::RequestInfo;

use crate::body::Body;
use crate::clock::Clock;
use crate::config::Limits;
use crate::error::GatewayError;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

use authenticate::{AuthChain, ConnectionInfo};
use decide::{Decider, Decision, RevealGrant};
use hold::{HoldOutcome, Holder};
use mask::Masker;
use record::{ApprovalNote, CallerHeaders, Recorder};

/// What the phases know about one request.
#[derive(Debug)]
pub struct Exchange {
    /// The gateway's id for this request (also sent upstream as `Audit-Id`).
    pub audit_id: String,
    /// When the request arrived (from the injected clock).
    pub received_at: jiff::Timestamp,
    /// Monotonic start, for durations.
    pub started: Instant,
    /// The direct peer (never a caller-supplied `X-Forwarded-For`).
    pub peer: SocketAddr,
    /// HTTP method.
    pub method: Method,
    /// Raw path and query as received.
    pub path: String,
    /// Classification, once done.
    pub info: Option<RequestInfo>,
    /// The caller, once authenticated.
    pub identity: Option<Identity>,
    /// Policy's decision, once made.
    pub decision: Option<Decision>,
    /// The kinds policy reveals to this caller unmasked, and the reveal rules that granted
    /// them (empty: everything masked). Set with the decision.
    pub reveal: RevealGrant,
    /// The request body (bounded by `limits.max_request_body_bytes`).
    pub body: Bytes,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// HTTP status returned to the caller.
    pub status: u16,
    /// Outcome label: `forwarded`, `denied`, `unauthenticated`, ...
    pub outcome: &'static str,
    /// The gateway error, when the request failed inside the gateway.
    pub error: Option<String>,
    /// The caller's headers the record phase groups requests by (never credentials).
    pub caller: CallerHeaders,
    /// The approval the request was held on, once the hold phase knows it.
    pub approval: Option<ApprovalNote>,
    /// The record phase's `begin` ran and let the request through.
    pub begun: bool,
    /// What the mask phase masked in the response, filled when the masked body ends: the
    /// record phase stores these counts with the (already masked) response.
    pub masked: MaskTally,
}

/// The mask phase's counts for one response, shared with the record phase (the masked body
/// ends before the recording body that wraps it).
#[derive(Clone, Debug, Default)]
pub struct MaskTally(Arc<std::sync::Mutex<Tally>>);

/// What [`MaskTally`] holds.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// What was masked (and revealed).
    pub summary: holdpoint_mask::MaskSummary,
    /// The mask phase masked the whole body to its end: what the caller got is masked.
    pub complete: bool,
}

impl MaskTally {
    /// Adds what a masked body counted; `complete` when the body was masked to its end.
    pub fn add(&self, summary: &holdpoint_mask::MaskSummary, complete: bool) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.summary.merge(summary);
        t.complete = complete;
    }

    /// What was counted so far.
    pub fn get(&self) -> Tally {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
impl Exchange {
    /// A classified exchange for `method` and `target` (path and query), before authentication.
    pub(crate) fn for_test(method: Method, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Exchange {
            audit_id: "test".into(),
            received_at: "2026-12-01T09:30:00Z".parse().unwrap(),
            started: Instant::now(),
            peer: "127.0.0.1:1".parse().unwrap(),
            method: method.clone(),
            path: target.into(),
            info: Some(kube_request::classify(&method, path, query).unwrap()),
            identity: None,
            decision: None,
            reveal: RevealGrant::default(),
            body: Bytes::new(),
            content_type: None,
            status: 0,
            outcome: "forwarded",
            error: None,
            caller: Default::default(),
            approval: None,
            begun: false,
            masked: MaskTally::default(),
        }
    }
}

/// The configured phases and what they need.
#[derive(Debug)]
pub struct Pipeline {
    /// authenticate (shared with the reviewer API)
    pub authenticator: Arc<AuthChain>,
    /// decide
    pub decider: Arc<dyn Decider>,
    /// hold
    pub holder: Arc<dyn Holder>,
    /// mask
    pub masker: Arc<dyn Masker>,
    /// record
    pub recorder: Arc<dyn Recorder>,
    /// forward: the upstream API server
    pub upstream: Upstream,
    /// forward: send the caller's identity as `Impersonate-*` headers (`upstream.impersonate`).
    pub impersonate: bool,
    /// Body limits and timeouts.
    pub limits: Limits,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Time source (injected so time-dependent behaviour is testable).
    pub clock: Arc<dyn Clock>,
}

impl Pipeline {
    /// Handles one request through every phase. Never fails: errors become `Status` responses,
    /// and the record phase sees every request.
    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnectionInfo) -> Response<Body> {
        let mut ex = Exchange {
            // Time-ordered (UUID version 7, monotonic in this process): the audit log's index on
            // audit ids then grows at its end instead of dirtying a random page per event.
            audit_id: uuid::Uuid::now_v7()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
            received_at: self.clock.now(),
            started: Instant::now(),
            peer: conn.peer,
            method: req.method().clone(),
            path: req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_default(),
            info: None,
            identity: None,
            decision: None,
            reveal: RevealGrant::default(),
            body: Bytes::new(),
            content_type: req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            status: 0,
            outcome: "forwarded",
            error: None,
            caller: CallerHeaders::from_headers(req.headers()),
            approval: None,
            begun: false,
            masked: MaskTally::default(),
        };
        let response = match self.run(req, conn, &mut ex).await {
            Ok(resp) => resp,
            Err(e) => {
                ex.outcome = e.outcome();
                ex.error = Some(e.to_string());
                e.to_response()
            }
        };
        ex.status = response.status().as_u16();
        let response = self.recorder.finish(&ex, response);
        self.metrics.observe(&ex);
        response
    }

    async fn run(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnectionInfo,
        ex: &mut Exchange,
    ) -> Result<Response<Body>, GatewayError> {
        // classify: path safety first, then the apiserver's RequestInfo.
        let classified = classify::classify(&req)?;
        ex.info = Some(classified.info.clone());

        // authenticate
        let identity = self.authenticator.authenticate(req.headers(), conn).await?;
        ex.identity = Some(identity);

        // mask: what could never be answered masked is refused before anything happens
        self.masker.check(ex, req.headers())?;

        // The client half of an upgrade must be claimed before the request is taken apart.
        let client_upgrade = classified
            .upgrade
            .is_some()
            .then(|| hyper::upgrade::on(&mut req));
        let (parts, incoming) = req.into_parts();
        ex.body = read_body(&parts.headers, incoming, self.limits.max_request_body_bytes).await?;

        // decide
        let decision = self.decider.decide(ex);
        ex.decision = Some(decision.clone());
        ex.reveal = self.decider.reveal(ex);
        match decision {
            Decision::Allow { .. } => {}
            Decision::Deny { message, .. } => return Err(GatewayError::Forbidden(message)),
            // hold
            Decision::Hold { approval, .. } => {
                let upgrade = classified.upgrade.is_some();
                match self
                    .holder
                    .hold(ex, &parts.headers, &approval, upgrade)
                    .await?
                {
                    HoldOutcome::Forward => {}
                    // The gateway sent the approved request itself; this is its answer.
                    HoldOutcome::Respond(response) => {
                        ex.outcome = "executed";
                        return self.masker.mask(ex, response);
                    }
                }
            }
        }

        // record (before anything reaches the upstream: fail closed)
        self.recorder
            .begin(ex)
            .await
            .map_err(GatewayError::RecordFailed)?;
        ex.begun = true;

        // forward: as the caller (impersonation) or as the gateway itself.
        let identity_headers = match (&ex.identity, self.impersonate) {
            (Some(identity), true) => identity.impersonation_headers().map_err(|why| {
                GatewayError::Forbidden(format!(
                    "the authenticated identity cannot be passed to the Kubernetes API server: {why}"
                ))
            })?,
            _ => Vec::new(),
        };
        let response = forward::forward(
            &self.upstream,
            self.masker.as_ref(),
            self.recorder.as_ref(),
            ex,
            &identity_headers,
            parts,
            classified.upgrade,
            client_upgrade,
        )
        .await?;

        // mask
        self.masker.mask(ex, response)
    }
}

/// Reads the request body up to `limit` bytes; a larger body is a 413 before anything is sent.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: u64,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(e) => Err(GatewayError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}
