//! The streaming JSON masker: chunks of a JSON body in, masked chunks out, in memory bounded
//! by the largest item rather than the body.
//!
//! A body is a sequence of JSON values (one for a GET or a LIST, one per event for a watch,
//! with or without newlines between them); each is masked and written followed by a newline,
//! as soon as it is complete. Inside a top-level object whose `kind` (seen before the array, as
//! the apiserver always writes it) ends in `List`, the `items` array is masked item by item
//! (items without their own kind as the list's item kind), and a `Table`'s `rows` row by row;
//! the members around the array are masked as one small object. Every other value is masked
//! whole ([`crate::raw`]: zero-copy where no rule applies). So a LIST of any size needs memory
//! for one item, a watch for one event.
//!
//! Fail closed: JSON that does not parse, a value (or the members around `items`) larger than
//! the limit, a `kind` after the items it describes, or a body that ends inside a value is an
//! error, and what was written before it is all the caller gets.

use std::borrow::Cow;

use memchr::memchr2;

use crate::raw::{self, string_end};
use crate::{MaskSummary, Masker, Reveal};

/// Why a body could not be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The body is not JSON.
    #[error("the response is not valid JSON (value {value})")]
    Invalid {
        /// Which top-level value (0-based).
        value: u64,
    },
    /// One value, or the members around a list's items, is larger than the limit.
    #[error("a JSON value of the response is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A list names its `kind` after its items.
    #[error("the response names its kind after its items")]
    KindAfterItems,
    /// A Table names its columns after its rows, and some columns must be masked.
    #[error("the response names its table columns after its rows")]
    ColumnsAfterRows,
    /// The body ended inside a value.
    #[error("the response ended in the middle of a JSON value")]
    Truncated,
}

/// Where a member, element or value is separated from the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Start,
    AfterValue,
    AfterComma,
}

/// The end of a value being received: containers and strings by a resumable scan, other
/// scalars at the next delimiter.
#[derive(Debug, Default)]
struct Pending {
    scalar: bool,
    /// Bytes scanned (from the value's start).
    at: usize,
    depth: usize,
    in_string: bool,
}

impl Pending {
    fn new(first: u8) -> Self {
        Self {
            scalar: !matches!(first, b'{' | b'[' | b'"'),
            ..Self::default()
        }
    }

    /// The value's length, once `b` (from the value's start) holds all of it.
    fn end(&mut self, b: &[u8]) -> Option<usize> {
        if self.scalar {
            return b
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
        }
        let mut i = self.at;
        while i < b.len() {
            if self.in_string {
                match memchr2(b'"', b'\\', &b[i..]) {
                    None => i = b.len(),
                    Some(k) => {
                        i += k;
                        if b[i] == b'\\' {
                            if i + 1 >= b.len() {
                                break;
                            }
                            i += 2;
                        } else {
                            self.in_string = false;
                            i += 1;
                            if self.depth == 0 {
                                return Some(i);
                            }
                        }
                    }
                }
            } else {
                match b[i] {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            self.at = i + 1;
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        self.at = i;
        None
    }
}

/// Inside a top-level object, collecting its members.
struct Members {
    /// `{` and the members so far (`"key":value,...`).
    raw: Vec<u8>,
    /// The object's `kind`, once seen.
    kind: Option<String>,
    /// Set once the items (or rows) were streamed: the members are those after the array.
    streamed: bool,
    sep: Sep,
    /// The member whose value is being received, and whether its key is `kind`.
    pending: Option<(Pending, bool)>,
}

/// Streaming the elements of `items` (or a Table's `rows`).
struct Elements {
    list_kind: String,
    item_kind: Option<String>,
    rows: bool,
    /// The Table columns whose cells are always masked (field rules' `columns`).
    columns: Vec<usize>,
    emitted: u64,
    sep: Sep,
    pending: Option<Pending>,
}

enum State {
    /// Between top-level values.
    Between,
    Members(Members),
    Elements(Elements),
    /// A top-level value that is not an object, masked whole once complete.
    Whole(Pending),
    /// An error was returned; nothing more is accepted.
    Failed,
}

/// Masks a JSON body (a document or a watch stream) chunk by chunk. See the module docs.
pub struct JsonStream {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    reveal: Reveal,
    summary: MaskSummary,
    scratch: raw::Scratch,
    max_value_bytes: usize,
    values: u64,
}

/// Shows progress only, never the (unmasked) bytes held back.
impl std::fmt::Debug for JsonStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonStream")
            .field("buffered", &self.buffered())
            .field("values", &self.values)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

enum Step {
    Progress,
    NeedMore,
}

impl JsonStream {
    /// A masker for one body: objects of `reveal`'s kinds pass unmasked; a single value (an
    /// item, an event, a non-list document) may be at most `max_value_bytes`.
    pub fn new(reveal: Reveal, max_value_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            state: State::Between,
            reveal,
            summary: MaskSummary::new(),
            scratch: raw::Scratch::default(),
            max_value_bytes,
            values: 0,
        }
    }

    /// What was masked so far.
    pub fn summary(&self) -> &MaskSummary {
        &self.summary
    }

    /// Bytes held back, waiting for the rest of a value.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
            + match &self.state {
                State::Members(m) => m.raw.len(),
                _ => 0,
            }
    }

    /// Takes the next chunk and appends whatever is now masked to `out`.
    pub fn push(&mut self, m: &Masker, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if matches!(self.state, State::Failed) {
            return Err(StreamError::Truncated);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        let done = self.run(m, out);
        if done.is_err() {
            self.state = State::Failed;
            self.buf = Vec::new();
            self.pos = 0;
        }
        done
    }

    /// The body ended: masks what is left, or fails if the body ended inside a value.
    pub fn finish(&mut self, m: &Masker, out: &mut Vec<u8>) -> Result<(), StreamError> {
        let rest = &self.buf[self.pos..];
        let trailing_ws = raw_ws(rest, 0) == rest.len();
        let result = match std::mem::replace(&mut self.state, State::Failed) {
            State::Between if trailing_ws => Ok(()),
            State::Whole(p) if p.scalar => {
                let value = std::mem::take(&mut self.buf);
                self.emit_whole(m, &value[self.pos..], out)
            }
            State::Failed => Err(StreamError::Truncated),
            _ => Err(StreamError::Truncated),
        };
        self.buf = Vec::new();
        self.pos = 0;
        result
    }

    fn run(&mut self, m: &Masker, out: &mut Vec<u8>) -> Result<(), StreamError> {
        loop {
            let step = match &self.state {
                State::Between => self.step_between(m, out),
                State::Members(_) => self.step_members(m, out)?,
                State::Elements(_) => self.step_elements(m, out)?,
                State::Whole(_) => self.step_whole(m, out)?,
                State::Failed => return Err(StreamError::Truncated),
            };
            if let Step::NeedMore = step {
                break;
            }
        }
        if self.buffered() > self.max_value_bytes {
            return Err(StreamError::TooLarge {
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    fn invalid(&self) -> StreamError {
        StreamError::Invalid { value: self.values }
    }

    fn step_between(&mut self, m: &Masker, out: &mut Vec<u8>) -> Step {
        let b = &self.buf[self.pos..];
        let i = raw_ws(b, 0);
        let Some(&c) = b.get(i) else {
            self.pos += i;
            return Step::NeedMore;
        };
        self.pos += i;
        if c == b'{' {
            // a value already whole in the buffer (a watch event, a small document) is
            // masked straight away; otherwise its members are collected and a list streamed
            if let Some(end) = raw::mask_prefix(
                m,
                &self.buf[self.pos..],
                None,
                &self.reveal,
                &mut self.summary,
                &mut self.scratch,
                out,
            ) {
                out.push(b'\n');
                self.pos += end;
                self.values += 1;
                return Step::Progress;
            }
        }
        self.state = if c == b'{' {
            self.pos += 1;
            State::Members(Members {
                raw: vec![b'{'],
                kind: None,
                streamed: false,
                sep: Sep::Start,
                pending: None,
            })
        } else {
            State::Whole(Pending::new(c))
        };
        Step::Progress
    }

    fn step_whole(&mut self, m: &Masker, out: &mut Vec<u8>) -> Result<Step, StreamError> {
        let State::Whole(p) = &mut self.state else {
            return Ok(Step::NeedMore);
        };
        let Some(end) = p.end(&self.buf[self.pos..]) else {
            return Ok(Step::NeedMore);
        };
        let start = self.pos;
        self.pos += end;
        self.state = State::Between;
        let value = std::mem::take(&mut self.buf);
        let done = self.emit_whole(m, &value[start..start + end], out);
        self.buf = value;
        done?;
        Ok(Step::Progress)
    }

    /// Masks a complete top-level value and writes it with a newline.
    fn emit_whole(
        &mut self,
        m: &Masker,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        raw::mask_into(
            m,
            value,
            None,
            &self.reveal,
            &mut self.summary,
            &mut self.scratch,
            out,
        )
        .map_err(|_| self.invalid())?;
        out.push(b'\n');
        self.values += 1;
        Ok(())
    }

    fn step_members(&mut self, m: &Masker, out: &mut Vec<u8>) -> Result<Step, StreamError> {
        let invalid = self.invalid();
        let State::Members(st) = &mut self.state else {
            return Ok(Step::NeedMore);
        };
        let b = &self.buf[self.pos..];
        if let Some((pending, is_kind)) = &mut st.pending {
            let Some(end) = pending.end(b) else {
                return Ok(Step::NeedMore);
            };
            let value = &b[..end];
            if *is_kind {
                if st.streamed {
                    return Err(StreamError::KindAfterItems);
                }
                // the last `kind` wins, as when the JSON is decoded
                st.kind = serde_json::from_slice::<String>(value).ok();
            }
            st.raw.extend_from_slice(value);
            st.pending = None;
            st.sep = Sep::AfterValue;
            self.pos += end;
            return Ok(Step::Progress);
        }
        let i = raw_ws(b, 0);
        let Some(&c) = b.get(i) else {
            return Ok(Step::NeedMore);
        };
        match (c, st.sep) {
            (b'}', Sep::Start | Sep::AfterValue) => {
                self.pos += i + 1;
                let State::Members(st) = std::mem::replace(&mut self.state, State::Between) else {
                    return Ok(Step::NeedMore);
                };
                self.close_object(m, st, out)?;
                return Ok(Step::Progress);
            }
            (b',', Sep::AfterValue) => {
                st.sep = Sep::AfterComma;
                self.pos += i + 1;
                return Ok(Step::Progress);
            }
            (b'"', Sep::Start | Sep::AfterComma) => {}
            _ => return Err(invalid),
        }
        // a key, `:` and the first byte of its value
        let Some(kend) = string_end(b, i) else {
            return Ok(Step::NeedMore);
        };
        let colon = raw_ws(b, kend);
        let Some(&cb) = b.get(colon) else {
            return Ok(Step::NeedMore);
        };
        if cb != b':' {
            return Err(invalid);
        }
        let v = raw_ws(b, colon + 1);
        let Some(&first) = b.get(v) else {
            return Ok(Step::NeedMore);
        };
        let key: Cow<'_, str> = match std::str::from_utf8(&b[i + 1..kend - 1]) {
            Ok(k) if !k.contains('\\') => Cow::Borrowed(k),
            _ => Cow::Owned(serde_json::from_slice::<String>(&b[i..kend]).map_err(|_| invalid)?),
        };
        let stream_array = first == b'['
            && !st.streamed
            && match (key.as_ref(), st.kind.as_deref()) {
                ("items", Some(k)) => k.ends_with("List"),
                ("rows", Some(k)) => k == "Table",
                _ => false,
            };
        if stream_array {
            let list_kind = st.kind.clone().unwrap_or_default();
            let rows = key == "rows";
            // the members before the array, masked as one object, then the array opens
            st.raw.push(b'}');
            let header = std::mem::take(&mut st.raw);
            let columns = if rows && m.has_table_columns() {
                let head: serde_json::Value =
                    serde_json::from_slice(&header).map_err(|_| invalid)?;
                let Some(definitions) = head.get("columnDefinitions") else {
                    return Err(StreamError::ColumnsAfterRows);
                };
                m.masked_columns(Some(definitions))
            } else {
                Vec::new()
            };
            let masked = raw::mask_value_bytes(m, &header, None, &self.reveal, &mut self.summary)
                .map_err(|_| invalid)?;
            let inner = strip_braces(&masked).ok_or(invalid)?;
            out.push(b'{');
            out.extend_from_slice(inner);
            if !inner.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&b[i..kend]);
            out.extend_from_slice(b":[");
            self.pos += v + 1;
            let item_kind = if rows {
                None
            } else {
                list_kind
                    .strip_suffix("List")
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
            };
            self.state = State::Elements(Elements {
                list_kind,
                item_kind,
                rows,
                columns,
                emitted: 0,
                sep: Sep::Start,
                pending: None,
            });
            return Ok(Step::Progress);
        }
        if st.raw.len() > 1 {
            st.raw.push(b',');
        }
        st.raw.extend_from_slice(&b[i..kend]);
        st.raw.push(b':');
        st.pending = Some((Pending::new(first), key == "kind"));
        self.pos += v;
        Ok(Step::Progress)
    }

    /// The top-level object ended: masks it whole, or, after streamed items, the members that
    /// followed them.
    fn close_object(
        &mut self,
        m: &Masker,
        mut st: Members,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        st.raw.push(b'}');
        if !st.streamed {
            return self.emit_whole(m, &st.raw, out);
        }
        let masked = raw::mask_value_bytes(
            m,
            &st.raw,
            st.kind.as_deref(),
            &self.reveal,
            &mut self.summary,
        )
        .map_err(|_| self.invalid())?;
        let inner = strip_braces(&masked).ok_or_else(|| self.invalid())?;
        if !inner.is_empty() {
            out.push(b',');
            out.extend_from_slice(inner);
        }
        out.extend_from_slice(b"}\n");
        self.values += 1;
        Ok(())
    }

    fn step_elements(&mut self, m: &Masker, out: &mut Vec<u8>) -> Result<Step, StreamError> {
        let invalid = self.invalid();
        let State::Elements(el) = &mut self.state else {
            return Ok(Step::NeedMore);
        };
        let b = &self.buf[self.pos..];
        if let Some(pending) = &mut el.pending {
            let Some(end) = pending.end(b) else {
                return Ok(Step::NeedMore);
            };
            let item = &b[..end];
            if el.emitted > 0 {
                out.push(b',');
            }
            if el.rows {
                let row =
                    raw::mask_row_bytes(m, item, &el.columns, &self.reveal, &mut self.summary)
                        .map_err(|_| invalid)?;
                out.extend_from_slice(&row);
            } else {
                raw::mask_into(
                    m,
                    item,
                    el.item_kind.as_deref(),
                    &self.reveal,
                    &mut self.summary,
                    &mut self.scratch,
                    out,
                )
                .map_err(|_| invalid)?;
            }
            el.emitted += 1;
            el.pending = None;
            el.sep = Sep::AfterValue;
            self.pos += end;
            return Ok(Step::Progress);
        }
        let i = raw_ws(b, 0);
        let Some(&c) = b.get(i) else {
            return Ok(Step::NeedMore);
        };
        match (c, el.sep) {
            (b']', Sep::Start | Sep::AfterValue) => {
                out.push(b']');
                self.pos += i + 1;
                let kind = std::mem::take(&mut el.list_kind);
                self.state = State::Members(Members {
                    raw: vec![b'{'],
                    kind: Some(kind),
                    streamed: true,
                    sep: Sep::AfterValue,
                    pending: None,
                });
            }
            (b',', Sep::AfterValue) => {
                el.sep = Sep::AfterComma;
                self.pos += i + 1;
            }
            (_, Sep::Start | Sep::AfterComma) => {
                self.pos += i;
                // Most items are whole in the buffer: mask them straight away, which also
                // finds where they end. Otherwise (cut by the chunk, or for the slow path)
                // wait for the whole item.
                let mark = out.len();
                if el.emitted > 0 {
                    out.push(b',');
                }
                let done = if el.rows {
                    None
                } else {
                    raw::mask_prefix(
                        m,
                        &self.buf[self.pos..],
                        el.item_kind.as_deref(),
                        &self.reveal,
                        &mut self.summary,
                        &mut self.scratch,
                        out,
                    )
                };
                match done {
                    Some(end) => {
                        self.pos += end;
                        el.emitted += 1;
                        el.sep = Sep::AfterValue;
                    }
                    None => {
                        out.truncate(mark);
                        el.pending = Some(Pending::new(c));
                    }
                }
            }
            _ => return Err(invalid),
        }
        Ok(Step::Progress)
    }
}

fn raw_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The inside of a JSON object's text (`{...}` → `...`), whitespace around trimmed.
fn strip_braces(b: &[u8]) -> Option<&[u8]> {
    let start = raw_ws(b, 0);
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))?;
    if b.get(start) != Some(&b'{') || b[end] != b'}' || end <= start {
        return None;
    }
    let inner = &b[start + 1..end];
    let s = raw_ws(inner, 0);
    let e = inner
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .map_or(s, |p| p + 1);
    Some(&inner[s..e.max(s)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DATA_PLACEHOLDER, MaskConfig, NO_REVEAL};
    use serde_json::{Value, json};

    fn masker() -> Masker {
        Masker::new(&MaskConfig::default()).unwrap()
    }

    /// Feeds `body` in chunks of `size` bytes.
    fn run(body: &[u8], size: usize) -> Result<Vec<u8>, StreamError> {
        let m = masker();
        let mut s = JsonStream::new(NO_REVEAL.clone(), 1 << 20);
        let mut out = Vec::new();
        for chunk in body.chunks(size.max(1)) {
            s.push(&m, chunk, &mut out)?;
        }
        s.finish(&m, &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_list_is_masked_item_by_item_in_any_chunking() {
        let list = json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "a"}, "data": {"k": "c2VjcmV0"}},
                      {"metadata": {"name": "b"}, "data": {"k": "b3RoZXI="}}]});
        let body = serde_json::to_vec(&list).unwrap();
        let whole = run(&body, body.len()).unwrap();
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(run(&body, size).unwrap(), whole, "chunk size {size}");
        }
        let v: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["items"][0]["data"]["k"], DATA_PLACEHOLDER);
        assert_eq!(v["items"][1]["metadata"]["name"], "b");
        assert_eq!(v["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn watch_events_are_masked_one_by_one() {
        let ev = |t: &str| json!({"type": t, "object": {"kind": "Secret", "metadata": {"name": "a"}, "data": {"k": "c2VjcmV0"}}});
        let body = format!("{}\n{}\n", ev("ADDED"), ev("MODIFIED"));
        let out = run(body.as_bytes(), 5).unwrap();
        let lines: Vec<Value> = out
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["type"], "MODIFIED");
        assert_eq!(lines[1]["object"]["data"]["k"], DATA_PLACEHOLDER);
    }

    #[test]
    fn failures_are_errors() {
        assert!(matches!(run(b"{\"a\":", 3), Err(StreamError::Truncated)));
        assert!(matches!(
            run(b"{\"a\" 1}", 3),
            Err(StreamError::Invalid { .. })
        ));
        assert!(matches!(
            run(
                br#"{"kind":"ConfigMapList","items":[{"data":{"k":"v"}}],"kind":"SecretList"}"#,
                4
            ),
            Err(StreamError::KindAfterItems)
        ));
        let m = masker();
        let mut s = JsonStream::new(NO_REVEAL.clone(), 16);
        let mut out = Vec::new();
        assert!(matches!(
            s.push(&m, br#"{"kind":"x","data":"0123456789abcdef"#, &mut out),
            Err(StreamError::TooLarge { limit: 16 })
        ));
    }

    #[test]
    fn strip_braces_keeps_the_inside() {
        assert_eq!(strip_braces(b" { \"a\":1 } "), Some(&b"\"a\":1"[..]));
        assert_eq!(strip_braces(b"{}"), Some(&b""[..]));
        assert_eq!(strip_braces(b"[]"), None);
    }
}
