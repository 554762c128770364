//! Typed gateway configuration: the YAML file `holdpoint serve --config` reads.
//!
//! Every struct rejects unknown keys (`deny_unknown_fields`) so a typo is an error, never a silently
//! ignored setting. [`Config::load`] parses (with line numbers in errors) and then runs
//! [`Config::validate`], which checks what serde cannot (files exist, values in range, hashes well
//! formed). The commented reference is `examples/holdpoint.yaml`.

use std::collections::BTreeMap;
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
    /// Threads serving data-path connections, each running its own single-threaded runtime
    /// with its own upstream connection pool (a connection and the upstream connections it
    /// uses stay on one thread, as in nginx and pingora); 0 (the default): one per CPU.
    #[serde(default)]
    pub data_threads: usize,
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub store: StoreConfig,
    /// The admin listener's reviewer API: who administers, and its URL as callers see it.
    #[serde(default)]
    pub admin: AdminConfig,
    /// This gateway's stable name among the replicas sharing a store (e.g. the pod name), kept
    /// with the approvals it is sending so that after a crash it (and only it) marks its
    /// unfinished sends `unknown`. Default: the host name.
    #[serde(default)]
    pub instance_name: Option<String>,
    /// Which policy decides allow, deny or hold.
    #[serde(default, deserialize_with = "null_as_default")]
    pub policy: PolicyConfig,
    /// Masking of secret values in responses (on by default, for everyone; policy `reveal`
    /// rules open kinds to named humans).
    #[serde(default, deserialize_with = "null_as_default")]
    pub mask: MaskConfig,
    /// The audit log: every request, reviewer and admin action, in the store.
    #[serde(default, deserialize_with = "null_as_default")]
    pub audit: AuditConfig,
}

/// The mask phase: what is masked in every response (see `holdpoint_mask`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Masking on (the default). `false` relays responses unmasked: for benchmarks and
    /// clusters that hold nothing secret, never for agents.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Env-var name fragments (case-insensitive substrings) whose literal `env[].value` is
    /// masked whatever the value, in pods and every pod template.
    #[serde(default = "default_env_name_patterns")]
    pub env_name_patterns: Vec<String>,
    /// The built-in credential detectors (curated from gitleaks): on by default.
    #[serde(default = "default_true")]
    pub builtin_detectors: bool,
    /// Extra text detectors: `{name, regex}`; a capture group named `secret` limits what is
    /// masked to that group.
    #[serde(default)]
    pub detectors: Vec<holdpoint_mask::CustomDetector>,
    /// Fields of named kinds (custom resources) whose values are always masked:
    /// `{name, kind, api_version?, fields: [spec.password, spec.items[*].token, data.*]}`.
    #[serde(default)]
    pub field_rules: Vec<holdpoint_mask::FieldRule>,
    /// Largest single JSON value held while masking (one list item, one watch event, a
    /// non-list object). Lists stream item by item, so this bounds memory per response; a
    /// larger value ends the response with an error (fail closed).
    #[serde(default = "default_mask_max_value_bytes")]
    pub max_value_bytes: u64,
    /// Longest incomplete text line (`pods/log`) held back waiting for its newline; a longer
    /// line is masked and sent in pieces.
    #[serde(default = "default_mask_max_line_bytes")]
    pub max_line_bytes: u64,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            env_name_patterns: default_env_name_patterns(),
            builtin_detectors: true,
            detectors: Vec::new(),
            field_rules: Vec::new(),
            max_value_bytes: default_mask_max_value_bytes(),
            max_line_bytes: default_mask_max_line_bytes(),
        }
    }
}

/// The audit log (`crate::audit`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record into the store (`false`: only the log line per request, for comparison runs).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// What happens to reads (get, list, watch) when the audit store cannot write. `refuse`
    /// (default): refused while the last write failed; `serve`: served, counted in
    /// `holdpoint_audit_unrecorded_reads_total` (the alarm); `wait`: every read waits until its
    /// record is durable, like a mutation. A mutation is always refused unless its record is
    /// durable first.
    #[serde(default)]
    pub reads: AuditReads,
    /// Longest request or response body stored (after masking); longer ones keep their length
    /// and SHA-256 and, when they can be cut safely (lines of a watch or log), their beginning.
    #[serde(default = "default_audit_max_body")]
    pub max_body_bytes: usize,
    /// A caller's requests without a session header belong to one session until it pauses
    /// this long.
    #[serde(default = "default_session_gap", deserialize_with = "de_duration")]
    pub session_gap: Duration,
    /// A signed checkpoint after this many events ...
    #[serde(default = "default_checkpoint_events")]
    pub checkpoint_every_events: u64,
    /// ... or after this long with new events.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "de_duration"
    )]
    pub checkpoint_interval: Duration,
    /// The Ed25519 key (PKCS#8 DER) that signs checkpoints; created when missing. Replicas
    /// sharing a store should share one key. Default: `<data_dir>/audit-signing.key`.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Most events written in one transaction (group commit).
    #[serde(default = "default_audit_batch")]
    pub max_batch: usize,
    /// How long a batch holding only events nobody waits for (reads) may wait for more events
    /// before it is written: fewer, larger transactions. A mutation's event is never delayed
    /// (it is written at once, with whatever is queued). `0s`: never wait.
    #[serde(
        default = "default_audit_batch_delay",
        deserialize_with = "de_duration"
    )]
    pub batch_delay: Duration,
    /// Most events waiting to be written; beyond it events of reads are dropped (and counted)
    /// and mutations refused.
    #[serde(default = "default_audit_queue")]
    pub max_queue: usize,
    /// Who may list, show and export sessions and events on the admin listener (besides
    /// `admin.users`/`admin.groups`).
    #[serde(default)]
    pub auditors: Principals,
    /// How long events are kept.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retention: RetentionConfig,
    /// Where events go besides the store.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sinks: SinksConfig,
}

/// Retention of the audit log (`audit.retention`): the oldest events are pruned when any limit
/// is passed; pruning signs a checkpoint of the last pruned event first and records itself in the
/// chain, so what remains still verifies.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events older than this are pruned (none: kept by age).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub max_age: Option<Duration>,
    /// At most this many events are kept.
    #[serde(default)]
    pub max_events: Option<u64>,
    /// At most this many bytes of events (event text and stored bodies, before the store's
    /// compression: the database holds several times less) are kept.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// How often the limits are checked.
    #[serde(
        default = "default_retention_interval",
        deserialize_with = "de_duration"
    )]
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age: None,
            max_events: None,
            max_bytes: None,
            interval: default_retention_interval(),
        }
    }
}

/// What a sink writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkFormat {
    /// Holdpoint's events (`holdpoint audit export --format jsonl`).
    #[default]
    Jsonl,
    /// Plain `audit.k8s.io/v1` Events.
    K8sAudit,
}

/// Sinks besides the store (`audit.sinks`). They read from the store, so a failing sink loses
/// nothing: it resumes where it stopped (its position is kept in the store).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// A JSON-lines file with rotation.
    #[serde(default)]
    pub file: Option<FileSinkConfig>,
    /// A webhook receiving batches.
    #[serde(default)]
    pub webhook: Option<WebhookSinkConfig>,
}

/// `audit.sinks.file`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file; rotated files are `PATH.1` (newest) .. `PATH.N`.
    pub path: PathBuf,
    /// Rotate when the file would grow past this.
    #[serde(default = "default_sink_file_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_sink_files")]
    pub max_files: usize,
    /// `jsonl` or `k8s-audit`.
    #[serde(default)]
    pub format: SinkFormat,
}

/// `audit.sinks.webhook`: batches POSTed as an `audit.k8s.io/v1` EventList (`k8s-audit`) or JSON
/// lines (`jsonl`), like the apiserver's webhook backend.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// `https://...` (or `http://` to a local collector).
    pub url: String,
    /// PEM CA bundle for the receiver; the system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Most events per request.
    #[serde(default = "default_sink_batch")]
    pub batch_max: usize,
    /// Time a request may take.
    #[serde(default = "default_sink_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// `k8s-audit` (default) or `jsonl`.
    #[serde(default = "default_webhook_format")]
    pub format: SinkFormat,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            reads: AuditReads::default(),
            max_body_bytes: default_audit_max_body(),
            session_gap: default_session_gap(),
            checkpoint_every_events: default_checkpoint_events(),
            checkpoint_interval: default_checkpoint_interval(),
            signing_key_file: None,
            max_batch: default_audit_batch(),
            batch_delay: default_audit_batch_delay(),
            max_queue: default_audit_queue(),
            auditors: Principals::default(),
            retention: RetentionConfig::default(),
            sinks: SinksConfig::default(),
        }
    }
}

impl MaskConfig {
    /// The masking engine's configuration.
    pub fn engine(&self) -> holdpoint_mask::MaskConfig {
        holdpoint_mask::MaskConfig {
            env_name_patterns: self.env_name_patterns.clone(),
            builtin_detectors: self.builtin_detectors,
            detectors: self.detectors.clone(),
            field_rules: self.field_rules.clone(),
        }
    }
}

impl AuditConfig {
    /// The checkpoint key file: `signing_key_file`, or `audit-signing.key` in `data_dir`.
    pub fn signing_key_path(&self, data_dir: &Path) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-signing.key"))
    }

    fn problems(&self, out: &mut Vec<String>) {
        if self.max_body_bytes == 0 {
            out.push("audit.max_body_bytes must be positive".into());
        }
        if self.session_gap.is_zero() {
            out.push("audit.session_gap must be positive".into());
        }
        if self.checkpoint_every_events == 0 {
            out.push("audit.checkpoint_every_events must be positive".into());
        }
        if self.checkpoint_interval.is_zero() {
            out.push("audit.checkpoint_interval must be positive".into());
        }
        if self.max_batch == 0 || self.max_batch > 10_000 {
            out.push("audit.max_batch must be between 1 and 10000".into());
        }
        if self.batch_delay > Duration::from_secs(1) {
            out.push("audit.batch_delay must be at most 1s".into());
        }
        if self.max_queue < self.max_batch {
            out.push("audit.max_queue must be at least audit.max_batch".into());
        }
        let r = &self.retention;
        if r.max_age.is_some_and(|a| a.is_zero())
            || r.max_events == Some(0)
            || r.max_bytes == Some(0)
        {
            out.push("audit.retention limits must be positive".into());
        }
        if r.interval.is_zero() {
            out.push("audit.retention.interval must be positive".into());
        }
        if let Some(f) = &self.sinks.file
            && (f.max_bytes == 0 || f.max_files == 0)
        {
            out.push("audit.sinks.file.max_bytes and max_files must be positive".into());
        }
        if let Some(w) = &self.sinks.webhook {
            let ok = w.url.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("https" | "http")) && u.authority().is_some()
            });
            if !ok {
                out.push("audit.sinks.webhook.url must be an https:// (or http://) URL".into());
            }
            if w.batch_max == 0 || w.timeout.is_zero() {
                out.push("audit.sinks.webhook.batch_max and timeout must be positive".into());
            }
            if let Some(ca) = &w.ca_file
                && !ca.is_file()
            {
                out.push(format!(
                    "audit.sinks.webhook.ca_file {} is not a readable file",
                    ca.display()
                ));
            }
        }
    }
}

fn default_env_name_patterns() -> Vec<String> {
    holdpoint_mask::config::DEFAULT_ENV_NAME_PATTERNS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}
fn default_mask_max_value_bytes() -> u64 {
    32 * 1024 * 1024
}
fn default_mask_max_line_bytes() -> u64 {
    64 * 1024
}

/// What reads do when the audit store cannot write (`audit.reads`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditReads {
    /// Refused while the audit store is failing.
    #[default]
    Refuse,
    /// Served, and counted as unrecorded (an alarm metric).
    Serve,
    /// Each read waits for its record to be durable.
    Wait,
}

/// Users and groups.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// Usernames.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
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
    /// How the caller's identity reaches the upstream. `true` (the default): every request carries
    /// `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-*` for the
    /// authenticated caller, so the apiserver's RBAC and audit see the real caller and the
    /// gateway's credential needs only `impersonate` rights (`examples/rbac-impersonate.yaml`).
    /// `false`: requests go as the gateway's own identity, so the gateway's credential needs every
    /// right any caller may use and the apiserver sees only the gateway
    /// (`examples/rbac-direct.yaml`). Caller-supplied `Impersonate-*` headers are dropped either way.
    #[serde(default = "default_true")]
    pub impersonate: bool,
}

/// The authenticator chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationConfig {
    /// Static bearer tokens, stored only as SHA-256 hashes.
    #[serde(default)]
    pub static_tokens: Vec<StaticTokenConfig>,
    /// Kubernetes service-account tokens, checked by a TokenReview sent upstream.
    #[serde(default)]
    pub service_accounts: Option<ServiceAccountsConfig>,
    /// TLS client certificates from a CA bundle (CN is the username, O entries the groups).
    #[serde(default)]
    pub client_certificates: Option<ClientCertificatesConfig>,
    /// OIDC issuers whose bearer JWTs are accepted (several may be configured; a token is
    /// matched to one by its `iss` claim).
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
}

/// Service-account tokens validated by the upstream's TokenReview API, with a bounded cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountsConfig {
    /// Audiences the token must be valid for (`spec.audiences` of the TokenReview). Empty: the
    /// apiserver's own audiences, i.e. tokens made for the Kubernetes API itself.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Longest time a successful review is reused. A cached success never outlives the token's
    /// own `exp` (read from the JWT payload).
    #[serde(default = "default_sa_cache_ttl", deserialize_with = "de_duration")]
    pub cache_ttl: Duration,
    /// How long a refused token stays refused without asking the upstream again.
    #[serde(
        default = "default_sa_negative_cache_ttl",
        deserialize_with = "de_duration"
    )]
    pub negative_cache_ttl: Duration,
    /// Most cached successes, and separately most cached refusals (so a flood of bad tokens
    /// cannot evict good ones); the oldest entry is evicted first.
    #[serde(default = "default_sa_max_cache_entries")]
    pub max_cache_entries: usize,
}

impl Default for ServiceAccountsConfig {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            cache_ttl: default_sa_cache_ttl(),
            negative_cache_ttl: default_sa_negative_cache_ttl(),
            max_cache_entries: default_sa_max_cache_entries(),
        }
    }
}

/// TLS client certificates: the data-path listener asks for one and accepts those issued by
/// `ca_file`; callers without a certificate still authenticate with bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificatesConfig {
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub ca_file: PathBuf,
}

/// The JWS algorithms an OIDC issuer may be allowed to use: asymmetric only (never `none`, never
/// HMAC, which would let anyone holding the public key sign).
pub const OIDC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// One trusted OIDC issuer, configured like the apiserver's `--oidc-*` flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer URL (`https://...`), compared exactly with the token's `iss` and the discovery
    /// document's `issuer`. Discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// The claim that holds the username.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Prefix for usernames. When absent: `"<issuer>#"` unless `username_claim` is `email`
    /// (apiserver semantics). `"-"` disables prefixing.
    #[serde(default)]
    pub username_prefix: Option<String>,
    /// The claim that holds the groups (a string or an array of strings). No groups when absent.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Prefix for every group (only with `groups_claim`).
    #[serde(default)]
    pub groups_prefix: Option<String>,
    /// The claim that holds the uid. The identity has no uid when absent.
    #[serde(default)]
    pub uid_claim: Option<String>,
    /// Claims that must be present with exactly these string values.
    #[serde(default)]
    pub required_claims: BTreeMap<String, String>,
    /// Allowed signing algorithms (from [`OIDC_ALGORITHMS`]).
    #[serde(default = "default_oidc_algorithms")]
    pub algorithms: Vec<String>,
    /// PEM CA bundle that verifies the issuer's TLS certificate; the system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`.
    #[serde(default = "default_oidc_leeway", deserialize_with = "de_duration")]
    pub leeway: Duration,
    /// The issuer's keys are fetched again on this schedule (once they were fetched at all).
    #[serde(
        default = "default_jwks_refresh_interval",
        deserialize_with = "de_duration"
    )]
    pub jwks_refresh_interval: Duration,
    /// A token signed by an unknown key triggers a refresh at most this often, so a flood of
    /// made-up key ids cannot hammer the issuer.
    #[serde(
        default = "default_jwks_min_refresh_interval",
        deserialize_with = "de_duration"
    )]
    pub jwks_min_refresh_interval: Duration,
}

fn default_username_claim() -> String {
    "sub".into()
}
fn default_oidc_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_oidc_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_jwks_refresh_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_jwks_min_refresh_interval() -> Duration {
    Duration::from_secs(10)
}

impl OidcIssuerConfig {
    /// The username prefix in effect (apiserver rules for the default and `"-"`).
    pub fn effective_username_prefix(&self) -> String {
        match self.username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(p) => p.to_owned(),
            None if self.username_claim == "email" => String::new(),
            None => format!("{}#", self.issuer),
        }
    }

    fn problems(&self, i: usize, out: &mut Vec<String>) {
        let at = format!("authentication.oidc[{i}]");
        match self.issuer.parse::<http::Uri>() {
            Ok(uri)
                if uri.scheme_str() == Some("https")
                    && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                    && uri.query().is_none() => {}
            _ => out.push(format!(
                "{at}.issuer must be an https:// URL without user info or query"
            )),
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            out.push(format!(
                "{at}.audiences must list at least one non-empty audience"
            ));
        }
        if self.username_claim.is_empty() {
            out.push(format!("{at}.username_claim must not be empty"));
        }
        if matches!(&self.groups_claim, Some(c) if c.is_empty()) {
            out.push(format!("{at}.groups_claim must not be empty"));
        }
        if self.groups_prefix.is_some() && self.groups_claim.is_none() {
            out.push(format!("{at}.groups_prefix needs groups_claim"));
        }
        if matches!(&self.uid_claim, Some(c) if c.is_empty()) {
            out.push(format!("{at}.uid_claim must not be empty"));
        }
        if self.required_claims.keys().any(String::is_empty) {
            out.push(format!(
                "{at}.required_claims must not have an empty claim name"
            ));
        }
        if self.algorithms.is_empty() {
            out.push(format!("{at}.algorithms must not be empty"));
        }
        for a in &self.algorithms {
            if !OIDC_ALGORITHMS.contains(&a.as_str()) {
                out.push(format!(
                    "{at}.algorithms: {a:?} is not allowed (only {})",
                    OIDC_ALGORITHMS.join(", ")
                ));
            }
        }
        if let Some(ca) = &self.ca_file {
            match std::fs::read(ca) {
                Ok(pem) => {
                    use rustls_pki_types::CertificateDer;
                    use rustls_pki_types::pem::PemObject;
                    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
                    if !matches!(certs, Ok(c) if !c.is_empty()) {
                        out.push(format!(
                            "{at}.ca_file {} holds no PEM certificate",
                            ca.display()
                        ));
                    }
                }
                Err(_) => out.push(format!(
                    "{at}.ca_file {} is not a readable file",
                    ca.display()
                )),
            }
        }
        if self.leeway > Duration::from_secs(300) {
            out.push(format!("{at}.leeway must be at most 5m"));
        }
        if self.jwks_min_refresh_interval.is_zero() {
            out.push(format!("{at}.jwks_min_refresh_interval must be positive"));
        }
        if self.jwks_refresh_interval < self.jwks_min_refresh_interval {
            out.push(format!(
                "{at}.jwks_refresh_interval must not be shorter than jwks_min_refresh_interval"
            ));
        }
    }
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

fn default_true() -> bool {
    true
}
fn default_audit_max_body() -> usize {
    256 * 1024
}
fn default_session_gap() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_checkpoint_events() -> u64 {
    1000
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_audit_batch() -> usize {
    512
}

fn default_audit_batch_delay() -> Duration {
    Duration::from_millis(10)
}
fn default_audit_queue() -> usize {
    100_000
}
fn default_retention_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_sink_file_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_sink_files() -> usize {
    5
}
fn default_sink_batch() -> usize {
    100
}
fn default_sink_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_webhook_format() -> SinkFormat {
    SinkFormat::K8sAudit
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| parse_duration(&t).map_err(serde::de::Error::custom))
        .transpose()
}
fn default_sa_cache_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_sa_negative_cache_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_sa_max_cache_entries() -> usize {
    10_000
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

/// A section whose keys are all commented out (`store:` followed only by comments) is YAML
/// `null`: read it as the section's defaults.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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

    /// The number of data-path threads: `data_threads`, or one per CPU.
    pub fn data_thread_count(&self) -> usize {
        match self.data_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// The instance name: `instance_name`, or the host name.
    pub fn instance_name(&self) -> String {
        self.instance_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "holdpoint".into())
        })
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
        if let Some(file) = &mut self.audit.signing_key_file {
            fix(file);
        }
        if let Some(f) = &mut self.audit.sinks.file {
            fix(&mut f.path);
        }
        if let Some(w) = &mut self.audit.sinks.webhook
            && let Some(ca) = &mut w.ca_file
        {
            fix(ca);
        }
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
        }
        for issuer in &mut self.authentication.oidc {
            if let Some(ca) = &mut issuer.ca_file {
                fix(ca);
            }
        }
        if let Some(cc) = &mut self.authentication.client_certificates {
            fix(&mut cc.ca_file);
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
        if self.data_threads > 1024 {
            problems.push("data_threads must be at most 1024 (0: one per CPU)".into());
        }
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
        if let Err(e) = self.mask.engine().validate() {
            problems.push(e.to_string());
        }
        if self.mask.max_value_bytes < 4096 {
            problems.push("mask.max_value_bytes must be at least 4096".into());
        }
        if self.mask.max_line_bytes < 256 {
            problems.push("mask.max_line_bytes must be at least 256".into());
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
        if let Some(sa) = &self.authentication.service_accounts {
            if sa.cache_ttl.is_zero() {
                problems.push("authentication.service_accounts.cache_ttl must be positive".into());
            }
            if sa.max_cache_entries == 0 {
                problems.push(
                    "authentication.service_accounts.max_cache_entries must be positive".into(),
                );
            }
            if sa.audiences.iter().any(String::is_empty) {
                problems.push(
                    "authentication.service_accounts.audiences must not contain empty strings"
                        .into(),
                );
            }
        }
        if let Some(cc) = &self.authentication.client_certificates
            && !cc.ca_file.is_file()
        {
            problems.push(format!(
                "authentication.client_certificates.ca_file {} is not a readable file",
                cc.ca_file.display()
            ));
        }
        if let Some(file) = &self.policy.file
            && let Err(e) = crate::phases::decide::load_policy_file(file)
        {
            problems.push(format!("policy.file: {e}"));
        }
        self.audit.problems(&mut problems);
        for (i, issuer) in self.authentication.oidc.iter().enumerate() {
            issuer.problems(i, &mut problems);
            if self.authentication.oidc[..i]
                .iter()
                .any(|o| o.issuer == issuer.issuer)
            {
                problems.push(format!(
                    "authentication.oidc[{i}].issuer {} is configured twice",
                    issuer.issuer
                ));
            }
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

    /// The problems `validate` reports (the config must be invalid).
    fn problems_of(c: &Config) -> Vec<String> {
        match c.validate() {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_in() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.limits.max_request_body_bytes, 3 * 1024 * 1024);
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
        assert!(c.upstream.impersonate, "impersonation is the default");
        assert!(c.authentication.service_accounts.is_none());
        assert!(c.authentication.client_certificates.is_none());
    }

    #[test]
    fn masking_is_on_by_default_and_its_section_is_checked() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert!(c.mask.enabled);
        assert!(c.mask.builtin_detectors);
        assert!(c.mask.env_name_patterns.iter().any(|p| p == "password"));
        let c = Config::from_yaml(&format!(
            "{MINIMAL}mask:\n  detectors:\n    - name: internal\n      regex: 'corp-[0-9]{{8}}'\n"
        ))
        .unwrap();
        assert_eq!(c.mask.detectors.len(), 1);
        assert!(c.mask.enabled);
        let err = Config::from_yaml(&format!("{MINIMAL}mask:\n  enable: false\n")).unwrap_err();
        assert!(err.contains("enable"), "{err}");
        let err = Config::from_yaml(&format!(
            "{MINIMAL}mask:\n  detectors:\n    - name: x\n      regex: a\n      flags: i\n"
        ))
        .unwrap_err();
        assert!(err.contains("flags"), "{err}");
        let c = Config::from_yaml(&format!(
            "{MINIMAL}mask:\n  detectors:\n    - name: bad\n      regex: '('\n  max_line_bytes: 10\n"
        ))
        .unwrap();
        let problems = match c.validate() {
            Err(ConfigError::Invalid(p)) => p.join("; "),
            other => panic!("{other:?}"),
        };
        assert!(
            problems.contains("mask.detectors[0] (bad): invalid regex"),
            "{problems}"
        );
        assert!(problems.contains("mask.max_line_bytes"), "{problems}");
    }

    #[test]
    fn the_commented_reference_parses() {
        let c = Config::from_yaml(include_str!("../../../examples/holdpoint.yaml")).unwrap();
        assert!(c.upstream.impersonate);
        assert!(c.authentication.service_accounts.is_some());
    }

    #[test]
    fn service_account_defaults_and_overrides() {
        let c = Config::from_yaml(&format!(
            "{MINIMAL}authentication:\n  service_accounts: {{}}\n"
        ))
        .unwrap();
        let sa = c.authentication.service_accounts.unwrap();
        assert!(sa.audiences.is_empty());
        assert_eq!(sa.cache_ttl, Duration::from_secs(300));
        assert_eq!(sa.negative_cache_ttl, Duration::from_secs(10));
        assert_eq!(sa.max_cache_entries, 10_000);
        let c = Config::from_yaml(&format!(
            "{MINIMAL}authentication:\n  service_accounts:\n    audiences: [holdpoint]\n    cache_ttl: 1m\n    negative_cache_ttl: 2s\n    max_cache_entries: 5\n"
        ))
        .unwrap();
        let sa = c.authentication.service_accounts.unwrap();
        assert_eq!(sa.audiences, ["holdpoint"]);
        assert_eq!(sa.cache_ttl, Duration::from_secs(60));
        assert_eq!(sa.negative_cache_ttl, Duration::from_secs(2));
        assert_eq!(sa.max_cache_entries, 5);
        let err = Config::from_yaml(&format!(
            "{MINIMAL}authentication:\n  service_accounts:\n    cache_tll: 1m\n"
        ))
        .unwrap_err();
        assert!(err.contains("cache_tll"), "{err}");
    }

    #[test]
    fn invalid_service_account_and_client_certificate_settings_are_refused() {
        let c = Config::from_yaml(&format!(
            "{MINIMAL}  impersonate: false\nauthentication:\n  service_accounts:\n    cache_ttl: 0s\n    max_cache_entries: 0\n    audiences: ['']\n  client_certificates:\n    ca_file: /nonexistent/ca.pem\n"
        ))
        .unwrap();
        assert!(!c.upstream.impersonate);
        let problems = problems_of(&c);
        for needle in ["cache_ttl", "max_cache_entries", "audiences", "ca_file"] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} missing in {problems:?}"
            );
        }
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
        let problems = problems_of(&c);
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
        let problems = problems_of(&c);
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

    #[test]
    fn data_threads_default_to_one_per_cpu_and_are_bounded() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert_eq!(c.data_threads, 0);
        assert_eq!(
            c.data_thread_count(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        let c = Config::from_yaml(&format!("{MINIMAL}data_threads: 3\n")).unwrap();
        assert_eq!(c.data_thread_count(), 3);
        let c = Config::from_yaml(&format!("{MINIMAL}data_threads: 5000\n")).unwrap();
        let problems = problems_of(&c);
        assert!(
            problems.iter().any(|p| p.contains("data_threads")),
            "{problems:?}"
        );
    }

    #[test]
    fn audit_settings_parse_and_bad_values_are_refused() {
        let c = Config::from_yaml(MINIMAL).unwrap();
        assert!(c.audit.enabled);
        assert_eq!(c.audit.reads, AuditReads::Refuse);
        assert_eq!(
            c.audit.signing_key_path(Path::new("/d")),
            Path::new("/d/audit-signing.key")
        );
        let c = Config::from_yaml(&format!(
            "{MINIMAL}audit:\n  reads: serve\n  session_gap: 5m\n  retention:\n    max_age: 720h\n    max_events: 10\n  sinks:\n    file: {{path: audit.jsonl}}\n    webhook: {{url: 'https://collector.example/audit'}}\n"
        ))
        .unwrap();
        assert_eq!(c.audit.reads, AuditReads::Serve);
        assert_eq!(c.audit.session_gap, Duration::from_secs(300));
        assert_eq!(
            c.audit.retention.max_age,
            Some(Duration::from_secs(720 * 3600))
        );
        assert_eq!(
            c.audit.sinks.webhook.as_ref().unwrap().format,
            SinkFormat::K8sAudit
        );
        assert_eq!(
            c.audit.sinks.file.as_ref().unwrap().format,
            SinkFormat::Jsonl
        );
        let err = Config::from_yaml(&format!("{MINIMAL}audit:\n  read: serve\n")).unwrap_err();
        assert!(err.contains("read"), "{err}");
        let c = Config::from_yaml(&format!(
            "{MINIMAL}audit:\n  max_body_bytes: 0\n  max_batch: 0\n  retention: {{max_events: 0}}\n  sinks:\n    webhook: {{url: 'ftp://x'}}\n"
        ))
        .unwrap();
        let problems = problems_of(&c);
        let text = problems.join("\n");
        for needle in [
            "audit.max_body_bytes",
            "audit.max_batch",
            "audit.retention limits",
            "audit.sinks.webhook.url",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    const OIDC_BASE: &str = "authentication:\n  oidc:\n    - issuer: https://idp.example\n      audiences: [holdpoint]\n";

    #[test]
    fn oidc_defaults_follow_the_apiserver() {
        let c = Config::from_yaml(&format!("{MINIMAL}{OIDC_BASE}")).unwrap();
        let o = &c.authentication.oidc[0];
        assert_eq!(o.username_claim, "sub");
        assert_eq!(o.algorithms, ["RS256"]);
        assert_eq!(o.leeway, Duration::from_secs(30));
        assert_eq!(o.jwks_refresh_interval, Duration::from_secs(3600));
        assert_eq!(o.jwks_min_refresh_interval, Duration::from_secs(10));
        assert_eq!(o.effective_username_prefix(), "https://idp.example#");
        let mut email = o.clone();
        email.username_claim = "email".into();
        assert_eq!(email.effective_username_prefix(), "");
        email.username_prefix = Some("-".into());
        assert_eq!(email.effective_username_prefix(), "");
        email.username_prefix = Some("oidc:".into());
        assert_eq!(email.effective_username_prefix(), "oidc:");
        let mut problems = Vec::new();
        o.problems(0, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_reference_config_and_its_commented_oidc_block_parse() {
        let example = include_str!("../../../examples/holdpoint.yaml");
        Config::from_yaml(example).unwrap();
        let block: String = example
            .lines()
            .skip_while(|l| *l != "  # oidc:")
            .take_while(|l| l.starts_with("  #"))
            .map(|l| format!("  {}\n", &l[4..]))
            .collect();
        let c = Config::from_yaml(&format!("{MINIMAL}authentication:\n{block}")).unwrap();
        let o = &c.authentication.oidc[0];
        assert_eq!(o.issuer, "https://login.example.com");
        assert_eq!(o.effective_username_prefix(), "https://login.example.com#");
        assert_eq!(o.groups_prefix.as_deref(), Some("oidc:"));
        assert_eq!(o.required_claims["hd"], "example.com");
        assert_eq!(o.jwks_min_refresh_interval, Duration::from_secs(10));
        let mut problems = Vec::new();
        o.problems(0, &mut problems);
        assert_eq!(
            problems.len(),
            1,
            "only the example ca_file is missing: {problems:?}"
        );
    }

    #[test]
    fn oidc_validate_rejects_bad_values() {
        let c = Config::from_yaml(&format!(
            "{MINIMAL}authentication:\n  oidc:\n    - issuer: http://idp.example\n      audiences: []\n      username_claim: ''\n      groups_prefix: 'g:'\n      algorithms: [HS256, none, RS256]\n      ca_file: /nonexistent.pem\n      leeway: 1h\n      jwks_refresh_interval: 1s\n      jwks_min_refresh_interval: 10s\n    - issuer: http://idp.example\n      audiences: [a]\n      algorithms: []\n      jwks_min_refresh_interval: 0s\n"
        ))
        .unwrap();
        let problems = problems_of(&c);
        let text = problems.join("\n");
        for needle in [
            "oidc[0].issuer must be an https:// URL",
            "oidc[0].audiences must list",
            "oidc[0].username_claim must not be empty",
            "oidc[0].groups_prefix needs groups_claim",
            "\"HS256\" is not allowed",
            "\"none\" is not allowed",
            "oidc[0].ca_file /nonexistent.pem",
            "oidc[0].leeway must be at most 5m",
            "oidc[0].jwks_refresh_interval must not be shorter",
            "oidc[1].algorithms must not be empty",
            "oidc[1].jwks_min_refresh_interval must be positive",
            "oidc[1].issuer http://idp.example is configured twice",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("\"RS256\" is not allowed"), "{text}");
        let err = Config::from_yaml(&format!("{MINIMAL}{OIDC_BASE}      usernme_claim: x\n"))
            .unwrap_err();
        assert!(err.contains("usernme_claim"), "{err}");
    }
}
