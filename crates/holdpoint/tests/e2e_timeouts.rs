//! Connection timeouts of the data-path listener: idle connections (HTTP/1.1 keep-alive and
//! HTTP/2) are closed after `limits.idle_timeout`, while a long-running response (a watch) is
//! never cut by it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holdpoint_gateway::config::{
    AuthenticationConfig, Config, Limits, StaticTokenConfig, UpstreamConfig,
};
use holdpoint_gateway::phases::authenticate::token_sha256_hex;
use http_body_util::{BodyExt, Empty};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "timeouts-test-token";

struct Setup {
    _dir: tempfile::TempDir,
    emulator: kube_emulator::RunningEmulator,
    gateway: holdpoint_gateway::RunningGateway,
}

/// The emulator and a gateway whose idle timeout is 1 s and whose header-read timeout is long,
/// so a closed idle connection can only come from the idle timeout.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let emulator = kube_emulator::start(kube_emulator::EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: kube_emulator::Seed::Demo,
        admin_token: None,
    })
    .await
    .unwrap();
    let kubeconfig = dir.path().join("upstream.kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        data_threads: 0,
        data_dir: dir.path().join("data"),
        tls: None,
        upstream: UpstreamConfig {
            kubeconfig,
            context: None,
            impersonate: true,
        },
        authentication: AuthenticationConfig {
            static_tokens: vec![StaticTokenConfig {
                sha256: token_sha256_hex(TOKEN),
                user: "tester".into(),
                groups: vec![],
                uid: None,
            }],
            ..AuthenticationConfig::default()
        },
        limits: Limits {
            idle_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        store: Default::default(),
        policy: Default::default(),
        admin: Default::default(),
        instance_name: None,
        mask: Default::default(),
        audit: Default::default(),
    };
    config.validate().unwrap();
    let gateway = holdpoint_gateway::start(config).await.unwrap();
    Setup {
        _dir: dir,
        emulator,
        gateway,
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
        .into_bytes()
}

/// Reads until `needle` appears or the deadline passes; returns what was read and whether the
/// peer closed the connection.
async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    needle: &[u8],
    within: Duration,
) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !needle.is_empty() && buf.windows(needle.len()).any(|w| w == needle) {
            return (buf, false);
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (buf, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_keep_alive_connection_is_closed() {
    let s = setup().await;
    let tcp = tokio::net::TcpStream::connect(s.gateway.addr())
        .await
        .unwrap();
    let mut tls = common::tls_connector(s.gateway.ca_pem())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&get("/api/v1/namespaces/demo/configmaps/web-config"))
        .await
        .unwrap();
    let (answer, closed) = read_until(&mut tls, b"web-config", Duration::from_secs(10)).await;
    assert!(!closed, "answered: {}", String::from_utf8_lossy(&answer));
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // Idle now: the gateway must close the connection within the idle timeout plus one check.
    let started = std::time::Instant::now();
    let (_, closed) = read_until(&mut tls, b"", Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection stayed open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connection_is_closed() {
    let s = setup().await;
    let (mut sender, driver) = h2_connect(&s).await;
    let req = h2_get("/api/v1/namespaces/demo/configmaps/web-config");
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("web-config"));
    // Idle now: the server sends GOAWAY and the connection ends.
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap()
        .ok();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
}

/// An HTTP/2 connection to the gateway.
async fn h2_connect(
    s: &Setup,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(s.gateway.addr())
        .await
        .unwrap();
    let mut config = (*common::client_config(s.gateway.ca_pem())).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(conn))
}

fn h2_get(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("https://localhost{path}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Empty::<Bytes>::new())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_in_progress_keeps_its_connection_open_and_usable() {
    let s = setup().await;
    let (mut sender, driver) = h2_connect(&s).await;
    let watch = sender
        .send_request(h2_get(
            "/api/v1/namespaces/demo/configmaps?watch=1&allowWatchBookmarks=false",
        ))
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let mut watch = watch.into_body();
    // Three idle timeouts with no request starting: the watch is in progress, so the connection
    // is not idle and the gateway must not send GOAWAY.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!driver.is_finished(), "the connection ended under a watch");
    let resp = sender
        .send_request(h2_get("/api/v1/namespaces/demo/configmaps/web-config"))
        .await
        .expect("a new stream on a connection with a watch in progress");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    s.emulator
        .insert(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "late-arrival", "namespace": "demo"},
            "data": {"k": "v"}
        }))
        .unwrap();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = watch.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.extend_from_slice(&data);
                if String::from_utf8_lossy(&seen).contains("late-arrival") {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        found,
        "watch ended before the event: {}",
        String::from_utf8_lossy(&seen)
    );
}
