//! OIDC bearer tokens: JWTs signed by a configured issuer, validated like the apiserver's
//! `--oidc-*` authenticator.
//!
//! A token is matched to an issuer by its (not yet verified) `iss` claim; a token that is not a
//! JWT or names no configured issuer is not this authenticator's (`Ok(None)`), so the next one
//! (service-account tokens, ...) may try. Everything after that is a refusal:
//!
//! * the header's `alg` must be on the issuer's allow-list, which holds only asymmetric
//!   algorithms (`none` and `HS*` cannot even be configured, and [`super::jwt_crypto`] has no
//!   HMAC verifier at all, so "HS256 signed with the public key" has nothing to verify against);
//! * the key is picked by `kid` (and must agree with the algorithm) from the issuer's JWKS. Keys
//!   are fetched lazily (discovery, then `jwks_uri`) on first use and cached; an unknown `kid`
//!   triggers a refresh that is single-flight and rate limited to one per
//!   `jwks_min_refresh_interval`, so a flood of made-up key ids costs the issuer at most one fetch
//!   per interval; a background task refreshes every `jwks_refresh_interval`;
//! * `exp` (required), `nbf`, `iat` against the injected clock with `leeway`; `iss`; `aud`
//!   against the configured audiences; `required_claims`; the username claim (with the
//!   apiserver's `email_verified` rule), groups and uid claims;
//! * names in the reserved `system:` namespace are refused, so no issuer can mint
//!   `system:masters` or a node or service-account identity.
//!
//! The caller sees a 401 `Status` naming the kind of credential only; the reason (never the
//! token, never the key id) goes to the log for operators.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{Authenticator, ConnectionInfo, Credential, jwt_crypto};
use crate::clock::Clock;
use crate::config::OidcIssuerConfig;
use crate::error::GatewayError;
use crate::identity::Identity;

/// The kind of credential named in refusals.
const KIND: &str = "OIDC bearer token";
/// Largest discovery or JWKS document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Time allowed for discovery plus JWKS.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys tried for a token without `kid`.
const MAX_KEYS_WITHOUT_KID: usize = 8;

/// Why a token of a configured issuer was refused (for logs and tests, never for the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a well-formed JWS (bad header, bad encoding, `crit` extensions, ...).
    #[error("malformed token")]
    Malformed,
    /// `alg` is not on the issuer's allow-list (this covers `none` and `HS*`).
    #[error("signing algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
    /// No key of the issuer matches the token, even after a refresh.
    #[error("signed by a key the issuer does not publish")]
    UnknownKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `iss` of the verified claims is not the issuer.
    #[error("issuer mismatch")]
    WrongIssuer,
    /// No `exp`.
    #[error("no expiry")]
    NoExpiry,
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("issued in the future")]
    IssuedInFuture,
    /// `aud` names none of the configured audiences.
    #[error("audience not accepted")]
    WrongAudience,
    /// A required claim is missing or has another value.
    #[error("a required claim is missing or different")]
    RequiredClaim,
    /// The username claim is missing, empty or not a string.
    #[error("username claim missing or invalid")]
    Username,
    /// `email` is the username claim and `email_verified` is present but not `true`.
    #[error("email not verified")]
    EmailNotVerified,
    /// The groups claim is neither a string nor an array of strings.
    #[error("groups claim invalid")]
    Groups,
    /// The configured uid claim is missing, empty or not a string.
    #[error("uid claim missing or invalid")]
    Uid,
    /// The username or a group is in the reserved `system:` namespace.
    #[error("reserved system: name")]
    ReservedName,
}

/// A failed fetch of an issuer's keys.
#[derive(Debug, thiserror::Error)]
#[error("fetching the issuer's keys failed: {0}")]
pub struct FetchError(pub String);

/// Fetches an issuer's JWKS document (the HTTPS fetcher does discovery first; tests and the
/// benchmark plug in fakes).
pub trait JwksFetcher: Send + Sync + std::fmt::Debug {
    /// The JWKS document's bytes.
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, FetchError>>;
}

/// The OIDC authenticator: one entry per configured issuer.
#[derive(Debug)]
pub struct OidcAuthenticator {
    issuers: Vec<Arc<Issuer>>,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    authenticator: String,
    audiences: Vec<String>,
    username_claim: String,
    username_prefix: String,
    groups_claim: Option<String>,
    groups_prefix: String,
    uid_claim: Option<String>,
    required_claims: BTreeMap<String, String>,
    /// One `jsonwebtoken` validation per allowed algorithm (signature only: the claims are
    /// checked here, against the injected clock).
    validations: Vec<(Algorithm, Validation)>,
    leeway: i64,
    min_refresh_ms: i64,
    refresh_every: Duration,
    fetcher: Arc<dyn JwksFetcher>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeySet>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Debug, Default)]
struct KeySet {
    /// 0 until the first successful fetch; +1 on every successful fetch.
    generation: u64,
    keys: Vec<PublicKey>,
}

#[derive(Debug)]
struct PublicKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

#[derive(Debug, Default)]
struct RefreshState {
    last_attempt: Option<jiff::Timestamp>,
    fetches: u64,
}

impl OidcAuthenticator {
    /// The authenticator for the configured issuers, fetching over HTTPS. No network I/O
    /// happens here; a background task per issuer refreshes its keys on schedule (when a tokio
    /// runtime is running).
    pub fn new(configs: &[OidcIssuerConfig], clock: Arc<dyn Clock>) -> Self {
        Self::with_fetchers(
            configs
                .iter()
                .map(|c| {
                    let fetcher: Arc<dyn JwksFetcher> = Arc::new(HttpsFetcher::new(c));
                    (c.clone(), fetcher)
                })
                .collect(),
            clock,
        )
    }

    /// The authenticator with the given fetcher per issuer.
    pub fn with_fetchers(
        issuers: Vec<(OidcIssuerConfig, Arc<dyn JwksFetcher>)>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        jwt_crypto::install();
        let issuers: Vec<Arc<Issuer>> = issuers
            .into_iter()
            .map(|(config, fetcher)| Arc::new(Issuer::new(&config, fetcher, clock.clone())))
            .collect();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for issuer in &issuers {
                let weak = Arc::downgrade(issuer);
                let every = issuer.refresh_every;
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        let Some(issuer) = weak.upgrade() else { break };
                        issuer.scheduled_refresh().await;
                    }
                });
            }
        }
        Self { issuers }
    }

    /// Validates a token. `Ok(None)`: not a JWT of a configured issuer.
    pub async fn check(&self, token: &str) -> Result<Option<Identity>, Refusal> {
        let Some(iss) = unverified_issuer(token) else {
            return Ok(None);
        };
        let Some(issuer) = self.issuers.iter().find(|i| i.issuer == iss) else {
            return Ok(None);
        };
        match issuer.verify(token).await {
            Ok(identity) => Ok(Some(identity)),
            Err(refusal) => {
                tracing::info!(
                    target: "holdpoint::authn",
                    issuer = %issuer.issuer,
                    reason = %refusal,
                    "OIDC bearer token refused"
                );
                Err(refusal)
            }
        }
    }

    /// How many key fetches each issuer has started (for tests and metrics).
    pub async fn fetch_counts(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.issuers.len());
        for i in &self.issuers {
            out.push(i.refresh.lock().await.fetches);
        }
        out
    }
}

impl Authenticator for OidcAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
        _conn: &'a ConnectionInfo,
    ) -> BoxFuture<'a, Result<Option<Identity>, GatewayError>> {
        Box::pin(async move {
            let Credential::Bearer(token) = credential else {
                return Ok(None);
            };
            self.check(token.expose())
                .await
                .map_err(|_| GatewayError::Unauthenticated { kind: KIND })
        })
    }
}

/// The `iss` of a compact JWS, without verifying anything; `None` when the token is not a JWT.
fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// The parts of the JOSE header this module looks at itself.
#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn raw_header(token: &str) -> Result<RawHeader, Refusal> {
    let header = token.split('.').next().ok_or(Refusal::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

impl Issuer {
    fn new(
        config: &OidcIssuerConfig,
        fetcher: Arc<dyn JwksFetcher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let validations = config
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .filter(|a| a.family() != AlgorithmFamily::Hmac)
            .map(|alg| {
                let mut v = Validation::new(alg);
                v.required_spec_claims.clear();
                v.validate_exp = false;
                v.validate_nbf = false;
                v.validate_aud = false;
                v.leeway = 0;
                (alg, v)
            })
            .collect();
        Self {
            issuer: config.issuer.clone(),
            authenticator: format!("oidc:{}", config.issuer),
            audiences: config.audiences.clone(),
            username_claim: config.username_claim.clone(),
            username_prefix: config.effective_username_prefix(),
            groups_claim: config.groups_claim.clone(),
            groups_prefix: config.groups_prefix.clone().unwrap_or_default(),
            uid_claim: config.uid_claim.clone(),
            required_claims: config.required_claims.clone(),
            validations,
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            min_refresh_ms: i64::try_from(config.jwks_min_refresh_interval.as_millis())
                .unwrap_or(i64::MAX),
            refresh_every: config.jwks_refresh_interval,
            fetcher,
            clock,
            keys: RwLock::new(Arc::new(KeySet::default())),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        let header = raw_header(token)?;
        if header.crit.is_some() {
            return Err(Refusal::Malformed);
        }
        let alg = Algorithm::from_str(&header.alg).map_err(|_| Refusal::AlgorithmNotAllowed)?;
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(Refusal::AlgorithmNotAllowed)?;
        let mut keys = self.keys();
        if candidates(&keys, header.kid.as_deref(), alg)
            .next()
            .is_none()
        {
            self.refresh_for_unknown_key(keys.generation).await;
            keys = self.keys();
        }
        let mut tried = false;
        for key in candidates(&keys, header.kid.as_deref(), alg).take(MAX_KEYS_WITHOUT_KID) {
            tried = true;
            if let Ok(data) =
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            {
                return self.identity(&data.claims);
            }
        }
        Err(match (tried, keys.generation) {
            (true, _) => Refusal::BadSignature,
            (false, 0) => Refusal::KeysUnavailable,
            (false, _) => Refusal::UnknownKey,
        })
    }

    /// Refreshes after a token named a key we do not have. Single flight: callers queue on the
    /// lock, and whoever finds the keys changed meanwhile just uses them. Rate limited: at most
    /// one fetch per `jwks_min_refresh_interval` (measured on the injected clock).
    async fn refresh_for_unknown_key(&self, seen_generation: u64) {
        let mut state = self.refresh.lock().await;
        if self.keys().generation != seen_generation {
            return;
        }
        let now = self.clock.now();
        if let Some(last) = state.last_attempt
            && now.as_millisecond().saturating_sub(last.as_millisecond()) < self.min_refresh_ms
        {
            return;
        }
        self.fetch_locked(&mut state, now).await;
    }

    /// The scheduled refresh (only once the keys were wanted at all).
    async fn scheduled_refresh(&self) {
        let mut state = self.refresh.lock().await;
        if state.last_attempt.is_none() {
            return;
        }
        let now = self.clock.now();
        self.fetch_locked(&mut state, now).await;
    }

    async fn fetch_locked(&self, state: &mut RefreshState, now: jiff::Timestamp) {
        state.last_attempt = Some(now);
        state.fetches += 1;
        let result = self
            .fetcher
            .fetch()
            .await
            .and_then(|bytes| parse_jwks(&bytes));
        match result {
            Ok(keys) => {
                let mut slot = self.keys.write().unwrap_or_else(|e| e.into_inner());
                let generation = slot.generation + 1;
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), "OIDC issuer keys fetched");
                *slot = Arc::new(KeySet { generation, keys });
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "OIDC issuer keys not refreshed; keeping the previous keys");
            }
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, Refusal> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Refusal::WrongIssuer);
        }
        let now = self.clock.now().as_second();
        let exp = numeric(claims, "exp")?.ok_or(Refusal::NoExpiry)?;
        if now > exp.saturating_add(self.leeway) {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = numeric(claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(Refusal::NotYetValid);
        }
        if let Some(iat) = numeric(claims, "iat")?
            && iat > now.saturating_add(self.leeway)
        {
            return Err(Refusal::IssuedInFuture);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|x| x == a))
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(Refusal::WrongAudience);
        }
        for (claim, want) in &self.required_claims {
            if claims.get(claim).and_then(Value::as_str) != Some(want.as_str()) {
                return Err(Refusal::RequiredClaim);
            }
        }
        let username = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or(Refusal::Username)?;
        if self.username_claim == "email" {
            match claims.get("email_verified") {
                None | Some(Value::Bool(true)) => {}
                Some(_) => return Err(Refusal::EmailNotVerified),
            }
        }
        let groups: Vec<String> = match self.groups_claim.as_ref().and_then(|c| claims.get(c)) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(g)) => vec![format!("{}{g}", self.groups_prefix)],
            Some(Value::Array(list)) => list
                .iter()
                .map(|g| {
                    g.as_str()
                        .map(|g| format!("{}{g}", self.groups_prefix))
                        .ok_or(Refusal::Groups)
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Refusal::Groups),
        };
        let uid = match &self.uid_claim {
            None => None,
            Some(c) => Some(
                claims
                    .get(c)
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .ok_or(Refusal::Uid)?
                    .to_owned(),
            ),
        };
        let username = format!("{}{username}", self.username_prefix);
        if username.starts_with("system:") || groups.iter().any(|g| g.starts_with("system:")) {
            return Err(Refusal::ReservedName);
        }
        Ok(Identity {
            username,
            groups,
            uid,
            extra: BTreeMap::new(),
            authenticator: self.authenticator.clone(),
        })
    }
}

/// Keys that may have signed a token with this `kid` (all keys of the family when the token
/// has none) and algorithm.
fn candidates<'a>(
    keys: &'a KeySet,
    kid: Option<&'a str>,
    alg: Algorithm,
) -> impl Iterator<Item = &'a PublicKey> + 'a {
    keys.keys.iter().filter(move |k| {
        (kid.is_none() || k.kid.as_deref() == kid)
            && k.family == alg.family()
            && k.alg.is_none_or(|a| a == alg)
    })
}

/// A NumericDate claim; `Err` when present but not a number.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(Refusal::Malformed),
        Some(_) => Err(Refusal::Malformed),
    }
}

/// The usable signing keys of a JWKS document: asymmetric keys meant for signatures with a
/// JWS algorithm (or none) that `jsonwebtoken` can load. Others are skipped, not fatal.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<PublicKey>, FetchError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| FetchError(format!("JWKS is not JSON: {e}")))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| FetchError("JWKS has no keys array".into()))?;
    let mut keys = Vec::new();
    for entry in list {
        if entry.get("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = match entry.get("alg") {
            None => None,
            Some(a) => match a.as_str().map(Algorithm::from_str) {
                Some(Ok(a)) => Some(a),
                _ => continue,
            },
        };
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let family = key.family();
        if family == AlgorithmFamily::Hmac || alg.is_some_and(|a| a.family() != family) {
            continue;
        }
        keys.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            key,
        });
    }
    if keys.is_empty() {
        return Err(FetchError("JWKS holds no usable signing key".into()));
    }
    Ok(keys)
}

/// Discovery and JWKS over HTTPS (issuer verified with `ca_file` or the system roots).
struct HttpsFetcher {
    issuer: String,
    client: Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>, String>,
}

impl std::fmt::Debug for HttpsFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsFetcher")
            .field("issuer", &self.issuer)
            .field("client_ready", &self.client.is_ok())
            .finish()
    }
}

impl HttpsFetcher {
    fn new(config: &OidcIssuerConfig) -> Self {
        Self {
            issuer: config.issuer.clone(),
            client: https_client(config.ca_file.as_deref()),
        }
    }

    async fn get(
        client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
        url: &str,
    ) -> Result<Bytes, FetchError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| FetchError(format!("invalid URL {url}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(FetchError(format!("{url} is not https")));
        }
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| FetchError(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError(format!("{url}: {e}")))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError(format!("{url}: HTTP {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError(format!("{url}: {e}")))?;
        Ok(body.to_bytes())
    }

    async fn fetch_inner(&self) -> Result<Bytes, FetchError> {
        let client = self.client.as_ref().map_err(|e| FetchError(e.clone()))?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: Value = serde_json::from_slice(&Self::get(client, &discovery_url).await?)
            .map_err(|e| FetchError(format!("discovery document is not JSON: {e}")))?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(FetchError(
                "the discovery document names another issuer".into(),
            ));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError("the discovery document has no jwks_uri".into()))?;
        Self::get(client, jwks_uri).await
    }
}

impl JwksFetcher for HttpsFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, FetchError>> {
        Box::pin(async move {
            tokio::time::timeout(FETCH_TIMEOUT, self.fetch_inner())
                .await
                .map_err(|_| FetchError(format!("no answer within {FETCH_TIMEOUT:?}")))?
        })
    }
}

fn https_client(
    ca_file: Option<&std::path::Path>,
) -> Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificate to verify the issuer".into());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}
