//! The slice of `ListOptions` decoding that influences `RequestInfo`.
//!
//! For a collection `GET` the apiserver decodes the query into
//! `ListOptions`. If that succeeds, `watch` is read with
//! `Convert_Slice_string_To_bool` (`"0"` or `EqualFold("false")` is false,
//! *anything else*, including `""` and `"garbage"`, is true), and a field
//! selector that requires an exact `metadata.name` match sets
//! `RequestInfo.Name`. If decoding fails, the name is not set and `watch` is
//! re-read with `strings.ToLower(v) in {"false","0"}`.
//!
//! Modelled decode failures: an unparsable `fieldSelector`, and `limit` /
//! `timeoutSeconds` that are not base-10 `int64`. Not modelled: a
//! syntactically invalid `labelSelector` (the apiserver would then drop the
//! name). Requests with such a label selector are rejected with 400 by the
//! list handler anyway, which performs the same decoding.

/// Go's `fields.splitTerms`: split on commas not escaped by `\`.
fn split_terms(sel: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, b) in sel.bytes().enumerate() {
        if in_slash {
            in_slash = false;
        } else if b == b'\\' {
            in_slash = true;
        } else if b == b',' {
            terms.push(&sel[start..i]);
            start = i + 1;
        }
    }
    terms.push(&sel[start..]);
    terms
}

#[derive(PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
}

/// Go's `fields.splitTerm`: the first occurrence of `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, Op, &str)> {
    let b = term.as_bytes();
    for i in 0..b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"!=") {
            return Some((&term[..i], Op::NotEq, &term[i + 2..]));
        }
        if rest.starts_with(b"==") {
            return Some((&term[..i], Op::Eq, &term[i + 2..]));
        }
        if rest.starts_with(b"=") {
            return Some((&term[..i], Op::Eq, &term[i + 1..]));
        }
    }
    None
}

/// Go's `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(()),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(()),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(());
    }
    Ok(out)
}

/// Parses a field selector like `fields.ParseSelector` and returns
/// `RequiresExactMatch("metadata.name")`. `Err` when Go fails to parse.
pub(crate) fn exact_metadata_name(sel: &str) -> Result<Option<String>, ()> {
    if sel.is_empty() {
        return Ok(None);
    }
    let mut terms = split_terms(sel);
    terms.sort_unstable();
    let mut found = None;
    for t in terms {
        if t.is_empty() {
            continue;
        }
        let (lhs, op, rhs) = split_term(t).ok_or(())?;
        let value = unescape_value(rhs)?;
        if found.is_none() && op == Op::Eq && lhs == "metadata.name" {
            found = Some(value);
        }
    }
    Ok(found)
}

/// `path.IsValidPathSegmentName` from apimachinery.
pub(crate) fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Go's `strings.EqualFold(s, "false")`, including Unicode simple folding
/// (`ſ` U+017F folds to `s`; no other non-ASCII rune folds to a letter of
/// "false").
pub(crate) fn equal_fold_false(s: &str) -> bool {
    let mut it = s.chars();
    for want in ['f', 'a', 'l', 's', 'e'] {
        let Some(c) = it.next() else { return false };
        let ok = c.to_ascii_lowercase() == want || (want == 's' && c == '\u{17F}');
        if !ok {
            return false;
        }
    }
    it.next().is_none()
}

/// Go's `strconv.ParseInt(s, 10, 64)` succeeds.
pub(crate) fn parses_as_i64(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors() {
        assert_eq!(
            exact_metadata_name("metadata.name=foo"),
            Ok(Some("foo".into()))
        );
        assert_eq!(
            exact_metadata_name("metadata.name==foo"),
            Ok(Some("foo".into()))
        );
        assert_eq!(exact_metadata_name("metadata.name!=foo"), Ok(None));
        assert_eq!(
            exact_metadata_name("spec.nodeName=n,metadata.name=b,metadata.name=a"),
            Ok(Some("a".into()))
        );
        assert_eq!(
            exact_metadata_name(r"metadata.name=a\,b"),
            Ok(Some("a,b".into()))
        );
        assert_eq!(exact_metadata_name("metadata.name=a=b"), Err(()));
        assert_eq!(exact_metadata_name("metadata.name"), Err(()));
        assert_eq!(exact_metadata_name(r"metadata.name=a\"), Err(()));
        assert_eq!(exact_metadata_name("a=b,,"), Ok(None));
    }

    #[test]
    fn fold() {
        assert!(equal_fold_false("FaLsE"));
        assert!(equal_fold_false("fal\u{17F}e"));
        assert!(!equal_fold_false("fals"));
        assert!(!equal_fold_false("falsey"));
    }
}
