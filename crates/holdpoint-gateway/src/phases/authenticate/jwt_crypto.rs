//! JWS signature verification with public keys parsed once, when the JWKS is loaded.
//!
//! `jsonwebtoken` reads the JWKS (`Jwk` -> `DecodingKey`); the signature check is done here, by
//! aws-lc-rs, because it can keep a parsed public key ([`ParsedPublicKey`]: for RSA the modulus
//! in Montgomery form, for EC the decoded point) and reuse it for every token. ring, which the
//! rest of the gateway uses for TLS, parses the key again on every verification: 19.7 µs per
//! RS256 token instead of 14-15 (docs/BENCHMARKS.md, "OIDC").
//!
//! Only the asymmetric JWS algorithms exist here. HMAC (`HS*`) has no verifier at all, so even a
//! configuration that listed it could not get a token "signed" with a public key accepted.

use std::fmt;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// A JWKS key, parsed once for each JWS algorithm it may verify.
pub(crate) struct VerifyingKey {
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<_> = self.parsed.iter().map(|(a, _)| *a).collect();
        f.debug_struct("VerifyingKey")
            .field("algorithms", &algs)
            .finish()
    }
}

/// aws-lc-rs' verification parameters for a JWS algorithm; `None` for HMAC (and anything else
/// that is not an asymmetric signature).
fn params(alg: Algorithm) -> Option<&'static dyn lc::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &lc::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &lc::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &lc::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &lc::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &lc::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &lc::ED25519,
        _ => return None,
    })
}

fn rsa_params(alg: Algorithm) -> Option<&'static lc::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &lc::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &lc::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &lc::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl VerifyingKey {
    /// Parses `key` for every algorithm of its family (only `only`, when the JWK names one).
    /// `None` when no algorithm can use it (an HMAC secret, a malformed key, an RSA modulus
    /// shorter than 2048 bits is refused later, at verification, by the parameters).
    pub(crate) fn new(key: &DecodingKey, only: Option<Algorithm>) -> Option<Self> {
        let parsed: Vec<_> = ASYMMETRIC
            .into_iter()
            .filter(|a| a.family() == key.family() && only.is_none_or(|o| o == *a))
            .filter_map(|alg| Some((alg, parse(key, alg)?)))
            .collect();
        (!parsed.is_empty()).then_some(Self { parsed })
    }

    /// Whether `signature` is `alg`'s valid signature of `signing_input` by this key.
    pub(crate) fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(signing_input, signature).is_ok())
    }
}

fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_params(alg)?)
            .ok(),
        // RSA: a DER `RSAPublicKey` (PKCS#1); EC: the uncompressed point; Ed25519: 32 raw bytes.
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(params(alg)?, bytes).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_secrets_have_no_verifier() {
        let secret = DecodingKey::from_secret(b"public key bytes").unwrap();
        assert!(VerifyingKey::new(&secret, None).is_none());
        assert!(VerifyingKey::new(&secret, Some(Algorithm::HS256)).is_none());
        assert!(params(Algorithm::HS256).is_none());
    }

    #[test]
    fn ed25519_signatures_verify_and_tampering_fails() {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key =
            VerifyingKey::new(&DecodingKey::from_ed_der(pair.public_key().as_ref()), None).unwrap();
        let sig = pair.sign(b"message").as_ref().to_vec();
        assert!(key.verify(Algorithm::EdDSA, b"message", &sig));
        assert!(!key.verify(Algorithm::EdDSA, b"messagf", &sig));
        // The key is not an RSA or EC key: other algorithms never verify with it.
        assert!(!key.verify(Algorithm::ES256, b"message", &sig));
    }

    #[test]
    fn a_key_named_for_one_algorithm_verifies_only_that_one() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let der = DecodingKey::from_ec_der(pair.public_key().as_ref());
        let sig = pair.sign(&rng, b"m").unwrap().as_ref().to_vec();
        let any = VerifyingKey::new(&der, None).unwrap();
        assert!(any.verify(Algorithm::ES256, b"m", &sig));
        assert!(!any.verify(Algorithm::ES384, b"m", &sig));
        assert!(VerifyingKey::new(&der, Some(Algorithm::ES384)).is_none());
        assert!(VerifyingKey::new(&der, Some(Algorithm::RS256)).is_none());
    }
}
