//! Header hygiene between the caller, the gateway and the upstream.
//!
//! The gateway forwards an explicit allow-list of request headers. Everything else, and in
//! particular the caller's `Authorization`, every `Impersonate-*` and `X-Remote-*` header (in any
//! case), cookies, `Forwarded`/`X-Real-Ip`, and every hop-by-hop header including those the caller
//! names in `Connection`, is dropped *before* the gateway adds its own headers (identity,
//! `X-Forwarded-For`, `Audit-Id`). An allow-list fails closed: a header nobody thought of does not
//! reach the upstream. See `shared/attack-surface.md` items 1-5.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Request headers a caller may pass to the upstream unchanged.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "content-type",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "kubectl-command",
    "kubectl-session",
    "traceparent",
    "tracestate",
    "user-agent",
];

/// Extra request headers forwarded only on an allowed protocol upgrade (exec, attach,
/// port-forward): the WebSocket handshake and the SPDY stream protocol negotiation.
/// `Sec-WebSocket-Extensions` is not among them: the stream tap reads every message and cannot
/// read compressed ones, so no extension is ever negotiated.
const UPGRADE_REQUEST_HEADERS: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-version",
    "x-stream-protocol-version",
];

/// Hop-by-hop headers (RFC 9110 section 7.6.1 plus the historical ones).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Response headers never relayed to the caller (besides hop-by-hop ones).
const DROPPED_RESPONSE_HEADERS: &[&str] = &["location", "set-cookie", "www-authenticate"];

/// The lowercase names listed in every `Connection` header of `headers`.
fn connection_named(headers: &HeaderMap) -> HashSet<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `Upgrade` protocol of a request that asks for one (`Connection: upgrade` and `Upgrade`).
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = connection_named(headers).contains("upgrade");
    match headers.get(header::UPGRADE) {
        Some(v) if wants => Some(v.clone()),
        _ => None,
    }
}

/// What the gateway adds to every upstream request.
#[derive(Debug, Clone)]
pub struct ForwardContext<'a> {
    /// The direct peer's address (appended to `X-Forwarded-For`).
    pub peer: IpAddr,
    /// The gateway's audit id for this request, sent as `Audit-Id`.
    pub audit_id: &'a str,
    /// The protocol when the request is an allowed upgrade.
    pub upgrade: Option<HeaderValue>,
    /// Identity headers the gateway means to set (`Impersonate-*`), added last.
    pub identity: &'a [(HeaderName, HeaderValue)],
}

/// Builds the upstream request headers from the caller's. Pure: easy to test and fuzz.
pub fn upstream_request_headers(incoming: &HeaderMap, ctx: &ForwardContext<'_>) -> HeaderMap {
    let named = connection_named(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + 4);
    let allowed = |name: &HeaderName| {
        let n = name.as_str();
        if named.contains(n) || HOP_BY_HOP.contains(&n) {
            return false;
        }
        FORWARDED_REQUEST_HEADERS.contains(&n)
            || (ctx.upgrade.is_some() && UPGRADE_REQUEST_HEADERS.contains(&n))
    };
    for (name, value) in incoming {
        if allowed(name) {
            out.append(name.clone(), value.clone());
        }
    }

    // X-Forwarded-For: appended to whatever the caller claimed, never trusted by the gateway.
    let mut xff = String::with_capacity(48);
    for prior in incoming.get_all("x-forwarded-for") {
        if let Ok(v) = prior.to_str() {
            xff.push_str(v);
            xff.push_str(", ");
        }
    }
    let _ = write!(xff, "{}", ctx.peer);
    if let Ok(v) = HeaderValue::from_str(&xff) {
        out.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(ctx.audit_id) {
        out.insert("audit-id", v);
    }
    if let Some(proto) = &ctx.upgrade {
        out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        out.insert(header::UPGRADE, proto.clone());
    }
    for (name, value) in ctx.identity {
        out.append(name.clone(), value.clone());
    }
    out
}

/// Builds the headers relayed to the caller from the upstream's response headers.
/// For a `101 Switching Protocols` the upgrade handshake headers are kept.
pub fn client_response_headers(upstream: &HeaderMap, switching_protocols: bool) -> HeaderMap {
    let named = connection_named(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        let hop = HOP_BY_HOP.contains(&n) || named.contains(n);
        let keep_for_upgrade = switching_protocols && (n == "connection" || n == "upgrade");
        if (hop && !keep_for_upgrade) || DROPPED_RESPONSE_HEADERS.contains(&n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(identity: &'a [(HeaderName, HeaderValue)]) -> ForwardContext<'a> {
        ForwardContext {
            peer: "10.1.2.3".parse().unwrap(),
            audit_id: "abc",
            upgrade: None,
            identity,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn caller_credentials_and_identity_headers_never_pass() {
        let incoming = map(&[
            ("Authorization", "Bearer caller-token"),
            ("Proxy-Authorization", "Basic eA=="),
            ("Impersonate-User", "system:admin"),
            ("IMPERSONATE-GROUP", "system:masters"),
            ("impersonate-uid", "0"),
            ("Impersonate-Extra-Scopes", "all"),
            ("X-Remote-User", "admin"),
            ("x-remote-group", "system:masters"),
            ("X-Remote-Extra-Foo", "bar"),
            ("Cookie", "session=1"),
            ("X-Real-Ip", "1.1.1.1"),
            ("Forwarded", "for=1.1.1.1"),
            ("Audit-Id", "caller-chosen"),
            ("Accept", "application/json"),
        ]);
        let out = upstream_request_headers(&incoming, &ctx(&[]));
        for name in out.keys() {
            let n = name.as_str();
            assert!(
                !n.starts_with("impersonate-") && !n.starts_with("x-remote-"),
                "{n} leaked"
            );
            assert!(
                ![
                    "authorization",
                    "proxy-authorization",
                    "cookie",
                    "x-real-ip",
                    "forwarded"
                ]
                .contains(&n)
            );
        }
        assert_eq!(out["audit-id"], "abc");
        assert_eq!(out["accept"], "application/json");
    }

    #[test]
    fn connection_named_headers_are_dropped_before_identity_is_added() {
        // CVE-2021-31999: `Connection: Impersonate-User` must not make a later hop delete the
        // identity the gateway sets, and must not remove it here either.
        let incoming = map(&[
            ("Connection", "Impersonate-User, Accept"),
            ("Accept", "application/json"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
        ]);
        let identity = [(
            HeaderName::from_static("impersonate-user"),
            HeaderValue::from_static("alice"),
        )];
        let out = upstream_request_headers(&incoming, &ctx(&identity));
        assert!(out.get("connection").is_none());
        assert!(
            out.get("accept").is_none(),
            "Accept was named hop-by-hop by the caller"
        );
        assert!(out.get("keep-alive").is_none() && out.get("te").is_none());
        assert_eq!(out.get_all("impersonate-user").iter().count(), 1);
        assert_eq!(out["impersonate-user"], "alice");
    }

    #[test]
    fn x_forwarded_for_is_appended() {
        let incoming = map(&[("X-Forwarded-For", "6.6.6.6")]);
        let out = upstream_request_headers(&incoming, &ctx(&[]));
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        let out = upstream_request_headers(&HeaderMap::new(), &ctx(&[]));
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
    }

    #[test]
    fn upgrade_headers_pass_only_on_allowed_upgrades() {
        let incoming = map(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "k"),
            ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]);
        let out = upstream_request_headers(&incoming, &ctx(&[]));
        assert!(out.get("upgrade").is_none() && out.get("sec-websocket-key").is_none());
        let mut c = ctx(&[]);
        c.upgrade = requested_upgrade(&incoming);
        let out = upstream_request_headers(&incoming, &c);
        assert_eq!(out["upgrade"], "websocket");
        assert_eq!(out["connection"], "Upgrade");
        assert_eq!(out["sec-websocket-protocol"], "v5.channel.k8s.io");
        assert!(
            out.get("sec-websocket-extensions").is_none(),
            "the tap cannot read compressed messages"
        );
    }

    #[test]
    fn response_hop_by_hop_and_redirect_targets_are_dropped() {
        let upstream = map(&[
            ("Connection", "close, X-Secret"),
            ("X-Secret", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Location", "https://elsewhere"),
            ("Content-Type", "application/json"),
        ]);
        let out = client_response_headers(&upstream, false);
        assert_eq!(out.len(), 1);
        assert_eq!(out["content-type"], "application/json");
        let up = map(&[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]);
        let out = client_response_headers(&up, true);
        assert_eq!(out["upgrade"], "SPDY/3.1");
    }
}
