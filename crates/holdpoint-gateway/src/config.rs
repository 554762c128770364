//! Typed gateway configuration: the YAML file `holdpoint serve --config` reads.
//!
//! Every struct rejects unknown keys (`deny_unknown_fields`) so a typo is an error, never a silently
//! ignored setting. [`Config::load`] parses (with line numbers in errors) and then runs
//! [`Config::validate`], which checks what serde cannot (files exist, values in range, hashes well
//! formed). The commented reference is `examples/holdpoint.yaml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the data-path listener (TLS, HTTP/1.1 and HTTP/2).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener (TLS): `/healthz`, `/readyz`, `/metrics`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Directory for generated certificates and the embedded store.
    pub data_dir: PathBuf,
    /// Serving certificate; when absent a CA and serving certificate are generated in `data_dir`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The Kubernetes API server the gateway fronts.
    pub upstream: UpstreamConfig,
    /// How callers prove who they are.
    #[serde(default)]
    pub authentication: AuthenticationConfig,
    /// Size limits and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// Where state lives (stored tokens, the freeze, approvals).
    #[serde(default)]
    pub store: StoreConfig,
    /// The admin listener's reviewer API: who administers, and its URL as callers see it.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Which policy decides allow, deny or hold.
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// The reviewer API on the admin listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Users who may see every approval and switch the freeze.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups whose members may see every approval and switch the freeze.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The admin listener's URL as callers and reviewers reach it (shown in the message of a
    /// held request). Default: `https://<admin_listen>`.
    #[serde(default)]
    pub url: Option<String>,
}

/// Where the policy comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// A policy file (see examples/policy.yaml), reloaded when it changes and on SIGHUP. Absent:
    /// the embedded default policy for AI agents.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// The store every replica shares.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (one gateway) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (several
    /// replicas share it). Default: `sqlite://<data_dir>/holdpoint.db`.
    #[serde(default)]
    pub url: Option<String>,
}

/// Never shows a password in the URL.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .finish()
    }
}

/// `scheme://user:secret@host/...` becomes `scheme://user:***@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A serving certificate given by files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The upstream cluster, reached with a kubeconfig.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Path of a kubeconfig holding the gateway's own credential.
    pub kubeconfig: PathBuf,
    /// Context to use; the kubeconfig's current context when absent.
    #[serde(default)]
    pub context: Option<String>,
}

/// The authenticator chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationConfig {
    /// Static bearer tokens, stored only as SHA-256 hashes.
    #[serde(default)]
    pub static_tokens: Vec<StaticTokenConfig>,
}

/// One static bearer token: its hash and the identity it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenConfig {
    /// Lowercase hex SHA-256 of the token (64 characters). The token itself is never stored.
    pub sha256: String,
    /// Username the token authenticates as.
    pub user: String,
    /// Groups of that user.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Optional uid.
    #[serde(default)]
    pub uid: Option<String>,
}

/// Limits that protect the listener and the upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted (the apiserver's own limit is 3 MiB).
    #[serde(default = "default_max_body")]
    pub max_request_body_bytes: u64,
    /// Time a client has to send a complete request head.
    #[serde(default = "default_header_timeout", deserialize_with = "de_duration")]
    pub header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed gracefully (HTTP/1.1
    /// and HTTP/2). Long-running responses (watch, follow, exec) count as in progress. For
    /// HTTP/1.1 an idle keep-alive connection is also bounded by `header_read_timeout`, which
    /// runs while the gateway waits for the next request head.
    #[serde(default = "default_idle_timeout", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Time a client has to finish the TLS handshake.
    #[serde(
        default = "default_handshake_timeout",
        deserialize_with = "de_duration"
    )]
    pub tls_handshake_timeout: Duration,
    /// Time allowed to connect to the upstream and receive its response head. Long-running
    /// responses (watch, follow, exec) are not cut once their head has arrived.
    #[serde(default = "default_upstream_timeout", deserialize_with = "de_duration")]
    pub upstream_response_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: default_max_body(),
            header_read_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            tls_handshake_timeout: default_handshake_timeout(),
            upstream_response_timeout: default_upstream_timeout(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8444))
}
fn default_max_body() -> u64 {
    3 * 1024 * 1024
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Parses `"10s"`, `"1m 30s"`, `"PT10S"` (jiff's friendly and ISO 8601 formats).
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Parses a human duration such as `10s`, `5m`, `1h 30m` or ISO 8601 `PT10S`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("duration {text:?} must not be negative"))
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML did not parse into the schema (unknown key, wrong type, ...).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// The values parsed but do not make sense together.
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths inside it are taken relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        if let Some(base) = path.parent() {
            config.resolve_relative_paths(base);
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML text without validating.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// The store URL: `store.url`, or SQLite in `data_dir`.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("holdpoint.db").display()),
        }
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.upstream.kubeconfig);
        if let Some(file) = &mut self.policy.file {
            fix(file);
        }
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
        }
        if let Some(url) = &mut self.store.url
            && let Some(path) = url.strip_prefix("sqlite://")
            && !path.is_empty()
            && !path.starts_with('/')
            && !path.starts_with(':')
        {
            *url = format!("sqlite://{}", base.join(path).display());
        }
    }

    /// Checks what the schema cannot express. Collects every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            problems.push(format!(
                "listen and admin_listen must differ (both {})",
                self.listen
            ));
        }
        if !self.upstream.kubeconfig.is_file() {
            problems.push(format!(
                "upstream.kubeconfig {} is not a readable file",
                self.upstream.kubeconfig.display()
            ));
        }
        if let Some(tls) = &self.tls {
            for (what, p) in [
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if !p.is_file() {
                    problems.push(format!("{what} {} is not a readable file", p.display()));
                }
            }
        }
        if let Some(url) = &self.store.url {
            let ok = ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                problems.push("store.url must start with sqlite:// or postgres://".into());
            }
        }
        if self.limits.max_request_body_bytes == 0 {
            problems.push("limits.max_request_body_bytes must be positive".into());
        }
        for (field, d) in [
            (
                "limits.header_read_timeout",
                self.limits.header_read_timeout,
            ),
            ("limits.idle_timeout", self.limits.idle_timeout),
            (
                "limits.tls_handshake_timeout",
                self.limits.tls_handshake_timeout,
            ),
            (
                "limits.upstream_response_timeout",
                self.limits.upstream_response_timeout,
            ),
        ] {
            if d.is_zero() {
                problems.push(format!("{field} must be positive"));
            }
        }
        for (i, t) in self.authentication.static_tokens.iter().enumerate() {
            let ok = t.sha256.len() == 64
                && t.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                problems.push(format!(
                    "authentication.static_tokens[{i}].sha256 must be 64 lowercase hex characters"
                ));
            }
            if t.user.is_empty() {
                problems.push(format!(
                    "authentication.static_tokens[{i}].user must not be empty"
                ));
            }
        }
        if let Some(file) = &self.policy.file
            && let Err(e) = crate::phases::decide::load_policy_file(file)
        {
            problems.push(format!("policy.file: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "data_dir: /tmp/x\nupstream:\n  kubeconfig: /nonexistent\n";

    #[test]
    fn defaults_fill_in() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.limits.max_request_body_bytes, 3 * 1024 * 1024);
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_are_rejected_with_location() {
        let err = Config::from_yaml(&format!("{MINIMAL}listne: 1.2.3.4:5\n")).unwrap_err();
        assert!(err.contains("listne"), "{err}");
        let err = Config::from_yaml("data_dir: /x\nupstream:\n  kubeconfig: /k\n  contxt: a\n")
            .unwrap_err();
        assert!(err.contains("contxt"), "{err}");
        assert!(err.contains('4'), "line number expected in {err}");
    }

    #[test]
    fn durations_parse_friendly_and_iso() {
        let c = Config::from_yaml(&format!(
            "{MINIMAL}limits:\n  header_read_timeout: 1m 30s\n  tls_handshake_timeout: PT5S\n"
        ))
        .unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(90));
        assert_eq!(c.limits.tls_handshake_timeout, Duration::from_secs(5));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn store_url_defaults_to_sqlite_in_data_dir_and_hides_passwords() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(c.store_url(), "sqlite:///tmp/x/holdpoint.db");
        let c = Config::from_yaml(&format!(
            "{MINIMAL}store:\n  url: postgres://hp:hunter2@db:5432/holdpoint\n"
        ))
        .unwrap();
        assert_eq!(c.store_url(), "postgres://hp:hunter2@db:5432/holdpoint");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("postgres://hp:***@db:5432/holdpoint"), "{dbg}");
        let c = Config::from_yaml(&format!("{MINIMAL}store:\n  url: mysql://x\n")).unwrap();
        let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
            panic!("expected Invalid");
        };
        assert!(
            problems.iter().any(|p| p.contains("store.url")),
            "{problems:?}"
        );
        let err = Config::from_yaml(&format!("{MINIMAL}store:\n  uri: x\n")).unwrap_err();
        assert!(err.contains("uri"), "{err}");
    }

    #[test]
    fn validate_collects_every_problem() {
        let c = Config::from_yaml(
            "data_dir: /x\nlisten: 127.0.0.1:1\nadmin_listen: 127.0.0.1:1\nupstream:\n  kubeconfig: /nonexistent\nauthentication:\n  static_tokens:\n    - sha256: XYZ\n      user: ''\n",
        )
        .unwrap();
        let ConfigError::Invalid(problems) = c.validate().unwrap_err() else {
            panic!("expected Invalid");
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn policy_file_is_validated_and_resolved_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), "").unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            "rules: []\ndefault: {action: allow}\nunknown: 1\n",
        )
        .unwrap();
        let cfg = dir.path().join("holdpoint.yaml");
        std::fs::write(
            &cfg,
            "data_dir: data\nupstream:\n  kubeconfig: kubeconfig\npolicy:\n  file: policy.yaml\n",
        )
        .unwrap();
        let err = Config::load(&cfg).unwrap_err().to_string();
        assert!(err.contains("policy.file"), "{err}");
        assert!(err.contains("unknown"), "{err}");
        std::fs::write(
            dir.path().join("policy.yaml"),
            "rules: []\ndefault: {action: allow}\n",
        )
        .unwrap();
        let c = Config::load(&cfg).unwrap();
        assert_eq!(c.policy.file, Some(dir.path().join("policy.yaml")));
        // absent: the embedded default policy
        assert_eq!(Config::from_yaml(MINIMAL).unwrap().policy.file, None);
        let err = Config::from_yaml(&format!("{MINIMAL}policy:\n  fiel: x\n")).unwrap_err();
        assert!(err.contains("fiel"), "{err}");
    }
}
