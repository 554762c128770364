//! SPDY/3.1 transport: the `Upgrade: SPDY/3.1` handshake with `X-Stream-Protocol-Version`
//! negotiation, and the sessions run on the upgraded connection:
//!
//! - exec/attach (`v4.channel.k8s.io` down to the unversioned protocol): the client opens one
//!   stream per `streamType` header (`error`, `stdin`, `stdout`, `stderr`, `resize`); once all
//!   expected streams exist the process starts; at the end the outputs are FIN-ed and the exit
//!   status is written to the error stream (a JSON `Status` for v4, plain text before);
//! - port-forward (`portforward.k8s.io`): per local connection the client opens an `error` and a
//!   `data` stream (headers `port`, `requestID`); data is echoed back, and when the client
//!   half-closes the data stream both streams are FIN-ed.
//!
//! The session is generic over the byte stream so the same code serves plain upgraded
//! connections and SPDY tunnelled over WebSocket.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use kube_streams::spdy::{Decoder, Encoder, Frame, FrameError, RST_PROTOCOL_ERROR, header};
use kube_streams::{
    Protocol, ResizeParser, SPDY_EXEC_PROTOCOLS, SPDY_PORT_FORWARD_PROTOCOLS, StreamType,
    spdy_protocol,
};

use super::runtime::{self, Output, ProcessHandle};
use super::{Session, StreamKind, header_values, status_response};
/// How long the client gets to open the streams it asked for.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished session waits for the client to hang up.
const LINGER: Duration = Duration::from_secs(10);
/// Largest DATA payload the emulator sends in one frame.
const MAX_DATA_CHUNK: usize = 32 * 1024;

/// Whether `headers` ask for a SPDY/3.1 upgrade.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_values(headers, "upgrade")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// Negotiates the stream protocol, answers `101` and spawns the session.
pub(super) fn accept(mut req: Request<Incoming>, session: Session) -> Response<Full<Bytes>> {
    let supported = match session.kind {
        StreamKind::PortForward => SPDY_PORT_FORWARD_PROTOCOLS,
        StreamKind::Exec | StreamKind::Attach => SPDY_EXEC_PROTOCOLS,
    };
    let offered = header_values(req.headers(), "x-stream-protocol-version");
    let chosen = if offered.is_empty() {
        None
    } else {
        match offered.iter().find(|p| supported.contains(&p.as_str())) {
            Some(p) => Some(p.clone()),
            None => {
                return status_response(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    &format!(
                        "unable to upgrade connection: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
                    ),
                );
            }
        }
    };
    let version = match spdy_protocol(session.kind, chosen.as_deref()) {
        Some(Protocol::SpdyExec { version }) => version,
        _ => 4,
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), session, version).await,
            Err(e) => tracing::debug!(error = %e, "SPDY upgrade failed"),
        }
    });

    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Some(v) = chosen.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("x-stream-protocol-version", v);
    }
    resp
}

/// Runs a SPDY session for `session` on `io` (protocol `version`: 1–4 for exec/attach).
pub(super) async fn run<S>(io: S, session: Session, version: u8)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_frames(rd, frames_tx));
    let mut conn = Conn {
        wr,
        enc: Encoder::new(),
        buf: BytesMut::new(),
        last_stream: 0,
    };
    let result = match session.kind {
        StreamKind::PortForward => port_forward(&mut conn, &mut frames).await,
        StreamKind::Exec | StreamKind::Attach => {
            exec(&mut conn, &mut frames, &session, version).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "SPDY session ended with an error");
    }
    let goaway = Frame::GoAway {
        last_good_stream_id: conn.last_stream,
        status: 0,
    };
    let _ = conn.send(&goaway).await;
    let _ = conn.wr.shutdown().await;
    reader.abort();
}

/// Decodes frames off the connection until it closes or a framing error occurs.
async fn read_frames<R: AsyncRead>(
    mut rd: tokio::io::ReadHalf<R>,
    tx: mpsc::UnboundedSender<Result<Frame, FrameError>>,
) {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if tx.send(Ok(frame)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The writing side of a connection (the header compression context lives here).
struct Conn<W> {
    wr: W,
    enc: Encoder,
    buf: BytesMut,
    last_stream: u32,
}

impl<W: AsyncWrite + Unpin> Conn<W> {
    async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.buf.clear();
        self.enc
            .encode(frame, &mut self.buf)
            .map_err(io::Error::other)?;
        self.wr.write_all(&self.buf).await?;
        self.wr.flush().await
    }

    async fn reply(&mut self, stream_id: u32) -> io::Result<()> {
        self.last_stream = self.last_stream.max(stream_id);
        self.send(&Frame::SynReply {
            stream_id,
            fin: false,
            headers: Vec::new(),
        })
        .await
    }

    async fn data(&mut self, stream_id: u32, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            self.send(&Frame::Data {
                stream_id,
                fin: false,
                data: Bytes::copy_from_slice(chunk),
            })
            .await?;
        }
        Ok(())
    }

    async fn fin(&mut self, stream_id: u32) -> io::Result<()> {
        self.send(&Frame::Data {
            stream_id,
            fin: true,
            data: Bytes::new(),
        })
        .await
    }
}

type Frames = mpsc::UnboundedReceiver<Result<Frame, FrameError>>;

/// Stream ids of an exec/attach session, by `streamType`.
#[derive(Debug, Default)]
struct ExecStreams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl ExecStreams {
    fn complete(&self, s: &Session, version: u8) -> bool {
        self.error.is_some()
            && (!s.stdin || self.stdin.is_some())
            && (!s.stdout || self.stdout.is_some())
            && (!s.stderr || self.stderr.is_some())
            && (!(s.tty && version >= 3) || self.resize.is_some())
    }
}

async fn next_output(proc: &mut Option<ProcessHandle>) -> Option<Output> {
    match proc {
        Some(p) => p.output.recv().await,
        None => std::future::pending().await,
    }
}

async fn exec<W: AsyncWrite + Unpin>(
    conn: &mut Conn<W>,
    frames: &mut Frames,
    session: &Session,
    version: u8,
) -> io::Result<()> {
    let mut ids = ExecStreams::default();
    let mut proc: Option<ProcessHandle> = None;
    let mut resize = ResizeParser::default();
    // Stdin that arrives before every stream exists (not expected from client-go, but legal).
    let mut early_stdin: Vec<u8> = Vec::new();
    let mut early_stdin_closed = false;
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            frame = frames.recv() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    None => return Ok(()),
                };
                match frame {
                    Frame::SynStream { stream_id, headers, .. } => {
                        conn.reply(stream_id).await?;
                        let slot = match StreamType::from_headers(&headers) {
                            Some(StreamType::Error) => &mut ids.error,
                            Some(StreamType::Stdin) => &mut ids.stdin,
                            Some(StreamType::Stdout) => &mut ids.stdout,
                            Some(StreamType::Stderr) => &mut ids.stderr,
                            Some(StreamType::Resize) => &mut ids.resize,
                            _ => {
                                conn.send(&Frame::RstStream { stream_id, status: RST_PROTOCOL_ERROR }).await?;
                                continue;
                            }
                        };
                        *slot = Some(stream_id);
                        if proc.is_none() && ids.complete(session, version) {
                            let mut p = runtime::spawn(session.process_spec());
                            p.write_stdin(&early_stdin);
                            if early_stdin_closed {
                                p.stdin = None;
                            }
                            proc = Some(p);
                        }
                    }
                    Frame::Data { stream_id, fin, data } => {
                        if Some(stream_id) == ids.stdin {
                            match &mut proc {
                                Some(p) => {
                                    p.write_stdin(&data);
                                    if fin {
                                        p.stdin = None;
                                    }
                                }
                                None => {
                                    early_stdin.extend_from_slice(&data);
                                    early_stdin_closed |= fin;
                                }
                            }
                        } else if Some(stream_id) == ids.resize {
                            for size in resize.push(&data) {
                                if let Some(p) = &proc {
                                    p.resize.send_replace(Some(size));
                                }
                            }
                        }
                    }
                    Frame::RstStream { stream_id, .. } if Some(stream_id) == ids.stdin => {
                        if let Some(p) = &mut proc {
                            p.stdin = None;
                        }
                        early_stdin_closed = true;
                    }
                    Frame::Ping { id } => conn.send(&Frame::Ping { id }).await?,
                    Frame::GoAway { .. } => return Ok(()),
                    _ => {}
                }
            }
            out = next_output(&mut proc) => match out {
                Some(Output::Stdout(b)) => {
                    if let Some(id) = ids.stdout {
                        conn.data(id, &b).await?;
                    }
                }
                Some(Output::Stderr(b)) => {
                    if let Some(id) = ids.stderr {
                        conn.data(id, &b).await?;
                    }
                }
                None => break,
            },
            _ = &mut deadline, if proc.is_none() => {
                if let Some(id) = ids.error {
                    let msg = super::status_json("InternalError", "timed out waiting for client to create streams", 500);
                    conn.data(id, msg.to_string().as_bytes()).await?;
                    conn.fin(id).await?;
                }
                return Ok(());
            }
        }
    }

    let code = match &mut proc {
        Some(p) => p.wait().await,
        None => 0,
    };
    for id in [ids.stdout, ids.stderr].into_iter().flatten() {
        conn.fin(id).await?;
    }
    if let Some(id) = ids.error {
        if let Some(status) = session.exit_status(version, code) {
            conn.data(id, status.as_bytes()).await?;
        }
        conn.fin(id).await?;
    }
    for id in [ids.stdin, ids.resize].into_iter().flatten() {
        conn.fin(id).await?;
    }
    linger(conn, frames).await
}

/// After a session finished: keeps answering pings until the client hangs up (or `LINGER`).
async fn linger<W: AsyncWrite + Unpin>(conn: &mut Conn<W>, frames: &mut Frames) -> io::Result<()> {
    let deadline = tokio::time::sleep(LINGER);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(Frame::Ping { id })) => conn.send(&Frame::Ping { id }).await?,
                Some(Ok(Frame::GoAway { .. })) | Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = &mut deadline => return Ok(()),
        }
    }
}

/// Port-forward: every data stream is an echo server.
async fn port_forward<W: AsyncWrite + Unpin>(
    conn: &mut Conn<W>,
    frames: &mut Frames,
) -> io::Result<()> {
    // data stream id -> request id
    let mut data_streams: HashMap<u32, String> = HashMap::new();
    // request id -> error stream id
    let mut error_streams: HashMap<String, u32> = HashMap::new();
    // requests whose data stream already finished before their error stream showed up
    let mut finished: HashSet<String> = HashSet::new();

    while let Some(frame) = frames.recv().await {
        match frame.map_err(io::Error::other)? {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                conn.reply(stream_id).await?;
                let port = header(&headers, "port").unwrap_or_default();
                // Old clients send no requestID; pair their streams by port.
                let request = header(&headers, "requestid").unwrap_or(port).to_string();
                let port_ok = matches!(port.parse::<u16>(), Ok(p) if p > 0);
                match StreamType::from_headers(&headers) {
                    Some(StreamType::Error) => {
                        if !port_ok {
                            let msg = format!("invalid port {port:?} in port-forward request");
                            conn.data(stream_id, msg.as_bytes()).await?;
                            conn.fin(stream_id).await?;
                        } else if finished.remove(&request) {
                            conn.fin(stream_id).await?;
                        } else {
                            error_streams.insert(request, stream_id);
                        }
                    }
                    Some(StreamType::Data) if port_ok => {
                        data_streams.insert(stream_id, request);
                    }
                    _ => {
                        conn.send(&Frame::RstStream {
                            stream_id,
                            status: RST_PROTOCOL_ERROR,
                        })
                        .await?;
                    }
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if !data_streams.contains_key(&stream_id) {
                    continue;
                }
                if !data.is_empty() {
                    conn.data(stream_id, &data).await?;
                }
                if fin {
                    conn.fin(stream_id).await?;
                    if let Some(request) = data_streams.remove(&stream_id) {
                        finish_request(conn, &mut error_streams, &mut finished, request).await?;
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(request) = data_streams.remove(&stream_id) {
                    finish_request(conn, &mut error_streams, &mut finished, request).await?;
                }
            }
            Frame::Ping { id } => conn.send(&Frame::Ping { id }).await?,
            Frame::GoAway { .. } => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

async fn finish_request<W: AsyncWrite + Unpin>(
    conn: &mut Conn<W>,
    error_streams: &mut HashMap<String, u32>,
    finished: &mut HashSet<String>,
    request: String,
) -> io::Result<()> {
    match error_streams.remove(&request) {
        Some(id) => conn.fin(id).await,
        None => {
            finished.insert(request);
            Ok(())
        }
    }
}
