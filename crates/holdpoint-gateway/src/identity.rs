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
    /// Which authenticator produced this identity (`static-token`, `oidc:<issuer>`, ...).
    pub authenticator: String,
}

impl Identity {
    /// The `Impersonate-*` headers that make the upstream see this identity.
    pub fn impersonation_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        let mut push = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.push((name, v));
            }
        };
        push(HeaderName::from_static("impersonate-user"), &self.username);
        for g in &self.groups {
            push(HeaderName::from_static("impersonate-group"), g);
        }
        if let Some(uid) = &self.uid {
            push(HeaderName::from_static("impersonate-uid"), uid);
        }
        for (key, values) in &self.extra {
            let encoded = percent_encode_extra_key(key);
            if let Ok(name) =
                HeaderName::from_bytes(format!("impersonate-extra-{encoded}").as_bytes())
            {
                for v in values {
                    push(name.clone(), v);
                }
            }
        }
        out
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
        let h = id.impersonation_headers();
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
    }
}
