//! Response plumbing: the body type, content negotiation on `Accept` (JSON, YAML, `as=Table`,
//! `as=PartialObjectMetadata[List]`, aggregated discovery; protobuf/CBOR fall back to JSON when
//! JSON is also acceptable, else 406), gzip above 128 KiB, and `Status` error responses.

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::error::ApiError;

/// Body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Responses larger than this are gzipped when the client accepts gzip.
pub const GZIP_THRESHOLD: usize = 128 * 1024;

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    /// The object itself.
    Object,
    /// `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    PartialMetadata,
    /// `apidiscovery.k8s.io/v2` aggregated discovery.
    Discovery,
}

/// Negotiated response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Serialize as YAML instead of JSON.
    pub yaml: bool,
    /// The representation.
    pub as_: As,
}

impl Negotiated {
    /// Plain JSON.
    pub const JSON: Self = Self {
        yaml: false,
        as_: As::Object,
    };
}

/// Picks a representation from `Accept` like the apiserver does. `discovery` allows
/// `as=APIGroupDiscoveryList`.
pub fn negotiate(accept: Option<&str>, discovery: bool) -> Result<Negotiated, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Negotiated::JSON);
    };
    let mut clauses: Vec<(f32, usize, &str)> = accept
        .split(',')
        .enumerate()
        .map(|(i, c)| {
            let q = c
                .split(';')
                .skip(1)
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            (q, i, c.trim())
        })
        .collect();
    clauses.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    for (q, _, clause) in clauses {
        if q <= 0.0 {
            continue;
        }
        let mut parts = clause.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_p = None;
        let mut g = None;
        let mut v = None;
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_p = Some(val.trim().to_string()),
                    "g" => g = Some(val.trim().to_string()),
                    "v" => v = Some(val.trim().to_string()),
                    _ => {}
                }
            }
        }
        let yaml = match mt.as_str() {
            "application/json" | "*/*" | "application/*" | "application/json-seq" => false,
            "application/yaml" => true,
            _ => continue,
        };
        let as_ = match (as_p.as_deref(), g.as_deref(), v.as_deref()) {
            (None, _, _) => As::Object,
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => As::Table,
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) => As::PartialMetadata,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2"))
                if discovery =>
            {
                As::Discovery
            }
            _ => continue,
        };
        return Ok(Negotiated { yaml, as_ });
    }
    Err(ApiError::not_acceptable(accept))
}

/// Serialized body + content type + gzip.
pub fn bytes_response(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
    gzip: bool,
) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    let body = if gzip && body.len() > GZIP_THRESHOLD {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        let _ = enc.write_all(&body);
        match enc.finish() {
            Ok(z) => {
                resp = resp.header(header::CONTENT_ENCODING, "gzip");
                z
            }
            Err(_) => body,
        }
    } else {
        body
    };
    resp = resp.header(header::CACHE_CONTROL, "no-cache, private");
    resp.body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// Serializes a value per the negotiated format.
pub fn value_response(status: StatusCode, v: &Value, n: Negotiated, gzip: bool) -> Response<Body> {
    if n.yaml {
        let text = serde_saphyr::to_string(v).unwrap_or_default();
        return bytes_response(status, "application/yaml", text.into_bytes(), gzip);
    }
    let body = serde_json::to_vec(v).unwrap_or_default();
    bytes_response(status, "application/json", body, gzip)
}

/// A `Status` failure response (always JSON).
pub fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let mut r = bytes_response(e.code, "application/json", body, false);
    if e.code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"kubernetes\""),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let t = negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"), false).unwrap();
        assert_eq!(t.as_, As::Table);
        let p = negotiate(
            Some("application/vnd.kubernetes.protobuf,application/json"),
            false,
        )
        .unwrap();
        assert_eq!(p, Negotiated::JSON);
        assert!(negotiate(Some("application/vnd.kubernetes.protobuf"), false).is_err());
        let d = negotiate(Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"), true).unwrap();
        assert_eq!(d.as_, As::Discovery);
    }
}
