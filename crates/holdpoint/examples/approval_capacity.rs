//! Benchmark: many pending approvals and held connections against one `holdpoint serve`.
//!
//! Run by `scripts/bench-approvals.sh` (which builds the release binary, raises `ulimit -n` and
//! passes the binary as `HOLDPOINT_BIN`). This process runs the Kubernetes API emulator and the
//! clients; the gateway is a separate `holdpoint serve` process, so its `/proc/PID/status`
//! (`VmRSS`, `VmHWM`) is the gateway's memory alone. Store: SQLite in a temporary directory
//! (PostgreSQL with `BENCH_STORE=postgres` and `HOLDPOINT_TEST_POSTGRES_URL`).
//!
//! Its policy (written to the temporary directory): reads pass; creates in namespace
//! `kube-public` wait for a reviewer with a 10-minute hold (the held connections); every other
//! change waits with `hold: 0s`, so the caller gets `429` at once and the approval stays
//! pending (ttl 1 h).
//!
//! Steps: (1) baseline RSS and unrelated small GETs (`GET .../configmaps/web-config` as a
//! reader: one connection back to back for the latency, `READ_CONNS` connections for the
//! throughput); (2) `HELD` creates in `kube-public` left waiting on open connections;
//! (3) `PENDING` distinct creates in `demo`, `CONCURRENCY` at a time, each answered `429`;
//! (4) checks the store holds `HELD + PENDING` pending approvals and every held connection is
//! still open, then measures RSS and the same reads again while everything is held.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use holdpoint_store::{ApprovalFilter, ApprovalState};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn create_request(ns: &str, name: &str, token: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{ns}"}},"data":{{"a":"b"}}}}"#
    );
    format!(
        "POST /api/v1/namespaces/{ns}/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} in /proc/{pid}/status"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

struct ReadStats {
    p50: Duration,
    p99: Duration,
    one_conn_rps: f64,
    multi_rps: f64,
}

/// Small GETs through the gateway: back to back on one client for `secs`, then `conns` clients
/// in parallel for `secs`.
async fn measure_reads(
    client: &kube::Client,
    conns: usize,
    secs: u64,
) -> anyhow::Result<ReadStats> {
    let get = || {
        http::Request::get("/api/v1/namespaces/demo/configmaps/web-config")
            .body(Vec::new())
            .expect("request")
    };
    // warm-up
    for _ in 0..50 {
        client.request_text(get()).await?;
    }
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    while Instant::now() < end {
        let t = Instant::now();
        let body = client.request_text(get()).await?;
        lat.push(t.elapsed());
        ensure!(body.contains("web-config"), "unexpected answer {body}");
    }
    let one_conn_rps = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    let done = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, done) = (client.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let r = http::Request::get("/api/v1/namespaces/demo/configmaps/web-config")
                    .body(Vec::new())
                    .expect("request");
                client.request_text(r).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let multi_rps = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    Ok(ReadStats {
        p50: common::percentile(&lat, 50.0),
        p99: common::percentile(&lat, 99.0),
        one_conn_rps,
        multi_rps,
    })
}

fn print_reads(label: &str, s: &ReadStats) {
    println!(
        "  reads {label}: 1 conn p50 {:.3} ms p99 {:.3} ms ({:.0} req/s); {} req/s with parallel clients",
        s.p50.as_secs_f64() * 1000.0,
        s.p99.as_secs_f64() * 1000.0,
        s.one_conn_rps,
        s.multi_rps.round()
    );
}

async fn reader_client(dir: &Path, addr: SocketAddr, token: &str) -> anyhow::Result<kube::Client> {
    let kc = dir.join("reader.kubeconfig");
    let ca = dir.join("data/tls/ca.crt");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gw\n  cluster:\n    server: https://{addr}\n    certificate-authority: {ca:?}\n\
             users:\n- name: reader\n  user:\n    token: {token}\ncontexts:\n- name: gw\n  context:\n    cluster: gw\n    user: reader\ncurrent-context: gw\n",
            ca = ca.display().to_string()
        ),
    )?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&kc)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Pending approvals in `namespace` (the store lists at most 1,000 at a time).
async fn count_pending(store: &holdpoint_store::Store, namespace: &str) -> anyhow::Result<usize> {
    Ok(store
        .list_approvals(&ApprovalFilter {
            state: Some(ApprovalState::Pending),
            namespace: Some(namespace.into()),
            limit: 1000,
            ..Default::default()
        })
        .await?
        .len())
}

/// The approval id in a pending answer's message ("... approval ID is pending ...").
fn approval_id(body: &str) -> Option<String> {
    let rest = &body[body.find("approval ")? + "approval ".len()..];
    let id = rest.split(' ').next()?;
    (rest[id.len()..].starts_with(" is pending")).then(|| id.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let held_n = env_usize("HELD", 1_000)?;
    ensure!(
        held_n <= 1000,
        "HELD is at most 1000 (the store lists 1,000 at a time)"
    );
    let pending_n = env_usize("PENDING", 10_000)?;
    let concurrency = env_usize("CONCURRENCY", 32)?;
    let read_conns = env_usize("READ_CONNS", 8)?;
    let read_secs = env_usize("READ_SECS", 5)? as u64;
    let bin = std::env::var("HOLDPOINT_BIN")
        .context("HOLDPOINT_BIN: the holdpoint binary (scripts/bench-approvals.sh sets it)")?;

    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let emulator = kube_emulator::start(kube_emulator::EmulatorConfig {
        listen: "127.0.0.1:0".parse()?,
        seed: kube_emulator::Seed::Demo,
        admin_token: None,
    })
    .await?;
    let upstream = dir.join("upstream.kubeconfig");
    emulator.write_kubeconfig(&upstream)?;
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n\
         - name: reads\n    match:\n      mutating: false\n    action: allow\n\
         - name: held-long\n    match:\n      mutating: true\n      namespaces: [kube-public]\n    action: approve\n    approval:\n      reviewers: {groups: [reviewers]}\n      hold: 10m\n      ttl: 1h\n\
         - name: changes\n    match:\n      mutating: true\n    action: approve\n    approval:\n      reviewers: {groups: [reviewers]}\n      hold: 0s\n      ttl: 1h\n\
         default:\n  action: deny\n"
            .replace("\n- ", "\n  - "),
    )?;
    let (agent, reader) = (
        "bench-agent-token-0123456789",
        "bench-reader-token-0123456789",
    );
    let sha = holdpoint_gateway::phases::authenticate::token_sha256_hex;
    let url = if std::env::var("BENCH_STORE").as_deref() == Ok("postgres") {
        holdpoint_store::testing::fresh_postgres_url()
            .await
            .context("BENCH_STORE=postgres needs HOLDPOINT_TEST_POSTGRES_URL")?
    } else {
        format!("sqlite://{}", dir.join("data/holdpoint.db").display())
    };
    let (addr, admin) = (free_port()?, free_port()?);
    let config = dir.join("holdpoint.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {addr}\nadmin_listen: {admin}\ndata_dir: {data:?}\nupstream:\n  kubeconfig: {up:?}\n\
             store:\n  url: {url:?}\npolicy:\n  file: {policy:?}\nadmin:\n  groups: [reviewers]\n\
             authentication:\n  static_tokens:\n    - sha256: {a}\n      user: bench-agent\n      groups: [agents]\n\
             \x20   - sha256: {r}\n      user: bench-reader\n      groups: [readers]\n",
            data = dir.join("data").display().to_string(),
            up = upstream.display().to_string(),
            policy = policy.display().to_string(),
            a = sha(agent),
            r = sha(reader),
        ),
    )?;
    let mut child = tokio::process::Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("HOLDPOINT_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    let pid = child.id().context("gateway pid")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(admin).await.is_err() {
        ensure!(Instant::now() < deadline, "the gateway did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca_pem = std::fs::read_to_string(dir.join("data/tls/ca.crt"))?;
    let ready = common::raw_request(
        admin,
        &ca_pem,
        b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    ensure!(ready.status == 200, "gateway not ready");
    let store = holdpoint_store::Store::open(&url).await?;
    let client = reader_client(dir, addr, reader).await?;

    println!(
        "gateway pid {pid}; {held_n} held connections, {pending_n} pending approvals, store {}",
        if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    let (rss, _) = memory_kib(pid)?;
    println!("  RSS at start: {}", mib(rss));
    let before = measure_reads(&client, read_conns, read_secs).await?;
    let (rss, _) = memory_kib(pid)?;
    println!("  RSS after baseline reads: {}", mib(rss));
    print_reads("before", &before);

    // (2) held connections
    let t = Instant::now();
    let connector = common::tls_connector(&ca_pem);
    let mut held = Vec::with_capacity(held_n);
    for i in 0..held_n {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        tls.write_all(&create_request("kube-public", &format!("held-{i}"), agent))
            .await?;
        held.push(tls);
    }
    // every held request has its approval
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_pending(&store, "kube-public").await? < held_n {
        ensure!(
            Instant::now() < deadline,
            "the held requests' approvals did not appear"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  {held_n} held connections open and pending after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (rss, _) = memory_kib(pid)?;
    println!("  RSS with {held_n} held: {}", mib(rss));

    // (3) pending approvals by distinct creates answered 429 at once
    let t = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let ids = ids.clone();
        let (next, ca_pem) = (next.clone(), ca_pem.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pending_n {
                    return anyhow::Ok(());
                }
                let mut req = create_request("demo", &format!("pending-{i}"), agent);
                // one request per connection: the gateway answers and the client closes
                let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
                req.splice(head_end..head_end, b"\r\nConnection: close".iter().copied());
                let r = common::raw_request(addr, &ca_pem, &req).await;
                let id = match (r.status, approval_id(&r.body)) {
                    (429, Some(id)) => id,
                    _ => bail!("create {i}: {} {}", r.status, r.body),
                };
                ids.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  {pending_n} pending approvals created in {secs:.1} s ({:.0}/s)",
        pending_n as f64 / secs
    );
    // every create made its own approval, and all of them are still pending
    let ids: Vec<String> = ids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    ensure!(
        ids.len() == pending_n,
        "{} distinct approvals for {pending_n} creates",
        ids.len()
    );
    for id in &ids {
        let a = store.get_approval(id).await?.context("approval vanished")?;
        ensure!(a.state == ApprovalState::Pending, "{id} is {}", a.state);
    }
    ensure!(
        count_pending(&store, "kube-public").await? == held_n,
        "held approvals changed"
    );
    let pending = held_n + pending_n;
    let (rss, _) = memory_kib(pid)?;
    println!(
        "  RSS with {pending} pending approvals and {held_n} held: {}",
        mib(rss)
    );

    // (4) reads while everything is held
    let during = measure_reads(&client, read_conns, read_secs).await?;
    print_reads("during", &during);
    // every held connection is still open and waiting (no answer yet)
    let mut answered = 0;
    let mut buf = [0u8; 64];
    for tls in held.iter_mut() {
        if let Ok(r) = tokio::time::timeout(Duration::from_micros(1), tls.read(&mut buf)).await {
            let _ = r;
            answered += 1;
        }
    }
    ensure!(
        answered == 0,
        "{answered} held connections were answered or closed"
    );
    let (rss, hwm) = memory_kib(pid)?;
    println!("  RSS at the end: {} (peak VmHWM {})", mib(rss), mib(hwm));
    println!(
        "  target RSS < 300 MiB: {}",
        if hwm < 300 * 1024 {
            "met (peak)"
        } else {
            "MISSED (peak)"
        }
    );
    println!(
        "  reads during / before: p50 x{:.2}, p99 x{:.2}, parallel throughput x{:.2}",
        during.p50.as_secs_f64() / before.p50.as_secs_f64(),
        during.p99.as_secs_f64() / before.p99.as_secs_f64(),
        during.multi_rps / before.multi_rps
    );
    drop(held);
    child.start_kill()?;
    child.wait().await?;
    emulator.shutdown().await;
    Ok(())
}
