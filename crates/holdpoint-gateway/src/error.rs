//! The gateway's error type and the one place where an error becomes an HTTP response.
//!
//! Every response the gateway produces itself (as opposed to relaying the upstream's) is a
//! Kubernetes `Status` object, so kubectl and client-go print a readable message.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// Everything that can stop a request inside the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request target cannot be a Kubernetes API path (path tricks, bad encoding).
    #[error("invalid request path: {0}")]
    BadPath(#[from] kube_request::PathError),
    /// The request is malformed in some other way.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No credential, or a credential no authenticator accepted. `kind` names the kind of
    /// credential refused, never its contents.
    #[error("Unauthorized: {kind} was not accepted")]
    Unauthenticated {
        /// "bearer token", "client certificate", "no credential", ...
        kind: &'static str,
    },
    /// The credential could not be checked because the service that checks it (the upstream's
    /// TokenReview) failed or did not answer. Fail closed, but say honestly that the credential
    /// was not judged: a 503, not a 401, so a client retries instead of discarding its token.
    #[error("authentication backend unavailable: the {kind} could not be checked, try again")]
    AuthenticationUnavailable {
        /// The kind of credential that could not be checked (never its contents).
        kind: &'static str,
    },
    /// Policy denied the request.
    #[error("{0}")]
    Forbidden(String),
    /// The request body is larger than the configured limit.
    #[error("the request body is too large: the limit is {limit} bytes")]
    BodyTooLarge {
        /// Configured limit in bytes.
        limit: u64,
    },
    /// A protocol upgrade was asked for on a path that may not upgrade.
    #[error("protocol upgrade is only allowed for pods/exec, pods/attach and pods/portforward")]
    UpgradeNotAllowed,
    /// The upstream could not be reached or failed mid-request.
    #[error("the Kubernetes API server is unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream answered with a redirect; redirects are never followed or relayed.
    #[error(
        "the Kubernetes API server answered with a redirect, which the gateway refuses to relay"
    )]
    UpstreamRedirect,
    /// The upstream agreed to an upgrade in a stream protocol the gateway cannot read (so it
    /// could neither mask nor record it): refused, fail closed.
    #[error("the stream cannot be inspected, so it was refused: {0}")]
    StreamNotInspectable(String),
    /// The record phase could not record a request that must be recorded (fail closed).
    #[error("the request could not be recorded and was refused: {0}")]
    RecordFailed(String),
    /// Something the caller named does not exist (an approval id).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state (an approval already decided).
    #[error("{0}")]
    Conflict(String),
    /// A held request is still waiting for reviewers. The message tells the caller (usually an
    /// AI agent, which sees only the message) the approval id, who decides, where, and how to
    /// wait; the answer is a `429` with `Retry-After`, which client-go retries by itself.
    #[error("{message}")]
    Pending {
        /// Everything the caller needs to know, in one sentence or three.
        message: String,
        /// Seconds after which the identical request may be re-sent.
        retry_after: u64,
    },
    /// The state store (approvals, freeze, tokens) cannot be read or written: fail closed.
    #[error("the gateway's state store is unavailable, so the request was refused: {0}")]
    StoreUnavailable(String),
    /// The caller accepts no format the masker can read (only protobuf, CBOR, YAML...).
    #[error("{0}")]
    NotAcceptable(String),
    /// The upstream answered in a form that cannot be masked; the answer was withheld.
    #[error("{0}")]
    Unmaskable(String),
    /// A bug or an unexpected state inside the gateway.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status code the caller receives.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadPath(_) | Self::BadRequest(_) | Self::UpgradeNotAllowed => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::AuthenticationUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamRedirect | Self::StreamNotInspectable(_) => StatusCode::BAD_GATEWAY,
            Self::RecordFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Pending { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Unmaskable(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Kubernetes `StatusReason` for the `reason` field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadPath(_) | Self::BadRequest(_) | Self::UpgradeNotAllowed => "BadRequest",
            Self::Unauthenticated { .. } => "Unauthorized",
            Self::AuthenticationUnavailable { .. } => "ServiceUnavailable",
            Self::Forbidden(_) => "Forbidden",
            Self::BodyTooLarge { .. } => "RequestEntityTooLarge",
            Self::UpstreamUnavailable(_) | Self::RecordFailed(_) | Self::StoreUnavailable(_) => {
                "ServiceUnavailable"
            }
            Self::Pending { .. } => "TooManyRequests",
            Self::NotFound(_) => "NotFound",
            Self::Conflict(_) => "Conflict",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::UpstreamRedirect
            | Self::StreamNotInspectable(_)
            | Self::Unmaskable(_)
            | Self::Internal(_) => "InternalError",
        }
    }

    /// A short machine-friendly outcome label for metrics and the record phase.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::BadPath(_) | Self::BadRequest(_) | Self::UpgradeNotAllowed => "rejected",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::AuthenticationUnavailable { .. } => "auth_unavailable",
            Self::Forbidden(_) => "denied",
            Self::BodyTooLarge { .. } => "too_large",
            Self::UpstreamUnavailable(_) | Self::UpstreamRedirect => "upstream_error",
            Self::StreamNotInspectable(_) => "stream_refused",
            Self::RecordFailed(_) => "record_failed",
            Self::Pending { .. } => "held",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::NotAcceptable(_) => "not_acceptable",
            Self::Unmaskable(_) => "unmaskable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Turns the error into the `Status` response the caller receives.
    pub fn to_response(&self) -> Response<Body> {
        let mut resp = status_response(self.status_code(), self.reason(), &self.to_string());
        if let Self::Pending { retry_after, .. } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let Self::StreamNotInspectable(_) = self {
            // the caller asked to upgrade this connection; like any failed upgrade, it ends
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Builds a `Status` (`kind: Status`, `status: Failure`) response.
pub fn status_response(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let bytes = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"holdpoint\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_become_kubernetes_status_objects() {
        let resp = GatewayError::BodyTooLarge { limit: 10 }.to_response();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "RequestEntityTooLarge");
        assert_eq!(v["code"], 413);
        assert!(v["message"].as_str().unwrap().contains("10 bytes"));
    }
}
