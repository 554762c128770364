//! The forward phase: sends the request upstream with the gateway's credential and relays the
//! answer, streaming.
//!
//! Ordinary requests go on pooled connections; the response body streams through unbuffered
//! (watch events are flushed as they come). Upgrades (exec, attach, port-forward) get a fresh
//! upstream connection: on `101` the stream [`tap`] runs between the two connections (it reads,
//! masks and records every frame, and refuses a stream protocol it cannot read), on anything else
//! both are closed (CVE-2018-1002105). Upstream redirects are refused, never relayed.

mod tap;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};

use super::Exchange;
use super::mask::Masker;
use super::record::Recorder;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::headers::{ForwardContext, client_response_headers, upstream_request_headers};
use crate::upstream::{Upstream, UpstreamError, tokio_io};

/// Largest body of a refused upgrade that is relayed to the caller.
const REFUSED_UPGRADE_BODY_LIMIT: usize = 64 * 1024;

impl From<UpstreamError> for GatewayError {
    fn from(e: UpstreamError) -> Self {
        GatewayError::UpstreamUnavailable(e.to_string())
    }
}

/// Sends the request upstream and returns the response for the caller. `identity` holds the
/// `Impersonate-*` headers the gateway sets (empty when it forwards as itself); the caller's own
/// are always dropped by the header allow-list.
#[allow(clippy::too_many_arguments)] // the phase's inputs, each from a different place
pub async fn forward(
    upstream: &Upstream,
    masker: &dyn Masker,
    recorder: &dyn Recorder,
    ex: &Exchange,
    identity: &[(HeaderName, HeaderValue)],
    parts: Parts,
    upgrade: Option<HeaderValue>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, GatewayError> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let uri = upstream.uri_for(path_and_query)?;
    let ctx = ForwardContext {
        peer: ex.peer.ip(),
        audit_id: &ex.audit_id,
        upgrade: upgrade.clone(),
        identity,
    };
    let mut headers = upstream_request_headers(&parts.headers, &ctx);
    masker.prepare(ex, &mut headers);

    let mut out = Request::new(Full::new(ex.body.clone()));
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;

    match (upgrade, client_upgrade) {
        (Some(_), Some(client_upgrade)) => {
            forward_upgrade(upstream, masker, recorder, ex, out, client_upgrade).await
        }
        _ => {
            let resp = upstream.send(out).await?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                return Err(GatewayError::UpstreamRedirect);
            }
            let (up_parts, incoming) = resp.into_parts();
            let mut resp = Response::new(body::stream(incoming));
            *resp.status_mut() = status;
            *resp.headers_mut() = client_response_headers(&up_parts.headers, false);
            Ok(resp)
        }
    }
}

async fn forward_upgrade(
    upstream: &Upstream,
    masker: &dyn Masker,
    recorder: &dyn Recorder,
    ex: &Exchange,
    req: Request<Full<Bytes>>,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Result<Response<Body>, GatewayError> {
    let mut resp = upstream.send_upgrade(req).await?;
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Relay the refusal, then close both sides: neither connection carries anything more.
        let headers = client_response_headers(resp.headers(), false);
        let bytes = Limited::new(resp.into_body(), REFUSED_UPGRADE_BODY_LIMIT)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut out = Response::new(body::full(bytes));
        *out.status_mut() = if status.is_redirection() {
            StatusCode::BAD_GATEWAY
        } else {
            status
        };
        *out.headers_mut() = headers;
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(out);
    }

    // Only a stream the tap can read is let through; anything else closes both connections.
    let plan = tap::plan(ex, resp.headers())?;
    let text = masker.stream_text(ex);
    let recording = tap::Recording::new(recorder.stream(ex));
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    let audit_id = ex.audit_id.clone();
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client_upgrade, upstream_upgrade);
        match (client, upstream) {
            (Ok(client), Ok(upstream)) => {
                tap::run(plan, tokio_io(client), tokio_io(upstream), text, recording).await;
                tracing::debug!(audit_id, "upgraded stream closed");
            }
            (client, upstream) => tracing::warn!(
                audit_id,
                client_ok = client.is_ok(),
                upstream_ok = upstream.is_ok(),
                "upgrade did not complete on both sides"
            ),
        }
    });

    let mut out = Response::new(body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *out.headers_mut() = client_response_headers(resp.headers(), true);
    Ok(out)
}
