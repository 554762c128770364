//! Bodies as the audit log stores them: masked, capped, compressed. This is the one place the
//! record phase calls the masking engine (`holdpoint_mask::Masker`), so switching to another
//! masking API (a streaming one) changes only this file.
//!
//! - JSON (and YAML, stored as JSON): decoded and masked structurally by kind. A request body
//!   without a `kind` (patches, apply bodies) is masked as the kind of the request's resource;
//!   a JSON patch with `mask_json_patch`.
//! - Watch streams and logs: line by line (each watch event masked as an object, each log line
//!   by the text detectors), so a cut stream still stores its first lines safely.
//! - Other text: the text detectors.
//! - Protobuf, CBOR and other binary bodies cannot be masked and are not stored: only their
//!   length.
//!
//! A body longer than the cap (after masking) keeps its full length and the SHA-256 of the
//! whole masked body. A response longer than the cap was only captured up to the cap: a cut
//! single JSON document cannot be masked safely (a Secret's `data` would not be recognised in
//! half an object), so only its length and the SHA-256 of what the caller received are kept.
//!
//! Stored form: one byte then the bytes: `0` raw, what this version writes (the store
//! compresses a batch's events and bodies together, off the data path: `holdpoint_store::pack`),
//! or `1` zlib, written by versions before packs and still read.

use std::collections::BTreeMap;
use std::io::Read;

use holdpoint_mask::{MaskSummary, Masker};
use kube_request::{BodyFormat, RequestInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The most a stored body may inflate to when read back (a guard against a forged blob).
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// What the record says about a body (the bytes themselves are stored beside the event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyMeta {
    /// The body's `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Its length as sent or received.
    pub bytes: u64,
    /// Length of the stored (masked) form, before compression; 0 when not stored.
    pub stored_bytes: u64,
    /// `json`, `lines`, `text`, `asciicast`, or `none` (not stored).
    pub format: String,
    /// Longer than the cap: only the beginning (or nothing) is stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// SHA-256 (hex) of the whole body, when it was cut: of the masked body for requests,
    /// of the bytes the caller received for responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why the body is not (completely) stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What masking replaced, by rule (counts, never values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub masked: BTreeMap<String, u64>,
}

/// A body ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// What the event says about it.
    pub meta: BodyMeta,
    /// The stored form (`None` when nothing is stored).
    pub blob: Option<Vec<u8>>,
}

/// The kind a request body without its own `kind` is masked as: only kinds with masking rules
/// matter; anything else gets the rules every object gets (text detectors, annotations).
pub fn kind_of(info: &RequestInfo) -> Option<&'static str> {
    Some(match (info.resource.as_str(), info.subresource.as_str()) {
        ("secrets", "") => "Secret",
        ("pods", "" | "ephemeralcontainers" | "status") => "Pod",
        ("podtemplates", "") => "PodTemplate",
        ("deployments", "") => "Deployment",
        ("statefulsets", "") => "StatefulSet",
        ("daemonsets", "") => "DaemonSet",
        ("replicasets", "") => "ReplicaSet",
        ("replicationcontrollers", "") => "ReplicationController",
        ("jobs", "") => "Job",
        ("cronjobs", "") => "CronJob",
        ("serviceaccounts", "token") => "TokenRequest",
        ("certificatesigningrequests", _) => "CertificateSigningRequest",
        ("tokenreviews", "") => "TokenReview",
        _ => return None,
    })
}

fn counts(summary: &MaskSummary) -> BTreeMap<String, u64> {
    summary.iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn hex_sha256(bytes: &[u8]) -> String {
    holdpoint_store::sha256_hex(bytes)
}

/// Masks and encodes a request body (complete: the gateway reads request bodies whole).
pub fn request(
    masker: &Masker,
    info: Option<&RequestInfo>,
    content_type: Option<&str>,
    body: &[u8],
    cap: usize,
) -> Option<Encoded> {
    if body.is_empty() {
        return None;
    }
    let format = BodyFormat::from_content_type(content_type.unwrap_or("application/json"));
    let kind = info.and_then(kind_of);
    let mut summary = MaskSummary::new();
    let (stored, fmt) = match format {
        BodyFormat::Json
        | BodyFormat::Yaml
        | BodyFormat::JsonPatch
        | BodyFormat::MergePatch
        | BodyFormat::StrategicMergePatch
        | BodyFormat::ApplyPatchYaml => {
            match crate::phases::decide::decode_body(content_type, body) {
                Some(mut value) => {
                    let s = match (&format, kind) {
                        (BodyFormat::JsonPatch, Some(kind)) => {
                            masker.mask_json_patch(&mut value, kind)
                        }
                        (BodyFormat::JsonPatch, None) => masker.mask_json_patch(&mut value, ""),
                        (_, Some(kind)) => masker.mask_value_as(&mut value, kind),
                        (_, None) => masker.mask_value(&mut value),
                    };
                    summary.merge(&s);
                    (serde_json::to_vec(&value).unwrap_or_default(), "json")
                }
                None => (text(masker, body, &mut summary), "text"),
            }
        }
        BodyFormat::Unknown(ref t) if is_text(t) => (text(masker, body, &mut summary), "text"),
        _ => {
            return Some(not_stored(
                content_type,
                body.len(),
                "binary body: cannot be masked",
            ));
        }
    };
    Some(finish(
        content_type,
        body.len() as u64,
        stored,
        fmt,
        cap,
        summary,
    ))
}

/// A response body as captured: the first bytes up to the cap, the whole length and the
/// SHA-256 of everything the caller received.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The first bytes (at most the cap).
    pub head: Vec<u8>,
    /// Every byte's count.
    pub total: u64,
    /// SHA-256 (hex) of every byte, when there were more than the head (else computed from the
    /// head when asked: [`Captured::sha256`]).
    pub sha256_of_all: Option<String>,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
}

impl Captured {
    /// Whether bytes beyond the head were not kept.
    pub fn cut(&self) -> bool {
        self.total > self.head.len() as u64
    }

    /// SHA-256 (hex) of every byte.
    pub fn sha256(&self) -> String {
        self.sha256_of_all
            .clone()
            .unwrap_or_else(|| hex_sha256(&self.head))
    }
}

/// Masks and encodes a captured response body; `premasked`: the mask phase already masked it
/// whole (JSON and text are then stored as they are).
pub fn response(
    masker: &Masker,
    content_type: Option<&str>,
    lines: bool,
    captured: &Captured,
    cap: usize,
    premasked: bool,
) -> Option<Encoded> {
    if captured.total == 0 {
        return None;
    }
    let inflated;
    let (body, cut) = if captured.gzip {
        if captured.cut() {
            return Some(cut_meta(
                content_type,
                captured,
                "gzip body longer than the cap: not stored",
            ));
        }
        inflated = match gunzip(&captured.head, cap) {
            Some(b) => b,
            None => {
                return Some(cut_meta(
                    content_type,
                    captured,
                    "gzip body longer than the cap (or corrupt): not stored",
                ));
            }
        };
        (&inflated[..], false)
    } else {
        (&captured.head[..], captured.cut())
    };
    let format = BodyFormat::from_content_type(content_type.unwrap_or(""));
    let mut summary = MaskSummary::new();
    let line_oriented = lines
        || matches!(&format, BodyFormat::Unknown(t) if is_text(t))
        || content_type.is_some_and(|c| c.contains("stream=watch"));
    let (stored, fmt) = if line_oriented {
        // Keep whole lines only: the last one may be cut.
        let usable = if cut {
            match body.iter().rposition(|b| *b == b'\n') {
                Some(i) => &body[..=i],
                None => &[][..],
            }
        } else {
            body
        };
        if premasked {
            (usable.to_vec(), "lines")
        } else {
            (mask_lines(masker, usable, &mut summary), "lines")
        }
    } else if matches!(format, BodyFormat::Json) {
        if cut {
            return Some(cut_meta(
                content_type,
                captured,
                "longer than the cap: a partial object cannot be masked, so it is not stored",
            ));
        }
        if premasked {
            (body.to_vec(), "json")
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(mut value) => {
                    masker.mask_value_into(&mut value, &mut summary);
                    (serde_json::to_vec(&value).unwrap_or_default(), "json")
                }
                Err(_) => (text(masker, body, &mut summary), "text"),
            }
        }
    } else {
        return Some(not_stored(
            content_type,
            captured.total as usize,
            "binary body: cannot be masked",
        ));
    };
    let mut encoded = finish(content_type, captured.total, stored, fmt, cap, summary);
    if cut {
        encoded.meta.truncated = true;
        encoded.meta.sha256 = Some(captured.sha256());
        encoded.meta.note = Some("longer than the cap: the first whole lines are stored".into());
    }
    Some(encoded)
}

/// Encodes an already masked recording (an asciicast), capped by its producer.
pub fn recording(content_type: &str, bytes: Vec<u8>, total: u64, truncated: bool) -> Encoded {
    let meta = BodyMeta {
        content_type: Some(content_type.to_owned()),
        bytes: total,
        stored_bytes: bytes.len() as u64,
        format: "asciicast".into(),
        truncated,
        ..Default::default()
    };
    Encoded {
        meta,
        blob: Some(stored_form(bytes)),
    }
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
}

fn text(masker: &Masker, body: &[u8], summary: &mut MaskSummary) -> Vec<u8> {
    let t = String::from_utf8_lossy(body);
    masker.mask_text(&t, summary).into_owned().into_bytes()
}

/// Each line: a JSON object (a watch event) masked as an object, anything else as text.
fn mask_lines(masker: &Masker, body: &[u8], summary: &mut MaskSummary) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|b| *b == b'\n') {
        let (content, nl) = match line.strip_suffix(b"\n") {
            Some(c) => (c, true),
            None => (line, false),
        };
        match serde_json::from_slice::<Value>(content) {
            Ok(mut v @ Value::Object(_)) => {
                masker.mask_value_into(&mut v, summary);
                out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
            }
            _ => out.extend_from_slice(&text(masker, content, summary)),
        }
        if nl {
            out.push(b'\n');
        }
    }
    out
}

fn finish(
    content_type: Option<&str>,
    original: u64,
    mut stored: Vec<u8>,
    format: &str,
    cap: usize,
    summary: MaskSummary,
) -> Encoded {
    let mut meta = BodyMeta {
        content_type: content_type.map(str::to_owned),
        bytes: original,
        format: format.into(),
        masked: counts(&summary),
        ..Default::default()
    };
    if stored.len() > cap {
        meta.truncated = true;
        meta.sha256 = Some(hex_sha256(&stored));
        meta.note = Some(format!(
            "longer than the cap: the first {cap} bytes are stored"
        ));
        stored.truncate(cap);
    }
    meta.stored_bytes = stored.len() as u64;
    Encoded {
        meta,
        blob: Some(stored_form(stored)),
    }
}

fn not_stored(content_type: Option<&str>, len: usize, why: &str) -> Encoded {
    Encoded {
        meta: BodyMeta {
            content_type: content_type.map(str::to_owned),
            bytes: len as u64,
            format: "none".into(),
            note: Some(why.into()),
            ..Default::default()
        },
        blob: None,
    }
}

fn cut_meta(content_type: Option<&str>, captured: &Captured, why: &str) -> Encoded {
    let mut e = not_stored(content_type, captured.total as usize, why);
    e.meta.truncated = true;
    e.meta.sha256 = Some(captured.sha256());
    e
}

fn gunzip(bytes: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = flate2::read::GzDecoder::new(bytes).take(cap as u64 + 1);
    d.read_to_end(&mut out).ok()?;
    (out.len() <= cap).then_some(out)
}

/// The stored form of `bytes`: raw. A body is no longer compressed on its own on the data path
/// (zlib cost ~1 ms per 256 KiB there); the store's pack compresses it with its batch.
pub fn stored_form(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.insert(0, 0);
    bytes
}

/// A stored body decoding error (a blob that is not one of ours).
#[derive(Debug, thiserror::Error)]
#[error("stored body cannot be read: {0}")]
pub struct BlobError(&'static str);

/// The bytes of a stored body.
pub fn decompress(blob: &[u8]) -> Result<Vec<u8>, BlobError> {
    match blob.split_first() {
        Some((0, rest)) => Ok(rest.to_vec()),
        Some((1, rest)) => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(rest)
                .take(MAX_INFLATED)
                .read_to_end(&mut out)
                .map_err(|_| BlobError("corrupt zlib data"))?;
            Ok(out)
        }
        Some(_) => Err(BlobError("unknown encoding")),
        None => Err(BlobError("empty")),
    }
}

/// Keeps the first `cap` bytes of a response and counts them all; the SHA-256 of the whole
/// body is computed only once it is longer than the cap (most bodies never are).
#[derive(Debug)]
pub struct Capture {
    cap: usize,
    head: Vec<u8>,
    total: u64,
    /// Started (over the head first) when the body passed the cap.
    sha: Option<Sha256>,
    gzip: bool,
}

impl Capture {
    /// Keeps up to `cap` bytes.
    pub fn new(cap: usize, gzip: bool) -> Self {
        Self {
            cap,
            head: Vec::new(),
            total: 0,
            sha: None,
            gzip,
        }
    }

    /// One chunk the caller received.
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if let Some(sha) = &mut self.sha {
            sha.update(data);
            return;
        }
        let room = self.cap.saturating_sub(self.head.len());
        if data.len() <= room {
            self.head.extend_from_slice(data);
            return;
        }
        self.head.extend_from_slice(&data[..room]);
        let mut sha = Sha256::new();
        sha.update(&self.head);
        sha.update(&data[room..]);
        self.sha = Some(sha);
    }

    /// Bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// What was captured.
    pub fn done(self) -> Captured {
        Captured {
            sha256_of_all: self.sha.map(|sha| crate::audit::hex(&sha.finalize())),
            head: self.head,
            total: self.total,
            gzip: self.gzip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const CANARY_B64: &str = "Y2FuYXJ5LTdmM2E5Yw==";

    fn masker() -> Masker {
        Masker::new(&holdpoint_mask::MaskConfig::default()).unwrap()
    }

    fn info(method: &str, path: &str) -> RequestInfo {
        kube_request::classify(&method.parse().unwrap(), path, None).unwrap()
    }

    fn stored(e: &Encoded) -> String {
        String::from_utf8(decompress(e.blob.as_ref().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn a_secret_patch_without_kind_is_masked_as_a_secret() {
        let i = info("PATCH", "/api/v1/namespaces/demo/secrets/db");
        let body = format!("{{\"data\":{{\"password\":\"{CANARY_B64}\"}}}}");
        let e = request(
            &masker(),
            Some(&i),
            Some("application/merge-patch+json"),
            body.as_bytes(),
            1 << 20,
        )
        .unwrap();
        assert!(!stored(&e).contains(CANARY_B64), "{}", stored(&e));
        assert_eq!(e.meta.masked.get("secret.data"), Some(&1));
        assert_eq!(e.meta.format, "json");
        assert_eq!(e.meta.bytes, body.len() as u64);
    }

    #[test]
    fn yaml_apply_bodies_are_stored_as_masked_json() {
        let i = info("PATCH", "/api/v1/namespaces/demo/secrets/db");
        let body = format!("kind: Secret\napiVersion: v1\ndata:\n  password: {CANARY_B64}\n");
        let e = request(
            &masker(),
            Some(&i),
            Some("application/apply-patch+yaml"),
            body.as_bytes(),
            1 << 20,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&stored(&e)).unwrap();
        assert_eq!(v["data"]["password"], holdpoint_mask::DATA_PLACEHOLDER);
    }

    #[test]
    fn long_bodies_keep_length_and_hash_of_the_masked_whole() {
        let big = format!(
            "{{\"kind\":\"ConfigMap\",\"data\":{{\"a\":\"{}\"}}}}",
            "x".repeat(5000)
        );
        let e = request(
            &masker(),
            None,
            Some("application/json"),
            big.as_bytes(),
            1000,
        )
        .unwrap();
        assert!(e.meta.truncated);
        assert_eq!(e.meta.stored_bytes, 1000);
        assert_eq!(e.meta.bytes, big.len() as u64);
        assert_eq!(
            e.meta.sha256.as_deref(),
            Some(hex_sha256(big.as_bytes()).as_str())
        );
        assert_eq!(stored(&e).len(), 1000);
    }

    #[test]
    fn binary_bodies_are_not_stored() {
        let e = request(
            &masker(),
            None,
            Some("application/vnd.kubernetes.protobuf"),
            b"k8s\0\x01\x02",
            100,
        )
        .unwrap();
        assert!(e.blob.is_none());
        assert_eq!(e.meta.format, "none");
    }

    fn capture(bytes: &[u8], cap: usize, gzip: bool) -> Captured {
        let mut c = Capture::new(cap, gzip);
        for chunk in bytes.chunks(7) {
            c.push(chunk);
        }
        c.done()
    }

    #[test]
    fn a_cut_watch_keeps_whole_masked_lines() {
        let ev = format!(
            "{{\"type\":\"ADDED\",\"object\":{{\"kind\":\"Secret\",\"data\":{{\"k\":\"{CANARY_B64}\"}}}}}}\n"
        );
        let stream = ev.repeat(10);
        let c = capture(stream.as_bytes(), ev.len() * 3 + 5, false);
        assert!(c.cut());
        let e = response(
            &masker(),
            Some("application/json;stream=watch"),
            true,
            &c,
            1 << 20,
            false,
        )
        .unwrap();
        let text = stored(&e);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains(CANARY_B64));
        assert!(e.meta.truncated);
        assert_eq!(e.meta.bytes, stream.len() as u64);
        assert_eq!(
            e.meta.sha256.as_deref(),
            Some(hex_sha256(stream.as_bytes()).as_str())
        );
    }

    #[test]
    fn a_cut_json_object_is_not_stored() {
        let body = format!(
            "{{\"kind\":\"SecretList\",\"items\":[{{\"data\":{{\"k\":\"{CANARY_B64}\"}}}}]}}"
        );
        let c = capture(body.as_bytes(), 20, false);
        let e = response(&masker(), Some("application/json"), false, &c, 20, false).unwrap();
        assert!(e.blob.is_none());
        assert!(e.meta.truncated);
    }

    /// A captured `application/json` response as the recorder stores it (64 KiB cap).
    fn json_response(c: &Captured, premasked: bool) -> Encoded {
        response(
            &masker(),
            Some("application/json"),
            false,
            c,
            1 << 16,
            premasked,
        )
        .unwrap()
    }

    #[test]
    fn gzip_responses_are_inflated_and_masked() {
        let body = format!("{{\"kind\":\"Secret\",\"data\":{{\"k\":\"{CANARY_B64}\"}}}}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let e = json_response(&capture(&gz, 1 << 16, true), false);
        let v: Value = serde_json::from_str(&stored(&e)).unwrap();
        assert_eq!(v["data"]["k"], holdpoint_mask::DATA_PLACEHOLDER);
    }

    #[test]
    fn a_premasked_body_is_stored_as_the_caller_got_it() {
        let body = br#"{"kind":"ConfigMap","data":{"note":"password=[MASKED]"}}"#;
        let e = json_response(&capture(body, 1 << 16, false), true);
        assert_eq!(stored(&e).as_bytes(), body);
        assert_eq!(e.meta.format, "json");
        let lines = b"line one\nline two\n";
        let c = capture(lines, 1 << 16, false);
        let e = response(&masker(), Some("text/plain"), true, &c, 1 << 16, true).unwrap();
        assert_eq!(stored(&e).as_bytes(), lines);
    }

    #[test]
    fn stored_forms_round_trip_and_garbage_is_refused() {
        let long = "abc".repeat(1000);
        let blob = stored_form(long.clone().into_bytes());
        assert_eq!(blob[0], 0, "raw: the store's pack compresses");
        assert_eq!(decompress(&blob).unwrap(), long.as_bytes());
        // zlib, as versions before packs wrote bodies of 1 KiB and more
        let mut z = flate2::write::ZlibEncoder::new(vec![1u8], flate2::Compression::fast());
        z.write_all(long.as_bytes()).unwrap();
        let old = z.finish().unwrap();
        assert!(old.len() < long.len());
        assert_eq!(decompress(&old).unwrap(), long.as_bytes());
        assert_eq!(
            decompress(&stored_form(b"short".to_vec())).unwrap(),
            b"short"
        );
        assert!(decompress(&[9, 1, 2]).is_err());
        assert!(decompress(&[1, 1, 2]).is_err());
    }
}
