//! Policy evaluation cost (target: a 200-rule policy under 5 µs per request).
//!
//! The 200-rule policy is shaped like a real multi-team one: per-team rules keyed on groups,
//! namespaces and resources, some with change windows and CEL conditions, and the rule that
//! matches near the end, so evaluation walks almost the whole list.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use holdpoint_policy::{Policy, Request, Subject};
use http::Method;
use kube_request::{RequestInfo, classify};

include!("big_policy.rs");

fn info(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
    classify(&method, path, query).unwrap()
}

fn bench(c: &mut Criterion) {
    let big = Policy::from_yaml(&big_policy()).unwrap();
    assert_eq!(big.len(), 200);
    let default = Policy::default_for_agents();
    let groups = vec!["agents".to_string(), "system:authenticated".to_string()];
    let subject = Subject {
        username: "agent",
        groups: &groups,
        authenticator: "static-token",
    };
    let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();

    let patch = info(
        Method::PATCH,
        "/apis/apps/v1/namespaces/shared-web/deployments/web",
        None,
    );
    let object = serde_json::json!({"spec": {"replicas": 3}});
    let req = Request::new(subject, &patch, false, now).with_object(Some(&object));
    assert_eq!(big.evaluate(&req).rule, "platform-changes");
    c.bench_function("200 rules: match at rule 198 (patch deployment)", |b| {
        b.iter(|| big.evaluate(black_box(&req)))
    });

    let get = info(Method::GET, "/api/v1/namespaces/shared-web/pods", None);
    let req_get = Request::new(subject, &get, false, now);
    assert_eq!(big.evaluate(&req_get).rule, "platform-reads");
    c.bench_function("200 rules: match at rule 199 (list pods)", |b| {
        b.iter(|| big.evaluate(black_box(&req_get)))
    });

    // A request in a team namespace reaches that team's window and CEL rules on the way.
    let team = info(
        Method::PATCH,
        "/apis/apps/v1/namespaces/team-002-prod/deployments/web",
        None,
    );
    let req_team = Request::new(subject, &team, false, now).with_object(Some(&object));
    c.bench_function(
        "200 rules: CEL condition and change window on the way",
        |b| b.iter(|| big.evaluate(black_box(&req_team))),
    );

    let create = info(Method::POST, "/api/v1/namespaces/default/configmaps", None);
    let req_default = Request::new(subject, &create, false, now);
    assert_eq!(default.evaluate(&req_default).rule, "changes");
    c.bench_function("default policy: create configmap", |b| {
        b.iter(|| default.evaluate(black_box(&req_default)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
