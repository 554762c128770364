//! Masking core benchmarks: the streaming masker over a 10,000-item SecretList (the issue's
//! 300 MB/s target), a ConfigMapList and a watch stream; the `Value` path over a 5,000-item
//! SecretList (mask only, and decode + mask + encode); text scanning throughput (clean log
//! text and log text with credentials).
//!
//! `cargo bench -p holdpoint-mask --bench mask -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use holdpoint_mask::{JsonStream, LineStream, MaskConfig, MaskSummary, Masker, NO_REVEAL};
use serde_json::{Value, json};
use std::hint::black_box;

fn secret_list(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "metadata": {
                    "name": format!("app-{i}-credentials"), "namespace": format!("team-{}", i % 40),
                    "uid": format!("0b6a1c9e-1f2d-4a61-9a52-{i:012}"), "resourceVersion": format!("{}", 100000 + i),
                    "creationTimestamp": "2026-12-01T10:00:00Z",
                    "labels": {"app.kubernetes.io/name": format!("app-{i}"), "app.kubernetes.io/managed-by": "Helm"},
                    "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                        "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {".": {}, "f:password": {}, "f:username": {}, "f:url": {}}, "f:type": {}}}]
                },
                "type": "Opaque",
                "data": {"password": "UzNjcjN0UEBzc3cwcmQhMTIzNDU2Nzg=", "username": "YXBwLXVzZXI=",
                         "url": "cG9zdGdyZXM6Ly9hcHA6UzNjcjN0QGRiOjU0MzIvYXBw"}
            })
        })
        .collect();
    json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "123456"}, "items": items})
}

fn log_text(bytes: usize, with_secrets: bool) -> String {
    let lines = [
        "I1202 10:00:00.123456       1 controller.go:42] \"Synced\" pod=\"default/web-7d9f8b6c4-x2x9q\" duration=\"12.3ms\"\n",
        "2026-12-02T10:00:00Z level=info msg=\"request completed\" method=GET path=/api/v1/orders status=200 bytes=5123\n",
        "W1202 10:00:01.000001       1 reflector.go:561] watch of *v1.ConfigMap ended with: too old resource version\n",
    ];
    let secrets = [
        "2026-12-02T10:00:02Z level=debug msg=\"connecting\" dsn=postgres://app:Sup3r-S3cret!@db:5432/app\n",
        "2026-12-02T10:00:03Z level=debug msg=\"auth\" header=\"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl\"\n",
    ];
    let mut out = String::with_capacity(bytes + 200);
    let mut i = 0usize;
    while out.len() < bytes {
        if with_secrets && i % 50 == 49 {
            out.push_str(secrets[(i / 50) % 2]);
        } else {
            out.push_str(lines[i % 3]);
        }
        i += 1;
    }
    out
}

fn config_map_list(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "metadata": {"name": format!("app-{i}-config"), "namespace": format!("team-{}", i % 40),
                    "uid": format!("7c1d2e3f-1f2d-4a61-9a52-{i:012}"), "resourceVersion": format!("{}", 200000 + i),
                    "creationTimestamp": "2026-12-01T10:00:00Z", "labels": {"app": format!("app-{i}")}},
                "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "search,checkout,recommendations",
                         "app.properties": "server.port=8080\nspring.profiles.active=prod\nmanagement.endpoints=health,info\n"}
            })
        })
        .collect();
    json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "223456"}, "items": items})
}

/// Runs the streaming masker over `body` in 64 KiB chunks (as hyper delivers a large body).
fn stream_mask(masker: &Masker, body: &[u8]) -> usize {
    let mut s = JsonStream::new(NO_REVEAL.clone(), 16 << 20);
    let mut out = Vec::with_capacity(64 << 10);
    let mut total = 0;
    for chunk in body.chunks(64 << 10) {
        s.push(masker, chunk, &mut out).unwrap();
        total += out.len();
        out.clear();
    }
    s.finish(masker, &mut out).unwrap();
    total + out.len()
}

fn bench(c: &mut Criterion) {
    let masker = Masker::new(&MaskConfig::default()).unwrap();

    let mut g = c.benchmark_group("stream");
    let secrets = serde_json::to_vec(&secret_list(10_000)).unwrap();
    let config_maps = serde_json::to_vec(&config_map_list(10_000)).unwrap();
    let mut watch = Vec::new();
    for item in secret_list(10_000)["items"].as_array().unwrap() {
        let mut obj = item.clone();
        obj["kind"] = json!("Secret");
        obj["apiVersion"] = json!("v1");
        serde_json::to_writer(&mut watch, &json!({"type": "ADDED", "object": obj})).unwrap();
        watch.push(b'\n');
    }
    let logs = log_text(8 << 20, true);
    g.sample_size(20);
    for (name, body) in [
        ("secret_list_10000", &secrets),
        ("configmap_list_10000", &config_maps),
        ("secret_watch_10000_events", &watch),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(stream_mask(&masker, black_box(body))))
        });
    }
    g.throughput(Throughput::Bytes(logs.len() as u64));
    g.bench_function("log_lines_8MiB", |b| {
        b.iter(|| {
            let mut s = LineStream::new(64 << 10);
            let mut out = Vec::with_capacity(64 << 10);
            let mut total = 0;
            for chunk in logs.as_bytes().chunks(16 << 10) {
                s.push(&masker, chunk, &mut out);
                total += out.len();
                out.clear();
            }
            s.finish(&masker, &mut out);
            black_box(total + out.len())
        })
    });
    g.finish();

    let list = secret_list(5_000);
    let encoded = serde_json::to_vec(&list).unwrap();
    let mut g = c.benchmark_group("secret_list_5000");
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.sample_size(10);
    g.bench_function("mask_value", |b| {
        b.iter_batched(
            || list.clone(),
            |mut v| black_box(masker.mask_value(&mut v)),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("decode_mask_encode", |b| {
        b.iter(|| {
            let mut v: Value = serde_json::from_slice(black_box(&encoded)).unwrap();
            masker.mask_value(&mut v);
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    g.bench_function("decode_encode_only", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&encoded)).unwrap();
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("text_scan_1MiB");
    for (name, secrets) in [("clean_log", false), ("log_with_secrets", true)] {
        let text = log_text(1 << 20, secrets);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &text, |b, t| {
            b.iter(|| {
                let mut s = MaskSummary::new();
                black_box(masker.mask_text(black_box(t), &mut s).len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
