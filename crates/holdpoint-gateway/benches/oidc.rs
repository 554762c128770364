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

fn setup() -> (OidcAuthenticator, Vec<(&'static str, String)>) {
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

    let alg = &rs::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = rs::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = rs::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let p = ec.public_key().as_ref();
    let ec_jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "e1",
        "x": b64(&p[1..33]), "y": b64(&p[33..65])});
    let input = signing_input("ES256", "e1");
    let es256 = format!(
        "{input}.{}",
        b64(ec.sign(&rng, input.as_bytes()).unwrap().as_ref())
    );

    let pkcs8 = rs::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = rs::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "d1",
        "x": b64(ed.public_key().as_ref())});
    let input = signing_input("EdDSA", "d1");
    let eddsa = format!("{input}.{}", b64(ed.sign(input.as_bytes()).as_ref()));

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
    )
}

fn bench(c: &mut Criterion) {
    let (auth, tokens) = setup();
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
