//! Benchmark: the interactive latency the gateway and its stream tap add to `kubectl exec`.
//!
//! Starts the emulator and the gateway in this process (`holdpoint::env::Env`, policy allowing
//! everything, exec output masked by the built-in detectors), then opens a `v5.channel.k8s.io`
//! exec WebSocket running `cat` once directly to the emulator and once through the gateway, and
//! measures `N` round trips each (send one stdin message, wait for its echo on stdout):
//!
//! - `line`: `cat` without a terminal echoing a whole line (`"ping 123\n"`): the tap passes a
//!   complete line at once, so this is its processing cost plus the extra hop;
//! - `keystroke`: `cat` with `tty=true`, one character without a line end (the terminal echo of
//!   a typed key): the tap holds an incomplete line until its terminal flush delay (20 ms), so
//!   this shows that delay.
//!
//! ```sh
//! cargo run --release -p holdpoint --example stream_latency -- 500
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Where to open exec streams: address, CA, the name its certificate has, bearer token.
struct Target {
    addr: std::net::SocketAddr,
    ca_pem: String,
    name: &'static str,
    token: String,
}

/// An exec WebSocket to `to`.
async fn open(to: &Target, query: &str) -> anyhow::Result<Ws> {
    let Target {
        addr,
        ca_pem,
        name,
        token,
    } = to;
    let mut req = format!(
        "wss://localhost:{}/api/v1/namespaces/demo/pods/web-0/exec?{query}",
        addr.port()
    )
    .into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    req.headers_mut()
        .insert("sec-websocket-protocol", "v5.channel.k8s.io".parse()?);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = common::tls_connector(ca_pem)
        .connect(ServerName::try_from(*name)?, tcp)
        .await?;
    let (ws, _) = tokio_tungstenite::client_async(req, tls).await?;
    Ok(ws)
}

/// `n` round trips of `message` on stdin until `expect` has come back on stdout.
async fn round_trips(
    ws: &mut Ws,
    n: usize,
    message: &[u8],
    expect: &[u8],
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    let mut stdin = vec![0u8];
    stdin.extend_from_slice(message);
    for _ in 0..n {
        let t0 = Instant::now();
        ws.send(Message::binary(stdin.clone())).await?;
        let mut got = Vec::new();
        while !got.ends_with(expect) {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .context("echo within 10 s")?
                .context("stream open")??;
            if let Message::Binary(b) = msg
                && b.first() == Some(&1)
            {
                got.extend_from_slice(&b[1..]);
            }
        }
        times.push(t0.elapsed());
    }
    Ok(times)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().context("N must be a number")?,
        None => 500,
    };
    ensure!(n > 0, "N must be positive");
    let t = common::start_with(
        None,
        holdpoint_gateway::PhaseOverrides {
            decider: Some(Arc::new(holdpoint_gateway::phases::decide::AllowAll)),
            ..Default::default()
        },
    )
    .await;
    let emulator = t.env.emulator.as_ref().context("runs on the emulator")?;
    let gateway = Target {
        addr: t.env.gateway.addr(),
        ca_pem: t.env.gateway.ca_pem().to_owned(),
        name: "localhost",
        token: t.env.agent_token.clone(),
    };
    let direct = Target {
        addr: emulator.addr(),
        ca_pem: emulator.ca_pem().to_owned(),
        name: "127.0.0.1",
        token: emulator.admin_token().to_owned(),
    };

    println!("{n} round trips each; p50 / p90 / p99");
    for (case, query, message, expect) in [
        (
            "line",
            "command=cat&stdin=true&stdout=true",
            &b"ping 123\n"[..],
            &b"ping 123\n"[..],
        ),
        (
            "keystroke",
            "command=cat&stdin=true&stdout=true&tty=true",
            b"x",
            b"x",
        ),
    ] {
        for (via, to) in [("direct", &direct), ("gateway", &gateway)] {
            let mut ws = match open(to, query).await {
                Ok(ws) => ws,
                Err(e) => bail!("{via}: {e:#}"),
            };
            // warm up (the tty session also echoes what it reads)
            round_trips(&mut ws, 20, message, expect).await?;
            let mut times = round_trips(&mut ws, n, message, expect).await?;
            times.sort();
            println!(
                "{case:>9} {via:>7}: {} / {} / {}",
                common::ms(common::percentile(&times, 50.0)),
                common::ms(common::percentile(&times, 90.0)),
                common::ms(common::percentile(&times, 99.0))
            );
            let _ = ws.close(None).await;
        }
    }
    Ok(())
}
