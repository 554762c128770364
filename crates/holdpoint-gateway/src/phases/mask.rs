//! The mask phase: removes secret values from responses before they reach the caller.
//!
//! The foundation passes responses through unchanged ([`NoMask`]); the masking engine replaces it
//! and will also rewrite `Accept`/`Accept-Encoding` on the way up (see [`Masker::prepare`]).
//! The output of exec and attach streams is masked by the forward phase's stream tap, with the
//! detectors [`Masker::stream_text`] names.

use std::fmt::Debug;
use std::sync::Arc;

use holdpoint_mask::TextMasker;
use http::{HeaderMap, Response};

use super::Exchange;
use crate::body::Body;

/// Masks responses.
pub trait Masker: Send + Sync + Debug {
    /// Adjusts the upstream request headers (for example to ask only for JSON).
    fn prepare(&self, exchange: &Exchange, upstream_headers: &mut HeaderMap);
    /// Masks the response the caller will receive.
    fn mask(&self, exchange: &Exchange, response: Response<Body>) -> Response<Body>;
    /// The text detectors that mask the stdout, stderr and error channels of this exec or
    /// attach stream (line by line, before the caller receives them). `None`: they pass
    /// unmasked, like the bodies of a masker that masks nothing.
    fn stream_text(&self, exchange: &Exchange) -> Option<Arc<TextMasker>>;
}

/// Passes everything through.
#[derive(Debug, Default)]
pub struct NoMask;

impl Masker for NoMask {
    fn prepare(&self, _exchange: &Exchange, _upstream_headers: &mut HeaderMap) {}
    fn mask(&self, _exchange: &Exchange, response: Response<Body>) -> Response<Body> {
        response
    }
    fn stream_text(&self, _exchange: &Exchange) -> Option<Arc<TextMasker>> {
        None
    }
}
