//! The streaming text masker: chunks of text in (`pods/log`, follow included), masked chunks
//! out, line by line.
//!
//! Complete lines are masked as soon as they arrive; an incomplete line is held back until its
//! newline comes, up to `max_line_bytes` (a longer line is masked and written in pieces of at
//! most that size, cut at a character boundary). A private-key PEM block that spans several
//! chunks is followed across them: once a `-----BEGIN ... PRIVATE KEY-----` line is open, every
//! following line up to its `-----END ...-----` line is replaced whole. Invalid UTF-8 is
//! replaced (U+FFFD) before masking, as a client decoding the text would.

use memchr::memmem;

use crate::{MaskSummary, Masker, PLACEHOLDER};

/// Masks text line by line. See the module docs.
pub struct LineStream {
    pending: Vec<u8>,
    max_line_bytes: usize,
    /// Inside a private-key block that began in an earlier piece.
    in_key: bool,
    summary: MaskSummary,
}

/// Shows progress only, never the (unmasked) text held back.
impl std::fmt::Debug for LineStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineStream")
            .field("buffered", &self.pending.len())
            .field("in_key", &self.in_key)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl LineStream {
    /// A masker for one text stream, holding back at most `max_line_bytes` of an incomplete
    /// line.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            pending: Vec::new(),
            max_line_bytes: max_line_bytes.max(16),
            in_key: false,
            summary: MaskSummary::new(),
        }
    }

    /// What was masked so far.
    pub fn summary(&self) -> &MaskSummary {
        &self.summary
    }

    /// Takes the next chunk and appends the masked complete lines to `out`.
    pub fn push(&mut self, m: &Masker, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        if let Some(last) = memchr::memrchr(b'\n', &self.pending) {
            let rest = self.pending.split_off(last + 1);
            let block = std::mem::replace(&mut self.pending, rest);
            self.mask_block(m, &block, out);
        }
        while self.pending.len() > self.max_line_bytes {
            let mut cut = self.max_line_bytes;
            // do not split a UTF-8 character (continuation bytes are 0b10xx_xxxx)
            while cut > 0 && (self.pending[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            if cut == 0 {
                cut = self.max_line_bytes;
            }
            let rest = self.pending.split_off(cut);
            let piece = std::mem::replace(&mut self.pending, rest);
            self.mask_block(m, &piece, out);
        }
    }

    /// The text ended: masks and writes what was held back.
    pub fn finish(&mut self, m: &Masker, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.mask_block(m, &rest, out);
        }
    }

    fn mask_block(&mut self, m: &Masker, block: &[u8], out: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(block);
        let mut text: &str = &text;
        // the rest of a key block that began in an earlier piece
        while self.in_key && !text.is_empty() {
            let line_end = text.find('\n').map_or(text.len(), |i| i + 1);
            let (line, rest) = text.split_at(line_end);
            if line.contains("-----END") {
                self.in_key = false;
            }
            out.extend_from_slice(PLACEHOLDER.as_bytes());
            if line.ends_with('\n') {
                out.push(b'\n');
            }
            self.summary.add("text.private-key");
            text = rest;
        }
        if text.is_empty() {
            return;
        }
        let masked = m.mask_text(text, &mut self.summary);
        out.extend_from_slice(masked.as_bytes());
        self.in_key = opens_key_block(text.as_bytes());
    }
}

/// Whether `text` ends inside a private-key PEM block (a BEGIN line with no END after it).
fn opens_key_block(text: &[u8]) -> bool {
    let Some(begin) = memmem::rfind(text, b"-----BEGIN") else {
        return false;
    };
    let after = &text[begin..];
    let line = &after[..memchr::memchr(b'\n', after).unwrap_or(after.len())];
    memmem::find(line, b"PRIVATE KEY").is_some() && memmem::find(after, b"-----END").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MaskConfig;

    fn run(text: &str, size: usize) -> String {
        let m = Masker::new(&MaskConfig::default()).unwrap();
        let mut s = LineStream::new(64);
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(size) {
            s.push(&m, chunk, &mut out);
        }
        s.finish(&m, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_split_across_chunks_are_masked() {
        let text = "start\nconnecting to postgres://app:S3cr3tPass@db/app now\nbye\n";
        for size in [1, 3, 10, 100] {
            let out = run(text, size);
            assert!(!out.contains("S3cr3tPass"), "size {size}: {out}");
            assert!(out.starts_with("start\n") && out.ends_with("bye\n"));
        }
    }

    #[test]
    fn a_key_block_across_pieces_is_replaced_line_by_line() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAzdD3u1bm7secretkeymaterial\nAnotherLineOfKeyMaterial0123\n-----END RSA PRIVATE KEY-----\nafter\n";
        for size in [1, 5, 40] {
            let out = run(text, size);
            assert!(!out.contains("MIIEpAIBAAKCAQEA"), "size {size}: {out}");
            assert!(
                !out.contains("AnotherLineOfKeyMaterial"),
                "size {size}: {out}"
            );
            assert!(out.ends_with("after\n"), "size {size}: {out}");
        }
    }

    #[test]
    fn long_lines_are_cut_at_the_bound_without_splitting_characters() {
        let line = "é".repeat(100);
        let out = run(&line, 7);
        assert_eq!(out, line);
    }
}
