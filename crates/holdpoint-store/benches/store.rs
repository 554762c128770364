//! Store latencies that bound the approval path: a stored-token lookup (a gateway cache miss),
//! and one approval's whole life (create, vote to quorum, begin_execute, finish_execute: four
//! transactions), on SQLite (file in a temp dir, WAL, synchronous=FULL) and, when
//! `HOLDPOINT_TEST_POSTGRES_URL` is set, on PostgreSQL.
//!
//! `cargo bench -p holdpoint-store --bench store -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use holdpoint_store::*;
use jiff::{SignedDuration, Timestamp};

fn new_approval(n: u64, now: Timestamp) -> NewApproval {
    NewApproval {
        requester: Requester {
            username: "agent".into(),
            groups: vec!["agents".into()],
            uid: None,
            extra: Default::default(),
            authenticator: "static-token".into(),
            source: None,
        },
        request: RequestBinding::new(
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/web",
            "",
            Some("application/merge-patch+json".into()),
            vec![],
            format!("{{\"spec\":{{\"replicas\":{n}}}}}").into_bytes(),
        ),
        summary: RequestSummary {
            verb: "patch".into(),
            resource: "deployments".into(),
            namespace: Some("prod".into()),
            ..Default::default()
        },
        kubectl_command: None,
        kubectl_session: None,
        rule: "bench".into(),
        reviewers: Reviewers {
            users: vec!["alice".into()],
            groups: vec![],
        },
        quorum: 1,
        mode: ApprovalMode::Execute,
        created_at: now,
        expires_at: now + SignedDuration::from_secs(3600),
    }
}

fn bench_backend(c: &mut Criterion, name: &str, url: String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::open(&url)).unwrap();
    let now = Timestamp::now();
    let token = generate_token().unwrap();
    let sha = sha256_hex(token.as_bytes());
    rt.block_on(store.create_token(
        &NewToken {
            sha256: sha.clone(),
            username: "ci".into(),
            groups: vec![],
            uid: None,
            description: None,
            expires_at: None,
            created_by: "bench".into(),
        },
        now,
    ))
    .unwrap();
    c.bench_function(&format!("{name}/token_lookup"), |b| {
        b.iter(|| rt.block_on(store.lookup_token_by_hash(&sha, now)).unwrap())
    });
    let alice = Voter {
        username: "alice".into(),
        groups: vec![],
    };
    let mut n = 0u64;
    c.bench_function(&format!("{name}/approval_lifecycle"), |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(async {
                let (a, _) = store.create_or_attach(&new_approval(n, now)).await.unwrap();
                store
                    .vote(&a.id, &alice, Decision::Approve, None, now)
                    .await
                    .unwrap();
                assert!(store.begin_execute(&a.id, "bench", now).await.unwrap());
                store
                    .finish_execute(
                        &a.id,
                        ExecutionOutcome::Executed,
                        Some(&UpstreamResult::new(200, None, b"{}".to_vec())),
                        now,
                    )
                    .await
                    .unwrap();
            })
        })
    });
    let (a, _) = rt
        .block_on(store.create_or_attach(&new_approval(u64::MAX, now)))
        .unwrap();
    c.bench_function(&format!("{name}/approve_then_begin_execute"), |b| {
        b.iter_batched(
            || {
                n += 1;
                rt.block_on(store.create_or_attach(&new_approval(n, now)))
                    .unwrap()
                    .0
            },
            |a| {
                rt.block_on(async {
                    store
                        .vote(&a.id, &alice, Decision::Approve, None, now)
                        .await
                        .unwrap();
                    assert!(store.begin_execute(&a.id, "bench", now).await.unwrap());
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let _ = a;
    rt.block_on(store.close());
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    bench_backend(
        c,
        "sqlite",
        format!("sqlite://{}/bench.db", dir.path().display()),
    );
    if std::env::var(testing::POSTGRES_URL_ENV).is_ok() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = rt.block_on(testing::fresh_postgres_url()).unwrap();
        bench_backend(c, "postgres", url);
    } else {
        eprintln!(
            "postgres benches not run: {} is unset",
            testing::POSTGRES_URL_ENV
        );
    }
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
