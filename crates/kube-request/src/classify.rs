//! Request classification: the apiserver's `RequestInfo`, plus Holdpoint's
//! semantics on top of it (mutating, connect/upgrade, read-only reviews,
//! non-resource kinds).
//!
//! The classification mirrors `RequestInfoFactory.NewRequestInfo` in
//! `k8s.io/apiserver/pkg/endpoints/request` with `APIPrefixes = {api, apis}`
//! and `GrouplessAPIPrefixes = {api}`:
//!
//! * fewer than 3 segments, an unknown prefix, or `apis` with fewer than 4
//!   segments: a non-resource request whose verb is the lowercase method;
//! * `watch` or `proxy` right after the version sets the verb from the path
//!   (the method is then ignored by the apiserver);
//! * otherwise `POST`→create, `GET`/`HEAD`→get, `PUT`→update,
//!   `PATCH`→patch, `DELETE`→delete, any other method → `""`;
//! * `namespaces/{ns}/{x}` re-roots at `{x}` unless `{x}` is `status` or
//!   `finalize` (namespace subresources);
//! * `get` without a name becomes `list` or `watch` (see
//!   [`crate::selector`] for the `watch` and `fieldSelector` details);
//! * `delete` without a name becomes `deletecollection`.

use std::borrow::Cow;

use http::Method;
use serde::{Serialize, Serializer};

use crate::PathError;
use crate::path::{decode_path, split_segments};
use crate::query::GoQueryPairs;
use crate::selector;

/// The apiserver's `RequestInfo` for one request (serialized in camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// The HTTP method (not part of the apiserver's struct; needed for
    /// Holdpoint's semantics).
    #[serde(serialize_with = "serialize_method")]
    pub method: Method,
    /// `true` for API resources and subresources.
    pub is_resource_request: bool,
    /// The percent-decoded path (Go's `URL.Path`).
    pub path: String,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection`, `proxy`, or `""` for unknown
    /// methods on resources); for non-resource requests the lowercase HTTP
    /// method.
    pub verb: String,
    /// `api` or `apis` (empty for non-resource requests).
    pub api_prefix: String,
    /// The API group (empty for the core group).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The namespace (for `namespaces/{ns}` itself, `{ns}`).
    pub namespace: String,
    /// The resource, e.g. `pods`.
    pub resource: String,
    /// The subresource, e.g. `status`, `exec`, `proxy`.
    pub subresource: String,
    /// The object name, if the path (or a `metadata.name` field selector on a
    /// list/watch) names one.
    pub name: String,
    /// Path parts starting at the resource: `resource/name/subresource/...`.
    /// For proxy subresources the proxied path follows.
    pub parts: Vec<String>,
    /// First `fieldSelector` value, for list/watch/deletecollection not using
    /// a legacy path-prefix verb (the `AuthorizeWithSelectors` behaviour).
    pub field_selector: String,
    /// First `labelSelector` value, same rules as `field_selector`.
    pub label_selector: String,
    /// The verb came from a legacy `/watch/` or `/proxy/` path prefix.
    pub verb_via_path_prefix: bool,
}

fn serialize_method<S: Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// A subresource that is served by a connect handler and may upgrade the
/// connection (SPDY / WebSocket) or stream arbitrary bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ConnectKind {
    /// `pods/exec`
    Exec,
    /// `pods/attach`
    Attach,
    /// `pods/portforward`
    PortForward,
    /// `pods|services|nodes/proxy` and the legacy `/proxy/` verb.
    Proxy,
}

/// What a non-resource URL is, so policy can allow or deny by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NonResourceKind {
    /// `/`, `/api`, `/api/{v}`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`.
    Discovery,
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` and below.
    Health,
    /// `/openapi/...`
    OpenApi,
    /// `/metrics` and below.
    Metrics,
    /// `/logs` and below (node/apiserver log files).
    Logs,
    /// `/debug/...` (pprof, flags: `PUT /debug/flags/v` changes log level).
    Debug,
    /// `/.well-known/...` and `/openid/v1/jwks` (service-account issuer).
    WellKnown,
    /// Anything else.
    Other,
}

/// Review APIs that are `POST` but only read: (group, resource).
const READ_ONLY_REVIEWS: &[(&str, &str)] = &[
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

fn is_read_method(m: &Method) -> bool {
    *m == Method::GET || *m == Method::HEAD
}

/// Classifies a request exactly as the kube-apiserver's `RequestInfo`
/// filter would, after Holdpoint's path-safety checks.
///
/// `raw_path` is the path component of the request target as received
/// (still percent-encoded); `raw_query` is the query without the `?`.
pub fn classify(
    method: &Method,
    raw_path: &str,
    raw_query: Option<&str>,
) -> Result<RequestInfo, PathError> {
    let path = decode_path(raw_path)?;

    let mut info = RequestInfo {
        method: method.clone(),
        is_resource_request: false,
        path: String::new(),
        verb: String::new(),
        api_prefix: String::new(),
        api_group: String::new(),
        api_version: String::new(),
        namespace: String::new(),
        resource: String::new(),
        subresource: String::new(),
        name: String::new(),
        parts: Vec::new(),
        field_selector: String::new(),
        label_selector: String::new(),
        verb_via_path_prefix: false,
    };

    // At most a handful of segments are needed before `parts`; collect the
    // borrowed segments once (cheap, no string copies).
    let segs: Vec<&str> = split_segments(&path).collect();
    let mut cur: &[&str] = &segs;

    let prefix = match cur.first() {
        Some(&p @ ("api" | "apis")) if cur.len() >= 3 => p,
        _ => {
            info.verb = method.as_str().to_ascii_lowercase();
            info.path = path;
            return Ok(info);
        }
    };
    cur = &cur[1..];
    let mut group = "";
    if prefix == "apis" {
        if cur.len() < 3 {
            info.verb = method.as_str().to_ascii_lowercase();
            info.path = path;
            return Ok(info);
        }
        group = cur[0];
        cur = &cur[1..];
    }
    let version = cur[0];
    cur = &cur[1..];

    let verb: &str;
    if cur[0] == "watch" || cur[0] == "proxy" {
        if cur.len() < 2 {
            return Err(PathError::MissingResource);
        }
        verb = cur[0];
        cur = &cur[1..];
        info.verb_via_path_prefix = true;
    } else {
        verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        };
    }

    let mut namespace = "";
    if cur[0] == "namespaces" && cur.len() > 1 {
        namespace = cur[1];
        // another step after the namespace name that is not a namespace
        // subresource is a namespaced resource in its own right
        if cur.len() > 2 && cur[2] != "status" && cur[2] != "finalize" {
            cur = &cur[2..];
        }
    }

    let mut resource = "";
    let mut name = "";
    let mut subresource = "";
    if !cur.is_empty() {
        resource = cur[0];
    }
    if cur.len() >= 2 {
        name = cur[1];
    }
    if cur.len() >= 3 && verb != "proxy" {
        subresource = cur[2];
    }

    let mut verb = verb;
    let mut name_from_selector: Option<String> = None;
    let mut list_query: Option<ListQuery<'_>> = None;
    if name.is_empty() && verb == "get" {
        let q = ListQuery::scan(raw_query);
        let mut decode_ok = q.ints_ok;
        let mut selected = None;
        if let Some(fs) = &q.field_selector {
            // Go would keep non-UTF-8 bytes; such a name can never match an
            // object, so we leave the name unset.
            if let Ok(fs) = std::str::from_utf8(fs) {
                match selector::exact_metadata_name(fs) {
                    Ok(n) => selected = n,
                    Err(()) => decode_ok = false,
                }
            }
        }
        let watch = match q.watch.as_deref().map(String::from_utf8_lossy) {
            None => false,
            Some(v) if decode_ok => !(v == "0" || selector::equal_fold_false(&v)),
            Some(v) => {
                let l = v.to_lowercase();
                !(l == "0" || l == "false")
            }
        };
        verb = if watch { "watch" } else { "list" };
        if decode_ok {
            name_from_selector = selected.filter(|n| selector::is_valid_path_segment_name(n));
        }
        list_query = Some(q);
    }
    if name.is_empty() && verb == "delete" {
        verb = "deletecollection";
    }
    if !info.verb_via_path_prefix && matches!(verb, "list" | "watch" | "deletecollection") {
        let q = list_query.unwrap_or_else(|| ListQuery::scan(raw_query));
        if let Some(v) = q.field_selector {
            info.field_selector = String::from_utf8_lossy(&v).into_owned();
        }
        if let Some(v) = q.label_selector {
            info.label_selector = String::from_utf8_lossy(&v).into_owned();
        }
    }

    info.is_resource_request = true;
    info.verb = verb.to_owned();
    info.api_prefix = prefix.to_owned();
    info.api_group = group.to_owned();
    info.api_version = version.to_owned();
    info.namespace = namespace.to_owned();
    info.resource = resource.to_owned();
    info.subresource = subresource.to_owned();
    info.name = match name_from_selector {
        Some(n) => n,
        None => name.to_owned(),
    };
    info.parts = cur.iter().map(|s| (*s).to_owned()).collect();
    info.path = path;
    Ok(info)
}

/// The bits of `ListOptions` decoding that `RequestInfo` depends on: the
/// first value of each relevant parameter, from a single pass over the query.
struct ListQuery<'a> {
    watch: Option<Cow<'a, [u8]>>,
    field_selector: Option<Cow<'a, [u8]>>,
    label_selector: Option<Cow<'a, [u8]>>,
    /// `limit` and `timeoutSeconds` (if present) parse as `int64`.
    ints_ok: bool,
}

impl<'a> ListQuery<'a> {
    fn scan(raw_query: Option<&'a str>) -> ListQuery<'a> {
        let mut q = ListQuery {
            watch: None,
            field_selector: None,
            label_selector: None,
            ints_ok: true,
        };
        let Some(raw) = raw_query else { return q };
        let (mut seen_limit, mut seen_timeout) = (false, false);
        for (k, v) in GoQueryPairs::new(raw) {
            let (seen, int) = match k.as_ref() {
                b"watch" if q.watch.is_none() => {
                    q.watch = Some(v);
                    continue;
                }
                b"fieldSelector" if q.field_selector.is_none() => {
                    q.field_selector = Some(v);
                    continue;
                }
                b"labelSelector" if q.label_selector.is_none() => {
                    q.label_selector = Some(v);
                    continue;
                }
                b"limit" => (&mut seen_limit, v),
                b"timeoutSeconds" => (&mut seen_timeout, v),
                _ => continue,
            };
            if !*seen {
                *seen = true;
                q.ints_ok &= std::str::from_utf8(&int).is_ok_and(selector::parses_as_i64);
            }
        }
        q
    }
}

impl RequestInfo {
    /// Whether Holdpoint treats the request as a change (fail closed).
    ///
    /// Resource requests:
    /// * the read-only review APIs ([`Self::is_read_only_review`]) → `false`;
    /// * every connect subresource (`exec`, `attach`, `portforward`,
    ///   `proxy`, and the legacy `/proxy/` verb) → `true`, whatever the
    ///   method: these open a shell, a tunnel or reach a backend;
    /// * `serviceaccounts/{n}/token` (mints credentials, even in dry run) and
    ///   `certificatesigningrequests/{n}/approval` → `true`, whatever the
    ///   method;
    /// * `get`, `list`, `watch` → `false` only if the method is `GET` or
    ///   `HEAD` (a legacy `/watch/` path with `DELETE` is classified `watch`
    ///   by the apiserver, but we do not trust it);
    /// * everything else (`create`, `update`, `patch`, `delete`,
    ///   `deletecollection`, `""` for unknown methods) → `true`. This
    ///   includes `pods/ephemeralcontainers` and `pods/eviction` writes.
    ///
    /// Non-resource requests: `false` only for `GET` and `HEAD`.
    pub fn is_mutating(&self) -> bool {
        if !self.is_resource_request {
            return !is_read_method(&self.method);
        }
        if self.is_read_only_review() {
            return false;
        }
        if self.connect_kind().is_some() {
            return true;
        }
        match (self.resource.as_str(), self.subresource.as_str()) {
            ("serviceaccounts", "token") | ("certificatesigningrequests", "approval") => {
                return true;
            }
            _ => {}
        }
        match self.verb.as_str() {
            "get" | "list" | "watch" => !is_read_method(&self.method),
            _ => true,
        }
    }

    /// The connect subresource, if any: `exec`, `attach`, `portforward`,
    /// `proxy` (for any resource, fail closed), or the legacy `/proxy/`
    /// path verb.
    pub fn connect_kind(&self) -> Option<ConnectKind> {
        if !self.is_resource_request {
            return None;
        }
        if self.verb_via_path_prefix && self.verb == "proxy" {
            return Some(ConnectKind::Proxy);
        }
        match self.subresource.as_str() {
            "exec" => Some(ConnectKind::Exec),
            "attach" => Some(ConnectKind::Attach),
            "portforward" => Some(ConnectKind::PortForward),
            "proxy" => Some(ConnectKind::Proxy),
            _ => None,
        }
    }

    /// Whether an HTTP `Upgrade` (SPDY/WebSocket) is legitimate for this
    /// request: only connect subresources upgrade.
    pub fn is_upgrade_allowed(&self) -> bool {
        self.connect_kind().is_some()
    }

    /// `create` (POST) of a review API that only reads:
    /// `selfsubjectaccessreviews`, `selfsubjectrulesreviews`,
    /// `subjectaccessreviews`, `localsubjectaccessreviews` in
    /// `authorization.k8s.io`; `tokenreviews`, `selfsubjectreviews` in
    /// `authentication.k8s.io`. Any version; no name, no subresource.
    pub fn is_read_only_review(&self) -> bool {
        self.is_resource_request
            && self.verb == "create"
            && self.method == Method::POST
            && self.name.is_empty()
            && self.subresource.is_empty()
            && READ_ONLY_REVIEWS
                .iter()
                .any(|(g, r)| self.api_group == *g && self.resource == *r)
    }

    /// For non-resource requests, what kind of URL it is (by first path
    /// segment); `None` for resource requests.
    pub fn non_resource_kind(&self) -> Option<NonResourceKind> {
        if self.is_resource_request {
            return None;
        }
        let mut segs = split_segments(&self.path);
        let first = segs.next().unwrap_or("");
        Some(match first {
            "" | "api" | "apis" => NonResourceKind::Discovery,
            "version" => NonResourceKind::Version,
            "healthz" | "livez" | "readyz" => NonResourceKind::Health,
            "openapi" => NonResourceKind::OpenApi,
            "metrics" => NonResourceKind::Metrics,
            "logs" => NonResourceKind::Logs,
            "debug" => NonResourceKind::Debug,
            ".well-known" => NonResourceKind::WellKnown,
            "openid" => NonResourceKind::WellKnown,
            _ => NonResourceKind::Other,
        })
    }

    /// The path after the `proxy` subresource (or after `{resource}/{name}`
    /// for the legacy `/proxy/` verb), without a leading slash; `None` when
    /// not a proxy request.
    pub fn proxy_path(&self) -> Option<String> {
        match self.connect_kind()? {
            ConnectKind::Proxy if self.verb_via_path_prefix => {
                Some(self.parts.get(2..).unwrap_or(&[]).join("/"))
            }
            ConnectKind::Proxy => Some(self.parts.get(3..).unwrap_or(&[]).join("/")),
            _ => None,
        }
    }
}
