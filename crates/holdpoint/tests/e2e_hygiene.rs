//! End-to-end defences of the data path (see shared/attack-surface.md items 1-7, 13-16): each
//! test sends what an attacker would through the gateway and checks what the upstream received
//! and what the caller got back. Each would fail if its defence were removed.

mod common;

use common::{TestEnv, start};

fn get(path: &str, token: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The headers the upstream received for the last request whose path contains `needle`.
fn upstream_headers(t: &TestEnv, needle: &str) -> Vec<(String, String)> {
    let req = t
        .emulator()
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.contains(needle))
        .unwrap_or_else(|| panic!("upstream never received a request for {needle}"));
    req.headers.clone()
}

/// The `Impersonate-*` headers among `headers`, in order.
fn impersonation(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| n.starts_with("impersonate-"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_caller_credentials_and_identity_headers_never_reach_upstream() {
    let t = start().await;
    common::require_emulator(&t);
    let token = t.agent_token().to_owned();
    let extra = "Impersonate-User: system:admin\r\nIMPERSONATE-GROUP: system:masters\r\nimpersonate-uid: 0\r\nImpersonate-Extra-Scopes: all\r\nX-Remote-User: root\r\nX-Remote-Group: system:masters\r\nX-Remote-Extra-Foo: bar\r\nX-Real-Ip: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n";
    let resp = t
        .raw(&get("/api/v1/namespaces/demo/configmaps", &token, extra))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let headers = upstream_headers(&t, "/api/v1/namespaces/demo/configmaps");
    // The gateway impersonates the authenticated caller (upstream.impersonate defaults to true):
    // exactly its own Impersonate-* headers arrive, none of the caller's.
    assert_eq!(
        impersonation(&headers),
        [
            ("impersonate-user".to_string(), "demo-agent".to_string()),
            ("impersonate-group".to_string(), "agents".to_string()),
        ],
        "{headers:?}"
    );
    for (name, value) in &headers {
        assert!(
            !name.starts_with("x-remote-"),
            "caller's {name} reached the upstream"
        );
        assert_ne!(name, "x-real-ip");
        assert!(
            !value.contains(&token),
            "the caller's token reached the upstream in {name}"
        );
    }
    let auth: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == "authorization")
        .collect();
    assert_eq!(auth.len(), 1, "exactly the gateway's own credential");
    assert_eq!(auth[0].1, format!("Bearer {}", t.emulator().admin_token()));
    let xff: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == "x-forwarded-for")
        .collect();
    assert_eq!(xff.len(), 1);
    assert_eq!(xff[0].1, "6.6.6.6, 127.0.0.1", "appended, never trusted");
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_connection_header_cannot_strip_or_smuggle_headers() {
    let t = start().await;
    common::require_emulator(&t);
    let token = t.agent_token().to_owned();
    // CVE-2021-31999: a caller-named hop-by-hop header must not survive, and Connection itself
    // must not be forwarded to a hop that would honour it.
    let req = format!(
        "GET /api/v1/namespaces/demo/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: Impersonate-User, Kubectl-Command\r\nImpersonate-User: system:admin\r\nKubectl-Command: kubectl get\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n"
    );
    let resp = t.raw(req.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let headers = upstream_headers(&t, "/api/v1/namespaces/demo/secrets");
    assert_eq!(
        impersonation(&headers),
        [
            ("impersonate-user".to_string(), "demo-agent".to_string()),
            ("impersonate-group".to_string(), "agents".to_string()),
        ],
        "the caller's Impersonate-User must not survive, the gateway's must: {headers:?}"
    );
    for banned in ["connection", "kubectl-command", "keep-alive", "te"] {
        assert!(
            headers.iter().all(|(n, _)| n != banned),
            "{banned} reached the upstream: {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_requests_are_refused_before_the_upstream() {
    let t = start().await;
    for auth in [
        "",
        "Authorization: Bearer not-a-token\r\n",
        "Authorization: Basic YWRtaW46YWRtaW4=\r\n",
    ] {
        let req = format!(
            "GET /api/v1/namespaces/demo/secrets HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
        );
        let resp = t.raw(req.as_bytes()).await;
        assert_eq!(resp.status, 401, "{auth:?}");
        let status = resp.status_json();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
        assert!(!resp.body.contains("not-a-token"));
    }
    if common::on_emulator(&t) {
        assert!(
            t.emulator()
                .requests()
                .iter()
                .all(|r| !r.path.contains("/secrets")),
            "an unauthenticated request reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn path_tricks_are_refused_with_a_status_and_never_forwarded() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    let tricks = [
        "/api/v1/namespaces/demo/pods/../secrets",
        "/api/v1/namespaces/demo/pods/./web-0",
        "/api/v1//namespaces/demo/secrets",
        "/api/v1/namespaces/demo/secrets%2Fweb-credentials",
        "/api/v1/namespaces/demo/pods/web-0%2fexec",
        "/api/v1/namespaces/demo/pods/%2E%2E/secrets",
        "/api/v1/namespaces/demo/pods/web-0%5Cexec",
        "/api/v1/namespaces/demo/pods/web-0%252Fexec",
        "/api/v1/namespaces/demo/pods/web-0;x=y",
        "/api/v1/namespaces/demo/pods/%zz",
    ];
    for path in tricks {
        let resp = t.raw(&get(path, &token, "")).await;
        assert_eq!(resp.status, 400, "{path}: {}", resp.body);
        assert_eq!(resp.status_json()["kind"], "Status", "{path}");
    }
    // absolute-form target
    let req = format!(
        "GET https://evil.example/api/v1/namespaces/demo/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(t.raw(req.as_bytes()).await.status, 400);
    if common::on_emulator(&t) {
        let seen: Vec<_> = t
            .emulator()
            .requests()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert!(
            seen.iter()
                .all(|p| !p.contains("secrets") && !p.contains("web-0")),
            "a refused path reached the upstream: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn encoded_letters_still_classify_as_exec_and_upgrade_rules_apply() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    // An upgrade on a non-streaming path is refused.
    let req = format!(
        "GET /api/v1/namespaces/demo/pods/web-0 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let resp = t.raw(req.as_bytes()).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("upgrade"), "{}", resp.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_upgrade_closes_the_connection() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    // exec into a pod that does not exist: the upstream answers 404, not 101.
    let req = format!(
        "GET /api/v1/namespaces/demo/pods/no-such-pod/exec?command=ls&stdout=true HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
    );
    let resp = t.raw(req.as_bytes()).await;
    assert_ne!(resp.status, 101);
    assert!(resp.status >= 400, "{}", resp.status);
    assert!(
        resp.closed,
        "after a failed upgrade the caller's connection must be closed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_and_nothing_is_sent() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    let big = 3 * 1024 * 1024 + 1;
    // Declared too large: refused before the body is read.
    let req = format!(
        "POST /api/v1/namespaces/demo/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {big}\r\nConnection: close\r\n\r\n"
    );
    let resp = t.raw(req.as_bytes()).await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.status_json()["reason"], "RequestEntityTooLarge");
    // Chunked, too large once read.
    let mut req = format!("POST /api/v1/namespaces/demo/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    let chunk = vec![b'a'; 1024 * 1024];
    for _ in 0..4 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = t.raw(&req).await;
    assert_eq!(resp.status, 413);
    if common::on_emulator(&t) {
        assert!(t.emulator().requests().iter().all(|r| r.method != "POST"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_length_and_chunked_together_are_not_forwarded_ambiguously() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    // A smuggling attempt: both framings. Whatever the gateway decides, the upstream must see one
    // request with one framing, and no hidden second request.
    let body = "0\r\n\r\nGET /api/v1/namespaces/demo/secrets HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = format!(
        "POST /api/v1/namespaces/demo/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = t.raw(req.as_bytes()).await;
    // hyper refuses a request with both framings outright.
    assert_eq!(resp.status, 400, "{}", resp.body);
    if common::on_emulator(&t) {
        assert!(
            t.emulator()
                .requests()
                .iter()
                .all(|r| !r.path.contains("/secrets")),
            "a smuggled request reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_listener_serves_health_and_metrics() {
    let t = start().await;
    let token = t.agent_token().to_owned();
    let ok = t
        .raw(&get("/api/v1/namespaces/demo/pods", &token, ""))
        .await;
    assert_eq!(ok.status, 200);
    let ca = t.env.gateway.ca_pem().to_owned();
    let admin = t.env.gateway.admin_addr();
    let health = common::raw_request(
        admin,
        &ca,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let metrics = common::raw_request(
        admin,
        &ca,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains(
            r#"holdpoint_requests_total{verb="list",resource="pods",outcome="forwarded"} 1"#
        ),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("holdpoint_request_duration_seconds_bucket")
    );
}
