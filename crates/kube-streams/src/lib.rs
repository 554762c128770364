//! The Kubernetes stream protocols of `pods/exec`, `pods/attach` and `pods/portforward`, as pure
//! codecs (no I/O), shared by the in-tree emulator (the server side) and Holdpoint's stream tap
//! (an intermediary that reads both directions):
//!
//! - [`channel`]: the WebSocket channel protocols `v5.channel.k8s.io` down to the unversioned
//!   `channel.k8s.io`, the base64 variants and the port-forward channels;
//! - [`spdy`]: SPDY/3.1 framing with per-direction zlib header compression, whole frames or piece
//!   by piece;
//! - [`StreamType`]: what a SPDY stream carries, from its `streamType` header;
//! - [`resize`]: terminal size messages; [`status`]: the exit status on the error channel;
//! - [`websocket_protocol`] and [`spdy_protocol`]: what a negotiated subprotocol means.

pub mod channel;
pub mod resize;
pub mod spdy;
pub mod status;

pub use resize::{ResizeParser, TermSize};

/// Which streaming subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `pods/<name>/exec`
    Exec,
    /// `pods/<name>/attach`
    Attach,
    /// `pods/<name>/portforward`
    PortForward,
}

/// A negotiated stream protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Exec/attach channels over WebSocket; `version` 1 is the unversioned `channel.k8s.io`.
    Channel {
        /// 1 to 5.
        version: u8,
        /// Text messages with base64 payloads.
        base64: bool,
    },
    /// Port-forward channels over WebSocket.
    PortForwardChannel {
        /// Text messages with base64 payloads.
        base64: bool,
    },
    /// SPDY/3.1 port-forward tunnelled in WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`,
    /// what kubectl 1.31+ uses for port-forward).
    SpdyTunnel,
    /// Exec/attach over SPDY/3.1, remote-command protocol `version` (1 to 4).
    SpdyExec {
        /// 1 to 4.
        version: u8,
    },
    /// Port-forward over SPDY/3.1.
    SpdyPortForward,
}

/// Prefix kubectl puts in front of SPDY protocols it tunnels over WebSocket.
pub const SPDY_TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// `X-Stream-Protocol-Version` values of exec/attach over SPDY, newest first.
pub const SPDY_EXEC_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// `X-Stream-Protocol-Version` values of port-forward over SPDY.
pub const SPDY_PORT_FORWARD_PROTOCOLS: &[&str] = &["portforward.k8s.io"];

/// What the WebSocket subprotocol `name` means for `kind` (`None` for a name that is not one
/// of its protocols). No subprotocol at all (`name` is `None`) is the legacy unversioned one.
pub fn websocket_protocol(kind: StreamKind, name: Option<&str>) -> Option<Protocol> {
    use Protocol::*;
    let Some(name) = name else {
        return Some(match kind {
            StreamKind::PortForward => PortForwardChannel { base64: false },
            StreamKind::Exec | StreamKind::Attach => Channel {
                version: 1,
                base64: false,
            },
        });
    };
    let channel = |version, base64| Some(Channel { version, base64 });
    match kind {
        StreamKind::Exec | StreamKind::Attach => match name {
            "v5.channel.k8s.io" => channel(5, false),
            "v4.channel.k8s.io" => channel(4, false),
            "v4.base64.channel.k8s.io" => channel(4, true),
            "v3.channel.k8s.io" => channel(3, false),
            "v2.channel.k8s.io" => channel(2, false),
            "channel.k8s.io" => channel(1, false),
            "base64.channel.k8s.io" => channel(1, true),
            _ => None,
        },
        StreamKind::PortForward => match name {
            n if n.strip_prefix(SPDY_TUNNEL_PREFIX) == Some("portforward.k8s.io") => {
                Some(SpdyTunnel)
            }
            "portforward.k8s.io" | "v4.channel.k8s.io" | "channel.k8s.io" => {
                Some(PortForwardChannel { base64: false })
            }
            "v4.base64.channel.k8s.io" | "base64.channel.k8s.io" => {
                Some(PortForwardChannel { base64: true })
            }
            _ => None,
        },
    }
}

/// What the SPDY `X-Stream-Protocol-Version` `name` means for `kind` (`None` for a name that is
/// not one of its protocols). No version at all is the unversioned protocol.
pub fn spdy_protocol(kind: StreamKind, name: Option<&str>) -> Option<Protocol> {
    match kind {
        StreamKind::PortForward => match name {
            None => Some(Protocol::SpdyPortForward),
            Some(n) if SPDY_PORT_FORWARD_PROTOCOLS.contains(&n) => Some(Protocol::SpdyPortForward),
            Some(_) => None,
        },
        StreamKind::Exec | StreamKind::Attach => {
            let version = match name {
                None | Some("channel.k8s.io") => 1,
                Some("v2.channel.k8s.io") => 2,
                Some("v3.channel.k8s.io") => 3,
                Some("v4.channel.k8s.io") => 4,
                Some(_) => return None,
            };
            Some(Protocol::SpdyExec { version })
        }
    }
}

/// What a SPDY stream carries, from the `streamType` header of its `SYN_STREAM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// Exec/attach errors and exit status; port-forward errors.
    Error,
    /// Exec/attach stdin.
    Stdin,
    /// Exec/attach stdout.
    Stdout,
    /// Exec/attach stderr.
    Stderr,
    /// Exec/attach terminal size changes.
    Resize,
    /// Port-forward connection data.
    Data,
}

impl StreamType {
    /// The type named by `headers` (`None` when absent or unknown).
    pub fn from_headers(headers: &spdy::Headers) -> Option<Self> {
        Some(match spdy::header(headers, "streamtype")? {
            "error" => Self::Error,
            "stdin" => Self::Stdin,
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            "resize" => Self::Resize,
            "data" => Self::Data,
            _ => return None,
        })
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Stdin => "stdin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Resize => "resize",
            Self::Data => "data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_subprotocols() {
        assert_eq!(
            websocket_protocol(StreamKind::Exec, Some("v5.channel.k8s.io")),
            Some(Protocol::Channel {
                version: 5,
                base64: false
            })
        );
        assert_eq!(
            websocket_protocol(StreamKind::Attach, Some("v4.base64.channel.k8s.io")),
            Some(Protocol::Channel {
                version: 4,
                base64: true
            })
        );
        assert_eq!(
            websocket_protocol(StreamKind::Exec, Some("SPDY/3.1+portforward.k8s.io")),
            None
        );
        assert_eq!(
            websocket_protocol(StreamKind::PortForward, Some("SPDY/3.1+portforward.k8s.io")),
            Some(Protocol::SpdyTunnel)
        );
        assert_eq!(
            websocket_protocol(StreamKind::Exec, None),
            Some(Protocol::Channel {
                version: 1,
                base64: false
            })
        );
        assert_eq!(
            websocket_protocol(StreamKind::Exec, Some("v6.channel.k8s.io")),
            None
        );
    }

    #[test]
    fn spdy_protocol_versions() {
        assert_eq!(
            spdy_protocol(StreamKind::Exec, Some("v4.channel.k8s.io")),
            Some(Protocol::SpdyExec { version: 4 })
        );
        assert_eq!(
            spdy_protocol(StreamKind::Attach, None),
            Some(Protocol::SpdyExec { version: 1 })
        );
        assert_eq!(
            spdy_protocol(StreamKind::PortForward, Some("portforward.k8s.io")),
            Some(Protocol::SpdyPortForward)
        );
        assert_eq!(
            spdy_protocol(StreamKind::Exec, Some("portforward.k8s.io")),
            None
        );
        assert_eq!(
            spdy_protocol(StreamKind::PortForward, Some("v4.channel.k8s.io")),
            None
        );
    }

    #[test]
    fn stream_types_from_headers() {
        let h = |v: &str| vec![("streamtype".to_string(), v.to_string())];
        for t in [
            StreamType::Error,
            StreamType::Stdin,
            StreamType::Stdout,
            StreamType::Stderr,
            StreamType::Resize,
            StreamType::Data,
        ] {
            assert_eq!(StreamType::from_headers(&h(t.as_str())), Some(t));
        }
        assert_eq!(StreamType::from_headers(&h("other")), None);
        assert_eq!(StreamType::from_headers(&Vec::new()), None);
    }
}
