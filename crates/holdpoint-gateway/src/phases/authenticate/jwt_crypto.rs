//! The signature verification behind `jsonwebtoken`, done by ring.
//!
//! `jsonwebtoken` parses tokens and keys but leaves the cryptography to a pluggable
//! [`CryptoProvider`]. Its built-in providers would pull in a second crypto stack (RustCrypto or
//! aws-lc); ring is already in the gateway (rustls uses it), is fast and audited, so this module
//! adapts ring's verifiers. Only verification of the asymmetric algorithms exists here: HMAC
//! (`HS*`) has no verifier at all, so even a caller that forgot the allow-list could not get a
//! token "signed" with a public key accepted. Signing is refused.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as rs;

/// The provider: ring verifiers, no signers, no JWK key utilities.
static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: ring_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes ring `jsonwebtoken`'s crypto for this process. Harmless when called again; when some
/// other provider was installed first, that one stays (both verify correctly).
pub fn install() {
    let _ = RING_PROVIDER.install_default();
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

enum Params {
    Rsa(&'static rs::RsaParameters),
    Other(&'static dyn rs::VerificationAlgorithm),
}

struct RingVerifier {
    algorithm: Algorithm,
    params: Params,
    key: DecodingKey,
}

fn ring_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let params = match algorithm {
        Algorithm::RS256 => Params::Rsa(&rs::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Params::Rsa(&rs::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Params::Rsa(&rs::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Params::Rsa(&rs::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Params::Rsa(&rs::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Params::Rsa(&rs::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => Params::Other(&rs::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Params::Other(&rs::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Params::Other(&rs::ED25519),
        // HMAC (and anything newer) has no verifier here.
        _ => {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
    };
    if key.family() != algorithm.family() || key.family() == AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        params,
        key: key.clone(),
    }))
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let ok = match (&self.params, self.key.kind()) {
            (Params::Rsa(p), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                rs::RsaPublicKeyComponents { n, e }.verify(p, msg, sig)
            }
            // A DER `RSAPublicKey` (PKCS#1), as `DecodingKey::from_rsa_der` holds it.
            (Params::Rsa(p), DecodingKeyKind::SecretOrDer(der)) => {
                rs::UnparsedPublicKey::new(*p, der).verify(msg, sig)
            }
            // EC: the uncompressed point; Ed25519: the 32 raw bytes.
            (Params::Other(a), DecodingKeyKind::SecretOrDer(raw)) => {
                rs::UnparsedPublicKey::new(*a, raw).verify(msg, sig)
            }
            (Params::Other(_), DecodingKeyKind::RsaModulusExponent { .. }) => {
                return Err(signature::Error::new());
            }
        };
        ok.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_has_no_verifier_and_keys_must_match_the_family() {
        let secret = DecodingKey::from_secret(b"public key bytes").unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert!(ring_verifier(&alg, &secret).is_err());
        }
        assert!(ring_verifier(&Algorithm::RS256, &secret).is_err());
        let ec = DecodingKey::from_ec_der(&[4; 65]);
        assert!(ring_verifier(&Algorithm::RS256, &ec).is_err());
        assert!(ring_verifier(&Algorithm::EdDSA, &ec).is_err());
        assert!(ring_verifier(&Algorithm::ES256, &ec).is_ok());
    }

    #[test]
    fn ed25519_signatures_verify_and_tampering_fails() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = rs::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = rs::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use rs::KeyPair;
        let key = DecodingKey::from_ed_der(pair.public_key().as_ref());
        let v = ring_verifier(&Algorithm::EdDSA, &key).unwrap();
        let sig = pair.sign(b"message").as_ref().to_vec();
        assert!(v.verify(b"message", &sig).is_ok());
        assert!(v.verify(b"messagf", &sig).is_err());
        assert_eq!(v.algorithm(), Algorithm::EdDSA);
    }
}
