//! The audit log's stored form: events packed together, one row (`audit_packs`) per appended
//! batch, compressed with LZ4.
//!
//! Events of one batch are alike (the same caller, verbs and objects, the same field names), so
//! a pack of a few dozen compresses 5-20x where one row per event did not compress at all, and
//! one row and a few index entries per batch replace a row and four index entries per event
//! (docs/BENCHMARKS.md). The chain is unchanged: every event keeps its own `seq`, `prev_hash` and
//! `hash`, and [`crate::audit::event_hash`] covers the same fields, so `audit verify` finds an
//! edited, deleted, inserted or reordered event inside a pack as it did in a table.
//!
//! The row's other columns (`first_seq`, `last_seq`, `min_at`, `max_at`, `events`, `bytes`) only
//! locate packs; readers take each event's sequence number and contents from the payload.
//!
//! Payload (version 1): the byte `1`, then an LZ4 block (its uncompressed length first, 4 bytes
//! little-endian) of: the event count (u32), then per event `seq` (i64), `at` (i64,
//! microseconds), `audit_id`, `kind`, `username`?, `session_id`, `event`, `request_body`?,
//! `response_body`?, `prev_hash`, `hash`. A field is its length (u32) then its bytes; an
//! optional field (`?`) is a byte `0` (absent) or `1` then the field. All integers are
//! little-endian.

use jiff::Timestamp;

use crate::StoreError;
use crate::audit::{AuditEvent, EventContent};

/// The payload's version byte.
const VERSION: u8 = 1;
/// A batch is split into packs of at most about this many uncompressed bytes (a single larger
/// event gets a pack of its own), so that reading one event never inflates much more.
pub const PACK_TARGET_BYTES: usize = 4 * 1024 * 1024;
/// The most a payload may inflate to when read back (a guard against a forged length).
const MAX_INFLATED: usize = 1024 * 1024 * 1024;

/// One event as it goes into a pack.
#[derive(Debug, Clone, Copy)]
pub struct PackEntry<'a> {
    /// Its position in the chain.
    pub seq: i64,
    /// Everything its hash covers.
    pub content: EventContent<'a>,
    /// The hash of the event before.
    pub prev_hash: &'a [u8],
    /// Its hash.
    pub hash: &'a [u8],
}

impl<'a> PackEntry<'a> {
    /// A stored event, to pack again (pruning inside a pack, tools).
    pub fn of(e: &'a AuditEvent) -> Self {
        Self {
            seq: e.seq,
            content: EventContent {
                audit_id: &e.audit_id,
                kind: &e.kind,
                at: e.at,
                username: e.username.as_deref(),
                session_id: &e.session_id,
                event: &e.event,
                request_body: e.request_body.as_deref(),
                response_body: e.response_body.as_deref(),
            },
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        }
    }

    /// The bytes retention by size counts for this event: its text and bodies.
    pub fn size(&self) -> usize {
        self.content.event.len()
            + self.content.request_body.map_or(0, <[u8]>::len)
            + self.content.response_body.map_or(0, <[u8]>::len)
    }
}

/// A pack ready to insert: the payload and the columns that locate it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pack {
    /// The first event's sequence number (the row's key).
    pub first_seq: i64,
    /// The last event's.
    pub last_seq: i64,
    /// The earliest event time (microseconds).
    pub min_at: i64,
    /// The latest event time (microseconds).
    pub max_at: i64,
    /// How many events.
    pub events: i64,
    /// Their text and bodies, uncompressed ([`PackEntry::size`] summed).
    pub bytes: i64,
    /// The compressed payload.
    pub payload: Vec<u8>,
}

/// Payloads hold (masked) bodies: `Debug` shows only sizes.
impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("first_seq", &self.first_seq)
            .field("last_seq", &self.last_seq)
            .field("events", &self.events)
            .field("bytes", &self.bytes)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// Packs `entries` (in chain order, at least one) into one payload.
pub fn encode(entries: &[PackEntry<'_>]) -> Result<Pack, StoreError> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Err(StoreError::Invalid("an audit pack needs an event".into()));
    };
    let raw_len: usize = 4 + entries.iter().map(|e| e.size() + 160).sum::<usize>();
    let mut raw = Vec::with_capacity(raw_len);
    put_u32(&mut raw, entries.len())?;
    let (mut min_at, mut max_at, mut bytes) = (i64::MAX, i64::MIN, 0usize);
    for e in entries {
        let at = e.content.at.as_microsecond();
        min_at = min_at.min(at);
        max_at = max_at.max(at);
        bytes += e.size();
        raw.extend_from_slice(&e.seq.to_le_bytes());
        raw.extend_from_slice(&at.to_le_bytes());
        put(&mut raw, e.content.audit_id.as_bytes())?;
        put(&mut raw, e.content.kind.as_bytes())?;
        put_opt(&mut raw, e.content.username.map(str::as_bytes))?;
        put(&mut raw, e.content.session_id.as_bytes())?;
        put(&mut raw, e.content.event.as_bytes())?;
        put_opt(&mut raw, e.content.request_body)?;
        put_opt(&mut raw, e.content.response_body)?;
        put(&mut raw, e.prev_hash)?;
        put(&mut raw, e.hash)?;
    }
    if raw.len() > MAX_INFLATED {
        return Err(StoreError::Invalid("an audit pack over 1 GiB".into()));
    }
    let mut payload = Vec::with_capacity(1 + raw.len() / 4);
    payload.push(VERSION);
    payload.extend_from_slice(&lz4_flex::block::compress_prepend_size(&raw));
    Ok(Pack {
        first_seq: first.seq,
        last_seq: last.seq,
        min_at,
        max_at,
        events: entries.len() as i64,
        bytes: bytes as i64,
        payload,
    })
}

/// Splits `entries` into runs of about [`PACK_TARGET_BYTES`] each and packs every run.
pub fn encode_all(entries: &[PackEntry<'_>]) -> Result<Vec<Pack>, StoreError> {
    let mut packs = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, e) in entries.iter().enumerate() {
        if i > start && size + e.size() > PACK_TARGET_BYTES {
            packs.push(encode(&entries[start..i])?);
            start = i;
            size = 0;
        }
        size += e.size();
    }
    if start < entries.len() {
        packs.push(encode(&entries[start..])?);
    }
    Ok(packs)
}

/// The events of a payload, in the order they were packed. `without_bodies` drops the bodies
/// (listing). A payload that does not decode is [`StoreError::Corrupt`], naming `first_seq`
/// (the row it came from).
pub fn decode(
    first_seq: i64,
    payload: &[u8],
    without_bodies: bool,
) -> Result<Vec<AuditEvent>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("audit pack at {first_seq}: {what}"));
    let Some((&VERSION, compressed)) = payload.split_first() else {
        return Err(corrupt("unknown payload version"));
    };
    let declared = compressed
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("short payload"))?;
    if declared as usize > MAX_INFLATED {
        return Err(corrupt("inflates past 1 GiB"));
    }
    let raw = lz4_flex::block::decompress_size_prepended(compressed)
        .map_err(|_| corrupt("not an LZ4 block"))?;
    if raw.len() != declared as usize {
        return Err(corrupt("inflates to another length than it says"));
    }
    let mut r = Reader {
        buf: &raw,
        corrupt: &corrupt,
    };
    let count = r.u32()? as usize;
    // Every event takes at least 16 bytes plus 9 length fields.
    if count > raw.len() / 40 + 1 {
        return Err(corrupt("event count past its length"));
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        let seq = r.i64()?;
        let at = Timestamp::from_microsecond(r.i64()?).map_err(|_| corrupt("event time"))?;
        let audit_id = r.string()?;
        let kind = r.string()?;
        let username = r.opt()?.map(|b| text(b, &corrupt)).transpose()?;
        let session_id = r.string()?;
        let event = r.string()?;
        let request_body = r.opt()?.map(<[u8]>::to_vec);
        let response_body = r.opt()?.map(<[u8]>::to_vec);
        let prev_hash = r.bytes()?.to_vec();
        let hash = r.bytes()?.to_vec();
        events.push(AuditEvent {
            seq,
            audit_id,
            kind,
            at,
            username,
            session_id,
            event,
            request_body: request_body.filter(|_| !without_bodies),
            response_body: response_body.filter(|_| !without_bodies),
            prev_hash,
            hash,
        });
    }
    if !r.buf.is_empty() {
        return Err(corrupt("bytes after the last event"));
    }
    Ok(events)
}

fn put_u32(out: &mut Vec<u8>, n: usize) -> Result<(), StoreError> {
    let n =
        u32::try_from(n).map_err(|_| StoreError::Invalid("an audit field over 4 GiB".into()))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put(out: &mut Vec<u8>, v: &[u8]) -> Result<(), StoreError> {
    put_u32(out, v.len())?;
    out.extend_from_slice(v);
    Ok(())
}

fn put_opt(out: &mut Vec<u8>, v: Option<&[u8]>) -> Result<(), StoreError> {
    match v {
        Some(v) => {
            out.push(1);
            put(out, v)
        }
        None => {
            out.push(0);
            Ok(())
        }
    }
}

fn text(b: &[u8], corrupt: &dyn Fn(&str) -> StoreError) -> Result<String, StoreError> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt("text that is not UTF-8"))
}

struct Reader<'a, 'c> {
    buf: &'a [u8],
    corrupt: &'c dyn Fn(&str) -> StoreError,
}

impl<'a> Reader<'a, '_> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err((self.corrupt)("cut short"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        text(b, self.corrupt)
    }

    fn opt(&mut self) -> Result<Option<&'a [u8]>, StoreError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            _ => Err((self.corrupt)("a bad option tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: i64, body: Option<&[u8]>) -> AuditEvent {
        AuditEvent {
            seq,
            audit_id: format!("req-{seq}"),
            kind: "request".into(),
            at: Timestamp::from_second(1_800_000_000 + seq).unwrap(),
            username: (seq % 2 == 0).then(|| "agent".to_owned()),
            session_id: "s-1".into(),
            event: format!("{{\"auditID\":\"req-{seq}\",\"verb\":\"get\"}}"),
            request_body: None,
            response_body: body.map(<[u8]>::to_vec),
            prev_hash: vec![seq as u8; 32],
            hash: vec![seq as u8 + 1; 32],
        }
    }

    #[test]
    fn a_pack_decodes_to_what_was_packed() {
        let events: Vec<_> = (5..9).map(|s| stored(s, Some(b"{\"a\":1}"))).collect();
        let entries: Vec<_> = events.iter().map(PackEntry::of).collect();
        let pack = encode(&entries).unwrap();
        assert_eq!((pack.first_seq, pack.last_seq, pack.events), (5, 8, 4));
        assert_eq!(pack.min_at, events[0].at.as_microsecond());
        assert_eq!(pack.max_at, events[3].at.as_microsecond());
        assert_eq!(
            pack.bytes,
            events.iter().map(|e| e.event.len() as i64 + 7).sum::<i64>()
        );
        assert_eq!(decode(5, &pack.payload, false).unwrap(), events);
        let listed = decode(5, &pack.payload, true).unwrap();
        assert!(listed.iter().all(|e| e.response_body.is_none()));
        assert_eq!(listed[2].event, events[2].event);
    }

    #[test]
    fn alike_events_compress() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config","namespace":"demo","labels":{"app":"web"},"uid":"aadae657-9e5c-48c2-8f5b-fc3272fb287e","creationTimestamp":"2026-12-03T17:41:20Z","resourceVersion":"16"},"data":{"app.properties":"listen=:8080\nlog_level=info\n","feature-flags":"new-ui=true"}}"#;
        let events: Vec<_> = (1..=50).map(|s| stored(s, Some(body))).collect();
        let entries: Vec<_> = events.iter().map(PackEntry::of).collect();
        let pack = encode(&entries).unwrap();
        assert!(
            (pack.payload.len() as i64) * 3 < pack.bytes,
            "{} bytes packed into {}",
            pack.bytes,
            pack.payload.len()
        );
    }

    #[test]
    fn large_batches_split_into_several_packs() {
        let big = vec![b'x'; PACK_TARGET_BYTES / 3];
        let events: Vec<_> = (1..=7).map(|s| stored(s, Some(&big))).collect();
        let entries: Vec<_> = events.iter().map(PackEntry::of).collect();
        let packs = encode_all(&entries).unwrap();
        assert_eq!(
            packs
                .iter()
                .map(|p| (p.first_seq, p.last_seq))
                .collect::<Vec<_>>(),
            [(1, 2), (3, 4), (5, 6), (7, 7)]
        );
        let back: Vec<_> = packs
            .iter()
            .flat_map(|p| decode(p.first_seq, &p.payload, false).unwrap())
            .collect();
        assert_eq!(back, events);
    }

    #[test]
    fn damaged_payloads_are_corrupt_never_a_panic() {
        let events: Vec<_> = (1..=3).map(|s| stored(s, Some(b"body"))).collect();
        let entries: Vec<_> = events.iter().map(PackEntry::of).collect();
        let payload = encode(&entries).unwrap().payload;
        let mut bad_version = payload.clone();
        bad_version[0] = 9;
        let huge = [&[VERSION][..], &u32::MAX.to_le_bytes(), b"xx"].concat();
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            bad_version,
            payload[..payload.len() / 2].to_vec(),
            huge,
            [&payload[..], b"trailing"].concat(),
        ];
        for case in cases {
            let err = decode(7, &case, false).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(m) if m.contains("audit pack at 7")),
                "{err}"
            );
        }
        // Every single-byte change either decodes to something else or is corrupt.
        for i in 0..payload.len() {
            let mut p = payload.clone();
            p[i] ^= 0x5a;
            if let Ok(back) = decode(1, &p, false) {
                assert_ne!(back, events, "byte {i}");
            }
        }
    }

    #[test]
    fn debug_shows_no_payload() {
        let events = [stored(1, Some(b"hunter2"))];
        let pack = encode(&[PackEntry::of(&events[0])]).unwrap();
        assert!(!format!("{pack:?}").contains("hunter2"));
    }
}
