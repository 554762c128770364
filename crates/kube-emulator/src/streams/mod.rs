//! Streaming subresources of the emulator: `pods/exec`, `pods/attach` and `pods/portforward`
//! over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`, older channel protocols,
//! `portforward.k8s.io` and SPDY tunnelled over WebSocket) and over SPDY/3.1.
//!
//! The REST core routes an upgrade request here once it has found the pod; everything about the
//! upgrade handshake, the channel protocols and the built-in command set lives in this module:
//!
//! - [`runtime`]: the emulated container (virtual filesystem, tiny shell and built-ins);
//! - `spdy_session`: exec/attach and port-forward sessions over a SPDY connection;
//! - `websocket`: the WebSocket handshake and the channel-protocol sessions.
//!
//! The wire formats themselves (channel framing, SPDY/3.1 frames and header compression, resize
//! and exit-status messages, subprotocol names) are the `kube-streams` crate's, shared with
//! Holdpoint's stream tap.

pub mod runtime;
mod spdy_session;
pub mod testing;
mod websocket;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

pub use kube_streams::StreamKind;
pub use runtime::SERVICE_ACCOUNT_TOKEN;

/// Serves one streaming request (GET or POST) for `pod` (the stored Pod object as JSON).
/// The query (`command`, `container`, `stdin`, `stdout`, `stderr`, `tty`, `ports`) is read from
/// `req`. Returns `101 Switching Protocols` and drives the session on the upgraded connection, or an
/// error response (a Kubernetes `Status` JSON body) when the request is not a valid upgrade.
pub async fn serve(
    req: Request<Incoming>,
    kind: StreamKind,
    pod: serde_json::Value,
) -> Response<Full<Bytes>> {
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let session = match Session::new(kind, &query, &pod) {
        Ok(s) => s,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    if websocket::is_upgrade(req.headers()) {
        websocket::accept(req, session)
    } else if spdy_session::is_upgrade(req.headers()) {
        spdy_session::accept(req, session)
    } else {
        status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
        )
    }
}

/// The validated parameters of one streaming request.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub kind: StreamKind,
    pub container: Arc<runtime::Container>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// `ports` from the query (WebSocket port-forward); SPDY port-forward names ports per stream.
    pub ports: Vec<u16>,
}

impl Session {
    /// Validates the query against the pod; the error is the message of a 400 `Status`.
    fn new(kind: StreamKind, q: &Query, pod: &serde_json::Value) -> Result<Self, String> {
        let bad = |msg: &str| msg.to_string();
        let container = runtime::Container::from_pod(pod, q.first("container"))?;
        let (stdin, stdout, stderr, tty) = (
            q.flag("stdin"),
            q.flag("stdout"),
            q.flag("stderr"),
            q.flag("tty"),
        );
        let command: Vec<String> = q.all("command").map(str::to_string).collect();
        let mut ports = Vec::new();
        for value in q.all("ports") {
            for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match p.parse::<u16>() {
                    Ok(port) if port > 0 => ports.push(port),
                    _ => {
                        return Err(bad(&format!(
                            "invalid port {p:?}: must be between 1 and 65535"
                        )));
                    }
                }
            }
        }
        match kind {
            StreamKind::Exec | StreamKind::Attach => {
                if kind == StreamKind::Exec && command.is_empty() {
                    return Err(bad(
                        "you must specify at least one command for the container",
                    ));
                }
                if !stdin && !stdout && !stderr {
                    return Err(bad("you must specify at least 1 of stdin, stdout, stderr"));
                }
            }
            StreamKind::PortForward => {}
        }
        Ok(Self {
            kind,
            container: Arc::new(container),
            command,
            stdin,
            stdout,
            stderr: stderr && !tty,
            tty,
            ports,
        })
    }

    /// What the error channel says when the process exited with `code` (remote-command protocol
    /// `version`): a JSON `Status` from v4 on, plain text before (nothing on success).
    fn exit_status(&self, version: u8, code: i32) -> Option<String> {
        if version >= 4 {
            Some(kube_streams::status::exit_status_v4(&self.command, code).to_string())
        } else {
            kube_streams::status::exit_status_text(code)
        }
    }

    fn process_spec(&self) -> runtime::ProcessSpec {
        runtime::ProcessSpec {
            container: self.container.clone(),
            argv: if self.kind == StreamKind::Exec {
                self.command.clone()
            } else {
                Vec::new()
            },
            stdin: self.stdin,
            tty: self.tty,
        }
    }
}

/// Decoded query parameters, in order, repeated keys kept.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Self(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(kv), String::new()),
                })
                .collect(),
        )
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn first<'a>(&'a self, key: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it.
    fn flag(&self, key: &str) -> bool {
        matches!(
            self.first(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

/// All values of a (possibly repeated, comma-separated) request header, in order.
fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// A Kubernetes `Status` object.
pub(crate) fn status_json(reason: &str, message: &str, code: u16) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// An error response with a `Status` body.
pub(crate) fn status_response(
    code: StatusCode,
    reason: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body = status_json(reason, message, code.as_u16()).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_matches_go_url_values() {
        let q = Query::parse(
            "command=sh&command=-c&command=echo+hi%26%3D&container=app&stdin=true&stdout=1&tty=false",
        );
        assert_eq!(
            q.all("command").collect::<Vec<_>>(),
            ["sh", "-c", "echo hi&="]
        );
        assert_eq!(q.first("container"), Some("app"));
        assert!(q.flag("stdin") && q.flag("stdout") && !q.flag("tty") && !q.flag("stderr"));
    }

    #[test]
    fn session_validation() {
        let pod = serde_json::json!({"metadata": {"name": "web-0", "namespace": "demo"},
            "spec": {"containers": [{"name": "app"}]}});
        let q = |s: &str| Query::parse(s);
        let s = Session::new(
            StreamKind::Exec,
            &q("command=ls&stdout=true&stderr=true&tty=true"),
            &pod,
        )
        .unwrap();
        assert_eq!(s.container.name, "app");
        assert!(!s.stderr, "tty merges stderr into stdout");
        assert_eq!(
            Session::new(StreamKind::Exec, &q("stdout=true"), &pod).unwrap_err(),
            "you must specify at least one command for the container"
        );
        assert_eq!(
            Session::new(
                StreamKind::Exec,
                &q("command=ls&stdout=true&container=db"),
                &pod
            )
            .unwrap_err(),
            "container db is not valid for pod web-0"
        );
        assert_eq!(
            Session::new(StreamKind::Attach, &q(""), &pod).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let pf = Session::new(
            StreamKind::PortForward,
            &q("ports=8080&ports=9090,53"),
            &pod,
        )
        .unwrap();
        assert_eq!(pf.ports, [8080, 9090, 53]);
    }
}
