//! End to end through the gateway with the embedded default policy for AI agents: real kubectl
//! and raw requests try to get around each deny and each hold (dry-run spellings the apiserver
//! ignores, encoded paths, credential minting "in dry run"), and the upstream must never see
//! them. Until the hold phase exists, a held request is refused (fail closed), which is what
//! these tests observe for holds.

mod common;

use std::sync::Arc;

use common::TestEnv;
use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::phases::decide::{PolicyDecider, no_freeze};

async fn start_with_default_policy() -> TestEnv {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start_with(
        EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::Emulator,
            store_url: None,
        },
        PhaseOverrides {
            decider: Some(Arc::new(PolicyDecider::embedded(no_freeze()))),
            ..PhaseOverrides::default()
        },
    )
    .await
    .expect("environment starts");
    TestEnv { env, dir }
}

fn request(method: &str, target: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Whether the upstream ever received `method` on a path containing `needle`.
fn upstream_saw(t: &TestEnv, method: &str, needle: &str) -> bool {
    t.emulator()
        .requests()
        .iter()
        .any(|r| r.method == method && r.path.contains(needle))
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_namespace_is_denied_however_it_is_asked() {
    let t = start_with_default_policy().await;
    let out = t
        .kubectl(&["delete", "namespace", "demo", "--wait=false"])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("never lets an agent delete namespaces"),
        "kubectl shows the policy's message: {stderr}"
    );
    let out = t
        .kubectl(&["delete", "namespace", "demo", "--dry-run=server"])
        .await;
    assert!(!out.status.success(), "a dry run is no way around a deny");

    let token = t.agent_token().to_owned();
    for target in [
        "/api/v1/namespaces/demo",
        "/api/v1/namespaces/demo?dryRun=All",
        "/api/v1/namespaces/demo?dryrun=All",
        "/api/v1/namespaces/dem%6F",
        "/api/v1/namespaces",
        "/api/v1/nodes/node-1",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
    ] {
        let resp = t.raw(&request("DELETE", target, &token, "")).await;
        assert!(
            resp.status == 403 || resp.status == 400,
            "DELETE {target}: {} {}",
            resp.status,
            resp.body
        );
    }
    assert!(!upstream_saw(&t, "DELETE", "/namespaces"));
    assert!(!upstream_saw(&t, "DELETE", "/nodes"));
    assert!(!upstream_saw(&t, "DELETE", "customresourcedefinitions"));
    // the namespace is still there
    t.kubectl_ok(&["get", "namespace", "demo"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_server_dry_runs_pass_and_changes_are_held() {
    let t = start_with_default_policy().await;
    t.kubectl_ok(&["get", "pods", "-n", "demo"]).await;

    // a server-side dry run of an ordinary resource reaches the upstream, which writes nothing
    t.kubectl_ok(&[
        "create",
        "configmap",
        "dry",
        "-n",
        "demo",
        "--from-literal=a=b",
        "--dry-run=server",
    ])
    .await;
    assert!(upstream_saw(
        &t,
        "POST",
        "/api/v1/namespaces/demo/configmaps"
    ));
    let out = t.kubectl(&["get", "configmap", "dry", "-n", "demo"]).await;
    assert!(!out.status.success(), "a dry run persisted nothing");

    // a real change is held (and, with no hold phase yet, refused)
    let before = t.emulator().requests().len();
    let out = t
        .kubectl(&[
            "create",
            "configmap",
            "real",
            "-n",
            "demo",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("approval"), "{stderr}");
    let token = t.agent_token().to_owned();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sneaky"}}"#;
    // dry-run spellings the apiserver ignores are real changes: held too
    for q in [
        "dryRun=all",
        "dryrun=All",
        "dryRun=All&dryRun=None",
        "dryRun=All;x=1",
        "dryRun=",
    ] {
        let target = format!("/api/v1/namespaces/demo/configmaps?{q}");
        let resp = t.raw(&request("POST", &target, &token, cm)).await;
        assert_eq!(resp.status, 403, "POST {target}: {}", resp.body);
    }
    let after: Vec<_> = t.emulator().requests().into_iter().skip(before).collect();
    assert!(
        !after.iter().any(|r| r.method == "POST"),
        "no held write reached the upstream: {:?}",
        after
            .iter()
            .map(|r| (&r.method, &r.path, &r.query))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_token_requests_are_held_even_as_dry_runs() {
    let t = start_with_default_policy().await;
    let out = t
        .kubectl(&["exec", "web-0", "-n", "demo", "--", "env"])
        .await;
    assert!(!out.status.success(), "exec is held");
    let token = t.agent_token().to_owned();
    let tr = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#;
    for target in [
        "/api/v1/namespaces/demo/serviceaccounts/default/token",
        "/api/v1/namespaces/demo/serviceaccounts/default/token?dryRun=All",
        "/api/v1/namespaces/demo/pods/web-0/exec?command=env&dryRun=All",
        "/api/v1/namespaces/demo/pods/web-0/ephemeralcontainers?dryRun=All",
    ] {
        let method = if target.contains("ephemeral") {
            "PATCH"
        } else {
            "POST"
        };
        let resp = t.raw(&request(method, target, &token, tr)).await;
        assert_eq!(resp.status, 403, "{method} {target}: {}", resp.body);
    }
    assert!(!upstream_saw(&t, "POST", "/token"));
    assert!(!upstream_saw(&t, "POST", "/exec"));
    assert!(!upstream_saw(&t, "GET", "/exec"));
    assert!(!upstream_saw(&t, "PATCH", "/ephemeralcontainers"));
}
