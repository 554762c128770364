//! End to end: the audit log with real kubectl through the gateway and the real `holdpoint`
//! binary reading it back (`sessions list|show|replay`, `audit verify|export`), on SQLite and on
//! PostgreSQL; and fail-closed: with a store that cannot write, mutations are refused and
//! nothing reaches the upstream.

mod common;

use std::time::Duration;

use common::{Backend, TestEnv, output_text};
use holdpoint_gateway::PhaseOverrides;
use serde_json::Value;

/// Runs the real `holdpoint` binary (no `KUBECONFIG`/`HOLDPOINT_ADMIN_URL` from the environment).
async fn holdpoint_bin(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_holdpoint"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("HOLDPOINT_ADMIN_URL")
        .output()
        .await
        .expect("holdpoint runs")
}

const CANARY: &str = "hunter2-canary-77";
/// base64 of CANARY, as a Secret's `data` carries it.
const CANARY_B64: &str = "aHVudGVyMi1jYW5hcnktNzc=";

fn secret_manifest() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-creds\n  namespace: demo\nstringData:\n  password: {CANARY}\n"
    )
}

fn config(t: &TestEnv) -> String {
    t.env.config_file.display().to_string()
}

async fn holdpoint_ok(args: &[&str]) -> String {
    let out = holdpoint_bin(args).await;
    assert!(
        out.status.success(),
        "holdpoint {args:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every event, as the `jsonl` export gives them.
async fn export(t: &TestEnv) -> Vec<Value> {
    holdpoint_ok(&["audit", "export", "--config", &config(t)])
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the export has an event matching `pred` (events of reads are written shortly
/// after their response ends).
async fn wait_for_event(t: &TestEnv, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = export(t).await.into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit event: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn held_apply_approved_is_a_session(backend: Backend) {
    // The embedded default policy: the change waits for a reviewer of group `reviewers`.
    let t = common::start_with(backend.store_url().await, PhaseOverrides::default()).await;
    let manifest = secret_manifest();
    let kubectl = t.kubectl_bg("agent", &["apply", "-f", "-"], Some(&manifest));
    let id = t.pending_approvals(1).await[0].id.clone();
    let admin = t.env.admin_kubeconfig.display().to_string();
    holdpoint_ok(&[
        "approvals",
        "approve",
        &id,
        "--reason",
        "rotating the db password",
        "--kubeconfig",
        &admin,
    ])
    .await;
    let out = kubectl.await.unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    // The session: one kubectl invocation, with its approval.
    let cfg = config(&t);
    let wait_listed = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed: Value = serde_json::from_str(
                &holdpoint_ok(&["sessions", "list", "--config", &cfg, "--json"]).await,
            )
            .unwrap();
            let found = listed.as_array().unwrap().iter().find(|s| {
                s["approvals"]
                    .as_array()
                    .is_some_and(|a| a.contains(&Value::from(id.as_str())))
                    && s["requests"].as_u64().unwrap_or(0) >= 3
            });
            if let Some(s) = found {
                return s.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no session with {id}: {listed:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let session = wait_listed.await;
    assert_eq!(
        session["users"],
        serde_json::json!(["demo-agent"]),
        "{session:#}"
    );
    assert!(
        session["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("kubectl apply")),
        "{session:#}"
    );
    assert!(session["mutations"].as_u64().unwrap() >= 1, "{session:#}");
    let sid = session["id"].as_str().unwrap().to_owned();
    let table = holdpoint_ok(&["sessions", "list", "--config", &cfg]).await;
    assert!(
        table.contains(&sid) && table.contains("kubectl apply"),
        "{table}"
    );

    // Its timeline: the command, the approval and its reviewer, the upstream's 201, and the
    // manifest with the password masked.
    let shown = holdpoint_ok(&["sessions", "show", &sid, "--config", &cfg, "--bodies"]).await;
    for needle in [
        "kubectl apply",
        id.as_str(),
        "approve by demo-admin",
        "201",
        "executed",
        "db-creds",
        "[MASKED]",
    ] {
        assert!(shown.contains(needle), "missing {needle:?} in\n{shown}");
    }
    assert!(
        !shown.contains(CANARY) && !shown.contains(CANARY_B64),
        "the password leaked into the audit log:\n{shown}"
    );
    let plain = holdpoint_ok(&["sessions", "show", &sid, "--config", &cfg]).await;
    assert!(
        !plain.contains("[MASKED]"),
        "bodies only with --bodies:\n{plain}"
    );

    // The reviewer's approval is an event of its own, and the export carries no secret.
    let events = export(&t).await;
    let raw = serde_json::to_string(&events).unwrap();
    assert!(
        !raw.contains(CANARY) && !raw.contains(CANARY_B64),
        "secret in the export"
    );
    let vote = events
        .iter()
        .find(|e| e["holdpoint"]["action"] == "approve")
        .expect("the approve action is recorded");
    assert_eq!(vote["user"]["username"], "demo-admin");
    assert_eq!(vote["objectRef"]["name"], id.as_str());
    assert_eq!(vote["holdpoint"]["reason"], "rotating the db password");
    let executed = events
        .iter()
        .find(|e| e["holdpoint"]["eventKind"] == "execution")
        .expect("the gateway's own send is recorded");
    assert_eq!(executed["responseStatus"]["code"], 201);
    assert_eq!(executed["holdpoint"]["session"], sid.as_str());
    assert_eq!(executed["responseObject"]["kind"], "Secret");
    // Token creation (the environment's kubeconfigs) is recorded too.
    assert!(
        events
            .iter()
            .any(|e| e["holdpoint"]["action"] == "token.create"),
        "token.create"
    );

    // The chain holds, checkpoints included.
    let verified = holdpoint_bin(&["audit", "verify", "--config", &cfg]).await;
    assert!(verified.status.success(), "{}", output_text(&verified));
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("audit log holds"),
        "{}",
        output_text(&verified)
    );
    // API sessions replay as kubectl -v=6 would have shown the requests.
    let replayed = holdpoint_ok(&["sessions", "replay", &sid, "--config", &cfg]).await;
    assert!(
        replayed.lines().any(|l| l.starts_with("POST https://")
            && l.contains("/api/v1/namespaces/demo/secrets?")
            && l.contains(" 201 Created in ")),
        "{replayed}"
    );
    t.env.shutdown().await;
}

async fn denied_and_refused_requests_are_recorded(backend: Backend) {
    let t = common::start_with(backend.store_url().await, PhaseOverrides::default()).await;
    // Denied by the default policy.
    let out = t.kubectl(&["delete", "namespace", "demo"]).await;
    assert!(!out.status.success());
    // A token nobody issued.
    let refused = t
        .raw(b"GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-real-token\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(refused.status, 401);
    // A path trick, refused before anything else.
    let tricked = t
        .raw(b"GET /api/v1/namespaces/demo/pods/..%2Fsecrets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(tricked.status, 400);

    let denied = wait_for_event(&t, "denied namespace delete", |e| {
        e["holdpoint"]["outcome"] == "denied" && e["objectRef"]["resource"] == "namespaces"
    })
    .await;
    assert_eq!(denied["verb"], "delete");
    assert_eq!(denied["user"]["username"], "demo-agent");
    assert_eq!(denied["holdpoint"]["decision"], "deny");
    assert!(
        denied["holdpoint"]["rule"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(denied["responseStatus"]["code"], 403);
    assert_eq!(
        denied["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );

    let unauth = wait_for_event(&t, "refused token", |e| {
        e["holdpoint"]["outcome"] == "unauthenticated"
    })
    .await;
    assert_eq!(unauth["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(unauth["responseStatus"]["code"], 401);
    assert!(
        unauth["holdpoint"]["refusedCredential"]
            .as_str()
            .is_some_and(|c| c.contains("bearer token")),
        "{unauth:#}"
    );
    assert!(
        !unauth.to_string().contains("not-a-real-token"),
        "the token itself is never recorded"
    );

    let rejected = wait_for_event(&t, "path trick", |e| {
        e["holdpoint"]["outcome"] == "rejected"
    })
    .await;
    assert_eq!(rejected["responseStatus"]["code"], 400);
    assert_eq!(
        rejected["requestURI"],
        "/api/v1/namespaces/demo/pods/..%2Fsecrets"
    );

    // Reads are recorded with their (masked) response bodies.
    t.kubectl_ok(&["get", "secret", "web-credentials", "-o", "json"])
        .await;
    let read = wait_for_event(&t, "secret read", |e| {
        e["objectRef"]["resource"] == "secrets"
            && e["objectRef"]["name"] == "web-credentials"
            && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(read["responseObject"]["kind"], "Secret", "{read:#}");
    for v in read["responseObject"]["data"].as_object().unwrap().values() {
        assert_eq!(v, "W01BU0tFRF0=", "{read:#}");
    }
    assert!(
        read["holdpoint"]["responseBody"]["masked"]["secret.data"]
            .as_u64()
            .unwrap()
            >= 1
    );
    t.env.shutdown().await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

both_backends!(
    held_apply_approved_is_a_session,
    denied_and_refused_requests_are_recorded,
);

// ------------------------------------------------------------------ fail closed

const STATIC_TOKEN: &str = "audit-fail-closed-static-token";

/// A config token (checked without the store, so the audit store's failure is what refuses).
fn static_token_auth() -> holdpoint_gateway::config::AuthenticationConfig {
    holdpoint_gateway::config::AuthenticationConfig {
        static_tokens: vec![holdpoint_gateway::config::StaticTokenConfig {
            sha256: holdpoint_store::sha256_hex(STATIC_TOKEN.as_bytes()),
            user: "static-agent".into(),
            groups: vec!["agents".into()],
            uid: None,
        }],
        ..Default::default()
    }
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {STATIC_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// With the audit store unable to write: a mutation is refused with a 503 and never reaches
/// the upstream, and reads are refused too once the store is known to fail.
async fn assert_fail_closed(
    gateway: &holdpoint_gateway::RunningGateway,
    emulator: &kube_emulator::RunningEmulator,
) {
    emulator.clear_requests();
    let create = request(
        "POST",
        "/api/v1/namespaces/demo/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"unrecorded"},"data":{"a":"b"}}"#,
    );
    let resp = common::raw_request(gateway.addr(), gateway.ca_pem(), &create).await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert!(resp.body.contains("could not be recorded"), "{}", resp.body);
    // Reads: refused once the store's failure is known (audit.reads: refuse).
    let get = request("GET", "/api/v1/namespaces/demo/configmaps/web-config", "");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp = common::raw_request(gateway.addr(), gateway.ca_pem(), &get).await;
        if resp.status == 503 {
            assert!(resp.body.contains("audit"), "{}", resp.body);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "reads were never refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reached: Vec<String> = emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        reached.is_empty(),
        "mutations reached the upstream: {reached:?}"
    );
}

/// The SQLite file opened read-only: the gateway serves (tokens, policy) but cannot record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_read_only_store_refuses_mutations() {
    let t = common::start_custom(static_token_auth(), true, PhaseOverrides::default()).await;
    let common::TestEnv { env, dir: _dir } = t;
    let holdpoint::env::Env {
        emulator,
        gateway,
        config_file,
        ..
    } = env;
    let emulator = emulator.expect("emulator");
    // The store, its chain and the checkpoint key are there; now it becomes read-only.
    gateway.shutdown().await;
    let mut config = holdpoint_gateway::Config::load(&config_file).unwrap();
    let db = config.data_dir.join("holdpoint.db");
    config.store.url = Some(format!("sqlite://{}?mode=ro", db.display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.authentication = static_token_auth();
    let gateway = holdpoint_gateway::start_with(
        config,
        PhaseOverrides {
            decider: Some(std::sync::Arc::new(
                holdpoint_gateway::phases::decide::AllowAll,
            )),
            ..Default::default()
        },
    )
    .await
    .expect("a gateway on the read-only store");
    assert_fail_closed(&gateway, &emulator).await;
    gateway.shutdown().await;
    emulator.shutdown().await;
}

/// PostgreSQL stopped under a running gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_postgres_refuses_mutations() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh");
    let started = tokio::process::Command::new(&script)
        .arg("start")
        .output()
        .await
        .expect("scripts/postgres.sh runs");
    assert!(started.status.success(), "{}", output_text(&started));
    let exports = String::from_utf8_lossy(&started.stdout).into_owned();
    let var = |name: &str| {
        exports
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(str::to_owned)
            .expect("postgres.sh prints the server")
    };
    let (url, pg_dir) = (
        var("HOLDPOINT_TEST_POSTGRES_URL"),
        var("HOLDPOINT_TEST_POSTGRES_DIR"),
    );
    let dir = tempfile::tempdir().unwrap();
    let env = holdpoint::env::Env::start_with(
        holdpoint::env::EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: holdpoint::env::UpstreamChoice::Emulator,
            store_url: Some(url),
            authentication: static_token_auth(),
            impersonate: true,
        },
        PhaseOverrides {
            decider: Some(std::sync::Arc::new(
                holdpoint_gateway::phases::decide::AllowAll,
            )),
            ..Default::default()
        },
    )
    .await
    .expect("environment on the dedicated server");
    let ok = common::raw_request(
        env.gateway.addr(),
        env.gateway.ca_pem(),
        &request("GET", "/api/v1/namespaces/demo/configmaps/web-config", ""),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let stopped = tokio::process::Command::new(&script)
        .args(["stop", &pg_dir])
        .output()
        .await
        .unwrap();
    assert!(stopped.status.success(), "{}", output_text(&stopped));
    assert_fail_closed(&env.gateway, env.emulator.as_ref().unwrap()).await;
    env.shutdown().await;
}

// ------------------------------------------------------------------ exec recordings

/// `sessions replay SID --export OUT`; returns the `.cast` file it wrote.
async fn export_cast(cfg: &str, sid: &str, out: &std::path::Path) -> String {
    holdpoint_ok(&[
        "sessions",
        "replay",
        sid,
        "--config",
        cfg,
        "--export",
        &out.display().to_string(),
    ])
    .await;
    let cast_file = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cast"))
        .unwrap_or_else(|| panic!("a .cast file in {out:?}"));
    std::fs::read_to_string(cast_file).unwrap()
}

/// An exec stream, as the upgrade splice reports it to the record phase, becomes an asciinema
/// v2 cast that `sessions replay` plays and `--export` writes (output as the caller saw it,
/// typed credentials masked).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exec_stream_is_a_cast_that_replays() {
    use holdpoint_gateway::phases::record::{Recorder, StreamEvent};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let kubeconfig = dir.path().join("upstream.kubeconfig");
    std::fs::write(&kubeconfig, "").unwrap();
    let config_file = dir.path().join("holdpoint.yaml");
    std::fs::write(
        &config_file,
        format!(
            "data_dir: {}\nupstream:\n  kubeconfig: {}\n",
            serde_json::to_string(&data_dir.display().to_string()).unwrap(),
            serde_json::to_string(&kubeconfig.display().to_string()).unwrap()
        ),
    )
    .unwrap();
    let config = holdpoint_gateway::Config::load(&config_file).unwrap();
    let store = holdpoint_store::Store::open(&config.store_url())
        .await
        .unwrap();
    let metrics = std::sync::Arc::new(holdpoint_gateway::metrics::Metrics::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (audit, writer) = holdpoint_gateway::audit::Audit::start(
        store.clone(),
        &config.audit,
        &config.mask.engine(),
        holdpoint_gateway::audit::AuditRuntime {
            data_dir: &config.data_dir,
            instance: "test".into(),
            metrics: &metrics,
            clock: std::sync::Arc::new(holdpoint_gateway::clock::SystemClock),
            cancel: cancel.clone(),
        },
    )
    .unwrap();
    let writer = tokio::spawn(writer);
    let recorder = holdpoint_gateway::audit::AuditRecorder::new(audit.clone());

    let method = http::Method::POST;
    let target =
        "/api/v1/namespaces/demo/pods/web-0/exec?command=sh&stdin=true&stdout=true&tty=true";
    let (path, query) = target.split_once('?').unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("kubectl-command", "kubectl exec".parse().unwrap());
    headers.insert("kubectl-session", "3f2a-exec-session".parse().unwrap());
    let ex = holdpoint_gateway::phases::Exchange {
        audit_id: "exec-1".into(),
        received_at: jiff::Timestamp::now(),
        started: std::time::Instant::now(),
        peer: "127.0.0.1:40000".parse().unwrap(),
        method: method.clone(),
        path: target.into(),
        info: Some(kube_request::classify(&method, path, Some(query)).unwrap()),
        identity: Some(holdpoint_gateway::identity::Identity {
            username: "demo-agent".into(),
            groups: vec!["agents".into()],
            uid: None,
            extra: Default::default(),
            authenticator: "static-token".into(),
        }),
        decision: None,
        reveal: Default::default(),
        body: bytes::Bytes::new(),
        content_type: None,
        status: 101,
        outcome: "forwarded",
        error: None,
        caller: holdpoint_gateway::phases::record::CallerHeaders::from_headers(&headers),
        approval: None,
        begun: true,
        masked: Default::default(),
    };
    let token = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    {
        let mut stream = recorder.stream(&ex).expect("exec is recorded");
        let ms = Duration::from_millis;
        stream.event(StreamEvent::Resize {
            at: ms(0),
            width: 120,
            height: 40,
        });
        stream.event(StreamEvent::Stdin {
            at: ms(100),
            data: "echo hi\r".into(),
        });
        stream.event(StreamEvent::Stdout {
            at: ms(150),
            data: "hi\r\n".into(),
        });
        // "é" split across two chunks
        stream.event(StreamEvent::Stdout {
            at: ms(200),
            data: bytes::Bytes::from_static(b"caf\xc3"),
        });
        stream.event(StreamEvent::Stdout {
            at: ms(210),
            data: bytes::Bytes::from_static(b"\xa9\r\n"),
        });
        stream.event(StreamEvent::Stdin {
            at: ms(300),
            data: format!("export GH={token}\r").into(),
        });
        stream.event(StreamEvent::Stderr {
            at: ms(350),
            data: "warning\r\n".into(),
        });
        stream.event(StreamEvent::Closed {
            at: ms(400),
            status: Some(r#"{"metadata":{},"status":"Success"}"#.into()),
        });
    }
    drop(recorder);
    drop(audit);
    cancel.cancel();
    writer.await.unwrap();
    store.close().await;

    let cfg = config_file.display().to_string();
    let listed: Value = serde_json::from_str(
        &holdpoint_ok(&["sessions", "list", "--config", &cfg, "--json"]).await,
    )
    .unwrap();
    let session = &listed.as_array().unwrap()[0];
    assert_eq!(session["streams"], 1, "{listed:#}");
    assert_eq!(session["commands"], serde_json::json!(["kubectl exec"]));
    let sid = session["id"].as_str().unwrap();
    let replayed = holdpoint_ok(&[
        "sessions", "replay", sid, "--config", &cfg, "--speed", "100",
    ])
    .await;
    assert!(
        replayed.contains("hi\r\ncafé\r\nwarning\r\n"),
        "{replayed:?}"
    );
    let shown = holdpoint_ok(&["sessions", "show", sid, "--config", &cfg]).await;
    assert!(
        shown.contains("exec stream") && shown.contains("exit 0 (Success)"),
        "{shown}"
    );

    let out = dir.path().join("export");
    let cast = export_cast(&cfg, sid, &out).await;
    assert!(
        !cast.contains(&token),
        "typed credentials are masked:\n{cast}"
    );
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(120), Some(40))
    );
    assert!(header["timestamp"].as_i64().is_some());
    let mut last = 0.0;
    let mut codes = Vec::new();
    for line in lines {
        let (t, code, data): (f64, String, String) = serde_json::from_str(line).unwrap();
        assert!(t >= last, "times never go back");
        last = t;
        assert!(["o", "i", "r", "m"].contains(&code.as_str()));
        assert!(!data.is_empty());
        codes.push(code);
    }
    assert_eq!(codes, ["r", "i", "o", "o", "o", "i", "o"]);
    assert!(
        std::fs::read_to_string(out.join("events.jsonl"))
            .unwrap()
            .lines()
            .count()
            >= 1
    );
    let verified = holdpoint_bin(&["audit", "verify", "--config", &cfg]).await;
    assert!(verified.status.success(), "{}", output_text(&verified));
}

/// The literal `DATABASE_PASSWORD` of the emulator's demo pods.
const DB_PASSWORD: &str = "hunter2-Pr0d-DB-pa55";

/// Real kubectl exec through the gateway, on both of kubectl's transports: the stored cast holds
/// exactly what kubectl printed (masked), what was typed on stdin (masked), and the exit status;
/// `sessions replay` plays it back with the same output and `--export` writes a v2 cast.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_exec_is_recorded_and_replays_the_same_output() {
    let t = start_audited(|_| {}).await;
    let cfg = config(&t);
    let typed = format!("echo typed\npassword={CANARY}\n");
    let mut known = std::collections::HashSet::new();
    let exports = tempfile::tempdir().unwrap();
    for (transport, envs) in [
        ("websocket", &[][..]),
        (
            "spdy",
            &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
        ),
    ] {
        // `env` prints the pod's environment, a database password among it; `cat` with stdin
        // gives back what was typed.
        type Run<'a> = (&'a str, &'a [&'a str], Option<&'a [u8]>);
        let runs: [Run; 2] = [
            ("env", &["exec", "web-0", "-n", "demo", "--", "env"], None),
            (
                "cat",
                &["exec", "-i", "web-0", "-n", "demo", "--", "cat"],
                Some(typed.as_bytes()),
            ),
        ];
        for (command, args, stdin) in runs {
            let out = t.kubectl_env(args, stdin, envs).await;
            assert!(out.status.success(), "{transport}: {}", output_text(&out));
            let shown = String::from_utf8(out.stdout).unwrap();
            assert!(!shown.contains(DB_PASSWORD), "{transport}: {shown}");
            if command == "env" {
                assert!(shown.contains("HOSTNAME=web-0"), "{transport}: {shown}");
            } else {
                assert!(shown.starts_with("echo typed\n"), "{transport}: {shown}");
            }
            // The stream's event is written when the stream closes: the new exec session.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let session = loop {
                let listed: Value = serde_json::from_str(
                    &holdpoint_ok(&["sessions", "list", "--config", &cfg, "--json"]).await,
                )
                .unwrap();
                let fresh = listed.as_array().unwrap().iter().find(|s| {
                    s["streams"].as_u64() == Some(1)
                        && s["commands"] == serde_json::json!(["kubectl exec"])
                        && !known.contains(s["id"].as_str().unwrap())
                });
                if let Some(s) = fresh {
                    break s.clone();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{transport} {command}: no new exec session: {listed:#}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            known.insert(session["id"].as_str().unwrap().to_owned());
            let sid = session["id"].as_str().unwrap().to_owned();
            let out = exports.path().join(format!("{transport}-{command}"));
            let cast = export_cast(&cfg, &sid, &out).await;
            assert!(!cast.contains(DB_PASSWORD), "{transport}: {cast}");
            assert!(!cast.contains(CANARY), "typed secrets are masked: {cast}");
            let mut lines = cast.lines();
            let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            assert_eq!(header["version"], 2);
            let (mut output, mut input) = (String::new(), String::new());
            for line in lines {
                let (_, code, data): (f64, String, String) = serde_json::from_str(line).unwrap();
                match code.as_str() {
                    "o" => output.push_str(&data),
                    "i" => input.push_str(&data),
                    _ => {}
                }
            }
            assert_eq!(
                output, shown,
                "{transport} {command}: the cast is what kubectl printed"
            );
            if command == "cat" {
                assert!(input.starts_with("echo typed\npassword="), "{input:?}");
                assert!(input.contains("[MASKED]"), "{input:?}");
            }
            let replayed = holdpoint_ok(&[
                "sessions", "replay", &sid, "--config", &cfg, "--speed", "1000",
            ])
            .await;
            assert!(
                replayed.contains(shown.as_str()),
                "{transport} {command}: replay {replayed:?} vs {shown:?}"
            );
            let shown_session = holdpoint_ok(&["sessions", "show", &sid, "--config", &cfg]).await;
            assert!(
                shown_session.contains("exec stream") && shown_session.contains("exit 0 (Success)"),
                "{shown_session}"
            );
        }
    }
    let verified = holdpoint_bin(&["audit", "verify", "--config", &cfg]).await;
    assert!(verified.status.success(), "{}", output_text(&verified));
    t.env.shutdown().await;
}

// ------------------------------------------------------------------ retention and sinks

/// Starts an allow-all environment on SQLite with its audit config adjusted.
async fn start_audited(
    adjust: impl FnOnce(&mut holdpoint_gateway::config::AuditConfig),
) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let env = holdpoint::env::Env::start_configured(
        holdpoint::env::EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: holdpoint::env::UpstreamChoice::Emulator,
            store_url: None,
            authentication: Default::default(),
            impersonate: true,
        },
        PhaseOverrides {
            decider: Some(std::sync::Arc::new(
                holdpoint_gateway::phases::decide::AllowAll,
            )),
            ..Default::default()
        },
        |c| adjust(&mut c.audit),
    )
    .await
    .expect("environment starts");
    TestEnv { env, dir }
}

async fn metric(t: &TestEnv, name: &str) -> f64 {
    let resp = common::raw_request(
        t.env.gateway.admin_addr(),
        t.env.gateway.ca_pem(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    resp.body
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_prunes_and_what_remains_verifies() {
    let t = start_audited(|a| {
        a.retention.max_events = Some(15);
        a.retention.interval = Duration::from_millis(300);
    })
    .await;
    for _ in 0..10 {
        t.kubectl_ok(&["get", "configmap", "web-config"]).await;
    }
    let cfg = config(&t);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = export(&t).await;
        let first = events[0]["holdpoint"]["seq"].as_i64().unwrap();
        let pruned = events
            .iter()
            .any(|e| e["holdpoint"]["action"] == "audit.prune");
        if first > 1 && pruned && events.len() <= 20 {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing pruned: {} events",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let prune = events
        .iter()
        .rev()
        .find(|e| e["holdpoint"]["action"] == "audit.prune")
        .unwrap();
    assert_eq!(prune["holdpoint"]["eventKind"], "prune");
    assert!(prune["holdpoint"]["prune"]["firstKept"].as_i64().unwrap() > 1);
    let verified = holdpoint_bin(&["audit", "verify", "--config", &cfg]).await;
    assert!(verified.status.success(), "{}", output_text(&verified));
    assert!(metric(&t, "holdpoint_audit_pruned_total").await > 0.0);
    t.env.shutdown().await;
}

/// A local webhook receiver that refuses the first `fail` batches with a 500.
async fn webhook_receiver(
    fail: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let got = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (got, refused) = (got.clone(), refused.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (got, refused) = (got.clone(), refused.clone());
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status =
                                if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail
                                {
                                    500
                                } else {
                                    got.lock()
                                        .unwrap()
                                        .push(serde_json::from_slice::<Value>(&body).unwrap());
                                    200
                                };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sinks_deliver_every_event_despite_failures() {
    let (hook, received) = webhook_receiver(2).await;
    let sink_dir = tempfile::tempdir().unwrap();
    let file = sink_dir.path().join("audit.jsonl");
    let file_cfg = file.clone();
    let t = start_audited(move |a| {
        a.sinks.file = Some(holdpoint_gateway::config::FileSinkConfig {
            path: file_cfg,
            // Small enough that ten events (each well over 200 bytes) always rotate it.
            max_bytes: 2 * 1024,
            max_files: 50,
            format: holdpoint_gateway::config::SinkFormat::Jsonl,
        });
        a.sinks.webhook = Some(holdpoint_gateway::config::WebhookSinkConfig {
            url: format!("http://{hook}/audit"),
            ca_file: None,
            batch_max: 10,
            timeout: Duration::from_secs(5),
            format: holdpoint_gateway::config::SinkFormat::K8sAudit,
        });
    })
    .await;
    for _ in 0..10 {
        t.kubectl_ok(&["get", "configmap", "web-config"]).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let in_store: Vec<i64> = export(&t)
            .await
            .iter()
            .map(|e| e["holdpoint"]["seq"].as_i64().unwrap())
            .collect();
        // The file sink: every event once, in order, across the rotated files.
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(sink_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort_by_key(|p| {
            std::cmp::Reverse(
                p.extension()
                    .and_then(|e| e.to_str())
                    .and_then(|e| e.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        let in_file: Vec<i64> = files
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["holdpoint"]["seq"]
                            .as_i64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let in_hook: Vec<i64> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|list| {
                assert_eq!(list["kind"], "EventList");
                assert_eq!(list["apiVersion"], "audit.k8s.io/v1");
                list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        e["annotations"]["holdpoint.dev/seq"]
                            .as_str()
                            .unwrap()
                            .parse::<i64>()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if in_file == in_store && in_hook == in_store && in_store.len() >= 10 {
            let written: u64 = files
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum();
            assert!(
                files.len() > 1,
                "the file was rotated ({written} bytes written): {files:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sinks behind: store {in_store:?}\nfile {in_file:?}\nwebhook {in_hook:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(metric(&t, "holdpoint_audit_sink_failures_total{sink=\"webhook\"}").await >= 2.0);
    assert!(metric(&t, "holdpoint_audit_sink_events_total{sink=\"file\"}").await >= 10.0);
    t.env.shutdown().await;
}

// ------------------------------------------------------------------ the auditor API, reloads

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auditor_api_lists_shows_exports_and_verifies() {
    use holdpoint::approvals_cmd::{ApiArgs, ApiClient};
    let t = start_audited(|a| a.auditors.users = vec!["someone-else".into()]).await;
    t.kubectl_ok(&["get", "configmap", "web-config", "-o", "json"])
        .await;
    let client = |who: &str| {
        let kubeconfig = t.env.kubeconfig(who).to_owned();
        async move {
            ApiClient::new(&ApiArgs {
                kubeconfig: Some(kubeconfig),
                admin_url: None,
            })
            .await
            .unwrap()
        }
    };
    // demo-admin is an admin (group reviewers); demo-agent is neither admin nor auditor.
    let admin = client("admin").await;
    let agent = client("agent").await;
    let refused = agent.get("/v1/audit/sessions").await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    // A refused credential on the admin API is recorded (source, path, status), never the token.
    let bad = common::raw_request(
        t.env.gateway.admin_addr(),
        t.env.gateway.ca_pem(),
        b"GET /v1/audit/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer not-a-real-admin-token\r\nUser-Agent: intruder/1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(bad.status, 401);
    let recorded = wait_for_event(&t, "refused admin credential", |e| {
        e["verb"] == "authenticate" && e["requestURI"] == "/v1/audit/sessions"
    })
    .await;
    assert_eq!(recorded["responseStatus"]["code"], 401, "{recorded:#}");
    assert_eq!(recorded["userAgent"], "intruder/1");
    assert_eq!(recorded["sourceIPs"][0], "127.0.0.1");
    assert!(!recorded.to_string().contains("not-a-real-admin-token"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let session = loop {
        let list = admin
            .get("/v1/audit/sessions?user=demo-agent")
            .await
            .unwrap();
        if let Some(s) = list["items"].as_array().and_then(|i| i.first()) {
            break s.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no session: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = session["id"].as_str().unwrap();
    let shown = admin
        .get(&format!("/v1/audit/sessions/{id}?bodies=true"))
        .await
        .unwrap();
    assert!(
        shown["timeline"].as_str().unwrap().contains("kubectl get"),
        "{shown:#}"
    );
    assert!(
        shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["responseObject"]["kind"] == "ConfigMap"),
        "{shown:#}"
    );
    let export = admin
        .get_text("/v1/audit/events?format=k8s-audit")
        .await
        .unwrap();
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    assert!(
        lines
            .iter()
            .all(|e| e["apiVersion"] == "audit.k8s.io/v1" && e.get("holdpoint").is_none())
    );
    let verified = admin.get("/v1/audit/verify").await.unwrap();
    assert_eq!(verified["holds"], true, "{verified:#}");
    let doc = admin.get("/openapi.json").await.unwrap();
    for path in [
        "/v1/audit/sessions",
        "/v1/audit/sessions/{session}",
        "/v1/audit/events",
        "/v1/audit/verify",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(
        admin
            .get("/v1/audit/sessions/no-such-session")
            .await
            .is_err()
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_reloads_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "rules: []\ndefault: {action: allow}\n").unwrap();
    let policy_file = policy.clone();
    let env = holdpoint::env::Env::start_configured(
        holdpoint::env::EnvOptions {
            dir: dir.path().join("env"),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: holdpoint::env::UpstreamChoice::Emulator,
            store_url: None,
            authentication: Default::default(),
            impersonate: true,
        },
        PhaseOverrides::default(),
        |c| c.policy.file = Some(policy_file),
    )
    .await
    .unwrap();
    let t = TestEnv { env, dir };
    // A good file, then one that does not load (the old policy stays; both are recorded).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &policy,
        "rules:\n  - name: reads\n    match: {mutating: false}\n    action: allow\ndefault: {action: deny}\n",
    )
    .unwrap();
    let good = wait_for_event(&t, "policy reload", |e| {
        e["holdpoint"]["action"] == "policy.reload" && e["responseStatus"]["code"] == 200
    })
    .await;
    assert_eq!(good["holdpoint"]["detail"]["rules"], 1);
    assert_eq!(good["user"]["username"], "holdpoint");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&policy, "rules: [\n").unwrap();
    let bad = wait_for_event(&t, "refused policy reload", |e| {
        e["holdpoint"]["action"] == "policy.reload" && e["responseStatus"]["code"] == 400
    })
    .await;
    assert!(
        bad["holdpoint"]["outcome"]
            .as_str()
            .unwrap()
            .contains("previous policy stays")
    );
    t.env.shutdown().await;
}
