//! Reading the audit log: sessions, a session's timeline, replays and exports. Shared by the
//! CLI (`holdpoint sessions`, `holdpoint audit export`) and the auditor API.
//!
//! Exports:
//! - `jsonl`: each stored event with its chain position (`holdpoint.seq`, `holdpoint.hash`),
//!   session, and the masked bodies as `requestObject`/`responseObject`;
//! - `k8s-audit`: plain `audit.k8s.io/v1` Events (what the apiserver's log backend writes, one
//!   per line): Holdpoint's fields become `holdpoint.dev/*` annotations, bodies that are JSON
//!   objects become `requestObject`/`responseObject`.

use std::collections::{BTreeMap, BTreeSet};

use holdpoint_store::{AuditEvent, AuditFilter, Store, StoreError};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::body::{BodyMeta, decompress};
use super::event::{Event, parse_time};

/// Reading the log failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event that does not parse (it was edited: run `holdpoint audit verify`).
    #[error("audit event {seq} cannot be read ({why}); run `holdpoint audit verify`")]
    Corrupt {
        /// Its position.
        seq: i64,
        /// Why.
        why: String,
    },
    /// No such session.
    #[error("session {0} not found")]
    NoSession(String),
}

/// A stored event, decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The row.
    pub row: AuditEvent,
    /// Its event.
    pub event: Event,
}

impl Stored {
    /// Decodes a row.
    pub fn decode(row: AuditEvent) -> Result<Self, QueryError> {
        let event = Event::from_json(&row.event).map_err(|e| QueryError::Corrupt {
            seq: row.seq,
            why: e.to_string(),
        })?;
        Ok(Self { row, event })
    }

    /// The stored request or response body, decoded: JSON bodies as values, others as text.
    pub fn body(&self, response: bool) -> Option<Value> {
        let (blob, meta) = if response {
            (&self.row.response_body, &self.event.holdpoint.response_body)
        } else {
            (&self.row.request_body, &self.event.holdpoint.request_body)
        };
        let bytes = decompress(blob.as_ref()?).ok()?;
        match meta.as_ref().map(|m| m.format.as_str()) {
            Some("json") if !meta.as_ref().is_some_and(|m| m.truncated) => {
                serde_json::from_slice(&bytes).ok()
            }
            _ => Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        }
    }

    /// The asciinema v2 cast of an exec/attach recording.
    pub fn cast(&self) -> Option<String> {
        let meta = self.event.holdpoint.response_body.as_ref()?;
        if meta.format != "asciicast" {
            return None;
        }
        let bytes = decompress(self.row.response_body.as_ref()?).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The stage time.
    pub fn at(&self) -> Timestamp {
        self.row.at
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// From this time on.
    pub since: Option<Timestamp>,
    /// Only this caller's.
    pub user: Option<String>,
    /// Only this session's.
    pub session: Option<String>,
    /// Leave the bodies out.
    pub without_bodies: bool,
}

/// Reads every selected event, oldest first, one page at a time, handing each to `each`
/// (which may stop the walk by returning `false`).
pub async fn walk(
    store: &Store,
    sel: &Selection,
    mut each: impl FnMut(Stored) -> Result<bool, QueryError>,
) -> Result<(), QueryError> {
    let mut after = None;
    loop {
        let page = store
            .audit_events(&AuditFilter {
                after_seq: after,
                since: sel.since,
                username: sel.user.clone(),
                session_id: sel.session.clone(),
                without_bodies: sel.without_bodies,
                limit: 2000,
                ..Default::default()
            })
            .await?;
        let full = page.len() == 2000;
        after = page.last().map(|e| e.seq);
        for row in page {
            if !each(Stored::decode(row)?)? {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// One session, as `sessions list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// Who (usually one caller).
    pub users: Vec<String>,
    /// First and last event.
    pub first: Option<Timestamp>,
    /// See `first`.
    pub last: Option<Timestamp>,
    /// The kubectl commands in it.
    pub commands: Vec<String>,
    /// Requests (data path and executed approvals; each counted once over its stages).
    pub requests: u64,
    /// Of which mutating.
    pub mutations: u64,
    /// Approvals the session's requests were held on.
    pub approvals: Vec<String>,
    /// Requests denied (by policy or a reviewer).
    pub denials: u64,
    /// Requests refused before policy (authentication, path safety, ...).
    pub refused: u64,
    /// Reviewer and admin actions.
    pub admin_actions: u64,
    /// exec/attach/port-forward recordings.
    pub streams: u64,
}

#[derive(Default)]
struct Tally {
    summary: SessionSummary,
    users: BTreeSet<String>,
    commands: BTreeSet<String>,
    requests: BTreeSet<String>,
    mutations: BTreeSet<String>,
    approvals: BTreeSet<String>,
}

fn is_refusal(outcome: &str) -> bool {
    matches!(
        outcome,
        "unauthenticated" | "rejected" | "too_large" | "auth_unavailable" | "record_failed"
    )
}

/// The sessions with events since `sel.since` (of `sel.user`), newest first, at most `limit`.
pub async fn sessions(
    store: &Store,
    sel: &Selection,
    limit: usize,
) -> Result<Vec<SessionSummary>, QueryError> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let sel = Selection {
        without_bodies: true,
        ..sel.clone()
    };
    walk(store, &sel, |s| {
        let t = tallies.entry(s.row.session_id.clone()).or_default();
        let h = &s.event.holdpoint;
        t.summary.first.get_or_insert(s.row.at);
        t.summary.last = Some(s.row.at);
        if let Some(u) = &s.row.username {
            t.users.insert(u.clone());
        }
        if let Some(c) = &h.kubectl_command {
            t.commands.insert(c.clone());
        }
        if let Some(a) = &h.approval {
            t.approvals.insert(a.id.clone());
        }
        match s.row.kind.as_str() {
            "admin" | "prune" => t.summary.admin_actions += 1,
            "stream" => t.summary.streams += 1,
            _ => {
                t.requests.insert(s.row.audit_id.clone());
                if h.mutating {
                    t.mutations.insert(s.row.audit_id.clone());
                }
                if s.event.stage == "ResponseComplete" {
                    if h.outcome == "denied" {
                        t.summary.denials += 1;
                    } else if is_refusal(&h.outcome) {
                        t.summary.refused += 1;
                    }
                }
            }
        }
        Ok(true)
    })
    .await?;
    let mut out: Vec<SessionSummary> = tallies
        .into_iter()
        .map(|(id, t)| SessionSummary {
            id,
            users: t.users.into_iter().collect(),
            commands: t.commands.into_iter().collect(),
            requests: t.requests.len() as u64,
            mutations: t.mutations.len() as u64,
            approvals: t.approvals.into_iter().collect(),
            ..t.summary
        })
        .collect();
    out.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.id.cmp(&b.id)));
    out.truncate(limit);
    Ok(out)
}

/// Every event of a session, oldest first.
pub async fn session(store: &Store, id: &str, bodies: bool) -> Result<Vec<Stored>, QueryError> {
    let mut out = Vec::new();
    walk(
        store,
        &Selection {
            session: Some(id.to_owned()),
            without_bodies: !bodies,
            ..Default::default()
        },
        |s| {
            out.push(s);
            Ok(true)
        },
    )
    .await?;
    if out.is_empty() {
        return Err(QueryError::NoSession(id.to_owned()));
    }
    Ok(out)
}

/// The events of a session grouped by request (one `auditID`), in the order the requests
/// arrived.
pub fn by_request(events: &[Stored]) -> Vec<Vec<&Stored>> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&Stored>> = BTreeMap::new();
    for s in events {
        let id = s.row.audit_id.as_str();
        if !groups.contains_key(id) {
            order.push(id);
        }
        groups.entry(id).or_default().push(s);
    }
    order
        .into_iter()
        .filter_map(|id| groups.remove(id))
        .collect()
}

fn who(e: &Event) -> &str {
    if e.user.username.is_empty() {
        "(unauthenticated)"
    } else {
        &e.user.username
    }
}

fn object(e: &Event) -> String {
    match &e.object_ref {
        Some(o) => {
            let resource = if o.subresource.is_empty() {
                o.resource.clone()
            } else {
                format!("{}/{}", o.resource, o.subresource)
            };
            let name = match (o.namespace.as_str(), o.name.as_str()) {
                ("", "") => String::new(),
                ("", n) => n.to_owned(),
                (ns, "") => format!("{ns}/"),
                (ns, n) => format!("{ns}/{n}"),
            };
            format!("{resource} {name}").trim_end().to_owned()
        }
        None => e.request_uri.clone(),
    }
}

fn decision(e: &Event) -> String {
    let h = &e.holdpoint;
    let mut d = h.decision.clone().unwrap_or_else(|| "-".into());
    if let Some(a) = &h.approval {
        let reviewers: Vec<String> = a
            .votes
            .iter()
            .map(|v| format!("{} by {}", v.decision, v.reviewer))
            .collect();
        d = format!("{d} ({} {}", a.id, a.state);
        if !reviewers.is_empty() {
            d.push_str(&format!("; {}", reviewers.join(", ")));
        }
        d.push(')');
    }
    d
}

fn status(e: &Event) -> String {
    e.response_status
        .as_ref()
        .map(|s| s.code.to_string())
        .unwrap_or_else(|| "-".into())
}

fn yaml_block(out: &mut String, label: &str, v: &Value) {
    let text = match v {
        Value::String(s) => s.clone(),
        other => crate::approvals::review::to_yaml(other),
    };
    out.push_str(&format!("    {label}:\n"));
    for line in text.lines() {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
}

fn body_note(out: &mut String, label: &str, meta: Option<&BodyMeta>) {
    if let Some(m) = meta
        && (m.truncated || m.note.is_some() || !m.masked.is_empty())
    {
        let masked: Vec<String> = m.masked.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "    {label} body: {} bytes{}{}{}\n",
            m.bytes,
            if m.truncated { ", truncated" } else { "" },
            m.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            if masked.is_empty() {
                String::new()
            } else {
                format!(", masked: {}", masked.join(" "))
            }
        ));
    }
}

/// A readable timeline: a line per request (time, caller, kubectl command, verb, resource,
/// namespace/name, decision and reviewers, status, duration); `bodies` adds the masked bodies
/// as YAML.
pub fn timeline(events: &[Stored], bodies: bool) -> String {
    let mut out = String::new();
    for group in by_request(events) {
        let Some(last) = group.last() else { continue };
        let e = &last.event;
        let h = &e.holdpoint;
        let first = group[0];
        let command = h
            .kubectl_command
            .clone()
            .or_else(|| h.action.as_ref().map(|_| "(admin)".into()))
            .unwrap_or_else(|| "-".into());
        let duration = h
            .duration_ms
            .map(|d| format!("{d:.1}ms"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}  {}  {}  {} {}  {}  {} {}  {}\n",
            first.row.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            who(e),
            command,
            e.verb,
            object(e),
            decision(e),
            status(e),
            h.outcome,
            duration,
        ));
        if let Some(reason) = &h.reason {
            out.push_str(&format!("    reason: {reason}\n"));
        }
        if let Some(error) = &h.error {
            out.push_str(&format!("    error: {error}\n"));
        }
        if let Some(s) = &h.stream {
            out.push_str(&format!(
                "    {} stream: {} bytes in, {} bytes out{}{}\n",
                s.kind,
                s.bytes_in,
                s.bytes_out,
                s.exit_status.as_deref().map(exit_text).unwrap_or_default(),
                if s.kind == "portforward" {
                    format!(", {} connections", s.connections.len())
                } else {
                    ", replay with `holdpoint sessions replay`".into()
                }
            ));
        }
        if bodies {
            for s in &group {
                body_note(&mut out, "request", s.event.holdpoint.request_body.as_ref());
                if let Some(v) = s.body(false) {
                    yaml_block(&mut out, "request", &v);
                }
                if s.cast().is_none() {
                    body_note(
                        &mut out,
                        "response",
                        s.event.holdpoint.response_body.as_ref(),
                    );
                    if let Some(v) = s.body(true) {
                        yaml_block(&mut out, "response", &v);
                    }
                }
            }
        }
    }
    out
}

/// The requests of a session in order, as `kubectl -v=6` prints them.
pub fn kubectl_lines(events: &[Stored], server: &str) -> String {
    let mut out = String::new();
    for group in by_request(events) {
        let Some(last) = group.last() else { continue };
        let e = &last.event;
        let h = &e.holdpoint;
        if h.method.is_empty() {
            continue;
        }
        let code = e.response_status.as_ref().map(|s| s.code).unwrap_or(0);
        let reason = http::StatusCode::from_u16(code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("");
        out.push_str(&format!(
            "{} {}{} {} {} in {} milliseconds\n",
            h.method,
            server,
            e.request_uri,
            code,
            reason,
            h.duration_ms.map(|d| d.round() as u64).unwrap_or(0)
        ));
    }
    out
}

/// An event as one line of the `jsonl` export.
pub fn to_jsonl(s: &Stored) -> Value {
    let mut v = serde_json::to_value(&s.event).unwrap_or(Value::Null);
    if let Some(h) = v.get_mut("holdpoint").and_then(Value::as_object_mut) {
        h.insert("seq".into(), json!(s.row.seq));
        h.insert("hash".into(), json!(super::hex(&s.row.hash)));
        h.insert("session".into(), json!(s.row.session_id));
        h.insert("eventKind".into(), json!(s.row.kind));
    }
    if let Some(req) = s.body(false) {
        v["requestObject"] = req;
    }
    if let Some(resp) = s.body(true) {
        v["responseObject"] = resp;
    }
    v
}

/// An event as a plain `audit.k8s.io/v1` Event (the `k8s-audit` export).
pub fn to_k8s(s: &Stored) -> Value {
    let e = &s.event;
    let h = &e.holdpoint;
    let mut annotations = e.annotations.clone();
    let mut put = |k: &str, v: String| {
        annotations.insert(format!("holdpoint.dev/{k}"), v);
    };
    put("seq", s.row.seq.to_string());
    put("hash", super::hex(&s.row.hash));
    put("session", s.row.session_id.clone());
    put("event-kind", s.row.kind.clone());
    put("outcome", h.outcome.clone());
    put("mutating", h.mutating.to_string());
    put("request-bytes", h.bytes.request.to_string());
    put("response-bytes", h.bytes.response.to_string());
    for (k, v) in [
        ("authenticator", &h.authenticator),
        ("refused-credential", &h.refused_credential),
        ("decision", &h.decision),
        ("rule", &h.rule),
        ("kubectl-command", &h.kubectl_command),
        ("kubectl-session", &h.kubectl_session),
        ("holdpoint-session", &h.holdpoint_session),
        ("error", &h.error),
        ("action", &h.action),
        ("reason", &h.reason),
        ("instance", &h.instance),
    ] {
        if let Some(v) = v {
            put(k, v.clone());
        }
    }
    if let Some(d) = h.duration_ms {
        put("duration-ms", format!("{d:.3}"));
    }
    if let Some(a) = &h.approval {
        put("approval", a.id.clone());
        put("approval-state", a.state.clone());
        let reviewers: Vec<String> = a
            .votes
            .iter()
            .map(|v| format!("{}:{}", v.reviewer, v.decision))
            .collect();
        if !reviewers.is_empty() {
            put("reviewers", reviewers.join(","));
        }
    }
    let mut masked = BTreeMap::new();
    for (which, meta) in [("request", &h.request_body), ("response", &h.response_body)] {
        if let Some(m) = meta {
            for (rule, n) in &m.masked {
                *masked.entry(format!("{which}.{rule}")).or_insert(0u64) += n;
            }
            if m.truncated {
                put(&format!("{which}-truncated"), "true".into());
                if let Some(sha) = &m.sha256 {
                    put(&format!("{which}-sha256"), sha.clone());
                }
            }
        }
    }
    if !masked.is_empty() {
        put(
            "masked",
            masked
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if let Some(stream) = &h.stream {
        put("stream", serde_json::to_string(stream).unwrap_or_default());
    }
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("holdpoint");
        o.insert("annotations".into(), json!(annotations));
        for (key, response) in [("requestObject", false), ("responseObject", true)] {
            if let Some(body @ Value::Object(_)) = s.body(response) {
                o.insert(key.into(), body);
            }
        }
    }
    v
}

/// The events of a cast: `(seconds, code, data)`, after the header line.
pub fn cast_events(cast: &str) -> Vec<(f64, String, String)> {
    cast.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<(f64, String, String)>(l).ok())
        .collect()
}

/// Parses `--since`: an RFC 3339 time, or a duration back from `now` (`1h`, `30m`, `7d`).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Some(t) = parse_time(text) {
        return Ok(t);
    }
    let text = text.trim();
    let days = text
        .strip_suffix('d')
        .and_then(|d| d.parse::<i64>().ok())
        .map(|d| jiff::SignedDuration::from_hours(d * 24));
    let back = match days {
        Some(d) => d,
        None => {
            let d = crate::config::parse_duration(text).map_err(|_| {
                format!("--since {text:?}: give a time (RFC 3339) or a duration (1h, 30m, 7d)")
            })?;
            jiff::SignedDuration::try_from(d).map_err(|e| e.to_string())?
        }
    };
    now.checked_sub(back).map_err(|e| e.to_string())
}

/// How `sessions show` reads a stream's exit status: `exit 0`, `exit 3`, or the status text
/// when it is not an exit code (the process may never have run).
fn exit_text(status: &str) -> String {
    match kube_streams::status::exit_code(status) {
        Some(0) => ", exit 0 (Success)".into(),
        Some(code) => format!(", exit {code}"),
        None => {
            let message = serde_json::from_str::<serde_json::Value>(status)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| status.trim().to_owned());
            format!(", ended with: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_durations() {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("2026-12-01T00:00:00Z", now).unwrap(),
            "2026-12-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("1h", now).unwrap(),
            "2026-12-02T09:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("7d", now).unwrap(),
            "2026-11-25T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_since("yesterday-ish", now).is_err());
    }

    #[test]
    fn cast_events_skip_the_header() {
        let cast =
            "{\"version\":2,\"width\":80,\"height\":24}\n[0.5,\"o\",\"hi\"]\n[1.0,\"i\",\"x\"]\n";
        assert_eq!(
            cast_events(cast),
            vec![
                (0.5, "o".into(), "hi".into()),
                (1.0, "i".into(), "x".into())
            ]
        );
    }
}
