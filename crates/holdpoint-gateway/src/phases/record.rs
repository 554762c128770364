//! The record phase: every request, including refused and failed ones, leaves a record.
//!
//! `begin` runs before anything is sent upstream, so a recorder that cannot write can refuse the
//! request (fail closed); `finish` runs for every request once its response head is known. The
//! foundation's [`LogRecorder`] writes one structured log line per request; the audit store
//! replaces it.

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;

use super::Exchange;

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
    /// Called before a request is forwarded. An error refuses the request.
    fn begin(&self, exchange: &Exchange) -> Result<(), String>;
    /// Called once for every request, forwarded or not.
    fn finish(&self, exchange: &Exchange);
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
    fn begin(&self, _exchange: &Exchange) -> Result<(), String> {
        Ok(())
    }

    fn finish(&self, ex: &Exchange) {
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
