//! The tap over SPDY/3.1 (exec, attach and port-forward on a plain upgraded connection, and the
//! accounting of SPDY tunnelled in WebSocket).
//!
//! Both directions are read piece by piece ([`FrameReader`]). Control frames are forwarded with
//! their exact wire bytes, in order and never dropped or added, so the zlib header contexts of
//! the two endpoints stay in step with each other and with the gateway's own decompression (which
//! it needs to read `streamType`, `port` and `requestID`). Only `DATA` frames are touched: toward
//! the caller, stdout, stderr and the error stream of exec/attach are masked and re-framed (a
//! frame's payload may be held back until its line is complete; `FLAG_FIN` is kept); `DATA` on
//! streams that should carry nothing toward the caller (stdin, resize, unknown) is dropped, only
//! its `FLAG_FIN` passes. Everything else (caller to upstream, port-forward data) passes byte for
//! byte. Masking changes payload lengths; SPDY/3.1 flow control would notice, but the Kubernetes
//! implementations (moby/spdystream) neither send nor honour `WINDOW_UPDATE`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use kube_streams::spdy::{self, Frame, FrameError, FrameReader, Piece};
use kube_streams::{ResizeParser, StreamKind, StreamType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Ending, Masking, Output, Outputs, Recording, both_directions};

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 64 << 10;
/// Largest `DATA` payload the gateway writes in one frame.
const MAX_DATA_FRAME: usize = 32 << 10;
/// Most streams a session may have open at once.
const MAX_STREAMS: usize = 1024;

/// Runs the tap on a SPDY connection.
pub(super) async fn relay<C, U>(
    client: C,
    upstream: U,
    kind: StreamKind,
    masking: &Masking,
    rec: &Recording,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (from_client, to_client) = tokio::io::split(client);
    let (from_upstream, to_upstream) = tokio::io::split(upstream);
    let streams = Mutex::new(Streams::default());
    let pump = |to_upstream| Pump {
        kind,
        to_upstream,
        streams: &streams,
        rec,
        outputs: Outputs::new(masking),
        output_streams: [None; 3],
        resize: ResizeParser::default(),
        current: None,
    };
    both_directions(
        pump(true).run(from_client, to_upstream),
        pump(false).run(from_upstream, to_client),
    )
    .await;
    lock(&streams).finish(rec);
}

fn lock(streams: &Mutex<Streams>) -> MutexGuard<'_, Streams> {
    streams.lock().unwrap_or_else(|p| p.into_inner())
}

/// What happens to the payload of a `DATA` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Relayed byte for byte.
    Pass,
    /// Masked and re-framed.
    Mask(Output),
    /// Not relayed (only `FLAG_FIN`).
    Drop,
}

/// One direction of a SPDY connection.
struct Pump<'a> {
    kind: StreamKind,
    to_upstream: bool,
    streams: &'a Mutex<Streams>,
    rec: &'a Recording,
    outputs: Outputs,
    /// The stream ids of stdout, stderr and error (for flushes).
    output_streams: [Option<u32>; 3],
    resize: ResizeParser,
    /// The `DATA` frame being read: its stream, type and treatment.
    current: Option<(u32, Option<StreamType>, Treatment)>,
}

impl Pump<'_> {
    async fn run<R, W>(mut self, mut from: R, mut to: W) -> Ending
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut reader = FrameReader::new(super::MAX_SPDY_CONTROL);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut out = BytesMut::new();
        loop {
            // held-back output can only be written between frames relayed byte for byte
            let between_frames = !matches!(self.current, Some((_, _, Treatment::Pass)));
            let flush_at = self.outputs.flush_at.filter(|_| between_frames);
            buf.reserve(READ_CHUNK);
            tokio::select! {
                n = from.read_buf(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                    if flush_at.is_some() => {
                    for (which, data) in self.outputs.flush(self.rec) {
                        if let Some(id) = self.output_streams[which as usize] {
                            put_data(&mut out, id, false, &data);
                        }
                    }
                }
            }
            loop {
                match reader.next(&mut buf) {
                    Ok(Some(piece)) => {
                        if let Err(e) = self.piece(piece, &mut out) {
                            tracing::warn!(error = %e, "cannot relay the SPDY stream; closing it");
                            return Ending::Abort;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "SPDY stream is not valid SPDY; closing it");
                        return Ending::Abort;
                    }
                }
            }
            if !out.is_empty() {
                if to.write_all(&out).await.is_err() || to.flush().await.is_err() {
                    return Ending::Done;
                }
                out.clear();
            }
        }
        // the sender is gone: what masked outputs hold back is all there will be
        for which in [Output::Stdout, Output::Stderr, Output::Error] {
            let rest = self.outputs.finish(which, self.rec);
            if let Some(id) = self.output_streams[which as usize] {
                put_data(&mut out, id, false, &rest);
            }
        }
        let _ = to.write_all(&out).await;
        let _ = to.shutdown().await;
        Ending::Done
    }

    fn treatment(&self, ty: Option<StreamType>) -> Treatment {
        if self.to_upstream {
            return Treatment::Pass;
        }
        match (self.kind, ty) {
            (StreamKind::PortForward, Some(StreamType::Data | StreamType::Error)) => {
                Treatment::Pass
            }
            (StreamKind::Exec | StreamKind::Attach, Some(StreamType::Stdout)) => {
                Treatment::Mask(Output::Stdout)
            }
            (StreamKind::Exec | StreamKind::Attach, Some(StreamType::Stderr)) => {
                Treatment::Mask(Output::Stderr)
            }
            (StreamKind::Exec | StreamKind::Attach, Some(StreamType::Error)) => {
                Treatment::Mask(Output::Error)
            }
            _ => Treatment::Drop,
        }
    }

    fn piece(&mut self, piece: Piece, out: &mut BytesMut) -> Result<(), String> {
        match piece {
            Piece::Control { wire, frame } => {
                lock(self.streams).control(&frame, self.rec)?;
                out.put_slice(&wire);
            }
            Piece::DataStart {
                stream_id,
                flags,
                len,
            } => {
                let ty = lock(self.streams).stream_type(stream_id);
                let treatment = self.treatment(ty);
                match treatment {
                    Treatment::Pass => out.put_slice(
                        &spdy::data_header(stream_id, flags, len).map_err(|e| e.to_string())?,
                    ),
                    Treatment::Mask(which) => self.output_streams[which as usize] = Some(stream_id),
                    Treatment::Drop => {}
                }
                self.current = Some((stream_id, ty, treatment));
            }
            Piece::Data { stream_id, data } => {
                let Some((_, ty, treatment)) = self.current else {
                    return Err("DATA payload outside a frame".into());
                };
                match treatment {
                    Treatment::Pass => {
                        self.observe(stream_id, ty, &data);
                        out.put_slice(&data);
                    }
                    Treatment::Mask(which) => {
                        let masked = self.outputs.push(which, data, self.rec);
                        put_data(out, stream_id, false, &masked);
                    }
                    Treatment::Drop => {}
                }
            }
            Piece::DataEnd { stream_id, fin } => {
                let treatment = self.current.take().map(|(_, _, t)| t);
                if fin {
                    match treatment {
                        Some(Treatment::Mask(which)) => {
                            let rest = self.outputs.finish(which, self.rec);
                            put_final_data(out, stream_id, &rest);
                        }
                        Some(Treatment::Drop) => put_final_data(out, stream_id, &[]),
                        _ => {}
                    }
                    lock(self.streams).fin(stream_id, self.to_upstream, self.rec);
                }
            }
        }
        Ok(())
    }

    /// Records what passes: stdin and resize toward the upstream, port-forward byte counts.
    fn observe(&mut self, stream_id: u32, ty: Option<StreamType>, data: &Bytes) {
        match ty {
            Some(StreamType::Stdin) if self.to_upstream => self.rec.stdin(data),
            Some(StreamType::Resize) if self.to_upstream => {
                for size in self.resize.push(data) {
                    self.rec.resize(size);
                }
            }
            Some(StreamType::Data) => {
                lock(self.streams).count(stream_id, data.len(), self.to_upstream)
            }
            _ => {}
        }
    }
}

/// Appends `data` as `DATA` frames (none when empty).
fn put_data(out: &mut BytesMut, stream_id: u32, fin: bool, data: &[u8]) {
    for chunk in data.chunks(MAX_DATA_FRAME) {
        // chunks are far below the 24-bit limit
        let _ = spdy::put_data_frame(out, stream_id, fin, chunk);
    }
}

/// Appends `data` as `DATA` frames, the last one with `FLAG_FIN` (one empty frame when empty).
fn put_final_data(out: &mut BytesMut, stream_id: u32, data: &[u8]) {
    let split = data.len().saturating_sub(1) / MAX_DATA_FRAME * MAX_DATA_FRAME;
    put_data(out, stream_id, false, &data[..split]);
    let _ = spdy::put_data_frame(out, stream_id, true, &data[split..]);
}

/// The open streams of one SPDY session (both directions), with port-forward byte counts.
#[derive(Debug, Default)]
pub(super) struct Streams {
    open: HashMap<u32, StreamState>,
}

#[derive(Debug)]
struct StreamState {
    ty: Option<StreamType>,
    /// The `port` header (port-forward).
    port: u16,
    to_upstream: u64,
    to_client: u64,
    fin_from_client: bool,
    fin_from_upstream: bool,
}

impl Streams {
    /// Takes note of a control frame (either direction).
    fn control(&mut self, frame: &Frame, rec: &Recording) -> Result<(), String> {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                if self.open.len() >= MAX_STREAMS && !self.open.contains_key(stream_id) {
                    return Err(format!("more than {MAX_STREAMS} open streams"));
                }
                self.open.insert(
                    *stream_id,
                    StreamState {
                        ty: StreamType::from_headers(headers),
                        port: spdy::header(headers, "port")
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0),
                        to_upstream: 0,
                        to_client: 0,
                        fin_from_client: false,
                        fin_from_upstream: false,
                    },
                );
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(s) = self.open.remove(stream_id) {
                    s.record(rec);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn stream_type(&self, stream_id: u32) -> Option<StreamType> {
        self.open.get(&stream_id).and_then(|s| s.ty)
    }

    fn count(&mut self, stream_id: u32, len: usize, to_upstream: bool) {
        if let Some(s) = self.open.get_mut(&stream_id) {
            let n = if to_upstream {
                &mut s.to_upstream
            } else {
                &mut s.to_client
            };
            *n += len as u64;
        }
    }

    /// A `FLAG_FIN` from the caller (`to_upstream`) or the upstream; a stream closed both ways is
    /// done.
    fn fin(&mut self, stream_id: u32, to_upstream: bool, rec: &Recording) {
        let Some(s) = self.open.get_mut(&stream_id) else {
            return;
        };
        if to_upstream {
            s.fin_from_client = true;
        } else {
            s.fin_from_upstream = true;
        }
        if s.fin_from_client
            && s.fin_from_upstream
            && let Some(s) = self.open.remove(&stream_id)
        {
            s.record(rec);
        }
    }

    /// The end of the session: records the connections still open.
    pub(super) fn finish(&mut self, rec: &Recording) {
        let mut open: Vec<(u32, StreamState)> = self.open.drain().collect();
        open.sort_by_key(|(id, _)| *id);
        for (_, s) in open {
            s.record(rec);
        }
    }
}

impl StreamState {
    /// A port-forward connection is recorded when its data stream ends.
    fn record(&self, rec: &Recording) {
        if self.ty == Some(StreamType::Data) {
            rec.port_forward(self.port, self.to_upstream, self.to_client);
        }
    }
}

/// Reads one direction of SPDY tunnelled in WebSocket messages, for accounting only.
#[derive(Debug)]
pub(super) struct Observer {
    reader: FrameReader,
    buf: BytesMut,
    to_upstream: bool,
}

impl Observer {
    pub(super) fn new(to_upstream: bool) -> Self {
        Self {
            reader: FrameReader::new(super::MAX_SPDY_CONTROL),
            buf: BytesMut::new(),
            to_upstream,
        }
    }

    /// Reads the bytes of one message.
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        streams: &mut Streams,
        rec: &Recording,
    ) -> Result<(), FrameError> {
        self.buf.extend_from_slice(bytes);
        while let Some(piece) = self.reader.next(&mut self.buf)? {
            match piece {
                Piece::Control { frame, .. } => {
                    streams.control(&frame, rec).map_err(FrameError)?;
                }
                Piece::DataStart { .. } => {}
                Piece::Data { stream_id, data } => {
                    if streams.stream_type(stream_id) == Some(StreamType::Data) {
                        streams.count(stream_id, data.len(), self.to_upstream);
                    }
                }
                Piece::DataEnd { stream_id, fin } => {
                    if fin {
                        streams.fin(stream_id, self.to_upstream, rec);
                    }
                }
            }
        }
        Ok(())
    }
}
