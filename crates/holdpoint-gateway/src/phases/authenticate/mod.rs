//! The authenticate phase: turns the caller's credential into an [`Identity`].
//!
//! Authenticators form a chain tried in order; the first that recognises the credential decides.
//! An authenticator answers `Ok(None)` when the credential is not its kind, so the next one may
//! try. The chain, in order: client certificates (`client_certs.rs`; a verified certificate on the
//! connection decides, as in the apiserver), static bearer tokens (`static_tokens.rs`, stored only
//! as SHA-256 hashes, compared in constant time), OIDC, then service-account tokens
//! (`service_accounts.rs`, checked by a cached TokenReview upstream).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock::Clock;
use crate::upstream::Upstream;

use crate::config::AuthenticationConfig;
use crate::error::GatewayError;
use crate::identity::{Identity, Secret};
use futures::future::BoxFuture;
use http::HeaderMap;

mod client_certs;
mod jwt_crypto;
mod oidc;
pub mod service_accounts;
mod static_tokens;

pub use client_certs::{ClientCertificates, identity_from_der};
pub use oidc::{FetchError, JwksFetcher, OidcAuthenticator, Refusal};
pub use service_accounts::{ServiceAccounts, TokenReviewer, UpstreamReviewer};
pub use static_tokens::{StaticTokens, token_sha256_hex};

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

/// What authenticators may need besides their own configuration.
#[derive(Debug, Clone)]
pub struct ChainDeps {
    /// The upstream API server, reached with the gateway's own credential (TokenReview).
    pub upstream: Upstream,
    /// The injected clock (token expiry, cache lifetimes).
    pub clock: Arc<dyn Clock>,
    /// The store (tokens created by `holdpoint token create`). `None` only in tests that need
    /// no stored state.
    pub store: Option<holdpoint_store::Store>,
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

    /// The chain the configuration describes. This is the one place where each configured
    /// authenticator is built and put in its place in the order. Nothing here does network I/O:
    /// authenticators that need a remote party (an OIDC issuer, the upstream's TokenReview)
    /// reach it lazily, so the gateway starts even while that party is down.
    pub fn from_config(config: &AuthenticationConfig, deps: &ChainDeps) -> Self {
        let mut authenticators: Vec<Box<dyn Authenticator>> = Vec::new();
        if config.client_certificates.is_some() {
            authenticators.push(Box::new(ClientCertificates));
        }
        // Static tokens from the config and from the store (always on when there is a store:
        // `holdpoint token create` adds tokens without a restart).
        if !config.static_tokens.is_empty() || deps.store.is_some() {
            let mut tokens = StaticTokens::new(&config.static_tokens);
            if let Some(store) = &deps.store {
                tokens = tokens.with_store(store.clone(), deps.clock.clone());
            }
            authenticators.push(Box::new(tokens));
        }
        if !config.oidc.is_empty() {
            authenticators.push(Box::new(OidcAuthenticator::new(
                &config.oidc,
                deps.clock.clone(),
            )));
        }
        // Service-account tokens after OIDC, and never a JWT of a configured OIDC issuer: those
        // are OIDC's to judge (a TokenReview could otherwise refuse, or spend an upstream call on,
        // a token OIDC accepts).
        if let Some(sa) = &config.service_accounts {
            let oidc_issuers: Vec<String> = config.oidc.iter().map(|o| o.issuer.clone()).collect();
            authenticators.push(Box::new(ServiceAccounts::new(
                sa,
                std::sync::Arc::new(UpstreamReviewer::new(deps.upstream.clone())),
                deps.clock.clone(),
                oidc_issuers,
            )));
        }
        Self::new(authenticators)
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
