//! The audit log's packs (`holdpoint_store::pack`): packing and unpacking a batch of small-GET
//! events as the gateway writes them, and one large LIST body, with zlib (how bodies were
//! compressed one by one on the data path before packs) for comparison.
//!
//! `cargo bench -p holdpoint-store --bench pack`

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use holdpoint_store::audit::{AuditEvent, EventContent};
use holdpoint_store::pack::{self, PackEntry};
use jiff::Timestamp;

/// A small GET's `ResponseComplete` event, as the gateway writes it (~1 KB).
fn event_text(n: u64) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"01a23cff-2944-7767-a5c9-{n:012x}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/demo/configmaps/web-config","verb":"get","user":{{"username":"bench","groups":["bench"]}},"sourceIPs":["127.0.0.1"],"userAgent":"holdpoint-loadgen/0.1","objectRef":{{"resource":"configmaps","namespace":"demo","name":"web-config","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"2026-12-03T17:41:24.{:06}Z","stageTimestamp":"2026-12-03T17:41:24.{:06}Z","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"reads"}},"holdpoint":{{"outcome":"forwarded","method":"GET","mutating":false,"authenticator":"static-token","decision":"allow","rule":"reads","durationMs":2.{n},"bytes":{{"request":0,"response":358}},"responseBody":{{"contentType":"application/json","bytes":358,"storedBytes":358,"format":"json","masked":{{"text.url-password":1}}}},"instance":"vm"}}}}"#,
        n % 1_000_000,
        (n + 2_646) % 1_000_000
    )
}

const BODY: &[u8] = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config","namespace":"demo","labels":{"app":"web"},"uid":"aadae657-9e5c-48c2-8f5b-fc3272fb287e","creationTimestamp":"2026-12-03T17:41:20Z","resourceVersion":"16"},"data":{"app.properties":"listen=:8080\nlog_level=info\ndb_url=postgres://app:[MASKED]@db:5432/app\n","feature-flags":"new-ui=true"}}"#;

/// A ConfigMapList of about 256 KiB with varied values (the default body cap).
fn list_body() -> Vec<u8> {
    let mut body = String::from(r#"{"kind":"ConfigMapList","apiVersion":"v1","items":["#);
    let mut i: u64 = 0;
    while body.len() < 256 * 1024 {
        let values: Vec<String> = (0..60)
            .map(|j| format!("{:x}", (i * 31 + j * 17) * 2_654_435_761 % 1_000_003))
            .collect();
        body.push_str(&format!(
            r#"{{"metadata":{{"name":"cm-{i}","namespace":"bench","uid":"{:08x}-aaaa-bbbb","resourceVersion":"{}"}},"data":{{"k":"{}"}}}},"#,
            i * 7919,
            i + 100,
            values.join("-")
        ));
        i += 1;
    }
    body.push_str("]}");
    body.into_bytes()
}

fn stored(seq: i64, event: String, body: Vec<u8>) -> AuditEvent {
    let content = EventContent {
        audit_id: "a",
        kind: "request",
        at: Timestamp::UNIX_EPOCH,
        username: Some("bench"),
        session_id: "s-bench",
        event: &event,
        request_body: None,
        response_body: Some(&body),
    };
    let prev = [seq as u8; 32];
    let hash = holdpoint_store::audit::event_hash(&prev, &content).to_vec();
    AuditEvent {
        seq,
        audit_id: format!("01a23cff-2944-7767-a5c9-{seq:012x}"),
        kind: "request".into(),
        at: Timestamp::from_second(1_800_000_000 + seq).unwrap(),
        username: Some("bench".into()),
        session_id: "s-bench".into(),
        event,
        request_body: None,
        response_body: Some([&[0u8][..], &body].concat()),
        prev_hash: prev.to_vec(),
        hash,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("pack");
    let small: Vec<AuditEvent> = (1..=50)
        .map(|n| stored(n, event_text(n as u64 * 7_919), BODY.to_vec()))
        .collect();
    let entries: Vec<PackEntry<'_>> = small.iter().map(PackEntry::of).collect();
    let packed = pack::encode(&entries).unwrap();
    eprintln!(
        "50 small-GET events: {} bytes packed into {} ({:.1}x)",
        packed.bytes,
        packed.payload.len(),
        packed.bytes as f64 / packed.payload.len() as f64
    );
    g.throughput(Throughput::Elements(50));
    g.bench_function("encode_50_small_get_events", |b| {
        b.iter(|| pack::encode(std::hint::black_box(&entries)).unwrap())
    });
    g.bench_function("decode_50_small_get_events", |b| {
        b.iter(|| pack::decode(1, std::hint::black_box(&packed.payload), false).unwrap())
    });

    let list = list_body();
    let big = [stored(1, event_text(1), list.clone())];
    let big_entries = [PackEntry::of(&big[0])];
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.bench_function("encode_256KiB_list_body", |b| {
        b.iter(|| pack::encode(std::hint::black_box(&big_entries)).unwrap())
    });
    g.bench_function("zlib_fast_256KiB_list_body", |b| {
        b.iter(|| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(std::hint::black_box(&list)).unwrap();
            z.finish().unwrap()
        })
    });
    g.finish();
}

criterion_group!(pack_benches, benches);
criterion_main!(pack_benches);
