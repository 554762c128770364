//! `audit verify` speed: the whole chain of 100,000 events (each with a ~600-byte event text and
//! a ~300-byte stored body, as a small GET's record) plus a signed checkpoint every 1,000 events,
//! on SQLite (file in a temp dir) and, when `HOLDPOINT_TEST_POSTGRES_URL` is set, PostgreSQL.
//! Criterion reports events per second (target: at least 100,000/s); `100k_events_read_only`
//! reads the same rows without checking them (what the database alone costs).
//!
//! `cargo bench -p holdpoint-store --bench audit_verify`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holdpoint_store::*;
use jiff::Timestamp;

const EVENTS: i64 = 100_000;

fn fill(rt: &tokio::runtime::Runtime, store: &Store, signer: &AuditSigner) {
    let now = Timestamp::now();
    let event = format!(
        "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"pad\":\"{}\"}}",
        "x".repeat(540)
    );
    let body = vec![b'b'; 300];
    rt.block_on(async {
        for chunk in 0..EVENTS / 500 {
            let batch: Vec<NewAuditEvent> = (0..500)
                .map(|i| NewAuditEvent {
                    audit_id: format!("req-{chunk}-{i}"),
                    kind: "request".into(),
                    at: now,
                    username: Some("bench".into()),
                    session: SessionKey::Gap("user:bench".into()),
                    event: event.clone(),
                    request_body: None,
                    response_body: Some(body.clone()),
                })
                .collect();
            store
                .append_audit(&batch, std::time::Duration::from_secs(900))
                .await
                .unwrap();
            if chunk % 2 == 1 {
                store.audit_checkpoint(signer, now).await.unwrap();
            }
        }
    });
}

fn bench_backend(c: &mut Criterion, name: &str, url: String, dir: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::open(&url)).unwrap();
    let signer = AuditSigner::load_or_create(&dir.join(format!("{name}.key"))).unwrap();
    fill(&rt, &store, &signer);
    let keys = [signer.public_key().clone()];
    let mut group = c.benchmark_group(format!("{name}/audit_verify"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("100k_events", |b| {
        b.iter(|| {
            let r = rt.block_on(store.verify_audit(&keys, None)).unwrap();
            assert!(r.holds() && r.events == EVENTS as u64, "{r:?}");
        })
    });
    group.bench_function("100k_events_read_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut after = 0;
                loop {
                    let page = store
                        .audit_events(&AuditFilter {
                            after_seq: Some(after),
                            limit: 5000,
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    match page.last() {
                        Some(l) => after = l.seq,
                        None => break,
                    }
                }
            })
        })
    });
    group.finish();
    rt.block_on(store.close());
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    bench_backend(
        c,
        "sqlite",
        format!("sqlite://{}/bench.db", dir.path().display()),
        dir.path(),
    );
    if std::env::var(testing::POSTGRES_URL_ENV).is_ok() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = rt.block_on(testing::fresh_postgres_url()).unwrap();
        bench_backend(c, "postgres", url, dir.path());
    } else {
        eprintln!(
            "postgres benches not run: {} is unset",
            testing::POSTGRES_URL_ENV
        );
    }
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
