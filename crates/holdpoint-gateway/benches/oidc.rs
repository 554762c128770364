//! Validating an OIDC JWT whose issuer keys are already cached: the per-request cost of the OIDC
//! authenticator. `oidc_validate_cached_key/*` is the full validation (header and claims parsing,
//! key lookup, signature verification with ring, claim checks, identity mapping);
//! `oidc_verified_token_hit/*` is the same token again within 10 s, answered from the
//! verified-token cache (SHA-256 of the token, exp check, key-set generation check). Target:
//! under 20 µs.
//!
//! `cargo bench -p holdpoint-gateway --bench oidc -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature as lc;
use base64::Engine;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::future::BoxFuture;
use holdpoint_gateway::clock::SystemClock;
use holdpoint_gateway::config::OidcIssuerConfig;
use holdpoint_gateway::phases::authenticate::{FetchError, JwksFetcher, OidcAuthenticator};
use ring::rand::SystemRandom;
use ring::signature::{self as rs, KeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

const ISS: &str = "https://idp.example";

#[derive(Debug)]
struct StaticJwks(Bytes);

impl JwksFetcher for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, FetchError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(alg: &str, kid: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let claims = json!({"iss": ISS, "aud": "holdpoint", "sub": "agent-7",
        "email": "agent-7@example.com", "groups": ["agents", "ci"],
        "iat": now, "nbf": now, "exp": now + 86_400});
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The signature check alone (aws-lc-rs with a parsed key, as the authenticator does it), for
/// comparison with the whole validation.
type CryptoOnly = Box<dyn Fn() -> bool>;

fn signature_check(
    alg: &'static dyn lc::VerificationAlgorithm,
    key: Vec<u8>,
    input: String,
    sig: Vec<u8>,
) -> CryptoOnly {
    let key = lc::ParsedPublicKey::new(alg, key).unwrap();
    Box::new(move || key.verify_sig(input.as_bytes(), &sig).is_ok())
}

fn setup() -> (
    OidcAuthenticator,
    Vec<(&'static str, String)>,
    Vec<CryptoOnly>,
) {
    let mut crypto = Vec::new();
    let rng = SystemRandom::new();
    let pem = include_bytes!("../testdata/oidc-test-rsa2048.pem");
    let der = PrivateKeyDer::from_pem_slice(pem).unwrap();
    let rsa = rs::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
    let mut rsa_jwk: Value =
        serde_json::from_str(include_str!("../testdata/oidc-test-rsa2048.jwk.json")).unwrap();
    rsa_jwk["kid"] = "r1".into();
    let input = signing_input("RS256", "r1");
    let mut sig = vec![0; rsa.public().modulus_len()];
    rsa.sign(&rs::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
        .unwrap();
    let rs256 = format!("{input}.{}", b64(&sig));
    crypto.push(signature_check(
        &lc::RSA_PKCS1_2048_8192_SHA256,
        rsa.public().as_ref().to_vec(),
        input,
        sig,
    ));

    let alg = &rs::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = rs::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = rs::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let p = ec.public_key().as_ref();
    let ec_jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "e1",
        "x": b64(&p[1..33]), "y": b64(&p[33..65])});
    let input = signing_input("ES256", "e1");
    let sig = ec.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec();
    let es256 = format!("{input}.{}", b64(&sig));
    crypto.push(signature_check(
        &lc::ECDSA_P256_SHA256_FIXED,
        p.to_vec(),
        input,
        sig,
    ));

    let pkcs8 = rs::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = rs::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "d1",
        "x": b64(ed.public_key().as_ref())});
    let input = signing_input("EdDSA", "d1");
    let sig = ed.sign(input.as_bytes()).as_ref().to_vec();
    let eddsa = format!("{input}.{}", b64(&sig));
    crypto.push(signature_check(
        &lc::ED25519,
        ed.public_key().as_ref().to_vec(),
        input,
        sig,
    ));

    let jwks = json!({"keys": [rsa_jwk, ec_jwk, ed_jwk]}).to_string();
    let config = OidcIssuerConfig {
        issuer: ISS.into(),
        audiences: vec!["holdpoint".into()],
        username_claim: "email".into(),
        username_prefix: None,
        groups_claim: Some("groups".into()),
        groups_prefix: Some("oidc:".into()),
        uid_claim: None,
        required_claims: BTreeMap::new(),
        algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
        ca_file: None,
        leeway: Duration::from_secs(30),
        jwks_refresh_interval: Duration::from_secs(3600),
        jwks_min_refresh_interval: Duration::from_secs(10),
    };
    let auth = OidcAuthenticator::with_fetchers(
        vec![(config, Arc::new(StaticJwks(Bytes::from(jwks))) as _)],
        Arc::new(SystemClock),
    );
    (
        auth,
        vec![("RS256", rs256), ("ES256", es256), ("EdDSA", eddsa)],
        crypto,
    )
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux): unlike wall time,
/// it does not grow when other processes compete for the cores.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// With `OIDC_BENCH_CPU_ITERS=N`, also prints the CPU time per validation over N runs, a number
/// that stays meaningful on a busy machine.
fn cpu_time_report(
    auth: &OidcAuthenticator,
    tokens: &[(&'static str, String)],
    crypto: &[CryptoOnly],
) {
    let Some(iters) = std::env::var("OIDC_BENCH_CPU_ITERS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return;
    };
    for ((alg, token), check) in tokens.iter().zip(crypto) {
        assert!(check());
        let start = thread_cpu_ns().unwrap_or(0);
        for _ in 0..iters {
            std::hint::black_box(check());
        }
        let ns = thread_cpu_ns().unwrap_or(0).saturating_sub(start);
        println!(
            "cpu time {alg} signature check only (aws-lc, parsed key): {:.2} µs per token ({iters} runs)",
            ns as f64 / iters as f64 / 1000.0
        );
        for (what, cached) in [("full validation", false), ("verified-token hit", true)] {
            let start = thread_cpu_ns().unwrap_or(0);
            for _ in 0..iters {
                let r = if cached {
                    futures::executor::block_on(auth.check(std::hint::black_box(token)))
                } else {
                    futures::executor::block_on(auth.check_uncached(std::hint::black_box(token)))
                };
                std::hint::black_box(r).ok();
            }
            let ns = thread_cpu_ns().unwrap_or(0).saturating_sub(start);
            println!(
                "cpu time {alg} {what}: {:.2} µs per token ({iters} runs)",
                ns as f64 / iters as f64 / 1000.0
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let (auth, tokens, crypto) = setup();
    cpu_time_report(&auth, &tokens, &crypto);
    let mut group = c.benchmark_group("oidc_validate_cached_key");
    for (alg, token) in &tokens {
        // The first call fetches the (fake) JWKS; every measured call finds the key cached.
        let id = futures::executor::block_on(auth.check_uncached(token))
            .unwrap()
            .expect("token accepted");
        assert_eq!(id.username, "agent-7@example.com");
        group.bench_function(*alg, |b| {
            b.iter(|| futures::executor::block_on(auth.check_uncached(std::hint::black_box(token))))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("oidc_verified_token_hit");
    for (alg, token) in &tokens {
        futures::executor::block_on(auth.check(token)).unwrap();
        group.bench_function(*alg, |b| {
            b.iter(|| futures::executor::block_on(auth.check(std::hint::black_box(token))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
