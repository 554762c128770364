//! Masking one JSON value as raw bytes: the fast path behind [`crate::JsonStream`] (a list item,
//! a watch event, a small document).
//!
//! The value is walked as bytes, without building a `serde_json::Value`. The walk validates
//! the JSON and applies the structural rules of [`crate::structural`] by kind (Secret `data` and
//! `stringData`, TokenRequest/CSR/TokenReview credentials, literal env values of pods and pod
//! templates, the last-applied annotation, list items by their list's kind, revealed kinds),
//! recording each change as an edit: a byte range and its replacement. The text detectors then
//! run once over the value with every replaced value blanked (one `RegexSet` pass, see
//! `TextMasker::raw_may_match`). If nothing can match, the edits are the whole masking: the
//! output is the input with the edits applied, or the input itself when there are none.
//! Strings with escapes are decoded and checked one by one (their raw bytes differ from the
//! text). When a detector may match, the value is walked once more checking every string on its
//! own, as the structural walker does: a flagged string becomes an edit (its masked text,
//! re-encoded), counted only if no structural edit replaces the value around it.
//!
//! Whatever the fast path does not do itself (a flagged map key, a `Table`, configured field
//! rules, JSON it cannot read) goes to the slow path: decode to a `Value`, mask with the
//! structural walker, encode. Both paths mask the same; the property tests compare them.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr2;
use serde_json::Value;

use crate::structural::{LAST_APPLIED, pod_spec_path};
use crate::{DATA_PLACEHOLDER, MaskSummary, Masker, PLACEHOLDER, Reveal};

/// Deepest nesting walked (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// [`PLACEHOLDER`] as a JSON string.
const PLACEHOLDER_JSON: &str = "\"[MASKED]\"";
/// [`DATA_PLACEHOLDER`] as a JSON string.
const DATA_PLACEHOLDER_JSON: &str = "\"W01BU0tFRF0=\"";

/// The value is not JSON (serde_json could not read it either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Why the fast path stopped.
enum Stop {
    /// Not JSON the fast path reads: the slow path decides.
    Invalid,
    /// The bytes end inside the value (only meaningful for a prefix, see [`mask_prefix`]).
    Incomplete,
    /// Needs the slow path (a flagged map key, a Table, field rules).
    Slow,
}

/// Buffers kept from one value to the next (a stream masks many), so that masking a value
/// allocates nothing in the common case.
#[derive(Default)]
pub(crate) struct Scratch {
    edits: Vec<Edit>,
    blanks: Vec<Range<usize>>,
    last_applied: Vec<Range<usize>>,
    pool: Vec<Vec<Member>>,
    scan: Vec<u8>,
}

/// Shows sizes only (the scan buffer holds response bytes).
impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("scan_capacity", &self.scan.capacity())
            .finish_non_exhaustive()
    }
}

/// Masks one JSON value (whitespace around it allowed), appending it to `out` and adding to
/// `summary`.
pub(crate) fn mask_into(
    m: &Masker,
    bytes: &[u8],
    hint: Option<&str>,
    reveal: &Reveal,
    summary: &mut MaskSummary,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), Invalid> {
    if fast(m, bytes, hint, reveal, summary, scratch, out, false).is_ok() {
        return Ok(());
    }
    let mut v: Value = serde_json::from_slice(bytes).map_err(|_| Invalid)?;
    m.mask_value_with(&mut v, hint, reveal, summary);
    serde_json::to_writer(out, &v).map_err(|_| Invalid)
}

/// Masks the JSON value at the start of `bytes` (more may follow it) on the fast path,
/// appending it to `out`: its length, or `None` when the fast path cannot finish it (the bytes
/// end inside it, or it needs the slow path), and then nothing was appended. Saves finding
/// where a list item ends before masking it.
pub(crate) fn mask_prefix(
    m: &Masker,
    bytes: &[u8],
    hint: Option<&str>,
    reveal: &Reveal,
    summary: &mut MaskSummary,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Option<usize> {
    fast(m, bytes, hint, reveal, summary, scratch, out, true).ok()
}

/// [`mask_into`] for a one-off value.
pub(crate) fn mask_value_bytes(
    m: &Masker,
    bytes: &[u8],
    hint: Option<&str>,
    reveal: &Reveal,
    summary: &mut MaskSummary,
) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::with_capacity(bytes.len());
    mask_into(
        m,
        bytes,
        hint,
        reveal,
        summary,
        &mut Scratch::default(),
        &mut out,
    )?;
    Ok(out)
}

/// Masks one row of a Table (its cells need the row's object decoded: always the slow path).
pub(crate) fn mask_row_bytes(
    m: &Masker,
    bytes: &[u8],
    columns: &[usize],
    reveal: &Reveal,
    summary: &mut MaskSummary,
) -> Result<Vec<u8>, Invalid> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|_| Invalid)?;
    m.mask_table_row_with(&mut v, columns, reveal, summary);
    serde_json::to_vec(&v).map_err(|_| Invalid)
}

/// Runs only the fast path (tests compare it with the slow path); `None` when it gave up.
#[cfg(test)]
fn fast_only(m: &Masker, bytes: &[u8], hint: Option<&str>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = MaskSummary::new();
    fast(
        m,
        bytes,
        hint,
        crate::NO_REVEAL,
        &mut s,
        &mut Scratch::default(),
        &mut out,
        false,
    )
    .ok()
    .map(|_| out)
}

/// The static rules the fast path counts (no allocation per value).
const RULES: [&str; 6] = [
    "secret.data",
    "secret.stringData",
    "env.name",
    "tokenrequest.token",
    "csr.certificate",
    "tokenreview.token",
];

/// The fast path over `bytes` (a whole value, or with `prefix` a value followed by anything):
/// on success the value's length, its masked bytes appended to `out`.
#[allow(clippy::too_many_arguments)]
fn fast(
    m: &Masker,
    bytes: &[u8],
    hint: Option<&str>,
    reveal: &Reveal,
    summary: &mut MaskSummary,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    prefix: bool,
) -> Result<usize, Stop> {
    let mut w = Walker {
        m,
        reveal,
        b: bytes,
        end: 0,
        edits: std::mem::take(&mut scratch.edits),
        blanks: std::mem::take(&mut scratch.blanks),
        revealed: Vec::new(),
        last_applied: std::mem::take(&mut scratch.last_applied),
        check_strings: !m.text().raw_prefilter_sound(),
        depth: 0,
        pool: std::mem::take(&mut scratch.pool),
    };
    w.edits.clear();
    w.blanks.clear();
    w.last_applied.clear();
    let result = w.run(hint, prefix, &mut scratch.scan);
    if result.is_ok() {
        w.render(out);
        // only what survives counts: a revealed object or a structural edit around an edit
        // takes it in, as the value walker never looks inside those
        let mut counts = [0u64; RULES.len()];
        for e in &w.edits {
            if let Some(i) = e.rule {
                counts[i] += 1;
            }
            if let Some(found) = e.found.as_deref() {
                summary.merge(found);
            }
        }
        for (rule, n) in RULES.iter().zip(counts) {
            summary.add_n(rule, n);
        }
        for (_, kind) in &w.revealed {
            summary.add_revealed(kind);
        }
    }
    scratch.edits = w.edits;
    scratch.blanks = w.blanks;
    scratch.last_applied = w.last_applied;
    scratch.pool = w.pool;
    result
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The kind of the items of a list of `kind` (`SecretList` → `Secret`).
fn item_kind(kind: Option<&str>) -> Option<&str> {
    kind.and_then(|k| k.strip_suffix("List"))
        .filter(|k| !k.is_empty())
}

/// A change to the value: `range` (a whole JSON value) becomes `with` (JSON text).
struct Edit {
    range: Range<usize>,
    with: Cow<'static, str>,
    /// What the text detectors found in a string masked as text (counted if the edit survives:
    /// a structural edit around it replaces it and its findings).
    found: Option<Box<MaskSummary>>,
    /// The structural rule (index in [`RULES`]) that made it, counted if it survives.
    rule: Option<usize>,
}

/// One member of an object.
struct Member {
    key: Range<usize>,
    key_escaped: bool,
    value: Range<usize>,
}

/// Which special keys apply inside an object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Plain,
    /// The object is some object's `metadata`.
    Metadata,
    /// The object is some object's `metadata.annotations`.
    Annotations,
}

struct Walker<'m, 'a> {
    m: &'m Masker,
    reveal: &'m Reveal,
    b: &'a [u8],
    /// Where the value ends (once walked).
    end: usize,
    /// Changes, in order, never overlapping.
    edits: Vec<Edit>,
    /// Revealed objects: unchanged, but blanked for the detector pass.
    blanks: Vec<Range<usize>>,
    /// Revealed objects and their kinds, counted if no revealed object or edit around them
    /// takes them in (the value walker does not look inside those).
    revealed: Vec<(Range<usize>, String)>,
    /// Last-applied annotations seen inside the `metadata` being walked, for its object.
    last_applied: Vec<Range<usize>>,
    /// Check every string with the detectors and mask the flagged ones (the raw prefilter is
    /// unsound for the config, or it found a possible match in the value).
    check_strings: bool,
    depth: usize,
    /// Member lists for reuse.
    pool: Vec<Vec<Member>>,
}

impl<'a> Walker<'_, 'a> {
    /// Walks the value and runs the detector pass: the value's end when the edits are the
    /// whole masking.
    fn run(&mut self, hint: Option<&str>, prefix: bool, scan: &mut Vec<u8>) -> Result<usize, Stop> {
        self.walk(hint, prefix)?;
        std::str::from_utf8(&self.b[..self.end]).map_err(|_| Stop::Invalid)?;
        if !self.check_strings {
            let may_match = if self.edits.is_empty() && self.blanks.is_empty() {
                self.m.text().raw_may_match(&self.b[..self.end])
            } else {
                scan.clear();
                self.render_scan(scan);
                self.m.text().raw_may_match(scan)
            };
            if may_match {
                // walk again, checking (and masking) every string on its own
                self.edits.clear();
                self.blanks.clear();
                self.revealed.clear();
                self.last_applied.clear();
                self.depth = 0;
                self.check_strings = true;
                self.walk(hint, prefix)?;
            }
        }
        Ok(self.end)
    }

    /// One walk over the value, setting `end`.
    fn walk(&mut self, hint: Option<&str>, prefix: bool) -> Result<(), Stop> {
        let b = self.b;
        let start = ws(b, 0);
        let end = self.value(start, hint, Ctx::Plain)?;
        if !prefix && ws(b, end) != b.len() {
            return Err(Stop::Invalid);
        }
        self.end = if prefix { end } else { b.len() };
        Ok(())
    }

    /// Counts the edit just made for `rule` (when it survives).
    fn count(&mut self, rule: &str) {
        let i = RULES.iter().position(|r| *r == rule);
        if let Some(e) = self.edits.last_mut() {
            match i {
                Some(i) => e.rule = Some(i),
                None => e.found.get_or_insert_with(Default::default).add(rule),
            }
        }
    }

    fn value(&mut self, i: usize, hint: Option<&str>, ctx: Ctx) -> Result<usize, Stop> {
        match self.b.get(i) {
            Some(b'{') => self.object(i, hint, ctx),
            Some(b'[') => self.array(i, None),
            Some(b'"') => {
                let (end, escaped) = self.string(i)?;
                if escaped || self.check_strings {
                    self.check_text(i..end, escaped)?;
                }
                Ok(end)
            }
            Some(b't') => self.literal(i, b"true"),
            Some(b'f') => self.literal(i, b"false"),
            Some(b'n') => self.literal(i, b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(i),
            Some(_) => Err(Stop::Invalid),
            None => Err(Stop::Incomplete),
        }
    }

    fn literal(&self, i: usize, lit: &[u8]) -> Result<usize, Stop> {
        match self.b.get(i..i + lit.len()) {
            Some(x) if x == lit => Ok(i + lit.len()),
            None if lit.starts_with(&self.b[i..]) => Err(Stop::Incomplete),
            _ => Err(Stop::Invalid),
        }
    }

    fn number(&self, mut i: usize) -> Result<usize, Stop> {
        let b = self.b;
        let digits = |mut i: usize| {
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            (i, i > start)
        };
        let short = |i: usize| {
            if i >= b.len() {
                Stop::Incomplete
            } else {
                Stop::Invalid
            }
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i).0,
            _ => return Err(short(i)),
        }
        if b.get(i) == Some(&b'.') {
            let (j, any) = digits(i + 1);
            if !any {
                return Err(short(j));
            }
            i = j;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let (j, any) = digits(i);
            if !any {
                return Err(short(j));
            }
            i = j;
        }
        if i >= b.len() {
            // a number at the end of the bytes may go on
            return Err(Stop::Incomplete);
        }
        Ok(i)
    }

    /// A string starting at `i` (`"`): its end (after the closing quote) and whether it has
    /// escapes. Validates escapes and refuses control characters.
    fn string(&self, i: usize) -> Result<(usize, bool), Stop> {
        let b = self.b;
        let mut j = i + 1;
        let mut escaped = false;
        loop {
            // most strings of an object are short: look at the first bytes one by one before
            // paying for a vectorized search
            let short_end = (j + 24).min(b.len());
            while j < short_end && !matches!(b[j], b'"' | b'\\' | 0..0x20) {
                j += 1;
            }
            if j == short_end {
                let k = memchr2(b'"', b'\\', &b[j.min(b.len())..]).ok_or(Stop::Incomplete)?;
                // control characters must be escaped in JSON (fold: no early exit, vectorizes)
                if b[j..j + k].iter().fold(false, |acc, &c| acc | (c < 0x20)) {
                    return Err(Stop::Invalid);
                }
                j += k;
            } else if b[j] < 0x20 {
                return Err(Stop::Invalid);
            }
            if b[j] == b'"' {
                return Ok((j + 1, escaped));
            }
            escaped = true;
            match b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                None => return Err(Stop::Incomplete),
                Some(b'u') => {
                    let hex = b.get(j + 2..j + 6).ok_or(Stop::Incomplete)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Stop::Invalid);
                    }
                    j += 6;
                }
                _ => return Err(Stop::Invalid),
            }
        }
    }

    /// The text of the string at `range` (quotes included).
    fn decode(&self, range: Range<usize>, escaped: bool) -> Result<Cow<'a, str>, Stop> {
        let b: &'a [u8] = self.b;
        if escaped {
            serde_json::from_slice::<String>(&b[range])
                .map(Cow::Owned)
                .map_err(|_| Stop::Invalid)
        } else {
            std::str::from_utf8(&b[range.start + 1..range.end - 1])
                .map(Cow::Borrowed)
                .map_err(|_| Stop::Invalid)
        }
    }

    /// The bytes of the key at `range`: as they are, or decoded when escaped.
    fn key_bytes(&self, range: Range<usize>, escaped: bool) -> Result<Cow<'a, [u8]>, Stop> {
        let b: &'a [u8] = self.b;
        if escaped {
            serde_json::from_slice::<String>(&b[range])
                .map(|k| Cow::Owned(k.into_bytes()))
                .map_err(|_| Stop::Invalid)
        } else {
            Ok(Cow::Borrowed(&b[range.start + 1..range.end - 1]))
        }
    }

    /// The text of the (already walked) string value at `range`, or `None` for non-strings.
    fn string_at(&self, range: &Range<usize>) -> Result<Option<Cow<'a, str>>, Stop> {
        if self.b.get(range.start) != Some(&b'"') {
            return Ok(None);
        }
        let escaped = self.b[range.clone()].contains(&b'\\');
        self.decode(range.clone(), escaped).map(Some)
    }

    /// Masks the string value at `range` with the text detectors: a flagged string becomes an
    /// edit (its masked text as JSON).
    fn check_text(&mut self, range: Range<usize>, escaped: bool) -> Result<(), Stop> {
        let text = self.decode(range.clone(), escaped)?;
        let mut found = MaskSummary::new();
        let masked = match self.m.text().mask(&text, &mut found) {
            Cow::Borrowed(_) => return Ok(()),
            Cow::Owned(masked) => masked,
        };
        let json = serde_json::to_string(&masked).map_err(|_| Stop::Invalid)?;
        self.edits.push(Edit {
            range,
            with: Cow::Owned(json),
            found: Some(Box::new(found)),
            rule: None,
        });
        Ok(())
    }

    /// A map key with the text detectors: a flagged key needs the slow path (masking keys can
    /// merge members).
    fn check_key(&self, range: Range<usize>, escaped: bool) -> Result<(), Stop> {
        let text = self.decode(range, escaped)?;
        if self.m.text().is_flagged(&text) {
            Err(Stop::Slow)
        } else {
            Ok(())
        }
    }

    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Stop::Invalid)
        } else {
            Ok(())
        }
    }

    fn array(&mut self, i: usize, item_hint: Option<&str>) -> Result<usize, Stop> {
        self.enter()?;
        let b = self.b;
        let mut j = ws(b, i + 1);
        if b.get(j) == Some(&b']') {
            self.depth -= 1;
            return Ok(j + 1);
        }
        loop {
            j = self.value(j, item_hint, Ctx::Plain)?;
            j = ws(b, j);
            match b.get(j) {
                Some(b',') => j = ws(b, j + 1),
                Some(b']') => {
                    self.depth -= 1;
                    return Ok(j + 1);
                }
                Some(_) => return Err(Stop::Invalid),
                None => return Err(Stop::Incomplete),
            }
        }
    }

    fn object(&mut self, i: usize, hint: Option<&str>, ctx: Ctx) -> Result<usize, Stop> {
        self.enter()?;
        let b = self.b;
        let edits_start = self.edits.len();
        let blanks_start = self.blanks.len();
        let mut members = self.pool.pop().unwrap_or_default();
        members.clear();
        let mut own_kind: Option<Cow<'a, str>> = None;
        let mut items_walked_as: Option<Option<String>> = None;
        let mut last_applied: Vec<Range<usize>> = Vec::new();
        let mut j = ws(b, i + 1);
        let end = if b.get(j) == Some(&b'}') {
            j + 1
        } else {
            loop {
                match b.get(j) {
                    Some(b'"') => {}
                    Some(_) => return Err(Stop::Invalid),
                    None => return Err(Stop::Incomplete),
                }
                let (kend, kesc) = self.string(j)?;
                if kesc || self.check_strings {
                    self.check_key(j..kend, kesc)?;
                }
                let key = self.key_bytes(j..kend, kesc)?;
                let colon = ws(b, kend);
                match b.get(colon) {
                    Some(b':') => {}
                    Some(_) => return Err(Stop::Invalid),
                    None => return Err(Stop::Incomplete),
                }
                let vstart = ws(b, colon + 1);
                let first = b.get(vstart).copied();
                let vend = match (key.as_ref(), ctx, first) {
                    (b"metadata", _, Some(b'{')) => {
                        let before = self.last_applied.len();
                        let e = self.value(vstart, None, Ctx::Metadata)?;
                        last_applied.extend(self.last_applied.drain(before..));
                        e
                    }
                    (b"annotations", Ctx::Metadata, Some(b'{')) => {
                        self.value(vstart, None, Ctx::Annotations)?
                    }
                    (k, Ctx::Annotations, Some(b'"')) if k == LAST_APPLIED.as_bytes() => {
                        // masked by the object that owns this metadata (unless it is revealed)
                        let (e, _) = self.string(vstart)?;
                        self.last_applied.push(vstart..e);
                        e
                    }
                    (b"items", _, Some(b'[')) => {
                        let ik = item_kind(own_kind.as_deref().or(hint)).map(str::to_owned);
                        let e = self.array(vstart, ik.as_deref())?;
                        items_walked_as = Some(ik);
                        e
                    }
                    _ => self.value(vstart, None, Ctx::Plain)?,
                };
                if key.as_ref() == b"kind" {
                    // the last `kind` wins, as when the JSON is decoded
                    own_kind = self.string_at(&(vstart..vend))?;
                }
                members.push(Member {
                    key: j..kend,
                    key_escaped: kesc,
                    value: vstart..vend,
                });
                j = ws(b, vend);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(b'}') => break j + 1,
                    Some(_) => return Err(Stop::Invalid),
                    None => return Err(Stop::Incomplete),
                }
            }
        };
        let done = self.finish_object(
            i..end,
            &members,
            own_kind.as_deref().or(hint),
            items_walked_as,
            last_applied,
            edits_start,
            blanks_start,
        );
        self.pool.push(members);
        self.depth -= 1;
        done.map(|()| end)
    }

    fn key_is(&self, m: &Member, key: &str) -> bool {
        self.key_bytes(m.key.clone(), m.key_escaped)
            .is_ok_and(|k| k.as_ref() == key.as_bytes())
    }

    /// Applies the rules of the object's kind once all its members are walked.
    #[allow(clippy::too_many_arguments)]
    fn finish_object(
        &mut self,
        range: Range<usize>,
        members: &[Member],
        kind: Option<&str>,
        items_walked_as: Option<Option<String>>,
        last_applied: Vec<Range<usize>>,
        edits_start: usize,
        blanks_start: usize,
    ) -> Result<(), Stop> {
        // a watch event (`type` and `object` only) has no kind of its own
        let event = members.len() == 2
            && members
                .iter()
                .any(|m| self.key_is(m, "type") && self.b.get(m.value.start) == Some(&b'"'))
            && members
                .iter()
                .any(|m| self.key_is(m, "object") && self.b.get(m.value.start) == Some(&b'{'));
        let kind = if event { None } else { kind };
        if let Some(k) = kind
            && self.reveal.is_revealed(k)
        {
            self.edits.truncate(edits_start);
            self.blanks.truncate(blanks_start);
            self.revealed
                .retain(|(r, _)| !(r.start >= range.start && r.end <= range.end));
            self.blanks.push(range.clone());
            self.revealed.push((range, k.to_owned()));
            return Ok(());
        }
        let mut changed = false;
        for la in last_applied {
            let text = self.decode(la.clone(), self.b[la.clone()].contains(&b'\\'))?;
            let mut found = MaskSummary::new();
            let mut masked = self
                .m
                .mask_last_applied_text(&text, self.reveal, &mut found);
            if self.check_strings {
                // the annotation is a string of this object too: the detectors see it as
                // masked so far (an applied object of a revealed kind is not masked above)
                let current = masked.as_deref().unwrap_or(&text);
                if let Cow::Owned(m) = self.m.text().mask(current, &mut found) {
                    masked = Some(m);
                }
            }
            if let Some(masked) = masked {
                let json =
                    serde_json::to_string(&masked).unwrap_or_else(|_| PLACEHOLDER_JSON.to_owned());
                self.replace_found(edits_start, la, Cow::Owned(json), Some(Box::new(found)));
                changed = true;
            }
        }
        if kind.is_some_and(|k| self.m.has_field_rules(k)) {
            // configured field rules are applied by the structural walker
            return Err(Stop::Slow);
        }
        match kind {
            Some("Table") => return Err(Stop::Slow),
            Some("Secret") => {
                for m in members {
                    let (placeholder, json, rule) = if self.key_is(m, "data") {
                        (DATA_PLACEHOLDER, DATA_PLACEHOLDER_JSON, "secret.data")
                    } else if self.key_is(m, "stringData") {
                        (PLACEHOLDER, PLACEHOLDER_JSON, "secret.stringData")
                    } else {
                        continue;
                    };
                    for value in self.member_values(m.value.start, None)? {
                        if self.string_at(&value)?.as_deref() != Some(placeholder) {
                            self.replace(edits_start, value, Cow::Borrowed(json));
                            self.count(rule);
                            changed = true;
                        }
                    }
                }
            }
            Some("TokenRequest") => {
                changed |= self.set_path(members, &["status", "token"], false, edits_start)?;
            }
            Some("CertificateSigningRequest") => {
                changed |= self.set_path(members, &["status", "certificate"], true, edits_start)?;
            }
            Some("TokenReview") => {
                changed |= self.set_path(members, &["spec", "token"], false, edits_start)?;
            }
            Some(k) => {
                if let Some(path) = pod_spec_path(k) {
                    for spec in self.path_values(members, path)? {
                        changed |= self.pod_spec(spec.start, edits_start)?;
                    }
                }
            }
            None => {}
        }
        // `items` walked before the object's own `kind` was known: walk them again
        if let Some(walked_as) = items_walked_as {
            let want = item_kind(kind);
            if walked_as.as_deref() != want {
                for m in members {
                    if self.key_is(m, "items") && self.b.get(m.value.start) == Some(&b'[') {
                        let r = m.value.clone();
                        self.edits
                            .retain(|e| !(e.range.start >= r.start && e.range.end <= r.end));
                        self.blanks
                            .retain(|x| !(x.start >= r.start && x.end <= r.end));
                        self.revealed
                            .retain(|(x, _)| !(x.start >= r.start && x.end <= r.end));
                        self.array(r.start, want)?;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            let (e, x) = (
                edits_start.min(self.edits.len()),
                blanks_start.min(self.blanks.len()),
            );
            self.edits[e..].sort_by_key(|e| e.range.start);
            self.blanks[x..].sort_by_key(|x| x.start);
        }
        Ok(())
    }

    /// Records that `range` becomes `with`, dropping the changes inside it.
    fn replace(&mut self, edits_start: usize, range: Range<usize>, with: Cow<'static, str>) {
        self.replace_found(edits_start, range, with, None);
    }

    /// [`Walker::replace`] with what was found in the replaced value, counted if this edit
    /// survives.
    fn replace_found(
        &mut self,
        edits_start: usize,
        range: Range<usize>,
        with: Cow<'static, str>,
        found: Option<Box<MaskSummary>>,
    ) {
        self.revealed
            .retain(|(r, _)| !(r.start >= range.start && r.end <= range.end));
        let start = edits_start.min(self.edits.len());
        let mut k = start;
        while k < self.edits.len() {
            let e = &self.edits[k].range;
            if e.start >= range.start && e.end <= range.end {
                self.edits.remove(k);
            } else {
                k += 1;
            }
        }
        self.edits.push(Edit {
            range,
            with,
            found,
            rule: None,
        });
    }

    /// The values of the object at `i` (all of them, or those of members named `key`).
    fn member_values(&self, i: usize, key: Option<&str>) -> Result<Vec<Range<usize>>, Stop> {
        let b = self.b;
        let mut out = Vec::new();
        if b.get(i) != Some(&b'{') {
            return Ok(out);
        }
        let mut j = ws(b, i + 1);
        if b.get(j) == Some(&b'}') {
            return Ok(out);
        }
        loop {
            let (kend, kesc) = self.string(j)?;
            let vstart = ws(b, ws(b, kend) + 1);
            let vend = skip(b, vstart).ok_or(Stop::Invalid)?;
            if key.is_none_or(|k| {
                self.key_bytes(j..kend, kesc)
                    .is_ok_and(|d| d.as_ref() == k.as_bytes())
            }) {
                out.push(vstart..vend);
            }
            j = ws(b, vend);
            match b.get(j) {
                Some(b',') => j = ws(b, j + 1),
                _ => return Ok(out),
            }
        }
    }

    /// The elements of the array at `i` (none when it is not an array).
    fn elements(&self, i: usize) -> Result<Vec<Range<usize>>, Stop> {
        let b = self.b;
        let mut out = Vec::new();
        if b.get(i) != Some(&b'[') {
            return Ok(out);
        }
        let mut j = ws(b, i + 1);
        if b.get(j) == Some(&b']') {
            return Ok(out);
        }
        loop {
            let end = skip(b, j).ok_or(Stop::Invalid)?;
            out.push(j..end);
            j = ws(b, end);
            match b.get(j) {
                Some(b',') => j = ws(b, j + 1),
                _ => return Ok(out),
            }
        }
    }

    /// Every value at `path` below this object's members (each duplicate key followed).
    fn path_values(&self, members: &[Member], path: &[&str]) -> Result<Vec<Range<usize>>, Stop> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(Vec::new());
        };
        let mut current: Vec<Range<usize>> = members
            .iter()
            .filter(|m| self.key_is(m, first))
            .map(|m| m.value.clone())
            .collect();
        for key in rest {
            let mut next = Vec::new();
            for v in &current {
                next.extend(self.member_values(v.start, Some(key))?);
            }
            current = next;
        }
        Ok(current)
    }

    /// TokenRequest/CSR/TokenReview: the value at `path` (not null, not yet the placeholder)
    /// becomes the placeholder.
    fn set_path(
        &mut self,
        members: &[Member],
        path: &[&str],
        data: bool,
        edits_start: usize,
    ) -> Result<bool, Stop> {
        let (placeholder, json, rule) = match (data, path) {
            (true, _) => (DATA_PLACEHOLDER, DATA_PLACEHOLDER_JSON, "csr.certificate"),
            (false, ["status", ..]) => (PLACEHOLDER, PLACEHOLDER_JSON, "tokenrequest.token"),
            (false, _) => (PLACEHOLDER, PLACEHOLDER_JSON, "tokenreview.token"),
        };
        let mut changed = false;
        for v in self.path_values(members, path)? {
            if self.b.get(v.start) == Some(&b'n')
                || self.string_at(&v)?.as_deref() == Some(placeholder)
            {
                continue;
            }
            self.replace(edits_start, v, Cow::Borrowed(json));
            self.count(rule);
            changed = true;
        }
        Ok(changed)
    }

    /// Literal env values of the containers in the pod spec at `i` whose name matches.
    fn pod_spec(&mut self, i: usize, edits_start: usize) -> Result<bool, Stop> {
        let mut changed = false;
        let mut targets = Vec::new();
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            for containers in self.member_values(i, Some(list))? {
                for c in self.elements(containers.start)? {
                    for env in self.member_values(c.start, Some("env"))? {
                        for var in self.elements(env.start)? {
                            let names = self.member_values(var.start, Some("name"))?;
                            // the last `name` wins, as when decoded
                            let named = match names.last() {
                                Some(n) => self
                                    .string_at(n)?
                                    .is_some_and(|n| self.m.env_name_matches(&n)),
                                None => false,
                            };
                            if !named {
                                continue;
                            }
                            for v in self.member_values(var.start, Some("value"))? {
                                if let Some(text) = self.string_at(&v)?
                                    && text != PLACEHOLDER
                                {
                                    targets.push(v);
                                }
                            }
                        }
                    }
                }
            }
        }
        for v in targets {
            self.replace(edits_start, v, Cow::Borrowed(PLACEHOLDER_JSON));
            self.count("env.name");
            changed = true;
        }
        Ok(changed)
    }

    /// Appends the value with the edits applied to `out`.
    fn render(&self, out: &mut Vec<u8>) {
        out.reserve(self.end);
        let mut pos = 0;
        for e in &self.edits {
            out.extend_from_slice(&self.b[pos..e.range.start]);
            out.extend_from_slice(e.with.as_bytes());
            pos = e.range.end;
        }
        out.extend_from_slice(&self.b[pos..self.end]);
    }

    /// Appends the value with every edited value and revealed object blanked (`""`) to `out`,
    /// for the detector pass.
    fn render_scan(&self, out: &mut Vec<u8>) {
        out.reserve(self.end);
        let mut pos = 0;
        let (mut e, mut x) = (self.edits.iter().peekable(), self.blanks.iter().peekable());
        loop {
            let next = match (e.peek(), x.peek()) {
                (Some(a), Some(b)) if a.range.start <= b.start => e.next().map(|a| a.range.clone()),
                (Some(_), Some(_)) | (None, Some(_)) => x.next().cloned(),
                (Some(_), None) => e.next().map(|a| a.range.clone()),
                (None, None) => break,
            };
            let Some(r) = next else { break };
            if r.start < pos {
                // inside a range already blanked
                continue;
            }
            out.extend_from_slice(&self.b[pos..r.start]);
            out.extend_from_slice(b"\"\"");
            pos = r.end;
        }
        out.extend_from_slice(&self.b[pos..self.end]);
    }
}

/// The end of the (valid) JSON value at `i`, skipped without looking inside.
fn skip(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            Some(j)
        }
    }
}

/// The end (after the closing quote) of the string starting at `i`, if it is complete.
pub(crate) fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MaskConfig;
    use serde_json::json;

    #[test]
    fn placeholders_as_json() {
        assert_eq!(PLACEHOLDER_JSON, format!("\"{PLACEHOLDER}\""));
        assert_eq!(DATA_PLACEHOLDER_JSON, format!("\"{DATA_PLACEHOLDER}\""));
    }

    fn both(v: &Value, hint: Option<&str>) -> (Value, Option<Value>) {
        let (fast, slow, _) = both_summaries(&serde_json::to_vec(v).unwrap(), hint);
        let fast = fast.map(|(b, _)| serde_json::from_slice(&b).unwrap());
        (slow, fast)
    }

    #[test]
    fn the_fast_path_masks_secrets_and_pod_templates_itself() {
        let secret = json!({"metadata": {"name": "db", "managedFields": [{"fieldsV1": {"f:data": {"f:password": {}}}}]},
            "type": "Opaque", "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}, "stringData": {"x": "y"}});
        let (slow, fast) = both(&secret, Some("Secret"));
        assert_eq!(Some(slow), fast, "fast path gave up or differs");
        let deploy = json!({"kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                {"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "prod"}]}]}}}});
        let (slow, fast) = both(&deploy, None);
        assert_eq!(
            slow["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            PLACEHOLDER
        );
        assert_eq!(Some(slow), fast);
        let list = json!({"items": [{"data": {"k": "dg=="}}], "kind": "SecretList"});
        let (slow, fast) = both(&list, None);
        assert_eq!(slow["items"][0]["data"]["k"], DATA_PLACEHOLDER);
        assert_eq!(
            Some(slow),
            fast,
            "items walked again once the kind is known"
        );
    }

    /// Fast path and slow path over the same bytes: (fast output and summary, slow value and
    /// summary); `None` when the fast path gave up.
    fn both_summaries(
        bytes: &[u8],
        hint: Option<&str>,
    ) -> (Option<(Vec<u8>, MaskSummary)>, Value, MaskSummary) {
        let m = Masker::new(&MaskConfig::default()).unwrap();
        let mut fast_summary = MaskSummary::new();
        let mut out = Vec::new();
        let fast = fast(
            &m,
            bytes,
            hint,
            crate::NO_REVEAL,
            &mut fast_summary,
            &mut Scratch::default(),
            &mut out,
            false,
        )
        .ok()
        .map(|_| (out, fast_summary));
        let mut slow: Value = serde_json::from_slice(bytes).unwrap();
        let mut slow_summary = MaskSummary::new();
        m.mask_value_with(&mut slow, hint, crate::NO_REVEAL, &mut slow_summary);
        (fast, slow, slow_summary)
    }

    #[test]
    fn flagged_strings_are_masked_on_the_fast_path_in_place() {
        let cm = br#"{"kind":"ConfigMap","metadata":{"name":"web"},"data":{"url":"postgres://app:S3cr3t@db/app","esc":"postgres://app:S3cr3t\u0040db/x","plain":"x"}}"#;
        let (fast, slow, slow_summary) = both_summaries(cm, None);
        let (out, summary) = fast.expect("the fast path masks flagged strings itself");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("S3cr3t"), "{text}");
        // only the flagged strings change: the rest keeps its bytes and order
        assert!(
            text.starts_with(r#"{"kind":"ConfigMap","metadata":{"name":"web"},"data":{"url":""#)
        );
        assert!(text.ends_with(r#","plain":"x"}}"#));
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), slow);
        assert_eq!(summary, slow_summary);
        assert_eq!(summary.count("text.url-password"), 2);
    }

    #[test]
    fn a_flagged_string_replaced_by_a_structural_rule_counts_once() {
        let secret = br#"{"kind":"Secret","data":{"url":"postgres://app:S3cr3t@db/app"},"stringData":{"u":"postgres://app:S3cr3t@db/app"},"note":"postgres://app:S3cr3t@db/app"}"#;
        let (fast_out, slow, slow_summary) = both_summaries(secret, None);
        let (out, summary) = fast_out.expect("fast path");
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), slow);
        assert_eq!(summary, slow_summary);
        assert_eq!(summary.count("secret.data"), 1);
        assert_eq!(summary.count("secret.stringData"), 1);
        assert_eq!(
            summary.count("text.url-password"),
            1,
            "only the note is masked as text"
        );
        // a revealed object keeps its strings: nothing inside it is masked as text
        let m = Masker::new(&MaskConfig::default()).unwrap();
        let reveal = crate::Reveal::kinds(["ConfigMap"]);
        let cm = br#"{"kind":"List","items":[{"kind":"ConfigMap","data":{"u":"postgres://app:S3cr3t@db/app"}},{"kind":"Pod","x":"postgres://app:S3cr3t@db/app"}]}"#;
        let mut s = MaskSummary::new();
        let mut out = Vec::new();
        fast(
            &m,
            cm,
            None,
            &reveal,
            &mut s,
            &mut Scratch::default(),
            &mut out,
            false,
        )
        .ok()
        .expect("fast path");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"][0]["data"]["u"], "postgres://app:S3cr3t@db/app");
        assert!(!v["items"][1]["x"].as_str().unwrap().contains("S3cr3t"));
        assert_eq!(s.count("text.url-password"), 1);
    }

    #[test]
    fn a_flagged_key_takes_the_slow_path() {
        let m = Masker::new(&MaskConfig::default()).unwrap();
        let cm = br#"{"kind":"ConfigMap","data":{"postgres://app:S3cr3t@db/app":"x"}}"#;
        assert!(fast_only(&m, cm, None).is_none());
        let mut s = MaskSummary::new();
        let out = mask_value_bytes(&m, cm, None, crate::NO_REVEAL, &mut s).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("S3cr3t"));
        assert_eq!(s.count("text.url-password"), 1);
    }

    #[test]
    fn untouched_values_are_returned_as_they_are() {
        let m = Masker::new(&MaskConfig::default()).unwrap();
        let cm = br#"{ "kind" : "ConfigMap", "data" : {"a": "b\u00e9"} }"#;
        let out = fast_only(&m, cm, None).unwrap();
        assert_eq!(out, cm);
    }
}
