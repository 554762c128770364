//! The router: records every request, authenticates the caller (bearer tokens only), applies
//! impersonation, then routes on the percent-decoded path like the apiserver's request-info
//! parser (`/api/v1/...`, `/apis/{g}/{v}/...`, the legacy `/watch/` prefix, `namespaces/{ns}/...`,
//! subresources) to discovery, OpenAPI, health, and the resource handlers in [`crate::handlers`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Identity, TokenSigner};
use crate::error::{ApiError, ApiResult};
use crate::handlers::{self, Ctx};
use crate::respond::{self, As, Body, Negotiated, bytes_response, error_response, value_response};
use crate::store::Store;
use crate::streams::{self, StreamKind};
use crate::{discovery, openapi};

/// Largest accepted request body.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How many requests [`App::requests`] keeps (oldest dropped first).
pub const MAX_RECORDED: usize = 100_000;

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw (not decoded) path.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Every header in arrival order, names lower-cased (values lossily decoded as UTF-8).
    pub headers: Vec<(String, String)>,
    /// When the emulator's router received the request (its head; before the body is read).
    /// Benchmarks compare it with their own `Instant`s when the emulator runs in-process.
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// First value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Shared server state.
#[derive(Debug)]
pub struct App {
    /// Objects.
    pub store: Store,
    /// Service-account token signer.
    pub signer: TokenSigner,
    /// The admin bearer token.
    pub admin_token: String,
    /// Recorded requests.
    pub recorder: Mutex<VecDeque<RecordedRequest>>,
    /// Cancelled on shutdown (ends watches and log follows).
    pub shutdown: CancellationToken,
    /// `host:port` the server listens on.
    pub server: String,
    /// TokenReviews handled so far (tests assert how many a gateway sent).
    pub token_reviews: std::sync::atomic::AtomicU64,
}

impl App {
    fn record(&self, req: &Request<Incoming>) {
        let r = RecordedRequest {
            received_at: std::time::Instant::now(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(String::from),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).to_string(),
                    )
                })
                .collect(),
        };
        let mut g = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_RECORDED {
            g.pop_front();
        }
        g.push_back(r);
    }

    /// Who a bearer token belongs to.
    pub fn authenticate_token(&self, token: &str) -> Option<Identity> {
        if !self.admin_token.is_empty() && token == self.admin_token {
            return Some(Identity::admin());
        }
        let claims = self.signer.verify(token, crate::objects::now_secs())?;
        let sa = self
            .store
            .get("/serviceaccounts", &claims.namespace, &claims.name)?;
        if !claims.sa_uid.is_empty()
            && sa["metadata"]["uid"].as_str() != Some(claims.sa_uid.as_str())
        {
            return None;
        }
        Some(auth::sa_identity(&claims))
    }
}

/// Parses a query string into a map (last value wins) plus the list of `dryRun` values.
pub fn parse_query(q: Option<&str>) -> (HashMap<String, String>, Vec<String>) {
    let mut map = HashMap::new();
    let mut dry = Vec::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        };
        let (k, v) = (dec(k), dec(v));
        if k == "dryRun" {
            dry.push(v.clone());
        }
        map.insert(k, v);
    }
    (map, dry)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Entry point for every request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    app.record(&req);
    match route(app, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn text(s: &str) -> Response<Body> {
    bytes_response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        s.as_bytes().to_vec(),
        false,
    )
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let decoded = percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8_lossy()
        .to_string();
    let segs: Vec<String> = decoded
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let segs_ref: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Health endpoints are open, like the apiserver's default anonymous access to them.
    if let Some(first) = segs_ref.first()
        && matches!(*first, "healthz" | "livez" | "readyz")
    {
        return Ok(text("ok"));
    }
    let token = header_str(req.headers(), "authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(mut identity) = token.and_then(|t| app.authenticate_token(t)) else {
        return Err(ApiError::unauthorized());
    };
    if let Some(imp) = auth::impersonated(req.headers()) {
        if identity != Identity::admin() {
            return Err(ApiError::forbidden(format!(
                "users \"{}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                imp.username, identity.username
            )));
        }
        identity = imp;
    }
    let accept = header_str(req.headers(), "accept").map(String::from);
    let gzip = header_str(req.headers(), "accept-encoding")
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let get_only = |m: &Method| -> ApiResult<()> {
        if m == Method::GET || m == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(m.as_str()))
        }
    };
    let resources = || app.store.all_resources();
    match segs_ref.as_slice() {
        [] => {
            get_only(req.method())?;
            let paths: Vec<String> = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/openapi/v2",
                "/openapi/v3",
                "/readyz",
                "/version",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(
                discovery::groups(&resources())
                    .into_iter()
                    .flat_map(|(g, vs)| {
                        std::iter::once(format!("/apis/{g}"))
                            .chain(vs.into_iter().map(move |v| format!("/apis/{g}/{v}")))
                    }),
            )
            .collect();
            Ok(value_response(
                StatusCode::OK,
                &serde_json::json!({"paths": paths}),
                Negotiated::JSON,
                gzip,
            ))
        }
        ["version"] => {
            get_only(req.method())?;
            Ok(value_response(
                StatusCode::OK,
                &discovery::version(),
                Negotiated::JSON,
                gzip,
            ))
        }
        ["api"] | ["apis"] => {
            get_only(req.method())?;
            let neg = respond::negotiate(accept.as_deref(), true)?;
            let legacy = segs_ref[0] == "api";
            if neg.as_ == As::Discovery {
                let v = discovery::aggregated(&resources(), legacy);
                let body = serde_json::to_vec(&v).unwrap_or_default();
                return Ok(bytes_response(
                    StatusCode::OK,
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                    body,
                    gzip,
                ));
            }
            let v = if legacy {
                discovery::api_versions(&app.server)
            } else {
                discovery::api_group_list(&resources())
            };
            Ok(value_response(
                StatusCode::OK,
                &v,
                Negotiated {
                    yaml: neg.yaml,
                    as_: As::Object,
                },
                gzip,
            ))
        }
        ["api", "v1"] => {
            get_only(req.method())?;
            let v = discovery::resource_list(&resources(), "", "v1")
                .ok_or_else(ApiError::path_not_found)?;
            Ok(value_response(StatusCode::OK, &v, Negotiated::JSON, gzip))
        }
        ["apis", g] => {
            get_only(req.method())?;
            let v = discovery::api_group(&resources(), g).ok_or_else(ApiError::path_not_found)?;
            Ok(value_response(StatusCode::OK, &v, Negotiated::JSON, gzip))
        }
        ["apis", g, v] => {
            get_only(req.method())?;
            let v = discovery::resource_list(&resources(), g, v)
                .ok_or_else(ApiError::path_not_found)?;
            Ok(value_response(StatusCode::OK, &v, Negotiated::JSON, gzip))
        }
        ["openapi", "v2"] => {
            get_only(req.method())?;
            if accept.as_deref().is_some_and(|a| a.contains("protobuf")) {
                return Ok(bytes_response(
                    StatusCode::OK,
                    openapi::V2_PROTOBUF,
                    openapi::v2_protobuf(),
                    gzip,
                ));
            }
            Ok(value_response(
                StatusCode::OK,
                &openapi::v2(&resources()),
                Negotiated::JSON,
                gzip,
            ))
        }
        ["openapi", "v3"] => {
            get_only(req.method())?;
            Ok(value_response(
                StatusCode::OK,
                &openapi::v3_index(&resources()),
                Negotiated::JSON,
                gzip,
            ))
        }
        ["openapi", "v3", rest @ ..] => {
            get_only(req.method())?;
            let doc = openapi::v3_doc(&resources(), &rest.join("/"))
                .ok_or_else(ApiError::path_not_found)?;
            Ok(value_response(StatusCode::OK, &doc, Negotiated::JSON, gzip))
        }
        ["api", "v1", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(
                app,
                req,
                identity,
                String::new(),
                "v1".into(),
                rest,
                accept,
                gzip,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let (g, v) = (g.to_string(), v.to_string());
            resource_request(app, req, identity, g, v, rest, accept, gzip).await
        }
        _ => Err(ApiError::path_not_found()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    app: Arc<App>,
    req: Request<Incoming>,
    identity: Identity,
    group: String,
    version: String,
    mut parts: Vec<String>,
    accept: Option<String>,
    gzip: bool,
) -> ApiResult<Response<Body>> {
    let mut watch_prefix = false;
    if parts.first().is_some_and(|p| p == "watch") {
        watch_prefix = true;
        parts.remove(0);
    }
    let mut namespace: Option<String> = None;
    if parts.first().is_some_and(|p| p == "namespaces") && parts.len() > 1 {
        namespace = Some(parts[1].clone());
        if parts.len() > 2 && parts[2] != "status" && parts[2] != "finalize" {
            parts.drain(..2);
        } else {
            // `/namespaces/{name}[/status]` addresses the Namespace itself.
            namespace = None;
        }
    }
    let Some(resource) = parts.first().cloned() else {
        return Err(ApiError::path_not_found());
    };
    let name = parts.get(1).cloned();
    let sub = parts.get(2).cloned();
    if parts.len() > 3 {
        return Err(ApiError::path_not_found());
    }
    let res = app
        .store
        .resolve(&group, &version, &resource)
        .ok_or_else(ApiError::path_not_found)?;
    if !res.namespaced && namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = &sub
        && !res.has_sub(s)
    {
        return Err(ApiError::path_not_found());
    }
    let method = req.method().clone();
    // Streaming subresources go to the streams module with the untouched request.
    if res.group.is_empty() && res.plural == "pods" {
        let kind = match sub.as_deref() {
            Some("exec") => Some(StreamKind::Exec),
            Some("attach") => Some(StreamKind::Attach),
            Some("portforward") => Some(StreamKind::PortForward),
            _ => None,
        };
        if let Some(kind) = kind {
            if method != Method::GET && method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let ns = namespace.clone().unwrap_or_default();
            let pod_name = name.clone().unwrap_or_default();
            let pod = app
                .store
                .get("/pods", &ns, &pod_name)
                .ok_or_else(|| ApiError::not_found("", "pods", &pod_name))?;
            let resp = streams::serve(req, kind, pod).await;
            return Ok(resp.map(|b| b.boxed_unsync()));
        }
    }
    let (q, dry_run) = parse_query(req.uri().query());
    let headers = req.headers().clone();
    if let Some(len) = header_str(&headers, "content-length").and_then(|l| l.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return Err(ApiError::too_large());
    }
    let body: Bytes = if matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Err(ApiError::too_large());
                }
                return Err(ApiError::bad_request(format!(
                    "error reading request body: {e}"
                )));
            }
        }
    } else {
        Bytes::new()
    };
    let neg = if sub.as_deref() == Some("log") {
        Negotiated::JSON
    } else {
        respond::negotiate(accept.as_deref(), false)?
    };
    let ctx = Ctx {
        app,
        res,
        all_namespaces: namespace.is_none(),
        ns: namespace.unwrap_or_default(),
        name,
        sub,
        q,
        dry_run,
        headers,
        body,
        neg,
        gzip,
        identity,
        watch_prefix,
    };
    handlers::dispatch(ctx, method).await
}

/// The caller's `UserInfo` as JSON.
pub fn user_info(id: &Identity) -> Value {
    id.to_user_info()
}
