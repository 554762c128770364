//! Kubernetes service-account tokens, validated by a TokenReview the gateway sends upstream with
//! its own credential, and a bounded cache of the answers.
//!
//! Which tokens: bearer tokens shaped like a JWT whose unverified `iss` is not one of the OIDC
//! issuers the gateway validates itself. Anything else is `Ok(None)` (not this authenticator's
//! kind). Only identities the review reports as `system:serviceaccount:<ns>:<name>` are accepted;
//! another user the apiserver happens to know (an OIDC or static-token user of the cluster) is
//! refused here, because this authenticator stands for service accounts only.
//!
//! The cache is keyed by the SHA-256 of the token (the token itself is never stored). A success is
//! reused for at most `cache_ttl` and never past the token's own `exp` (read, unverified, from the
//! JWT payload: a lying `exp` can only shorten the entry); a refusal for `negative_cache_ttl`.
//! Expiry uses the injected clock. Successes and refusals are each bounded by
//! `max_cache_entries` (oldest evicted first), so a flood of bad tokens cannot push out the good
//! ones. Concurrent requests with the same uncached token share one review (single flight), so a
//! burst costs one upstream call.
//!
//! When the review itself fails (transport error, timeout, a non-2xx answer such as the gateway
//! lacking `create tokenreviews`, an unreadable body) the request fails closed with a 503
//! `authentication backend unavailable`, not a 401: the token was not judged, and a 401 would
//! tell a client its valid token is bad. Such failures are never cached.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{Authenticator, ConnectionInfo, Credential};
use crate::clock::Clock;
use crate::config::ServiceAccountsConfig;
use crate::error::GatewayError;
use crate::identity::{Identity, Secret};
use crate::upstream::Upstream;

/// The `authenticator` field of identities this module produces.
pub const AUTHENTICATOR: &str = "serviceaccount";
/// The kind of credential named in refusals.
const KIND: &str = "service-account token";
/// The whole TokenReview exchange (connect, send, read the answer) must finish within this.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest TokenReview response read.
const REVIEW_BODY_LIMIT: usize = 1024 * 1024;

/// What a TokenReview answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewResult {
    /// `status.authenticated`.
    pub authenticated: bool,
    /// `status.user.username`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: Option<String>,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// `status.user.extra`.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
    /// `status.audiences`: the audiences the token is valid for among those asked.
    pub audiences: Vec<String>,
}

/// A TokenReview that could not be done (never contains the token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReviewError {
    /// The upstream could not be reached or failed.
    #[error("TokenReview upstream error: {0}")]
    Upstream(String),
    /// The upstream answered with a non-success status (e.g. the gateway may not create
    /// tokenreviews).
    #[error("TokenReview answered HTTP {0}")]
    Status(u16),
    /// The answer was not a TokenReview.
    #[error("malformed TokenReview response")]
    Malformed,
    /// No complete answer within the review timeout.
    #[error("TokenReview timed out after {0:?}")]
    Timeout(Duration),
}

/// Sends TokenReviews. The gateway uses [`UpstreamReviewer`]; tests and benchmarks use fakes.
pub trait TokenReviewer: Send + Sync + std::fmt::Debug {
    /// Reviews `token` for `audiences` (empty: the apiserver's own audiences).
    fn review<'a>(
        &'a self,
        token: &'a Secret,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResult, ReviewError>>;
}

/// Reviews tokens with `POST /apis/authentication.k8s.io/v1/tokenreviews` (JSON) on the upstream,
/// with the gateway's own credential.
#[derive(Debug, Clone)]
pub struct UpstreamReviewer {
    upstream: Upstream,
}

impl UpstreamReviewer {
    /// A reviewer for `upstream`. No I/O happens until the first review.
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    async fn send(&self, token: &Secret, audiences: &[String]) -> Result<Value, ReviewError> {
        let mut spec = json!({ "token": token.expose() });
        if !audiences.is_empty() {
            spec["audiences"] = json!(audiences);
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
        });
        let uri = self
            .upstream
            .uri_for("/apis/authentication.k8s.io/v1/tokenreviews")
            .map_err(|e| ReviewError::Upstream(e.to_string()))?;
        let bytes = serde_json::to_vec(&body).map_err(|_| ReviewError::Malformed)?;
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ReviewError::Upstream(e.to_string()))?;
        let resp = self
            .upstream
            .send(req)
            .await
            .map_err(|e| ReviewError::Upstream(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ReviewError::Status(status.as_u16()));
        }
        let body = Limited::new(resp.into_body(), REVIEW_BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| ReviewError::Upstream(format!("reading the TokenReview answer: {e}")))?
            .to_bytes();
        // Parse to a Value, then pick fields: serde's typed errors could quote response values,
        // and the response echoes the token in `spec.token`.
        serde_json::from_slice(&body).map_err(|_| ReviewError::Malformed)
    }
}

impl TokenReviewer for UpstreamReviewer {
    fn review<'a>(
        &'a self,
        token: &'a Secret,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResult, ReviewError>> {
        Box::pin(async move {
            let value = tokio::time::timeout(REVIEW_TIMEOUT, self.send(token, audiences))
                .await
                .map_err(|_| ReviewError::Timeout(REVIEW_TIMEOUT))??;
            parse_review(&value)
        })
    }
}

/// Reads the `status` of a TokenReview answer.
pub fn parse_review(value: &Value) -> Result<ReviewResult, ReviewError> {
    if value["kind"] != "TokenReview" {
        return Err(ReviewError::Malformed);
    }
    let status = &value["status"];
    let strings = |v: &Value| -> Result<Vec<String>, ReviewError> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or(ReviewError::Malformed))
                .collect(),
            _ => Err(ReviewError::Malformed),
        }
    };
    let authenticated = match &status["authenticated"] {
        Value::Bool(b) => *b,
        Value::Null => false,
        _ => return Err(ReviewError::Malformed),
    };
    let user = &status["user"];
    let mut extra = std::collections::BTreeMap::new();
    match &user["extra"] {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                extra.insert(k.clone(), strings(v)?);
            }
        }
        _ => return Err(ReviewError::Malformed),
    }
    Ok(ReviewResult {
        authenticated,
        username: user["username"].as_str().unwrap_or_default().to_owned(),
        uid: user["uid"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        groups: strings(&user["groups"])?,
        extra,
        audiences: strings(&status["audiences"])?,
    })
}

/// The unverified claims of a JWT-shaped token that this authenticator looks at.
#[derive(Debug, Default, PartialEq)]
pub struct UnverifiedClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `exp` (seconds since the epoch).
    pub exp: Option<i64>,
}

/// True when `token` has the shape of a compact JWS: three non-empty base64url segments.
/// Cheap (no decoding), so a cache hit does not parse the token.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        if segments > 3
            || segment.is_empty()
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}

/// Decodes the header and payload of a JWT without verifying anything. `None` when it is not a
/// JWT (either part is not base64url JSON objects).
pub fn unverified_claims(token: &str) -> Option<UnverifiedClaims> {
    let mut parts = token.split('.');
    let (header, payload) = (parts.next()?, parts.next()?);
    let object = |segment: &str| -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    object(header)?;
    let claims = object(payload)?;
    Some(UnverifiedClaims {
        iss: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
        exp: claims.get("exp").and_then(|e| {
            e.as_i64()
                .or_else(|| e.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        }),
    })
}

/// A cached verdict.
#[derive(Debug, Clone)]
enum Verdict {
    Accepted(Identity),
    Refused,
}

#[derive(Debug)]
struct Entry {
    verdict: Verdict,
    expires: jiff::Timestamp,
    seq: u64,
}

/// The outcome of one review flight, shared by everyone who waited for it. `None`: the review
/// could not be done (503, not cached).
type Flight = Option<(Verdict, Option<jiff::Timestamp>)>;

/// A map of verdicts bounded to `max` entries, the oldest evicted first.
#[derive(Debug, Default)]
struct Bounded {
    entries: HashMap<[u8; 32], Entry>,
    /// Insertion order for eviction; entries whose `seq` no longer matches are stale.
    order: VecDeque<([u8; 32], u64)>,
    next_seq: u64,
}

impl Bounded {
    fn get(&self, key: &[u8; 32], now: jiff::Timestamp) -> Option<&Verdict> {
        self.entries
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| &e.verdict)
    }

    fn insert(&mut self, key: [u8; 32], verdict: Verdict, expires: jiff::Timestamp, max: usize) {
        while self.entries.len() >= max && !self.entries.contains_key(&key) {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&old);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            key,
            Entry {
                verdict,
                expires,
                seq,
            },
        );
        self.order.push_back((key, seq));
        // Re-inserted keys leave stale order entries behind; keep the queue bounded.
        if self.order.len() > 2 * max.max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
    }
}

/// Successes and refusals are bounded separately, so a flood of bad tokens cannot evict the
/// good ones (and make every legitimate caller cost a review again).
#[derive(Debug, Default)]
struct Cache {
    accepted: Bounded,
    refused: Bounded,
    /// Reviews in progress.
    in_flight: HashMap<[u8; 32], Arc<OnceCell<Flight>>>,
}

impl Cache {
    fn get(&self, key: &[u8; 32], now: jiff::Timestamp) -> Option<&Verdict> {
        self.accepted
            .get(key, now)
            .or_else(|| self.refused.get(key, now))
    }

    /// Drops lapsed entries for `key`.
    fn forget_lapsed(&mut self, key: &[u8; 32], now: jiff::Timestamp) {
        for map in [&mut self.accepted, &mut self.refused] {
            if map.entries.get(key).is_some_and(|e| e.expires <= now) {
                map.entries.remove(key);
            }
        }
    }

    fn insert(&mut self, key: [u8; 32], verdict: Verdict, expires: jiff::Timestamp, max: usize) {
        match verdict {
            Verdict::Accepted(_) => {
                self.refused.entries.remove(&key);
                self.accepted.insert(key, verdict, expires, max);
            }
            Verdict::Refused => {
                self.accepted.entries.remove(&key);
                self.refused.insert(key, verdict, expires, max);
            }
        }
    }

    fn len(&self) -> usize {
        self.accepted.entries.len() + self.refused.entries.len()
    }
}

/// The service-account token authenticator.
#[derive(Debug)]
pub struct ServiceAccounts {
    reviewer: Arc<dyn TokenReviewer>,
    clock: Arc<dyn Clock>,
    audiences: Vec<String>,
    cache_ttl: jiff::SignedDuration,
    negative_ttl: jiff::SignedDuration,
    max_entries: usize,
    /// Issuers whose tokens belong to another authenticator (OIDC).
    skip_issuers: Vec<String>,
    cache: Mutex<Cache>,
}

fn signed(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

fn add(t: jiff::Timestamp, d: jiff::SignedDuration) -> jiff::Timestamp {
    t.checked_add(d).unwrap_or(jiff::Timestamp::MAX)
}

/// `system:serviceaccount:<ns>:<name>` with both parts non-empty.
fn is_service_account(username: &str) -> bool {
    username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
}

impl ServiceAccounts {
    /// An authenticator that asks `reviewer`. `skip_issuers`: token issuers handled by another
    /// authenticator (their tokens are `Ok(None)` here).
    pub fn new(
        config: &ServiceAccountsConfig,
        reviewer: Arc<dyn TokenReviewer>,
        clock: Arc<dyn Clock>,
        skip_issuers: Vec<String>,
    ) -> Self {
        Self {
            reviewer,
            clock,
            audiences: config.audiences.clone(),
            cache_ttl: signed(config.cache_ttl),
            negative_ttl: signed(config.negative_cache_ttl),
            max_entries: config.max_cache_entries.max(1),
            skip_issuers,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// How many reviews are cached (positive and negative, including lapsed ones not yet
    /// evicted).
    pub fn cached_entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn verdict_to_result(verdict: Verdict) -> Result<Option<Identity>, GatewayError> {
        match verdict {
            Verdict::Accepted(id) => Ok(Some(id)),
            Verdict::Refused => Err(GatewayError::Unauthenticated { kind: KIND }),
        }
    }

    /// Turns a review answer into a verdict and how long it may be cached.
    fn judge(&self, result: ReviewResult, exp: Option<i64>) -> (Verdict, Option<jiff::Timestamp>) {
        let now = self.clock.now();
        let refused = |why: &str| {
            tracing::debug!(reason = why, "service-account token refused");
            let until = (!self.negative_ttl.is_zero()).then(|| add(now, self.negative_ttl));
            (Verdict::Refused, until)
        };
        if !result.authenticated {
            return refused("TokenReview did not authenticate the token");
        }
        if !is_service_account(&result.username) {
            return refused("TokenReview authenticated a user that is not a service account");
        }
        if !self.audiences.is_empty()
            && !result.audiences.iter().any(|a| self.audiences.contains(a))
        {
            return refused("the token is not valid for the configured audiences");
        }
        let mut until = add(now, self.cache_ttl);
        if let Some(exp) = exp.and_then(|e| jiff::Timestamp::from_second(e).ok()) {
            until = until.min(exp);
        }
        let identity = Identity {
            username: result.username,
            groups: result.groups,
            uid: result.uid,
            extra: result.extra,
            authenticator: AUTHENTICATOR.into(),
        };
        (Verdict::Accepted(identity), Some(until))
    }

    async fn authenticate_token(&self, token: &Secret) -> Result<Option<Identity>, GatewayError> {
        let raw = token.expose();
        // Only tokens this authenticator reviewed are in the cache, so a hit needs no look at
        // the token's shape or contents.
        let key: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        let now = self.clock.now();
        let cell = {
            let mut cache = self.lock();
            if let Some(verdict) = cache.get(&key, now) {
                return Self::verdict_to_result(verdict.clone());
            }
            cache.forget_lapsed(&key, now);
            cache.in_flight.get(&key).cloned()
        };
        // Not cached: look inside the token (only now, so cache hits skip the decoding).
        if !looks_like_jwt(raw) {
            return Ok(None);
        }
        let Some(claims) = unverified_claims(raw) else {
            return Ok(None);
        };
        if claims
            .iss
            .as_deref()
            .is_some_and(|iss| self.skip_issuers.iter().any(|s| s == iss))
        {
            return Ok(None);
        }
        if claims.exp.is_some_and(|exp| exp <= now.as_second()) {
            return Err(GatewayError::Unauthenticated { kind: KIND });
        }
        let cell = match cell {
            Some(cell) => cell,
            None => {
                let mut cache = self.lock();
                // A flight may have finished since the first look: use its answer.
                if let Some(verdict) = cache.get(&key, now) {
                    return Self::verdict_to_result(verdict.clone());
                }
                cache
                    .in_flight
                    .entry(key)
                    .or_insert_with(|| Arc::new(OnceCell::new()))
                    .clone()
            }
        };
        let flight = cell
            .get_or_init(|| async {
                match self.reviewer.review(token, &self.audiences).await {
                    Ok(result) => Some(self.judge(result, claims.exp)),
                    Err(e) => {
                        tracing::warn!(error = %e, "service-account token could not be reviewed");
                        None
                    }
                }
            })
            .await
            .clone();
        {
            let mut cache = self.lock();
            if cache
                .in_flight
                .get(&key)
                .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                cache.in_flight.remove(&key);
                if let Some((verdict, Some(until))) = &flight {
                    cache.insert(key, verdict.clone(), *until, self.max_entries);
                }
            }
        }
        match flight {
            Some((verdict, _)) => Self::verdict_to_result(verdict),
            None => Err(GatewayError::AuthenticationUnavailable { kind: KIND }),
        }
    }
}

impl Authenticator for ServiceAccounts {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
        _conn: &'a ConnectionInfo,
    ) -> BoxFuture<'a, Result<Option<Identity>, GatewayError>> {
        Box::pin(async move {
            match credential {
                Credential::Bearer(token) => self.authenticate_token(token).await,
                _ => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A reviewer that answers from a table and counts calls; `delay` lets a burst pile up.
    #[derive(Debug, Default)]
    struct Fake {
        calls: AtomicUsize,
        answers: Mutex<HashMap<String, Result<ReviewResult, ReviewError>>>,
        delay: Duration,
    }

    impl Fake {
        fn answer(&self, token: &str, r: Result<ReviewResult, ReviewError>) {
            self.answers.lock().unwrap().insert(token.into(), r);
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl TokenReviewer for Fake {
        fn review<'a>(
            &'a self,
            token: &'a Secret,
            _audiences: &'a [String],
        ) -> BoxFuture<'a, Result<ReviewResult, ReviewError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                self.answers
                    .lock()
                    .unwrap()
                    .get(token.expose())
                    .cloned()
                    .unwrap_or_else(|| Ok(refused()))
            })
        }
    }

    fn sa_user(ns: &str, name: &str, audiences: &[&str]) -> ReviewResult {
        ReviewResult {
            authenticated: true,
            username: format!("system:serviceaccount:{ns}:{name}"),
            uid: Some("sa-uid".into()),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra: [(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec!["JTI=1".to_string()],
            )]
            .into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn refused() -> ReviewResult {
        ReviewResult {
            authenticated: false,
            username: String::new(),
            uid: None,
            groups: vec![],
            extra: Default::default(),
            audiences: vec![],
        }
    }

    /// An (unsigned: only the reviewer judges it) JWT with the given claims.
    fn jwt(claims: Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    const T0: i64 = 1_800_000_000;

    fn setup(
        config: ServiceAccountsConfig,
        fake: Arc<Fake>,
    ) -> (ServiceAccounts, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::from_second(T0).unwrap()));
        let sa = ServiceAccounts::new(
            &config,
            fake,
            clock.clone(),
            vec!["https://oidc.example".into()],
        );
        (sa, clock)
    }

    fn at(clock: &ManualClock, secs: i64) {
        clock.set(jiff::Timestamp::from_second(T0 + secs).unwrap());
    }

    fn bearer(t: &str) -> Credential {
        Credential::Bearer(Secret::new(t))
    }

    fn conn() -> ConnectionInfo {
        ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: vec![],
        }
    }

    async fn auth(sa: &ServiceAccounts, t: &str) -> Result<Option<Identity>, GatewayError> {
        sa.authenticate(&bearer(t), &conn()).await
    }

    #[tokio::test]
    async fn service_account_identity_is_taken_from_the_review() {
        let fake = Arc::new(Fake::default());
        let token = jwt(json!({"iss": "https://kubernetes.default.svc", "exp": T0 + 3600}));
        fake.answer(&token, Ok(sa_user("demo", "deployer", &[])));
        let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
        let id = auth(&sa, &token).await.unwrap().unwrap();
        assert_eq!(id.username, "system:serviceaccount:demo:deployer");
        assert_eq!(
            id.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:demo",
                "system:authenticated"
            ]
        );
        assert_eq!(id.uid.as_deref(), Some("sa-uid"));
        assert_eq!(
            id.extra["authentication.kubernetes.io/credential-id"],
            ["JTI=1"]
        );
        assert_eq!(id.authenticator, "serviceaccount");
    }

    #[tokio::test]
    async fn non_jwt_tokens_and_oidc_issuers_are_not_this_authenticators_kind() {
        let fake = Arc::new(Fake::default());
        let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
        for t in [
            "static-token-abc",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b+.c",
            // base64url but not JSON objects
            &format!(
                "{}.{}.x",
                URL_SAFE_NO_PAD.encode("[]"),
                URL_SAFE_NO_PAD.encode("{}")
            ),
            &jwt(json!({"iss": "https://oidc.example", "exp": T0 + 60})),
        ] {
            assert!(auth(&sa, t).await.unwrap().is_none(), "{t}");
        }
        assert!(
            sa.authenticate(&Credential::None, &conn())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(fake.calls(), 0, "none of these may cost a TokenReview");
    }

    #[tokio::test]
    async fn users_that_are_not_service_accounts_are_refused() {
        let fake = Arc::new(Fake::default());
        let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
        for (i, username) in [
            "kubernetes-admin",
            "oidc:alice",
            "system:serviceaccount:demo",
            "system:serviceaccount::x",
            "system:serviceaccount:demo:",
            "system:serviceaccount:a:b:c",
            "system:serviceaccounts:demo",
        ]
        .into_iter()
        .enumerate()
        {
            let token = jwt(json!({"i": i, "exp": T0 + 60}));
            let mut r = sa_user("demo", "x", &[]);
            r.username = username.into();
            fake.answer(&token, Ok(r));
            let err = auth(&sa, &token).await.unwrap_err();
            assert!(
                matches!(err, GatewayError::Unauthenticated { .. }),
                "{username}"
            );
            assert!(!err.to_string().contains(&token));
        }
    }

    #[tokio::test]
    async fn configured_audiences_must_match_the_reviewed_ones() {
        let fake = Arc::new(Fake::default());
        let good = jwt(json!({"n": 1}));
        let bad = jwt(json!({"n": 2}));
        fake.answer(&good, Ok(sa_user("demo", "a", &["holdpoint"])));
        fake.answer(&bad, Ok(sa_user("demo", "a", &["something-else"])));
        let config = ServiceAccountsConfig {
            audiences: vec!["holdpoint".into()],
            ..Default::default()
        };
        let (sa, _) = setup(config, fake.clone());
        assert!(auth(&sa, &good).await.unwrap().is_some());
        assert!(auth(&sa, &bad).await.is_err());
    }

    #[tokio::test]
    async fn positive_entries_last_cache_ttl_but_never_past_exp() {
        let fake = Arc::new(Fake::default());
        let long = jwt(json!({"exp": T0 + 3600}));
        let short = jwt(json!({"exp": T0 + 30}));
        fake.answer(&long, Ok(sa_user("demo", "a", &[])));
        fake.answer(&short, Ok(sa_user("demo", "b", &[])));
        let (sa, clock) = setup(ServiceAccountsConfig::default(), fake.clone());
        auth(&sa, &long).await.unwrap().unwrap();
        auth(&sa, &short).await.unwrap().unwrap();
        assert_eq!(fake.calls(), 2);
        at(&clock, 29);
        auth(&sa, &long).await.unwrap().unwrap();
        auth(&sa, &short).await.unwrap().unwrap();
        assert_eq!(fake.calls(), 2, "both cached");
        // The short token's own exp has passed: refused without asking (it cannot be valid).
        at(&clock, 30);
        assert!(auth(&sa, &short).await.is_err());
        assert_eq!(fake.calls(), 2);
        at(&clock, 299);
        auth(&sa, &long).await.unwrap().unwrap();
        assert_eq!(fake.calls(), 2, "still within cache_ttl");
        // cache_ttl (5 min) lapsed: the token is reviewed again, and now it is refused (say the
        // service account was deleted).
        fake.answer(&long, Ok(refused()));
        at(&clock, 300);
        assert!(auth(&sa, &long).await.is_err());
        assert_eq!(fake.calls(), 3);
    }

    #[tokio::test]
    async fn refusals_are_cached_briefly() {
        let fake = Arc::new(Fake::default());
        let token = jwt(json!({"exp": T0 + 3600}));
        let (sa, clock) = setup(ServiceAccountsConfig::default(), fake.clone());
        for _ in 0..5 {
            assert!(auth(&sa, &token).await.is_err());
        }
        assert_eq!(fake.calls(), 1);
        at(&clock, 9);
        assert!(auth(&sa, &token).await.is_err());
        assert_eq!(fake.calls(), 1);
        fake.answer(&token, Ok(sa_user("demo", "a", &[])));
        at(&clock, 10);
        assert!(auth(&sa, &token).await.unwrap().is_some());
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test]
    async fn review_failures_answer_503_and_are_not_cached() {
        let fake = Arc::new(Fake::default());
        let token = jwt(json!({"exp": T0 + 3600}));
        for e in [
            ReviewError::Upstream("connection refused".into()),
            ReviewError::Status(403),
            ReviewError::Malformed,
            ReviewError::Timeout(REVIEW_TIMEOUT),
        ] {
            fake.answer(&token, Err(e));
            let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
            let err = auth(&sa, &token).await.unwrap_err();
            assert!(
                matches!(err, GatewayError::AuthenticationUnavailable { .. }),
                "{err}"
            );
            assert_eq!(err.status_code(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                err.to_string()
                    .contains("authentication backend unavailable")
            );
            assert!(!err.to_string().contains(&token));
            assert_eq!(sa.cached_entries(), 0);
        }
        // Once the upstream is back the token is reviewed again.
        fake.answer(&token, Ok(sa_user("demo", "a", &[])));
        let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
        assert!(auth(&sa, &token).await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_with_one_token_sends_one_review() {
        let fake = Arc::new(Fake {
            delay: Duration::from_millis(100),
            ..Default::default()
        });
        let token = jwt(json!({"exp": T0 + 3600}));
        fake.answer(&token, Ok(sa_user("demo", "a", &[])));
        let (sa, _) = setup(ServiceAccountsConfig::default(), fake.clone());
        let sa = Arc::new(sa);
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let sa = sa.clone();
                let token = token.clone();
                tokio::spawn(async move { auth(&sa, &token).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_some());
        }
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_evicts_the_oldest() {
        let fake = Arc::new(Fake::default());
        let config = ServiceAccountsConfig {
            max_cache_entries: 3,
            ..Default::default()
        };
        let (sa, _) = setup(config, fake.clone());
        let tokens: Vec<String> = (0..5).map(|i| jwt(json!({"n": i}))).collect();
        for t in &tokens {
            fake.answer(t, Ok(sa_user("demo", "a", &[])));
            auth(&sa, t).await.unwrap().unwrap();
        }
        assert_eq!(sa.cached_entries(), 3);
        assert_eq!(fake.calls(), 5);
        // The newest three are cached, the two oldest were evicted.
        for t in &tokens[2..] {
            auth(&sa, t).await.unwrap().unwrap();
        }
        assert_eq!(fake.calls(), 5);
        auth(&sa, &tokens[0]).await.unwrap().unwrap();
        assert_eq!(fake.calls(), 6);
        assert_eq!(sa.cached_entries(), 3);
    }

    #[tokio::test]
    async fn a_flood_of_refused_tokens_does_not_evict_accepted_ones() {
        let fake = Arc::new(Fake::default());
        let config = ServiceAccountsConfig {
            max_cache_entries: 4,
            ..Default::default()
        };
        let (sa, _) = setup(config, fake.clone());
        let good = jwt(json!({"good": true}));
        fake.answer(&good, Ok(sa_user("demo", "a", &[])));
        auth(&sa, &good).await.unwrap().unwrap();
        for i in 0..50 {
            assert!(auth(&sa, &jwt(json!({"bad": i}))).await.is_err());
        }
        assert_eq!(sa.cached_entries(), 1 + 4);
        let calls = fake.calls();
        auth(&sa, &good).await.unwrap().unwrap();
        assert_eq!(fake.calls(), calls, "the accepted token is still cached");
    }

    #[test]
    fn parse_review_reads_the_status_and_refuses_junk() {
        let v = json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "spec": {"token": "secret"},
            "status": {
                "authenticated": true,
                "user": {"username": "system:serviceaccount:a:b", "uid": "u", "groups": ["g"],
                          "extra": {"k": ["v"]}},
                "audiences": ["x"],
            }
        });
        let r = parse_review(&v).unwrap();
        assert!(r.authenticated);
        assert_eq!(r.username, "system:serviceaccount:a:b");
        assert_eq!(r.groups, ["g"]);
        assert_eq!(r.extra["k"], ["v"]);
        assert_eq!(r.audiences, ["x"]);
        let refused = parse_review(
            &json!({"kind": "TokenReview", "status": {"authenticated": false, "error": "nope"}}),
        )
        .unwrap();
        assert!(!refused.authenticated);
        for junk in [
            json!({"kind": "Status"}),
            json!({"kind": "TokenReview", "status": {"authenticated": "yes"}}),
            json!({"kind": "TokenReview", "status": {"authenticated": true, "user": {"groups": [1]}}}),
        ] {
            assert!(parse_review(&junk).is_err(), "{junk}");
        }
    }
}
