//! SPDY/3.1 framing (spdy-protocol-draft3-1): an encoder/decoder for the frames Kubernetes clients
//! use (`SYN_STREAM`, `SYN_REPLY`, `RST_STREAM`, `SETTINGS`, `PING`, `GOAWAY`, `HEADERS`,
//! `WINDOW_UPDATE` and `DATA`), including the zlib header-block compression with the SPDY/3
//! preset dictionary. One [`Encoder`] and one [`Decoder`] exist per connection direction because
//! the zlib context spans every header block of the connection.
//!
//! Two ways of reading:
//!
//! - [`Decoder::decode`] takes whole frames off a buffer (an endpoint, like the emulator);
//! - [`FrameReader::next`] yields a connection as [`Piece`]s: each control frame whole, with its
//!   exact wire bytes (so an intermediary can forward it unchanged while its own decompression
//!   context stays in step with the receiver's), and `DATA` frames as a start, payload pieces as
//!   they arrive, and an end. A `DATA` frame is never buffered whole, so memory does not depend on
//!   the peer's frame sizes.
//!
//! Flow control: `WINDOW_UPDATE` frames are decoded, but nothing here enforces windows (neither do
//! the Kubernetes implementations, moby/spdystream, which never send them).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY version number carried in control frames.
pub const VERSION: u16 = 3;
/// `FLAG_FIN` for `DATA`, `SYN_STREAM`, `SYN_REPLY` and `HEADERS`.
const FLAG_FIN: u8 = 0x01;
/// `FLAG_UNIDIRECTIONAL` for `SYN_STREAM`.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Largest payload a frame's 24-bit length can describe.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Header name/value pairs of a header block; names are lowercase on the wire, several values
/// of one name are joined with NUL.
pub type Headers = Vec<(String, String)>;

/// One entry of a `SETTINGS` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know (e.g. `CREDENTIAL`); skipped.
    Unknown {
        frame_type: u16,
    },
}

/// `RST_STREAM` status `PROTOCOL_ERROR`.
pub const RST_PROTOCOL_ERROR: u32 = 1;

/// Why a byte sequence is not a valid SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SPDY framing error: {0}")]
pub struct FrameError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FrameError> {
    Err(FrameError(msg.into()))
}

/// The SPDY/3 header compression dictionary (spdy-protocol-draft3, section 2.6.10.1).
pub const DICTIONARY: &[u8] =
    b"\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\0\0\0\x05trace\0\
\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\0\0\0\x0faccept-language\0\0\
\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\0\0\0\x0dauthorization\0\0\0\x0dcache-contr\
ol\0\0\0\x0aconnection\0\0\0\x0ccontent-base\0\0\0\x10content-encoding\0\0\0\x10content-lan\
guage\0\0\0\x0econtent-length\0\0\0\x10content-location\0\0\0\x0bcontent-md5\0\0\0\x0dconte\
nt-range\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\0\0\0\x06expect\0\0\0\x07expires\
\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\0\x11if-modified-since\0\0\0\x0dif-none-\
match\0\0\0\x08if-range\0\0\0\x13if-unmodified-since\0\0\0\x0dlast-modified\0\0\0\x08locati\
on\0\0\0\x0cmax-forwards\0\0\0\x06pragma\0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authori\
zation\0\0\0\x05range\0\0\0\x07referer\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\
\0\x07trailer\0\0\0\x11transfer-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\
\0\0\0\x03via\0\0\0\x07warning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\0\0\0\
\x06status\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public\0\
\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin1001012012022052063003023033043053063\
07402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 N\
o Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 \
Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul \
Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image\
/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,p\
ublicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// Serialises frames; owns the connection's header compression context.
pub struct Encoder {
    deflate: Compress,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("setting the SPDY dictionary on a fresh deflate stream cannot fail");
        Self { deflate }
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => put_data_frame(out, *stream_id, *fin, data)?,
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.header_block(headers)?;
                let mut flags = 0;
                if *fin {
                    flags |= FLAG_FIN;
                }
                if *unidirectional {
                    flags |= FLAG_UNIDIRECTIONAL;
                }
                control_header(out, TYPE_SYN_STREAM, flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0); // slot
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let frame_type = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let block = self.header_block(headers)?;
                control_header(
                    out,
                    frame_type,
                    if *fin { FLAG_FIN } else { 0 },
                    4 + block.len(),
                )?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for e in entries {
                    out.put_u32((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff));
                    out.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown { frame_type } => {
                return err(format!(
                    "cannot encode unknown control frame type {frame_type}"
                ));
            }
        }
        Ok(())
    }

    /// Serialises and compresses a header block (sync-flushed, so the peer can decode it now).
    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError(format!("header compression failed: {e}")))?;
            consumed += (self.deflate.total_in() - before) as usize;
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(256));
        }
    }
}

/// Parses frames from a byte buffer; owns the connection's header decompression context.
pub struct Decoder {
    inflate: Decompress,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            inflate: Decompress::new(true),
        }
    }

    /// Takes one complete frame off the front of `buf`, or returns `Ok(None)` when `buf` does not
    /// hold a whole frame yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let mut head = buf.split_to(8);
        let payload = buf.split_to(len).freeze();
        let first = head.get_u32();
        let flags = head.get_u8();
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: data_stream_id(first)?,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        self.control(first, flags, payload).map(Some)
    }

    /// Decodes the payload of a control frame whose first word is `first`.
    fn control(&mut self, first: u32, flags: u8, mut payload: Bytes) -> Result<Frame, FrameError> {
        let len = payload.len();
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return err(format!("unsupported SPDY version {version}"));
        }
        let frame_type = (first & 0xffff) as u16;
        let need = |n: usize| -> Result<(), FrameError> {
            if len < n {
                err(format!(
                    "control frame type {frame_type} too short ({len} bytes)"
                ))
            } else {
                Ok(())
            }
        };
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                need(10)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let associated_to = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                let headers = self.parse_header_block(&payload)?;
                if stream_id == 0 {
                    return err("SYN_STREAM for stream 0");
                }
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin: flags & FLAG_FIN != 0,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(4)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let headers = self.parse_header_block(&payload)?;
                let fin = flags & FLAG_FIN != 0;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(8)?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(4)?;
                let count = payload.get_u32() as usize;
                if payload.len() < count.saturating_mul(8) {
                    return err("SETTINGS frame shorter than its entry count");
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = payload.get_u32();
                        Setting {
                            flags: (word >> 24) as u8,
                            id: word & 0x00ff_ffff,
                            value: payload.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(4)?;
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            TYPE_GOAWAY => {
                need(4)?;
                let last_good_stream_id = payload.get_u32() & 0x7fff_ffff;
                let status = if payload.len() >= 4 {
                    payload.get_u32()
                } else {
                    0
                };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(8)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(frame)
    }

    fn parse_header_block(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let raw = self.inflate_block(compressed)?;
        let mut r = &raw[..];
        let count = read_u32(&mut r)? as usize;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let name = read_string(&mut r)?;
            let value = read_string(&mut r)?;
            headers.push((name.to_ascii_lowercase(), value));
        }
        Ok(headers)
    }

    /// Inflates one header block; the zlib stream continues across blocks of a connection.
    fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut consumed = 0usize;
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let res =
                self.inflate
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - before_in) as usize;
            let progressed =
                self.inflate.total_in() != before_in || self.inflate.total_out() != before_out;
            match res {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {
                    if consumed == input.len() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                    if out.len() == out.capacity() {
                        out.reserve(out.capacity().max(256));
                    } else if !progressed {
                        return err("truncated compressed header block");
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| FrameError(format!("header dictionary rejected: {e}")))?;
                }
                Err(e) => return err(format!("header decompression failed: {e}")),
            }
        }
    }
}

/// The stream id of a `DATA` frame whose first word is `first` (never stream 0).
fn data_stream_id(first: u32) -> Result<u32, FrameError> {
    match first & 0x7fff_ffff {
        0 => err("DATA frame on stream 0"),
        id => Ok(id),
    }
}

/// The 8-byte head of a `DATA` frame.
pub fn data_header(stream_id: u32, flags: u8, len: usize) -> Result<[u8; 8], FrameError> {
    if len > MAX_PAYLOAD {
        return err("DATA payload too large");
    }
    let id = (stream_id & 0x7fff_ffff).to_be_bytes();
    let len = (len as u32).to_be_bytes();
    Ok([id[0], id[1], id[2], id[3], flags, len[1], len[2], len[3]])
}

/// Appends a whole `DATA` frame (`FLAG_FIN` when `fin`) carrying `data` to `out`.
pub fn put_data_frame(
    out: &mut BytesMut,
    stream_id: u32,
    fin: bool,
    data: &[u8],
) -> Result<(), FrameError> {
    out.put_slice(&data_header(
        stream_id,
        if fin { FLAG_FIN } else { 0 },
        data.len(),
    )?);
    out.put_slice(data);
    Ok(())
}

/// One piece of a SPDY connection, as [`FrameReader`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole control frame: its wire bytes, exactly as received, and its decoded form.
    Control {
        /// The frame's bytes (8-byte head and payload).
        wire: Bytes,
        /// The decoded frame.
        frame: Frame,
    },
    /// The head of a `DATA` frame of `len` payload bytes.
    DataStart {
        /// The stream.
        stream_id: u32,
        /// The frame's flag byte as received (`0x01` is `FLAG_FIN`).
        flags: u8,
        /// Payload length.
        len: usize,
    },
    /// Some of the payload of the current `DATA` frame (never empty).
    Data {
        /// The stream.
        stream_id: u32,
        /// The bytes.
        data: Bytes,
    },
    /// The current `DATA` frame is complete.
    DataEnd {
        /// The stream.
        stream_id: u32,
        /// Whether the frame carried `FLAG_FIN` (the sender half-closed the stream).
        fin: bool,
    },
}

/// The `DATA` frame a [`FrameReader`] is in the middle of.
#[derive(Debug, Clone, Copy)]
struct DataInProgress {
    stream_id: u32,
    fin: bool,
    remaining: usize,
}

/// Reads one direction of a SPDY connection as [`Piece`]s without ever holding more than one
/// control frame (at most `max_control` bytes of payload) or the bytes at hand.
#[derive(Debug)]
pub struct FrameReader {
    decoder: Decoder,
    max_control: usize,
    data: Option<DataInProgress>,
}

impl FrameReader {
    /// A reader for one direction of a new connection; control frames with a payload larger than
    /// `max_control` bytes are an error.
    pub fn new(max_control: usize) -> Self {
        Self {
            decoder: Decoder::new(),
            max_control: max_control.min(MAX_PAYLOAD),
            data: None,
        }
    }

    /// Takes the next piece off the front of `buf`; `Ok(None)` when more bytes are needed.
    /// A framing error is final: the connection cannot be read further.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, FrameError> {
        if let Some(d) = &mut self.data {
            if d.remaining == 0 {
                let end = Piece::DataEnd {
                    stream_id: d.stream_id,
                    fin: d.fin,
                };
                self.data = None;
                return Ok(Some(end));
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let n = d.remaining.min(buf.len());
            d.remaining -= n;
            return Ok(Some(Piece::Data {
                stream_id: d.stream_id,
                data: buf.split_to(n).freeze(),
            }));
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if first & 0x8000_0000 == 0 {
            let stream_id = data_stream_id(first)?;
            buf.advance(8);
            self.data = Some(DataInProgress {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                remaining: len,
            });
            return Ok(Some(Piece::DataStart {
                stream_id,
                flags,
                len,
            }));
        }
        if len > self.max_control {
            return err(format!(
                "control frame of {len} bytes is larger than the limit of {} bytes",
                self.max_control
            ));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let wire = buf.split_to(8 + len).freeze();
        let frame = self.decoder.control(first, flags, wire.slice(8..))?;
        Ok(Some(Piece::Control { wire, frame }))
    }
}

fn control_header(
    out: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    len: usize,
) -> Result<(), FrameError> {
    if len > MAX_PAYLOAD {
        return err("control frame too large");
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u8(flags);
    put_u24(out, len);
    Ok(())
}

fn put_u24(out: &mut BytesMut, n: usize) {
    out.put_u8((n >> 16) as u8);
    out.put_u8((n >> 8) as u8);
    out.put_u8(n as u8);
}

fn read_u32(r: &mut &[u8]) -> Result<u32, FrameError> {
    if r.len() < 4 {
        return err("truncated header block");
    }
    Ok(r.get_u32())
}

fn read_string(r: &mut &[u8]) -> Result<String, FrameError> {
    let len = read_u32(r)? as usize;
    if r.len() < len {
        return err("truncated header block");
    }
    let s = String::from_utf8_lossy(&r[..len]).into_owned();
    r.advance(len);
    Ok(s)
}

/// Looks a header up by (case-insensitive) name.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn dictionary_is_the_spdy3_dictionary() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(DICTIONARY), 0xe3c6_a7c2);
        assert!(DICTIONARY.ends_with(b"enq=0."));
    }

    #[test]
    fn decoding_waits_for_a_complete_frame() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        let frame = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: vec![("streamtype".into(), "stdout".into())],
        };
        enc.encode(&frame, &mut wire).unwrap();
        let full = wire.split();
        let mut partial = BytesMut::new();
        for (i, byte) in full.iter().enumerate() {
            partial.put_u8(*byte);
            let got = dec.decode(&mut partial).unwrap();
            if i + 1 < full.len() {
                assert_eq!(got, None, "frame decoded early at byte {i}");
            } else {
                assert_eq!(got, Some(frame.clone()));
            }
        }
    }

    #[test]
    fn wire_layout_of_data_and_ping() {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        enc.encode(
            &Frame::Data {
                stream_id: 5,
                fin: true,
                data: Bytes::from_static(b"ab"),
            },
            &mut wire,
        )
        .unwrap();
        enc.encode(&Frame::Ping { id: 1 }, &mut wire).unwrap();
        assert_eq!(
            &wire[..],
            &[
                0, 0, 0, 5, 1, 0, 0, 2, b'a', b'b', 0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1
            ]
        );
    }

    #[test]
    fn header_blocks_start_with_a_zlib_header_naming_the_dictionary() {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        enc.encode(
            &Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![],
            },
            &mut wire,
        )
        .unwrap();
        // 8 byte control header + 4 byte stream id, then CMF/FLG with FDICT and the dictionary id.
        let z = &wire[12..];
        assert_eq!(z[1] & 0x20, 0x20, "FDICT flag set");
        assert_eq!(
            u32::from_be_bytes([z[2], z[3], z[4], z[5]]),
            adler32(DICTIONARY)
        );
    }

    #[test]
    fn garbage_header_blocks_are_errors() {
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        wire.put_u16(0x8003);
        wire.put_u16(TYPE_SYN_REPLY);
        wire.put_u8(0);
        put_u24(&mut wire, 8);
        wire.put_u32(1);
        wire.put_slice(&[1, 2, 3, 4]);
        assert!(dec.decode(&mut wire).is_err());
    }

    #[test]
    fn the_reader_refuses_oversized_control_frames_but_streams_large_data() {
        let mut reader = FrameReader::new(16);
        let mut wire = BytesMut::new();
        put_data_frame(&mut wire, 1, false, &[7u8; 100]).unwrap();
        let mut pieces = 0;
        while let Some(p) = reader.next(&mut wire).unwrap() {
            pieces += 1;
            if let Piece::DataEnd { .. } = p {
                break;
            }
        }
        assert_eq!(pieces, 3, "start, one payload piece, end");
        let mut enc = Encoder::new();
        enc.encode(
            &Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: vec![("streamtype".into(), "x".repeat(100))],
            },
            &mut wire,
        )
        .unwrap();
        assert!(reader.next(&mut wire).is_err());
    }
}
