//! Real kubectl through the gateway: every everyday operation an agent performs works unchanged.
//! Runs against the emulator, or against the cluster in `HOLDPOINT_E2E_KUBECONFIG`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::start;

const NS: &str = "demo";

fn kubectl_cmd(t: &common::TestEnv) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(&t.env.agent_kubeconfig)
        .env_remove("KUBECONFIG");
    cmd
}

/// Reads lines from a child's stdout until `pred` matches one or the timeout passes.
fn wait_for_line(
    reader: &mut impl BufRead,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) if pred(&line) => return Some(line),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn get_list_and_describe() {
    let t = start().await;
    if common::on_emulator(&t) {
        let pods = t.kubectl_ok(&["get", "pods", "-n", NS, "-o", "name"]).await;
        assert!(pods.contains("pod/web-0"), "{pods}");
        let all = t.kubectl_ok(&["get", "configmaps", "-A"]).await;
        assert!(all.contains("web-config"), "{all}");
        let one = t
            .kubectl_ok(&[
                "get",
                "deployment",
                "web",
                "-n",
                NS,
                "-o",
                "jsonpath={.spec.replicas}",
            ])
            .await;
        assert_eq!(one, "2");
        let version = t.kubectl_ok(&["get", "--raw", "/version"]).await;
        assert!(version.contains("gitVersion"), "{version}");
    } else {
        let ns = t.kubectl_ok(&["get", "namespaces", "-o", "name"]).await;
        assert!(ns.contains("namespace/default"), "{ns}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_apply_patch_scale_delete() {
    let t = start().await;
    let ns = "holdpoint-e2e";
    let _ = t.kubectl(&["create", "namespace", ns]).await;
    let dir = t.dir.path();
    let manifest = dir.join("cm.yaml");
    std::fs::write(&manifest, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {ns}\ndata:\n  a: \"1\"\n")).unwrap();
    let out = t
        .kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    assert!(out.contains("created"), "{out}");
    std::fs::write(&manifest, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {ns}\ndata:\n  a: \"2\"\n")).unwrap();
    let out = t
        .kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
        .await;
    assert!(out.contains("configured"), "{out}");
    let a = t
        .kubectl_ok(&["get", "cm", "applied", "-n", ns, "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(a, "2");

    // server-side apply
    std::fs::write(&manifest, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {ns}\ndata:\n  k: v\n")).unwrap();
    t.kubectl_ok(&["apply", "--server-side", "-f", manifest.to_str().unwrap()])
        .await;
    let k = t
        .kubectl_ok(&["get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(k, "v");

    // the three patch kinds
    t.kubectl_ok(&[
        "patch",
        "cm",
        "applied",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"m":"merge"}}"#,
    ])
    .await;
    t.kubectl_ok(&[
        "patch",
        "cm",
        "applied",
        "-n",
        ns,
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"json"}]"#,
    ])
    .await;
    t.kubectl_ok(&[
        "patch",
        "cm",
        "applied",
        "-n",
        ns,
        "--type",
        "strategic",
        "-p",
        r#"{"data":{"s":"strategic"}}"#,
    ])
    .await;
    let data = t
        .kubectl_ok(&["get", "cm", "applied", "-n", ns, "-o", "jsonpath={.data}"])
        .await;
    for v in ["merge", "json", "strategic"] {
        assert!(data.contains(v), "{data}");
    }

    // dry run changes nothing
    t.kubectl_ok(&[
        "create",
        "configmap",
        "dry",
        "-n",
        ns,
        "--from-literal=x=y",
        "--dry-run=server",
    ])
    .await;
    let missing = t.kubectl(&["get", "cm", "dry", "-n", ns]).await;
    assert!(!missing.status.success());

    // scale
    let deploy = dir.join("deploy.yaml");
    std::fs::write(&deploy, format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: scaled\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: scaled}}\n  template:\n    metadata:\n      labels: {{app: scaled}}\n    spec:\n      containers:\n      - name: app\n        image: registry.k8s.io/pause:3.10\n")).unwrap();
    t.kubectl_ok(&["apply", "-f", deploy.to_str().unwrap()])
        .await;
    t.kubectl_ok(&["scale", "deployment", "scaled", "-n", ns, "--replicas=3"])
        .await;
    let replicas = t
        .kubectl_ok(&[
            "get",
            "deployment",
            "scaled",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    assert_eq!(replicas, "3");

    // delete
    t.kubectl_ok(&["delete", "cm", "applied", "-n", ns]).await;
    let gone = t.kubectl(&["get", "cm", "applied", "-n", ns]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    let _ = t
        .kubectl(&["delete", "namespace", ns, "--wait=false"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_events_as_they_happen() {
    let t = start().await;
    let ns = if common::on_emulator(&t) {
        NS
    } else {
        "default"
    };
    let mut watcher = kubectl_cmd(&t)
        .args(["get", "configmaps", "-n", ns, "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(watcher.stdout.take().unwrap());
    // give the watch time to start, then create an object
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.kubectl_ok(&[
        "create",
        "configmap",
        "watched-cm",
        "-n",
        ns,
        "--from-literal=a=b",
    ])
    .await;
    let seen = tokio::task::spawn_blocking(move || {
        wait_for_line(&mut reader, Duration::from_secs(15), |l| {
            l.contains("watched-cm")
        })
    })
    .await
    .unwrap();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(seen.is_some(), "the watch never showed the new object");
    t.kubectl_ok(&["delete", "cm", "watched-cm", "-n", ns])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_logs_and_follow() {
    let t = start().await;
    common::require_emulator(&t);
    let logs = t.kubectl_ok(&["logs", "web-0", "-n", NS]).await;
    assert!(!logs.trim().is_empty());
    let mut follower = kubectl_cmd(&t)
        .args(["logs", "-f", "web-0", "-n", NS, "--tail=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let got = tokio::task::spawn_blocking(move || {
        let first = wait_for_line(&mut reader, Duration::from_secs(10), |l| {
            !l.trim().is_empty()
        });
        let second = wait_for_line(&mut reader, Duration::from_secs(10), |l| {
            !l.trim().is_empty()
        });
        (first, second)
    })
    .await
    .unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        got.0.is_some() && got.1.is_some(),
        "follow did not stream lines: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_exec_websocket_spdy_and_stdin() {
    let t = start().await;
    common::require_emulator(&t);
    let out = t
        .kubectl_ok(&[
            "exec",
            "web-0",
            "-n",
            NS,
            "--",
            "echo",
            "hello",
            "through",
            "holdpoint",
        ])
        .await;
    assert_eq!(out.trim(), "hello through holdpoint");

    // SPDY fallback path
    let kubeconfig = t.env.agent_kubeconfig.clone();
    let spdy = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
            .args(["exec", "web-0", "-n", NS, "--", "echo", "over-spdy"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        spdy.status.success(),
        "{}",
        String::from_utf8_lossy(&spdy.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&spdy.stdout).trim(), "over-spdy");

    // stdin
    let out = t
        .kubectl_as(
            "agent",
            &["exec", "-i", "web-0", "-n", NS, "--", "cat"],
            Some(b"piped through\n"),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped through\n");

    // exit codes survive the gateway
    let failed = t.kubectl(&["exec", "web-0", "-n", NS, "--", "false"]).await;
    assert_eq!(failed.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_attach_through_the_gateway_on_both_transports() {
    let t = start().await;
    common::require_emulator(&t);
    for spdy in [false, true] {
        let kubeconfig = t.env.agent_kubeconfig.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("kubectl");
            cmd.arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["attach", "-i", "web-0", "-n", NS])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if spdy {
                cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
            }
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"echo attached via holdpoint\nexit 5\n")
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "spdy={spdy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "attached via holdpoint\n",
            "spdy={spdy}"
        );
    }
    // Both transports reached the upstream as attach requests: WebSocket by GET, SPDY by POST.
    let methods: Vec<String> = t
        .emulator()
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pods/web-0/attach"))
        .map(|r| r.method)
        .collect();
    assert!(methods.contains(&"GET".to_string()), "{methods:?}");
    assert!(methods.contains(&"POST".to_string()), "{methods:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_port_forward_round_trip() {
    let t = start().await;
    common::require_emulator(&t);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut pf = kubectl_cmd(&t)
        .args([
            "port-forward",
            "-n",
            NS,
            "pod/web-0",
            &format!("{port}:8080"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(pf.stdout.take().unwrap());
    // Keep kubectl's stdout open for the whole test: it writes "Handling connection" per
    // connection and would die of a closed pipe.
    let (ready, _reader) = tokio::task::spawn_blocking(move || {
        let line = wait_for_line(&mut reader, Duration::from_secs(15), |l| {
            l.contains("Forwarding from")
        });
        (line, reader)
    })
    .await
    .unwrap();
    assert!(ready.is_some(), "port-forward did not start");
    let echoed = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"ping through the gateway").unwrap();
        let mut buf = [0u8; 24];
        s.read_exact(&mut buf).map(|_| buf.to_vec())
    })
    .await
    .unwrap();
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(echoed.unwrap(), b"ping through the gateway");
}
