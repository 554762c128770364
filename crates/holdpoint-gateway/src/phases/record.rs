//! The record phase: every request, including refused and failed ones, leaves a record.
//!
//! `begin` runs before anything is sent upstream, so a recorder that cannot write can refuse the
//! request (fail closed); `finish` runs for every request once its response head is known. The
//! foundation's [`LogRecorder`] writes one structured log line per request; the audit store
//! replaces it.

use std::fmt::Debug;

use super::Exchange;

/// Records requests.
pub trait Recorder: Send + Sync + Debug {
    /// Called before a request is forwarded. An error refuses the request.
    fn begin(&self, exchange: &Exchange) -> Result<(), String>;
    /// Called once for every request, forwarded or not.
    fn finish(&self, exchange: &Exchange);
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
