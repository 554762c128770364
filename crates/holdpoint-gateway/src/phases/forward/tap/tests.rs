//! The tap between a fake caller and a fake upstream on in-memory connections, frame by frame:
//! what the caller receives, what the upstream receives, what is recorded, and what is refused.
//! (End to end with kubectl and the emulator: `crates/holdpoint/tests/e2e_streams.rs`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use holdpoint_mask::{MaskConfig, TextMasker};
use http::{HeaderMap, HeaderValue, Method};
use kube_streams::spdy::{Decoder, Encoder, Frame};
use kube_streams::{Protocol, StreamKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::*;
use crate::phases::record::{StreamEvent, StreamRecorder};

const SECRET: &str = "hunter2-Pr0d-DB-pa55";

fn masker() -> Arc<TextMasker> {
    Arc::new(TextMasker::new(&MaskConfig::default()).unwrap())
}

/// Collects the recorded events.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<StreamEvent>>>);

impl StreamRecorder for Collect {
    fn event(&mut self, event: StreamEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    /// The events with their times zeroed (times are checked separately).
    fn events(&self) -> Vec<StreamEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(|e| match e {
                StreamEvent::Stdin { data, .. } => StreamEvent::Stdin {
                    at: Duration::ZERO,
                    data,
                },
                StreamEvent::Stdout { data, .. } => StreamEvent::Stdout {
                    at: Duration::ZERO,
                    data,
                },
                StreamEvent::Stderr { data, .. } => StreamEvent::Stderr {
                    at: Duration::ZERO,
                    data,
                },
                StreamEvent::Resize { width, height, .. } => StreamEvent::Resize {
                    at: Duration::ZERO,
                    width,
                    height,
                },
                StreamEvent::PortForward {
                    port,
                    to_upstream,
                    to_client,
                    ..
                } => StreamEvent::PortForward {
                    at: Duration::ZERO,
                    port,
                    to_upstream,
                    to_client,
                },
                StreamEvent::Closed { status, .. } => StreamEvent::Closed {
                    at: Duration::ZERO,
                    status,
                },
            })
            .collect()
    }
}

struct Tap {
    client: DuplexStream,
    upstream: DuplexStream,
    events: Collect,
    task: JoinHandle<()>,
}

fn start(kind: StreamKind, protocol: Protocol, tty: bool, ports: &[u16]) -> Tap {
    let (client, gw_client) = tokio::io::duplex(256 << 10);
    let (gw_upstream, upstream) = tokio::io::duplex(256 << 10);
    let events = Collect::default();
    let plan = TapPlan {
        kind,
        protocol,
        tty,
        ports: ports.to_vec(),
    };
    let rec = Recording::new(Some(Box::new(events.clone())));
    let task = tokio::spawn(run(plan, gw_client, gw_upstream, Some(masker()), rec));
    Tap {
        client,
        upstream,
        events,
        task,
    }
}

type Ws = WebSocketStream<DuplexStream>;

async fn websockets(tap: Tap) -> (Ws, Ws, Collect, JoinHandle<()>) {
    let client = WebSocketStream::from_raw_socket(tap.client, Role::Client, None).await;
    let upstream = WebSocketStream::from_raw_socket(tap.upstream, Role::Server, None).await;
    (client, upstream, tap.events, tap.task)
}

/// The next message other than a ping or pong.
async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .expect("no websocket error");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

fn bin(channel: u8, data: &[u8]) -> Message {
    let mut v = vec![channel];
    v.extend_from_slice(data);
    Message::binary(v)
}

fn b64(channel: u8, data: &[u8]) -> Message {
    Message::text(format!(
        "{channel}{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    ))
}

fn close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

async fn done(task: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the tap ends")
        .unwrap();
}

const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

#[tokio::test(start_paused = true)]
async fn websocket_v5_output_is_masked_across_messages_and_everything_is_recorded() {
    let tap = start(
        StreamKind::Exec,
        Protocol::Channel {
            version: 5,
            base64: false,
        },
        false,
        &[],
    );
    let (mut client, mut upstream, events, task) = websockets(tap).await;

    upstream.send(bin(1, b"")).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        bin(1, b""),
        "the readiness signal passes"
    );
    client
        .send(bin(4, br#"{"Width":80,"Height":24}"#))
        .await
        .unwrap();
    client.send(bin(0, b"typed\n")).await.unwrap();
    client.send(Message::binary(vec![255, 0])).await.unwrap();
    assert_eq!(
        next(&mut upstream).await,
        bin(4, br#"{"Width":80,"Height":24}"#)
    );
    assert_eq!(next(&mut upstream).await, bin(0, b"typed\n"));
    assert_eq!(next(&mut upstream).await, Message::binary(vec![255, 0]));

    // the secret is split across two messages
    upstream
        .send(bin(1, b"DATABASE_PASSWORD=hunt"))
        .await
        .unwrap();
    upstream
        .send(bin(1, b"er2-Pr0d-DB-pa55\nhello\n"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        bin(1, b"DATABASE_PASSWORD=[MASKED]\nhello\n")
    );
    upstream
        .send(bin(2, b"warn: token=Zx9-Qw8-Er7-Ty6\n"))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, bin(2, b"warn: token=[MASKED]\n"));
    // a line without an end waits, and comes out before the exit status
    upstream.send(bin(1, b"no newline")).await.unwrap();
    upstream.send(bin(3, SUCCESS.as_bytes())).await.unwrap();
    assert_eq!(next(&mut client).await, bin(1, b"no newline"));
    assert_eq!(next(&mut client).await, bin(3, SUCCESS.as_bytes()));
    upstream.send(close()).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    let _ = client.close(None).await;
    done(task).await;

    assert_eq!(
        events.events(),
        [
            StreamEvent::Resize {
                at: Duration::ZERO,
                width: 80,
                height: 24
            },
            StreamEvent::Stdin {
                at: Duration::ZERO,
                data: Bytes::from_static(b"typed\n")
            },
            StreamEvent::Stdout {
                at: Duration::ZERO,
                data: Bytes::from_static(b"DATABASE_PASSWORD=[MASKED]\nhello\n")
            },
            StreamEvent::Stderr {
                at: Duration::ZERO,
                data: Bytes::from_static(b"warn: token=[MASKED]\n")
            },
            StreamEvent::Stdout {
                at: Duration::ZERO,
                data: Bytes::from_static(b"no newline")
            },
            StreamEvent::Closed {
                at: Duration::ZERO,
                status: Some(SUCCESS.into())
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn base64_channels_are_decoded_masked_and_reencoded_and_garbage_is_dropped() {
    let tap = start(
        StreamKind::Exec,
        Protocol::Channel {
            version: 4,
            base64: true,
        },
        false,
        &[],
    );
    let (mut client, mut upstream, _, task) = websockets(tap).await;
    let line = format!("DATABASE_PASSWORD={SECRET}\n");
    upstream.send(Message::text("1!!not base64")).await.unwrap();
    upstream.send(bin(1, line.as_bytes())).await.unwrap(); // binary on a base64 protocol
    upstream.send(b64(7, line.as_bytes())).await.unwrap(); // not an output channel
    upstream.send(b64(1, line.as_bytes())).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        b64(1, b"DATABASE_PASSWORD=[MASKED]\n")
    );
    upstream.send(close()).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    let _ = client.close(None).await;
    done(task).await;
}

#[tokio::test(start_paused = true)]
async fn fragmented_websocket_messages_are_reassembled_before_masking() {
    let tap = start(
        StreamKind::Attach,
        Protocol::Channel {
            version: 5,
            base64: false,
        },
        false,
        &[],
    );
    let (mut client, mut upstream, _, task) = websockets(tap).await;
    let first = WsFrame::message(
        b"\x01DATABASE_PASSWORD=hun".to_vec(),
        OpCode::Data(Data::Binary),
        false,
    );
    let rest = WsFrame::message(
        b"ter2-Pr0d-DB-pa55\n".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    );
    upstream.send(Message::Frame(first)).await.unwrap();
    upstream.send(Message::Frame(rest)).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        bin(1, b"DATABASE_PASSWORD=[MASKED]\n")
    );
    upstream.send(close()).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    let _ = client.close(None).await;
    done(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_terminal_sees_prompts_and_echo_soon_and_a_credential_typed_in_pieces_is_still_masked() {
    let tap = start(
        StreamKind::Exec,
        Protocol::Channel {
            version: 5,
            base64: false,
        },
        true,
        &[],
    );
    let (mut client, mut upstream, _, task) = websockets(tap).await;
    let t0 = tokio::time::Instant::now();
    upstream.send(bin(1, b"$ ")).await.unwrap();
    assert_eq!(next(&mut client).await, bin(1, b"$ "));
    assert_eq!(
        t0.elapsed(),
        TTY_FLUSH_AFTER,
        "a prompt waits exactly the terminal flush delay"
    );
    upstream.send(bin(1, b"passw")).await.unwrap();
    assert_eq!(next(&mut client).await, bin(1, b"passw"));
    upstream
        .send(bin(1, b"ord=s3cr3t-Value-XYZ\r\n"))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, bin(1, b"ord=[MASKED]\r\n"));
    upstream.send(close()).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    let _ = client.close(None).await;
    done(task).await;
}

#[tokio::test(start_paused = true)]
async fn websocket_port_forward_passes_data_unchanged_and_counts_it() {
    let tap = start(
        StreamKind::PortForward,
        Protocol::PortForwardChannel { base64: false },
        false,
        &[8080],
    );
    let (mut client, mut upstream, events, task) = websockets(tap).await;
    upstream.send(bin(0, &[0x90, 0x1f])).await.unwrap();
    upstream.send(bin(1, &[0x90, 0x1f])).await.unwrap();
    assert_eq!(next(&mut client).await, bin(0, &[0x90, 0x1f]));
    assert_eq!(next(&mut client).await, bin(1, &[0x90, 0x1f]));
    let data = format!("password={SECRET}\n");
    client.send(bin(0, data.as_bytes())).await.unwrap();
    assert_eq!(
        next(&mut upstream).await,
        bin(0, data.as_bytes()),
        "not masked: it is TCP"
    );
    upstream.send(bin(0, b"pong")).await.unwrap();
    assert_eq!(next(&mut client).await, bin(0, b"pong"));
    client.send(close()).await.unwrap();
    assert!(matches!(next(&mut upstream).await, Message::Close(_)));
    let _ = upstream.close(None).await;
    done(task).await;
    assert_eq!(
        events.events(),
        [
            StreamEvent::PortForward {
                at: Duration::ZERO,
                port: 8080,
                to_upstream: data.len() as u64,
                to_client: 4
            },
            StreamEvent::Closed {
                at: Duration::ZERO,
                status: None
            },
        ]
    );
}

/// One side of a SPDY connection: its own compression contexts.
struct Spdy {
    io: DuplexStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl Spdy {
    fn new(io: DuplexStream) -> Self {
        Self {
            io,
            enc: Encoder::new(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut wire = BytesMut::new();
        for f in frames {
            self.enc.encode(f, &mut wire).unwrap();
        }
        self.io.write_all(&wire).await.unwrap();
    }

    /// The next frame, or `None` at the end of the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).expect("valid SPDY") {
                return Some(f);
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                .await
                .expect("a frame in time")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }

    /// The payload of `stream_id` up to its `FLAG_FIN` (other frames are checked by `other`).
    async fn read_stream(&mut self, stream_id: u32) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            match self.next().await.expect("the stream's end") {
                Frame::Data {
                    stream_id: id,
                    fin,
                    data: d,
                } if id == stream_id => {
                    data.extend_from_slice(&d);
                    if fin {
                        return data;
                    }
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }
}

fn syn(stream_id: u32, headers: &[(&str, &str)]) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn reply(stream_id: u32) -> Frame {
    Frame::SynReply {
        stream_id,
        fin: false,
        headers: vec![("x-reply".into(), format!("for {stream_id}"))],
    }
}

fn data(stream_id: u32, fin: bool, bytes: &[u8]) -> Frame {
    Frame::Data {
        stream_id,
        fin,
        data: Bytes::copy_from_slice(bytes),
    }
}

#[tokio::test(start_paused = true)]
async fn spdy_exec_headers_pass_byte_exact_and_output_is_masked_and_reframed() {
    let tap = start(
        StreamKind::Exec,
        Protocol::SpdyExec { version: 4 },
        false,
        &[],
    );
    let events = tap.events.clone();
    let (mut client, mut upstream) = (Spdy::new(tap.client), Spdy::new(tap.upstream));
    let opened = [
        syn(1, &[("streamtype", "error")]),
        syn(3, &[("streamtype", "stdout")]),
        syn(5, &[("streamtype", "stderr")]),
        syn(7, &[("streamtype", "stdin")]),
    ];
    client.send(&opened).await;
    // the upstream decodes the caller's header blocks: the zlib context passed intact
    for f in &opened {
        assert_eq!(upstream.next().await.as_ref(), Some(f));
    }
    let replies = [reply(1), reply(3), reply(5), reply(7)];
    upstream.send(&replies).await;
    for f in &replies {
        assert_eq!(client.next().await.as_ref(), Some(f));
    }
    client.send(&[data(7, true, b"typed\n")]).await;
    assert_eq!(upstream.next().await, Some(data(7, true, b"typed\n")));

    // the secret split across two frames, then the rest of stdout with FIN
    upstream
        .send(&[data(3, false, b"DATABASE_PASSWORD=hun")])
        .await;
    upstream
        .send(&[data(3, true, b"ter2-Pr0d-DB-pa55\nbye")])
        .await;
    assert_eq!(
        client.read_stream(3).await,
        b"DATABASE_PASSWORD=[MASKED]\nbye"
    );
    // stdin should carry nothing toward the caller: the payload is dropped, FIN kept
    upstream.send(&[data(7, true, SECRET.as_bytes())]).await;
    assert_eq!(client.next().await, Some(data(7, true, b"")));
    // no SYN_STREAM: unknown stream, dropped
    upstream
        .send(&[data(9, false, SECRET.as_bytes()), Frame::Ping { id: 2 }])
        .await;
    assert_eq!(client.next().await, Some(Frame::Ping { id: 2 }));
    let status = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
    upstream
        .send(&[data(1, false, status.as_bytes()), data(1, true, b"")])
        .await;
    assert_eq!(client.read_stream(1).await, status.as_bytes());
    upstream
        .send(&[Frame::GoAway {
            last_good_stream_id: 7,
            status: 0,
        }])
        .await;
    assert_eq!(
        client.next().await,
        Some(Frame::GoAway {
            last_good_stream_id: 7,
            status: 0
        })
    );
    drop(upstream);
    assert_eq!(
        client.next().await,
        None,
        "the caller's connection ends with the upstream's"
    );
    drop(client);
    done(tap.task).await;
    assert_eq!(
        events.events(),
        [
            StreamEvent::Stdin {
                at: Duration::ZERO,
                data: Bytes::from_static(b"typed\n")
            },
            StreamEvent::Stdout {
                at: Duration::ZERO,
                data: Bytes::from_static(b"DATABASE_PASSWORD=[MASKED]\n")
            },
            StreamEvent::Stdout {
                at: Duration::ZERO,
                data: Bytes::from_static(b"bye")
            },
            StreamEvent::Closed {
                at: Duration::ZERO,
                status: Some(status.into())
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn spdy_port_forward_passes_data_unchanged_and_records_each_connection() {
    let tap = start(
        StreamKind::PortForward,
        Protocol::SpdyPortForward,
        false,
        &[],
    );
    let events = tap.events.clone();
    let (mut client, mut upstream) = (Spdy::new(tap.client), Spdy::new(tap.upstream));
    let request = [("port", "8080"), ("requestid", "0")];
    client
        .send(&[
            syn(1, &[("streamtype", "error"), request[0], request[1]]),
            syn(3, &[("streamtype", "data"), request[0], request[1]]),
        ])
        .await;
    upstream.next().await;
    upstream.next().await;
    upstream.send(&[reply(1), reply(3)]).await;
    client.next().await;
    client.next().await;
    let payload = format!("GET /?password={SECRET} HTTP/1.0\r\n\r\n");
    client.send(&[data(3, true, payload.as_bytes())]).await;
    assert_eq!(
        upstream.next().await,
        Some(data(3, true, payload.as_bytes()))
    );
    upstream
        .send(&[data(3, true, payload.as_bytes()), data(1, true, b"")])
        .await;
    assert_eq!(
        client.read_stream(3).await,
        payload.as_bytes(),
        "TCP data is not masked"
    );
    assert_eq!(client.next().await, Some(data(1, true, b"")));
    drop(client);
    drop(upstream);
    done(tap.task).await;
    let n = payload.len() as u64;
    assert_eq!(
        events.events(),
        [
            StreamEvent::PortForward {
                at: Duration::ZERO,
                port: 8080,
                to_upstream: n,
                to_client: n
            },
            StreamEvent::Closed {
                at: Duration::ZERO,
                status: None
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn spdy_tunnelled_in_websocket_is_relayed_unchanged_and_counted_and_garbage_cuts_it() {
    let tap = start(StreamKind::PortForward, Protocol::SpdyTunnel, false, &[]);
    let (mut client, mut upstream, events, task) = websockets(tap).await;
    let mut enc = Encoder::new();
    let mut wire = BytesMut::new();
    enc.encode(
        &syn(3, &[("streamtype", "data"), ("port", "5432")]),
        &mut wire,
    )
    .unwrap();
    enc.encode(&data(3, true, b"0123456789"), &mut wire)
        .unwrap();
    // frames split at odd places across messages
    let (a, b) = wire.split_at(13);
    client.send(Message::binary(a.to_vec())).await.unwrap();
    client.send(Message::binary(b.to_vec())).await.unwrap();
    assert_eq!(next(&mut upstream).await, Message::binary(a.to_vec()));
    assert_eq!(next(&mut upstream).await, Message::binary(b.to_vec()));
    let mut back = BytesMut::new();
    Encoder::new()
        .encode(&data(3, true, b"abc"), &mut back)
        .unwrap();
    upstream.send(Message::binary(back.to_vec())).await.unwrap();
    assert_eq!(next(&mut client).await, Message::binary(back.to_vec()));
    // not SPDY: the tunnel is cut
    client
        .send(Message::binary(vec![0x80, 9, 0, 1, 0, 0, 0, 0]))
        .await
        .unwrap();
    done(task).await;
    assert!(matches!(
        client.next().await,
        None | Some(Err(_)) | Some(Ok(Message::Close(_)))
    ));
    assert_eq!(
        events.events(),
        [
            StreamEvent::PortForward {
                at: Duration::ZERO,
                port: 5432,
                to_upstream: 10,
                to_client: 3
            },
            StreamEvent::Closed {
                at: Duration::ZERO,
                status: None
            },
        ]
    );
}

fn exchange(target: &str) -> Exchange {
    Exchange::for_test(Method::GET, target)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn the_plan_follows_the_upstreams_answer_and_refuses_what_it_cannot_read() {
    let exec = exchange("/api/v1/namespaces/demo/pods/web-0/exec?command=sh&stdin=true&tty=true");
    let ws = |proto: &str| headers(&[("upgrade", "websocket"), ("sec-websocket-protocol", proto)]);
    let p = plan(&exec, &ws("v5.channel.k8s.io")).unwrap();
    assert_eq!(
        (p.kind, p.protocol, p.tty),
        (
            StreamKind::Exec,
            Protocol::Channel {
                version: 5,
                base64: false
            },
            true
        )
    );
    let spdy = headers(&[
        ("upgrade", "SPDY/3.1"),
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
    ]);
    assert_eq!(
        plan(&exec, &spdy).unwrap().protocol,
        Protocol::SpdyExec { version: 4 }
    );

    let pf = exchange("/api/v1/namespaces/demo/pods/web-0/portforward?ports=8080,9090&ports=53");
    let p = plan(&pf, &ws("SPDY/3.1+portforward.k8s.io")).unwrap();
    assert_eq!(
        (p.protocol, p.ports),
        (Protocol::SpdyTunnel, vec![8080, 9090, 53])
    );

    for (ex, upstream) in [
        (&exec, ws("v6.channel.k8s.io")),
        (&exec, ws("SPDY/3.1+portforward.k8s.io")),
        (&pf, ws("v5.channel.k8s.io")),
        (
            &exec,
            headers(&[
                ("upgrade", "websocket"),
                ("sec-websocket-protocol", "v5.channel.k8s.io"),
                ("sec-websocket-extensions", "permessage-deflate"),
            ]),
        ),
        (
            &exec,
            headers(&[
                ("upgrade", "SPDY/3.1"),
                ("x-stream-protocol-version", "v9.channel.k8s.io"),
            ]),
        ),
        (&exec, headers(&[("upgrade", "h2c")])),
        (
            &exchange("/api/v1/namespaces/demo/pods/web-0/log"),
            ws("v5.channel.k8s.io"),
        ),
    ] {
        let err = plan(ex, &upstream).expect_err("refused");
        assert!(
            matches!(err, GatewayError::StreamNotInspectable(_)),
            "{err}"
        );
        assert_eq!(err.status_code(), http::StatusCode::BAD_GATEWAY);
    }
}
