//! Stored static tokens end to end: the `holdpoint token` and `holdpoint kubeconfig` commands
//! (the real binary) against a running gateway, used by real kubectl. A created token works, a
//! revoked one is refused (401) within the cache lifetime, an expired one is refused (injected
//! clock), and the kubeconfig the command writes works as it is. The token tests run with the
//! gateway's store on SQLite and on PostgreSQL.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::clock::ManualClock;

const NS: &str = "demo";

fn holdpoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdpoint"))
        .args(args)
        .env("HOLDPOINT_LOG", "warn")
        .output()
        .expect("holdpoint runs")
}

fn holdpoint_ok(args: &[&str]) -> String {
    let out = holdpoint(args);
    assert!(
        out.status.success(),
        "holdpoint {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl with a kubeconfig, optionally overriding its credential with `--token`.
async fn kubectl(kubeconfig: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut all: Vec<String> = Vec::new();
    if let Some(t) = token {
        all.push(format!("--token={t}"));
    }
    all.extend(args.iter().map(|s| s.to_string()));
    let kubeconfig = kubeconfig.to_owned();
    tokio::task::spawn_blocking(move || common::kubectl_blocking(&kubeconfig, &all, None))
        .await
        .expect("kubectl thread")
}

/// kubectl's words for a 401 answer ("You must be logged in to the server (the server has
/// asked for the client to provide credentials)").
fn refused_401(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    !out.status.success()
        && (err.contains("must be logged in") || err.contains("provide credentials"))
}

#[tokio::test(flavor = "multi_thread")]
async fn created_token_works_and_revoked_token_is_refused_within_the_cache_ttl() {
    created_then_revoked(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn created_token_works_and_revoked_token_is_refused_within_the_cache_ttl_on_postgres() {
    created_then_revoked(common::Backend::Postgres).await;
}

async fn created_then_revoked(backend: common::Backend) {
    let t = common::start_on(backend).await;
    let config = t.env.config_file.to_str().unwrap().to_owned();
    let token = holdpoint_ok(&[
        "token",
        "create",
        "--config",
        &config,
        "--user",
        "ci-bot",
        "--group",
        "agents",
        "--description",
        "e2e",
    ]);
    let token = token.trim();
    assert!(token.starts_with("hpt_"), "{token}");
    let out = kubectl(
        &t.env.agent_kubeconfig,
        Some(token),
        &["get", "pods", "-n", NS],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The list shows the token's id and user, never the token.
    let list = holdpoint_ok(&["token", "list", "--config", &config]);
    assert!(!list.contains(token), "{list}");
    let line = list
        .lines()
        .find(|l| l.contains("ci-bot"))
        .unwrap_or_else(|| panic!("ci-bot listed: {list}"));
    assert!(line.contains("valid") && line.contains("agents"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_owned();

    let revoked = holdpoint_ok(&[
        "token", "revoke", "--config", &config, &id, "--reason", "e2e",
    ]);
    assert!(revoked.contains(&id), "{revoked}");
    let started = Instant::now();
    loop {
        let out = kubectl(
            &t.env.agent_kubeconfig,
            Some(token),
            &["get", "pods", "-n", NS],
        )
        .await;
        if refused_401(&out) {
            break;
        }
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "a revoked token still works after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let list = holdpoint_ok(&["token", "list", "--config", &config]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{list}"
    );
    // The other identities are untouched.
    assert!(
        kubectl(&t.env.agent_kubeconfig, None, &["get", "pods", "-n", NS])
            .await
            .status
            .success()
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_by_user_refuses_every_token_of_that_user() {
    revoke_by_user(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_by_user_refuses_every_token_of_that_user_on_postgres() {
    revoke_by_user(common::Backend::Postgres).await;
}

async fn revoke_by_user(backend: common::Backend) {
    let t = common::start_on(backend).await;
    let config = t.env.config_file.to_str().unwrap().to_owned();
    let create = |user: &str| {
        holdpoint_ok(&["token", "create", "--config", &config, "--user", user])
            .trim()
            .to_owned()
    };
    let (a, b, other) = (create("bot"), create("bot"), create("other"));
    let out = holdpoint_ok(&["token", "revoke", "--config", &config, "--user", "bot"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("revoked tk-")).count(),
        2,
        "{out}"
    );
    // Fresh tokens were cached by nobody yet: refused at once.
    for tok in [&a, &b] {
        let out = kubectl(
            &t.env.agent_kubeconfig,
            Some(tok),
            &["get", "pods", "-n", NS],
        )
        .await;
        assert!(
            refused_401(&out),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = kubectl(
        &t.env.agent_kubeconfig,
        Some(&other),
        &["get", "pods", "-n", NS],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Guessed and malformed tokens with the stored prefix are refused too.
    for bogus in [
        "hpt_",
        "hpt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("{other}x"),
    ] {
        let out = kubectl(
            &t.env.agent_kubeconfig,
            Some(bogus),
            &["get", "pods", "-n", NS],
        )
        .await;
        assert!(
            refused_401(&out),
            "{bogus}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused_by_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let env = Env::start_with(
        EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::from_env(),
            store_url: None,
            authentication: Default::default(),
            impersonate: true,
        },
        PhaseOverrides {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = clock_now(&clock);
    let (token, stored) = holdpoint::tokens::issue(
        env.gateway.store(),
        &holdpoint::tokens::TokenSpec {
            user: "short-lived".into(),
            groups: vec![],
            ttl: Some(Duration::from_secs(60)),
            description: None,
            created_by: "e2e".into(),
        },
        start,
    )
    .await
    .unwrap();
    assert_eq!(
        stored.expires_at,
        Some(start + jiff::SignedDuration::from_secs(60))
    );
    let ok = kubectl(
        &env.agent_kubeconfig,
        Some(&token),
        &["get", "pods", "-n", NS],
    )
    .await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // One second before expiry it still works (cached or not); at expiry it is refused even
    // though it was cached a moment ago.
    clock.set(start + jiff::SignedDuration::from_secs(59));
    let ok = kubectl(
        &env.agent_kubeconfig,
        Some(&token),
        &["get", "pods", "-n", NS],
    )
    .await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    clock.set(start + jiff::SignedDuration::from_secs(60));
    let out = kubectl(
        &env.agent_kubeconfig,
        Some(&token),
        &["get", "pods", "-n", NS],
    )
    .await;
    assert!(
        refused_401(&out),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.shutdown().await;
}

fn clock_now(clock: &ManualClock) -> jiff::Timestamp {
    use holdpoint_gateway::clock::Clock;
    clock.now()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubeconfig_command_writes_a_working_kubeconfig() {
    let t = common::start().await;
    let config = t.env.config_file.to_str().unwrap().to_owned();
    let out_file = t.dir.path().join("bot.kubeconfig");
    holdpoint_ok(&[
        "kubeconfig",
        "--config",
        &config,
        "--user",
        "kc-bot",
        "--group",
        "agents",
        "--ttl",
        "1h",
        "--namespace",
        NS,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Used as it is: its server, CA, namespace and token.
    let out = kubectl(&out_file, None, &["get", "pods"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("web-0"));
    let list = holdpoint_ok(&["token", "list", "--config", &config]);
    let line = list
        .lines()
        .find(|l| l.contains("kc-bot"))
        .expect("kc-bot listed");
    assert!(!line.contains("never"), "a --ttl token expires: {line}");
    // The OIDC variant needs no store and runs kubelogin.
    let text = holdpoint_ok(&[
        "kubeconfig",
        "--config",
        &config,
        "--oidc-issuer",
        "https://issuer.example",
        "--oidc-client-id",
        "holdpoint",
    ]);
    let kc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exec = &kc["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "kubectl");
    assert_eq!(exec["args"][0], "oidc-login");
    assert_eq!(exec["args"][2], "--oidc-issuer-url=https://issuer.example");
    assert_eq!(kc["clusters"][0]["cluster"]["server"], t.env.gateway.url());
    // Refused combinations.
    let out = holdpoint(&["kubeconfig", "--config", &config]);
    assert!(!out.status.success());
    let out = holdpoint(&[
        "kubeconfig",
        "--config",
        &config,
        "--user",
        "x",
        "--ttl",
        "soon",
    ]);
    assert!(!out.status.success());
    t.env.shutdown().await;
}
