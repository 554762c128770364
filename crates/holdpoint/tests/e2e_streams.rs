//! End to end through the gateway's stream tap with real kubectl and raw WebSocket clients, on
//! the emulator (its pods have `DATABASE_PASSWORD` in their env and a service-account token
//! file): exec and attach output is masked over WebSocket and SPDY/3.1, in pipes and terminals,
//! however the secret is written; ordinary output, stdin and exit codes are intact; port-forward
//! still echoes on both transports; and what the stream recorder receives matches what the
//! caller saw. Also the ways around masking a caller might try: the base64 channel protocols,
//! v4 instead of v5, secrets split across writes and frames, fragmented WebSocket messages.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::phases::Exchange;
use holdpoint_gateway::phases::decide::AllowAll;
use holdpoint_gateway::phases::record::{Recorder, StreamEvent, StreamRecorder};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const NS: &str = "demo";
/// The literal `DATABASE_PASSWORD` of the emulator's demo pods.
const DB_PASSWORD: &str = "hunter2-Pr0d-DB-pa55";
/// kubectl's two transports for exec and attach.
const TRANSPORTS: [(&str, &[(&str, &str)]); 2] = [
    ("websocket", &[]),
    ("spdy", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")]),
];

/// The events of one stream.
type Events = Arc<Mutex<Vec<StreamEvent>>>;

/// Keeps the events of every stream, by subresource.
#[derive(Debug, Default, Clone)]
struct Recorded(Arc<Mutex<Vec<(String, Events)>>>);

#[derive(Debug)]
struct Collect(Events);

impl StreamRecorder for Collect {
    fn event(&mut self, event: StreamEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder for Recorded {
    fn begin<'a>(&'a self, _: &'a Exchange) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn finish(
        &self,
        _: &Exchange,
        response: http::Response<holdpoint_gateway::body::Body>,
    ) -> http::Response<holdpoint_gateway::body::Body> {
        response
    }
    fn stream(&self, ex: &Exchange) -> Option<Box<dyn StreamRecorder>> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sub = ex
            .info
            .as_ref()
            .map(|i| i.subresource.clone())
            .unwrap_or_default();
        self.0.lock().unwrap().push((sub, events.clone()));
        Some(Box::new(Collect(events)))
    }
}

impl Recorded {
    /// The events of the last stream of `subresource`, once it has closed.
    async fn last_closed(&self, subresource: &str) -> Vec<StreamEvent> {
        for _ in 0..200 {
            let last = self
                .0
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(s, _)| s == subresource)
                .map(|(_, e)| e.lock().unwrap().clone());
            if let Some(events) = last
                && matches!(events.last(), Some(StreamEvent::Closed { .. }))
            {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no closed {subresource} stream was recorded");
    }
}

/// Everything the recorded stream's stdout and stderr carried.
fn recorded_output(events: &[StreamEvent]) -> String {
    let mut out = Vec::new();
    for e in events {
        if let StreamEvent::Stdout { data, .. } | StreamEvent::Stderr { data, .. } = e {
            out.extend_from_slice(data);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Streams {
    t: common::TestEnv,
    recorded: Recorded,
}

async fn start() -> Streams {
    let recorded = Recorded::default();
    let t = common::start_with(
        None,
        PhaseOverrides {
            decider: Some(Arc::new(AllowAll)),
            recorder: Some(Arc::new(recorded.clone())),
            ..Default::default()
        },
    )
    .await;
    common::require_emulator(&t);
    Streams { t, recorded }
}

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Streams {
    async fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Run {
        let out = self.t.kubectl_env(args, stdin, envs).await;
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    async fn exec(&self, command: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut args = vec!["exec", "web-0", "-n", NS, "--"];
        args.extend_from_slice(command);
        self.kubectl(&args, None, envs).await
    }
}

/// The token's signature part alone is enough to tell it was not masked.
fn token_signature() -> &'static str {
    kube_emulator::streams::SERVICE_ACCOUNT_TOKEN
        .rsplit('.')
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_exec_env_is_masked_and_ordinary_output_intact_on_both_transports() {
    let s = start().await;
    for (transport, envs) in TRANSPORTS {
        let r = s.exec(&["env"], envs).await;
        assert_eq!(r.code, Some(0), "{transport}: {}", r.stderr);
        assert!(!r.stdout.contains(DB_PASSWORD), "{transport}: {}", r.stdout);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(
            lines.contains(&"DATABASE_PASSWORD=[MASKED]"),
            "{transport}: {lines:?}"
        );
        assert!(lines.contains(&"HOSTNAME=web-0"), "{transport}: {lines:?}");
        assert!(lines.contains(&"HOME=/root"), "{transport}: {lines:?}");
        // the recording holds what the caller saw, and the exit status
        let events = s.recorded.last_closed("exec").await;
        assert_eq!(recorded_output(&events), r.stdout, "{transport}");
        let Some(StreamEvent::Closed { status, .. }) = events.last() else {
            unreachable!()
        };
        assert_eq!(
            status.as_deref().and_then(kube_streams::status::exit_code),
            Some(0),
            "{transport}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_cat_of_the_service_account_token_is_masked_on_both_transports() {
    let s = start().await;
    for (transport, envs) in TRANSPORTS {
        let r = s
            .exec(
                &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
                envs,
            )
            .await;
        assert_eq!(r.code, Some(0), "{transport}: {}", r.stderr);
        assert!(
            !r.stdout.contains(token_signature()),
            "{transport}: {}",
            r.stdout
        );
        // the file has no line end: the end of the stream completes the line
        assert_eq!(r.stdout, "[MASKED]", "{transport}");
        let r = s.exec(&["cat", "/etc/hostname"], envs).await;
        assert_eq!(
            (r.stdout.as_str(), r.code),
            ("web-0\n", Some(0)),
            "{transport}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_a_secret_written_in_two_pieces_is_masked_on_stdout_and_stderr() {
    let s = start().await;
    // `echo -n` and `echo` are two writes, so two frames on the wire
    let script = "echo -n api_key=Zx9Qw8Er; echo 7Ty6Ui5Op; echo -n password=s3cr >&2; echo 3t-Value-XYZ >&2; echo done";
    for (transport, envs) in TRANSPORTS {
        let r = s.exec(&["sh", "-c", script], envs).await;
        assert_eq!(r.code, Some(0), "{transport}: {}", r.stderr);
        assert!(
            !r.stdout.contains("Zx9Qw8Er7Ty6Ui5Op"),
            "{transport}: {}",
            r.stdout
        );
        assert!(
            !r.stderr.contains("s3cr3t-Value-XYZ"),
            "{transport}: {}",
            r.stderr
        );
        assert!(
            r.stdout.starts_with("api_key=") && r.stdout.contains("[MASKED]"),
            "{transport}: {}",
            r.stdout
        );
        assert!(r.stdout.ends_with("done\n"), "{transport}: {}", r.stdout);
        assert!(
            r.stderr.contains("password=") && r.stderr.contains("[MASKED]"),
            "{transport}: {}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_exit_codes_and_stderr_are_preserved() {
    let s = start().await;
    for (transport, envs) in TRANSPORTS {
        let r = s
            .exec(&["sh", "-c", "echo ok; echo oops >&2; exit 3"], envs)
            .await;
        assert_eq!(
            (r.stdout.as_str(), r.code),
            ("ok\n", Some(3)),
            "{transport}"
        );
        assert!(r.stderr.starts_with("oops\n"), "{transport}: {}", r.stderr);
        assert!(
            r.stderr.contains("command terminated with exit code 3"),
            "{transport}: {}",
            r.stderr
        );
        let events = s.recorded.last_closed("exec").await;
        let Some(StreamEvent::Closed { status, .. }) = events.last() else {
            unreachable!()
        };
        assert_eq!(
            status.as_deref().and_then(kube_streams::status::exit_code),
            Some(3)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_stdin_through_cat_is_echoed_masked_and_recorded() {
    let s = start().await;
    let input =
        format!("first line\r\nDB_PASSWORD={DB_PASSWORD}\nbinary \x01\x02 ok\nlast, no newline");
    for (transport, envs) in TRANSPORTS {
        let r = s
            .kubectl(
                &["exec", "-i", "web-0", "-n", NS, "--", "cat"],
                Some(input.as_bytes()),
                envs,
            )
            .await;
        assert_eq!(r.code, Some(0), "{transport}: {}", r.stderr);
        assert_eq!(
            r.stdout, "first line\r\nDB_PASSWORD=[MASKED]\nbinary \x01\x02 ok\nlast, no newline",
            "{transport}"
        );
        let events = s.recorded.last_closed("exec").await;
        let stdin: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Stdin { data, .. } => Some(data.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            stdin,
            input.as_bytes(),
            "{transport}: stdin is recorded as sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_attach_output_is_masked_on_both_transports() {
    let s = start().await;
    let script = "echo attached\necho DATABASE_PASSWORD=$DATABASE_PASSWORD\nexit 5\n";
    for (transport, envs) in TRANSPORTS {
        let r = s
            .kubectl(
                &["attach", "-i", "web-0", "-n", NS],
                Some(script.as_bytes()),
                envs,
            )
            .await;
        assert_eq!(r.code, Some(5), "{transport}: {}", r.stderr);
        assert_eq!(
            r.stdout, "attached\nDATABASE_PASSWORD=[MASKED]\n",
            "{transport}"
        );
        let events = s.recorded.last_closed("attach").await;
        assert_eq!(recorded_output(&events), r.stdout, "{transport}");
    }
}

/// `kubectl exec -it` in a pseudo-terminal (util-linux `script`), typing commands one by one.
async fn tty_session(s: &Streams, envs: &[(&str, &str)], typed: &[&str]) -> (String, Option<i32>) {
    let kubectl = format!(
        "kubectl --kubeconfig {} exec -it web-0 -n {NS} -- sh",
        s.t.env.agent_kubeconfig.display()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &kubectl, "/dev/null"])
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    let mut buf = [0u8; 4096];
    // wait for each prompt, then type the next line
    for line in typed {
        let prompts = screen.windows(2).filter(|w| w == b"$ ").count();
        while screen.windows(2).filter(|w| w == b"$ ").count() == prompts {
            let n = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no prompt; screen: {:?}", String::from_utf8_lossy(&screen))
                })
                .unwrap();
            assert!(n > 0, "ended early: {:?}", String::from_utf8_lossy(&screen));
            screen.extend_from_slice(&buf[..n]);
        }
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\r").await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_end(&mut screen))
        .await
        .expect("the terminal session ends")
        .unwrap();
    let status = child.wait().await.unwrap();
    drop(stdin);
    (String::from_utf8_lossy(&screen).into_owned(), status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_a_terminal_session_is_masked_and_its_resize_recorded_on_both_transports() {
    let s = start().await;
    for (transport, envs) in TRANSPORTS {
        let (screen, code) = tty_session(&s, envs, &["env", "hostname", "exit 7"]).await;
        assert!(!screen.contains(DB_PASSWORD), "{transport}: {screen:?}");
        assert!(
            screen.contains("DATABASE_PASSWORD=[MASKED]\r\n"),
            "{transport}: {screen:?}"
        );
        assert!(screen.contains("web-0\r\n"), "{transport}: {screen:?}");
        assert_eq!(code, Some(7), "{transport}: {screen:?}");
        let events = s.recorded.last_closed("exec").await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::Resize { .. })),
            "{transport}: kubectl sends the terminal size: {events:?}"
        );
        assert!(
            !recorded_output(&events).contains(DB_PASSWORD),
            "{transport}"
        );
    }
}

/// `kubectl port-forward pod/web-0 :8080`, then two connections echoed through it. A credential
/// in TCP data is not text output: it passes unchanged.
async fn port_forward_echo(s: &Streams, envs: &[(&str, &str)]) {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(&s.t.env.agent_kubeconfig)
        .args(["port-forward", "-n", NS, "pod/web-0", ":8080"])
        .env_remove("KUBECONFIG")
        .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
        .envs(envs.iter().copied());
    let messages: Vec<Vec<u8>> = (0..2)
        .map(|round| format!("ping {round} password={DB_PASSWORD}\n").into_bytes())
        .collect();
    let echoes = kube_emulator::streams::testing::port_forward_echo(cmd, &messages)
        .await
        .unwrap();
    assert_eq!(echoes, messages, "{envs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_port_forward_echoes_and_is_counted_on_both_transports() {
    let s = start().await;
    for envs in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        port_forward_echo(&s, envs).await;
        let events = s.recorded.last_closed("portforward").await;
        let connections: Vec<(u16, u64, u64)> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::PortForward {
                    port,
                    to_upstream,
                    to_client,
                    ..
                } => Some((*port, *to_upstream, *to_client)),
                _ => None,
            })
            .collect();
        let n = format!("ping 0 password={DB_PASSWORD}\n").len() as u64;
        assert_eq!(
            connections,
            [(8080, n, n), (8080, n, n)],
            "{envs:?}: {events:?}"
        );
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens an exec WebSocket through the gateway offering `protocols`; returns the socket and the
/// negotiated subprotocol.
async fn exec_ws(
    s: &Streams,
    query: &str,
    protocols: &str,
) -> Result<(Ws, Option<String>), WsError> {
    let addr = s.t.env.gateway.addr();
    let mut req = format!(
        "wss://localhost:{}/api/v1/namespaces/{NS}/pods/web-0/exec?{query}",
        addr.port()
    )
    .into_client_request()
    .unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {}", s.t.agent_token()).parse().unwrap(),
    );
    h.insert("sec-websocket-protocol", protocols.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = common::tls_connector(s.t.env.gateway.ca_pem())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await?;
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((ws, proto))
}

/// Everything received on the output channels until the close, decoded.
async fn read_until_close(ws: &mut Ws, base64: bool) -> (Vec<u8>, Option<String>) {
    let mut output = Vec::new();
    let mut status = None;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time");
        let msg = match msg {
            Some(Ok(m)) => m,
            _ => break,
        };
        let (text, payload) = match msg {
            Message::Binary(b) => (false, b),
            Message::Text(t) => (true, bytes::Bytes::from(t)),
            Message::Close(_) => break,
            _ => continue,
        };
        let (channel, data) =
            kube_streams::channel::decode(base64, text, payload).expect("valid channel message");
        match channel {
            1 | 2 => output.extend_from_slice(&data),
            3 => status = Some(String::from_utf8_lossy(&data).into_owned()),
            c => panic!("unexpected channel {c}"),
        }
    }
    (output, status)
}

const ENV_QUERY: &str = "command=env&stdout=true&stderr=true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_every_channel_protocol_is_masked_base64_v4_v5_and_legacy() {
    let s = start().await;
    for (proto, base64) in [
        ("v5.channel.k8s.io", false),
        ("v4.channel.k8s.io", false),
        ("v4.base64.channel.k8s.io", true),
        ("v3.channel.k8s.io", false),
        ("channel.k8s.io", false),
        ("base64.channel.k8s.io", true),
    ] {
        let (mut ws, negotiated) = exec_ws(&s, ENV_QUERY, proto).await.unwrap();
        assert_eq!(negotiated.as_deref(), Some(proto));
        let (output, _) = read_until_close(&mut ws, base64).await;
        let output = String::from_utf8(output).unwrap();
        assert!(!output.contains(DB_PASSWORD), "{proto}: {output}");
        assert!(
            output.contains("DATABASE_PASSWORD=[MASKED]\n"),
            "{proto}: {output}"
        );
        assert!(output.contains("HOSTNAME=web-0\n"), "{proto}: {output}");
        // the raw base64 of the secret is not there either
        let encoded = base64::engine::general_purpose::STANDARD.encode(DB_PASSWORD);
        assert!(!output.contains(&encoded), "{proto}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_an_unknown_subprotocol_is_refused_not_tunnelled() {
    let s = start().await;
    let err = exec_ws(&s, ENV_QUERY, "v6.channel.k8s.io")
        .await
        .expect_err("refused");
    let WsError::Http(resp) = err else {
        panic!("expected an HTTP refusal, got {err:?}")
    };
    assert_eq!(resp.status(), 400, "the emulator's own refusal is relayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_only_stdin_sent_in_fragments_comes_back_masked() {
    let s = start().await;
    let (mut ws, _) = exec_ws(
        &s,
        "command=cat&stdin=true&stdout=true&stderr=true",
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    // one stdin message in three WebSocket fragments, the secret cut in the middle
    let line = format!("DATABASE_PASSWORD={DB_PASSWORD}\nplain\n");
    let bytes = line.as_bytes();
    let mut first = vec![0u8];
    first.extend_from_slice(&bytes[..22]);
    ws.send(Message::Frame(Frame::message(
        first,
        OpCode::Data(Data::Binary),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        bytes[22..30].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        bytes[30..].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    // v5: close stdin, cat ends
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let (output, status) = read_until_close(&mut ws, false).await;
    assert_eq!(
        String::from_utf8(output).unwrap(),
        "DATABASE_PASSWORD=[MASKED]\nplain\n"
    );
    assert_eq!(
        status.as_deref().and_then(kube_streams::status::exit_code),
        Some(0)
    );
}
