//! Masking core benchmarks: the streaming masker over a 10,000-item SecretList (the issue's
//! 300 MB/s target), a ConfigMapList and a watch stream; the `Value` path over a 5,000-item
//! SecretList (mask only, and decode + mask + encode); text scanning throughput (clean log
//! text and log text with credentials).
//!
//! `cargo bench -p holdpoint-mask --bench mask -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use holdpoint_mask::{JsonStream, LineStream, MaskConfig, MaskSummary, Masker, NO_REVEAL};
use serde_json::Value;
use std::hint::black_box;

mod fixtures;
use fixtures::{config_map_list, log_text, secret_list, secret_watch};

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
    let watch = secret_watch(10_000);
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
