//! Defences that need an upstream misbehaving on purpose, which the honest emulator never does:
//! redirects (CVE-2020-8559, CVE-2022-3172) are never followed or relayed, after a refused
//! upgrade the upstream connection never carries another request (CVE-2018-1002105), a stream
//! protocol the gateway cannot read is refused rather than tunnelled unmasked, and an answer the
//! mask phase did not ask for (gzip, protobuf, an unknown encoding, broken JSON) is decompressed
//! and masked, or withheld, never relayed unmasked.

mod common;

use std::sync::{Arc, Mutex};

use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the hostile upstream saw on one connection.
#[derive(Debug, Default, Clone)]
struct ConnLog {
    requests: Vec<String>,
    closed_by_peer: bool,
}

/// A plain-HTTP upstream that answers every request with `answer` and logs request lines.
async fn hostile_upstream(
    answer: impl Into<Vec<u8>>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<ConnLog>>>) {
    let answer: Arc<Vec<u8>> = Arc::new(answer.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let logs: Arc<Mutex<Vec<ConnLog>>> = Arc::default();
    let shared = logs.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let logs = shared.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let idx = {
                    let mut l = logs.lock().unwrap();
                    l.push(ConnLog::default());
                    l.len() - 1
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            logs.lock().unwrap()[idx].closed_by_peer = true;
                            return;
                        }
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let line = head.lines().next().unwrap_or("").to_owned();
                        logs.lock().unwrap()[idx].requests.push(line);
                        if sock.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, logs)
}

async fn gateway_in_front_of(addr: std::net::SocketAddr) -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("hostile.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: h\n  cluster:\n    server: http://{addr}\nusers:\n- name: h\n  user:\n    token: gateway-credential\ncontexts:\n- name: h\n  context: {{cluster: h, user: h}}\ncurrent-context: h\n"
        ),
    )
    .unwrap();
    // Allow-all: these tests are about what the forward phase does with hostile answers.
    let env = Env::start_with(
        EnvOptions {
            dir: dir.path().join("gw"),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::Kubeconfig(kubeconfig),
            store_url: None,
            authentication: Default::default(),
            impersonate: true,
        },
        holdpoint_gateway::PhaseOverrides {
            decider: Some(std::sync::Arc::new(
                holdpoint_gateway::phases::decide::AllowAll,
            )),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (env, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_redirects_are_refused_not_relayed_or_followed() {
    let (addr, logs) = hostile_upstream(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://evil.example/steal\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let (env, _dir) = gateway_in_front_of(addr).await;
    let req = format!(
        "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        env.agent_token
    );
    let resp = common::raw_request(env.gateway.addr(), env.gateway.ca_pem(), req.as_bytes()).await;
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert!(
        !resp.head.contains("location"),
        "a redirect target reached the caller: {}",
        resp.head
    );
    assert!(!resp.body.contains("evil.example"));
    assert_eq!(resp.status_json()["kind"], "Status");
    let seen: Vec<String> = logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.requests.clone())
        .collect();
    assert_eq!(
        seen,
        ["GET /api/v1/namespaces/demo/pods HTTP/1.1"],
        "the redirect was followed"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_upgrade_closes_the_upstream_connection_too() {
    let (addr, logs) = hostile_upstream(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    let (env, _dir) = gateway_in_front_of(addr).await;
    let req = format!(
        "GET /api/v1/namespaces/demo/pods/web-0/exec?command=sh&stdin=true HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
        env.agent_token
    );
    let resp = common::raw_request(env.gateway.addr(), env.gateway.ca_pem(), req.as_bytes()).await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.closed,
        "the caller's connection stayed open after a refused upgrade"
    );
    // Another ordinary request must not travel on the refused upgrade's connection.
    let again = format!(
        "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        env.agent_token
    );
    let _ = common::raw_request(env.gateway.addr(), env.gateway.ca_pem(), again.as_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let conns = logs.lock().unwrap().clone();
    let upgrade_conn = conns
        .iter()
        .find(|c| c.requests.first().is_some_and(|r| r.contains("/exec")))
        .expect("the upgrade reached the upstream");
    assert_eq!(
        upgrade_conn.requests.len(),
        1,
        "the refused upgrade's connection carried more: {conns:?}"
    );
    assert!(
        upgrade_conn.closed_by_peer,
        "the gateway kept the refused upgrade's upstream connection open"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_protocol_the_gateway_cannot_read_is_refused_not_tunnelled() {
    // The upstream agrees to an exec upgrade in a subprotocol nobody asked for, and at once
    // sends a credential in it.
    let (addr, logs) = hostile_upstream(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: v9.unknown.k8s.io\r\n\r\n\u{82}\u{20}\u{1}DATABASE_PASSWORD=hunter2-Pr0d-DB\n",
    )
    .await;
    let (env, _dir) = gateway_in_front_of(addr).await;
    let req = format!(
        "GET /api/v1/namespaces/demo/pods/web-0/exec?command=env&stdout=true HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
        env.agent_token
    );
    let resp = common::raw_request(env.gateway.addr(), env.gateway.ca_pem(), req.as_bytes()).await;
    assert_eq!(resp.status, 502, "{}", resp.head);
    assert_eq!(resp.status_json()["kind"], "Status");
    assert!(
        resp.status_json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("v9.unknown.k8s.io")),
        "{}",
        resp.body
    );
    assert!(!resp.body.contains("hunter2"), "{}", resp.body);
    assert!(resp.closed, "the caller's connection stayed open");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let conns = logs.lock().unwrap().clone();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert!(
        conns[0].closed_by_peer,
        "the gateway kept the upstream's upgraded connection open"
    );
    env.shutdown().await;
}

const CANARY: &str = "CnryHostile5Kw2";

/// A SecretList holding the canary (base64, as the API stores it).
fn secret_list() -> String {
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD.encode(CANARY);
    format!(
        r#"{{"kind":"SecretList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[{{"metadata":{{"name":"a","namespace":"demo"}},"data":{{"password":"{value}"}}}}]}}"#
    )
}

fn answer(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

async fn list_secrets(env: &Env) -> common::RawResponse {
    let req = format!(
        "GET /api/v1/namespaces/demo/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        env.agent_token
    );
    common::raw_request(env.gateway.addr(), env.gateway.ca_pem(), req.as_bytes()).await
}

fn assert_no_canary(resp: &common::RawResponse) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    assert!(
        !resp.body.contains(CANARY) && !resp.body.contains(&b64),
        "the secret reached the caller: {}",
        resp.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_the_upstream_sends_unasked_is_decompressed_and_masked() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(secret_list().as_bytes()).unwrap();
    let (addr, _) = hostile_upstream(answer(
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
        &gz.finish().unwrap(),
    ))
    .await;
    let (env, _dir) = gateway_in_front_of(addr).await;
    let resp = list_secrets(&env).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(!resp.head.contains("content-encoding"), "{}", resp.head);
    assert_no_canary(&resp);
    let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(v["items"][0]["data"]["password"], "W01BU0tFRF0=");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_in_formats_that_cannot_be_masked_are_withheld() {
    for head in [
        "Content-Type: application/vnd.kubernetes.protobuf\r\n",
        "Content-Type: application/cbor\r\n",
        "Content-Type: application/yaml\r\n",
        "Content-Type: application/json\r\nContent-Encoding: br\r\n",
    ] {
        let (addr, _) = hostile_upstream(answer(head, secret_list().as_bytes())).await;
        let (env, _dir) = gateway_in_front_of(addr).await;
        let resp = list_secrets(&env).await;
        assert_eq!(resp.status, 502, "{head}: {}", resp.body);
        assert_eq!(resp.status_json()["kind"], "Status", "{head}");
        assert_no_canary(&resp);
        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_json_cuts_the_response_off() {
    // the first item is complete, the second breaks off inside its data
    let body = format!(
        r#"{{"kind":"SecretList","apiVersion":"v1","metadata":{{}},"items":[{{"metadata":{{"name":"a"}},"data":{{"k":"c2FmZQ=="}}}},{{"metadata":{{"name":"b"}},"data":{{"k":{CANARY}"#
    );
    let (addr, _) = hostile_upstream(answer(
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    ))
    .await;
    let (env, _dir) = gateway_in_front_of(addr).await;
    let resp = list_secrets(&env).await;
    assert_no_canary(&resp);
    assert!(
        serde_json::from_str::<serde_json::Value>(&resp.body).is_err(),
        "a cut-off answer must not look complete: {}",
        resp.body
    );
    assert!(
        resp.closed,
        "the caller's connection must end with the cut-off answer"
    );
    env.shutdown().await;
}
