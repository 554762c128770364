//! The authenticate phase: turns the caller's credential into an [`Identity`].
//!
//! Authenticators form a chain tried in order; the first that recognises the credential decides.
//! An authenticator answers `Ok(None)` when the credential is not its kind, so the next one may
//! try. This issue ships static bearer tokens (stored only as SHA-256 hashes, compared in constant
//! time); OIDC, service-account tokens and client certificates plug in here.

use std::net::SocketAddr;

use futures::future::BoxFuture;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::StaticTokenConfig;
use crate::error::GatewayError;
use crate::identity::{Identity, Secret};

/// What the connection itself tells about the caller.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The direct peer.
    pub peer: SocketAddr,
    /// The client certificate chain presented in the TLS handshake, leaf first.
    pub client_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// The credential a request carries.
#[derive(Debug)]
pub enum Credential {
    /// `Authorization: Bearer ...`
    Bearer(Secret),
    /// Nothing usable.
    None,
}

impl Credential {
    /// Extracts the credential from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Self::None;
        };
        let Ok(text) = value.to_str() else {
            return Self::None;
        };
        let mut parts = text.splitn(2, ' ');
        match (parts.next(), parts.next()) {
            (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
                let token = token.trim();
                if token.is_empty() {
                    Self::None
                } else {
                    Self::Bearer(Secret::new(token))
                }
            }
            _ => Self::None,
        }
    }

    /// The kind of credential, for messages (never its contents).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "bearer token",
            Self::None => "request without credentials",
        }
    }
}

/// One authenticator of the chain.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// `Ok(Some)` authenticated, `Ok(None)` not this authenticator's kind of credential,
    /// `Err` recognised but refused.
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
        conn: &'a ConnectionInfo,
    ) -> BoxFuture<'a, Result<Option<Identity>, GatewayError>>;
}

/// The ordered chain of authenticators.
#[derive(Debug, Default)]
pub struct AuthChain {
    authenticators: Vec<Box<dyn Authenticator>>,
}

impl AuthChain {
    /// A chain of the given authenticators, tried in order.
    pub fn new(authenticators: Vec<Box<dyn Authenticator>>) -> Self {
        Self { authenticators }
    }

    /// Runs the chain. A request no authenticator recognises is refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: &ConnectionInfo,
    ) -> Result<Identity, GatewayError> {
        let credential = Credential::from_headers(headers);
        for a in &self.authenticators {
            if let Some(identity) = a.authenticate(&credential, conn).await? {
                return Ok(identity);
            }
        }
        Err(GatewayError::Unauthenticated {
            kind: credential.kind(),
        })
    }
}

/// Static bearer tokens from the config, held only as SHA-256 hashes.
#[derive(Debug)]
pub struct StaticTokens {
    entries: Vec<([u8; 32], Identity)>,
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
        }
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
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
