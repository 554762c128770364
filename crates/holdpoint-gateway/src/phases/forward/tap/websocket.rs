//! The tap over WebSocket. The gateway is the WebSocket server of the caller's connection and
//! the client of the upstream's (the upstream already accepted the caller's handshake key, so
//! its `101` is valid for the caller); messages are relayed one at a time, whole (fragmented
//! messages are reassembled, within [`MAX_WS_MESSAGE`](super::MAX_WS_MESSAGE)).
//!
//! - Exec/attach channels: caller messages pass unchanged (stdin and resize are recorded);
//!   upstream stdout, stderr and error messages are decoded (base64 too), masked and re-encoded
//!   on the same channel; messages on other channels, or that do not decode, are dropped.
//! - Port-forward channels: everything passes unchanged; data bytes are counted per port.
//! - SPDY tunnelled in binary messages: everything passes unchanged; the SPDY byte stream of
//!   each direction is parsed to count each port-forward connection's bytes.
//!
//! Pings and pongs are relayed; tungstenite also answers pings itself. A close from either side is
//! relayed to the other.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use kube_streams::channel::{self, ERROR, RESIZE, STDERR, STDIN, STDOUT, WireMessage};
use kube_streams::{Protocol, ResizeParser};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::spdy::{Observer, Streams};
use super::{Ending, Masking, Output, Outputs, Recording, TapPlan, both_directions};

pub(super) async fn relay<C, U>(
    client: C,
    upstream: U,
    plan: &TapPlan,
    masking: &Masking,
    rec: &Recording,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(super::MAX_WS_MESSAGE))
        .max_frame_size(Some(super::MAX_WS_MESSAGE));
    let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
    let upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, Some(config)).await;
    let (to_client, from_client) = client.split();
    let (to_upstream, from_upstream) = upstream.split();
    match plan.protocol {
        Protocol::Channel { base64, .. } => {
            both_directions(
                exec_from_client(from_client, to_upstream, base64, rec),
                exec_from_upstream(from_upstream, to_client, base64, masking, rec),
            )
            .await
        }
        Protocol::PortForwardChannel { base64 } => {
            let counts = Arc::new(Mutex::new(PortCounts::new(&plan.ports)));
            both_directions(
                port_forward(from_client, to_upstream, base64, &counts, true),
                port_forward(from_upstream, to_client, base64, &counts, false),
            )
            .await;
            let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            for (i, port) in counts.ports.iter().enumerate() {
                rec.port_forward(*port, counts.to_upstream[i], counts.to_client[i]);
            }
        }
        Protocol::SpdyTunnel => {
            let forwards = Arc::new(Mutex::new(Streams::default()));
            both_directions(
                spdy_tunnel(from_client, to_upstream, &forwards, rec, true),
                spdy_tunnel(from_upstream, to_client, &forwards, rec, false),
            )
            .await;
            forwards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(rec);
        }
        // plan() sends plain SPDY to the SPDY relay
        Protocol::SpdyExec { .. } | Protocol::SpdyPortForward => {}
    }
}

/// The channel and payload of a data message (`None` for control messages and anything that
/// does not decode).
fn decode(base64: bool, msg: &Message) -> Option<(u8, Bytes)> {
    let (text, payload) = match msg {
        Message::Binary(b) => (false, b.clone()),
        Message::Text(t) => (true, Bytes::from(t.clone())),
        _ => return None,
    };
    channel::decode(base64, text, payload).ok()
}

fn encode(base64: bool, channel: u8, data: &[u8]) -> Message {
    match channel::encode(base64, channel, data) {
        WireMessage::Binary(b) => Message::Binary(b),
        WireMessage::Text(t) => Message::text(t),
    }
}

/// Relays messages unchanged until a close, showing each to `observe` first; `observe`
/// returning `false` cuts the stream.
async fn relay_unchanged<S, K>(
    mut from: S,
    mut to: K,
    mut observe: impl FnMut(&Message) -> bool,
) -> Ending
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    while let Some(Ok(msg)) = from.next().await {
        if !observe(&msg) {
            return Ending::Abort;
        }
        let close = matches!(msg, Message::Close(_));
        if to.send(msg).await.is_err() || close {
            return Ending::Done;
        }
    }
    let _ = to.close().await;
    Ending::Done
}

/// Exec/attach, caller to upstream: relayed unchanged; stdin and resize recorded.
async fn exec_from_client<S, K>(from: S, to: K, base64: bool, rec: &Recording) -> Ending
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    let mut resize = ResizeParser::default();
    relay_unchanged(from, to, |msg| {
        match decode(base64, msg) {
            Some((STDIN, data)) => rec.stdin(&data),
            Some((RESIZE, data)) => resize.push(&data).into_iter().for_each(|s| rec.resize(s)),
            _ => {}
        }
        true
    })
    .await
}

/// Exec/attach, upstream to caller: output channels masked.
async fn exec_from_upstream<S, K>(
    mut from: S,
    mut to: K,
    base64: bool,
    masking: &Masking,
    rec: &Recording,
) -> Ending
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    let mut outputs = Outputs::new(masking);
    let mut closing = None;
    loop {
        let flush_at = outputs.flush_at;
        let msg = tokio::select! {
            msg = from.next() => msg,
            _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                if flush_at.is_some() => {
                if !send_outputs(&mut to, base64, outputs.flush(rec)).await {
                    return Ending::Done;
                }
                continue;
            }
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(_)) | None => break,
        };
        let out = match msg {
            Message::Close(frame) => {
                closing = Some(Message::Close(frame));
                break;
            }
            Message::Ping(_) | Message::Pong(_) => msg,
            Message::Frame(_) => continue,
            Message::Binary(_) | Message::Text(_) => match decode(base64, &msg) {
                Some((channel @ (STDOUT | STDERR), data)) => {
                    let empty = data.is_empty();
                    let which = if channel == STDOUT {
                        Output::Stdout
                    } else {
                        Output::Stderr
                    };
                    let masked = outputs.push(which, data, rec);
                    // an empty message is a signal (streams ready); pass it on as one
                    if masked.is_empty() && !empty {
                        continue;
                    }
                    encode(base64, channel, &masked)
                }
                Some((ERROR, data)) => {
                    // the process is done: what stdout and stderr hold back goes first
                    let rest =
                        [Output::Stdout, Output::Stderr].map(|w| (w, outputs.finish(w, rec)));
                    if !send_outputs(&mut to, base64, rest).await {
                        return Ending::Done;
                    }
                    let mut status = outputs.push(Output::Error, data, rec).to_vec();
                    status.extend_from_slice(&outputs.finish(Output::Error, rec));
                    encode(base64, ERROR, &status)
                }
                other => {
                    tracing::debug!(
                        channel = other.map(|(c, _)| c),
                        "dropped an upstream exec message that is not output"
                    );
                    continue;
                }
            },
        };
        if to.send(out).await.is_err() {
            return Ending::Done;
        }
    }
    let rest = [Output::Stdout, Output::Stderr, Output::Error].map(|w| (w, outputs.finish(w, rec)));
    if !send_outputs(&mut to, base64, rest).await {
        return Ending::Done;
    }
    match closing {
        Some(close) => {
            let _ = to.send(close).await;
        }
        None => {
            let _ = to.close().await;
        }
    }
    Ending::Done
}

/// Sends each non-empty output on its channel; `false` when the caller is gone.
async fn send_outputs<K>(
    to: &mut K,
    base64: bool,
    outputs: impl IntoIterator<Item = (Output, Bytes)>,
) -> bool
where
    K: Sink<Message, Error = WsError> + Unpin,
{
    for (which, out) in outputs {
        if !out.is_empty()
            && to
                .send(encode(base64, channel_of(which), &out))
                .await
                .is_err()
        {
            return false;
        }
    }
    true
}

fn channel_of(which: Output) -> u8 {
    match which {
        Output::Stdout => STDOUT,
        Output::Stderr => STDERR,
        Output::Error => ERROR,
    }
}

/// Byte counts of port-forward channels, by port entry.
#[derive(Debug)]
struct PortCounts {
    ports: Vec<u16>,
    to_upstream: Vec<u64>,
    to_client: Vec<u64>,
    /// Channels whose first (port number) message the upstream has sent.
    announced: Vec<bool>,
}

impl PortCounts {
    fn new(ports: &[u16]) -> Self {
        Self {
            ports: ports.to_vec(),
            to_upstream: vec![0; ports.len()],
            to_client: vec![0; ports.len()],
            announced: vec![false; 2 * ports.len()],
        }
    }

    fn count(&mut self, channel: u8, len: usize, to_upstream: bool) {
        let (index, is_error) = channel::port_forward_channel(channel);
        if index >= self.ports.len() {
            return;
        }
        if !to_upstream && !std::mem::replace(&mut self.announced[usize::from(channel)], true) {
            return; // the port number, not data
        }
        if !is_error {
            let counts = if to_upstream {
                &mut self.to_upstream
            } else {
                &mut self.to_client
            };
            counts[index] += len as u64;
        }
    }
}

/// Port-forward channels, either direction: relayed unchanged, data bytes counted.
async fn port_forward<S, K>(
    from: S,
    to: K,
    base64: bool,
    counts: &Mutex<PortCounts>,
    to_upstream: bool,
) -> Ending
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    relay_unchanged(from, to, |msg| {
        if let Some((channel, data)) = decode(base64, msg) {
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            counts.count(channel, data.len(), to_upstream);
        }
        true
    })
    .await
}

/// SPDY tunnelled in binary messages, either direction: relayed unchanged, the SPDY stream read
/// for port-forward accounting. A tunnel that is not valid SPDY is cut.
async fn spdy_tunnel<S, K>(
    from: S,
    to: K,
    forwards: &Mutex<Streams>,
    rec: &Recording,
    to_upstream: bool,
) -> Ending
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    let mut reader = Observer::new(to_upstream);
    relay_unchanged(from, to, |msg| match msg {
        Message::Binary(b) => {
            let mut forwards = forwards.lock().unwrap_or_else(|p| p.into_inner());
            let read = reader.feed(b, &mut forwards, rec);
            if let Err(e) = &read {
                tracing::warn!(error = %e, "SPDY tunnel is not valid SPDY; closing it");
            }
            read.is_ok()
        }
        Message::Text(_) => {
            tracing::warn!("text message in a SPDY tunnel; closing it");
            false
        }
        _ => true,
    })
    .await
}
