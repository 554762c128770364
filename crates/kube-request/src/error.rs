//! Errors returned when a request target cannot be classified safely.
//!
//! Every message is phrased so it can be placed verbatim in the `message`
//! field of a Kubernetes `Status` object (HTTP 400). Messages never echo the
//! offending input, so they are safe to return to untrusted clients.

use thiserror::Error;

/// Why a request path was rejected.
///
/// Holdpoint denies rather than guesses: any path that a proxy, the
/// kube-apiserver and the proxied backend could disagree about is rejected
/// before classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum PathError {
    /// The request target is not in origin form (`/...`), e.g. absolute form
    /// `http://host/api/...`, authority form or `*`.
    #[error("the request target must be an absolute path starting with '/' (origin form)")]
    NotOriginForm,
    /// `//` somewhere in the path (an empty segment).
    #[error("the request path must not contain empty segments ('//')")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("the request path must not contain '.' or '..' segments")]
    DotSegment,
    /// `%2F` / `%2f`: an encoded slash would create a segment boundary the
    /// apiserver sees but a naive router does not.
    #[error("the request path must not contain an encoded slash (%2F)")]
    EncodedSlash,
    /// `%5C` / `%5c`.
    #[error("the request path must not contain an encoded backslash (%5C)")]
    EncodedBackslash,
    /// A literal `\`.
    #[error("the request path must not contain a backslash")]
    Backslash,
    /// `%2E` / `%2e`: an encoded dot (used to smuggle `..`).
    #[error("the request path must not contain an encoded dot (%2E)")]
    EncodedDot,
    /// `%25`: a `%` that survives decoding (double encoding such as `%252F`).
    #[error("the request path must not contain an encoded percent sign (double encoding)")]
    DoubleEncoding,
    /// `;` (literal or `%3B`): path parameters.
    #[error("the request path must not contain ';' (path parameters)")]
    PathParameter,
    /// NUL or another ASCII control character, literal or percent-encoded.
    #[error("the request path must not contain NUL or control characters")]
    ControlCharacter,
    /// A literal space, `?` or `#` in the path component.
    #[error("the request path contains a character that is not allowed (space, '?' or '#')")]
    InvalidCharacter,
    /// `%` not followed by two hex digits (Go's url parser rejects these too).
    #[error("the request path contains an invalid percent-encoding")]
    InvalidPercentEncoding,
    /// The decoded path is not valid UTF-8.
    #[error("the decoded request path is not valid UTF-8")]
    InvalidUtf8,
    /// `/api/v1/watch` or `/api/v1/proxy` with nothing after it. The
    /// apiserver fails these with "unable to determine kind and namespace
    /// from url" (HTTP 500); Holdpoint reports them as a client error.
    #[error("unable to determine kind and namespace from url")]
    MissingResource,
}
