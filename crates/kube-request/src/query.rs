//! Go-compatible query-string parsing (`net/url.ParseQuery`) and dry-run
//! detection.
//!
//! The apiserver reads its options through `req.URL.Query()`, which is
//! `url.ParseQuery` with the error discarded. Its rules, reproduced here:
//!
//! * the query is split on `&` only;
//! * a pair that contains `;` is dropped (Go ≥ 1.17 reports "invalid
//!   semicolon separator" and skips it), as is an empty pair;
//! * the pair is split on the first `=` (no `=` means an empty value);
//! * key and value are unescaped with `QueryUnescape`: `+` becomes a space,
//!   `%XX` is decoded, and a malformed escape drops the whole pair;
//! * keys are compared byte-for-byte after decoding (so `dry%52un` *is*
//!   `dryRun`, and `dryRun%3DAll` is the key `dryRun=All` with an empty
//!   value).

use std::borrow::Cow;

use crate::path::decode_escape;

/// Go's `QueryUnescape`. Returns `None` when Go would return an error.
pub(crate) fn query_unescape(s: &str) -> Option<Cow<'_, [u8]>> {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'+') {
        return Some(Cow::Borrowed(b));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(decode_escape(b, i)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(out))
}

/// Iterator over the `(key, value)` pairs Go's `url.ParseQuery` keeps, in
/// order, as raw (possibly non-UTF-8) bytes.
#[derive(Debug, Clone)]
pub struct GoQueryPairs<'a> {
    rest: Option<&'a str>,
}

impl<'a> GoQueryPairs<'a> {
    /// Parses `raw_query` (without the leading `?`).
    pub fn new(raw_query: &'a str) -> Self {
        Self {
            rest: Some(raw_query),
        }
    }
}

impl<'a> Iterator for GoQueryPairs<'a> {
    type Item = (Cow<'a, [u8]>, Cow<'a, [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest?;
            let (pair, tail) = match rest.split_once('&') {
                Some((p, t)) => (p, Some(t)),
                None => (rest, None),
            };
            self.rest = tail;
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(k) = query_unescape(k) else { continue };
            let Some(v) = query_unescape(v) else { continue };
            return Some((k, v));
        }
    }
}

/// All values of `key` exactly as Go's `url.ParseQuery(raw_query)[key]`
/// would return them (keys are case-sensitive and percent-decoded). Values
/// that are not valid UTF-8 are converted lossily.
pub fn query_values(raw_query: &str, key: &str) -> Vec<String> {
    GoQueryPairs::new(raw_query)
        .filter(|(k, _)| k.as_ref() == key.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        .collect()
}

/// Like Go's `url.Values.Get`: the first value of `key`, if any.
pub fn query_first(raw_query: &str, key: &str) -> Option<String> {
    GoQueryPairs::new(raw_query)
        .find(|(k, _)| k.as_ref() == key.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}

/// Upper bound on the number of query parameters. Recent Go releases
/// (`GODEBUG=urlmaxqueryparams`, default 10000) refuse to parse queries with
/// more parameters than this; we refuse to call such a request a dry run.
pub const MAX_QUERY_PARAMS: usize = 10_000;

/// Whether a request is a dry run, as far as Holdpoint is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DryRun {
    /// Every `dryRun` value is exactly `All`: the apiserver will not persist
    /// the change.
    All,
    /// Anything else. Fail closed: treat as a real change.
    NotDryRun,
}

impl DryRun {
    /// Parses the raw query (without `?`). Dry run only when Go's
    /// `url.ParseQuery` yields one or more `dryRun` keys (case-sensitive,
    /// after percent-decoding) and every value is exactly `All`.
    ///
    /// `dryrun=All`, `dryRun=all`, `dryRun=`, `dryRun=All&dryRun=x` and
    /// `dryRun=All;x=y` (Go drops the pair) are all [`DryRun::NotDryRun`].
    ///
    /// Stricter than Go in one place, on purpose: a query containing `;`
    /// anywhere is never a dry run (Go would only drop the pairs containing
    /// `;` and keep a separate `dryRun=All`). Claiming "real change" for a
    /// real dry run is the safe mistake.
    ///
    /// **Caveat:** for `DELETE`, the apiserver ignores the query entirely
    /// when the request has a body (it decodes `DeleteOptions` from the body
    /// instead). Use [`DryRun::for_request`] when the method and body are
    /// known.
    pub fn parse(raw_query: Option<&str>) -> DryRun {
        let Some(q) = raw_query else {
            return DryRun::NotDryRun;
        };
        if q.contains(';') || q.bytes().filter(|&b| b == b'&').count() >= MAX_QUERY_PARAMS {
            return DryRun::NotDryRun;
        }
        let mut seen = false;
        for (k, v) in GoQueryPairs::new(q) {
            if k.as_ref() == b"dryRun" {
                if v.as_ref() != b"All" {
                    return DryRun::NotDryRun;
                }
                seen = true;
            }
        }
        if seen { DryRun::All } else { DryRun::NotDryRun }
    }

    /// [`DryRun::parse`], plus the apiserver's `DELETE` rule: when a
    /// `DELETE` carries a non-empty body, `DeleteOptions` come from the body
    /// and the query is ignored, so the query's `dryRun` does not count
    /// (returns [`DryRun::NotDryRun`]; inspect the body's
    /// `DeleteOptions.dryRun` yourself if you need more).
    pub fn for_request(method: &http::Method, raw_query: Option<&str>, has_body: bool) -> DryRun {
        if *method == http::Method::DELETE && has_body {
            return DryRun::NotDryRun;
        }
        DryRun::parse(raw_query)
    }

    /// `true` for [`DryRun::All`].
    pub fn is_dry_run(self) -> bool {
        self == DryRun::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_pairs() {
        let v: Vec<_> = GoQueryPairs::new("a=1&&b&c=%zz&d;=1&e=x+y%21&=z")
            .map(|(k, v)| {
                (
                    String::from_utf8(k.into_owned()).unwrap(),
                    String::from_utf8(v.into_owned()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            v,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("e".into(), "x y!".into()),
                ("".into(), "z".into()),
            ]
        );
        assert_eq!(query_values("w=1&w=2&W=3", "w"), vec!["1", "2"]);
        assert_eq!(query_first("x=1", "w"), None);
    }
}
