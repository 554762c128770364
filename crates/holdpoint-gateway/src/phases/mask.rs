//! The mask phase: no secret value in a response reaches the caller, in any encoding.
//!
//! [`EngineMasker`] is the phase (on by default; [`NoMask`] when `mask.enabled: false`). On the
//! way up, [`Masker::check`] refuses, before anything else happens, a request whose `Accept`
//! names nothing the masker can read (a 406 Status), and [`Masker::prepare`] rewrites the
//! upstream request so that the answer comes back as uncompressed JSON: `Accept` keeps only
//! its JSON clauses (protobuf, CBOR and YAML are never asked for; `*/*` becomes JSON; `as=Table`
//! and `as=PartialObjectMetadata` parameters stay) and `Accept-Encoding` is dropped. On the way
//! down, [`Masker::mask`] wraps the body in a masking stream chosen by the response's
//! `Content-Type`, never by the URL: JSON through `holdpoint_mask::JsonStream` (item by item,
//! event by event, masked by each object's kind), text (`pods/log`, follow included) through
//! `holdpoint_mask::LineStream`. A gzip body the upstream sent anyway is decompressed first;
//! `Content-Length` and `Content-Encoding` are dropped. A resource response in any other
//! format is refused (502 Status), never passed through; non-resource URLs (`/openapi/v2`
//! protobuf, `/version`, discovery) pass when they are not JSON or text. A body that turns out
//! not to be maskable (invalid JSON, a value over `mask.max_value_bytes`, cut off) ends the
//! response with an error: the caller gets what was masked before it, nothing after.
//!
//! Objects of kinds the policy reveals to the caller (`Exchange::reveal`) pass unmasked; each
//! response that revealed something is logged (`holdpoint::mask`) and counted
//! (`holdpoint_revealed_objects`), as are masked values (`holdpoint_masked_values`).
//!
//! The output of exec and attach streams is masked by the forward phase's stream tap, with the
//! detectors [`Masker::stream_text`] names.

use std::fmt::Debug;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use flate2::write::GzDecoder;
use holdpoint_mask::{JsonStream, LineStream, MaskSummary, Reveal, StreamError, TextMasker};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body::Frame;

use super::Exchange;
use crate::body::{self, Body, BoxError};
use crate::config::MaskConfig;
use crate::error::GatewayError;
use crate::metrics::Metrics;

/// Masks responses.
pub trait Masker: Send + Sync + Debug {
    /// Refuses, before the request is decided or held, what could never be answered masked
    /// (an `Accept` with no maskable format). `headers` are the caller's request headers.
    fn check(&self, exchange: &Exchange, headers: &HeaderMap) -> Result<(), GatewayError>;
    /// Adjusts the upstream request headers (asks only for uncompressed JSON).
    fn prepare(&self, exchange: &Exchange, upstream_headers: &mut HeaderMap);
    /// Masks the response the caller will receive, or refuses it.
    fn mask(
        &self,
        exchange: &Exchange,
        response: Response<Body>,
    ) -> Result<Response<Body>, GatewayError>;
    /// The text detectors that mask the stdout, stderr and error channels of this exec or
    /// attach stream (line by line, before the caller receives them). `None`: they pass
    /// unmasked, like the bodies of a masker that masks nothing.
    fn stream_text(&self, exchange: &Exchange) -> Option<Arc<TextMasker>>;
}

/// Passes everything through (`mask.enabled: false`).
#[derive(Debug, Default)]
pub struct NoMask;

impl Masker for NoMask {
    fn check(&self, _exchange: &Exchange, _headers: &HeaderMap) -> Result<(), GatewayError> {
        Ok(())
    }
    fn prepare(&self, _exchange: &Exchange, _upstream_headers: &mut HeaderMap) {}
    fn mask(
        &self,
        _exchange: &Exchange,
        response: Response<Body>,
    ) -> Result<Response<Body>, GatewayError> {
        Ok(response)
    }
    fn stream_text(&self, _exchange: &Exchange) -> Option<Arc<TextMasker>> {
        None
    }
}

/// The phase built from `mask:` (see the module docs).
#[derive(Debug)]
pub struct EngineMasker {
    engine: Arc<holdpoint_mask::Masker>,
    /// The detectors of exec/attach output (the engine's text detectors, shared with the tap).
    stream_text: Arc<TextMasker>,
    max_value_bytes: usize,
    max_line_bytes: usize,
    metrics: Arc<Metrics>,
}

impl EngineMasker {
    /// Compiles the configuration (already validated with the config).
    pub fn new(
        config: &MaskConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, holdpoint_mask::MaskError> {
        Ok(Self {
            engine: Arc::new(holdpoint_mask::Masker::new(&config.engine())?),
            stream_text: Arc::new(TextMasker::new(&config.engine())?),
            max_value_bytes: usize::try_from(config.max_value_bytes).unwrap_or(usize::MAX),
            max_line_bytes: usize::try_from(config.max_line_bytes).unwrap_or(usize::MAX),
            metrics,
        })
    }

    /// The masking engine (shared with whoever masks bodies for the record).
    pub fn engine(&self) -> &Arc<holdpoint_mask::Masker> {
        &self.engine
    }
}

/// Whether the request reads the API's objects (a resource request); non-resource URLs
/// (discovery, `/openapi/*`, `/version`) are handled more leniently. Unclassified counts as a
/// resource request (fail closed).
fn is_resource_request(ex: &Exchange) -> bool {
    ex.info.as_ref().is_none_or(|i| i.is_resource_request)
}

/// Every `Accept` value of `headers`, joined as one list.
fn accept_of(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Rewrites an `Accept` list so that the answer can only be JSON (or, for the few endpoints
/// that stream text, text): JSON clauses keep their parameters (`as=Table;g=meta.k8s.io;v=v1`),
/// `*/*` and `application/*` become `application/json` with theirs, `text/*` clauses stay,
/// everything else (protobuf, CBOR, YAML) is dropped, as are clauses with `q=0`. Media types and
/// parameter names are compared case-insensitively, as the apiserver does. `None`: nothing
/// maskable is acceptable (a 406). No `Accept` at all asks for JSON.
pub fn json_only_accept(accept: Option<&str>) -> Option<HeaderValue> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(HeaderValue::from_static("application/json"));
    };
    let mut kept: Vec<String> = Vec::new();
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, &str)> = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim()),
                None => (p.to_ascii_lowercase(), ""),
            })
            .collect();
        let refused = params
            .iter()
            .any(|(k, v)| k == "q" && !v.parse::<f32>().is_ok_and(|q| q > 0.0));
        if refused {
            continue;
        }
        let out_media = match media.as_str() {
            "application/json" | "*/*" | "application/*" => "application/json",
            m if m.starts_with("text/") && !m.contains(['*', '"', '\\']) => m,
            _ => continue,
        };
        let mut c = out_media.to_owned();
        for (k, v) in &params {
            c.push(';');
            c.push_str(k);
            if !v.is_empty() {
                c.push('=');
                c.push_str(v);
            }
        }
        kept.push(c);
    }
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// The media type of a `Content-Type`, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// How a body is masked.
enum Treatment {
    Json,
    Lines,
    Pass,
    Refuse(String),
}

fn treatment(media: &str, resource: bool) -> Treatment {
    if media.is_empty() || media == "application/json" || media.ends_with("+json") {
        Treatment::Json
    } else if media.starts_with("text/") {
        Treatment::Lines
    } else if !resource {
        Treatment::Pass
    } else {
        Treatment::Refuse(format!(
            "the Kubernetes API server answered with {media:?}, which Holdpoint cannot mask, so the answer was withheld"
        ))
    }
}

impl Masker for EngineMasker {
    fn check(&self, ex: &Exchange, headers: &HeaderMap) -> Result<(), GatewayError> {
        if !is_resource_request(ex) || crate::headers::requested_upgrade(headers).is_some() {
            return Ok(());
        }
        let accept = accept_of(headers);
        match json_only_accept(accept.as_deref()) {
            Some(_) => Ok(()),
            None => Err(GatewayError::NotAcceptable(format!(
                "only the following media types are accepted through Holdpoint, which masks secret values: application/json (the request asked for {:?})",
                accept.unwrap_or_default()
            ))),
        }
    }

    fn prepare(&self, ex: &Exchange, upstream: &mut HeaderMap) {
        if upstream.contains_key(header::UPGRADE) {
            return;
        }
        let mut accept = is_resource_request(ex).then(|| {
            json_only_accept(accept_of(upstream).as_deref())
                .unwrap_or(HeaderValue::from_static("application/json"))
        });
        let rewrite = accept.is_some();
        // rebuilt rather than edited in place: the other headers keep their order
        let old = std::mem::take(upstream);
        let mut name = None;
        for (n, value) in old {
            if n.is_some() {
                name = n;
            }
            let Some(n) = &name else { continue };
            if *n == header::ACCEPT_ENCODING {
                continue;
            }
            if *n == header::ACCEPT && rewrite {
                if let Some(a) = accept.take() {
                    upstream.append(header::ACCEPT, a);
                }
                continue;
            }
            upstream.append(n.clone(), value);
        }
        if let Some(a) = accept {
            upstream.append(header::ACCEPT, a);
        }
    }

    fn mask(
        &self,
        ex: &Exchange,
        response: Response<Body>,
    ) -> Result<Response<Body>, GatewayError> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS || ex.method == Method::HEAD {
            return Ok(response);
        }
        let (mut parts, inner) = response.into_parts();
        let media = media_type(&parts.headers);
        let mode = match treatment(&media, is_resource_request(ex)) {
            Treatment::Pass => return Ok(Response::from_parts(parts, inner)),
            Treatment::Refuse(why) => return Err(GatewayError::Unmaskable(why)),
            Treatment::Json => Mode::Json(Box::new(JsonStream::new(
                Reveal::kinds(ex.reveal.kinds.iter().cloned()),
                self.max_value_bytes,
            ))),
            Treatment::Lines => Mode::Lines(LineStream::new(self.max_line_bytes)),
        };
        let gunzip = match parts
            .headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "identity") => None,
            Some("gzip" | "x-gzip") => Some(GzDecoder::new(Vec::new())),
            Some(other) => {
                return Err(GatewayError::Unmaskable(format!(
                    "the Kubernetes API server answered with content encoding {other:?}, which Holdpoint cannot mask, so the answer was withheld"
                )));
            }
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_ENCODING);
        let body = MaskingBody {
            inner,
            engine: self.engine.clone(),
            mode,
            gunzip,
            done: false,
            reported: false,
            audit_id: ex.audit_id.clone(),
            user: ex
                .identity
                .as_ref()
                .map(|i| i.username.clone())
                .unwrap_or_default(),
            reveal_rules: ex.reveal.rules.clone(),
            metrics: self.metrics.clone(),
            tally: ex.masked.clone(),
            ended: false,
        };
        Ok(Response::from_parts(parts, body::stream(body)))
    }

    fn stream_text(&self, _exchange: &Exchange) -> Option<Arc<TextMasker>> {
        // No policy reveal applies to process output: it is always masked.
        Some(self.stream_text.clone())
    }
}

enum Mode {
    Json(Box<JsonStream>),
    Lines(LineStream),
}

impl Mode {
    fn push(
        &mut self,
        m: &holdpoint_mask::Masker,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match self {
            Mode::Json(s) => s.push(m, chunk, out),
            Mode::Lines(s) => {
                s.push(m, chunk, out);
                Ok(())
            }
        }
    }

    fn finish(&mut self, m: &holdpoint_mask::Masker, out: &mut Vec<u8>) -> Result<(), StreamError> {
        match self {
            Mode::Json(s) => s.finish(m, out),
            Mode::Lines(s) => {
                s.finish(m, out);
                Ok(())
            }
        }
    }

    fn summary(&self) -> &MaskSummary {
        match self {
            Mode::Json(s) => s.summary(),
            Mode::Lines(s) => s.summary(),
        }
    }
}

/// Why a response body was cut off.
#[derive(Debug, thiserror::Error)]
enum MaskFailure {
    #[error("the response could not be masked and was cut off: {0}")]
    Stream(#[from] StreamError),
    #[error("the response's gzip encoding could not be read and it was cut off: {0}")]
    Gzip(#[from] std::io::Error),
}

/// Compressed bytes decompressed per step: bounds what one step can expand to.
const GUNZIP_STEP: usize = 1024;

/// A response body masked as it streams.
struct MaskingBody {
    inner: Body,
    engine: Arc<holdpoint_mask::Masker>,
    mode: Mode,
    gunzip: Option<GzDecoder<Vec<u8>>>,
    done: bool,
    reported: bool,
    audit_id: String,
    user: String,
    reveal_rules: Vec<String>,
    metrics: Arc<Metrics>,
    tally: super::MaskTally,
    /// The body was masked to its end (not cut by an error or the caller leaving).
    ended: bool,
}

impl MaskingBody {
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), MaskFailure> {
        match &mut self.gunzip {
            None => self.mode.push(&self.engine, data, out)?,
            Some(gz) => {
                for piece in data.chunks(GUNZIP_STEP) {
                    gz.write_all(piece)?;
                    let plain = std::mem::take(gz.get_mut());
                    self.mode.push(&self.engine, &plain, out)?;
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), MaskFailure> {
        if let Some(gz) = &mut self.gunzip {
            gz.try_finish()?;
            let plain = std::mem::take(gz.get_mut());
            self.mode.push(&self.engine, &plain, out)?;
        }
        self.mode.finish(&self.engine, out)?;
        Ok(())
    }

    fn fail(&mut self, e: MaskFailure) -> BoxError {
        self.done = true;
        self.metrics.mask_failed();
        tracing::warn!(target: "holdpoint::mask", audit_id = %self.audit_id, error = %e, "response cut off");
        Box::new(e)
    }

    /// Counts and logs what masking did (once: at the end, or when the caller leaves).
    fn report(&mut self) {
        if self.reported {
            return;
        }
        self.reported = true;
        let summary = self.mode.summary();
        self.metrics.observe_mask(summary);
        self.tally.add(summary, self.ended);
        if summary.revealed_total() > 0 {
            let kinds: Vec<String> = summary
                .revealed()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            tracing::info!(
                target: "holdpoint::mask",
                audit_id = %self.audit_id,
                user = %self.user,
                revealed = %kinds.join(","),
                rules = %self.reveal_rules.join(","),
                "objects revealed unmasked"
            );
        }
        if !summary.is_empty() {
            let rules: Vec<String> = summary.iter().map(|(r, n)| format!("{r}={n}")).collect();
            tracing::debug!(target: "holdpoint::mask", audit_id = %self.audit_id, masked = %rules.join(","), "values masked");
        }
    }
}

impl Drop for MaskingBody {
    fn drop(&mut self) {
        self.report();
    }
}

impl http_body::Body for MaskingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // trailers are dropped: nothing in them was masked
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut out = Vec::new();
                    if let Err(e) = this.feed(&data, &mut out) {
                        return Poll::Ready(Some(Err(this.fail(e))));
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.done = true;
                    let mut out = Vec::new();
                    if let Err(e) = this.end(&mut out) {
                        return Poll::Ready(Some(Err(this.fail(e))));
                    }
                    this.ended = true;
                    this.report();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(path: &str) -> Exchange {
        Exchange::for_test(Method::GET, path)
    }

    fn masker() -> EngineMasker {
        EngineMasker::new(&MaskConfig::default(), Arc::new(Metrics::default())).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn prepare_asks_for_uncompressed_json_and_keeps_the_other_headers_in_order() {
        let ex = exchange("/api/v1/namespaces/d/secrets");
        let mut h = headers(&[
            ("impersonate-user", "alice"),
            ("accept", "application/vnd.kubernetes.protobuf"),
            ("accept-encoding", "gzip"),
            ("impersonate-group", "devs"),
            ("accept", "application/json;as=Table;g=meta.k8s.io;v=v1"),
            ("impersonate-group", "ops"),
        ]);
        masker().prepare(&ex, &mut h);
        let all: Vec<(String, String)> = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            all,
            [
                ("impersonate-user", "alice"),
                ("accept", "application/json;as=Table;g=meta.k8s.io;v=v1"),
                ("impersonate-group", "devs"),
                ("impersonate-group", "ops"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // no Accept at all: JSON is asked for
        let mut h = HeaderMap::new();
        masker().prepare(&ex, &mut h);
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn upgrades_and_non_resource_urls_keep_their_accept() {
        let mut h = headers(&[("upgrade", "websocket"), ("accept", "*/*")]);
        masker().prepare(&exchange("/api/v1/namespaces/d/pods/p/exec"), &mut h);
        assert_eq!(h["accept"], "*/*");
        let mut h = headers(&[
            (
                "accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            ),
            ("accept-encoding", "gzip"),
        ]);
        masker().prepare(&exchange("/openapi/v2"), &mut h);
        assert_eq!(
            h["accept"],
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        );
        assert!(h.get("accept-encoding").is_none());
    }

    #[test]
    fn check_refuses_what_could_never_be_masked() {
        let m = masker();
        let ex = exchange("/api/v1/namespaces/d/secrets");
        let proto = headers(&[("accept", "application/vnd.kubernetes.protobuf")]);
        assert!(matches!(
            m.check(&ex, &proto),
            Err(GatewayError::NotAcceptable(_))
        ));
        let both = headers(&[(
            "accept",
            "application/vnd.kubernetes.protobuf, application/json",
        )]);
        assert!(m.check(&ex, &both).is_ok());
        assert!(m.check(&exchange("/openapi/v2"), &proto).is_ok());
        assert!(NoMask.check(&ex, &proto).is_ok());
    }

    fn accept(a: &str) -> Option<String> {
        json_only_accept(Some(a)).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn accept_keeps_only_json_and_text() {
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, application/json").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").as_deref(),
            Some("application/json;as=Table;v=v1;g=meta.k8s.io, application/json")
        );
        assert_eq!(accept("*/*").as_deref(), Some("application/json"));
        assert_eq!(
            accept("Application/JSON;AS=Table;g=meta.k8s.io;v=v1").as_deref(),
            Some("application/json;as=Table;g=meta.k8s.io;v=v1")
        );
        assert_eq!(accept("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(accept("application/cbor, application/yaml"), None);
        assert_eq!(
            accept("application/json;q=0, application/vnd.kubernetes.protobuf"),
            None
        );
        assert_eq!(accept("application/json;q=abc"), None);
        assert_eq!(accept("text/plain").as_deref(), Some("text/plain"));
        assert_eq!(
            json_only_accept(None).unwrap().to_str().unwrap(),
            "application/json"
        );
    }

    #[test]
    fn bodies_are_treated_by_content_type() {
        assert!(matches!(
            treatment("application/json", true),
            Treatment::Json
        ));
        assert!(matches!(treatment("", true), Treatment::Json));
        assert!(matches!(
            treatment("application/merge-patch+json", true),
            Treatment::Json
        ));
        assert!(matches!(treatment("text/plain", true), Treatment::Lines));
        for refused in [
            "application/vnd.kubernetes.protobuf",
            "application/cbor",
            "application/yaml",
            "application/octet-stream",
        ] {
            assert!(matches!(treatment(refused, true), Treatment::Refuse(_)));
        }
        assert!(matches!(
            treatment(
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                false
            ),
            Treatment::Pass
        ));
    }
}
