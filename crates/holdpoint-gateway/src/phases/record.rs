//! The record phase: every request, including refused and failed ones, leaves a record.
//!
//! `begin` runs before anything is sent upstream, so a recorder that cannot write can refuse the
//! request (fail closed); `finish` runs for every request once its response head is known, and
//! may wrap the response body to record it as it streams. [`LogRecorder`] writes one structured
//! log line per request; [`crate::audit::AuditRecorder`] records into the store's audit log
//! (and keeps the log line).

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Response};

use super::Exchange;
use crate::body::Body;

/// Longest caller header value kept for the record (longer ones are cut).
const MAX_HEADER_KEPT: usize = 512;

/// The caller's headers that say what the caller is doing: kept for the record, never a
/// credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerHeaders {
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Kubectl-Command` (`kubectl apply`, ...).
    pub kubectl_command: Option<String>,
    /// `Kubectl-Session`: one kubectl invocation.
    pub kubectl_session: Option<String>,
    /// `Holdpoint-Session`: an agent's whole task.
    pub holdpoint_session: Option<String>,
}

impl CallerHeaders {
    /// Reads them from the request (each cut to 512 bytes; values that are not text are
    /// ignored).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(|v| {
                    let mut end = v.len().min(MAX_HEADER_KEPT);
                    while !v.is_char_boundary(end) {
                        end -= 1;
                    }
                    v[..end].to_owned()
                })
        };
        Self {
            user_agent: get("user-agent"),
            kubectl_command: get("kubectl-command"),
            kubectl_session: get("kubectl-session"),
            holdpoint_session: get("holdpoint-session"),
        }
    }
}

/// A reviewer's vote, as the record shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VoteNote {
    /// The reviewer.
    pub reviewer: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub at: jiff::Timestamp,
}

/// The approval a held request is bound to, as the hold phase leaves it for the record phase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalNote {
    /// The approval's id.
    pub id: String,
    /// Its state when the request left the hold phase.
    pub state: String,
    /// `execute` or `grant`.
    pub mode: String,
    /// The votes cast so far.
    #[serde(default)]
    pub votes: Vec<VoteNote>,
}

/// One piece of an exec, attach or port-forward session, as the caller saw it (output already
/// masked). `at` is the time since the stream was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Bytes the caller sent to the process's stdin.
    Stdin { at: Duration, data: Bytes },
    /// Bytes of the process's stdout the caller received (masked).
    Stdout { at: Duration, data: Bytes },
    /// Bytes of the process's stderr the caller received (masked).
    Stderr { at: Duration, data: Bytes },
    /// The caller's terminal was resized.
    Resize {
        at: Duration,
        width: u16,
        height: u16,
    },
    /// A port-forward connection ended, with its byte counts.
    PortForward {
        at: Duration,
        port: u16,
        to_upstream: u64,
        to_client: u64,
    },
    /// The stream ended; `status` is the exit status the API server reported, when it did.
    Closed {
        at: Duration,
        status: Option<String>,
    },
}

/// Receives the events of one upgraded stream, in order. Dropped when the stream ends.
pub trait StreamRecorder: Send + Debug {
    /// Records one event.
    fn event(&mut self, event: StreamEvent);
}

/// Records requests.
pub trait Recorder: Send + Sync + Debug {
    /// Called before a request is forwarded (after decide and hold). An error refuses the
    /// request: a recorder that must keep a durable record first returns only once it has.
    fn begin<'a>(&'a self, exchange: &'a Exchange) -> BoxFuture<'a, Result<(), String>>;
    /// Called once for every request, forwarded or not, with the response the caller is about
    /// to get; returns the response to send (a recorder may wrap the body to record it).
    fn finish(&self, exchange: &Exchange, response: Response<Body>) -> Response<Body>;
    /// Called when an exec, attach or port-forward stream is established (after `101`); the
    /// returned recorder receives the stream's events. `None`: the stream is not recorded.
    fn stream(&self, _exchange: &Exchange) -> Option<Box<dyn StreamRecorder>> {
        None
    }
}

/// Writes one `tracing` event per request (never a credential or a body).
#[derive(Debug, Default)]
pub struct LogRecorder;

impl Recorder for LogRecorder {
    fn begin<'a>(&'a self, _exchange: &'a Exchange) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn finish(&self, ex: &Exchange, response: Response<Body>) -> Response<Body> {
        self.log(ex);
        response
    }
}

impl LogRecorder {
    /// The log line of one request.
    pub fn log(&self, ex: &Exchange) {
        let (verb, resource, namespace, name) = match &ex.info {
            Some(i) => (
                i.verb.as_str(),
                i.resource.as_str(),
                i.namespace.as_str(),
                i.name.as_str(),
            ),
            None => ("", "", "", ""),
        };
        tracing::info!(
            target: "holdpoint::record",
            audit_id = %ex.audit_id,
            user = ex.identity.as_ref().map(|i| i.username.as_str()).unwrap_or(""),
            peer = %ex.peer,
            method = %ex.method,
            path = %ex.path,
            verb,
            resource,
            namespace,
            name,
            status = ex.status,
            outcome = ex.outcome,
            error = ex.error.as_deref().unwrap_or(""),
            duration_ms = ex.started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}
