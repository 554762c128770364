//! End-to-end: service-account tokens (TokenReview through the gateway's credential, cache,
//! single flight), client certificates, and how the caller's identity reaches the upstream
//! (`upstream.impersonate`). Every test runs on the in-tree emulator, which mints real
//! TokenRequest tokens, answers TokenReviews, counts them, and records what it received.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{TestEnv, kubectl_with, start_custom};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::clock::{Clock, ManualClock};
use holdpoint_gateway::config::{
    AuthenticationConfig, ClientCertificatesConfig, ServiceAccountsConfig,
};
use http_body_util::Empty;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_service_accounts() -> AuthenticationConfig {
    AuthenticationConfig {
        service_accounts: Some(ServiceAccountsConfig::default()),
        ..Default::default()
    }
}

/// A token for `demo/<sa>` from the emulator's TokenRequest API (`kubectl create token` with the
/// upstream's admin kubeconfig).
async fn token_request(t: &TestEnv, sa: &str) -> String {
    let out = kubectl_with(
        &t.env.upstream_kubeconfig,
        &["create", "token", sa, "-n", "demo"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A gateway kubeconfig whose credential is `token`.
fn token_kubeconfig(t: &TestEnv, name: &str, token: &str) -> std::path::PathBuf {
    let path = t.dir.path().join(format!("{name}.kubeconfig"));
    holdpoint::kubeconfig::write_private(
        &path,
        &holdpoint::kubeconfig::for_token(
            &t.env.gateway.url(),
            t.env.gateway.ca_pem(),
            name,
            token,
            Some("demo"),
        ),
    )
    .unwrap();
    path
}

/// The `Impersonate-*` headers of the last upstream request whose path contains `needle`.
fn upstream_impersonation(t: &TestEnv, needle: &str) -> Vec<(String, String)> {
    let req = t
        .emulator()
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.contains(needle))
        .unwrap_or_else(|| panic!("the upstream never received {needle}"));
    req.headers
        .into_iter()
        .filter(|(n, _)| n.starts_with("impersonate-"))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn get(path: &str, token: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_token_works_with_kubectl_and_the_upstream_sees_the_service_account() {
    let t = start_custom(with_service_accounts(), true, PhaseOverrides::default()).await;
    let token = token_request(&t, "deployer").await;
    let kubeconfig = token_kubeconfig(&t, "deployer", &token);
    let before = t.emulator().token_reviews();

    let out = kubectl_with(&kubeconfig, &["get", "configmaps", "-o", "name"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/web-config"));
    let sa_uid = t
        .emulator()
        .get("v1", "ServiceAccount", "demo", "deployer")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let imp = upstream_impersonation(&t, "/api/v1/namespaces/demo/configmaps");
    let (jti_header, jti): (Vec<_>, Vec<_>) = imp
        .iter()
        .filter(|(n, _)| n.starts_with("impersonate-extra-"))
        .cloned()
        .unzip();
    assert_eq!(
        jti_header,
        ["impersonate-extra-authentication.kubernetes.io%2fcredential-id"]
    );
    assert!(jti[0].starts_with("JTI="), "{jti:?}");
    assert_eq!(
        imp,
        pairs(&[
            ("impersonate-user", "system:serviceaccount:demo:deployer"),
            ("impersonate-group", "system:serviceaccounts"),
            ("impersonate-group", "system:serviceaccounts:demo"),
            ("impersonate-group", "system:authenticated"),
            ("impersonate-uid", &sa_uid),
            (
                "impersonate-extra-authentication.kubernetes.io%2fcredential-id",
                &jti[0]
            ),
        ])
    );

    // The apiserver (here the emulator) agrees on who is calling.
    let out = kubectl_with(&kubeconfig, &["auth", "whoami", "-o", "json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:demo:deployer"
    );
    // kubectl made several requests (discovery, get, whoami): one TokenReview for all of them.
    assert_eq!(t.emulator().token_reviews() - before, 1);
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_service_accounts_token_is_refused_once_its_cache_entry_lapses() {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let t = start_custom(
        with_service_accounts(),
        true,
        PhaseOverrides {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await;
    let token = token_request(&t, "deployer").await;
    let path = "/api/v1/namespaces/demo/configmaps";
    assert_eq!(t.raw(&get(path, &token, "")).await.status, 200);

    let out = kubectl_with(
        &t.env.upstream_kubeconfig,
        &["delete", "serviceaccount", "deployer", "-n", "demo"],
    )
    .await;
    assert!(out.status.success());
    let seen = t.emulator().requests().len();
    let reviews = t.emulator().token_reviews();

    // Within cache_ttl (5 minutes) the cached review still stands.
    clock.set(clock.now() + jiff::SignedDuration::from_secs(299));
    assert_eq!(t.raw(&get(path, &token, "")).await.status, 200);
    assert_eq!(
        t.emulator().token_reviews(),
        reviews,
        "served from the cache"
    );

    // Past cache_ttl the token is reviewed again and refused, before anything is forwarded.
    clock.set(clock.now() + jiff::SignedDuration::from_secs(2));
    let marker = "/api/v1/namespaces/demo/secrets";
    let resp = t.raw(&get(marker, &token, "")).await;
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.status_json()["reason"], "Unauthorized");
    assert!(!resp.body.contains(&token));
    assert_eq!(t.emulator().token_reviews(), reviews + 1);
    assert!(
        t.emulator().requests()[seen..]
            .iter()
            .all(|r| !r.path.contains("/secrets")),
        "a refused request reached the upstream"
    );
    // The refusal is cached briefly: asking again does not send another review.
    assert_eq!(t.raw(&get(marker, &token, "")).await.status, 401);
    assert_eq!(t.emulator().token_reviews(), reviews + 1);
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_the_review_refuses_are_refused() {
    let t = start_custom(with_service_accounts(), true, PhaseOverrides::default()).await;
    let good = token_request(&t, "deployer").await;
    // A token with a forged payload (other service account), the original signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(&parts[1]).unwrap())
        .unwrap()
        .replace("deployer", "default");
    parts[1] = b64.encode(payload);
    let forged = parts.join(".");
    // A token for another audience than the apiserver's.
    let out = kubectl_with(
        &t.env.upstream_kubeconfig,
        &[
            "create",
            "token",
            "deployer",
            "-n",
            "demo",
            "--audience",
            "vault",
        ],
    )
    .await;
    let other_audience = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let reviews = t.emulator().token_reviews();
    for (what, token) in [("forged", &forged), ("other audience", &other_audience)] {
        let kubeconfig = token_kubeconfig(&t, "bad", token);
        let out = kubectl_with(&kubeconfig, &["get", "configmaps"]).await;
        assert!(!out.status.success(), "{what} token was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains(token.as_str()));
    }
    assert_eq!(
        t.emulator().token_reviews() - reviews,
        2,
        "each token was judged by a TokenReview (once, then from the negative cache)"
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_token_review_cannot_be_done_the_request_fails_closed_with_503() {
    let mut t = start_custom(with_service_accounts(), true, PhaseOverrides::default()).await;
    let token = token_request(&t, "deployer").await;
    // The upstream goes away before the token was ever reviewed.
    t.env.emulator.take().unwrap().shutdown().await;
    let resp = t
        .raw(&get("/api/v1/namespaces/demo/configmaps", &token, ""))
        .await;
    assert_eq!(resp.status, 503, "{}", resp.body);
    let status = resp.status_json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "ServiceUnavailable");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("authentication backend unavailable"),
        "{status}"
    );
    assert!(!resp.body.contains(&token));
    // Static tokens do not depend on the upstream to authenticate: the same outage is a plain
    // upstream error for them, after authentication.
    let resp = t
        .raw(&get(
            "/api/v1/namespaces/demo/configmaps",
            t.agent_token(),
            "",
        ))
        .await;
    assert_eq!(resp.status, 503);
    assert!(!resp.body.contains("authentication backend"));
    t.env.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_requests_with_one_token_sends_one_token_review() {
    let t = start_custom(with_service_accounts(), true, PhaseOverrides::default()).await;
    let token = token_request(&t, "deployer").await;
    let before = t.emulator().token_reviews();

    // One HTTP/2 connection, 1,000 concurrent streams, none of them cached yet.
    let tcp = tokio::net::TcpStream::connect(t.env.gateway.addr())
        .await
        .unwrap();
    let mut config = (*common::client_config(t.env.gateway.ca_pem())).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let mut sender = sender.clone();
            let req = http::Request::get(
                "https://localhost/api/v1/namespaces/demo/configmaps/web-config",
            )
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
            tokio::spawn(async move { sender.send_request(req).await.map(|r| r.status()) })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), 200);
    }
    assert_eq!(t.emulator().token_reviews() - before, 1);
    t.env.shutdown().await;
}

/// A CA and a client certificate it signs, made with rcgen.
struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = params.self_signed(&ca_key).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            ca_cert,
            ca_key,
        }
    }

    /// (certificate PEM, key PEM) for CN `cn` with O entries `orgs`.
    fn client(&self, cn: &str, orgs: &[&str]) -> (String, String) {
        self.client_with(cn, orgs, |_| {})
    }

    /// [`Self::client`] with the parameters adjusted by `tweak`; an empty `cn` leaves CN out.
    fn client_with(
        &self,
        cn: &str,
        orgs: &[&str],
        tweak: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (String, String) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if !cn.is_empty() {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        for (i, o) in orgs.iter().enumerate() {
            // rcgen keeps one value per attribute type; the O OID as a custom type adds more.
            let ty = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            params.distinguished_name.push(ty, *o);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        tweak(&mut params);
        let issuer = Issuer::from_ca_cert_der(self.ca_cert.der(), &self.ca_key).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn cert_kubeconfig(t: &TestEnv, name: &str, cert_pem: &str, key_pem: &str) -> std::path::PathBuf {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let path = t.dir.path().join(format!("{name}.kubeconfig"));
    holdpoint::kubeconfig::write_private(
        &path,
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: holdpoint\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: holdpoint\n  context:\n    cluster: holdpoint\n    user: {name}\n    namespace: demo\ncurrent-context: holdpoint\nusers:\n- name: {name}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
            server = t.env.gateway.url(),
            ca = b64(t.env.gateway.ca_pem()),
            cert = b64(cert_pem),
            key = b64(key_pem),
        ),
    )
    .unwrap();
    path
}

async fn start_with_client_ca(pki: &Pki) -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let t = start_custom(
        AuthenticationConfig {
            client_certificates: Some(ClientCertificatesConfig { ca_file }),
            ..Default::default()
        },
        true,
        PhaseOverrides::default(),
    )
    .await;
    // Keep the CA file's directory alive with the environment.
    std::mem::forget(dir);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_from_the_configured_ca_authenticate_cn_and_o() {
    let pki = Pki::new("clients-ca");
    let t = start_with_client_ca(&pki).await;
    let (cert, key) = pki.client("alice", &["devs", "reviewers"]);
    let kubeconfig = cert_kubeconfig(&t, "alice", &cert, &key);
    let out = kubectl_with(&kubeconfig, &["get", "configmaps", "-o", "name"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        upstream_impersonation(&t, "/api/v1/namespaces/demo/configmaps"),
        pairs(&[
            ("impersonate-user", "alice"),
            ("impersonate-group", "devs"),
            ("impersonate-group", "reviewers"),
        ])
    );
    // The caller's certificate never reaches the upstream: the gateway uses its own credential.
    let last = t.emulator().requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {}", t.emulator().admin_token()).as_str())
    );
    // Callers without a certificate still authenticate with bearer tokens.
    let out = t.kubectl(&["get", "configmaps", "-o", "name"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        upstream_impersonation(&t, "/api/v1/namespaces/demo/configmaps"),
        pairs(&[
            ("impersonate-user", "demo-agent"),
            ("impersonate-group", "agents")
        ])
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_without_a_cn_expired_or_not_for_client_auth_are_refused() {
    let pki = Pki::new("clients-ca");
    let t = start_with_client_ca(&pki).await;
    let seen = t.emulator().requests().len();
    // From the trusted CA, O=system:masters but no CN: no username, refused with a 401.
    let (cert, key) = pki.client("", &["system:masters"]);
    let out = kubectl_with(
        &cert_kubeconfig(&t, "no-cn", &cert, &key),
        &["get", "configmaps"],
    )
    .await;
    assert!(
        !out.status.success(),
        "a certificate without CN was accepted"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
    // Expired, or made for server auth only: the handshake fails.
    let expired = pki.client_with("alice", &[], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let server_only = pki.client_with("alice", &[], |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    for (what, (cert, key)) in [("expired", expired), ("server-auth only", server_only)] {
        let out = kubectl_with(
            &cert_kubeconfig(&t, "bad-cert", &cert, &key),
            &["get", "configmaps"],
        )
        .await;
        assert!(!out.status.success(), "{what} certificate was accepted");
    }
    assert!(
        t.emulator().requests()[seen..]
            .iter()
            .all(|r| !r.path.contains("configmaps")),
        "a refused certificate's request reached the upstream"
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_from_another_ca_fail_the_handshake() {
    let pki = Pki::new("clients-ca");
    let t = start_with_client_ca(&pki).await;
    // Same subject, signed by a CA the gateway does not trust.
    let rogue = Pki::new("clients-ca");
    let (cert, key) = rogue.client("alice", &["system:masters"]);
    let seen = t.emulator().requests().len();

    let kubeconfig = cert_kubeconfig(&t, "rogue", &cert, &key);
    let out = kubectl_with(&kubeconfig, &["get", "configmaps"]).await;
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );

    // A raw TLS client with that certificate gets no HTTP answer: the connection is refused.
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(t.env.gateway.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(t.env.gateway.addr())
        .await
        .unwrap();
    let refused = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        Err(_) => true,
        Ok(mut tls) => {
            // TLS 1.3: the client finishes first; the server's verdict arrives as an alert.
            let _ = tls
                .write_all(&get("/api/v1/namespaces/demo/configmaps", "x", ""))
                .await;
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
                .await
                .expect("the gateway answers or closes in time");
            read.is_err() || !buf.starts_with(b"HTTP/")
        }
    };
    assert!(
        refused,
        "the gateway answered a client with an untrusted certificate"
    );
    assert_eq!(
        t.emulator().requests().len(),
        seen,
        "nothing reached the upstream"
    );
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn impersonate_true_sends_exactly_the_callers_identity_never_the_callers_headers() {
    let t = start_custom(with_service_accounts(), true, PhaseOverrides::default()).await;
    let token = token_request(&t, "deployer").await;
    let extra = "Impersonate-User: system:admin\r\nImpersonate-Group: system:masters\r\nIMPERSONATE-UID: 0\r\nImpersonate-Extra-Scopes: all\r\nimpersonate-extra-authentication.kubernetes.io%2fcredential-id: JTI=forged\r\n";
    let resp = t
        .raw(&get("/api/v1/namespaces/demo/pods", &token, extra))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let imp = upstream_impersonation(&t, "/api/v1/namespaces/demo/pods");
    let users: Vec<_> = imp
        .iter()
        .filter(|(n, _)| n == "impersonate-user")
        .collect();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].1, "system:serviceaccount:demo:deployer");
    let groups: Vec<_> = imp
        .iter()
        .filter(|(n, _)| n == "impersonate-group")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:demo",
            "system:authenticated"
        ]
    );
    for (name, value) in &imp {
        assert!(
            !["system:admin", "system:masters", "0", "all", "JTI=forged"].contains(&value.as_str()),
            "the caller's {name}: {value} reached the upstream"
        );
    }
    assert!(imp.iter().all(|(n, _)| n != "impersonate-extra-scopes"));
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn impersonate_false_sends_no_identity_headers_and_acts_as_the_gateway() {
    let t = start_custom(
        AuthenticationConfig::default(),
        false,
        PhaseOverrides::default(),
    )
    .await;
    let token = t.agent_token().to_owned();
    let extra = "Impersonate-User: system:admin\r\nImpersonate-Group: system:masters\r\nImpersonate-Uid: 0\r\nImpersonate-Extra-Scopes: all\r\n";
    let resp = t
        .raw(&get("/api/v1/namespaces/demo/pods", &token, extra))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        upstream_impersonation(&t, "/api/v1/namespaces/demo/pods"),
        Vec::<(String, String)>::new()
    );
    // The apiserver sees the gateway's own identity.
    let out = t.kubectl(&["auth", "whoami", "-o", "json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "kubernetes-admin");
    assert!(
        upstream_impersonation(&t, "selfsubjectreviews").is_empty(),
        "no Impersonate-* header with impersonate: false"
    );
    t.env.shutdown().await;
}
