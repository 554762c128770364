//! The real kubectl (v1.32) against the emulator. Skipped when /usr/bin/kubectl is absent.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, have_kubectl, start};
use kube_emulator::Seed;

macro_rules! need_kubectl {
    () => {
        // A missing kubectl is a failure, never a skip: scripts/setup.sh installs it.
        assert!(have_kubectl(), "kubectl not found: run scripts/setup.sh");
    };
}

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: default
  labels: {app: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        image: nginx:1.27
        env:
        - {name: A, value: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: default}
data: {k: v}
"#;

/// Spawns a long-running kubectl, collects stdout lines until `want` lines are seen or the
/// deadline passes, then kills it.
fn stream_lines(env: &Env, args: &[&str], want: usize, before_wait: impl FnOnce()) -> Vec<String> {
    let mut child = env
        .kubectl_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    before_wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < want && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_list_namespaced_and_all_namespaces_and_raw_version() {
    need_kubectl!();
    let env = start(Seed::Demo).await;
    let pods = env.kubectl(&["get", "pods", "-n", "demo"]).await;
    assert!(
        pods.contains("NAME") && pods.contains("READY") && pods.contains("STATUS"),
        "{pods}"
    );
    assert!(
        pods.contains("web-0") && pods.contains("1/1") && pods.contains("Running"),
        "{pods}"
    );
    let all = env.kubectl(&["get", "pods", "-A", "-o", "name"]).await;
    assert_eq!(all.lines().count(), 2, "{all}");
    let one = env
        .kubectl(&[
            "get",
            "secret",
            "web-credentials",
            "-n",
            "demo",
            "-o",
            "jsonpath={.type}",
        ])
        .await;
    assert_eq!(one, "Opaque");
    let sel = env
        .kubectl(&[
            "get",
            "pods",
            "-n",
            "demo",
            "-l",
            "app in (web)",
            "--field-selector",
            "metadata.name=web-1",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(sel.trim(), "pod/web-1");
    let ns = env.kubectl(&["get", "ns"]).await;
    assert!(ns.contains("kube-system") && ns.contains("demo"), "{ns}");
    let version = env.kubectl(&["get", "--raw", "/version"]).await;
    let v: serde_json::Value = serde_json::from_str(&version).expect("version JSON");
    assert_eq!(v["major"], "1");
    let short = env
        .kubectl(&["get", "deploy,svc,cm", "-n", "demo", "-o", "name"])
        .await;
    assert!(
        short.contains("deployment.apps/web")
            && short.contains("service/web")
            && short.contains("configmap/web-config"),
        "{short}"
    );
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_apply_twice_then_change_and_server_side_apply() {
    need_kubectl!();
    let env = start(Seed::None).await;
    let f = env.write("d.yaml", DEPLOY);
    let out = env.kubectl(&["create", "-f", &f]).await;
    assert!(out.contains("deployment.apps/api created"), "{out}");
    let dup = env.kubectl_output(&["create", "-f", &f]).await;
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("AlreadyExists"));
    env.kubectl(&["delete", "-f", &f]).await;

    let out = env.kubectl(&["apply", "-f", &f]).await;
    assert!(
        out.contains("deployment.apps/api created") && out.contains("configmap/cfg created"),
        "{out}"
    );
    let out = env.kubectl(&["apply", "-f", &f]).await;
    assert!(
        out.contains("deployment.apps/api unchanged") && out.contains("configmap/cfg unchanged"),
        "{out}"
    );
    let changed = env.write(
        "d2.yaml",
        &DEPLOY
            .replace("nginx:1.27", "nginx:1.28")
            .replace("k: v}", "k: v2}"),
    );
    let out = env.kubectl(&["apply", "-f", &changed]).await;
    assert!(
        out.contains("deployment.apps/api configured") && out.contains("configmap/cfg configured"),
        "{out}"
    );
    let image = env
        .kubectl(&[
            "get",
            "deploy",
            "api",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.28");
    let data = env
        .kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(data, "v2");

    let ssa = env.write("ssa.yaml", &DEPLOY.replace("replicas: 1", "replicas: 2"));
    let out = env
        .kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &ssa])
        .await;
    assert!(
        out.contains("deployment.apps/api serverside-applied"),
        "{out}"
    );
    let r = env
        .kubectl(&["get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(r, "2");
    // Server-side apply also creates.
    let fresh = env.write(
        "fresh.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-new}\ndata: {a: b}\n",
    );
    let out = env.kubectl(&["apply", "--server-side", "-f", &fresh]).await;
    assert!(
        out.contains("configmap/ssa-new serverside-applied"),
        "{out}"
    );
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_json_merge_strategic_scale_and_delete() {
    need_kubectl!();
    let env = start(Seed::None).await;
    let f = env.write("d.yaml", DEPLOY);
    env.kubectl(&["apply", "-f", &f]).await;
    env.kubectl(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"m":"1"}}"#,
    ])
    .await;
    env.kubectl(&[
        "patch",
        "cm",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"2"}]"#,
    ])
    .await;
    let data = env
        .kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.data}"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&data).expect("json");
    assert_eq!(v, serde_json::json!({"k": "v", "m": "1", "j": "2"}));
    env.kubectl(&[
        "patch",
        "deploy",
        "api",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"api","env":[{"name":"B","value":"2"}]}]}}}}"#,
    ])
    .await;
    let env_json = env
        .kubectl(&[
            "get",
            "deploy",
            "api",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}",
        ])
        .await;
    let e: serde_json::Value = serde_json::from_str(&env_json).expect("json");
    assert_eq!(
        e,
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        "strategic merge by name"
    );

    let out = env
        .kubectl(&["scale", "deploy", "api", "--replicas=3"])
        .await;
    assert!(out.contains("scaled"), "{out}");
    let ready = env
        .kubectl(&[
            "get",
            "deploy",
            "api",
            "-o",
            "jsonpath={.spec.replicas} {.status.readyReplicas}",
        ])
        .await;
    assert_eq!(ready, "3 3");

    let out = env.kubectl(&["delete", "deploy", "api"]).await;
    assert!(out.contains("deleted"), "{out}");
    let gone = env.kubectl_output(&["get", "deploy", "api"]).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_server_does_not_store() {
    need_kubectl!();
    let env = start(Seed::Demo).await;
    let out = env
        .kubectl(&[
            "create",
            "cm",
            "dr",
            "--from-literal=a=b",
            "--dry-run=server",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "configmap/dr");
    assert!(
        !env.kubectl_output(&["get", "cm", "dr"])
            .await
            .status
            .success()
    );
    let f = env.write("d.yaml", DEPLOY);
    let out = env.kubectl(&["apply", "-f", &f, "--dry-run=server"]).await;
    assert!(out.contains("(server dry run)"), "{out}");
    assert!(
        !env.kubectl_output(&["get", "deploy", "api"])
            .await
            .status
            .success()
    );
    let out = env
        .kubectl(&["delete", "pod", "web-0", "-n", "demo", "--dry-run=server"])
        .await;
    assert!(out.contains("server dry run"), "{out}");
    env.kubectl(&["get", "pod", "web-0", "-n", "demo"]).await;
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_new_object() {
    need_kubectl!();
    let env = start(Seed::Demo).await;
    let kc = env.kubeconfig.clone();
    let lines = stream_lines(
        &env,
        &["get", "cm", "-n", "demo", "-w", "--no-headers"],
        2,
        move || {
            std::thread::sleep(Duration::from_millis(1500));
            let st = std::process::Command::new(common::KUBECTL)
                .arg("--kubeconfig")
                .arg(&kc)
                .args([
                    "create",
                    "cm",
                    "watched",
                    "-n",
                    "demo",
                    "--from-literal=a=b",
                ])
                .output()
                .expect("create");
            assert!(st.status.success());
        },
    );
    assert!(
        lines.iter().any(|l| l.starts_with("web-config")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("watched")), "{lines:?}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_logs_follow() {
    need_kubectl!();
    let env = start(Seed::Demo).await;
    let logs = env.kubectl(&["logs", "web-0", "-n", "demo"]).await;
    assert!(
        logs.contains("starting container app of pod demo/web-0"),
        "{logs}"
    );
    assert!(
        logs.contains("DATABASE_PASSWORD=hunter2-Pr0d-DB-pa55"),
        "print-env container logs env: {logs}"
    );
    assert!(
        logs.contains("password=s3cr3t-pa55"),
        "envFrom secret resolved: {logs}"
    );
    let quiet = env.kubectl(&["logs", "web-1", "-n", "demo"]).await;
    assert!(
        !quiet.contains("env "),
        "no print-env, no env lines: {quiet}"
    );
    let tail = env
        .kubectl(&["logs", "web-1", "-n", "demo", "--tail=1"])
        .await;
    assert_eq!(tail.trim(), "[app] ready");
    let lines = stream_lines(&env, &["logs", "-f", "web-1", "-n", "demo"], 6, || {});
    assert!(lines.len() >= 6, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("heartbeat")), "{lines:?}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_and_custom_resource() {
    need_kubectl!();
    let env = start(Seed::None).await;
    let crd = env.write(
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#,
    );
    env.kubectl(&["apply", "-f", &crd]).await;
    let cr = env.write(
        "cr.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    );
    let out = env.kubectl(&["apply", "-f", &cr]).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    let table = env.kubectl(&["get", "wg"]).await;
    assert!(
        table.contains("SIZE") && table.contains("w1") && table.contains('3'),
        "{table}"
    );
    env.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ])
    .await;
    let size = env
        .kubectl(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
        .await;
    assert_eq!(size, "5");
    env.kubectl(&["delete", "crd", "widgets.example.com"]).await;
    let (s, _) = common::get_json(&env.emu, "/apis/example.com/v1").await;
    assert_eq!(
        s,
        http::StatusCode::NOT_FOUND,
        "CRD deletion removes the resource from discovery"
    );
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_token_and_use_it() {
    need_kubectl!();
    let env = start(Seed::Demo).await;
    let token = env
        .kubectl(&[
            "create",
            "token",
            "deployer",
            "-n",
            "demo",
            "--audience",
            "holdpoint",
            "--duration",
            "1h",
        ])
        .await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let who = env
        .kubectl(&[
            "--token",
            token,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(who, "system:serviceaccount:demo:deployer");
    let admin = env
        .kubectl(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(admin, "kubernetes-admin");
    let bad = env
        .kubectl_output(&["--token", "nope", "get", "pods"])
        .await;
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("provide credentials"),
        "{err}"
    );
    env.emu.shutdown().await;
}
