//! A service-account token accepted from the TokenReview cache (target: under 2 µs): the whole
//! `authenticate` call of the service-account authenticator for a realistic (~1 KB, RS256)
//! TokenRequest token, with the cache holding 10,000 entries (its default bound).

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use futures::future::BoxFuture;
use holdpoint_gateway::clock::SystemClock;
use holdpoint_gateway::config::ServiceAccountsConfig;
use holdpoint_gateway::identity::Secret;
use holdpoint_gateway::phases::authenticate::service_accounts::{ReviewError, ReviewResult};
use holdpoint_gateway::phases::authenticate::{
    Authenticator, ConnectionInfo, Credential, ServiceAccounts, TokenReviewer,
};

/// Answers every review at once, as a service account of namespace `bench`.
#[derive(Debug)]
struct Instant;

impl TokenReviewer for Instant {
    fn review<'a>(
        &'a self,
        _token: &'a Secret,
        _audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResult, ReviewError>> {
        Box::pin(async {
            Ok(ReviewResult {
                authenticated: true,
                username: "system:serviceaccount:bench:agent".into(),
                uid: Some("7f1c5a52-9d0e-4f7e-8a52-3c1b9f0e2d11".into()),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:bench".into(),
                    "system:authenticated".into(),
                ],
                extra: [(
                    "authentication.kubernetes.io/credential-id".to_string(),
                    vec!["JTI=0b6c3d8e-2f4a-4b5c-9d6e-7f8a9b0c1d2e".to_string()],
                )]
                .into(),
                audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            })
        })
    }
}

/// A token shaped like a kube-apiserver TokenRequest token (RS256, pod-bound claims).
fn token(i: usize) -> String {
    let exp = jiff::Timestamp::now().as_second() + 3600;
    let header = r#"{"alg":"RS256","kid":"Zp2mF3x8Qm1bX0kq0r5d8nH8c2kQ4mO3sT6uV9wY1zA"}"#;
    let claims = format!(
        r#"{{"aud":["https://kubernetes.default.svc.cluster.local"],"exp":{exp},"iat":{iat},"iss":"https://kubernetes.default.svc.cluster.local","jti":"0b6c3d8e-2f4a-4b5c-9d6e-{i:012}","kubernetes.io":{{"namespace":"bench","node":{{"name":"node-1","uid":"1d2e3f4a-5b6c-7d8e-9f0a-1b2c3d4e5f6a"}},"pod":{{"name":"agent-7d9f8b6c5d-x2x4z","uid":"a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d"}},"serviceaccount":{{"name":"agent","uid":"7f1c5a52-9d0e-4f7e-8a52-3c1b9f0e2d11"}},"warnafter":{iat}}},"nbf":{iat},"sub":"system:serviceaccount:bench:agent"}}"#,
        iat = exp - 3600,
    );
    let signature = URL_SAFE_NO_PAD.encode([0x5au8; 256]);
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn bench(c: &mut Criterion) {
    let sa = ServiceAccounts::new(
        &ServiceAccountsConfig::default(),
        Arc::new(Instant),
        Arc::new(SystemClock),
        Vec::new(),
    );
    let conn = ConnectionInfo {
        peer: "127.0.0.1:40000".parse().unwrap(),
        client_certs: vec![],
    };
    let credentials: Vec<Credential> = (0..10_000)
        .map(|i| Credential::Bearer(Secret::new(token(i))))
        .collect();
    for cred in &credentials {
        let id = sa
            .authenticate(cred, &conn)
            .now_or_never()
            .expect("the fake reviewer answers at once")
            .unwrap();
        assert!(id.is_some());
    }
    assert_eq!(sa.cached_entries(), 10_000);
    let hit = &credentials[4321];
    let Credential::Bearer(t) = hit else {
        unreachable!()
    };
    eprintln!("token length: {} bytes", t.expose().len());
    // The two largest parts of a hit, to read the total against on a loaded machine.
    c.bench_function("serviceaccount part: SHA-256 of the token ", |b| {
        b.iter(|| {
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::digest(black_box(t.expose()).as_bytes()).into();
            digest
        })
    });
    let identity = sa
        .authenticate(hit, &conn)
        .now_or_never()
        .unwrap()
        .unwrap()
        .unwrap();
    c.bench_function("serviceaccount part: cloning the cached identity", |b| {
        b.iter(|| black_box(&identity).clone())
    });
    c.bench_function("serviceaccount token, TokenReview cache hit", |b| {
        b.iter(|| {
            sa.authenticate(black_box(hit), &conn)
                .now_or_never()
                .expect("a cache hit never waits")
                .unwrap()
                .expect("authenticated")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
