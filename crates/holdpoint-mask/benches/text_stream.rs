//! Line-streaming masker throughput: 1 MiB of exec-like output (log lines, `env` output, with and
//! without credentials) pushed in frames of 4 KiB and 32 KiB, against masking the same text whole
//! with `TextMasker::mask` (one pass, no line splitting).
//!
//! `cargo bench -p holdpoint-mask --bench text_stream -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use holdpoint_mask::text_stream::{DEFAULT_MAX_LINE, TextStream};
use holdpoint_mask::{MaskConfig, MaskSummary, TextMasker};

fn output(bytes: usize, with_secrets: bool) -> String {
    let lines = [
        "I1202 10:00:00.123456       1 controller.go:42] \"Synced\" pod=\"default/web-7d9f8b6c4-x2x9q\" duration=\"12.3ms\"\n",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        "drwxr-xr-x    2 root     root          4096 Dec  2 10:00 etc\n",
        "2026-12-02T10:00:00Z level=info msg=\"request completed\" method=GET path=/api/v1/orders status=200\n",
    ];
    let secrets = [
        "DATABASE_PASSWORD=hunter2-Pr0d-DB-pa55\n",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVtbzpkZWZhdWx0In0.c2lnbmF0dXJl\n",
    ];
    let mut out = String::with_capacity(bytes + 200);
    let mut i = 0usize;
    while out.len() < bytes {
        if with_secrets && i % 50 == 49 {
            out.push_str(secrets[(i / 50) % 2]);
        } else {
            out.push_str(lines[i % lines.len()]);
        }
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let masker = Arc::new(TextMasker::new(&MaskConfig::default()).unwrap());
    let mut g = c.benchmark_group("text_stream_1MiB");
    for (name, secrets) in [("clean", false), ("with_secrets", true)] {
        let text = output(1 << 20, secrets);
        g.throughput(Throughput::Bytes(text.len() as u64));
        for frame in [4096usize, 32 * 1024] {
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/frames"), frame),
                &text,
                |b, t| {
                    let mut out = Vec::with_capacity(t.len() + 1024);
                    b.iter(|| {
                        out.clear();
                        let mut s = TextStream::new(masker.clone(), DEFAULT_MAX_LINE);
                        for chunk in t.as_bytes().chunks(frame) {
                            s.push(black_box(chunk), &mut out);
                        }
                        s.finish(&mut out);
                        black_box(out.len())
                    })
                },
            );
        }
        g.bench_with_input(
            BenchmarkId::new(format!("{name}/whole_text"), 0),
            &text,
            |b, t| b.iter(|| black_box(masker.mask(black_box(t), &mut MaskSummary::new()).len())),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
