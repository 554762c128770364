//! Holdpoint's masking core: the pure engine behind the gateway's mask phase (issue 5).
//!
//! It masks secret values in two ways, without any I/O:
//!
//! - **Structurally**, in a decoded object (`serde_json::Value`), by the object's `kind` (never by
//!   URL, so every way of reading an object is covered the same): Secret `data`/`stringData`
//!   values, lists (`*List`, `items`), watch events, `Table` rows and cells,
//!   `PartialObjectMetadata[List]`, the `kubectl.kubernetes.io/last-applied-configuration`
//!   annotation, TokenRequest/CSR/TokenReview credentials and literal `env[].value` of pods and
//!   pod templates ([`structural`]).
//! - **In text**, by credential detectors curated from gitleaks plus configured regexes, all run
//!   as one [`regex::RegexSet`] pass ([`detect`]). Every string of a masked object (values and map
//!   keys) goes through the detectors as well, so a credential pasted anywhere is masked.
//!
//! Masking is idempotent (masking a masked object changes nothing) and reports what it did as a
//! [`MaskSummary`]: counts by rule, never the values.
//!
//! Bodies are masked as they stream, in bounded memory: [`JsonStream`] masks JSON documents
//! (a LIST item by item, a `Table` row by row) and watch streams (event by event), chunk in,
//! masked chunk out; [`LineStream`] masks text (`pods/log`, follow included) line by line.
//! [`Masker::mask_body`] masks a whole body of a given content type (for the audit record).
//! A [`Reveal`] leaves objects of named kinds unmasked (policy grants it to humans).
//!
//! See `docs/ARCHITECTURE.md` ("Masking").

pub mod body;
pub mod config;
pub mod detect;
pub mod fields;
pub mod lines;
mod raw;
pub mod stream;
pub mod structural;
pub mod summary;
pub mod text_stream;

use std::collections::BTreeSet;

pub use body::{BodyKind, MaskedBody};
pub use config::{CustomDetector, MaskConfig};
pub use detect::{Finding, TextMasker};
pub use fields::FieldRule;
pub use lines::LineStream;
pub use stream::{JsonStream, StreamError};
pub use structural::Masker;
pub use summary::MaskSummary;

/// Kinds whose objects are served unmasked (policy reveals them to named humans). Everything
/// else is masked; the default reveals nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reveal {
    kinds: BTreeSet<String>,
}

/// Reveals nothing.
pub const NO_REVEAL: &Reveal = &Reveal {
    kinds: BTreeSet::new(),
};

impl Reveal {
    /// Reveals the given kinds (object `kind`s, e.g. `Secret`).
    pub fn kinds<I, S>(kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            kinds: kinds.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether objects of `kind` are served unmasked.
    pub fn is_revealed(&self, kind: &str) -> bool {
        !self.kinds.is_empty() && self.kinds.contains(kind)
    }

    /// Whether nothing is revealed.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The revealed kinds, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.kinds.iter().map(String::as_str)
    }
}

/// What a masked text value (and a masked `stringData` value, env value, token, ...) becomes.
pub const PLACEHOLDER: &str = "[MASKED]";

/// What a masked Secret `data` value becomes: `base64("[MASKED]")`, so it is still valid base64
/// and clients that decode `data` do not break.
pub const DATA_PLACEHOLDER: &str = "W01BU0tFRF0=";

/// A masking configuration that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// An env-name pattern is empty (it would match every name).
    #[error("mask.env_name_patterns[{index}] is empty")]
    EmptyEnvPattern {
        /// Position in the list.
        index: usize,
    },
    /// A custom detector has no name or a name used twice.
    #[error("mask.detectors[{index}]: {reason}")]
    BadDetectorName {
        /// Position in the list.
        index: usize,
        /// What is wrong with the name.
        reason: &'static str,
    },
    /// A field rule is incomplete or has a selector that cannot be read.
    #[error("mask.field_rules[{index}]: {reason}")]
    BadFieldRule {
        /// Position in the list.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A custom detector's regex does not compile.
    #[error("mask.detectors[{index}] ({name}): invalid regex: {source}")]
    BadRegex {
        /// Position in the list.
        index: usize,
        /// The detector's name.
        name: String,
        /// The regex crate's error (describes the pattern, never a matched value).
        #[source]
        source: Box<regex::Error>,
    },
}
