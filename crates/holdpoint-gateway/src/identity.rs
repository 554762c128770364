//! Who is calling: the identity an authenticator produces, and a wrapper that keeps credentials
//! out of logs and `Debug` output.

use std::collections::BTreeMap;
use std::fmt;

use http::{HeaderName, HeaderValue};

/// An authenticated caller, as policy, approvals and audit see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// Username (`system:serviceaccount:ns:name` for service accounts).
    pub username: String,
    /// Group memberships.
    pub groups: Vec<String>,
    /// Optional stable id.
    pub uid: Option<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
    /// Which authenticator produced this identity (`static-token`, `oidc:<issuer>`,
    /// `serviceaccount`, `x509`).
    pub authenticator: String,
}

impl Identity {
    /// The `Impersonate-*` headers that make the upstream see this identity: `Impersonate-User`,
    /// one `Impersonate-Group` per group, `Impersonate-Uid` when there is a uid, and one
    /// `Impersonate-Extra-<key>` per extra value (the key percent-encoded as client-go does).
    ///
    /// Fails, rather than leaving a header out, when a value cannot be carried in an HTTP header
    /// (control characters) or the username is empty: a missing `Impersonate-User` would send the
    /// request as the gateway's own, more powerful identity. UTF-8 is sent as raw bytes, which the
    /// apiserver reads as UTF-8.
    pub fn impersonation_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        if self.username.is_empty() {
            return Err("the username is empty".into());
        }
        let value = |what: &str, v: &str| {
            HeaderValue::from_bytes(v.as_bytes())
                .map_err(|_| format!("the {what} contains characters an HTTP header cannot carry"))
        };
        let mut out = Vec::with_capacity(2 + self.groups.len() + self.extra.len());
        out.push((
            HeaderName::from_static("impersonate-user"),
            value("username", &self.username)?,
        ));
        for g in &self.groups {
            out.push((
                HeaderName::from_static("impersonate-group"),
                value("group", g)?,
            ));
        }
        if let Some(uid) = &self.uid {
            out.push((
                HeaderName::from_static("impersonate-uid"),
                value("uid", uid)?,
            ));
        }
        for (key, values) in &self.extra {
            let encoded = percent_encode_extra_key(key);
            let name = HeaderName::from_bytes(format!("impersonate-extra-{encoded}").as_bytes())
                .map_err(|_| "an extra key cannot be carried in an HTTP header".to_string())?;
            for v in values {
                out.push((name.clone(), value("extra value", v)?));
            }
        }
        Ok(out)
    }
}

/// Extra keys are percent-encoded in header names, as client-go does.
fn percent_encode_extra_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.to_ascii_lowercase().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A credential or other secret string. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself: call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn impersonation_headers_cover_user_groups_uid_extra() {
        let id = Identity {
            username: "alice".into(),
            groups: vec!["a".into(), "b".into()],
            uid: Some("42".into()),
            extra: BTreeMap::from([("Scopes/x".into(), vec!["read".into()])]),
            authenticator: "static-token".into(),
        };
        let h = id.impersonation_headers().unwrap();
        let names: Vec<_> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "impersonate-user",
                "impersonate-group",
                "impersonate-group",
                "impersonate-uid",
                "impersonate-extra-scopes%2fx"
            ]
        );
        let values: Vec<_> = h.iter().map(|(_, v)| v.to_str().unwrap()).collect();
        assert_eq!(values, ["alice", "a", "b", "42", "read"]);
    }

    #[test]
    fn identities_that_headers_cannot_carry_are_refused_not_truncated() {
        let base = Identity {
            username: "alice".into(),
            groups: vec![],
            uid: None,
            extra: BTreeMap::new(),
            authenticator: "oidc:x".into(),
        };
        let utf8 = Identity {
            username: "Zoë".into(),
            ..base.clone()
        };
        let h = utf8.impersonation_headers().unwrap();
        assert_eq!(h[0].1.as_bytes(), "Zoë".as_bytes());
        for bad in [
            Identity {
                username: String::new(),
                ..base.clone()
            },
            Identity {
                username: "alice\r\nImpersonate-Group: system:masters".into(),
                ..base.clone()
            },
            Identity {
                groups: vec!["ok".into(), "bad\n".into()],
                ..base.clone()
            },
            Identity {
                extra: BTreeMap::from([("k".into(), vec!["\0".into()])]),
                ..base.clone()
            },
        ] {
            assert!(bad.impersonation_headers().is_err(), "{bad:?}");
        }
    }
}
