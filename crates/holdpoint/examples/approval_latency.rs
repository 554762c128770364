//! Benchmark: from a reviewer's approve call to the held request reaching the upstream.
//!
//! Starts the Kubernetes API emulator and the gateway in this process (`holdpoint::env::Env`,
//! the embedded default policy, SQLite in a temporary directory, or PostgreSQL when
//! `HOLDPOINT_TEST_POSTGRES_URL` is set and `BENCH_STORE=postgres`). For each of `N` distinct
//! ConfigMap creates it sends the create as the agent over raw HTTPS (the default policy holds
//! it), waits until its approval is pending, then takes `t0`, sends
//! `POST /v1/approvals/{id}/approve` to the admin listener with the reviewer's token, and takes
//! the emulator's receive timestamp of the create (`RecordedRequest::received_at`, same
//! process, same monotonic clock). The latency is `received_at - t0`. It also reports the
//! approve call's round trip and checks that every held caller got `201 Created`.
//!
//! ```sh
//! cargo run --release -p holdpoint --example approval_latency -- 200
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use holdpoint::approvals_cmd::{ApiArgs, ApiClient};
use holdpoint_store::{ApprovalFilter, ApprovalState};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .context("N (number of approvals) must be a number")?,
        None => 200,
    };
    ensure!(n > 0, "N must be positive");
    let warmup = 10usize;
    let postgres = std::env::var("BENCH_STORE").as_deref() == Ok("postgres");
    let store_url = if postgres {
        Some(
            holdpoint_store::testing::fresh_postgres_url()
                .await
                .context("BENCH_STORE=postgres needs HOLDPOINT_TEST_POSTGRES_URL")?,
        )
    } else {
        None
    };
    // The embedded default policy: every ordinary create waits for one reviewer (5 s hold).
    let t = common::start_with(store_url, Default::default()).await;
    let env = &t.env;
    let emulator = env.emulator.as_ref().context("runs on the emulator")?;
    let reviewer = ApiClient::new(&ApiArgs {
        kubeconfig: Some(env.admin_kubeconfig.clone()),
        admin_url: None,
    })
    .await?;
    let store = env.gateway.store().clone();
    let addr = env.gateway.addr();
    let ca = env.gateway.ca_pem().to_owned();
    let token = env.agent_token.clone();
    let is_create = |r: &kube_emulator::RecordedRequest| {
        r.method == "POST"
            && r.path == "/api/v1/namespaces/demo/configmaps"
            && !r.query.as_deref().unwrap_or("").contains("dryRun")
    };

    let mut latencies = Vec::with_capacity(n);
    let mut round_trips = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let request = create_request(&format!("bench-{i}"), &token);
        let (addr2, ca2) = (addr, ca.clone());
        let held =
            tokio::spawn(async move { common::raw_request(addr2, &ca2, &request).await.status });
        // Wait until the request is held (its approval is pending).
        let deadline = Instant::now() + Duration::from_secs(5);
        let id = loop {
            let pending = store
                .list_approvals(&ApprovalFilter {
                    state: Some(ApprovalState::Pending),
                    ..Default::default()
                })
                .await?;
            if let Some(a) = pending.first() {
                ensure!(pending.len() == 1, "one pending approval at a time");
                break a.id.clone();
            }
            if Instant::now() > deadline {
                bail!("request {i} was not held");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let creates_before = emulator.requests().iter().filter(|r| is_create(r)).count();
        ensure!(
            creates_before == i,
            "the emulator saw {creates_before} creates before #{i}"
        );
        let t0 = Instant::now();
        let voted = reviewer
            .post(
                &format!("/v1/approvals/{id}/approve"),
                serde_json::json!({}),
            )
            .await?;
        let round_trip = t0.elapsed();
        ensure!(voted["state"] == "executed", "approve answered {voted}");
        let status = held.await?;
        ensure!(status == 201, "held caller got {status}");
        let creates: Vec<_> = emulator
            .requests()
            .into_iter()
            .filter(|r| is_create(r))
            .collect();
        ensure!(creates.len() == i + 1, "exactly one create per approval");
        let received = creates[i].received_at;
        ensure!(
            received >= t0,
            "the create reached the upstream before the approve call"
        );
        if i >= warmup {
            latencies.push(received - t0);
            round_trips.push(round_trip);
        }
    }
    latencies.sort();
    round_trips.sort();
    let store_name = if postgres { "PostgreSQL" } else { "SQLite" };
    println!(
        "approve -> upstream receive, {n} approvals ({warmup} warm-up not counted), store {store_name}"
    );
    for (what, v) in [
        (
            "approve call sent -> create received by the emulator",
            &latencies,
        ),
        (
            "approve call round trip (client sees the answer)",
            &round_trips,
        ),
    ] {
        println!(
            "  {what}: p50 {} p90 {} p99 {} max {}",
            common::ms(common::percentile(v, 50.0)),
            common::ms(common::percentile(v, 90.0)),
            common::ms(common::percentile(v, 99.0)),
            common::ms(*v.last().unwrap_or(&Duration::ZERO)),
        );
    }
    let p99 = common::percentile(&latencies, 99.0);
    println!(
        "  target p99 < 20 ms: {}",
        if p99 < Duration::from_millis(20) {
            "met"
        } else {
            "MISSED"
        }
    );
    t.env.shutdown().await;
    Ok(())
}
