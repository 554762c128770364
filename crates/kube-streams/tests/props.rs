//! Property tests: SPDY frames survive encoding and decoding through one connection context, the
//! piece reader reproduces the input byte for byte however the input is split, channel framing
//! round-trips every payload, and resize messages are found however they are split.

use bytes::{Bytes, BytesMut};
use kube_streams::channel::{self, WireMessage};
use kube_streams::spdy::{Decoder, Encoder, Frame, FrameReader, Piece, Setting, data_header};
use kube_streams::{ResizeParser, TermSize};
use proptest::prelude::*;

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,40}"), 0..5)
}

fn stream_id() -> impl Strategy<Value = u32> {
    1u32..0x7fff_ffff
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            stream_id(),
            0u32..100,
            0u8..8,
            any::<bool>(),
            any::<bool>(),
            headers()
        )
            .prop_map(
                |(stream_id, associated_to, priority, fin, unidirectional, headers)| {
                    Frame::SynStream {
                        stream_id,
                        associated_to,
                        priority,
                        fin,
                        unidirectional,
                        headers,
                    }
                }
            ),
        (stream_id(), any::<bool>(), headers()).prop_map(|(stream_id, fin, headers)| {
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
        }),
        (stream_id(), any::<bool>(), headers()).prop_map(|(stream_id, fin, headers)| {
            Frame::Headers {
                stream_id,
                fin,
                headers,
            }
        }),
        (stream_id(), any::<u32>())
            .prop_map(|(stream_id, status)| Frame::RstStream { stream_id, status }),
        (
            any::<u8>(),
            prop::collection::vec((any::<u8>(), 0u32..0x00ff_ffff, any::<u32>()), 0..4)
        )
            .prop_map(|(flags, entries)| Frame::Settings {
                flags,
                entries: entries
                    .into_iter()
                    .map(|(flags, id, value)| Setting { flags, id, value })
                    .collect()
            }),
        any::<u32>().prop_map(|id| Frame::Ping { id }),
        (stream_id(), any::<u32>()).prop_map(|(last_good_stream_id, status)| Frame::GoAway {
            last_good_stream_id,
            status
        }),
        (stream_id(), 0u32..0x7fff_ffff)
            .prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
        (
            stream_id(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(stream_id, fin, data)| Frame::Data {
                stream_id,
                fin,
                data: Bytes::from(data)
            }),
    ]
}

/// Cut points (sorted, inside `0..=len`).
fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    c.sort_unstable();
    c
}

fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        out.push(&data[prev..c]);
        prev = c;
    }
    out
}

proptest! {
    #[test]
    fn frames_round_trip(frames in prop::collection::vec(frame(), 1..12)) {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut decoded = Vec::new();
        while let Some(f) = dec.decode(&mut wire).unwrap() {
            decoded.push(f);
        }
        prop_assert!(wire.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn the_piece_reader_is_byte_exact_however_the_input_is_split(
        frames in prop::collection::vec(frame(), 1..12),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let original = wire.freeze();
        let mut reader = FrameReader::new(1 << 20);
        let mut input = BytesMut::new();
        let mut rebuilt = BytesMut::new();
        let mut decoded = Vec::new();
        let mut data: Option<BytesMut> = None;
        for part in split(&original, &cuts(original.len(), &raw_cuts)) {
            input.extend_from_slice(part);
            while let Some(piece) = reader.next(&mut input).unwrap() {
                match piece {
                    Piece::Control { wire, frame } => {
                        rebuilt.extend_from_slice(&wire);
                        decoded.push(frame);
                    }
                    Piece::DataStart { stream_id, flags, len } => {
                        rebuilt.extend_from_slice(&data_header(stream_id, flags, len).unwrap());
                        data = Some(BytesMut::new());
                    }
                    Piece::Data { data: d, .. } => {
                        rebuilt.extend_from_slice(&d);
                        data.as_mut().unwrap().extend_from_slice(&d);
                    }
                    Piece::DataEnd { stream_id, fin } => decoded.push(Frame::Data {
                        stream_id,
                        fin,
                        data: data.take().unwrap().freeze(),
                    }),
                }
            }
        }
        prop_assert!(input.is_empty());
        prop_assert_eq!(rebuilt.freeze(), original);
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn channel_messages_round_trip(
        base64 in any::<bool>(),
        channel in 0u8..10,
        data in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let (text, payload) = match channel::encode(base64, channel, &data) {
            WireMessage::Binary(b) => (false, b),
            WireMessage::Text(t) => (true, Bytes::from(t)),
        };
        prop_assert_eq!(text, base64);
        let (c, d) = channel::decode(base64, text, payload).unwrap();
        prop_assert_eq!(c, channel);
        prop_assert_eq!(&d[..], &data[..]);
    }

    #[test]
    fn resize_messages_are_found_however_they_are_split(
        sizes in prop::collection::vec((any::<u16>(), any::<u16>()), 1..6),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let sizes: Vec<TermSize> = sizes
            .into_iter()
            .map(|(width, height)| TermSize { width, height })
            .collect();
        let mut stream = Vec::new();
        for s in &sizes {
            stream.extend_from_slice(&serde_json::to_vec(s).unwrap());
        }
        let mut parser = ResizeParser::default();
        let mut found = Vec::new();
        for part in split(&stream, &cuts(stream.len(), &raw_cuts)) {
            found.extend(parser.push(part));
        }
        prop_assert_eq!(found, sizes);
    }
}
