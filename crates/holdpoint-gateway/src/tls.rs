//! Serving TLS: the certificate callers verify, and the rustls server configuration.
//!
//! With no certificate configured, the gateway creates a CA and a serving certificate (for
//! `localhost`, `127.0.0.1`, `::1` and the configured extra names) in its data directory on first
//! start and reuses them afterwards, so kubeconfigs handed out keep working across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Errors while preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// PEM content was not a certificate or key.
    #[error("{path}: invalid PEM: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The serving identity: certificate chain, key, and the CA that callers should trust.
#[derive(Debug)]
pub struct ServingCert {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key (its `Debug` output is redacted by rustls).
    pub key: PrivateKeyDer<'static>,
    /// PEM of the CA that signed the chain (generated CA, or the configured chain's last cert).
    pub ca_pem: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    Ok(())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no certificate found".into(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl ServingCert {
    /// Loads the configured certificate, or creates/reuses one in `data_dir`.
    pub fn load_or_create(
        tls: Option<&TlsConfig>,
        data_dir: &Path,
        extra_names: &[String],
    ) -> Result<Self, TlsError> {
        if let Some(tls) = tls {
            let chain = read_chain(&tls.cert_file)?;
            let key = read_key(&tls.key_file)?;
            let ca_pem = to_pem(chain.last().unwrap_or(&chain[0]));
            return Ok(Self { chain, key, ca_pem });
        }
        let dir = data_dir.join("tls");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (crt, key) = (dir.join("serving.crt"), dir.join("serving.key"));
        if !(ca_crt.is_file() && crt.is_file() && key.is_file()) {
            generate(&ca_crt, &ca_key, &crt, &key, extra_names)?;
        }
        let ca_pem = std::fs::read_to_string(&ca_crt).map_err(io_err(&ca_crt))?;
        Ok(Self {
            chain: read_chain(&crt)?,
            key: read_key(&key)?,
            ca_pem,
        })
    }

    /// The rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN), without client
    /// certificates.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config_with_client_ca(None)
    }

    /// The rustls server configuration; with `client_ca`, the handshake asks for a client
    /// certificate and verifies one if presented against the CAs in that PEM bundle (a
    /// certificate from another CA, expired, or not for client auth fails the handshake). A
    /// client without a certificate is still accepted and authenticates with a bearer token.
    pub fn server_config_with_client_ca(
        &self,
        client_ca: Option<&Path>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_chain(path)? {
                    roots.add(cert)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Pem {
                    path: path.to_owned(),
                    message: format!("client CA bundle: {e}"),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn generate(
    ca_crt: &Path,
    ca_key_path: &Path,
    crt: &Path,
    key_path: &Path,
    extra_names: &[String],
) -> Result<(), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "holdpoint-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra_names.iter().cloned());
    let serving_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "holdpoint");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = Issuer::new(ca_params, &ca_key);
    let serving = params.signed_by(&serving_key, &issuer)?;

    write_private(ca_key_path, &ca_key.serialize_pem())?;
    write_private(key_path, &serving_key.serialize_pem())?;
    std::fs::write(crt, serving.pem()).map_err(io_err(crt))?;
    std::fs::write(ca_crt, ca_cert.pem()).map_err(io_err(ca_crt))?;
    Ok(())
}

/// A TLS client configuration that trusts the PEM CAs in `ca_file`, or the system roots when
/// absent (OIDC issuers, the audit webhook).
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificate to verify the server".into());
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServingCert::load_or_create(None, dir.path(), &[]).unwrap();
        let second = ServingCert::load_or_create(None, dir.path(), &[]).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.chain, second.chain);
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        first.server_config().unwrap();
    }
}
