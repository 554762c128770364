//! Static bearer tokens: held only as SHA-256 hashes, compared in constant time.
//!
//! Two sources: the config file (`authentication.static_tokens`, checked in memory) and the
//! store (`holdpoint token create`, with expiry and revocation). Stored tokens carry the
//! `hpt_` prefix [`holdpoint_store::generate_token`] gives them, and only such tokens are looked
//! up in the store, so OIDC and service-account tokens further down the chain cost no store
//! query. A stored token that was found valid is cached for [`STORED_TOKEN_CACHE_TTL`] (never
//! past its own expiry), so a revocation takes effect within that time on every replica; a
//! token that was not found is not cached (a new token works at once). Lookups are by the
//! token's SHA-256, so timing reveals nothing about the token itself. A store that cannot
//! answer refuses the request (fail closed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use holdpoint_store::Store;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::{Authenticator, ConnectionInfo, Credential};
use crate::clock::Clock;
use crate::config::StaticTokenConfig;
use crate::error::GatewayError;
use crate::identity::Identity;

/// How long a stored token found valid is trusted without asking the store again: the longest
/// time a revocation takes to reach a running gateway.
pub const STORED_TOKEN_CACHE_TTL: SignedDuration = SignedDuration::from_secs(5);

/// The prefix of tokens made by `holdpoint token create` (only these are looked up in the store).
pub const STORED_TOKEN_PREFIX: &str = "hpt_";

/// Most cached stored tokens; the cache is emptied when full (it refills from the store).
const CACHE_MAX: usize = 10_000;

/// Static bearer tokens from the config (and the store, when there is one).
#[derive(Debug)]
pub struct StaticTokens {
    entries: Vec<([u8; 32], Identity)>,
    stored: Option<StoredTokens>,
}

#[derive(Debug)]
struct StoredTokens {
    store: Store,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<[u8; 32], (Identity, Timestamp)>>,
}

/// Lowercase hex SHA-256 of a token, the form the config stores.
pub fn token_sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl StaticTokens {
    /// Builds from validated config entries (invalid hashes are skipped; `Config::validate`
    /// already refused them).
    pub fn new(entries: &[StaticTokenConfig]) -> Self {
        Self {
            entries: entries
                .iter()
                .filter_map(|e| {
                    Some((
                        parse_hex32(&e.sha256)?,
                        Identity {
                            username: e.user.clone(),
                            groups: e.groups.clone(),
                            uid: e.uid.clone(),
                            extra: Default::default(),
                            authenticator: "static-token".into(),
                        },
                    ))
                })
                .collect(),
            stored: None,
        }
    }

    /// Also accepts tokens stored in `store` (valid at the clock's now).
    pub fn with_store(mut self, store: Store, clock: Arc<dyn Clock>) -> Self {
        self.stored = Some(StoredTokens {
            store,
            clock,
            cache: Mutex::new(HashMap::new()),
        });
        self
    }
}

impl StoredTokens {
    async fn lookup(&self, digest: &[u8; 32]) -> Result<Option<Identity>, GatewayError> {
        let now = self.clock.now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(digest) {
                Some((identity, until)) if now < *until => return Ok(Some(identity.clone())),
                Some(_) => {
                    cache.remove(digest);
                }
                None => {}
            }
        }
        let found = self
            .store
            .lookup_token_by_hash(&to_hex(digest), now)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "static tokens: the store cannot be read");
                GatewayError::Internal("the token store is unavailable".into())
            })?;
        let Some(token) = found else {
            return Ok(None);
        };
        let identity = Identity {
            username: token.username,
            groups: token.groups,
            uid: token.uid,
            extra: Default::default(),
            authenticator: "static-token".into(),
        };
        let mut until = now + STORED_TOKEN_CACHE_TTL;
        if let Some(expires) = token.expires_at {
            until = until.min(expires);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(*digest, (identity.clone(), until));
        Ok(Some(identity))
    }
}

impl Authenticator for StaticTokens {
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
        _conn: &'a ConnectionInfo,
    ) -> BoxFuture<'a, Result<Option<Identity>, GatewayError>> {
        Box::pin(async move {
            let Credential::Bearer(token) = credential else {
                return Ok(None);
            };
            let digest: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
            // Compare against every entry so timing does not reveal which one matched.
            let mut found = None;
            for (hash, identity) in &self.entries {
                if ct_eq(hash, &digest) && found.is_none() {
                    found = Some(identity.clone());
                }
            }
            if found.is_some() {
                return Ok(found);
            }
            match &self.stored {
                Some(stored) if token.expose().starts_with(STORED_TOKEN_PREFIX) => {
                    stored.lookup(&digest).await
                }
                _ => Ok(None),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::authenticate::AuthChain;
    use http::HeaderMap;

    fn conn() -> ConnectionInfo {
        ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: vec![],
        }
    }

    fn chain() -> AuthChain {
        AuthChain::new(vec![Box::new(StaticTokens::new(&[StaticTokenConfig {
            sha256: token_sha256_hex("good-token"),
            user: "agent".into(),
            groups: vec!["agents".into()],
            uid: None,
        }]))])
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn static_token_authenticates() {
        let id = chain()
            .authenticate(&headers("Bearer good-token"), &conn())
            .await
            .unwrap();
        assert_eq!(id.username, "agent");
        assert_eq!(id.groups, ["agents"]);
        assert_eq!(id.authenticator, "static-token");
    }

    #[tokio::test]
    async fn wrong_missing_and_basic_credentials_are_refused_without_echoing_them() {
        for h in [
            headers("Bearer bad-token"),
            headers("Basic Z29vZC10b2tlbjo="),
            HeaderMap::new(),
            headers("Bearer "),
        ] {
            let err = chain().authenticate(&h, &conn()).await.unwrap_err();
            assert!(matches!(err, GatewayError::Unauthenticated { .. }));
            assert!(!err.to_string().contains("bad-token"));
        }
    }

    async fn stored_chain(
        clock: Arc<crate::clock::ManualClock>,
    ) -> (AuthChain, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        let tokens = StaticTokens::new(&[]).with_store(store.clone(), clock);
        (AuthChain::new(vec![Box::new(tokens)]), store, dir)
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    async fn create(store: &Store, token: &str, expires: Option<Timestamp>) -> String {
        store
            .create_token(
                &holdpoint_store::NewToken {
                    sha256: token_sha256_hex(token),
                    username: "ci".into(),
                    groups: vec!["deployers".into()],
                    uid: Some("7".into()),
                    description: None,
                    expires_at: expires,
                    created_by: "test".into(),
                },
                t(0),
            )
            .await
            .unwrap()
            .id
    }

    #[tokio::test]
    async fn stored_tokens_work_until_expiry_and_revocation_within_the_cache_ttl() {
        let clock = Arc::new(crate::clock::ManualClock::new(t(0)));
        let (chain, store, _dir) = stored_chain(clock.clone()).await;
        let token = holdpoint_store::generate_token().unwrap();
        let id = create(&store, &token, Some(t(3600))).await;
        let auth = format!("Bearer {token}");
        let who = chain.authenticate(&headers(&auth), &conn()).await.unwrap();
        assert_eq!(
            (
                who.username.as_str(),
                who.groups.as_slice(),
                who.uid.as_deref()
            ),
            ("ci", &["deployers".to_string()][..], Some("7"))
        );
        // Revoked: still cached for up to the TTL, refused after it.
        store
            .revoke_tokens(&holdpoint_store::TokenSelector::Id(id), "admin", None, t(1))
            .await
            .unwrap();
        clock.set(t(1));
        assert!(chain.authenticate(&headers(&auth), &conn()).await.is_ok());
        clock.set(t(0) + STORED_TOKEN_CACHE_TTL);
        let err = chain
            .authenticate(&headers(&auth), &conn())
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Unauthenticated { .. }));
        assert!(!err.to_string().contains(&token));
    }

    #[tokio::test]
    async fn an_expired_stored_token_is_refused_even_when_cached() {
        let clock = Arc::new(crate::clock::ManualClock::new(t(0)));
        let (chain, store, _dir) = stored_chain(clock.clone()).await;
        let token = holdpoint_store::generate_token().unwrap();
        create(&store, &token, Some(t(2))).await;
        let auth = format!("Bearer {token}");
        chain.authenticate(&headers(&auth), &conn()).await.unwrap();
        clock.set(t(2));
        let err = chain
            .authenticate(&headers(&auth), &conn())
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::Unauthenticated { .. }));
    }

    #[tokio::test]
    async fn only_prefixed_tokens_are_looked_up_and_a_new_token_works_at_once() {
        let clock = Arc::new(crate::clock::ManualClock::new(t(0)));
        let (chain, store, _dir) = stored_chain(clock).await;
        // A stored hash of a token without the prefix is never looked up.
        create(&store, "plain-token", None).await;
        assert!(
            chain
                .authenticate(&headers("Bearer plain-token"), &conn())
                .await
                .is_err()
        );
        // Unknown, then created: no negative caching.
        let token = holdpoint_store::generate_token().unwrap();
        let auth = format!("Bearer {token}");
        assert!(chain.authenticate(&headers(&auth), &conn()).await.is_err());
        create(&store, &token, None).await;
        assert!(chain.authenticate(&headers(&auth), &conn()).await.is_ok());
    }
}
