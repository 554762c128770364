//! Strict path validation and percent-decoding.
//!
//! The apiserver classifies `req.URL.Path`, i.e. the path *after* Go's
//! `url.PathUnescape` (`+` stays `+`, a malformed escape is a 400). We decode
//! the same way, but first apply Holdpoint's path-safety rules to every raw
//! segment so that nothing downstream (the apiserver's own router, a proxied
//! service behind `.../proxy/...`, an aggregated API server) can interpret
//! the path differently from the classification we made.
//!
//! Trailing slash: the apiserver classifies with `strings.Trim(path, "/")`,
//! so `/api/v1/pods/` is classified exactly like `/api/v1/pods`. We accept a
//! single trailing slash with the same classification (the decoded
//! [`RequestInfo::path`](crate::RequestInfo::path) keeps it, like Go's
//! `URL.Path`). Any other empty segment (`//`, including a trailing `//`)
//! is rejected.

use crate::PathError;

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the `%XX` at `bytes[i]` (which must be `%`).
#[inline]
pub(crate) fn decode_escape(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_val(*bytes.get(i + 1)?)?;
    let lo = hex_val(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

#[inline]
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Validates `raw` (the path component of an origin-form request target,
/// without the query) and returns the decoded path.
pub(crate) fn decode_path(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if bytes.len() == 1 {
        return Ok(String::from("/"));
    }
    let body = &raw[1..];
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        // "//"
        return Err(PathError::EmptySegment);
    }

    // Fast path: nothing to decode.
    let needs_decoding = bytes.contains(&b'%');
    let mut out: Vec<u8> = if needs_decoding {
        Vec::with_capacity(bytes.len())
    } else {
        Vec::new()
    };

    for seg in body.split('/') {
        if seg.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if seg == "." || seg == ".." {
            return Err(PathError::DotSegment);
        }
        if needs_decoding {
            out.push(b'/');
        }
        let sb = seg.as_bytes();
        let mut i = 0;
        while i < sb.len() {
            let b = sb[i];
            match b {
                b'%' => {
                    let d = decode_escape(sb, i).ok_or(PathError::InvalidPercentEncoding)?;
                    match d {
                        b'/' => return Err(PathError::EncodedSlash),
                        b'\\' => return Err(PathError::EncodedBackslash),
                        b'.' => return Err(PathError::EncodedDot),
                        b'%' => return Err(PathError::DoubleEncoding),
                        b';' => return Err(PathError::PathParameter),
                        d if is_control(d) => return Err(PathError::ControlCharacter),
                        _ => {}
                    }
                    out.push(d);
                    i += 3;
                    continue;
                }
                b'\\' => return Err(PathError::Backslash),
                b';' => return Err(PathError::PathParameter),
                b' ' | b'?' | b'#' => return Err(PathError::InvalidCharacter),
                b if is_control(b) => return Err(PathError::ControlCharacter),
                _ => {}
            }
            if needs_decoding {
                out.push(b);
            }
            i += 1;
        }
    }

    if !needs_decoding {
        return Ok(raw.to_owned());
    }
    if raw.ends_with('/') {
        out.push(b'/');
    }
    String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)
}

/// Splits a path accepted by [`decode_path`] into its segments, ignoring the
/// leading slash and at most one trailing slash (the apiserver's
/// `strings.Trim(path, "/")` for the paths we accept).
pub(crate) fn split_segments(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_matches('/');
    trimmed.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_path("/a/ex%65c").unwrap(), "/a/exec");
        assert_eq!(decode_path("/a+b/").unwrap(), "/a+b/");
        assert_eq!(decode_path("/").unwrap(), "/");
        assert_eq!(decode_path("/a%20b").unwrap(), "/a b");
    }

    #[test]
    fn rejects() {
        assert_eq!(decode_path(""), Err(PathError::NotOriginForm));
        assert_eq!(decode_path("//"), Err(PathError::EmptySegment));
        assert_eq!(decode_path("/a//"), Err(PathError::EmptySegment));
        assert_eq!(decode_path("/a/%"), Err(PathError::InvalidPercentEncoding));
        assert_eq!(decode_path("/a/%4"), Err(PathError::InvalidPercentEncoding));
        assert_eq!(decode_path("/a/%ff"), Err(PathError::InvalidUtf8));
        assert_eq!(decode_path("/a/%3b"), Err(PathError::PathParameter));
        assert_eq!(decode_path("/a/%7F"), Err(PathError::ControlCharacter));
    }
}
