//! Raw WebSocket tests of the streaming subresources: channel framing of `v5.channel.k8s.io`
//! (including the CLOSE channel), the v4 error-channel `Status`, base64 channels, tty resize
//! handling, port-forward channels, and the handshake's error responses.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use kube_emulator::{EmulatorConfig, RunningEmulator, Seed};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn emulator() -> RunningEmulator {
    kube_emulator::start(EmulatorConfig {
        seed: Seed::Demo,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

async fn tls(emu: &RunningEmulator) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// Opens a WebSocket to `path_and_query` offering `protocols`; returns the socket and the
/// negotiated subprotocol.
async fn connect(
    emu: &RunningEmulator,
    path_and_query: &str,
    protocols: &str,
) -> Result<(Ws, Option<String>), WsError> {
    let mut req = format!("wss://{}{path_and_query}", emu.addr())
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {}", emu.admin_token()).parse().unwrap(),
    );
    h.insert("sec-websocket-protocol", protocols.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, tls(emu).await).await?;
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((ws, proto))
}

/// Next data or close message (pings/pongs skipped), with a timeout.
async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("message within 10s")
            .expect("stream open")
            .expect("no websocket error");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

fn channel_msg(channel: u8, data: &[u8]) -> Message {
    let mut v = vec![channel];
    v.extend_from_slice(data);
    Message::binary(v)
}

fn binary(msg: Message) -> Vec<u8> {
    match msg {
        Message::Binary(b) => b.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

const EXEC: &str = "/api/v1/namespaces/demo/pods/web-0/exec";

#[tokio::test]
async fn websocket_v5_channel_framing_and_close_channel() {
    let emu = emulator().await;
    let (mut ws, proto) = connect(
        &emu,
        &format!("{EXEC}?command=cat&stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("v5.channel.k8s.io"));
    // Readiness: an empty message on the lowest output channel.
    assert_eq!(binary(next(&mut ws).await), [1]);
    ws.send(channel_msg(0, b"abc\n")).await.unwrap();
    assert_eq!(binary(next(&mut ws).await), b"\x01abc\n");
    // CLOSE (channel 255) for stdin: `cat` sees end of input and exits 0.
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let status = binary(next(&mut ws).await);
    assert_eq!(status[0], 3);
    let status: serde_json::Value = serde_json::from_slice(&status[1..]).unwrap();
    assert_eq!(
        status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal close, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_v4_error_channel_carries_nonzero_exit_status() {
    let emu = emulator().await;
    let (mut ws, proto) = connect(
        &emu,
        &format!("{EXEC}?command=sh&command=-c&command=echo+oops+%3E%262%3B+exit+3&stdout=true&stderr=true"),
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    assert_eq!(binary(next(&mut ws).await), [1]);
    assert_eq!(binary(next(&mut ws).await), b"\x02oops\n");
    let status = binary(next(&mut ws).await);
    assert_eq!(status[0], 3);
    let status: serde_json::Value = serde_json::from_slice(&status[1..]).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{"reason": "ExitCode", "message": "3"}])
    );
}

#[tokio::test]
async fn websocket_base64_channel_protocol_uses_text_frames() {
    let emu = emulator().await;
    let (mut ws, proto) = connect(
        &emu,
        &format!("{EXEC}?command=echo&command=hi&stdout=true"),
        "base64.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("base64.channel.k8s.io"));
    assert_eq!(next(&mut ws).await, Message::text("1"));
    assert_eq!(next(&mut ws).await, Message::text("1aGkK"));
    assert!(
        matches!(next(&mut ws).await, Message::Close(_)),
        "success writes no status before v4"
    );
}

#[tokio::test]
async fn websocket_tty_handles_resize_and_a_typed_line() {
    let emu = emulator().await;
    let (mut ws, _) = connect(
        &emu,
        &format!("{EXEC}?command=sh&stdin=true&stdout=true&tty=true"),
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(binary(next(&mut ws).await), [1]);
    ws.send(channel_msg(4, br#"{"Width":132,"Height":43}"#))
        .await
        .unwrap();
    ws.send(channel_msg(0, b"stty size\r")).await.unwrap();
    let mut screen = Vec::new();
    while !screen.ends_with(b"43 132\r\n$ ") {
        let msg = binary(next(&mut ws).await);
        assert_eq!(msg[0], 1, "tty output only uses stdout: {msg:?}");
        screen.extend_from_slice(&msg[1..]);
    }
    // Prompt, echoed input (CR shown as CRLF), the command's output, the next prompt.
    assert_eq!(
        String::from_utf8(screen).unwrap(),
        "$ stty size\r\n43 132\r\n$ "
    );
    ws.send(channel_msg(0, b"exit 0\r")).await.unwrap();
    loop {
        let msg = binary(next(&mut ws).await);
        if msg[0] == 3 {
            assert_eq!(&msg[1..], br#"{"metadata":{},"status":"Success"}"#);
            break;
        }
    }
}

#[tokio::test]
async fn websocket_port_forward_channels_echo_data() {
    let emu = emulator().await;
    let (mut ws, proto) = connect(
        &emu,
        "/api/v1/namespaces/demo/pods/web-0/portforward?ports=8080",
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
    // Data channel 0 and error channel 1 first announce the port (little-endian u16).
    assert_eq!(binary(next(&mut ws).await), [0, 0x90, 0x1f]);
    assert_eq!(binary(next(&mut ws).await), [1, 0x90, 0x1f]);
    ws.send(channel_msg(0, b"GET / HTTP/1.0\r\n\r\n"))
        .await
        .unwrap();
    assert_eq!(binary(next(&mut ws).await), b"\x00GET / HTTP/1.0\r\n\r\n");
}

#[tokio::test]
async fn websocket_exec_in_unknown_container_is_a_400_status() {
    let emu = emulator().await;
    let err = connect(
        &emu,
        &format!("{EXEC}?command=ls&stdout=true&container=db"),
        "v5.channel.k8s.io",
    )
    .await
    .expect_err("handshake rejected");
    let WsError::Http(resp) = err else {
        panic!("expected an HTTP error, got {err:?}")
    };
    assert_eq!(resp.status(), 400);
    let status: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["message"], "container db is not valid for pod web-0");
}

#[tokio::test]
async fn exec_without_upgrade_is_a_400_status() {
    let emu = emulator().await;
    let mut tls = tls(&emu).await;
    let req = format!(
        "GET {EXEC}?command=ls&stdout=true HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        emu.addr(),
        emu.admin_token()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    let _ = tls.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("Upgrade request required"), "{resp}");
}
