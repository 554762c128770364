//! WebSocket transport: answers the RFC 6455 handshake itself (so the REST core only has to hand
//! over the request), then runs one of
//!
//! - the remote-command channel protocols for exec/attach: `v5.channel.k8s.io` (v4 plus the
//!   CLOSE signal on channel 255), `v4.channel.k8s.io` (JSON `Status` on the error channel),
//!   `v4.base64.channel.k8s.io`, and the legacy `channel.k8s.io`/`base64.channel.k8s.io`
//!   (plain-text errors). Every binary message starts with the channel byte: 0 stdin, 1 stdout,
//!   2 stderr, 3 error/status, 4 resize; base64 protocols use text messages with an ASCII digit;
//! - port-forward channels (`portforward.k8s.io`, `v4.channel.k8s.io`): for the i-th `ports`
//!   entry, channel 2i carries data and 2i+1 errors; each channel first receives the port number
//!   (little-endian u16); data is echoed back;
//! - SPDY/3.1 tunnelled over WebSocket (`SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+ uses
//!   for port-forward by default): binary messages carry the raw SPDY byte stream.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kube_streams::channel::{self, CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, WireMessage};
use kube_streams::{Protocol, ResizeParser, websocket_protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::runtime::{self, Output};
use super::{Session, header_values, spdy_session, status_response};

/// Whether `headers` ask for a WebSocket upgrade.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_values(headers, "upgrade")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the handshake and spawns the session on the upgraded connection.
pub(super) fn accept(mut req: Request<Incoming>, session: Session) -> Response<Full<Bytes>> {
    let bad = |msg: &str| status_response(StatusCode::BAD_REQUEST, "BadRequest", msg);
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return bad("missing Sec-WebSocket-Key header");
    };
    if header_values(req.headers(), "sec-websocket-version")
        .first()
        .map(String::as_str)
        != Some("13")
    {
        return bad("unsupported Sec-WebSocket-Version (want 13)");
    }
    let offered = header_values(req.headers(), "sec-websocket-protocol");
    let (name, protocol) = if offered.is_empty() {
        // No subprotocol requested: the legacy unversioned protocol.
        match websocket_protocol(session.kind, None) {
            Some(p) => (None, p),
            None => return bad("no WebSocket subprotocol"),
        }
    } else {
        match offered
            .iter()
            .find_map(|o| websocket_protocol(session.kind, Some(o)).map(|p| (o.clone(), p)))
        {
            Some((n, p)) => (Some(n), p),
            None => {
                return bad(&format!(
                    "unable to upgrade connection: requested WebSocket subprotocols {offered:?} are not supported"
                ));
            }
        }
    };
    if matches!(protocol, Protocol::PortForwardChannel { .. }) && session.ports.is_empty() {
        return bad("query parameter \"ports\" is required for port-forward over WebSocket");
    }

    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        match protocol {
            Protocol::Channel { version, base64 } => {
                channel_session(ws, session, version, base64).await
            }
            Protocol::PortForwardChannel { base64 } => {
                port_forward_session(ws, session.ports, base64).await
            }
            Protocol::SpdyTunnel => spdy_tunnel(ws, session).await,
            // websocket_protocol never names a plain SPDY protocol
            Protocol::SpdyExec { .. } | Protocol::SpdyPortForward => {}
        }
    });

    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert("sec-websocket-accept", v);
    }
    if let Some(v) = name.and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert("sec-websocket-protocol", v);
    }
    resp
}

/// Encodes one channel message.
fn frame(base64: bool, channel: u8, data: &[u8]) -> Message {
    match channel::encode(base64, channel, data) {
        WireMessage::Binary(b) => Message::Binary(b),
        WireMessage::Text(t) => Message::text(t),
    }
}

/// Decodes one channel message into `(channel, payload)`; `None` for anything else.
fn unframe(base64: bool, msg: Message) -> Option<(u8, Bytes)> {
    let (text, payload) = match msg {
        Message::Binary(b) => (false, b),
        Message::Text(t) => (true, Bytes::from(t)),
        _ => return None,
    };
    channel::decode(base64, text, payload).ok()
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Exec/attach over the remote-command channel protocols.
async fn channel_session<S>(ws: WebSocketStream<S>, session: Session, version: u8, base64: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let mut proc = runtime::spawn(session.process_spec());
    let mut resize = ResizeParser::default();
    // Like the kubelet: an empty message on the lowest writable channel says "streams are ready".
    let first = if session.stdout {
        STDOUT
    } else if session.stderr {
        STDERR
    } else {
        ERROR
    };
    if tx.send(frame(base64, first, &[])).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // The client went away: the process is killed when `proc` drops.
                    let _ = tx.close().await;
                    return;
                }
                Some(Ok(m)) => {
                    let Some((channel, data)) = unframe(base64, m) else { continue };
                    match channel {
                        STDIN => proc.write_stdin(&data),
                        RESIZE => {
                            for size in resize.push(&data) {
                                proc.resize.send_replace(Some(size));
                            }
                        }
                        CLOSE if version >= 5 && data.first() == Some(&STDIN) => {
                            proc.stdin = None;
                        }
                        _ => {}
                    }
                }
            },
            out = proc.output.recv() => {
                let msg = match out {
                    Some(Output::Stdout(b)) if session.stdout => frame(base64, STDOUT, &b),
                    Some(Output::Stderr(b)) if session.stderr => frame(base64, STDERR, &b),
                    Some(_) => continue,
                    None => break,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
    let code = proc.wait().await;
    if let Some(status) = session.exit_status(version, code)
        && tx
            .send(frame(base64, ERROR, status.as_bytes()))
            .await
            .is_err()
    {
        return;
    }
    let _ = tx.send(normal_close()).await;
    // Wait (briefly) for the client's close reply so the closing handshake completes cleanly.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = rx.next().await {}
    })
    .await;
}

/// Port-forward over WebSocket channels: an echo server on every requested port.
async fn port_forward_session<S>(ws: WebSocketStream<S>, ports: Vec<u16>, base64: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i, 2 * i + 1] {
            if tx
                .send(frame(base64, channel as u8, &channel::port_prefix(*port)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    while let Some(Ok(msg)) = rx.next().await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
        let Some((channel, data)) = unframe(base64, msg) else {
            continue;
        };
        let (index, is_error) = channel::port_forward_channel(channel);
        let is_data_channel = !is_error && index < ports.len();
        if is_data_channel
            && !data.is_empty()
            && tx.send(frame(base64, channel, &data)).await.is_err()
        {
            return;
        }
    }
    let _ = tx.close().await;
}

/// SPDY/3.1 tunnelled over WebSocket: pumps bytes between binary messages and an in-memory pipe
/// on which the ordinary SPDY session runs.
async fn spdy_tunnel<S>(ws: WebSocketStream<S>, session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (local, remote) = tokio::io::duplex(256 * 1024);
    let spdy = tokio::spawn(spdy_session::run(remote, session, 4));
    let (mut tx, mut rx) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(local);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    let _ = tx.send(normal_close()).await;
                    break;
                }
                Ok(n) => {
                    if tx.send(Message::binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    drop(wr);
    let _ = tokio::time::timeout(Duration::from_secs(2), spdy).await;
    let _ = tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_map_to_websocket_messages() {
        assert_eq!(frame(false, ERROR, b"x"), Message::binary(vec![3, b'x']));
        assert_eq!(frame(true, STDERR, b"hi"), Message::text("2aGk="));
        assert_eq!(
            unframe(false, Message::text("\u{0}typed")),
            Some((STDIN, Bytes::from_static(b"typed")))
        );
        assert_eq!(unframe(false, Message::Ping(Bytes::new())), None);
    }
}
