//! `loadgen`: the load generator behind `scripts/bench-load.sh`.
//!
//! * `loadgen run`: a closed-loop benchmark. N workers each own ONE HTTP/1.1 keep-alive connection
//!   over TLS (rustls, ring) and send `GET <path>` back to back with a bearer token for a warm-up
//!   period and then a measured period. Every measured request's latency (request written to last
//!   body byte read) goes into an HDR histogram; one JSON line of results is printed on stdout.
//! * `loadgen seed`: creates a namespace and N ConfigMaps (or Secrets) of about 1 KiB through
//!   the API.
//! * `loadgen watch`: opens N watches (one connection each) and holds them for a while, reading
//!   every event; prints one JSON line (for the gateway's memory under many streams).
//! * `loadgen kubeconfig`: extracts server URL, token and CA from a kubeconfig (YAML or JSON) as
//!   `KEY=value` lines for the shell.
//!
//! Each worker owning its connection (hyper's `client::conn::http1`) rather than sharing a pooled
//! client makes the number of connections exact: a pool may open more than N connections when a
//! connection is handed back a little after the next request asks for one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri, header};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "Load generator for the Holdpoint data-path benchmark")]
struct Cli {
    /// Tokio worker threads.
    #[arg(long, global = true, default_value_t = 1, env = "LOADGEN_THREADS")]
    threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Closed-loop benchmark of one GET path; prints one JSON line.
    Run(RunArgs),
    /// Creates a namespace holding COUNT ConfigMaps (or Secrets) of about VALUE_BYTES each.
    Seed(SeedArgs),
    /// Holds CONNECTIONS watches of one path open for DURATION seconds; prints one JSON line.
    Watch(WatchArgs),
    /// Prints SERVER=, TOKEN= lines of a kubeconfig and writes its CA to --ca-out.
    Kubeconfig {
        /// The kubeconfig (YAML or JSON).
        file: PathBuf,
        /// Where to write the PEM CA bundle.
        #[arg(long)]
        ca_out: PathBuf,
    },
    /// Prints N free loopback TCP ports, one per line.
    FreePorts {
        #[arg(default_value_t = 1)]
        n: usize,
    },
}

#[derive(Args, Debug, Clone)]
struct Conn {
    /// Base URL, e.g. https://127.0.0.1:6443.
    #[arg(long)]
    url: String,
    /// Bearer token.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM CA bundle to verify the server with.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Do not verify the server certificate (signatures are still checked).
    #[arg(long)]
    insecure: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    conn: Conn,
    /// Request path (and query).
    #[arg(long)]
    path: String,
    /// Concurrent keep-alive connections, one outstanding request each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Warm-up seconds (requests not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Free-form labels copied into the JSON output (key=value).
    #[arg(long = "label", value_parser = parse_kv)]
    labels: Vec<(String, String)>,
    /// Before measuring, fetch the path once and check the response is a list with this many items.
    #[arg(long)]
    expect_items: Option<usize>,
}

#[derive(Args, Debug)]
struct SeedArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long, default_value = "bench")]
    namespace: String,
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Size of the one data value of each object; with metadata an object is about 1 KiB.
    #[arg(long, default_value_t = 800)]
    value_bytes: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// `configmap` or `secret` (a Secret's value is base64 of VALUE_BYTES bytes, plus a
    /// `password` key).
    #[arg(long, default_value = "configmap")]
    kind: String,
}

#[derive(Args, Debug)]
struct WatchArgs {
    #[command(flatten)]
    conn: Conn,
    /// The watch path (and query).
    #[arg(long)]
    path: String,
    /// Watches (one connection each).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Run(args) => rt.block_on(run(args, cli.threads)),
        Cmd::Seed(args) => rt.block_on(seed(args)),
        Cmd::Watch(args) => rt.block_on(watch(args)),
        Cmd::Kubeconfig { file, ca_out } => kubeconfig(&file, &ca_out),
        Cmd::FreePorts { n } => {
            // Hold all listeners until every port is chosen so the N ports differ.
            let listeners = (0..n)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<Vec<_>>>()?;
            for l in &listeners {
                println!("{}", l.local_addr()?.port());
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    authority: String,
    prefix: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    bearer: header::HeaderValue,
}

impl Target {
    fn new(conn: &Conn) -> Result<Self> {
        let uri: Uri = conn.url.parse().with_context(|| format!("bad --url {}", conn.url))?;
        if uri.scheme_str() != Some("https") {
            bail!("--url must be https://");
        }
        let host = uri.host().ok_or_else(|| anyhow!("--url has no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let server_name = ServerName::try_from(bare.clone())?.to_owned();
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let mut config = if conn.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider.signature_verification_algorithms)))
                .with_no_client_auth()
        } else {
            let ca = conn.ca.as_ref().ok_or_else(|| anyhow!("give --ca FILE or --insecure"))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
                roots.add(cert?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            authority: uri.authority().map(|a| a.to_string()).unwrap_or(host.clone()),
            host: bare,
            port,
            prefix,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            bearer: format!("Bearer {}", conn.token).parse()?,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.prefix, path))
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, self.bearer.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "holdpoint-loadgen/0.1");
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(body.unwrap_or_default())).expect("valid request")
    }
}

/// Sends one request and reads the whole body; returns status and body (kept only if `keep`) and
/// the body length.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    keep: bool,
) -> Result<(u16, Vec<u8>, u64)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let (mut kept, mut len) = (Vec::new(), 0u64);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((status, kept, len))
}

#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// run

struct WorkerStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    bytes: u64,
    connects: u64,
    last_done: Instant,
    first_error: Option<String>,
}

async fn worker(target: Arc<Target>, path: Arc<str>, warm_end: Instant, end: Instant) -> WorkerStats {
    let mut s = WorkerStats {
        hist: Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("histogram bounds"),
        ok: 0,
        errors: 0,
        bytes: 0,
        connects: 0,
        last_done: warm_end,
        first_error: None,
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < end {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            s.connects += 1;
            match target.connect().await {
                Ok(c) => sender = Some(c),
                Err(e) => {
                    s.errors += 1;
                    s.first_error.get_or_insert_with(|| format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let conn = sender.as_mut().expect("connected");
        let req = target.request(Method::GET, &path, None);
        let t0 = Instant::now();
        let result = exchange(conn, req, false).await;
        let done = Instant::now();
        let measured = t0 >= warm_end;
        match result {
            Ok((status, _, len)) if (200..300).contains(&status) => {
                if measured {
                    s.ok += 1;
                    s.bytes += len;
                    let ns = (done - t0).as_nanos().min(u64::MAX as u128) as u64;
                    s.hist.saturating_record(ns.max(1_000));
                    s.last_done = s.last_done.max(done);
                }
            }
            Ok((status, _, _)) => {
                if measured {
                    s.errors += 1;
                }
                s.first_error.get_or_insert_with(|| format!("HTTP {status}"));
            }
            Err(e) => {
                if measured {
                    s.errors += 1;
                }
                s.first_error.get_or_insert_with(|| format!("{e:#}"));
                sender = None;
            }
        }
    }
    s
}

async fn run(args: RunArgs, threads: usize) -> Result<()> {
    let target = Arc::new(Target::new(&args.conn)?);
    if let Some(n) = args.expect_items {
        let mut c = target.connect().await.context("connecting")?;
        let (status, body, _) = exchange(&mut c, target.request(Method::GET, &args.path, None), true).await?;
        if status != 200 {
            bail!("check request: HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        let v: Value = serde_json::from_slice(&body).context("check request: body is not JSON")?;
        let items = v["items"].as_array().map(Vec::len).unwrap_or(0);
        if items != n {
            bail!("check request: expected {n} items, got {items}");
        }
    }
    let path: Arc<str> = Arc::from(args.path.as_str());
    let cpu0 = own_cpu_seconds();
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let handles: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(worker(target.clone(), path.clone(), warm_end, end)))
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 120_000_000_000, 3)?;
    let (mut ok, mut errors, mut bytes, mut connects) = (0u64, 0u64, 0u64, 0u64);
    let mut last_done = warm_end;
    let mut first_error = None;
    for h in handles {
        let s = h.await?;
        hist.add(&s.hist)?;
        ok += s.ok;
        errors += s.errors;
        bytes += s.bytes;
        connects += s.connects;
        last_done = last_done.max(s.last_done);
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    let loadgen_cores = match (cpu0, own_cpu_seconds()) {
        (Some(a), Some(b)) => Some(((b - a) / start.elapsed().as_secs_f64() * 100.0).round() / 100.0),
        _ => None,
    };
    // Throughput over the measured window, which ends when the last measured request completed
    // (requests started before the deadline are allowed to finish).
    let window = (last_done - warm_end).as_secs_f64().max(args.duration.min(1e-3));
    let ms = |ns: u64| (ns as f64 / 1e6 * 1000.0).round() / 1000.0;
    let mut out = json!({
        "path": args.path,
        "url": args.conn.url,
        "connections": args.connections,
        "threads": threads,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "window_s": (window * 1000.0).round() / 1000.0,
        "requests": ok,
        "errors": errors,
        "connects": connects,
        "rps": (ok as f64 / window * 10.0).round() / 10.0,
        "mib_per_s": (bytes as f64 / window / 1048576.0 * 10.0).round() / 10.0,
        "bytes_per_response": bytes.checked_div(ok).unwrap_or(0),
        "latency_ms": {
            "min": ms(hist.min()),
            "mean": ((hist.mean() / 1e6) * 1000.0).round() / 1000.0,
            "p50": ms(hist.value_at_quantile(0.50)),
            "p90": ms(hist.value_at_quantile(0.90)),
            "p99": ms(hist.value_at_quantile(0.99)),
            "p999": ms(hist.value_at_quantile(0.999)),
            "max": ms(hist.max()),
        },
        "first_error": first_error,
        "loadgen_cores": loadgen_cores,
    });
    for (k, v) in args.labels {
        out[k] = Value::String(v);
    }
    println!("{out}");
    if ok == 0 {
        bail!("no successful request (first error: {})", out["first_error"]);
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 Hz ticks).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 0, utime 11, stime 12.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

// ---------------------------------------------------------------------------------------------
// seed

async fn seed(args: SeedArgs) -> Result<()> {
    if !matches!(args.kind.as_str(), "configmap" | "secret") {
        bail!("--kind must be configmap or secret");
    }
    let target = Arc::new(Target::new(&args.conn)?);
    let mut c = target.connect().await.context("connecting")?;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace}});
    let (status, body, _) = exchange(
        &mut c,
        target.request(Method::POST, "/api/v1/namespaces", Some(Bytes::from(ns.to_string()))),
        true,
    )
    .await?;
    if !(status == 201 || status == 200 || status == 409) {
        bail!("creating namespace: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (target, next, ns) = (target.clone(), next.clone(), args.namespace.clone());
        let (count, value_bytes) = (args.count, args.value_bytes);
        let kind = if args.kind == "secret" { "Secret" } else { "ConfigMap" };
        handles.push(tokio::spawn(async move {
            let mut c = target.connect().await?;
            let (mut created, mut existed) = (0usize, 0usize);
            let path = format!("/api/v1/namespaces/{ns}/{}s", kind.to_lowercase());
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let value: String = (0..value_bytes).map(|j| (b'a' + ((i + j) % 26) as u8) as char).collect();
                let metadata = json!({"name": format!("bench-{i:05}"), "namespace": ns,
                                      "labels": {"app.kubernetes.io/name": "bench", "bench/index": i.to_string()}});
                let cm = if kind == "Secret" {
                    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
                           "data": {"password": b64(&format!("S3cr3t-{i:05}")), "payload": b64(&value)}})
                } else {
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"payload": value}})
                };
                if c.is_closed() {
                    c = target.connect().await?;
                }
                let req = target.request(Method::POST, &path, Some(Bytes::from(cm.to_string())));
                let (status, body, _) = exchange(&mut c, req, true).await?;
                match status {
                    200 | 201 => created += 1,
                    409 => existed += 1,
                    _ => bail!("creating bench-{i:05}: HTTP {status}: {}", String::from_utf8_lossy(&body)),
                }
            }
            Ok::<_, anyhow::Error>((created, existed))
        }));
    }
    let (mut created, mut existed) = (0, 0);
    for h in handles {
        let (c, e) = h.await??;
        created += c;
        existed += e;
    }
    println!(
        "{}",
        json!({"namespace": args.namespace, "created": created, "already_existed": existed,
               "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0})
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// watch

/// What one watch saw.
#[derive(Default)]
struct WatchStats {
    opened: bool,
    events: u64,
    bytes: u64,
    error: Option<String>,
}

async fn watch(args: WatchArgs) -> Result<()> {
    let target = Arc::new(Target::new(&args.conn)?);
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let handles: Vec<_> = (0..args.connections)
        .map(|_| {
            let (target, path, opened) = (target.clone(), args.path.clone(), opened.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut st = WatchStats::default();
                let result: Result<()> = async {
                    let mut c = target.connect().await?;
                    c.ready().await?;
                    let resp = c.send_request(target.request(Method::GET, &path, None)).await?;
                    if resp.status() != 200 {
                        bail!("HTTP {}", resp.status());
                    }
                    st.opened = true;
                    opened.add_permits(1);
                    let mut body = resp.into_body();
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return Ok(()),
                            frame = body.frame() => match frame {
                                Some(f) => if let Ok(data) = f?.into_data() {
                                    st.bytes += data.len() as u64;
                                    st.events += data.iter().filter(|b| **b == b'\n').count() as u64;
                                },
                                None => bail!("the watch ended early"),
                            },
                        }
                    }
                }
                .await;
                if let Err(e) = result {
                    if !st.opened {
                        opened.add_permits(1);
                    }
                    st.error = Some(format!("{e:#}"));
                }
                st
            })
        })
        .collect();
    // every watch open (or failed)
    let _ = opened.acquire_many(u32::try_from(args.connections).unwrap_or(u32::MAX)).await?;
    let open_seconds = started.elapsed().as_secs_f64();
    eprintln!("loadgen: {} watches open after {open_seconds:.1} s; holding {} s", args.connections, args.duration);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let _ = stop_tx.send(true);
    let (mut open, mut events, mut bytes, mut errors, mut first_error) = (0, 0, 0, 0, None);
    for h in handles {
        let st = h.await?;
        open += usize::from(st.opened);
        events += st.events;
        bytes += st.bytes;
        if let Some(e) = st.error {
            errors += 1;
            first_error.get_or_insert(e);
        }
    }
    println!(
        "{}",
        json!({"connections": args.connections, "opened": open, "errors": errors, "first_error": first_error,
               "events": events, "bytes": bytes, "open_seconds": (open_seconds * 10.0).round() / 10.0})
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// kubeconfig

fn kubeconfig(file: &Path, ca_out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str::<Value>(&text).map_err(|e| anyhow!("{e}")))
        .context("kubeconfig is neither JSON nor YAML")?;
    let named = |list: &str, name: &str, key: &str| -> Option<Value> {
        doc[list].as_array()?.iter().find(|e| e["name"] == name).map(|e| e[key].clone())
    };
    let first = |list: &str, key: &str| -> Option<Value> { doc[list].as_array()?.first().map(|e| e[key].clone()) };
    let ctx = match doc["current-context"].as_str() {
        Some(c) if !c.is_empty() => named("contexts", c, "context"),
        _ => first("contexts", "context"),
    }
    .unwrap_or(Value::Null);
    let cluster = ctx["cluster"]
        .as_str()
        .and_then(|c| named("clusters", c, "cluster"))
        .or_else(|| first("clusters", "cluster"))
        .ok_or_else(|| anyhow!("kubeconfig has no cluster"))?;
    let user = ctx["user"]
        .as_str()
        .and_then(|u| named("users", u, "user"))
        .or_else(|| first("users", "user"))
        .ok_or_else(|| anyhow!("kubeconfig has no user"))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let server = cluster["server"].as_str().ok_or_else(|| anyhow!("cluster has no server"))?;
    let ca = if let Some(data) = cluster["certificate-authority-data"].as_str() {
        base64::engine::general_purpose::STANDARD.decode(data.trim()).context("certificate-authority-data")?
    } else if let Some(path) = cluster["certificate-authority"].as_str() {
        std::fs::read(base.join(path)).with_context(|| format!("reading {path}"))?
    } else {
        bail!("cluster has no certificate-authority(-data)");
    };
    let token = if let Some(t) = user["token"].as_str() {
        t.to_owned()
    } else if let Some(path) = user["tokenFile"].as_str() {
        std::fs::read_to_string(base.join(path))?.trim().to_owned()
    } else {
        bail!("user has no token");
    };
    std::fs::write(ca_out, ca)?;
    println!("SERVER={server}");
    println!("TOKEN={token}");
    Ok(())
}
