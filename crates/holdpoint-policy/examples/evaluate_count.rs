//! Runs N evaluations of the 200-rule benchmark policy (the request matches rule 198), for a
//! load-independent cost: `perf stat -e instructions:u` with N and with 0, divided by N.
//!
//!     cargo build --release -p holdpoint-policy --example evaluate_count
//!     perf stat -e instructions:u target/release/examples/evaluate_count 1000000
//!     perf stat -e instructions:u target/release/examples/evaluate_count 0

use std::hint::black_box;

use holdpoint_policy::{Policy, Request, Subject};
use http::Method;

include!("../benches/big_policy.rs");

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let policy = Policy::from_yaml(&big_policy()).expect("valid");
    let groups = vec!["agents".to_string(), "system:authenticated".to_string()];
    let subject = Subject {
        username: "agent",
        groups: &groups,
        authenticator: "static-token",
    };
    let info = kube_request::classify(
        &Method::PATCH,
        "/apis/apps/v1/namespaces/shared-web/deployments/web",
        None,
    )
    .expect("classified");
    let object = serde_json::json!({"spec": {"replicas": 3}});
    let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().expect("time");
    let req = Request::new(subject, &info, false, now).with_object(Some(&object));
    let started = std::time::Instant::now();
    for _ in 0..n {
        black_box(policy.evaluate(black_box(&req)));
    }
    if n > 0 {
        println!(
            "{n} evaluations, {:.3} µs each (wall clock, load-dependent)",
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
