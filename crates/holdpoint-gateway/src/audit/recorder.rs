//! The record phase backed by the audit log: [`AuditRecorder`] (the pipeline's `Recorder`) and
//! [`CastRecorder`] (an exec/attach stream as an asciinema v2 cast; port-forward connections
//! with their byte counts).
//!
//! Events of one request (they share its `auditID`):
//! - mutations (and reads with `audit.reads: wait`): `RequestReceived` with the masked request
//!   body, written and durable before the request is forwarded;
//! - watches and followed logs: `ResponseStarted` when the response head is sent;
//! - every request: `ResponseComplete` when the response body ends (or the caller goes away),
//!   with status, duration, byte counts and the masked response body (up to the cap); it holds
//!   the request body when no `RequestReceived` did (denied, held, refused requests);
//! - exec, attach, port-forward: `ResponseStarted` at `101`, then a `stream` event with the
//!   recording when the stream closes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use holdpoint_store::{NewAuditEvent, SessionKey};
use http::{HeaderMap, Response, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{self, Capture, Encoded};
use super::event::{ByteCounts, Event, PortForwardNote, StreamNote};
use super::{Audit, session_key};
use crate::body::{Body, BoxError};
use crate::config::AuditReads;
use crate::phases::Exchange;
use crate::phases::record::{LogRecorder, Recorder, StreamEvent, StreamRecorder};

/// The record phase on the audit log (keeps the log line of [`LogRecorder`] too).
#[derive(Debug)]
pub struct AuditRecorder {
    audit: Audit,
    log: LogRecorder,
}

impl AuditRecorder {
    /// A recorder writing to `audit`.
    pub fn new(audit: Audit) -> Self {
        Self {
            audit,
            log: LogRecorder,
        }
    }

    /// Whether `begin` writes a durable record before the request is forwarded.
    fn durable(&self, ex: &Exchange) -> bool {
        ex.info.as_ref().is_none_or(|i| i.is_mutating())
            || self.audit.settings().reads == AuditReads::Wait
    }

    fn request_body(&self, ex: &Exchange) -> Option<Encoded> {
        body::request(
            self.audit.masker(),
            ex.info.as_ref(),
            ex.content_type.as_deref(),
            &ex.body,
            self.audit.settings().max_body_bytes,
        )
    }

    fn event(&self, ex: &Exchange, stage: &str) -> Event {
        let mut e = Event::for_exchange(ex, stage, self.audit.now());
        e.holdpoint.instance = Some(self.audit.settings().instance.clone());
        e
    }
}

/// Who the events of `ex` belong to.
struct Owner {
    audit_id: String,
    username: Option<String>,
    session: SessionKey,
}

impl Owner {
    fn of(ex: &Exchange) -> Self {
        let username = ex.identity.as_ref().map(|i| i.username.clone());
        let session = session_key(username.as_deref(), &ex.caller, ex.peer.ip());
        Self {
            audit_id: ex.audit_id.clone(),
            username,
            session,
        }
    }

    fn record(
        &self,
        kind: &str,
        mut event: Event,
        at: jiff::Timestamp,
        request: Option<Encoded>,
        response: Option<Encoded>,
    ) -> NewAuditEvent {
        let (request_meta, request_blob) = split(request);
        let (response_meta, response_blob) = split(response);
        if request_blob.is_some() || response_blob.is_some() {
            event.level = "RequestResponse".into();
        }
        if request_meta.is_some() {
            event.holdpoint.request_body = request_meta;
        }
        if response_meta.is_some() {
            event.holdpoint.response_body = response_meta;
        }
        NewAuditEvent {
            audit_id: self.audit_id.clone(),
            kind: kind.into(),
            at,
            username: self.username.clone(),
            session: self.session.clone(),
            event: event.to_json(),
            request_body: request_blob,
            response_body: response_blob,
        }
    }
}

fn split(e: Option<Encoded>) -> (Option<body::BodyMeta>, Option<Vec<u8>>) {
    match e {
        Some(e) => (Some(e.meta), e.blob),
        None => (None, None),
    }
}

/// A watch, or a followed log: the response lasts, so its start is recorded at once.
fn long_running(ex: &Exchange) -> bool {
    let Some(info) = &ex.info else { return false };
    info.verb == "watch"
        || (info.subresource == "log"
            && ex
                .path
                .split_once('?')
                .is_some_and(|(_, q)| q.split('&').any(|p| p == "follow=true" || p == "follow=1")))
}

/// Responses recorded line by line (watch events, log lines).
fn by_lines(ex: &Exchange) -> bool {
    ex.info
        .as_ref()
        .is_some_and(|i| i.verb == "watch" || i.subresource == "log")
}

impl Recorder for AuditRecorder {
    fn begin<'a>(&'a self, ex: &'a Exchange) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let metrics = self.audit.metrics();
            if self.durable(ex) {
                let owner = Owner::of(ex);
                let at = self.audit.now();
                let record = owner.record(
                    "request",
                    self.event(ex, "RequestReceived"),
                    at,
                    self.request_body(ex),
                    None,
                );
                return self.audit.write(record).await.map_err(|e| {
                    metrics.refused.inc();
                    format!("the audit log could not record it ({e})")
                });
            }
            if self.audit.healthy() {
                return Ok(());
            }
            match self.audit.settings().reads {
                AuditReads::Serve => {
                    metrics.unrecorded_reads.inc();
                    Ok(())
                }
                _ => {
                    metrics.refused.inc();
                    Err(
                        "the audit log cannot record requests right now (audit.reads: refuse)"
                            .into(),
                    )
                }
            }
        })
    }

    fn finish(&self, ex: &Exchange, response: Response<Body>) -> Response<Body> {
        self.log.log(ex);
        let owner = Owner::of(ex);
        let mut event = self.event(ex, "ResponseComplete");
        event.set_status(ex.status, ex.error.as_deref());
        let request = if ex.begun && self.durable(ex) {
            None
        } else {
            self.request_body(ex)
        };
        let status = response.status();
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            // The stream recorder writes the rest when the stream closes.
            event.stage = "ResponseStarted".into();
            let at = self.audit.now();
            self.audit
                .submit(owner.record("request", event, at, request, None));
            return response;
        }
        let mut request = request;
        if long_running(ex) {
            let mut started = event.clone();
            started.stage = "ResponseStarted".into();
            let at = self.audit.now();
            self.audit
                .submit(owner.record("request", started, at, request.take(), None));
        }
        let headers = response.headers();
        let content_type = text_header(headers, header::CONTENT_TYPE);
        let gzip = text_header(headers, header::CONTENT_ENCODING)
            .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let pending = Pending {
            audit: self.audit.clone(),
            owner,
            event,
            request,
            content_type,
            lines: by_lines(ex),
            started: ex.started,
            tally: ex.masked.clone(),
        };
        let capture = Capture::new(self.audit.settings().max_body_bytes, gzip);
        response.map(|inner| {
            RecordedBody {
                inner,
                capture: Some(capture),
                pending: Some(pending),
            }
            .boxed_unsync()
        })
    }

    fn stream(&self, ex: &Exchange) -> Option<Box<dyn StreamRecorder>> {
        let mut event = self.event(ex, "ResponseComplete");
        // A stream is recorded only once the upstream switched protocols.
        event.set_status(http::StatusCode::SWITCHING_PROTOCOLS.as_u16(), None);
        let kind = ex
            .info
            .as_ref()
            .map(|i| i.subresource.clone())
            .unwrap_or_default();
        Some(Box::new(CastRecorder {
            audit: self.audit.clone(),
            owner: Owner::of(ex),
            event,
            kind,
            started: Instant::now(),
            started_at: self.audit.now(),
            cast: Vec::new(),
            cap: self.audit.settings().max_body_bytes,
            truncated: false,
            total: 0,
            bytes_in: 0,
            bytes_out: 0,
            size: None,
            exit_status: None,
            connections: Vec::new(),
            carry: Default::default(),
            closed: false,
        }))
    }
}

fn text_header(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `ResponseComplete` event of a request, waiting for its response body to end.
struct Pending {
    audit: Audit,
    owner: Owner,
    event: Event,
    request: Option<Encoded>,
    content_type: Option<String>,
    lines: bool,
    started: Instant,
    /// What the mask phase masked before this body was captured.
    tally: crate::phases::MaskTally,
}

impl Pending {
    fn complete(mut self, capture: Capture, error: Option<String>) {
        let captured = capture.done();
        // A body the mask phase masked to its end, with nothing revealed, is stored as the
        // caller got it (masking it again would find nothing); anything else is masked here.
        let tally = self.tally.get();
        let premasked = tally.complete && tally.summary.revealed_total() == 0;
        let mut response = body::response(
            self.audit.masker(),
            self.content_type.as_deref(),
            self.lines,
            &captured,
            self.audit.settings().max_body_bytes,
            premasked,
        );
        // The mask phase's counts are what was masked on the way to the caller.
        if let Some(r) = &mut response {
            for (rule, n) in tally.summary.iter() {
                *r.meta.masked.entry(rule.to_owned()).or_insert(0) += n;
            }
        }
        let h = &mut self.event.holdpoint;
        h.duration_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
        h.bytes.response = captured.total;
        if let Some(e) = error
            && h.error.is_none()
        {
            h.error = Some(e);
        }
        let at = self.audit.now();
        self.event.stage_timestamp = super::event::micro_time(at);
        let record = self
            .owner
            .record("request", self.event, at, self.request, response);
        self.audit.submit(record);
    }
}

/// A response body that records itself when it ends (or is dropped).
struct RecordedBody {
    inner: Body,
    capture: Option<Capture>,
    pending: Option<Pending>,
}

impl RecordedBody {
    fn finish(&mut self, error: Option<String>) {
        if let (Some(capture), Some(pending)) = (self.capture.take(), self.pending.take()) {
            pending.complete(capture, error);
        }
    }
}

impl http_body::Body for RecordedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(capture)) = (frame.data_ref(), this.capture.as_mut()) {
                    capture.push(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(format!("the response ended with an error: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        let error = (!self.inner.is_end_stream())
            .then(|| "the caller went away before the response ended".to_owned());
        self.finish(error);
    }
}

/// One exec/attach/port-forward stream, recorded as an asciinema v2 cast (exec, attach) or as
/// its connections and byte counts (port-forward), written when the stream closes.
#[derive(Debug)]
pub struct CastRecorder {
    audit: Audit,
    owner: Owner,
    event: Event,
    kind: String,
    started: Instant,
    started_at: jiff::Timestamp,
    /// The cast's event lines (the header is written at the end, when the size is known).
    cast: Vec<u8>,
    cap: usize,
    truncated: bool,
    total: u64,
    bytes_in: u64,
    bytes_out: u64,
    size: Option<(u16, u16)>,
    exit_status: Option<String>,
    connections: Vec<PortForwardNote>,
    /// An incomplete UTF-8 sequence at the end of the last chunk, per stream (in, out, err).
    carry: [Vec<u8>; 3],
    closed: bool,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("audit_id", &self.audit_id)
            .finish_non_exhaustive()
    }
}

impl CastRecorder {
    /// Text of one chunk, keeping an incomplete UTF-8 sequence at its end for the next chunk.
    fn text(&mut self, stream: usize, data: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.carry[stream]);
        buf.extend_from_slice(data);
        let cut = match std::str::from_utf8(&buf) {
            Ok(_) => buf.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => buf.len(),
        };
        self.carry[stream] = buf.split_off(cut);
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn line(&mut self, at: std::time::Duration, code: &str, data: &str) {
        if data.is_empty() {
            return;
        }
        let t = (at.as_secs_f64() * 1e6).round() / 1e6;
        let mut line = serde_json::to_vec(&(t, code, data)).unwrap_or_default();
        line.push(b'\n');
        self.total += line.len() as u64;
        if self.cast.len() + line.len() > self.cap {
            self.truncated = true;
            return;
        }
        self.cast.extend_from_slice(&line);
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let at = self.audit.now();
        let mut event = self.event.clone();
        event.stage_timestamp = super::event::micro_time(at);
        event.holdpoint.duration_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
        event.holdpoint.bytes = ByteCounts {
            request: self.bytes_in,
            response: self.bytes_out,
        };
        event.holdpoint.stream = Some(StreamNote {
            kind: self.kind.clone(),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            exit_status: self.exit_status.clone(),
            connections: std::mem::take(&mut self.connections),
        });
        let recording = (self.kind != "portforward").then(|| {
            let (width, height) = self.size.unwrap_or((80, 24));
            let header = serde_json::json!({
                "version": 2,
                "width": width,
                "height": height,
                "timestamp": self.started_at.as_second(),
                "title": format!(
                    "{} {} {}",
                    self.owner.username.as_deref().unwrap_or("anonymous"),
                    self.kind,
                    self.event.request_uri
                ),
                "env": {"TERM": "xterm-256color"},
            });
            let mut cast = serde_json::to_vec(&header).unwrap_or_default();
            cast.push(b'\n');
            cast.extend_from_slice(&self.cast);
            let total = self.total + cast.len() as u64 - self.cast.len() as u64;
            body::recording("application/x-asciicast", cast, total, self.truncated)
        });
        let record = self.owner.record("stream", event, at, None, recording);
        self.audit.submit(record);
    }
}

impl StreamRecorder for CastRecorder {
    fn event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Stdin { at, data } => {
                self.bytes_in += data.len() as u64;
                let text = self.text(0, &data);
                // Typed input is not masked by the splice: the text detectors run here.
                let mut summary = holdpoint_mask::MaskSummary::new();
                let masked = self
                    .audit
                    .masker()
                    .mask_text(&text, &mut summary)
                    .into_owned();
                self.line(at, "i", &masked);
            }
            StreamEvent::Stdout { at, data } => {
                self.bytes_out += data.len() as u64;
                let text = self.text(1, &data);
                self.line(at, "o", &text);
            }
            StreamEvent::Stderr { at, data } => {
                self.bytes_out += data.len() as u64;
                let text = self.text(2, &data);
                self.line(at, "o", &text);
            }
            StreamEvent::Resize { at, width, height } => {
                if self.size.is_none() {
                    self.size = Some((width, height));
                }
                self.line(at, "r", &format!("{width}x{height}"));
            }
            StreamEvent::PortForward {
                at,
                port,
                to_upstream,
                to_client,
            } => {
                self.bytes_in += to_upstream;
                self.bytes_out += to_client;
                self.connections.push(PortForwardNote {
                    port,
                    at_seconds: at.as_secs_f64(),
                    to_upstream,
                    to_client,
                });
            }
            StreamEvent::Closed { status, .. } => {
                self.exit_status = status;
                self.close();
            }
        }
    }
}

impl Drop for CastRecorder {
    fn drop(&mut self) {
        self.close();
    }
}

/// Records an approved request the gateway sent itself (`execute` mode): the stored request
/// (masked), the approval with its votes, and the upstream's answer (masked), in the
/// requester's session. Event kind `execution`.
pub fn record_execution(
    audit: &Audit,
    a: &holdpoint_store::Approval,
    requester: &crate::identity::Identity,
    caller: crate::phases::record::CallerHeaders,
    note: crate::phases::record::ApprovalNote,
) {
    use super::event::{HoldpointFields, ObjectRef, UserInfo, micro_time};
    let now = audit.now();
    let r = &a.request;
    let uri = if r.query.is_empty() {
        r.path.clone()
    } else {
        format!("{}?{}", r.path, r.query)
    };
    let info = r.method.parse().ok().and_then(|m| {
        kube_request::classify(
            &m,
            &r.path,
            Some(r.query.as_str()).filter(|q| !q.is_empty()),
        )
        .ok()
    });
    let peer: Option<std::net::IpAddr> = a
        .requester
        .source
        .as_deref()
        .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
        .map(|s| s.ip());
    let settings = audit.settings();
    let request = body::request(
        audit.masker(),
        info.as_ref(),
        r.content_type.as_deref(),
        &r.body,
        settings.max_body_bytes,
    );
    let (status, response, response_bytes) = match &a.result {
        Some(result) => {
            let captured = body::Captured {
                head: result.body.clone(),
                total: result.body.len() as u64,
                sha256_of_all: None,
                gzip: false,
            };
            let encoded = body::response(
                audit.masker(),
                result.content_type.as_deref(),
                false,
                &captured,
                settings.max_body_bytes,
                false,
            );
            (result.status, encoded, result.body.len() as u64)
        }
        None => (0, None, 0),
    };
    let s = &a.summary;
    let mut event = Event {
        kind: "Event".into(),
        api_version: super::event::API_VERSION.into(),
        level: "Metadata".into(),
        audit_id: uuid::Uuid::new_v4().to_string(),
        stage: "ResponseComplete".into(),
        request_uri: uri,
        verb: s.verb.clone(),
        user: UserInfo::from(requester),
        source_ips: peer.map(|p| vec![p.to_string()]).unwrap_or_default(),
        user_agent: caller.user_agent.clone(),
        object_ref: Some(ObjectRef {
            resource: s.resource.clone(),
            namespace: s.namespace.clone().unwrap_or_default(),
            name: s.name.clone().unwrap_or_default(),
            api_group: s.group.clone(),
            api_version: s.version.clone(),
            subresource: s.subresource.clone().unwrap_or_default(),
        }),
        response_status: None,
        request_received_timestamp: micro_time(a.created_at),
        stage_timestamp: micro_time(now),
        annotations: [
            (
                "authorization.k8s.io/decision".to_owned(),
                "allow".to_owned(),
            ),
            ("authorization.k8s.io/reason".to_owned(), a.rule.clone()),
        ]
        .into(),
        holdpoint: HoldpointFields {
            outcome: a.state.to_string(),
            method: r.method.clone(),
            mutating: true,
            authenticator: Some(requester.authenticator.clone()),
            decision: Some("hold".into()),
            rule: Some(a.rule.clone()),
            approval: Some(note),
            kubectl_command: caller.kubectl_command.clone(),
            kubectl_session: caller.kubectl_session.clone(),
            holdpoint_session: caller.holdpoint_session.clone(),
            bytes: ByteCounts {
                request: r.body.len() as u64,
                response: response_bytes,
            },
            instance: Some(settings.instance.clone()),
            ..Default::default()
        },
    };
    let failed = a.state != holdpoint_store::ApprovalState::Executed;
    event.set_status(
        status,
        failed.then_some("the approved request could not be sent"),
    );
    let owner = Owner {
        audit_id: event.audit_id.clone(),
        username: Some(requester.username.clone()),
        session: session_key(
            Some(&requester.username),
            &caller,
            peer.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
        ),
    };
    audit.submit(owner.record("execution", event, now, request, response));
}

/// Records every policy reload (successful or refused) until `cancel`.
pub async fn record_policy_reloads(
    audit: Audit,
    mut reloads: tokio::sync::broadcast::Receiver<crate::phases::decide::PolicyReload>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let reload = tokio::select! {
            _ = cancel.cancelled() => return,
            r = reloads.recv() => r,
        };
        let reload = match reload {
            Ok(r) => r,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(target: "holdpoint::audit", missed = n, "policy reloads were not recorded");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let path = reload.path.display().to_string();
        let (status, outcome, detail) = match &reload.result {
            Ok(rules) => (
                200,
                "ok".to_owned(),
                Some(serde_json::json!({ "rules": rules })),
            ),
            Err(e) => (
                400,
                format!("refused; the previous policy stays in force: {e}"),
                None,
            ),
        };
        audit
            .admin(&super::AdminAction {
                actor: None,
                actor_name: None,
                source: None,
                action: "policy.reload",
                request_uri: String::new(),
                object: super::event::holdpoint_object("policies", &path),
                outcome,
                status,
                reason: None,
                detail,
                approval: None,
                user_agent: None,
            })
            .await;
    }
}
