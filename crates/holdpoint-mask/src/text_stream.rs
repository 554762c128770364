//! Line-streaming text masking for byte streams that arrive in arbitrary pieces: the stdout and
//! stderr of `kubectl exec` and `attach` (issue 5).
//!
//! [`TextStream`] takes chunks and gives back masked bytes. It masks whole lines with the
//! [`TextMasker`] detectors and holds back only the current incomplete line, so a credential that
//! the process wrote in two pieces (or that the transport split across frames) is still caught:
//! for detectors that match within a line, the output does not depend on where the input was
//! split. Three things keep the hold-back bounded and interactive use responsive:
//!
//! - a line longer than `max_line` bytes is cut (after the last blank in its second half when
//!   there is one, so tokens are rarely split) and each cut piece is masked as a line;
//! - [`TextStream::flush`] emits the incomplete line now (a prompt, a progress bar, a character
//!   typed into a terminal); the emitted bytes stay as context, so when the line goes on and a
//!   credential completes, everything of it not yet emitted is masked. What a flush has already
//!   emitted cannot be taken back: a caller flushes on a short idle timer, never per chunk;
//! - [`TextStream::finish`] emits the rest at the end of the stream.
//!
//! A private key is the one multi-line credential: after a line that opens a
//! `-----BEGIN ... PRIVATE KEY-----` block without closing it, every following line made only of
//! PEM characters is masked whole, up to and including the `-----END ... PRIVATE KEY-----`
//! line (the same extent the `private-key` detector masks in a whole text).
//!
//! Bytes need not be UTF-8 (a process may write anything): invalid sequences are scanned as a
//! neutral ASCII stand-in and passed through unchanged where nothing is masked.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use regex::bytes::Regex;

use crate::{MaskSummary, PLACEHOLDER, TextMasker};

/// Default bound of the held-back incomplete line.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The rule of the built-in private-key detector, which also drives the multi-line PEM state.
const PRIVATE_KEY_RULE: &str = "text.private-key";

static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)-----BEGIN[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----").expect("regex compiles")
});
static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)-----END[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----").expect("regex compiles")
});
/// A line inside a PEM block: one (indented) run of base64, or an encapsulated header
/// (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-128-CBC,0A1B...`).
static PEM_BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^(?:[\t ]*[A-Za-z0-9+/=]*[\t\r ]*|[A-Za-z-]+: ?[A-Za-z0-9,:-]*\r?)$")
        .expect("regex compiles")
});

/// Masks a byte stream line by line; see the module documentation.
#[derive(Debug)]
pub struct TextStream {
    masker: Arc<TextMasker>,
    max_line: usize,
    /// The current incomplete line.
    pending: Vec<u8>,
    /// How much of `pending` a flush has already emitted.
    emitted: usize,
    /// Inside a private-key block (only with the private-key detector enabled).
    in_pem: bool,
    pem_tracking: bool,
    summary: MaskSummary,
}

impl TextStream {
    /// A stream masked by `masker`'s detectors, holding back at most `max_line` bytes (at least
    /// 64).
    pub fn new(masker: Arc<TextMasker>, max_line: usize) -> Self {
        let pem_tracking = masker.rules().any(|r| r == PRIVATE_KEY_RULE);
        Self {
            masker,
            max_line: max_line.max(64),
            pending: Vec::new(),
            emitted: 0,
            in_pem: false,
            pem_tracking,
            summary: MaskSummary::new(),
        }
    }

    /// Masks `chunk`, appending to `out` every line it completes (and the pieces of overlong
    /// lines). The incomplete rest is held back.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(i + 1);
            rest = tail;
            if self.pending.is_empty() && line.len() <= self.max_line {
                // the common case: a whole line in one chunk, masked without a copy
                self.emit_line(line, 0, true, out);
                continue;
            }
            self.pending.extend_from_slice(line);
            self.cut_overlong(out);
            let line = std::mem::take(&mut self.pending);
            self.emit_line(&line, self.emitted, true, out);
            self.pending = line;
            self.pending.clear();
            self.emitted = 0;
        }
        self.pending.extend_from_slice(rest);
        self.cut_overlong(out);
    }

    /// Emits the incomplete line held back (masked in the context of what came before on it);
    /// it stays the context of what follows on the same line.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.emitted < self.pending.len() {
            let line = std::mem::take(&mut self.pending);
            self.emit_line(&line, self.emitted, false, out);
            self.emitted = line.len();
            self.pending = line;
        }
    }

    /// Emits everything held back: the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
        self.pending.clear();
        self.emitted = 0;
        self.in_pem = false;
    }

    /// Whether a [`flush`](Self::flush) would emit anything.
    pub fn has_pending(&self) -> bool {
        self.emitted < self.pending.len()
    }

    /// What was masked so far, by rule.
    pub fn summary(&self) -> &MaskSummary {
        &self.summary
    }

    /// Cuts `pending` while it is longer than `max_line` without a line end, emitting each piece.
    fn cut_overlong(&mut self, out: &mut Vec<u8>) {
        while self.pending.len() > self.max_line && !self.pending[..self.max_line].contains(&b'\n')
        {
            let window = &self.pending[self.max_line / 2..self.max_line];
            let cut = match window
                .iter()
                .rposition(|b| matches!(b, b' ' | b'\t' | b'\r'))
            {
                Some(i) => self.max_line / 2 + i + 1,
                None => self.max_line,
            };
            let line: Vec<u8> = self.pending.drain(..cut).collect();
            self.emit_line(&line, self.emitted.min(cut), true, out);
            self.emitted = self.emitted.saturating_sub(cut);
        }
    }

    /// Masks `line` (with its line end, if any) and appends what lies at or after `from` to
    /// `out`. `complete`: the line is done, so the PEM state may change.
    fn emit_line(&mut self, line: &[u8], from: usize, complete: bool, out: &mut Vec<u8>) {
        let content_len = content_len(line);
        let content = &line[..content_len];
        let ranges = self.ranges(content, complete);
        let mut pos = from;
        for r in &ranges {
            if r.end <= from {
                continue;
            }
            let start = r.start.max(from);
            out.extend_from_slice(&content[pos..start]);
            out.extend_from_slice(PLACEHOLDER.as_bytes());
            pos = r.end;
        }
        if pos < line.len() {
            out.extend_from_slice(&line[pos..]);
        }
    }

    /// The byte ranges of `content` to replace, sorted and merged.
    fn ranges(&mut self, content: &[u8], complete: bool) -> Vec<Range<usize>> {
        if self.in_pem {
            if let Some(end) = PEM_END.find(content) {
                if complete {
                    self.in_pem = false;
                }
                let mut ranges = whole(end.end());
                ranges.extend(
                    self.detect(content)
                        .into_iter()
                        .filter(|r| r.start >= end.end()),
                );
                return merge(ranges);
            }
            if PEM_BODY.is_match(content) {
                return if content.is_empty() {
                    Vec::new()
                } else {
                    self.summary.add(PRIVATE_KEY_RULE);
                    whole(content.len())
                };
            }
            if complete {
                self.in_pem = false;
            }
        }
        if complete && self.pem_tracking {
            let last_begin = PEM_BEGIN.find_iter(content).last();
            if let Some(begin) = last_begin
                && !PEM_END.is_match(&content[begin.end()..])
            {
                self.in_pem = true;
            }
        }
        self.detect(content)
    }

    /// Detector findings in `content`, merged; fails closed (everything) if masking them would
    /// leave a finding behind.
    fn detect(&mut self, content: &[u8]) -> Vec<Range<usize>> {
        let text = scannable(content);
        let findings = self.masker.scan(&text);
        if findings.is_empty() {
            return Vec::new();
        }
        for f in &findings {
            self.summary.add(&format!("text.{}", f.rule));
        }
        let ranges = merge(findings.into_iter().map(|f| f.range).collect());
        let mut masked = String::with_capacity(text.len());
        let mut pos = 0;
        for r in &ranges {
            masked.push_str(&text[pos..r.start]);
            masked.push_str(PLACEHOLDER);
            pos = r.end;
        }
        masked.push_str(&text[pos..]);
        if self.masker.is_flagged(&masked) {
            self.summary.add("text.unmaskable");
            return whole(content.len());
        }
        ranges
    }
}

/// The length of `line` without its line end (`\n` or `\r\n`).
fn content_len(line: &[u8]) -> usize {
    match line {
        [.., b'\r', b'\n'] => line.len() - 2,
        [.., b'\n'] => line.len() - 1,
        _ => line.len(),
    }
}

/// The one range `0..len`.
fn whole(len: usize) -> Vec<Range<usize>> {
    std::iter::once(0..len).collect()
}

/// Sorts ranges and merges overlapping or touching ones (as [`TextMasker::mask`] does).
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `bytes` as text of the same length: valid UTF-8 as is, each byte of an invalid sequence as
/// `~` (like a byte >= 0x80 to the ASCII-mode detectors: a value character, not a word character).
fn scannable(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let mut s = String::with_capacity(bytes.len());
            let mut rest = bytes;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(valid) => {
                        s.push_str(valid);
                        break;
                    }
                    Err(e) => {
                        let (valid, after) = rest.split_at(e.valid_up_to());
                        // valid_up_to marks a valid prefix
                        s.push_str(std::str::from_utf8(valid).unwrap_or_default());
                        let bad = e.error_len().unwrap_or(after.len());
                        s.extend(std::iter::repeat_n('~', bad));
                        rest = &after[bad..];
                    }
                }
            }
            Cow::Owned(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MaskConfig;

    fn stream(max_line: usize) -> TextStream {
        TextStream::new(
            Arc::new(TextMasker::new(&MaskConfig::default()).unwrap()),
            max_line,
        )
    }

    fn run(s: &mut TextStream, chunks: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    const TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

    #[test]
    fn a_credential_split_across_chunks_is_masked() {
        let text = format!("ok\nexport GITHUB={TOKEN}\ndone\n");
        let (a, b) = text.as_bytes().split_at(20);
        let got = run(&mut stream(1024), &[a, b]);
        assert_eq!(got, "ok\nexport GITHUB=[MASKED]\ndone\n");
    }

    #[test]
    fn only_the_incomplete_line_is_held_back() {
        let mut s = stream(1024);
        let mut out = Vec::new();
        s.push(b"one\ntw", &mut out);
        assert_eq!(out, b"one\n");
        assert!(s.has_pending());
        s.push(b"o\r\n", &mut out);
        assert_eq!(out, b"one\ntwo\r\n");
        assert!(!s.has_pending());
    }

    #[test]
    fn a_flush_keeps_the_line_as_context_so_the_rest_of_a_credential_is_masked() {
        let mut s = stream(1024);
        let mut out = Vec::new();
        s.push(b"$ password=s3cr", &mut out);
        assert!(out.is_empty());
        s.flush(&mut out);
        assert_eq!(out, b"$ password=s3cr");
        assert!(!s.has_pending());
        s.push(b"3t-Value-XYZ\nnext\n", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "$ password=s3cr[MASKED]\nnext\n"
        );
    }

    #[test]
    fn overlong_lines_are_cut_at_a_blank_and_masked_piece_by_piece() {
        let mut s = stream(64);
        let mut out = Vec::new();
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        s.push(format!("{a} {TOKEN} {b}").as_bytes(), &mut out);
        // two cuts, each after the last blank of the window: before and after the token
        assert_eq!(String::from_utf8_lossy(&out), format!("{a} [MASKED] "));
        s.finish(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{a} [MASKED] {b}"));
    }

    #[test]
    fn a_private_key_block_is_masked_line_by_line() {
        let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yQ==\n-----END RSA PRIVATE KEY----- trailing\nafter\n";
        let mut chunks: Vec<&[u8]> = Vec::new();
        for piece in text.as_bytes().chunks(7) {
            chunks.push(piece);
        }
        let got = run(&mut stream(1024), &chunks);
        assert_eq!(
            got,
            "key:\n[MASKED]\n[MASKED]\n\n[MASKED]\n[MASKED]\n[MASKED] trailing\nafter\n"
        );
    }

    #[test]
    fn a_pem_block_cut_off_ends_at_the_first_line_that_is_not_base64() {
        let got = run(
            &mut stream(1024),
            &[b"-----BEGIN PRIVATE KEY-----\n  MIIEowIBAAKCAQEA\nls: done, 3 files\nMIIE\n"],
        );
        assert_eq!(got, "[MASKED]\n[MASKED]\nls: done, 3 files\nMIIE\n");
    }

    #[test]
    fn invalid_utf8_passes_through_and_is_still_scanned() {
        let mut input = b"bin\xff\xfe data\n".to_vec();
        input.push(0x80);
        input.extend_from_slice(TOKEN.as_bytes());
        input.extend_from_slice(b"\x80\n");
        let mut s = stream(1024);
        let mut out = Vec::new();
        s.push(&input, &mut out);
        let mut want = b"bin\xff\xfe data\n\x80".to_vec();
        want.extend_from_slice(b"[MASKED]\x80\n");
        assert_eq!(out, want);
        assert_eq!(s.summary().count("text.github-token"), 1);
    }
}
