//! The decide phase: policy says allow, deny, or hold for approval.
//!
//! [`PolicyDecider`] adapts the pure `holdpoint-policy` engine to the pipeline: it builds the
//! policy's request view from the [`Exchange`] (identity, classification, dry run, the decoded
//! body, the time from the injected clock, the freeze state) and maps the verdict to a
//! [`Decision`]. The compiled policy sits behind an [`ArcSwap`], so a reload swaps it atomically
//! while requests keep evaluating; a policy file that does not load is logged and refused, and
//! the old policy stays.
//!
//! Bodies, for CEL conditions (`object`): JSON and YAML bodies are decoded; for the four patch
//! kinds (`json-patch+json`, `merge-patch+json`, `strategic-merge-patch+json`,
//! `apply-patch+yaml`) `object` is the **patch document itself** (for a JSON patch, the array
//! of operations), not the patched object: the decider is synchronous and pure and fetches
//! nothing. Protobuf, CBOR and undecodable bodies, and every `DELETE`, give `object = null`;
//! `oldObject` is always `null` here. A condition that then fails to evaluate counts as a match
//! for deny/approve rules and a non-match for allow rules (fail closed).
//!
//! The freeze state comes from a [`FreezeHandle`] the store side keeps current.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use holdpoint_policy::{Policy, PolicyError, Request, Subject, Verdict};
use kube_request::{BodyFormat, DryRun};
use tokio_util::sync::CancellationToken;

pub use holdpoint_policy::{Approval, ApprovalMode, Freeze, FreezeMode, RevealGrant, Reviewers};

use super::Exchange;

/// What policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Decision {
    /// Forward it.
    Allow {
        /// The rule that matched, for audit.
        rule: String,
    },
    /// Refuse it with a message shown to the caller.
    Deny {
        /// The rule that matched.
        rule: String,
        /// Shown to the caller in the 403 Status.
        message: String,
    },
    /// Hold it until reviewers decide.
    Hold {
        /// The rule that matched.
        rule: String,
        /// The approve action's parameters: reviewers, quorum, ttl, hold, mode.
        approval: Approval,
    },
}

/// A policy.
pub trait Decider: Send + Sync + Debug {
    /// Decides for an authenticated, classified request (body already read when it has one).
    fn decide(&self, exchange: &Exchange) -> Decision;

    /// The kinds the caller sees unmasked (policy `reveal` rules). None by default.
    fn reveal(&self, _exchange: &Exchange) -> RevealGrant {
        RevealGrant::default()
    }
}

/// Allows every request (the foundation's placeholder policy; tests use it).
#[derive(Debug, Default)]
pub struct AllowAll;

impl Decider for AllowAll {
    fn decide(&self, _exchange: &Exchange) -> Decision {
        Decision::Allow {
            rule: "allow-all".into(),
        }
    }
}

/// The freeze in force, shared between the store side (which keeps it current: `store(Some(..))`
/// when a freeze is switched on, `store(None)` when off) and the decider (which reads it for
/// every request, lock-free).
pub type FreezeHandle = Arc<ArcSwapOption<Freeze>>;

/// A new handle with no freeze.
pub fn no_freeze() -> FreezeHandle {
    Arc::new(ArcSwapOption::empty())
}

/// A policy file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("policy file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line numbers.
        source: PolicyError,
    },
}

/// Reads and compiles a policy file.
pub fn load_policy_file(path: &Path) -> Result<Policy, PolicyLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Policy::from_yaml(&text).map_err(|source| PolicyLoadError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// The file's identity for change detection: modification time and length.
type FileStamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// A reload of the policy file, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReload {
    /// The file.
    pub path: PathBuf,
    /// The number of rules now in force, or why the file was refused (the old policy stays).
    pub result: Result<usize, String>,
}

/// The policy engine as the pipeline's decider, with atomic reloads.
#[derive(Debug)]
pub struct PolicyDecider {
    current: ArcSwap<Policy>,
    file: Option<PathBuf>,
    seen: Mutex<Option<FileStamp>>,
    freeze: FreezeHandle,
    reloads: tokio::sync::broadcast::Sender<PolicyReload>,
}

impl PolicyDecider {
    /// The embedded default policy for AI agents.
    pub fn embedded(freeze: FreezeHandle) -> Self {
        Self::with_policy(Policy::default_for_agents(), freeze)
    }

    /// A given compiled policy (never reloaded).
    pub fn with_policy(policy: Policy, freeze: FreezeHandle) -> Self {
        Self {
            current: ArcSwap::from_pointee(policy),
            file: None,
            seen: Mutex::new(None),
            freeze,
            reloads: tokio::sync::broadcast::channel(16).0,
        }
    }

    /// Loads a policy file; [`PolicyDecider::reload`] and [`PolicyDecider::watch`] re-read it.
    pub fn from_file(path: &Path, freeze: FreezeHandle) -> Result<Self, PolicyLoadError> {
        let before = stamp(path);
        let policy = load_policy_file(path)?;
        Ok(Self {
            current: ArcSwap::from_pointee(policy),
            file: Some(path.to_owned()),
            seen: Mutex::new(before),
            freeze,
            reloads: tokio::sync::broadcast::channel(16).0,
        })
    }

    /// The file policy comes from, if any (`None`: the embedded default or a given policy).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The freeze handle this decider reads.
    pub fn freeze_handle(&self) -> &FreezeHandle {
        &self.freeze
    }

    /// Every reload attempt from now on (successful or refused), for the audit log.
    pub fn reloads(&self) -> tokio::sync::broadcast::Receiver<PolicyReload> {
        self.reloads.subscribe()
    }

    /// Re-reads the policy file. On success the new policy replaces the old one atomically and
    /// `Ok(true)` is returned; on failure the error is logged and returned, and the old policy
    /// stays. Without a file, `Ok(false)`.
    pub fn reload(&self) -> Result<bool, PolicyLoadError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let before = stamp(path);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = before;
        match load_policy_file(path) {
            Ok(policy) => {
                let rules = policy.len();
                self.current.store(Arc::new(policy));
                tracing::info!(path = %path.display(), rules, "policy reloaded");
                let _ = self.reloads.send(PolicyReload {
                    path: path.clone(),
                    result: Ok(rules),
                });
                Ok(true)
            }
            Err(e) => {
                tracing::error!(error = %e, "policy file refused; the previous policy stays in force");
                let _ = self.reloads.send(PolicyReload {
                    path: path.clone(),
                    result: Err(e.to_string()),
                });
                Err(e)
            }
        }
    }

    /// Reloads when the file's modification time or length changed since the last load
    /// attempt. `Ok(false)` when nothing changed.
    pub fn reload_if_changed(&self) -> Result<bool, PolicyLoadError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let now = stamp(path);
        let changed = *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if changed { self.reload() } else { Ok(false) }
    }

    /// Watches the policy file until `cancel`: polls its modification time every `interval`
    /// and reloads on SIGHUP. Returns at once when there is no file.
    pub async fn watch(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        if self.file.is_none() {
            return;
        }
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; polling the policy file only");
                None
            }
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => { let _ = self.reload_if_changed(); }
                _ = hangup => {
                    tracing::info!("SIGHUP: reloading the policy");
                    let _ = self.reload();
                }
            }
        }
    }
}

/// How many events YAML aliases may replay in one request body (real manifests use few or no
/// aliases).
const MAX_YAML_REPLAYED_EVENTS: usize = 10_000;

/// Decodes a request body for CEL: JSON, YAML and the four patch kinds (the patch document
/// itself); anything else is `None`.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Option<serde_json::Value> {
    if body.is_empty() {
        return None;
    }
    let format = BodyFormat::from_content_type(content_type.unwrap_or("application/json"));
    match format {
        BodyFormat::Json
        | BodyFormat::JsonPatch
        | BodyFormat::MergePatch
        | BodyFormat::StrategicMergePatch => serde_json::from_slice(body).ok(),
        BodyFormat::Yaml | BodyFormat::ApplyPatchYaml => {
            let text = std::str::from_utf8(body).ok()?;
            // Bodies are bounded by limits.max_request_body_bytes; aliases are not, so a YAML
            // alias bomb (CVE-2019-11253) is cut off after MAX_YAML_REPLAYED_EVENTS.
            let mut options = serde_saphyr::Options::default();
            options.alias_limits.max_total_replayed_events = MAX_YAML_REPLAYED_EVENTS;
            serde_saphyr::from_str_with_options(text, options).ok()
        }
        _ => None,
    }
}

impl Decider for PolicyDecider {
    fn decide(&self, ex: &Exchange) -> Decision {
        let (Some(info), Some(identity)) = (&ex.info, &ex.identity) else {
            return Decision::Deny {
                rule: "internal".into(),
                message: "the request was not classified and authenticated before policy".into(),
            };
        };
        let policy = self.current.load();
        let query = ex.path.split_once('?').map(|(_, q)| q);
        let dry_run = DryRun::for_request(&ex.method, query, !ex.body.is_empty()).is_dry_run();
        let object = (policy.uses_object() && ex.method != http::Method::DELETE)
            .then(|| decode_body(ex.content_type.as_deref(), &ex.body))
            .flatten();
        let freeze = self.freeze.load();
        let request = Request::new(
            Subject {
                username: &identity.username,
                groups: &identity.groups,
                authenticator: &identity.authenticator,
            },
            info,
            dry_run,
            ex.received_at,
        )
        .with_object(object.as_ref())
        .with_freeze(freeze.as_deref());
        let evaluation = policy.evaluate(&request);
        let rule = evaluation.rule;
        match evaluation.verdict {
            Verdict::Allow => Decision::Allow { rule },
            Verdict::Deny { message } => Decision::Deny {
                message: format!("{message} (Holdpoint policy rule {rule:?})"),
                rule,
            },
            Verdict::Approve(approval) => Decision::Hold { rule, approval },
        }
    }

    fn reveal(&self, ex: &Exchange) -> RevealGrant {
        let Some(identity) = &ex.identity else {
            return RevealGrant::default();
        };
        self.current.load().reveal_for(&Subject {
            username: &identity.username,
            groups: &identity.groups,
            authenticator: &identity.authenticator,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;
    use http::Method;

    use super::*;
    use crate::identity::Identity;

    fn exchange(method: Method, target: &str, content_type: Option<&str>, body: &str) -> Exchange {
        Exchange {
            identity: Some(Identity {
                username: "demo-agent".into(),
                groups: vec!["agents".into()],
                uid: None,
                extra: Default::default(),
                authenticator: "static-token".into(),
            }),
            body: Bytes::from(body.to_owned()),
            content_type: content_type.map(str::to_owned),
            ..Exchange::for_test(method, target)
        }
    }

    const REPLICAS: &str = "rules:
  - name: too-many
    match:
      conditions: ['object.spec.replicas > 10']
    action: deny
    message: at most 10 replicas
  - {name: rest, action: allow}
default: {action: allow}
";

    fn rule(d: &Decision) -> &str {
        match d {
            Decision::Allow { rule }
            | Decision::Deny { rule, .. }
            | Decision::Hold { rule, .. } => rule,
        }
    }

    #[test]
    fn default_policy_maps_to_decisions() {
        let d = PolicyDecider::embedded(no_freeze());
        let read = exchange(Method::GET, "/api/v1/namespaces/demo/pods", None, "");
        assert_eq!(
            d.decide(&read),
            Decision::Allow {
                rule: "reads".into()
            }
        );
        let create = exchange(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/json"),
            "{}",
        );
        let Decision::Hold { rule, approval } = d.decide(&create) else {
            panic!("expected a hold");
        };
        assert_eq!(rule, "changes");
        assert_eq!(approval.reviewers.groups, ["reviewers"]);
        assert_eq!(approval.quorum, 1);
        assert_eq!(approval.hold, holdpoint_policy::DEFAULT_HOLD);
        let del = exchange(Method::DELETE, "/api/v1/namespaces/demo", None, "");
        let Decision::Deny { rule, message } = d.decide(&del) else {
            panic!("expected a deny");
        };
        assert_eq!(rule, "protected-deletes");
        assert!(message.contains("protected-deletes"), "{message}");
        // dry run counts only as the apiserver reads it: a DELETE with a body ignores the query
        let dry = exchange(
            Method::DELETE,
            "/api/v1/namespaces/demo/pods/web-0?dryRun=All",
            None,
            "",
        );
        assert_eq!(
            d.decide(&dry),
            Decision::Allow {
                rule: "dry-run".into()
            }
        );
        let dry_with_body = exchange(
            Method::DELETE,
            "/api/v1/namespaces/demo/pods/web-0?dryRun=All",
            Some("application/json"),
            r#"{"kind":"DeleteOptions","apiVersion":"v1"}"#,
        );
        assert_eq!(rule_of(&d, &dry_with_body), "changes");
    }

    #[test]
    fn freeze_handle_is_read_per_request() {
        let freeze = no_freeze();
        let d = PolicyDecider::embedded(freeze.clone());
        let dry = exchange(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps?dryRun=All",
            None,
            "",
        );
        assert_eq!(rule_of(&d, &dry), "dry-run");
        freeze.store(Some(Arc::new(Freeze {
            reason: "incident".into(),
            mode: FreezeMode::Deny,
        })));
        let Decision::Deny { rule, message } = d.decide(&dry) else {
            panic!("frozen");
        };
        assert_eq!(rule, "freeze");
        assert!(message.contains("incident"), "{message}");
        let read = exchange(Method::GET, "/api/v1/namespaces/demo/pods", None, "");
        assert_eq!(
            d.decide(&read),
            Decision::Allow {
                rule: "reads".into()
            }
        );
        freeze.store(None);
        assert_eq!(rule_of(&d, &dry), "dry-run");
    }

    fn rule_of(d: &PolicyDecider, ex: &Exchange) -> String {
        rule(&d.decide(ex)).to_owned()
    }

    #[test]
    fn bodies_are_decoded_for_conditions_in_every_format() {
        let d = PolicyDecider::with_policy(Policy::from_yaml(REPLICAS).unwrap(), no_freeze());
        let t = "/apis/apps/v1/namespaces/demo/deployments/web";
        let cases: &[(Method, &str, &str, &str)] = &[
            (
                Method::PUT,
                "application/json",
                r#"{"spec":{"replicas":50}}"#,
                "too-many",
            ),
            (
                Method::PUT,
                "application/json",
                r#"{"spec":{"replicas":5}}"#,
                "rest",
            ),
            (
                Method::PUT,
                "application/yaml",
                "spec:\n  replicas: 50\n",
                "too-many",
            ),
            (
                Method::PATCH,
                "application/merge-patch+json",
                r#"{"spec":{"replicas":50}}"#,
                "too-many",
            ),
            (
                Method::PATCH,
                "application/strategic-merge-patch+json",
                r#"{"spec":{"replicas":50}}"#,
                "too-many",
            ),
            (
                Method::PATCH,
                "application/apply-patch+yaml",
                "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 50\n",
                "too-many",
            ),
            (
                Method::PATCH,
                "application/apply-patch+yaml",
                "spec:\n  replicas: 2\n",
                "rest",
            ),
            // a JSON patch binds the operations array: `object.spec` cannot be evaluated, the
            // deny rule counts it as a match (fail closed)
            (
                Method::PATCH,
                "application/json-patch+json",
                r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
                "too-many",
            ),
            // protobuf is not decoded: fail closed
            (
                Method::PUT,
                "application/vnd.kubernetes.protobuf",
                "k8s\0garbage",
                "too-many",
            ),
            // undecodable JSON: fail closed
            (Method::PUT, "application/json", "{not json", "too-many"),
        ];
        for (method, ct, body, want) in cases {
            let ex = exchange(method.clone(), t, Some(ct), body);
            assert_eq!(rule_of(&d, &ex), *want, "{method} {ct} {body}");
        }
    }

    #[test]
    fn decode_body_handles_yaml_and_json() {
        assert_eq!(
            decode_body(Some("application/yaml"), b"a: 1\n"),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(decode_body(Some("application/json"), b""), None);
        assert_eq!(decode_body(Some("application/cbor"), b"\xa1"), None);
        // a YAML alias bomb is refused by the parser's budget, not expanded
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        let started = Instant::now();
        let _ = decode_body(Some("application/yaml"), bomb.as_bytes());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "alias bomb took {:?}",
            started.elapsed()
        );
    }

    const ALLOW_ALL: &str = "rules: []\ndefault: {action: allow}\n";
    const DENY_ALL: &str = "rules: []\ndefault: {action: deny, message: v2}\n";

    #[test]
    fn reload_swaps_a_good_file_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, ALLOW_ALL).unwrap();
        let d = PolicyDecider::from_file(&path, no_freeze()).unwrap();
        let ex = exchange(Method::POST, "/api/v1/namespaces/demo/configmaps", None, "");
        assert_eq!(rule_of(&d, &ex), "default");
        assert!(matches!(d.decide(&ex), Decision::Allow { .. }));
        assert!(!d.reload_if_changed().unwrap(), "unchanged file");

        // a bad file: refused, the old policy stays
        std::fs::write(&path, "rules: []\ndefault: {action: allow}\nbogus: 1\n").unwrap();
        let err = d.reload().unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        assert!(matches!(d.decide(&ex), Decision::Allow { .. }));
        // a file that parses but does not validate: same
        std::fs::write(
            &path,
            "rules:\n  - {name: x, action: approve}\ndefault: {action: deny}\n",
        )
        .unwrap();
        assert!(d.reload().is_err());
        assert!(matches!(d.decide(&ex), Decision::Allow { .. }));
        // a missing file: same
        std::fs::remove_file(&path).unwrap();
        assert!(d.reload().is_err());
        assert!(matches!(d.decide(&ex), Decision::Allow { .. }));

        // a good file replaces it
        std::fs::write(&path, DENY_ALL).unwrap();
        assert!(d.reload_if_changed().unwrap());
        assert!(matches!(d.decide(&ex), Decision::Deny { .. }));
    }

    #[test]
    fn from_file_refuses_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "rules: [\n").unwrap();
        assert!(matches!(
            PolicyDecider::from_file(&path, no_freeze()),
            Err(PolicyLoadError::Invalid { .. })
        ));
        assert!(matches!(
            PolicyDecider::from_file(&dir.path().join("missing.yaml"), no_freeze()),
            Err(PolicyLoadError::Read { .. })
        ));
    }

    async fn eventually(d: &PolicyDecider, ex: &Exchange, want_deny: bool) -> bool {
        for _ in 0..100 {
            if matches!(d.decide(ex), Decision::Deny { .. }) == want_deny {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn watch_reloads_on_change_and_keeps_the_old_policy_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, ALLOW_ALL).unwrap();
        let d = Arc::new(PolicyDecider::from_file(&path, no_freeze()).unwrap());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(d.clone().watch(Duration::from_millis(50), cancel.clone()));
        let ex = exchange(Method::POST, "/api/v1/namespaces/demo/configmaps", None, "");

        // a longer file, so the length changes even if the mtime resolution is coarse
        std::fs::write(&path, format!("{DENY_ALL}# changed\n")).unwrap();
        assert!(
            eventually(&d, &ex, true).await,
            "the watcher picked up the change"
        );

        std::fs::write(
            &path,
            "rules: []\ndefault: {action: allow}\nnot-a-key: 1\n# bad\n",
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            matches!(d.decide(&ex), Decision::Deny { .. }),
            "bad file refused, old policy stays"
        );

        cancel.cancel();
        task.await.unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sighup_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, ALLOW_ALL).unwrap();
        let d = Arc::new(PolicyDecider::from_file(&path, no_freeze()).unwrap());
        let cancel = CancellationToken::new();
        // poll far too slowly to notice: only SIGHUP can reload within the test
        let task = tokio::spawn(d.clone().watch(Duration::from_secs(3600), cancel.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::write(&path, DENY_ALL).unwrap();
        let ex = exchange(Method::POST, "/api/v1/namespaces/demo/configmaps", None, "");
        assert!(matches!(d.decide(&ex), Decision::Allow { .. }));
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            eventually(&d, &ex, true).await,
            "SIGHUP reloaded the policy"
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
