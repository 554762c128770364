//! End to end through the gateway with the embedded default policy for AI agents: real kubectl
//! and raw requests try to get around each deny and each hold (dry-run spellings the apiserver
//! ignores, encoded paths, credential minting "in dry run"), and the upstream must never see
//! them. A held request waits `hold` (5 s) and gets a 429 that says it is pending approval; the
//! upstream never sees it.

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
            authentication: Default::default(),
            impersonate: true,
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

/// A held request's answer: 429 with the message that tells an agent what happens next.
fn assert_held(resp: &common::RawResponse, what: &str) {
    assert_eq!(resp.status, 429, "{what} is held: {}", resp.body);
    assert!(
        resp.body
            .contains("holding this request for human approval"),
        "{what}: {}",
        resp.body
    );
}

trait RawOwned {
    fn raw_owned(&self, req: Vec<u8>) -> impl std::future::Future<Output = common::RawResponse>;
}

impl RawOwned for TestEnv {
    async fn raw_owned(&self, req: Vec<u8>) -> common::RawResponse {
        self.raw(&req).await
    }
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

    // the review APIs are reads: kubectl auth can-i's SelfSubjectAccessReview is not held
    let started = std::time::Instant::now();
    let out = t
        .kubectl(&["auth", "can-i", "get", "pods", "-n", "demo"])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim() == "yes" || stdout.trim() == "no",
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(upstream_saw(&t, "POST", "selfsubjectaccessreviews"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "not held"
    );

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

    // a real change is held; so are dry-run spellings the apiserver ignores (real changes)
    let before = t.emulator().requests().len();
    let token = t.agent_token().to_owned();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sneaky"}}"#;
    let targets: Vec<String> = [
        "",
        "?dryRun=all",
        "?dryrun=All",
        "?dryRun=All&dryRun=None",
        "?dryRun=All;x=1",
        "?dryRun=",
    ]
    .iter()
    .map(|q| format!("/api/v1/namespaces/demo/configmaps{q}"))
    .collect();
    let held = futures::future::join_all(
        targets
            .iter()
            .map(|target| t.raw_owned(request("POST", target, &token, cm))),
    )
    .await;
    for (target, resp) in targets.iter().zip(held) {
        assert_held(&resp, &format!("POST {target}"));
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
    let token = t.agent_token().to_owned();
    let tr = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#;
    let cases = [
        (
            "POST",
            "/api/v1/namespaces/demo/serviceaccounts/default/token",
        ),
        (
            "POST",
            "/api/v1/namespaces/demo/serviceaccounts/default/token?dryRun=All",
        ),
        (
            "POST",
            "/api/v1/namespaces/demo/pods/web-0/exec?command=env&dryRun=All",
        ),
        (
            "GET",
            "/api/v1/namespaces/demo/pods/web-0/exec?command=env&dryRun=All",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/demo/pods/web-0/ephemeralcontainers?dryRun=All",
        ),
    ];
    let held = futures::future::join_all(
        cases
            .iter()
            .map(|(method, target)| t.raw_owned(request(method, target, &token, tr))),
    )
    .await;
    for ((method, target), resp) in cases.iter().zip(held) {
        assert_held(&resp, &format!("{method} {target}"));
    }
    assert!(!upstream_saw(&t, "POST", "/token"));
    assert!(!upstream_saw(&t, "POST", "/exec"));
    assert!(!upstream_saw(&t, "GET", "/exec"));
    assert!(!upstream_saw(&t, "PATCH", "/ephemeralcontainers"));
}

/// A gateway started from a config whose `policy.file` is `policy`, as `holdpoint serve` does.
async fn start_with_policy_file(
    dir: &std::path::Path,
    policy: &str,
) -> (
    kube_emulator::RunningEmulator,
    holdpoint_gateway::RunningGateway,
    std::path::PathBuf,
) {
    use holdpoint_gateway::config::{
        AuthenticationConfig, Config, Limits, PolicyConfig, StaticTokenConfig, UpstreamConfig,
    };
    let emulator = kube_emulator::start(kube_emulator::EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: kube_emulator::Seed::Demo,
        admin_token: None,
    })
    .await
    .unwrap();
    let kubeconfig = dir.join("upstream.kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).unwrap();
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        tls: None,
        upstream: UpstreamConfig {
            kubeconfig,
            context: None,
            impersonate: true,
        },
        authentication: AuthenticationConfig {
            static_tokens: vec![StaticTokenConfig {
                sha256: holdpoint_gateway::phases::authenticate::token_sha256_hex(TOKEN),
                user: "tester".into(),
                groups: vec!["agents".into()],
                uid: None,
            }],
            ..AuthenticationConfig::default()
        },
        limits: Limits::default(),
        policy: PolicyConfig {
            file: Some(policy_file.clone()),
        },
        store: Default::default(),
        admin: Default::default(),
        instance_name: None,
        mask: Default::default(),
        audit: Default::default(),
        data_threads: 0,
    };
    config.validate().unwrap();
    let gateway = holdpoint_gateway::start(config).await.unwrap();
    (emulator, gateway, policy_file)
}

const TOKEN: &str = "policy-reload-test-token";

async fn send(gateway: &holdpoint_gateway::RunningGateway, req: Vec<u8>) -> common::RawResponse {
    common::raw_request(gateway.addr(), gateway.ca_pem(), &req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_file_reload_swaps_a_good_file_and_keeps_the_old_policy_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let deny_configmaps = "rules:\n  - name: no-configmaps\n    match: {resources: [configmaps], mutating: true}\n    action: deny\n    message: configmaps are read-only today\ndefault: {action: allow}\n";
    let (emulator, gateway, policy_file) =
        start_with_policy_file(dir.path(), deny_configmaps).await;
    let post = |name: &str| {
        request(
            "POST",
            "/api/v1/namespaces/demo/configmaps",
            TOKEN,
            &format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#),
        )
    };
    let resp = send(&gateway, post("one")).await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert!(
        resp.body.contains("configmaps are read-only today"),
        "{}",
        resp.body
    );

    // a bad file (unknown key): refused, the deny stays in force
    std::fs::write(
        &policy_file,
        "rules: []\ndefault: {action: allow}\nallow_everything: true\n",
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let resp = send(&gateway, post("two")).await;
    assert_eq!(resp.status, 403, "the old policy stays: {}", resp.body);
    // a file that parses but does not validate: same
    std::fs::write(
        &policy_file,
        "rules:\n  - {name: x, action: approve}\ndefault: {action: allow}\n",
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let resp = send(&gateway, post("three")).await;
    assert_eq!(resp.status, 403, "the old policy stays: {}", resp.body);
    assert!(
        !emulator
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("configmaps")),
        "nothing reached the upstream"
    );

    // a good file replaces it within a couple of seconds
    std::fs::write(
        &policy_file,
        "rules: []\ndefault: {action: allow}\n# now open\n",
    )
    .unwrap();
    let mut status = 0;
    for i in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        status = send(&gateway, post(&format!("four-{i}"))).await.status;
        if status == 201 {
            break;
        }
    }
    assert_eq!(status, 201, "the new policy took effect");
    gateway.shutdown().await;
    emulator.shutdown().await;
}
