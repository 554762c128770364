//! The audit event: the Kubernetes `audit.k8s.io/v1` Event, so tools that read the apiserver's
//! audit log read Holdpoint's, plus Holdpoint's own fields under `holdpoint` (authenticator,
//! decision, rule, approval and reviewers, masking summary, session headers, duration, bytes).
//!
//! The stored JSON leaves out what is stored beside it: the bodies (`requestObject` and
//! `responseObject` are added back on export from the stored, masked bodies), the session id and
//! the chain position and hash (columns of the row).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::body::BodyMeta;
use crate::identity::Identity;
use crate::phases::Exchange;
use crate::phases::decide::Decision;
use crate::phases::record::ApprovalNote;

/// The `apiVersion` of every event.
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// `user` and `impersonatedUser` of an event (`authentication.k8s.io/v1` UserInfo).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Username (empty: not authenticated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Stable id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&Identity> for UserInfo {
    fn from(i: &Identity) -> Self {
        Self {
            username: i.username.clone(),
            uid: i.uid.clone(),
            groups: i.groups.clone(),
            extra: i.extra.clone(),
        }
    }
}

/// `objectRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Resource (plural).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group (empty: core).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Subresource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// `responseStatus` (a `meta/v1` Status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// Always empty.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `Success` or `Failure`, when the gateway answered itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The gateway's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// HTTP status.
    #[serde(default)]
    pub code: u16,
}

/// Request and response byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    /// Request body bytes.
    pub request: u64,
    /// Response body bytes (all of a stream's).
    pub response: u64,
}

/// An exec, attach or port-forward recording's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamNote {
    /// `exec`, `attach` or `portforward`.
    pub kind: String,
    /// Bytes the caller sent (stdin, or to the forwarded ports).
    pub bytes_in: u64,
    /// Bytes the caller received.
    pub bytes_out: u64,
    /// The exit status the API server reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<String>,
    /// Port-forward connections: port and bytes each way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<PortForwardNote>,
}

/// One port-forward connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardNote {
    /// The pod port.
    pub port: u16,
    /// Seconds after the stream began that the connection ended.
    pub at_seconds: f64,
    /// Bytes to the pod.
    pub to_upstream: u64,
    /// Bytes to the caller.
    pub to_client: u64,
}

/// A prune's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneNote {
    /// The first event kept (every event before it was deleted).
    pub first_kept: i64,
    /// Why: `age` or `size`.
    pub reason: String,
}

/// Holdpoint's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldpointFields {
    /// `forwarded`, `denied`, `held`, `executed`, `unauthenticated`, `rejected`, ... (the
    /// data path's outcome), or the admin action's result.
    pub outcome: String,
    /// HTTP method (data path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Whether the request changes anything.
    #[serde(default)]
    pub mutating: bool,
    /// The authenticator that accepted the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
    /// When authentication failed: the kind of credential refused (never its contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_credential: Option<String>,
    /// Policy's decision: `allow`, `deny` or `hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The policy rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The approval the request was held on, with the votes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNote>,
    /// `Kubectl-Command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_command: Option<String>,
    /// `Kubectl-Session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_session: Option<String>,
    /// `Holdpoint-Session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdpoint_session: Option<String>,
    /// Milliseconds from arrival to the end of the response (or stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Body sizes.
    #[serde(default)]
    pub bytes: ByteCounts,
    /// The stored request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<BodyMeta>,
    /// The stored response body (or recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<BodyMeta>,
    /// The gateway's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An admin action: `approve`, `deny`, `cancel`, `freeze`, `token.create`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why (the reviewer's or admin's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the action set (the freeze, a new token's user and groups; never a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// An exec/attach/port-forward recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamNote>,
    /// A prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneNote>,
    /// The gateway instance that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// An audit event as stored (see the module docs for what is stored beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Event`.
    pub kind: String,
    /// `audit.k8s.io/v1`.
    pub api_version: String,
    /// `Metadata` or `RequestResponse`.
    pub level: String,
    /// The request's id (sent upstream as `Audit-Id`).
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted` or `ResponseComplete`.
    pub stage: String,
    /// Path and query.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The Kubernetes verb (or the admin action).
    pub verb: String,
    /// The caller.
    pub user: UserInfo,
    /// The direct peer (never a caller-supplied `X-Forwarded-For`).
    #[serde(rename = "sourceIPs", default)]
    pub source_ips: Vec<String>,
    /// `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// What the request is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// When the request arrived (RFC 3339, microseconds).
    pub request_received_timestamp: String,
    /// When this stage was reached.
    pub stage_timestamp: String,
    /// Kubernetes-style annotations (`authorization.k8s.io/decision`, `.../reason`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Holdpoint's fields.
    pub holdpoint: HoldpointFields,
}

/// RFC 3339 with microseconds, as Kubernetes' `MicroTime`.
pub fn micro_time(t: jiff::Timestamp) -> String {
    // jiff's RFC 3339 printer at a fixed precision: a fraction of a `strftime` pattern's cost
    // (two per event, on the data path).
    const PRINTER: jiff::fmt::temporal::DateTimePrinter =
        jiff::fmt::temporal::DateTimePrinter::new().precision(Some(6));
    PRINTER.timestamp_to_string(&t)
}

/// Parses a stored time.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

impl Event {
    /// An event for the data path's request at `stage` (`at`: the stage's time).
    pub fn for_exchange(ex: &Exchange, stage: &str, at: jiff::Timestamp) -> Self {
        let info = ex.info.as_ref();
        let object_ref = info.filter(|i| i.is_resource_request).map(|i| ObjectRef {
            resource: i.resource.clone(),
            namespace: i.namespace.clone(),
            name: i.name.clone(),
            api_group: i.api_group.clone(),
            api_version: i.api_version.clone(),
            subresource: i.subresource.clone(),
        });
        let (decision, rule) = match &ex.decision {
            Some(Decision::Allow { rule }) => (Some("allow"), Some(rule.clone())),
            Some(Decision::Deny { rule, .. }) => (Some("deny"), Some(rule.clone())),
            Some(Decision::Hold { rule, .. }) => (Some("hold"), Some(rule.clone())),
            None => (None, None),
        };
        let mut annotations = BTreeMap::new();
        if let (Some(d), Some(r)) = (decision, &rule) {
            annotations.insert(
                "authorization.k8s.io/decision".into(),
                if d == "deny" { "forbid" } else { "allow" }.into(),
            );
            annotations.insert("authorization.k8s.io/reason".into(), r.clone());
        }
        let refused_credential = (ex.outcome == "unauthenticated")
            .then(|| ex.error.clone())
            .flatten();
        Self {
            kind: "Event".into(),
            api_version: API_VERSION.into(),
            level: "Metadata".into(),
            audit_id: ex.audit_id.clone(),
            stage: stage.into(),
            request_uri: ex.path.clone(),
            verb: info
                .map(|i| i.verb.clone())
                .unwrap_or_else(|| ex.method.as_str().to_ascii_lowercase()),
            user: ex.identity.as_ref().map(UserInfo::from).unwrap_or_default(),
            source_ips: vec![ex.peer.ip().to_string()],
            user_agent: ex.caller.user_agent.clone(),
            object_ref,
            response_status: None,
            request_received_timestamp: micro_time(ex.received_at),
            stage_timestamp: micro_time(at),
            annotations,
            holdpoint: HoldpointFields {
                outcome: ex.outcome.into(),
                method: ex.method.as_str().into(),
                mutating: info.is_none_or(|i| i.is_mutating()),
                authenticator: ex.identity.as_ref().map(|i| i.authenticator.clone()),
                refused_credential,
                decision: decision.map(str::to_owned),
                rule,
                approval: ex.approval.clone(),
                kubectl_command: ex.caller.kubectl_command.clone(),
                kubectl_session: ex.caller.kubectl_session.clone(),
                holdpoint_session: ex.caller.holdpoint_session.clone(),
                bytes: ByteCounts {
                    request: ex.body.len() as u64,
                    response: 0,
                },
                error: ex.error.clone(),
                ..Default::default()
            },
        }
    }

    /// Sets the answer's status (and, for gateway errors, the message).
    pub fn set_status(&mut self, code: u16, error: Option<&str>) {
        self.response_status = Some(ResponseStatus {
            metadata: BTreeMap::new(),
            status: error.map(|_| "Failure".into()),
            message: error.map(str::to_owned),
            code,
        });
    }

    /// The JSON text stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored event.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An admin or reviewer action to record.
#[derive(Debug, Clone)]
pub struct AdminAction<'a> {
    /// Who (`None`: the gateway itself, e.g. a policy reload).
    pub actor: Option<&'a Identity>,
    /// Or, for the operator commands, a name without an identity (`cli:root@host`).
    pub actor_name: Option<String>,
    /// The caller's address, when it came over the network.
    pub source: Option<IpAddr>,
    /// `approve`, `deny`, `cancel`, `freeze.on`, `freeze.off`, `token.create`, `token.revoke`,
    /// `policy.reload`, ...
    pub action: &'a str,
    /// The API path it came in on (empty for operator commands and the gateway's own actions).
    pub request_uri: String,
    /// What it acted on.
    pub object: ObjectRef,
    /// The outcome: `ok`, or why it failed.
    pub outcome: String,
    /// HTTP status (200 for success).
    pub status: u16,
    /// Why.
    pub reason: Option<String>,
    /// What it set.
    pub detail: Option<serde_json::Value>,
    /// The approval it concerns, with its votes.
    pub approval: Option<ApprovalNote>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

impl AdminAction<'_> {
    /// The event.
    pub fn to_event(&self, audit_id: &str, at: jiff::Timestamp) -> Event {
        let user = match (self.actor, &self.actor_name) {
            (Some(i), _) => UserInfo::from(i),
            (None, Some(name)) => UserInfo {
                username: name.clone(),
                ..Default::default()
            },
            (None, None) => UserInfo {
                username: super::SYSTEM_ACTOR.into(),
                ..Default::default()
            },
        };
        let failed = self.status >= 400;
        Event {
            kind: "Event".into(),
            api_version: API_VERSION.into(),
            level: "Metadata".into(),
            audit_id: audit_id.into(),
            stage: "ResponseComplete".into(),
            request_uri: self.request_uri.clone(),
            verb: self.action.into(),
            user,
            source_ips: self.source.map(|s| vec![s.to_string()]).unwrap_or_default(),
            user_agent: self.user_agent.clone(),
            object_ref: Some(self.object.clone()),
            response_status: Some(ResponseStatus {
                metadata: BTreeMap::new(),
                status: failed.then(|| "Failure".into()),
                message: failed.then(|| self.outcome.clone()),
                code: self.status,
            }),
            request_received_timestamp: micro_time(at),
            stage_timestamp: micro_time(at),
            annotations: BTreeMap::new(),
            holdpoint: HoldpointFields {
                outcome: self.outcome.clone(),
                mutating: true,
                authenticator: self.actor.map(|i| i.authenticator.clone()),
                approval: self.approval.clone(),
                action: Some(self.action.into()),
                reason: self.reason.clone(),
                detail: self.detail.clone(),
                ..Default::default()
            },
        }
    }
}

/// `objectRef` of a Holdpoint object (`approvals`, `tokens`, `freeze`, `policies`).
pub fn holdpoint_object(resource: &str, name: &str) -> ObjectRef {
    ObjectRef {
        resource: resource.into(),
        name: name.into(),
        api_group: "holdpoint.dev".into(),
        api_version: "v1".into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_is_rfc3339_with_six_digits_truncated() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            micro_time(t("2026-12-03T17:41:24.932857999Z")),
            "2026-12-03T17:41:24.932857Z"
        );
        assert_eq!(
            micro_time(t("2026-12-03T17:41:05Z")),
            "2026-12-03T17:41:05.000000Z"
        );
        assert_eq!(
            micro_time(t("2026-12-03T17:41:05.5Z")),
            "2026-12-03T17:41:05.500000Z"
        );
        let back = parse_time(&micro_time(t("2026-12-03T17:41:24.932857Z"))).unwrap();
        assert_eq!(back, t("2026-12-03T17:41:24.932857Z"));
    }
}
