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

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwt_crypto::VerifyingKey;
use super::{Authenticator, ConnectionInfo, Credential};
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
/// How long a verified token is remembered (the apiserver's token cache uses 10 s too).
const VERIFIED_TTL_SECONDS: i64 = 10;
/// Most tokens remembered at once.
const VERIFIED_MAX_ENTRIES: usize = 10_000;

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
    clock: Arc<dyn Clock>,
    /// Tokens verified recently, by SHA-256 of the whole token, so an agent that sends the same
    /// token with every request pays for the signature once per [`VERIFIED_TTL_SECONDS`]. A hit
    /// still checks `exp` on the clock, and is void once the issuer's key set changed (a key
    /// that was rotated out stops working at the next refresh).
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

#[derive(Debug, Clone)]
struct Verified {
    issuer: usize,
    generation: u64,
    exp: i64,
    until: i64,
    identity: Identity,
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
    /// The allow-list of JWS algorithms (asymmetric only).
    algorithms: Vec<Algorithm>,
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
    key: VerifyingKey,
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
        Self {
            issuers,
            clock,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Validates a token, answering from the verified-token cache when it can.
    /// `Ok(None)`: not a JWT of a configured issuer.
    pub async fn check(&self, token: &str) -> Result<Option<Identity>, Refusal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now().as_second();
        let hit = self.cache().get(&digest).cloned();
        if let Some(hit) = hit {
            let issuer = &self.issuers[hit.issuer];
            if now <= hit.until && issuer.keys().generation == hit.generation {
                if now > hit.exp.saturating_add(issuer.leeway) {
                    self.cache().remove(&digest);
                    return Err(issuer.refused(Refusal::Expired));
                }
                return Ok(Some(hit.identity));
            }
            self.cache().remove(&digest);
        }
        let Some((index, verified)) = self.verify(token).await? else {
            return Ok(None);
        };
        let (identity, exp, generation) = verified;
        let mut cache = self.cache();
        if cache.len() >= VERIFIED_MAX_ENTRIES {
            cache.retain(|_, v| v.until >= now);
            if cache.len() >= VERIFIED_MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            digest,
            Verified {
                issuer: index,
                generation,
                exp,
                until: now.saturating_add(VERIFIED_TTL_SECONDS),
                identity: identity.clone(),
            },
        );
        Ok(Some(identity))
    }

    /// Validates a token completely (signature included), bypassing the verified-token cache.
    pub async fn check_uncached(&self, token: &str) -> Result<Option<Identity>, Refusal> {
        Ok(self
            .verify(token)
            .await?
            .map(|(_, (identity, _, _))| identity))
    }

    #[allow(clippy::type_complexity)]
    async fn verify(&self, token: &str) -> Result<Option<(usize, (Identity, i64, u64))>, Refusal> {
        let Some(iss) = unverified_issuer(token) else {
            return Ok(None);
        };
        let Some((index, issuer)) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.issuer == iss)
        else {
            return Ok(None);
        };
        match issuer.verify(token).await {
            Ok(verified) => Ok(Some((index, verified))),
            Err(refusal) => Err(issuer.refused(refusal)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
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

/// The claims of a token whose signature was verified (`signing_input` = header `.` payload).
fn verified_claims(signing_input: &str) -> Result<Map<String, Value>, Refusal> {
    let (_, payload) = signing_input.split_once('.').ok_or(Refusal::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
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
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .filter(|a| a.family() != AlgorithmFamily::Hmac)
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
            algorithms,
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

    /// Logs a refusal for operators (the reason and issuer, never the token or key id).
    fn refused(&self, refusal: Refusal) -> Refusal {
        tracing::info!(
            target: "holdpoint::authn",
            issuer = %self.issuer,
            reason = %refusal,
            "OIDC bearer token refused"
        );
        refusal
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The identity, the token's `exp` and the key-set generation that verified it.
    async fn verify(&self, token: &str) -> Result<(Identity, i64, u64), Refusal> {
        let header = raw_header(token)?;
        if header.crit.is_some() {
            return Err(Refusal::Malformed);
        }
        let alg = Algorithm::from_str(&header.alg).map_err(|_| Refusal::AlgorithmNotAllowed)?;
        if !self.algorithms.contains(&alg) {
            return Err(Refusal::AlgorithmNotAllowed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Refusal::Malformed)?;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refusal::Malformed)?;
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
            if key.key.verify(alg, signing_input.as_bytes(), &signature) {
                let (identity, exp) = self.identity(&verified_claims(signing_input)?)?;
                return Ok((identity, exp, keys.generation));
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

    fn identity(&self, claims: &Map<String, Value>) -> Result<(Identity, i64), Refusal> {
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
        let identity = Identity {
            username,
            groups,
            uid,
            extra: BTreeMap::new(),
            authenticator: self.authenticator.clone(),
        };
        Ok((identity, exp))
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
        let Some(key) = VerifyingKey::new(&key, alg) else {
            continue;
        };
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
    let tls = crate::tls::client_config(ca_file)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use ring::rand::SystemRandom;
    use ring::signature::{self as rs, KeyPair};
    use serde_json::json;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const ISS: &str = "https://idp.example";
    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs test tokens with ring.
    pub(crate) enum Signer {
        Rsa(rs::RsaKeyPair),
        Ec(rs::EcdsaKeyPair),
        Ed(rs::Ed25519KeyPair),
    }

    impl Signer {
        pub(crate) fn rsa() -> Self {
            use rustls_pki_types::PrivateKeyDer;
            use rustls_pki_types::pem::PemObject;
            let pem = include_bytes!("../../../testdata/oidc-test-rsa2048.pem");
            let der = PrivateKeyDer::from_pem_slice(pem).unwrap();
            Self::Rsa(rs::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap())
        }
        pub(crate) fn es256() -> Self {
            let rng = SystemRandom::new();
            let alg = &rs::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = rs::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            Self::Ec(rs::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
        }
        pub(crate) fn ed25519() -> Self {
            let pkcs8 = rs::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Self::Ed(rs::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }
        pub(crate) fn alg(&self) -> &'static str {
            match self {
                Self::Rsa(_) => "RS256",
                Self::Ec(_) => "ES256",
                Self::Ed(_) => "EdDSA",
            }
        }
        pub(crate) fn jwk(&self, kid: &str) -> Value {
            match self {
                Self::Rsa(_) => {
                    let mut v: Value = serde_json::from_str(include_str!(
                        "../../../testdata/oidc-test-rsa2048.jwk.json"
                    ))
                    .unwrap();
                    v["kid"] = kid.into();
                    v
                }
                Self::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                           "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
                Self::Ed(k) => json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
                                      "x": b64(k.public_key().as_ref())}),
            }
        }
        pub(crate) fn sign_raw(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let rng = SystemRandom::new();
            let sig = match self {
                Self::Rsa(k) => {
                    let mut sig = vec![0; k.public().modulus_len()];
                    k.sign(&rs::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                        .unwrap();
                    sig
                }
                Self::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
                Self::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
            };
            format!("{input}.{}", b64(&sig))
        }
        pub(crate) fn token(&self, kid: &str, claims: &Value) -> String {
            self.sign_raw(
                &json!({"alg": self.alg(), "kid": kid, "typ": "JWT"}),
                claims,
            )
        }
    }

    /// A JWKS source that counts fetches and can fail.
    #[derive(Debug, Default)]
    pub(crate) struct FakeFetcher {
        pub(crate) jwks: Mutex<Value>,
        pub(crate) count: AtomicU64,
        pub(crate) down: AtomicBool,
    }

    impl FakeFetcher {
        pub(crate) fn serving(keys: Vec<Value>) -> Arc<Self> {
            Arc::new(Self {
                jwks: Mutex::new(json!({ "keys": keys })),
                ..Self::default()
            })
        }
    }

    impl JwksFetcher for FakeFetcher {
        fn fetch(&self) -> BoxFuture<'_, Result<Bytes, FetchError>> {
            Box::pin(async move {
                self.count.fetch_add(1, Ordering::SeqCst);
                // A slow issuer, so concurrent callers really overlap.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if self.down.load(Ordering::SeqCst) {
                    return Err(FetchError("connection refused".into()));
                }
                Ok(Bytes::from(self.jwks.lock().unwrap().to_string()))
            })
        }
    }

    pub(crate) fn config(issuer: &str) -> OidcIssuerConfig {
        OidcIssuerConfig {
            issuer: issuer.into(),
            audiences: vec!["holdpoint".into()],
            username_claim: "sub".into(),
            username_prefix: None,
            groups_claim: None,
            groups_prefix: None,
            uid_claim: None,
            required_claims: BTreeMap::new(),
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            ca_file: None,
            leeway: Duration::from_secs(30),
            jwks_refresh_interval: Duration::from_secs(3600),
            jwks_min_refresh_interval: Duration::from_secs(10),
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": "holdpoint", "sub": "alice", "exp": NOW + 600,
               "iat": NOW - 10, "nbf": NOW - 10})
    }

    struct Fixture {
        auth: OidcAuthenticator,
        clock: Arc<ManualClock>,
        fetcher: Arc<FakeFetcher>,
        rsa: Signer,
    }

    fn fixture_with(config: OidcIssuerConfig) -> Fixture {
        let rsa = Signer::rsa();
        let fetcher = FakeFetcher::serving(vec![rsa.jwk("k1")]);
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
        let auth = OidcAuthenticator::with_fetchers(
            vec![(config, fetcher.clone() as Arc<dyn JwksFetcher>)],
            clock.clone(),
        );
        Fixture {
            auth,
            clock,
            fetcher,
            rsa,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(config(ISS))
    }

    fn with(mut base: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    #[tokio::test]
    async fn a_valid_token_maps_to_the_prefixed_identity() {
        let f = fixture();
        let id = f
            .auth
            .check(&f.rsa.token("k1", &claims()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "https://idp.example#alice");
        assert!(id.groups.is_empty());
        assert_eq!(id.uid, None);
        assert!(id.extra.is_empty());
        assert_eq!(id.authenticator, "oidc:https://idp.example");
    }

    #[tokio::test]
    async fn claims_mapping_prefixes_groups_uid_and_required_claims() {
        let mut c = config(ISS);
        c.username_claim = "email".into();
        c.groups_claim = Some("groups".into());
        c.groups_prefix = Some("oidc:".into());
        c.uid_claim = Some("sub".into());
        c.required_claims = BTreeMap::from([("tenant".into(), "acme".into())]);
        let f = fixture_with(c);
        let base = with(
            claims(),
            json!({"email": "a@x.io", "groups": ["dev", "ops"], "tenant": "acme"}),
        );
        let check = |claims: Value| {
            let token = f.rsa.token("k1", &claims);
            let auth = &f.auth;
            async move { auth.check(&token).await }
        };
        let id = check(base.clone()).await.unwrap().unwrap();
        // email as username: no prefix by default (apiserver rule).
        assert_eq!(id.username, "a@x.io");
        assert_eq!(id.groups, ["oidc:dev", "oidc:ops"]);
        assert_eq!(id.uid.as_deref(), Some("alice"));
        let id = check(with(
            base.clone(),
            json!({"groups": "solo", "email_verified": true}),
        ))
        .await
        .unwrap()
        .unwrap();
        assert_eq!(id.groups, ["oidc:solo"]);
        for (changes, refusal) in [
            (json!({"email_verified": false}), Refusal::EmailNotVerified),
            (json!({"email_verified": "true"}), Refusal::EmailNotVerified),
            (json!({"email": null}), Refusal::Username),
            (json!({"email": ""}), Refusal::Username),
            (json!({"email": 7}), Refusal::Username),
            (json!({"groups": ["dev", 3]}), Refusal::Groups),
            (json!({"groups": {"a": 1}}), Refusal::Groups),
            (json!({"tenant": "other"}), Refusal::RequiredClaim),
            (json!({"tenant": null}), Refusal::RequiredClaim),
            (json!({"sub": null}), Refusal::Uid),
        ] {
            assert_eq!(
                check(with(base.clone(), changes.clone())).await,
                Err(refusal),
                "{changes}"
            );
        }
    }

    #[tokio::test]
    async fn username_prefix_follows_apiserver_semantics_and_system_names_are_refused() {
        let mut c = config(ISS);
        c.username_prefix = Some("-".into());
        c.groups_claim = Some("groups".into());
        let f = fixture_with(c);
        let id = f
            .auth
            .check(&f.rsa.token("k1", &claims()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "alice");
        for changes in [
            json!({"sub": "system:admin"}),
            json!({"groups": ["system:masters"]}),
        ] {
            let token = f.rsa.token("k1", &with(claims(), changes));
            assert_eq!(f.auth.check(&token).await, Err(Refusal::ReservedName));
        }
        let mut c = config(ISS);
        c.username_prefix = Some("corp:".into());
        let f = fixture_with(c);
        let id = f
            .auth
            .check(&f.rsa.token("k1", &claims()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "corp:alice");
    }

    #[tokio::test]
    async fn times_are_checked_on_the_injected_clock_with_leeway() {
        let f = fixture();
        let token = f.rsa.token("k1", &claims());
        f.clock
            .set(jiff::Timestamp::from_second(NOW + 600 + 30).unwrap());
        assert!(
            f.auth.check(&token).await.unwrap().is_some(),
            "within leeway"
        );
        f.clock
            .set(jiff::Timestamp::from_second(NOW + 600 + 31).unwrap());
        assert_eq!(f.auth.check(&token).await, Err(Refusal::Expired));
        f.clock.set(jiff::Timestamp::from_second(NOW).unwrap());
        for (changes, refusal) in [
            (json!({"nbf": NOW + 31}), Refusal::NotYetValid),
            (json!({"iat": NOW + 31}), Refusal::IssuedInFuture),
            (json!({"exp": null}), Refusal::NoExpiry),
            (json!({"exp": "tomorrow"}), Refusal::Malformed),
        ] {
            let token = f.rsa.token("k1", &with(claims(), changes.clone()));
            assert_eq!(f.auth.check(&token).await, Err(refusal), "{changes}");
        }
        let token = f.rsa.token("k1", &with(claims(), json!({"nbf": NOW + 30})));
        assert!(f.auth.check(&token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn audience_must_name_a_configured_audience() {
        let f = fixture();
        for (aud, ok) in [
            (json!("holdpoint"), true),
            (json!(["other", "holdpoint"]), true),
            (json!("other"), false),
            (json!(["other"]), false),
            (json!(null), false),
            (json!(7), false),
        ] {
            let token = f
                .rsa
                .token("k1", &with(claims(), json!({"aud": aud.clone()})));
            let r = f.auth.check(&token).await;
            if ok {
                assert!(r.unwrap().is_some(), "{aud}");
            } else {
                assert_eq!(r, Err(Refusal::WrongAudience), "{aud}");
            }
        }
    }

    #[tokio::test]
    async fn algorithm_allow_list_refuses_none_hmac_and_unlisted_algorithms() {
        let mut c = config(ISS);
        c.algorithms = vec!["RS256".into(), "HS256".into()];
        let f = fixture_with(c);
        let good = f.rsa.token("k1", &claims());
        let (_header, rest) = good.split_once('.').unwrap();
        let payload = rest.split('.').next().unwrap();
        // alg: none with an empty signature.
        let none = format!(
            "{}.{payload}.",
            b64(json!({"alg": "none", "kid": "k1"}).to_string().as_bytes())
        );
        assert_eq!(f.auth.check(&none).await, Err(Refusal::AlgorithmNotAllowed));
        // HS256 "signed" with the public key's JWK text and its modulus as the HMAC secret.
        let jwk = f.rsa.jwk("k1");
        for secret in [
            jwk.to_string().into_bytes(),
            jwk["n"].as_str().unwrap().into(),
        ] {
            let input = format!(
                "{}.{payload}",
                b64(json!({"alg": "HS256", "kid": "k1"}).to_string().as_bytes())
            );
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
            let sig = ring::hmac::sign(&key, input.as_bytes());
            let forged = format!("{input}.{}", b64(sig.as_ref()));
            assert_eq!(
                f.auth.check(&forged).await,
                Err(Refusal::AlgorithmNotAllowed)
            );
        }
        // ES256 is a fine algorithm, but not on this issuer's list.
        let ec = Signer::es256();
        *f.fetcher.jwks.lock().unwrap() = json!({"keys": [jwk, ec.jwk("e1")]});
        assert_eq!(
            f.auth.check(&ec.token("e1", &claims())).await,
            Err(Refusal::AlgorithmNotAllowed)
        );
        // A header claiming RS256 for the EC key's kid finds no RSA key under that kid.
        let confused = ec.sign_raw(&json!({"alg": "RS256", "kid": "e1"}), &claims());
        assert_eq!(f.auth.check(&confused).await, Err(Refusal::UnknownKey));
        // crit extensions are not understood, so refused.
        let crit = f.rsa.sign_raw(
            &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
            &claims(),
        );
        assert_eq!(f.auth.check(&crit).await, Err(Refusal::Malformed));
    }

    #[tokio::test]
    async fn es256_eddsa_and_tokens_without_kid_verify() {
        let (ec, ed) = (Signer::es256(), Signer::ed25519());
        let f = fixture();
        *f.fetcher.jwks.lock().unwrap() =
            json!({"keys": [f.rsa.jwk("k1"), ec.jwk("e1"), ed.jwk("d1")]});
        for (signer, kid) in [(&ec, "e1"), (&ed, "d1")] {
            let id = f.auth.check(&signer.token(kid, &claims())).await.unwrap();
            assert_eq!(id.unwrap().username, "https://idp.example#alice");
        }
        let no_kid = ec.sign_raw(&json!({"alg": "ES256"}), &claims());
        assert!(f.auth.check(&no_kid).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tampered_payload_and_foreign_signatures_are_refused() {
        let f = fixture();
        let good = f.rsa.token("k1", &claims());
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(with(claims(), json!({"sub": "admin"}))
            .to_string()
            .as_bytes());
        assert_eq!(
            f.auth.check(&parts.join(".")).await,
            Err(Refusal::BadSignature)
        );
        // Another key that claims the issuer's kid.
        let other = Signer::es256();
        let mut c = config(ISS);
        c.algorithms = vec!["ES256".into()];
        let f2 = fixture_with(c);
        *f2.fetcher.jwks.lock().unwrap() = json!({"keys": [Signer::es256().jwk("k1")]});
        assert_eq!(
            f2.auth.check(&other.token("k1", &claims())).await,
            Err(Refusal::BadSignature)
        );
    }

    #[tokio::test]
    async fn tokens_of_other_issuers_and_non_jwts_are_not_ours() {
        let f = fixture();
        let other = with(claims(), json!({"iss": "https://other.example"}));
        assert_eq!(f.auth.check(&f.rsa.token("k1", &other)).await, Ok(None));
        assert_eq!(
            f.auth
                .check(&f.rsa.token("k1", &with(claims(), json!({"iss": null}))))
                .await,
            Ok(None)
        );
        for t in ["opaque-static-token", "a.b", "a.b.c.d", "!!.@@.##", ""] {
            assert_eq!(f.auth.check(t).await, Ok(None), "{t}");
        }
        assert_eq!(
            f.fetcher.count.load(Ordering::SeqCst),
            0,
            "no fetch for foreign tokens"
        );
    }

    #[tokio::test]
    async fn several_issuers_each_verify_with_their_own_keys() {
        let (a, b) = (Signer::rsa(), Signer::es256());
        let fa = FakeFetcher::serving(vec![a.jwk("ka")]);
        let fb = FakeFetcher::serving(vec![b.jwk("kb")]);
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
        let mut cb = config("https://b.example");
        cb.username_prefix = Some("b:".into());
        let auth = OidcAuthenticator::with_fetchers(
            vec![(config(ISS), fa.clone() as _), (cb, fb.clone() as _)],
            clock,
        );
        let claims_b = with(claims(), json!({"iss": "https://b.example"}));
        let id = auth
            .check(&b.token("kb", &claims_b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "b:alice");
        assert_eq!(id.authenticator, "oidc:https://b.example");
        let id = auth
            .check(&a.token("ka", &claims()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.authenticator, "oidc:https://idp.example");
        // B's key cannot sign for A, under either kid.
        assert_eq!(
            auth.check(&b.token("kb", &claims())).await,
            Err(Refusal::UnknownKey)
        );
        let mut c2 = claims();
        c2["sub"] = "mallory".into();
        let forged = b.sign_raw(&json!({"alg": "RS256", "kid": "ka"}), &c2);
        assert_eq!(auth.check(&forged).await, Err(Refusal::BadSignature));
    }

    #[tokio::test]
    async fn unknown_kid_refresh_is_single_flight_and_rate_limited() {
        let f = fixture();
        assert!(
            f.auth
                .check(&f.rsa.token("k1", &claims()))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            f.fetcher.count.load(Ordering::SeqCst),
            1,
            "lazy first fetch"
        );
        // Known kid: no more fetches.
        for _ in 0..10 {
            f.auth.check(&f.rsa.token("k1", &claims())).await.unwrap();
        }
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 1);
        // Within the minimum interval of the first fetch an unknown kid fetches nothing.
        assert_eq!(
            f.auth.check(&f.rsa.token("nope", &claims())).await,
            Err(Refusal::UnknownKey)
        );
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 1);
        // Later, a flood of random kids at once makes exactly one fetch.
        f.clock.set(jiff::Timestamp::from_second(NOW + 11).unwrap());
        let tokens: Vec<String> = (0..200)
            .map(|i| f.rsa.token(&format!("random-{i}"), &claims()))
            .collect();
        let results = futures::future::join_all(tokens.iter().map(|t| f.auth.check(t))).await;
        assert!(results.iter().all(|r| *r == Err(Refusal::UnknownKey)));
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 2);
        f.clock.set(jiff::Timestamp::from_second(NOW + 20).unwrap());
        let _ = f.auth.check(&tokens[0]).await;
        assert_eq!(
            f.fetcher.count.load(Ordering::SeqCst),
            2,
            "still rate limited"
        );
        f.clock.set(jiff::Timestamp::from_second(NOW + 21).unwrap());
        let _ = f.auth.check(&tokens[0]).await;
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 3);
        assert_eq!(f.auth.fetch_counts().await, [3]);
    }

    #[tokio::test]
    async fn issuer_down_fails_closed_and_is_retried_only_after_the_interval() {
        let f = fixture();
        f.fetcher.down.store(true, Ordering::SeqCst);
        let token = f.rsa.token("k1", &claims());
        assert_eq!(f.auth.check(&token).await, Err(Refusal::KeysUnavailable));
        assert_eq!(f.auth.check(&token).await, Err(Refusal::KeysUnavailable));
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 1);
        f.fetcher.down.store(false, Ordering::SeqCst);
        f.clock.set(jiff::Timestamp::from_second(NOW + 10).unwrap());
        assert!(f.auth.check(&token).await.unwrap().is_some());
        assert_eq!(f.fetcher.count.load(Ordering::SeqCst), 2);
        // Down again later: the cached keys keep working.
        f.fetcher.down.store(true, Ordering::SeqCst);
        f.clock
            .set(jiff::Timestamp::from_second(NOW + 100).unwrap());
        let _ = f.auth.check(&f.rsa.token("unknown", &claims())).await;
        assert!(f.auth.check(&token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn rotation_adds_keys_on_unknown_kid_and_drops_unpublished_ones() {
        let f = fixture();
        assert!(
            f.auth
                .check(&f.rsa.token("k1", &claims()))
                .await
                .unwrap()
                .is_some()
        );
        let next = Signer::es256();
        *f.fetcher.jwks.lock().unwrap() = json!({"keys": [next.jwk("k2")]});
        f.clock.set(jiff::Timestamp::from_second(NOW + 10).unwrap());
        assert!(
            f.auth
                .check(&next.token("k2", &claims()))
                .await
                .unwrap()
                .is_some()
        );
        // k1 is no longer published, and the refresh above already dropped it.
        assert_eq!(
            f.auth.check(&f.rsa.token("k1", &claims())).await,
            Err(Refusal::UnknownKey)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_refreshed_on_schedule() {
        let mut c = config(ISS);
        c.jwks_refresh_interval = Duration::from_secs(60);
        let f = fixture_with(c);
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert_eq!(
            f.fetcher.count.load(Ordering::SeqCst),
            0,
            "never wanted: never fetched"
        );
        assert!(
            f.auth
                .check(&f.rsa.token("k1", &claims()))
                .await
                .unwrap()
                .is_some()
        );
        let retired_then = f.fetcher.count.load(Ordering::SeqCst);
        *f.fetcher.jwks.lock().unwrap() = json!({"keys": [Signer::es256().jwk("k9")]});
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(f.fetcher.count.load(Ordering::SeqCst) > retired_then);
        assert_eq!(
            f.auth.check(&f.rsa.token("k1", &claims())).await,
            Err(Refusal::UnknownKey),
            "the scheduled refresh dropped the retired key"
        );
    }

    #[tokio::test]
    async fn refusals_name_the_credential_kind_only() {
        let f = fixture();
        let token = f
            .rsa
            .token("secret-kid-42", &with(claims(), json!({"aud": "x"})));
        let cred = Credential::Bearer(crate::identity::Secret::new(token.clone()));
        let conn = ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: vec![],
        };
        let err = f.auth.authenticate(&cred, &conn).await.unwrap_err();
        assert!(matches!(err, GatewayError::Unauthenticated { .. }));
        let text = err.to_string();
        assert_eq!(text, "Unauthorized: OIDC bearer token was not accepted");
        assert!(!text.contains("secret-kid-42") && !text.contains(&token[..20]));
        assert!(!format!("{:?}", f.auth).contains(&token[..20]));
    }

    #[tokio::test]
    async fn verified_tokens_are_cached_but_still_expire_and_follow_key_changes() {
        let f = fixture();
        let token = f.rsa.token("k1", &claims());
        assert!(f.auth.check_uncached(&token).await.unwrap().is_some());
        assert_eq!(f.auth.cache().len(), 0, "check_uncached does not cache");
        let first = f.auth.check(&token).await.unwrap().unwrap();
        assert_eq!(f.auth.cache().len(), 1);
        assert_eq!(f.auth.check(&token).await.unwrap().unwrap(), first);
        // A cache hit still honours exp (+ leeway) on the clock.
        f.clock.set(jiff::Timestamp::from_second(NOW + 9).unwrap());
        assert!(f.auth.check(&token).await.unwrap().is_some());
        let short = f.rsa.token("k1", &with(claims(), json!({"exp": NOW + 12})));
        assert!(f.auth.check(&short).await.unwrap().is_some());
        f.clock.set(jiff::Timestamp::from_second(NOW + 43).unwrap());
        assert_eq!(f.auth.check(&short).await, Err(Refusal::Expired));
        // A different token (one changed byte) is never a hit.
        let mut other = token.clone();
        other.push('A');
        assert!(f.auth.check(&other).await.is_err());
        // Once the key set changes, a cached token is verified again against the new keys.
        f.clock.set(jiff::Timestamp::from_second(NOW + 20).unwrap());
        assert!(f.auth.check(&token).await.unwrap().is_some());
        *f.fetcher.jwks.lock().unwrap() = json!({"keys": [Signer::es256().jwk("k2")]});
        let _ = f.auth.check(&f.rsa.token("unknown", &claims())).await;
        assert_eq!(f.auth.check(&token).await, Err(Refusal::UnknownKey));
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let rsa = Signer::rsa();
        let mut enc = rsa.jwk("enc");
        enc["use"] = "enc".into();
        let mut odd = rsa.jwk("odd");
        odd["alg"] = "RSA-OAEP".into();
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac2"},
            enc, odd, {"kty": "nonsense"}, rsa.jwk("good"),
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("good"));
        assert!(parse_jwks(b"{\"keys\": []}").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }
}
