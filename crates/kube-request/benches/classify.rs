//! Classification cost for typical requests (target: well under 1 µs).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use kube_request::{DryRun, classify};

fn bench(c: &mut Criterion) {
    c.bench_function("classify namespaced list with query", |b| {
        b.iter(|| {
            classify(
                black_box(&Method::GET),
                black_box("/api/v1/namespaces/default/pods"),
                black_box(Some(
                    "labelSelector=app%3Dweb&limit=500&resourceVersion=12345",
                )),
            )
        })
    });
    c.bench_function("classify namespaced get with query", |b| {
        b.iter(|| {
            classify(
                black_box(&Method::GET),
                black_box("/apis/apps/v1/namespaces/default/deployments/web"),
                black_box(Some("timeout=32s")),
            )
        })
    });
    c.bench_function("dry run parse", |b| {
        b.iter(|| DryRun::parse(black_box(Some("fieldManager=kubectl&dryRun=All"))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
