//! Masking a whole body of a given content type: what the record phase stores of request and
//! response bodies.
//!
//! JSON (any `application/*json`, watch streams too) is masked like the data path masks it;
//! RFC 6902 JSON patches against the request's kind; YAML (`application/yaml`,
//! `application/apply-patch+yaml`) is decoded and stored masked as JSON; text (`text/*`) line
//! by line. Anything else (protobuf, CBOR, bytes, a body that does not decode) cannot be
//! masked and is replaced whole by [`PLACEHOLDER`]: fail closed.

use serde_json::Value;

use crate::{JsonStream, LineStream, MaskSummary, Masker, PLACEHOLDER, Reveal};

/// What kind of body it was, and so what the masked bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// JSON, masked (watch streams: one event per line).
    Json,
    /// YAML, decoded and masked: the bytes are JSON.
    YamlAsJson,
    /// Text, masked.
    Text,
    /// Could not be masked (protobuf, CBOR, bytes, undecodable): the bytes are [`PLACEHOLDER`].
    Replaced,
}

/// A masked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedBody {
    /// The masked bytes.
    pub bytes: Vec<u8>,
    /// What they are.
    pub kind: BodyKind,
    /// What was masked.
    pub summary: MaskSummary,
}

/// The media type of a `Content-Type` (lowercase, parameters dropped).
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Masker {
    /// Masks a whole body. `content_type` is its `Content-Type` (absent: JSON is tried);
    /// `kind` is the kind of the request's resource, for bodies that do not say it (patches,
    /// apply bodies); objects of `reveal`'s kinds are left as they are.
    pub fn mask_body(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        kind: Option<&str>,
        reveal: &Reveal,
    ) -> MaskedBody {
        let mut summary = MaskSummary::new();
        if body.is_empty() {
            return MaskedBody {
                bytes: Vec::new(),
                kind: BodyKind::Empty,
                summary,
            };
        }
        let media = content_type.map(media_type).unwrap_or_default();
        let replaced = |mut summary: MaskSummary| {
            summary.add("body.unmaskable");
            MaskedBody {
                bytes: PLACEHOLDER.as_bytes().to_vec(),
                kind: BodyKind::Replaced,
                summary,
            }
        };
        let is_json = media.is_empty()
            || media == "application/json"
            || media.ends_with("+json")
            || media == "application/json-seq";
        let is_yaml = media == "application/yaml" || media.ends_with("+yaml");
        if media == "application/json-patch+json" {
            let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
                return replaced(summary);
            };
            summary = self.mask_json_patch(&mut v, kind.unwrap_or(""));
            return match serde_json::to_vec(&v) {
                Ok(bytes) => MaskedBody {
                    bytes,
                    kind: BodyKind::Json,
                    summary,
                },
                Err(_) => replaced(summary),
            };
        }
        if is_json || is_yaml {
            let decoded = if is_json {
                serde_json::from_slice::<Value>(body).ok()
            } else {
                std::str::from_utf8(body)
                    .ok()
                    .and_then(|t| serde_saphyr::from_str::<Value>(t).ok())
            };
            if let Some(mut v) = decoded {
                self.mask_value_with(&mut v, kind, reveal, &mut summary);
                return match serde_json::to_vec(&v) {
                    Ok(bytes) => MaskedBody {
                        bytes,
                        kind: if is_json {
                            BodyKind::Json
                        } else {
                            BodyKind::YamlAsJson
                        },
                        summary,
                    },
                    Err(_) => replaced(summary),
                };
            }
            if is_json {
                // several values (a watch stream): masked as the data path masks it
                let mut stream = JsonStream::new(reveal.clone(), usize::MAX);
                let mut bytes = Vec::with_capacity(body.len());
                if stream.push(self, body, &mut bytes).is_ok()
                    && stream.finish(self, &mut bytes).is_ok()
                {
                    return MaskedBody {
                        bytes,
                        kind: BodyKind::Json,
                        summary: stream.summary().clone(),
                    };
                }
            }
            return replaced(summary);
        }
        if media.starts_with("text/") {
            let mut lines = LineStream::new(usize::MAX);
            let mut bytes = Vec::with_capacity(body.len());
            lines.push(self, body, &mut bytes);
            lines.finish(self, &mut bytes);
            return MaskedBody {
                bytes,
                kind: BodyKind::Text,
                summary: lines.summary().clone(),
            };
        }
        replaced(summary)
    }
}
