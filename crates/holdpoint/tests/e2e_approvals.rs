//! End to end: the approval workflow with real kubectl against the emulator, through the gateway,
//! with the reviewer acting through the real `holdpoint` binary (or its API), on SQLite and on
//! PostgreSQL (every test runs on both: `sqlite::` and `postgres::`).
//!
//! The policy is `tests/policy/approvals.yaml`: reads pass; `default` needs two reviewers;
//! `kube-public` is a `grant` rule; `kube-node-lease` only changes inside a Tuesday window;
//! everything else that mutates waits for one reviewer of group `reviewers`, with a 2 s hold.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::TestEnv;
use holdpoint::approvals_cmd::{ApiArgs, ApiClient};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::clock::ManualClock;
use holdpoint_gateway::phases::decide::{PolicyDecider, no_freeze};
use holdpoint_store::{Approval, ApprovalFilter, ApprovalState};
use serde_json::json;

fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy/approvals.yaml")
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn store_url(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(
            holdpoint_store::testing::fresh_postgres_url()
                .await
                .expect("a PostgreSQL server for the tests (scripts/test.sh starts one)"),
        ),
    }
}

struct Setup {
    t: TestEnv,
    clock: Option<Arc<ManualClock>>,
}

async fn setup(backend: Backend, clock: Option<jiff::Timestamp>) -> Setup {
    let freeze = no_freeze();
    let decider = PolicyDecider::from_file(&policy_file(), freeze.clone()).expect("test policy");
    let clock = clock.map(|at| Arc::new(ManualClock::new(at)));
    let t = common::start_with(
        store_url(backend).await,
        PhaseOverrides {
            decider: Some(Arc::new(decider)),
            freeze: Some(freeze),
            clock: clock
                .clone()
                .map(|c| c as Arc<dyn holdpoint_gateway::clock::Clock>),
            ..Default::default()
        },
    )
    .await;
    assert!(
        common::on_emulator(&t),
        "the approval suite checks what reached the upstream, so it runs against the emulator"
    );
    Setup { t, clock }
}

impl Setup {
    fn api_args(&self, kubeconfig: &Path) -> ApiArgs {
        ApiArgs {
            kubeconfig: Some(kubeconfig.to_owned()),
            admin_url: None,
        }
    }

    async fn reviewer(&self) -> ApiClient {
        ApiClient::new(&self.api_args(&self.t.env.admin_kubeconfig))
            .await
            .unwrap()
    }

    /// A kubeconfig for a new stored-token identity `user` in group `reviewers`.
    async fn reviewer_kubeconfig(&self, user: &str) -> PathBuf {
        let path = self.t.dir.path().join(format!("{user}.kubeconfig"));
        holdpoint::tokens::write_token_kubeconfig(
            self.t.env.gateway.store(),
            &holdpoint::tokens::TokenSpec {
                user: user.into(),
                groups: vec!["reviewers".into()],
                ttl: None,
                description: None,
                created_by: "test".into(),
            },
            holdpoint::tokens::Target {
                server: &self.t.env.gateway.url(),
                admin_server: &self.t.env.gateway.admin_url(),
                ca_pem: self.t.env.gateway.ca_pem(),
                namespace: Some("demo"),
            },
            &path,
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        path
    }

    /// Runs the real `holdpoint` binary with a kubeconfig.
    async fn holdpoint(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_holdpoint"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("HOLDPOINT_ADMIN_URL");
        cmd.output().await.expect("holdpoint runs")
    }

    async fn holdpoint_ok(&self, kubeconfig: &Path, args: &[&str]) -> String {
        let out = self.holdpoint(kubeconfig, args).await;
        assert!(
            out.status.success(),
            "holdpoint {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until exactly `n` approvals are pending, and returns them.
    async fn pending(&self, n: usize) -> Vec<Approval> {
        self.t.pending_approvals(n).await
    }

    async fn approval(&self, id: &str) -> Approval {
        self.t
            .env
            .gateway
            .store()
            .get_approval(id)
            .await
            .unwrap()
            .unwrap()
    }

    /// kubectl as the agent, in the background.
    fn kubectl_bg(&self, args: &[&str], stdin: Option<&str>) -> tokio::task::JoinHandle<Output> {
        self.t.kubectl_bg("agent", args, stdin)
    }

    async fn upstream_has(&self, args: &[&str]) -> bool {
        let out = self.t.kubectl_as("admin", args, None).await;
        out.status.success()
    }
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: demo\ndata:\n  greeting: hello\n";

async fn apply_is_held_then_approved_then_applied(backend: Backend) {
    let s = setup(backend, None).await;
    let kubectl = s.kubectl_bg(&["apply", "-f", "-"], Some(CONFIGMAP));
    let pending = s.pending(1).await;
    let id = pending[0].id.clone();
    assert_eq!(pending[0].requester.username, "demo-agent");
    assert_eq!(pending[0].rule, "changes");
    assert_eq!(pending[0].request.method, "POST"); // client-side apply of a new object
    assert!(
        pending[0]
            .kubectl_command
            .as_deref()
            .unwrap_or("")
            .contains("apply"),
        "kubectl command recorded: {:?}",
        pending[0].kubectl_command
    );
    assert!(
        !s.upstream_has(&["get", "configmap", "held", "-n", "demo"])
            .await,
        "nothing reaches the upstream while pending"
    );

    // The reviewer sees the decoded request and the dry-run result, and nothing was written.
    let admin = s.t.env.admin_kubeconfig.clone();
    let shown = s.holdpoint_ok(&admin, &["approvals", "show", &id]).await;
    assert!(shown.contains("greeting: hello"), "{shown}");
    assert!(shown.contains("diff (live -> server dry run)"), "{shown}");
    assert!(shown.contains("+  greeting: hello"), "{shown}");
    assert!(
        !s.upstream_has(&["get", "configmap", "held", "-n", "demo"])
            .await
    );
    let listed = s.holdpoint_ok(&admin, &["approvals", "list"]).await;
    assert!(
        listed.contains(&id) && listed.contains("pending"),
        "{listed}"
    );

    let approved = s
        .holdpoint_ok(&admin, &["approvals", "approve", &id, "--reason", "fine"])
        .await;
    assert!(approved.contains("executed"), "{approved}");
    let out = kubectl.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("configmap/held"), "{}", text(&out));
    assert!(
        s.upstream_has(&["get", "configmap", "held", "-n", "demo"])
            .await
    );
    let a = s.approval(&id).await;
    assert_eq!(a.state, ApprovalState::Executed);
    assert!(a.result.as_ref().is_some_and(|r| r.status < 300));
    let states: Vec<ApprovalState> =
        s.t.env
            .gateway
            .store()
            .approval_events(&id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.to_state)
            .collect();
    assert_eq!(
        states,
        [
            ApprovalState::Pending,
            ApprovalState::Approved,
            ApprovalState::Executing,
            ApprovalState::Executed
        ]
    );
    // `holdpoint wait` reports the outcome and exits 0.
    let waited = s.holdpoint_ok(&admin, &["wait", &id]).await;
    assert!(waited.contains("executed"), "{waited}");
    s.t.env.shutdown().await;
}

async fn denied_with_the_reason_shown_by_kubectl(backend: Backend) {
    let s = setup(backend, None).await;
    let kubectl = s.kubectl_bg(
        &[
            "create",
            "configmap",
            "nope",
            "-n",
            "demo",
            "--from-literal=a=b",
        ],
        None,
    );
    let id = s.pending(1).await[0].id.clone();
    let admin = s.t.env.admin_kubeconfig.clone();
    // A denial needs a reason.
    let out = s
        .holdpoint(&admin, &["approvals", "deny", &id, "--reason", ""])
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    s.holdpoint_ok(
        &admin,
        &[
            "approvals",
            "deny",
            &id,
            "--reason",
            "not during the incident",
        ],
    )
    .await;
    let out = kubectl.await.unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("not during the incident"), "{msg}");
    assert!(msg.contains("demo-admin"), "{msg}");
    assert!(
        !s.upstream_has(&["get", "configmap", "nope", "-n", "demo"])
            .await
    );
    // `holdpoint wait` exits non-zero for a denial.
    let out = s.holdpoint(&admin, &["wait", &id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not during the incident"));
    s.t.env.shutdown().await;
}

async fn the_requester_cannot_approve_its_own_request(backend: Backend) {
    let s = setup(backend, None).await;
    // The agent is given the reviewer group too: still never its own reviewer.
    let agent_as_reviewer = s.reviewer_kubeconfig("self-reviewer").await;
    let kc = agent_as_reviewer.clone();
    let kubectl = tokio::task::spawn_blocking(move || {
        common::kubectl_blocking(
            &kc,
            &[
                "create".into(),
                "configmap".into(),
                "mine".into(),
                "--from-literal=a=b".into(),
            ],
            None,
        )
    });
    let id = s.pending(1).await[0].id.clone();
    let out = s
        .holdpoint(&agent_as_reviewer, &["approvals", "approve", &id])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot approve or deny its own request"),
        "{}",
        text(&out)
    );
    assert_eq!(s.approval(&id).await.state, ApprovalState::Pending);
    // The plain agent (not a reviewer) cannot approve either.
    let out = s
        .holdpoint(&s.t.env.agent_kubeconfig, &["approvals", "approve", &id])
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(s.approval(&id).await.state, ApprovalState::Pending);
    // Nobody without a credential gets anywhere near the API.
    let anonymous = common::raw_request(
        s.t.env.gateway.admin_addr(),
        s.t.env.gateway.ca_pem(),
        format!(
            "POST /v1/approvals/{id}/approve HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(s.approval(&id).await.state, ApprovalState::Pending);
    // The requester may cancel; kubectl then gets a 403.
    s.holdpoint_ok(&agent_as_reviewer, &["approvals", "cancel", &id])
        .await;
    let out = kubectl.await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("cancelled"), "{}", text(&out));
    s.t.env.shutdown().await;
}

async fn quorum_of_two_needs_two_distinct_reviewers(backend: Backend) {
    let s = setup(backend, None).await;
    let kubectl = s.kubectl_bg(
        &[
            "create",
            "configmap",
            "two",
            "-n",
            "default",
            "--from-literal=a=b",
        ],
        None,
    );
    let id = s.pending(1).await[0].id.clone();
    let admin = s.t.env.admin_kubeconfig.clone();
    s.holdpoint_ok(&admin, &["approvals", "approve", &id]).await;
    let again = s.holdpoint_ok(&admin, &["approvals", "approve", &id]).await;
    assert!(again.contains("already voted"), "{again}");
    assert_eq!(s.approval(&id).await.state, ApprovalState::Pending);
    assert!(
        !s.upstream_has(&["get", "configmap", "two", "-n", "default"])
            .await
    );
    let second = s.reviewer_kubeconfig("second-reviewer").await;
    s.holdpoint_ok(&second, &["approvals", "approve", &id])
        .await;
    let out = kubectl.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.approval(&id).await.state, ApprovalState::Executed);
    let votes = s.t.env.gateway.store().approval_votes(&id).await.unwrap();
    assert_eq!(votes.len(), 2, "{votes:?}");
    s.t.env.shutdown().await;
}

async fn identical_requests_attach_and_the_object_is_written_once(backend: Backend) {
    let s = setup(backend, None).await;
    let args = [
        "create",
        "configmap",
        "once",
        "-n",
        "demo",
        "--from-literal=a=b",
    ];
    let first = s.kubectl_bg(&args, None);
    let id = s.pending(1).await[0].id.clone();
    let second = s.kubectl_bg(&args, None);
    // The second (identical) request attaches: still one approval, after both have been held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all =
        s.t.env
            .gateway
            .store()
            .list_approvals(&ApprovalFilter::default())
            .await
            .unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].id, id);
    let voted = s
        .reviewer()
        .await
        .post(&format!("/v1/approvals/{id}/approve"), json!({}))
        .await
        .unwrap();
    assert_eq!(voted["state"], "executed", "{voted:#}");
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    // Both callers get the one execution's answer (201 Created): nobody sees AlreadyExists.
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert!(
        s.upstream_has(&["get", "configmap", "once", "-n", "demo"])
            .await
    );
    let executions =
        s.t.env
            .gateway
            .store()
            .approval_events(&id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to_state == ApprovalState::Executing)
            .count();
    assert_eq!(executions, 1, "sent upstream exactly once");
    let creates =
        s.t.emulator()
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path == "/api/v1/namespaces/demo/configmaps"
                    && !r.query.as_deref().unwrap_or("").contains("dryRun")
            })
            .count();
    assert_eq!(creates, 1, "the emulator received the create once");
    assert_eq!(
        s.approval(&id).await.state,
        ApprovalState::Executed,
        "executed exactly once"
    );
    s.t.env.shutdown().await;
}

async fn grant_lets_the_caller_send_it_once(backend: Backend) {
    let s = setup(backend, None).await;
    let args = [
        "create",
        "configmap",
        "granted",
        "-n",
        "kube-public",
        "--from-literal=a=b",
    ];
    let kubectl = s.kubectl_bg(&args, None);
    let id = s.pending(1).await[0].id.clone();
    let admin = s.t.env.admin_kubeconfig.clone();
    let out = s.holdpoint_ok(&admin, &["approvals", "approve", &id]).await;
    assert!(out.contains("approved"), "{out}");
    // kubectl's own retry of the identical request uses the grant.
    let out = kubectl.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        s.upstream_has(&["get", "configmap", "granted", "-n", "kube-public"])
            .await
    );
    assert_eq!(s.approval(&id).await.state, ApprovalState::Executed);
    // Used once: the identical request again needs a new approval.
    let again = s.kubectl_bg(&args, None);
    let next = s.pending(1).await;
    assert_ne!(next[0].id, id);
    s.reviewer()
        .await
        .post(
            &format!("/v1/approvals/{}/deny", next[0].id),
            json!({"reason": "once is enough"}),
        )
        .await
        .unwrap();
    let out = again.await.unwrap();
    assert!(text(&out).contains("once is enough"), "{}", text(&out));
    s.t.env.shutdown().await;
}

async fn a_pending_request_expires(backend: Backend) {
    let start: jiff::Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
    let s = setup(backend, Some(start)).await;
    let kubectl = s.kubectl_bg(
        &[
            "create",
            "configmap",
            "late",
            "-n",
            "demo",
            "--from-literal=a=b",
        ],
        None,
    );
    let id = s.pending(1).await[0].id.clone();
    s.clock.as_ref().unwrap().set(
        start
            .checked_add(jiff::SignedDuration::from_hours(2))
            .unwrap(),
    );
    // The sweeper (every second) expires it; the held caller learns it.
    let out = kubectl.await.unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("expired"), "{}", text(&out));
    assert_eq!(s.approval(&id).await.state, ApprovalState::Expired);
    let err = s
        .reviewer()
        .await
        .post(&format!("/v1/approvals/{id}/approve"), json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    assert!(
        !s.upstream_has(&["get", "configmap", "late", "-n", "demo"])
            .await
    );
    s.t.env.shutdown().await;
}

async fn the_change_window_denies_outside_and_allows_inside(backend: Backend) {
    // Tuesday 2026-12-01, 10:30 UTC: inside the window.
    let inside: jiff::Timestamp = "2026-12-01T10:30:00Z".parse().unwrap();
    let s = setup(backend, Some(inside)).await;
    let out =
        s.t.kubectl(&[
            "create",
            "configmap",
            "in-window",
            "-n",
            "kube-node-lease",
            "--from-literal=a=b",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    // Wednesday: outside.
    s.clock
        .as_ref()
        .unwrap()
        .set("2026-12-02T10:30:00Z".parse().unwrap());
    let out =
        s.t.kubectl(&[
            "create",
            "configmap",
            "out-of-window",
            "-n",
            "kube-node-lease",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("outside the Tuesday change window"),
        "{}",
        text(&out)
    );
    assert!(
        !s.upstream_has(&["get", "configmap", "out-of-window", "-n", "kube-node-lease"])
            .await
    );
    s.t.env.shutdown().await;
}

async fn freeze_on_denies_every_change_and_off_restores_the_policy(backend: Backend) {
    let s = setup(backend, None).await;
    let admin = s.t.env.admin_kubeconfig.clone();
    // Only admins may freeze.
    let out = s
        .holdpoint(
            &s.t.env.agent_kubeconfig,
            &["freeze", "on", "--reason", "agent wants peace"],
        )
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let on = s
        .holdpoint_ok(&admin, &["freeze", "on", "--reason", "incident 42"])
        .await;
    assert!(on.contains("freeze ON"), "{on}");
    let out =
        s.t.kubectl(&[
            "create",
            "configmap",
            "frozen",
            "-n",
            "demo",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("incident 42"), "{}", text(&out));
    // Reads still pass.
    s.t.kubectl_ok(&["get", "configmaps", "-n", "demo"]).await;
    // The freeze is stored.
    assert!(s.t.env.gateway.store().freeze().await.unwrap().on);
    let off = s.holdpoint_ok(&admin, &["freeze", "off"]).await;
    assert!(off.contains("freeze off"), "{off}");
    // Back to the policy: the change is held again.
    let kubectl = s.kubectl_bg(
        &[
            "create",
            "configmap",
            "thawed",
            "-n",
            "demo",
            "--from-literal=a=b",
        ],
        None,
    );
    let id = s.pending(1).await[0].id.clone();
    s.holdpoint_ok(&admin, &["approvals", "approve", &id]).await;
    assert!(kubectl.await.unwrap().status.success());
    s.t.env.shutdown().await;
}

async fn exec_is_held_like_any_mutation(backend: Backend) {
    let s = setup(backend, None).await;
    let kubectl = s.kubectl_bg(&["exec", "web-0", "-n", "demo", "--", "env"], None);
    let pending = s.pending(1).await;
    assert_eq!(pending[0].summary.subresource.as_deref(), Some("exec"));
    // An upgrade runs on the caller's own connection: always a grant.
    assert_eq!(pending[0].mode, holdpoint_store::ApprovalMode::Grant);
    let id = pending[0].id.clone();
    let admin = s.t.env.admin_kubeconfig.clone();
    let shown = s.holdpoint_ok(&admin, &["approvals", "show", &id]).await;
    assert!(shown.contains("interactive"), "{shown}");
    s.holdpoint_ok(&admin, &["approvals", "approve", &id]).await;
    let out = kubectl.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("HOSTNAME=web-0"), "{}", text(&out));
    s.t.env.shutdown().await;
}

async fn port_forward_is_held_like_any_mutation(backend: Backend) {
    use std::io::{BufRead, Read, Write};
    let s = setup(backend, None).await;
    let port = free_port().port();
    let mut pf = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.t.env.agent_kubeconfig)
        .env_remove("KUBECONFIG")
        .args([
            "port-forward",
            "-n",
            "demo",
            "pod/web-0",
            &format!("{port}:8080"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = pf.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return (false, reader),
                Ok(_) if line.contains("Forwarding from") => return (true, reader),
                Ok(_) => {}
            }
        }
    });
    let pending = s.pending(1).await;
    assert_eq!(
        pending[0].summary.subresource.as_deref(),
        Some("portforward")
    );
    assert_eq!(pending[0].mode, holdpoint_store::ApprovalMode::Grant);
    let id = pending[0].id.clone();
    s.holdpoint_ok(&s.t.env.admin_kubeconfig, &["approvals", "approve", &id])
        .await;
    let (forwarding, _reader) = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("kubectl port-forward started")
        .unwrap();
    assert!(forwarding, "port-forward did not start after approval");
    let echoed = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"held, approved, forwarded").unwrap();
        let mut buf = [0u8; 25];
        c.read_exact(&mut buf).map(|_| buf.to_vec())
    })
    .await
    .unwrap();
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(echoed.unwrap(), b"held, approved, forwarded");
    assert_eq!(s.approval(&id).await.state, ApprovalState::Executed);
    s.t.env.shutdown().await;
}

async fn the_reviewer_sees_live_object_dry_run_diff_and_what_would_be_deleted(backend: Backend) {
    let s = setup(backend, None).await;
    // A patch of an existing object: the live object and the diff to the server's dry run.
    let patch = s.kubectl_bg(
        &[
            "patch",
            "configmap",
            "web-config",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            r#"{"data":{"reviewed":"yes"}}"#,
        ],
        None,
    );
    let id = s.pending(1).await[0].id.clone();
    let shown = s
        .reviewer()
        .await
        .get(&format!("/v1/approvals/{id}"))
        .await
        .unwrap();
    let review = &shown["review"];
    assert!(
        review["live"].as_str().unwrap_or("").contains("web-config"),
        "{review:#}"
    );
    assert_eq!(review["dryRun"]["status"], 200, "{review:#}");
    let diff = review["diff"].as_str().unwrap_or("");
    assert!(
        diff.contains("+  reviewed: yes")
            || diff.contains("+  reviewed: 'yes'")
            || diff.contains("+  reviewed: \"yes\""),
        "{diff}"
    );
    assert!(
        review["request"]
            .as_str()
            .unwrap_or("")
            .contains("reviewed"),
        "{review:#}"
    );
    // Nothing was written by building the view.
    let live =
        s.t.emulator()
            .get("v1", "ConfigMap", "demo", "web-config")
            .unwrap();
    assert!(live["data"].get("reviewed").is_none(), "{live:#}");
    s.reviewer()
        .await
        .post(
            &format!("/v1/approvals/{id}/deny"),
            json!({"reason": "not needed"}),
        )
        .await
        .unwrap();
    assert!(!patch.await.unwrap().status.success());

    // A deletecollection: the names it would delete, and nothing deleted.
    let req = format!(
        "DELETE /api/v1/namespaces/demo/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.t.agent_token()
    );
    let resp = s.t.raw(req.as_bytes()).await;
    assert_eq!(resp.status, 429, "{}", resp.body);
    let pending = s.pending(1).await;
    assert_eq!(pending[0].summary.verb, "deletecollection");
    let shown = s
        .reviewer()
        .await
        .get(&format!("/v1/approvals/{}", pending[0].id))
        .await
        .unwrap();
    let names: Vec<&str> = shown["review"]["wouldDelete"]
        .as_array()
        .unwrap_or_else(|| panic!("{shown:#}"))
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(names.contains(&"web-config"), "{names:?}");
    assert!(
        s.t.emulator()
            .get("v1", "ConfigMap", "demo", "web-config")
            .is_some(),
        "the dry run deleted nothing"
    );
    s.t.env.shutdown().await;
}

/// A gateway run as a separate `holdpoint serve` process, so a test can kill it with SIGKILL.
struct Process {
    child: tokio::process::Child,
    config: PathBuf,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    ca_pem: String,
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Process {
    async fn start(config: &Path, addr: std::net::SocketAddr, admin: std::net::SocketAddr) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_holdpoint"))
            .args(["serve", "--config"])
            .arg(config)
            .env("HOLDPOINT_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("holdpoint serve starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(admin).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ca = config.parent().unwrap().join("data/tls/ca.crt");
        // Listening is not serving: the admin listener answers only once start-up (crash
        // recovery included) is done.
        let ready = common::raw_request(
            admin,
            &std::fs::read_to_string(&ca).unwrap(),
            b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(ready.status, 200);
        Self {
            child,
            config: config.to_owned(),
            addr,
            admin,
            ca_pem: std::fs::read_to_string(ca).unwrap(),
        }
    }

    async fn kill9(mut self) -> (PathBuf, std::net::SocketAddr, std::net::SocketAddr) {
        self.child.start_kill().unwrap(); // SIGKILL
        self.child.wait().await.unwrap();
        (self.config, self.addr, self.admin)
    }
}

fn create_request(name: &str, token: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"demo"}},"data":{{"a":"b"}}}}"#
    );
    format!(
        "POST /api/v1/namespaces/demo/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn a_crash_keeps_pending_approvals_and_never_resends_an_executing_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = kube_emulator::start(kube_emulator::EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        seed: kube_emulator::Seed::Demo,
        admin_token: None,
    })
    .await
    .unwrap();
    let upstream = dir.path().join("upstream.kubeconfig");
    emulator.write_kubeconfig(&upstream).unwrap();
    let (agent, reviewer) = ("agent-token-crash-test", "reviewer-token-crash-test");
    let sha = holdpoint_gateway::phases::authenticate::token_sha256_hex;
    let url = store_url(backend).await.unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            dir.path().join("data/holdpoint.db").display()
        )
    });
    let (addr, admin) = (free_port(), free_port());
    let config = dir.path().join("holdpoint.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {addr}\nadmin_listen: {admin}\ndata_dir: {data:?}\nupstream:\n  kubeconfig: {up:?}\n\
             instance_name: crash-test\nstore:\n  url: {url:?}\npolicy:\n  file: {policy:?}\nadmin:\n  groups: [reviewers]\n\
             authentication:\n  static_tokens:\n    - sha256: {a}\n      user: crash-agent\n      groups: [agents]\n\
             \x20   - sha256: {r}\n      user: crash-reviewer\n      groups: [reviewers]\n",
            data = dir.path().join("data").display().to_string(),
            up = upstream.display().to_string(),
            policy = policy_file().display().to_string(),
            a = sha(agent),
            r = sha(reviewer),
        ),
    )
    .unwrap();
    let gw = Process::start(&config, addr, admin).await;

    // Held: the agent gets the pending answer naming the approval.
    let resp = common::raw_request(gw.addr, &gw.ca_pem, &create_request("survives", agent)).await;
    assert_eq!(resp.status, 429, "{}", resp.body);
    let store = holdpoint_store::Store::open(&url).await.unwrap();
    let pending = store
        .list_approvals(&ApprovalFilter {
            state: Some(ApprovalState::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let survivor = pending[0].id.clone();
    assert!(resp.body.contains(&survivor), "{}", resp.body);
    // A second held request, to be left `executing` by a crash.
    let resp = common::raw_request(gw.addr, &gw.ca_pem, &create_request("in-flight", agent)).await;
    assert_eq!(resp.status, 429, "{}", resp.body);
    let in_flight = store
        .list_approvals(&ApprovalFilter {
            state: Some(ApprovalState::Pending),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id != survivor)
        .unwrap()
        .id;

    let ca_pem = gw.ca_pem.clone();
    let (config, addr, admin) = gw.kill9().await;
    // What a crash between "executing" and the upstream's answer leaves behind: the approval
    // marked executing by an instance that is gone.
    let now = jiff::Timestamp::now();
    let voter = holdpoint_store::Voter {
        username: "crash-reviewer".into(),
        groups: vec!["reviewers".into()],
    };
    store
        .vote(
            &in_flight,
            &voter,
            holdpoint_store::Decision::Approve,
            None,
            now,
        )
        .await
        .unwrap();
    assert!(
        store
            .begin_execute(&in_flight, "crash-test", now)
            .await
            .unwrap()
    );

    let gw = Process::start(&config, addr, admin).await;
    assert_eq!(gw.ca_pem, ca_pem, "the CA is reused after a restart");
    // The executing one is `unknown` and was never sent.
    let a = store.get_approval(&in_flight).await.unwrap().unwrap();
    assert_eq!(a.state, ApprovalState::Unknown);
    // The pending one survived and can be decided through the restarted gateway.
    assert_eq!(
        store.get_approval(&survivor).await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
    let kubeconfig = dir.path().join("reviewer.kubeconfig");
    std::fs::write(
        &kubeconfig,
        holdpoint::kubeconfig::with_admin_server(
            &holdpoint::kubeconfig::for_token(
                &format!("https://{addr}"),
                &ca_pem,
                "reviewer",
                reviewer,
                None,
            ),
            &format!("https://{admin}"),
        ),
    )
    .unwrap();
    let api = ApiClient::new(&ApiArgs {
        kubeconfig: Some(kubeconfig),
        admin_url: None,
    })
    .await
    .unwrap();
    let voted = api
        .post(&format!("/v1/approvals/{survivor}/approve"), json!({}))
        .await
        .unwrap();
    assert_eq!(voted["state"], "executed", "{voted:#}");
    let creates: Vec<String> = emulator
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == "/api/v1/namespaces/demo/configmaps"
                && !r.query.as_deref().unwrap_or("").contains("dryRun")
        })
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        creates.len(),
        1,
        "only the approved survivor was sent: {creates:?}"
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", "demo", "survives")
            .is_some()
    );
    assert!(
        emulator
            .get("v1", "ConfigMap", "demo", "in-flight")
            .is_none()
    );
    // Even re-sending the in-flight request gets the `unknown` answer, not a second send.
    let resp = common::raw_request(addr, &ca_pem, &create_request("in-flight", agent)).await;
    assert_eq!(resp.status, 409, "{}", resp.body);
    assert!(resp.body.contains("unknown"), "{}", resp.body);
    assert!(
        emulator
            .get("v1", "ConfigMap", "demo", "in-flight")
            .is_none()
    );
    gw.kill9().await;
    store.close().await;
    emulator.shutdown().await;
}

async fn an_undecided_request_ends_with_the_whole_message_within_the_budget(backend: Backend) {
    let s = setup(backend, None).await;
    let started = std::time::Instant::now();
    let out =
        s.t.kubectl(&[
            "create",
            "configmap",
            "undecided",
            "-n",
            "demo",
            "--from-literal=a=b",
        ])
        .await;
    let took = started.elapsed();
    assert!(!out.status.success());
    let msg = text(&out);
    let id = s.pending(1).await[0].id.clone();
    // Everything an agent needs is in the message (tools drop every other Status field).
    for needle in [
        id.as_str(),
        "group reviewers",
        "/v1/approvals/",
        "holdpoint wait",
        "never applied twice",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from {msg}");
    }
    // client-go retried the 429 by itself (11 attempts x 2 s hold + 10 x 1 s Retry-After) and
    // gave up well inside an agent's 120 s tool timeout.
    assert!(
        took >= Duration::from_secs(25) && took < Duration::from_secs(60),
        "kubectl took {took:?}"
    );
    s.t.env.shutdown().await;
}

macro_rules! on_both_stores {
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

on_both_stores!(
    apply_is_held_then_approved_then_applied,
    denied_with_the_reason_shown_by_kubectl,
    the_requester_cannot_approve_its_own_request,
    quorum_of_two_needs_two_distinct_reviewers,
    identical_requests_attach_and_the_object_is_written_once,
    grant_lets_the_caller_send_it_once,
    a_pending_request_expires,
    the_change_window_denies_outside_and_allows_inside,
    freeze_on_denies_every_change_and_off_restores_the_policy,
    exec_is_held_like_any_mutation,
    port_forward_is_held_like_any_mutation,
    the_reviewer_sees_live_object_dry_run_diff_and_what_would_be_deleted,
    a_crash_keeps_pending_approvals_and_never_resends_an_executing_one,
    an_undecided_request_ends_with_the_whole_message_within_the_budget,
);
