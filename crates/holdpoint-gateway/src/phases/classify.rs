//! The classify phase: path safety, then the apiserver's RequestInfo, then whether a protocol
//! upgrade may happen.
//!
//! The pure work is in the `kube-request` crate; this phase adds what depends on the HTTP layer:
//! absolute-form targets on HTTP/1.x are refused, and only the streaming subresources may upgrade.

use http::{HeaderValue, Request, Version};
use kube_request::{ConnectKind, RequestInfo};

use crate::error::GatewayError;
use crate::headers::requested_upgrade;

/// A classified request.
#[derive(Debug, Clone)]
pub struct Classified {
    /// The apiserver's view of the request.
    pub info: RequestInfo,
    /// The protocol, when the request is an allowed upgrade.
    pub upgrade: Option<HeaderValue>,
}

/// Classifies the request head.
pub fn classify<B>(req: &Request<B>) -> Result<Classified, GatewayError> {
    let uri = req.uri();
    // HTTP/2 always carries scheme and authority; on HTTP/1.x they mean an absolute-form target,
    // which the apiserver never sees from a client and which a proxy must not reinterpret.
    if req.version() < Version::HTTP_2 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(GatewayError::BadRequest(
            "absolute-form request targets are not accepted".into(),
        ));
    }
    let info = kube_request::classify(req.method(), uri.path(), uri.query())?;
    let upgrade = requested_upgrade(req.headers());
    if upgrade.is_some() {
        match info.connect_kind() {
            Some(ConnectKind::Exec | ConnectKind::Attach | ConnectKind::PortForward) => {}
            _ => return Err(GatewayError::UpgradeNotAllowed),
        }
        if req.version() != Version::HTTP_11 {
            return Err(GatewayError::BadRequest(
                "protocol upgrades need HTTP/1.1".into(),
            ));
        }
    }
    Ok(Classified { info, upgrade })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, upgrade: bool) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        if upgrade {
            b = b
                .header("connection", "Upgrade")
                .header("upgrade", "websocket");
        }
        b.body(()).unwrap()
    }

    #[test]
    fn upgrades_only_on_streaming_subresources() {
        assert!(
            classify(&req(
                "GET",
                "/api/v1/namespaces/d/pods/p/exec?command=ls",
                true
            ))
            .is_ok()
        );
        assert!(
            classify(&req(
                "POST",
                "/api/v1/namespaces/d/pods/p/portforward",
                true
            ))
            .is_ok()
        );
        for uri in [
            "/api/v1/namespaces/d/pods/p",
            "/api/v1/namespaces/d/pods/p/log",
            "/api/v1/namespaces/d/services/s/proxy/",
            "/version",
        ] {
            assert!(
                matches!(
                    classify(&req("GET", uri, true)),
                    Err(GatewayError::UpgradeNotAllowed)
                ),
                "{uri}"
            );
        }
    }

    #[test]
    fn absolute_form_is_refused_on_http1() {
        let r = req("GET", "https://evil/api/v1/pods", false);
        assert!(matches!(classify(&r), Err(GatewayError::BadRequest(_))));
    }

    #[test]
    fn path_tricks_are_refused() {
        for uri in [
            "/api/v1/namespaces/d/pods/..",
            "/api/v1/namespaces/d/pods/a%2Fb",
        ] {
            assert!(
                matches!(
                    classify(&req("GET", uri, false)),
                    Err(GatewayError::BadPath(_))
                ),
                "{uri}"
            );
        }
    }
}
