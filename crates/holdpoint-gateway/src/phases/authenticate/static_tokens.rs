//! Static bearer tokens: held only as SHA-256 hashes, compared in constant time.

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Authenticator, ConnectionInfo, Credential};
use crate::config::StaticTokenConfig;
use crate::error::GatewayError;
use crate::identity::Identity;

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
}
