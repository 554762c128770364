//! The stream tap: what runs on an upgraded exec, attach or port-forward connection instead of a
//! blind byte splice (`shared/attack-surface.md` items 16 and 17).
//!
//! The gateway reads every frame in both directions in the protocol the upstream negotiated
//! ([`plan`], from the `101` answer; anything it cannot read is refused before the caller gets a
//! `101`, so nothing passes unread):
//!
//! - exec/attach over WebSocket (`v5.channel.k8s.io` ... `channel.k8s.io`, base64 variants) and
//!   over SPDY/3.1: stdout, stderr and the error channel are masked line by line by the text
//!   detectors ([`holdpoint_mask::text_stream::TextStream`]) before the caller receives them;
//!   stdin, resize, masked output and the exit status go to the [`StreamRecorder`] with their time
//!   since the stream was established;
//! - port-forward over WebSocket channels, SPDY/3.1 and SPDY tunnelled in WebSocket: the data is
//!   arbitrary TCP and passes unchanged; bytes are counted per connection and each connection is
//!   recorded when it ends.
//!
//! Bounded everywhere: WebSocket messages and SPDY control frames have size limits, SPDY `DATA`
//! is relayed piece by piece, a masked channel holds back at most one incomplete line (flushed
//! after a short idle time so prompts and typed characters still appear), and each direction
//! awaits its writes before it reads again, so a slow reader slows its writer instead of filling
//! memory.
//!
//! `websocket` and `spdy` hold the two transports; this module holds what they share.

mod spdy;
mod websocket;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use holdpoint_mask::TextMasker;
use holdpoint_mask::text_stream::{DEFAULT_MAX_LINE, TextStream};
use http::HeaderMap;
use kube_streams::{Protocol, StreamKind, TermSize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::error::GatewayError;
use crate::phases::Exchange;
use crate::phases::record::{StreamEvent, StreamRecorder};

/// How long a masked output channel of a terminal (`tty=true`) holds an incomplete line before
/// it is emitted: short enough for typing to feel immediate, long enough that a process's
/// back-to-back writes are masked as one line.
pub(crate) const TTY_FLUSH_AFTER: Duration = Duration::from_millis(20);
/// The same for a non-terminal stream (prompts, progress output without line ends).
pub(crate) const PIPE_FLUSH_AFTER: Duration = Duration::from_millis(250);
/// Largest WebSocket message (and frame) accepted from either side.
const MAX_WS_MESSAGE: usize = 8 << 20;
/// Largest SPDY control frame payload accepted from either side (header blocks are small).
const MAX_SPDY_CONTROL: usize = 256 << 10;
/// After one direction of a stream has ended, how long the other may take to end by itself.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Most of the exit status kept for the record.
const MAX_STATUS: usize = 64 << 10;

/// How one upgraded connection is tapped, decided from the request and the upstream's `101`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TapPlan {
    pub kind: StreamKind,
    pub protocol: Protocol,
    /// `tty=true` in the request: output is flushed sooner.
    pub tty: bool,
    /// The `ports` of a port-forward request (WebSocket channels name ports only here).
    pub ports: Vec<u16>,
}

/// Decides how to tap the connection the upstream agreed to upgrade, or refuses it (fail
/// closed) when the upstream negotiated something the gateway cannot read.
pub(super) fn plan(ex: &Exchange, upstream: &HeaderMap) -> Result<TapPlan, GatewayError> {
    let refuse = |why: String| Err(GatewayError::StreamNotInspectable(why));
    let kind = match ex.info.as_ref().map(|i| i.subresource.as_str()) {
        Some("exec") => StreamKind::Exec,
        Some("attach") => StreamKind::Attach,
        Some("portforward") => StreamKind::PortForward,
        other => return refuse(format!("{other:?} is not a streaming subresource")),
    };
    let header = |name: &str| {
        upstream
            .get(name)
            .map(|v| v.to_str().map(str::trim).unwrap_or("<not text>"))
    };
    let upgrade = header("upgrade").unwrap_or_default();
    let protocol = if upgrade.eq_ignore_ascii_case("websocket") {
        if let Some(ext) = header("sec-websocket-extensions") {
            return refuse(format!("WebSocket extensions {ext:?} were negotiated"));
        }
        let name = header("sec-websocket-protocol");
        kube_streams::websocket_protocol(kind, name)
            .ok_or_else(|| format!("WebSocket subprotocol {name:?}"))
    } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        let name = header("x-stream-protocol-version");
        kube_streams::spdy_protocol(kind, name)
            .ok_or_else(|| format!("SPDY stream protocol {name:?}"))
    } else {
        Err(format!("the protocol {upgrade:?}"))
    };
    let protocol = match protocol {
        Ok(p) => p,
        Err(what) => return refuse(format!("the API server chose {what} for {kind:?}")),
    };
    let query = ex.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let tty = kube_request::query_first(query, "tty")
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
    let ports = kube_request::query_values(query, "ports")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    Ok(TapPlan {
        kind,
        protocol,
        tty,
        ports,
    })
}

/// Runs the tap on the two upgraded connections until both sides are done.
pub(super) async fn run<C, U>(
    plan: TapPlan,
    client: C,
    upstream: U,
    text: Option<Arc<TextMasker>>,
    recording: Recording,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let masking = Masking {
        text,
        flush_after: if plan.tty {
            TTY_FLUSH_AFTER
        } else {
            PIPE_FLUSH_AFTER
        },
    };
    match plan.protocol {
        Protocol::SpdyExec { .. } | Protocol::SpdyPortForward => {
            spdy::relay(client, upstream, plan.kind, &masking, &recording).await
        }
        Protocol::Channel { .. } | Protocol::PortForwardChannel { .. } | Protocol::SpdyTunnel => {
            websocket::relay(client, upstream, &plan, &masking, &recording).await
        }
    }
    recording.close();
}

/// How one direction of a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The sender closed it (or the receiver went away).
    Done,
    /// The gateway cut the stream (it could not read it): the other direction ends at once.
    Abort,
}

/// Runs both directions of a stream; once one has ended the other gets [`CLOSE_GRACE`] to end,
/// unless the first was aborted.
async fn both_directions(a: impl Future<Output = Ending>, b: impl Future<Output = Ending>) {
    tokio::pin!(a, b);
    let (first, a_ended) = tokio::select! {
        e = &mut a => (e, true),
        e = &mut b => (e, false),
    };
    if first == Ending::Done {
        let _ = if a_ended {
            tokio::time::timeout(CLOSE_GRACE, b).await
        } else {
            tokio::time::timeout(CLOSE_GRACE, a).await
        };
    }
}

/// The detectors for output channels and how long an incomplete line may wait.
#[derive(Debug, Clone)]
pub(super) struct Masking {
    text: Option<Arc<TextMasker>>,
    flush_after: Duration,
}

impl Masking {
    fn channel(&self) -> OutputMasker {
        OutputMasker {
            stream: self
                .text
                .as_ref()
                .map(|t| TextStream::new(t.clone(), DEFAULT_MAX_LINE)),
        }
    }
}

/// One output channel (stdout, stderr, error) on its way to the caller: masked line by line, or
/// passed through when masking is off.
#[derive(Debug)]
struct OutputMasker {
    stream: Option<TextStream>,
}

impl OutputMasker {
    fn push(&mut self, data: Bytes) -> Bytes {
        match &mut self.stream {
            Some(s) => {
                let mut out = Vec::with_capacity(data.len() + 16);
                s.push(&data, &mut out);
                Bytes::from(out)
            }
            None => data,
        }
    }

    fn flush(&mut self) -> Bytes {
        self.drain(TextStream::flush)
    }

    fn finish(&mut self) -> Bytes {
        self.drain(TextStream::finish)
    }

    fn drain(&mut self, how: fn(&mut TextStream, &mut Vec<u8>)) -> Bytes {
        match &mut self.stream {
            Some(s) => {
                let mut out = Vec::new();
                how(s, &mut out);
                Bytes::from(out)
            }
            None => Bytes::new(),
        }
    }

    fn has_pending(&self) -> bool {
        self.stream.as_ref().is_some_and(TextStream::has_pending)
    }
}

/// The exec/attach output channels of one session.
#[derive(Debug)]
struct Outputs {
    stdout: OutputMasker,
    stderr: OutputMasker,
    /// Held until its end; becomes the recorded exit status.
    error: OutputMasker,
    status: Vec<u8>,
    /// When held-back output is flushed.
    flush_at: Option<Instant>,
    flush_after: Duration,
}

/// Which output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Stdout,
    Stderr,
    Error,
}

impl Outputs {
    fn new(masking: &Masking) -> Self {
        Self {
            stdout: masking.channel(),
            stderr: masking.channel(),
            error: masking.channel(),
            status: Vec::new(),
            flush_at: None,
            flush_after: masking.flush_after,
        }
    }

    fn masker(&mut self, which: Output) -> &mut OutputMasker {
        match which {
            Output::Stdout => &mut self.stdout,
            Output::Stderr => &mut self.stderr,
            Output::Error => &mut self.error,
        }
    }

    /// Masks output, records what the caller will receive, and (re)arms the flush timer.
    fn push(&mut self, which: Output, data: Bytes, rec: &Recording) -> Bytes {
        let out = self.masker(which).push(data);
        self.recorded(which, &out, rec);
        if self.stdout.has_pending() || self.stderr.has_pending() {
            self.flush_at
                .get_or_insert_with(|| Instant::now() + self.flush_after);
        } else {
            self.flush_at = None;
        }
        out
    }

    /// Emits the held-back incomplete lines of stdout and stderr (the error channel waits for its
    /// end).
    fn flush(&mut self, rec: &Recording) -> [(Output, Bytes); 2] {
        self.flush_at = None;
        [Output::Stdout, Output::Stderr].map(|w| {
            let out = self.masker(w).flush();
            self.recorded(w, &out, rec);
            (w, out)
        })
    }

    /// The end of one output channel: everything it held back.
    fn finish(&mut self, which: Output, rec: &Recording) -> Bytes {
        let out = self.masker(which).finish();
        self.recorded(which, &out, rec);
        out
    }

    fn recorded(&mut self, which: Output, out: &[u8], rec: &Recording) {
        if out.is_empty() {
            return;
        }
        match which {
            Output::Stdout => rec.event(|at| StreamEvent::Stdout {
                at,
                data: Bytes::copy_from_slice(out),
            }),
            Output::Stderr => rec.event(|at| StreamEvent::Stderr {
                at,
                data: Bytes::copy_from_slice(out),
            }),
            Output::Error => {
                let room = MAX_STATUS.saturating_sub(self.status.len());
                self.status.extend_from_slice(&out[..out.len().min(room)]);
                rec.set_status(&self.status);
            }
        }
    }
}

/// The recorder of one stream, shared by both directions; every event carries the time since the
/// stream was established.
#[derive(Debug, Clone)]
pub(crate) struct Recording(Arc<Mutex<RecordingState>>);

#[derive(Debug)]
struct RecordingState {
    recorder: Option<Box<dyn StreamRecorder>>,
    start: Instant,
    status: Option<String>,
    closed: bool,
}

impl Recording {
    /// Records into `recorder` (`None`: nothing is recorded) from now on.
    pub(crate) fn new(recorder: Option<Box<dyn StreamRecorder>>) -> Self {
        Self(Arc::new(Mutex::new(RecordingState {
            recorder,
            start: Instant::now(),
            status: None,
            closed: false,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut RecordingState) -> T) -> T {
        // a recorder that panicked poisoned the lock; its state is still usable
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// Records the event `make` builds from the time since the start (not built when nothing is
    /// recorded, so the data is not copied for nothing).
    fn event(&self, make: impl FnOnce(Duration) -> StreamEvent) {
        self.with(|s| {
            if s.closed {
                return;
            }
            let at = s.start.elapsed();
            if let Some(r) = &mut s.recorder {
                r.event(make(at));
            }
        });
    }

    fn stdin(&self, data: &Bytes) {
        if !data.is_empty() {
            self.event(|at| StreamEvent::Stdin {
                at,
                data: data.clone(),
            });
        }
    }

    fn resize(&self, size: TermSize) {
        self.event(|at| StreamEvent::Resize {
            at,
            width: size.width,
            height: size.height,
        });
    }

    fn port_forward(&self, port: u16, to_upstream: u64, to_client: u64) {
        self.event(|at| StreamEvent::PortForward {
            at,
            port,
            to_upstream,
            to_client,
        });
    }

    fn set_status(&self, status: &[u8]) {
        let status = String::from_utf8_lossy(status).into_owned();
        self.with(|s| s.status = Some(status));
    }

    /// The end of the stream, with the exit status if one was reported (recorded once; nothing
    /// is recorded after it).
    fn close(&self) {
        self.with(|s| {
            if std::mem::replace(&mut s.closed, true) {
                return;
            }
            let (at, status) = (s.start.elapsed(), s.status.take());
            if let Some(r) = &mut s.recorder {
                r.event(StreamEvent::Closed { at, status });
            }
        });
    }
}

#[cfg(test)]
mod tests;
