//! OIDC end to end: a real OIDC provider (oauth2-mock-server from npm, `tests/oidc/provider.mjs`)
//! over HTTPS, the gateway configured with its issuer, and real kubectl presenting its tokens.
//! A valid token works; every kind of bad token is refused; a key rotation at the provider is
//! picked up without restarting the gateway. Tokens the provider would never sign (`alg: none`,
//! HS256 keyed with the public key, tampered payloads) are forged here from a real token.
//!
//! Needs node and `tests/oidc/node_modules` (`scripts/setup.sh` installs them); without them the
//! tests fail with a message saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use holdpoint_gateway::PhaseOverrides;
use holdpoint_gateway::config::OidcIssuerConfig;
use holdpoint_gateway::tls::ServingCert;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const AUDIENCE: &str = "holdpoint-e2e";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// One running provider process, driven over stdin/stdout.
struct Provider {
    issuer: String,
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Provider {
    async fn start(tls_dir: &Path) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oauth2-mock-server").is_dir(),
            "the OIDC provider is not installed: run scripts/setup.sh (npm ci in {})",
            dir.display()
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg("--cert")
            .arg(tls_dir.join("serving.crt"))
            .arg("--key")
            .arg(tls_dir.join("serving.key"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node for the OIDC provider ({e}): install Node.js (scripts/setup.sh)")
            });
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("the provider starts within 30s")
            .expect("provider output")
            .expect("the provider printed its issuer");
        let issuer = serde_json::from_str::<Value>(&first).expect("JSON")["issuer"]
            .as_str()
            .expect("issuer URL")
            .to_owned();
        assert!(issuer.starts_with("https://localhost:"), "{issuer}");
        Self {
            issuer,
            _child: child,
            stdin,
            stdout,
        }
    }

    async fn call(&mut self, cmd: Value) -> Value {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("write to provider");
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .expect("provider answers")
            .expect("provider output")
            .expect("provider still running");
        let v: Value = serde_json::from_str(&line).expect("JSON answer");
        assert!(v.get("error").is_none(), "provider refused {cmd}: {v}");
        v
    }

    /// A token signed by this provider, with `claims` merged in and `header` fields set.
    async fn token(&mut self, kid: Option<&str>, claims: Value, header: Value) -> String {
        let v = self
            .call(json!({"cmd": "token", "kid": kid, "claims": claims, "header": header}))
            .await;
        v["token"].as_str().expect("token").to_owned()
    }

    /// A token the gateway should accept.
    async fn good_token(&mut self) -> String {
        self.token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "groups": ["agents", "ci"]}),
            json!({}),
        )
        .await
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(part: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("JSON")
}

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit")
}

struct Setup {
    t: common::TestEnv,
    a: Provider,
}

/// The provider's TLS certificate (for `localhost`) and its CA, made like the gateway's own.
fn provider_tls(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("oidc-provider");
    ServingCert::load_or_create(None, &data, &[]).expect("provider certificate");
    let tls = data.join("tls");
    (tls.clone(), tls.join("ca.crt"))
}

fn issuer_config(issuer: &str, ca: &Path) -> OidcIssuerConfig {
    let mut c: OidcIssuerConfig = serde_saphyr::from_str(&format!(
        "issuer: {issuer}\naudiences: [{AUDIENCE}]\nalgorithms: [RS256, ES256]\njwks_min_refresh_interval: 1s\ngroups_claim: groups\ngroups_prefix: 'oidc:'\n"
    ))
    .expect("issuer config");
    c.ca_file = Some(ca.to_owned());
    c
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tls_dir, ca) = provider_tls(dir.path());
    let a = Provider::start(&tls_dir).await;
    let issuers = vec![
        issuer_config(&a.issuer, &ca),
        // A second issuer that is down the whole time: the gateway still starts and serves.
        issuer_config("https://127.0.0.1:1", &ca),
    ];
    let env = Env::start_configured(
        EnvOptions {
            dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            upstream: UpstreamChoice::from_env(),
            store_url: None,
            // Service-account tokens on too: JWTs of a configured OIDC issuer must stay OIDC's
            // (never a TokenReview), others still get one.
            authentication: holdpoint_gateway::config::AuthenticationConfig {
                service_accounts: Some(Default::default()),
                ..Default::default()
            },
            impersonate: true,
        },
        PhaseOverrides::default(),
        |config| config.authentication.oidc = issuers,
    )
    .await
    .expect("environment starts");
    Setup {
        t: common::TestEnv { env, dir },
        a,
    }
}

impl Setup {
    async fn kubectl_with(&self, token: &str) -> std::process::Output {
        self.t
            .kubectl_as(
                "agent",
                &["--token", token, "get", "pods", "-n", "demo", "-o", "name"],
                None,
            )
            .await
    }

    async fn assert_accepted(&self, token: &str, what: &str) {
        let out = self.kubectl_with(token).await;
        assert!(
            out.status.success(),
            "{what}: kubectl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("pod/"),
            "{what}: no pods listed"
        );
    }

    async fn assert_refused(&self, token: &str, what: &str) {
        let out = self.kubectl_with(token).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: kubectl succeeded");
        assert!(
            stderr.contains("Unauthorized"),
            "{what}: expected 401, kubectl said: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{what}: data returned");
        // The gateway's Status names the credential kind, never the token or its key id.
        let raw = self
            .t
            .raw(
                format!(
                    "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(raw.status, 401, "{what}: {}", raw.body);
        let status = raw.status_json();
        assert_eq!(status["kind"], "Status", "{what}");
        assert_eq!(status["reason"], "Unauthorized", "{what}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.ends_with("was not accepted"), "{what}: {message}");
        let header = unb64(token.split('.').next().unwrap_or_default());
        if let Some(kid) = header["kid"].as_str() {
            assert!(!message.contains(kid), "{what}: key id leaked: {message}");
        }
        assert!(!message.contains(&token[..token.len().min(24)]), "{what}");
    }
}

#[tokio::test]
async fn a_real_provider_token_works_and_every_bad_token_is_refused() {
    let mut s = setup().await;
    let good = s.a.good_token().await;
    s.assert_accepted(&good, "valid token").await;
    if common::on_emulator(&s.t) {
        // The upstream sees the mapped identity (impersonation): the issuer-prefixed subject and
        // the prefixed groups claim, nothing of the caller's token.
        let seen =
            s.t.emulator()
                .requests()
                .into_iter()
                .rev()
                .find(|r| r.path.contains("/namespaces/demo/pods"))
                .expect("the upstream received the list");
        let imp: Vec<(String, String)> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("impersonate-") || n == "authorization")
            .cloned()
            .collect();
        let user = format!("{}#agent-7", s.a.issuer);
        assert_eq!(
            imp.iter()
                .filter(|(n, _)| n != "authorization")
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [
                ("impersonate-user", user.as_str()),
                ("impersonate-group", "oidc:agents"),
                ("impersonate-group", "oidc:ci"),
            ]
        );
        assert!(
            imp.iter().all(|(_, v)| !v.contains(&good)),
            "the caller's token reached the upstream"
        );
    }

    let n = now();
    let expired = s
        .a
        .token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "iat": n - 600, "nbf": n - 600, "exp": n - 120}),
            json!({}),
        )
        .await;
    s.assert_refused(&expired, "expired").await;

    let not_yet =
        s.a.token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "nbf": n + 600, "exp": n + 1200}),
            json!({}),
        )
        .await;
    s.assert_refused(&not_yet, "not yet valid").await;

    let future_iat =
        s.a.token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "iat": n + 600}),
            json!({}),
        )
        .await;
    s.assert_refused(&future_iat, "issued in the future").await;
    if common::on_emulator(&s.t) {
        assert_eq!(
            s.t.emulator().token_reviews(),
            0,
            "tokens of a configured OIDC issuer, good or bad, are never sent to TokenReview"
        );
    }

    let wrong_issuer =
        s.a.token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "iss": "https://evil.example"}),
            json!({}),
        )
        .await;
    s.assert_refused(&wrong_issuer, "wrong issuer").await;

    let wrong_audience =
        s.a.token(
            None,
            json!({"aud": "someone-else", "sub": "agent-7"}),
            json!({}),
        )
        .await;
    s.assert_refused(&wrong_audience, "wrong audience").await;

    let no_subject =
        s.a.token(None, json!({"aud": AUDIENCE, "sub": null}), json!({}))
            .await;
    s.assert_refused(&no_subject, "no username claim").await;

    let unknown_key =
        s.a.token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7"}),
            json!({"kid": "not-published"}),
        )
        .await;
    s.assert_refused(&unknown_key, "unknown key").await;

    // Forged from the real token.
    let parts: Vec<&str> = good.split('.').collect();
    let (header, payload) = (unb64(parts[0]), parts[1]);

    let mut none_header = header.clone();
    none_header["alg"] = "none".into();
    let alg_none = format!("{}.{payload}.", b64(none_header.to_string().as_bytes()));
    s.assert_refused(&alg_none, "alg none").await;

    let kid = header["kid"].as_str().expect("kid").to_owned();
    let pem = s.a.call(json!({"cmd": "publicPem", "kid": kid})).await["pem"]
        .as_str()
        .expect("pem")
        .to_owned();
    let mut hs_header = header.clone();
    hs_header["alg"] = "HS256".into();
    let input = format!("{}.{payload}", b64(hs_header.to_string().as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes());
    let hs256 = format!(
        "{input}.{}",
        b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
    );
    s.assert_refused(&hs256, "HS256 keyed with the public key")
        .await;

    let mut claims = unb64(payload);
    claims["sub"] = "cluster-admin".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    s.assert_refused(&tampered, "tampered payload").await;

    // A second, independent provider signs a token that claims the first one's issuer and key.
    let (tls_dir, _) = provider_tls(s.t.dir.path());
    let mut b = Provider::start(&tls_dir).await;
    let issuer_a = s.a.issuer.clone();
    let foreign = b
        .token(
            None,
            json!({"aud": AUDIENCE, "sub": "agent-7", "iss": issuer_a}),
            json!({"kid": kid}),
        )
        .await;
    s.assert_refused(&foreign, "signed by a second provider")
        .await;
    // ... and its own, unconfigured issuer is not trusted either.
    let own = b.good_token().await;
    s.assert_refused(&own, "second provider's own issuer").await;

    // The good token still works after all that, and static tokens are unaffected.
    s.assert_accepted(&good, "valid token again").await;
    let out =
        s.t.kubectl(&["get", "pods", "-n", "demo", "-o", "name"])
            .await;
    assert!(out.status.success(), "static token: {:?}", out);
    s.t.env.shutdown().await;
}

#[tokio::test]
async fn key_rotation_at_the_provider_is_picked_up_without_restart() {
    let mut s = setup().await;
    let old = s.a.good_token().await;
    s.assert_accepted(&old, "token of the first key").await;

    // The provider starts signing with a new key (another algorithm, too) that the gateway has
    // never seen. After the minimum refresh interval, the first token with the new kid makes the
    // gateway fetch the JWKS again.
    s.a.call(json!({"cmd": "generate", "alg": "ES256", "kid": "rotated-2"}))
        .await;
    let new =
        s.a.token(
            Some("rotated-2"),
            json!({"aud": AUDIENCE, "sub": "agent-7"}),
            json!({}),
        )
        .await;
    assert_eq!(unb64(new.split('.').next().unwrap())["alg"], "ES256");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.assert_accepted(&new, "token of the rotated key").await;
    // The old key is still published, so its tokens keep working.
    s.assert_accepted(&old, "token of the first key after rotation")
        .await;
    s.t.env.shutdown().await;
}
