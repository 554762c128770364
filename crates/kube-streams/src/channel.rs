//! The WebSocket channel protocols of `pods/exec`, `pods/attach` and `pods/portforward`.
//!
//! Every message starts with a channel number: in the binary protocols (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`, ..., `channel.k8s.io`, `portforward.k8s.io`) as its first byte; in the
//! base64 protocols (`v4.base64.channel.k8s.io`, `base64.channel.k8s.io`) as an ASCII digit in a
//! text message whose rest is the base64 of the payload.
//!
//! - Exec/attach: 0 stdin, 1 stdout, 2 stderr, 3 error (the exit status: a JSON `Status` from v4
//!   on, plain text before), 4 resize (JSON `{"Width":..,"Height":..}`), and in v5 255 CLOSE
//!   (`[255, channel]` half-closes `channel`).
//! - Port-forward: for the i-th entry of the `ports` query parameter, channel 2i carries data and
//!   2i+1 errors; the first message on each channel is the port number (little-endian u16).

use base64::Engine as _;
use bytes::Bytes;

/// Exec/attach channel: the process's stdin (client to server).
pub const STDIN: u8 = 0;
/// Exec/attach channel: the process's stdout.
pub const STDOUT: u8 = 1;
/// Exec/attach channel: the process's stderr.
pub const STDERR: u8 = 2;
/// Exec/attach channel: errors and the exit status.
pub const ERROR: u8 = 3;
/// Exec/attach channel: terminal size changes (client to server).
pub const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` half-closes `channel`.
pub const CLOSE: u8 = 255;

/// One WebSocket message's type and payload, independent of any WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A binary message.
    Binary(Bytes),
    /// A text message.
    Text(String),
}

/// Why a message is not a valid channel message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The message has no channel byte.
    #[error("empty channel message")]
    Empty,
    /// A base64 protocol received a binary message.
    #[error("binary message on a base64 channel protocol")]
    BinaryOnBase64,
    /// The first character of a base64 message is not a channel digit.
    #[error("base64 channel message does not start with a channel digit")]
    BadChannelDigit,
    /// The payload of a base64 message is not base64.
    #[error("base64 channel message payload is not valid base64")]
    BadBase64,
}

/// Encodes one channel message.
pub fn encode(base64: bool, channel: u8, data: &[u8]) -> WireMessage {
    if base64 {
        let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        // base64 protocols only carry channels 0-9
        s.push(char::from(b'0' + channel.min(9)));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        WireMessage::Text(s)
    } else {
        let mut v = Vec::with_capacity(1 + data.len());
        v.push(channel);
        v.extend_from_slice(data);
        WireMessage::Binary(Bytes::from(v))
    }
}

/// Decodes one channel message (`text`: whether it was a text message) into its channel and
/// payload. Like the kubelet, binary protocols also take text messages (the Python client sends
/// `str` stdin that way).
pub fn decode(base64: bool, text: bool, payload: Bytes) -> Result<(u8, Bytes), ChannelError> {
    if payload.is_empty() {
        return Err(ChannelError::Empty);
    }
    if !base64 {
        return Ok((payload[0], payload.slice(1..)));
    }
    if !text {
        return Err(ChannelError::BinaryOnBase64);
    }
    let channel = payload[0]
        .checked_sub(b'0')
        .filter(|c| *c <= 9)
        .ok_or(ChannelError::BadChannelDigit)?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(&payload[1..])
        .map_err(|_| ChannelError::BadBase64)?;
    Ok((channel, Bytes::from(data)))
}

/// Port-forward over channels: which port entry a channel belongs to, and whether it is that
/// port's error channel (odd) or data channel (even).
pub fn port_forward_channel(channel: u8) -> (usize, bool) {
    (usize::from(channel / 2), channel % 2 == 1)
}

/// The first payload on a port-forward channel: the port, little-endian.
pub fn port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(b: &[u8]) -> Bytes {
        Bytes::copy_from_slice(b)
    }

    #[test]
    fn binary_and_base64_framing_round_trips() {
        for base64 in [false, true] {
            let (text, payload) = match encode(base64, STDOUT, b"hi\x00\xff") {
                WireMessage::Binary(b) => (false, b),
                WireMessage::Text(t) => (true, Bytes::from(t)),
            };
            assert_eq!(
                decode(base64, text, payload),
                Ok((STDOUT, bytes(b"hi\x00\xff")))
            );
        }
        assert_eq!(
            encode(false, ERROR, b"x"),
            WireMessage::Binary(bytes(&[3, b'x']))
        );
        assert_eq!(
            encode(true, STDERR, b"hi"),
            WireMessage::Text("2aGk=".into())
        );
        assert_eq!(
            decode(false, true, bytes(b"\x00typed")),
            Ok((STDIN, bytes(b"typed")))
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(decode(false, false, Bytes::new()), Err(ChannelError::Empty));
        assert_eq!(
            decode(true, false, bytes(b"1aGk=")),
            Err(ChannelError::BinaryOnBase64)
        );
        assert_eq!(
            decode(true, true, bytes(b"xaGk=")),
            Err(ChannelError::BadChannelDigit)
        );
        assert_eq!(
            decode(true, true, bytes(b"1a!k=")),
            Err(ChannelError::BadBase64)
        );
    }

    #[test]
    fn port_forward_channels() {
        assert_eq!(port_forward_channel(0), (0, false));
        assert_eq!(port_forward_channel(3), (1, true));
        assert_eq!(port_prefix(8080), [0x90, 0x1f]);
    }
}
