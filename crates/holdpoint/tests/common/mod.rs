//! Shared helpers of the end-to-end tests: an environment per test (emulator or the cluster in
//! `HOLDPOINT_E2E_KUBECONFIG`, plus the gateway), real kubectl, and a raw TLS client that writes
//! exactly the bytes a test wants (path tricks, smuggling, hop-by-hop headers).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct TestEnv {
    pub env: Env,
    pub dir: tempfile::TempDir,
}

/// An environment whose policy allows everything: the data-path suites (hygiene, streams,
/// clients) test forwarding, not policy. Policy and approvals suites use [`start_with`].
pub async fn start() -> TestEnv {
    start_with(
        None,
        holdpoint_gateway::PhaseOverrides {
            decider: Some(Arc::new(holdpoint_gateway::phases::decide::AllowAll)),
            ..Default::default()
        },
    )
    .await
}

/// The nearest-rank percentile `p` (0-100) of sorted durations (for the benchmark examples).
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in milliseconds (three decimals).
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Where the gateway's store lives in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the environment's data dir (the default).
    Sqlite,
    /// A fresh database on the PostgreSQL server `scripts/test.sh` starts
    /// (`HOLDPOINT_TEST_POSTGRES_URL`; the test fails when it is unset).
    Postgres,
}

impl Backend {
    /// The store URL for a fresh test store on this backend (`None`: SQLite in the data dir).
    pub async fn store_url(self) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                holdpoint_store::testing::fresh_postgres_url()
                    .await
                    .expect("a PostgreSQL test database (scripts/test.sh starts the server)"),
            ),
        }
    }
}

/// An allow-all environment whose gateway keeps its state in `backend`.
pub async fn start_on(backend: Backend) -> TestEnv {
    start_with(
        backend.store_url().await,
        holdpoint_gateway::PhaseOverrides {
            decider: Some(Arc::new(holdpoint_gateway::phases::decide::AllowAll)),
            ..Default::default()
        },
    )
    .await
}

/// An environment with the given store (None: SQLite in the temp dir) and phase overrides;
/// without a decider override it runs the embedded default policy.
pub async fn start_with(
    store_url: Option<String>,
    overrides: holdpoint_gateway::PhaseOverrides,
) -> TestEnv {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start_with(
        EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::from_env(),
            store_url,
            authentication: Default::default(),
            impersonate: true,
        },
        overrides,
    )
    .await
    .expect("environment starts");
    TestEnv { env, dir }
}

/// An environment on the in-tree emulator (tests that mint tokens or count what the upstream
/// received need it) with extra authenticators, the impersonation mode, and phase overrides
/// (e.g. a manual clock).
/// Policy allows everything unless `overrides` has a decider: these suites test identity.
pub async fn start_custom(
    authentication: holdpoint_gateway::config::AuthenticationConfig,
    impersonate: bool,
    mut overrides: holdpoint_gateway::PhaseOverrides,
) -> TestEnv {
    let dir = tempfile::tempdir().expect("tempdir");
    overrides
        .decider
        .get_or_insert_with(|| Arc::new(holdpoint_gateway::phases::decide::AllowAll));
    let env = Env::start_with(
        EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::Emulator,
            store_url: None,
            authentication,
            impersonate,
        },
        overrides,
    )
    .await
    .expect("environment starts");
    TestEnv { env, dir }
}

/// Runs kubectl with `kubeconfig` in a blocking thread.
pub async fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || kubectl_blocking(&kubeconfig, &args, None))
        .await
        .expect("kubectl thread")
}

/// For tests that must see what the upstream received, or the emulator's seeded pods: they are
/// named `emulator_only_*`, and `scripts/test.sh` leaves them out (and says so) when the suite
/// runs against a real cluster. Run against one anyway, they fail rather than pass unchecked.
pub fn require_emulator(t: &TestEnv) {
    assert!(
        on_emulator(t),
        "this test needs the in-tree emulator upstream; unset HOLDPOINT_E2E_KUBECONFIG"
    );
}

/// True when the suite runs against the in-tree emulator (tests that inspect what the upstream
/// received need it).
pub fn on_emulator(t: &TestEnv) -> bool {
    t.env.emulator.is_some()
}

impl TestEnv {
    pub fn emulator(&self) -> &kube_emulator::RunningEmulator {
        self.env.emulator.as_ref().expect("emulator upstream")
    }

    /// Runs kubectl as the agent, in a blocking thread.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as("agent", args, None).await
    }

    pub async fn kubectl_as(&self, who: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let kubeconfig = self.env.kubeconfig(who).to_owned();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(<[u8]>::to_vec);
        tokio::task::spawn_blocking(move || kubectl_blocking(&kubeconfig, &args, stdin.as_deref()))
            .await
            .expect("kubectl thread")
    }

    /// Runs kubectl as the agent with extra environment variables, in a blocking thread.
    pub async fn kubectl_env(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        envs: &[(&str, &str)],
    ) -> Output {
        let kubeconfig = self.env.kubeconfig("agent").to_owned();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(<[u8]>::to_vec);
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            kubectl_env_blocking(&kubeconfig, &args, stdin.as_deref(), &envs)
        })
        .await
        .expect("kubectl thread")
    }

    /// kubectl that must succeed; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn raw(&self, request: &[u8]) -> RawResponse {
        raw_request(self.env.gateway.addr(), self.env.gateway.ca_pem(), request).await
    }

    pub fn agent_token(&self) -> &str {
        &self.env.agent_token
    }
}

pub fn kubectl_blocking(kubeconfig: &Path, args: &[String], stdin: Option<&[u8]>) -> Output {
    kubectl_env_blocking(kubeconfig, args, stdin, &[])
}

/// kubectl with extra environment variables (e.g. `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`);
/// kubectl's transport switches are otherwise unset, whatever the test runner's environment.
pub fn kubectl_env_blocking(
    kubeconfig: &Path,
    args: &[String],
    stdin: Option<&[u8]>,
    envs: &[(String, String)],
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.env_remove("KUBECONFIG")
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
        .envs(envs.iter().map(|(k, v)| (k, v)));
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(data).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// Whether the server closed the connection after this response.
    pub closed: bool,
}

impl RawResponse {
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A TLS client configuration trusting `ca_pem`, speaking HTTP/1.1.
pub fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(client_config(ca_pem))
}

/// Sends `request` verbatim over a fresh TLS connection and reads one response (by
/// Content-Length or chunked framing), then checks whether the server closed the connection.
pub async fn raw_request(addr: std::net::SocketAddr, ca_pem: &str, request: &[u8]) -> RawResponse {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = tls_connector(ca_pem)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS");
    tls.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (head_end, status) = loop {
        let n = tokio::time::timeout_at(deadline, tls.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap_or(0);
        if n == 0 {
            break (None, 0);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            break (Some(pos + 4), status);
        }
    };
    let Some(head_end) = head_end else {
        return RawResponse {
            status: 0,
            head: String::new(),
            body: String::new(),
            closed: true,
        };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let content_length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    let chunked = head.contains("transfer-encoding: chunked");
    let mut body = buf[head_end..].to_vec();
    loop {
        let complete = match content_length {
            Some(len) => body.len() >= len,
            None if chunked => find(&body, b"0\r\n\r\n").is_some(),
            None => status == 101 || status == 204 || status == 304,
        };
        if complete {
            break;
        }
        let n = tokio::time::timeout_at(deadline, tls.read(&mut chunk))
            .await
            .expect("body in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if chunked {
        body = dechunk(&body);
    }
    // After the response: does the server close the connection?
    let closed =
        match tokio::time::timeout(std::time::Duration::from_millis(500), tls.read(&mut chunk))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => false,
            Err(_) => false,
        };
    RawResponse {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
        closed,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = find(data, b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

impl TestEnv {
    /// kubectl as `who` (`agent` or `admin`) in the background.
    pub fn kubectl_bg(
        &self,
        who: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> tokio::task::JoinHandle<Output> {
        let kubeconfig = self.env.kubeconfig(who).to_owned();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(|s| s.as_bytes().to_vec());
        tokio::task::spawn_blocking(move || kubectl_blocking(&kubeconfig, &args, stdin.as_deref()))
    }

    /// Waits until exactly `n` approvals are pending, and returns them.
    pub async fn pending_approvals(&self, n: usize) -> Vec<holdpoint_store::Approval> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let list = self
                .env
                .gateway
                .store()
                .list_approvals(&holdpoint_store::ApprovalFilter {
                    state: Some(holdpoint_store::ApprovalState::Pending),
                    ..Default::default()
                })
                .await
                .unwrap();
            if list.len() >= n {
                assert_eq!(list.len(), n, "{list:#?}");
                return list;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no pending approval appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Standard output and error of a finished command, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
