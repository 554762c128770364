//! TLS client certificates, as the apiserver reads them: the subject's CN is the username and
//! each O entry is a group.
//!
//! The chain was already verified during the handshake (`tls.rs` builds a rustls
//! `WebPkiClientVerifier` from `authentication.client_certificates.ca_file`; a certificate from
//! any other CA, expired, or without the clientAuth usage fails the handshake). This
//! authenticator only maps the verified leaf to an [`Identity`]. A connection without a
//! certificate is `Ok(None)`, so the request's bearer token is tried next. When a connection has
//! a certificate, it decides (as in the apiserver, where the x509 authenticator runs before the
//! token authenticators).

use futures::future::BoxFuture;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Authenticator, ConnectionInfo, Credential};
use crate::error::GatewayError;
use crate::identity::Identity;

/// The `authenticator` field of identities this module produces.
pub const AUTHENTICATOR: &str = "x509";
const KIND: &str = "client certificate";

/// Maps verified client certificates to identities.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCertificates;

/// The identity a certificate (DER) stands for: CN as username, O entries as groups. `None`
/// when the certificate does not parse, has no CN, more than one CN (ambiguous: refused rather
/// than guessed), or an empty or non-UTF-8 CN or O.
pub fn identity_from_der(der: &[u8]) -> Option<Identity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let mut cns = subject.iter_common_name();
    let username = cns.next()?.as_str().ok()?.to_owned();
    if cns.next().is_some() || username.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().ok().filter(|s| !s.is_empty()).map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    Some(Identity {
        username,
        groups,
        uid: None,
        extra: Default::default(),
        authenticator: AUTHENTICATOR.into(),
    })
}

impl Authenticator for ClientCertificates {
    fn authenticate<'a>(
        &'a self,
        _credential: &'a Credential,
        conn: &'a ConnectionInfo,
    ) -> BoxFuture<'a, Result<Option<Identity>, GatewayError>> {
        Box::pin(async move {
            let Some(leaf) = conn.client_certs.first() else {
                return Ok(None);
            };
            identity_from_der(leaf.as_ref())
                .map(Some)
                .ok_or(GatewayError::Unauthenticated { kind: KIND })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    /// rcgen keeps one value per attribute type; a custom type with the same OID adds a second.
    fn second_o() -> DnType {
        DnType::CustomDnType(vec![2, 5, 4, 10])
    }
    fn second_cn() -> DnType {
        DnType::CustomDnType(vec![2, 5, 4, 3])
    }

    fn cert(dn: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn conn(der: Vec<u8>) -> ConnectionInfo {
        ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: vec![der.into()],
        }
    }

    #[tokio::test]
    async fn cn_is_the_username_and_o_entries_are_groups() {
        let der = cert(&[
            (DnType::CommonName, "alice"),
            (DnType::OrganizationName, "devs"),
            (second_o(), "reviewers"),
        ]);
        let id = ClientCertificates
            .authenticate(&Credential::None, &conn(der))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(id.groups, ["devs", "reviewers"]);
        assert_eq!(id.authenticator, "x509");
        assert!(id.uid.is_none() && id.extra.is_empty());
    }

    #[tokio::test]
    async fn no_certificate_is_not_this_authenticators_kind() {
        let c = ConnectionInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: vec![],
        };
        assert!(
            ClientCertificates
                .authenticate(&Credential::None, &c)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn certificates_without_a_single_cn_are_refused() {
        for der in [
            cert(&[(DnType::OrganizationName, "system:masters")]),
            cert(&[(DnType::CommonName, "")]),
            cert(&[(DnType::CommonName, "alice"), (second_cn(), "system:admin")]),
            b"not a certificate".to_vec(),
        ] {
            let err = ClientCertificates
                .authenticate(&Credential::None, &conn(der))
                .await
                .unwrap_err();
            assert!(matches!(err, GatewayError::Unauthenticated { kind } if kind == KIND));
        }
    }
}
