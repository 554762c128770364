//! Authentication of the emulator's callers: the admin bearer token and service-account tokens
//! minted by TokenRequest (HS256-signed JWTs with the apiserver's claims), plus impersonation
//! headers from the admin.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Issuer claim of minted tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User name.
    pub username: String,
    /// UID.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// The admin.
    pub fn admin() -> Self {
        Self {
            username: "kubernetes-admin".into(),
            uid: String::new(),
            groups: vec![
                "kubeadm:cluster-admins".into(),
                "system:authenticated".into(),
            ],
            extra: BTreeMap::new(),
        }
    }

    /// The `UserInfo` object.
    pub fn to_user_info(&self) -> Value {
        let mut v = json!({"username": self.username});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v["groups"] = json!(self.groups);
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Claims of a minted service-account token.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// Namespace.
    pub namespace: String,
    /// Service account name.
    pub name: String,
    /// Service account UID.
    pub sa_uid: String,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Token ID.
    pub jti: String,
    /// Bound object, if any.
    pub bound: Option<Value>,
}

/// Signs and verifies tokens.
#[derive(Debug, Clone)]
pub struct TokenSigner {
    key: [u8; 32],
}

impl TokenSigner {
    /// A signer with a random key.
    pub fn random() -> Self {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(a.as_bytes());
        key[16..].copy_from_slice(b.as_bytes());
        Self { key }
    }

    /// Mints a JWT.
    pub fn mint(&self, c: &TokenClaims, now: i64) -> String {
        let header = json!({"alg": "HS256", "kid": "kube-emulator"});
        let mut k8s = json!({
            "namespace": c.namespace,
            "serviceaccount": {"name": c.name, "uid": c.sa_uid},
        });
        if let Some(b) = &c.bound {
            k8s[b["kind"].as_str().unwrap_or("pod").to_ascii_lowercase()] =
                json!({"name": b["name"], "uid": b["uid"]});
        }
        let claims = json!({
            "aud": c.audiences,
            "exp": c.exp,
            "iat": now,
            "iss": ISSUER,
            "jti": c.jti,
            "kubernetes.io": k8s,
            "nbf": now,
            "sub": format!("system:serviceaccount:{}:{}", c.namespace, c.name),
        });
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{h}.{p}");
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Verifies signature and expiry; returns the claims.
    pub fn verify(&self, token: &str, now: i64) -> Option<TokenClaims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expect = hmac_sha256(&self.key, format!("{h}.{p}").as_bytes());
        let got = URL_SAFE_NO_PAD.decode(s).ok()?;
        if got.len() != 32
            || got
                .iter()
                .zip(expect.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return None;
        }
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        let exp = claims["exp"].as_i64()?;
        if exp <= now {
            return None;
        }
        let k8s = &claims["kubernetes.io"];
        Some(TokenClaims {
            namespace: k8s["namespace"].as_str()?.to_string(),
            name: k8s["serviceaccount"]["name"].as_str()?.to_string(),
            sa_uid: k8s["serviceaccount"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            audiences: claims["aud"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            exp,
            jti: claims["jti"].as_str().unwrap_or_default().to_string(),
            bound: None,
        })
    }
}

/// The identity a verified service-account token stands for.
pub fn sa_identity(c: &TokenClaims) -> Identity {
    let mut extra = BTreeMap::new();
    extra.insert(
        "authentication.kubernetes.io/credential-id".to_string(),
        vec![format!("JTI={}", c.jti)],
    );
    Identity {
        username: format!("system:serviceaccount:{}:{}", c.namespace, c.name),
        uid: c.sa_uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", c.namespace),
            "system:authenticated".into(),
        ],
        extra,
    }
}

/// Applies `Impersonate-*` headers. Returns `None` when there are none.
pub fn impersonated(headers: &http::HeaderMap) -> Option<Identity> {
    let user = headers.get("impersonate-user")?.to_str().ok()?.to_string();
    let mut groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    if !groups.iter().any(|g| g == "system:authenticated") && user != "system:anonymous" {
        groups.push("system:authenticated".into());
    }
    let uid = headers
        .get("impersonate-uid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, v) in headers {
        if let Some(k) = name.as_str().strip_prefix("impersonate-extra-") {
            let k = percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .to_string();
            if let Ok(v) = v.to_str() {
                extra.entry(k).or_default().push(v.to_string());
            }
        }
    }
    Some(Identity {
        username: user,
        uid,
        groups,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_verify_roundtrip() {
        let s = TokenSigner::random();
        let c = TokenClaims {
            namespace: "demo".into(),
            name: "deployer".into(),
            sa_uid: "u".into(),
            audiences: vec!["a".into()],
            exp: 2_000,
            jti: "j".into(),
            bound: None,
        };
        let t = s.mint(&c, 1_000);
        assert_eq!(s.verify(&t, 1_500).unwrap().name, "deployer");
        assert!(s.verify(&t, 2_001).is_none());
        assert!(TokenSigner::random().verify(&t, 1_500).is_none());
    }
}
