//! Property tests of the line-streaming masker: splitting the input anywhere gives the same output
//! as pushing it whole; line by line it masks exactly what `TextMasker::mask` masks; no detected
//! credential (private-key bodies included) survives.

use std::sync::{Arc, OnceLock};

use holdpoint_mask::text_stream::TextStream;
use holdpoint_mask::{MaskConfig, MaskSummary, TextMasker};
use proptest::prelude::*;

fn masker() -> Arc<TextMasker> {
    static M: OnceLock<Arc<TextMasker>> = OnceLock::new();
    M.get_or_init(|| Arc::new(TextMasker::new(&MaskConfig::default()).unwrap()))
        .clone()
}

/// A credential of one of the built-in shapes that fits on one line.
fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        "(AKIA|ASIA)[A-Z2-7]{16}",
        "gh[pousr]_[0-9A-Za-z]{36}",
        "glpat-[0-9A-Za-z_-]{20,30}",
        "xox[bp]-[0-9A-Za-z-]{10,40}",
        "sk_live_[0-9A-Za-z]{16,32}",
        "eyJ[A-Za-z0-9_-]{10,30}\\.eyJ[A-Za-z0-9_-]{10,30}\\.[A-Za-z0-9_-]{0,30}",
        "(https|postgres)://[a-z]{1,8}:[A-Za-z0-9!#%*-]{1,16}@[a-z.]{1,12}",
        "(password|api_key|TOKEN|secret)(=|: |\":\")[A-Za-z0-9!#%^+/]{8,24}",
    ]
}

/// A private key block, its body lines returned separately.
fn pem() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        prop_oneof![Just(""), Just("RSA "), Just("EC ")],
        prop::collection::vec("[A-Za-z0-9+/]{20,64}", 1..5),
        any::<bool>(),
    )
        .prop_map(|(kind, body, closed)| {
            let mut text = format!("-----BEGIN {kind}PRIVATE KEY-----\n");
            for line in &body {
                text.push_str(line);
                text.push('\n');
            }
            if closed {
                text.push_str(&format!("-----END {kind}PRIVATE KEY-----\n"));
            }
            (text, body)
        })
}

/// One line of output text (with its line end).
fn line() -> impl Strategy<Value = String> {
    let end = prop_oneof![Just("\n"), Just("\r\n")];
    prop_oneof![
        4 => ("[a-zA-Z0-9 =:._/-]{0,40}", end.clone()).prop_map(|(t, e)| format!("{t}{e}")),
        2 => ("[a-z =:]{0,8}", credential(), "[a-z =:.]{0,8}", end)
            .prop_map(|(a, c, b, e)| format!("{a}{c}{b}{e}")),
    ]
}

/// Text made of lines and private-key blocks; also the PEM body lines it contains.
fn text() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    prop::collection::vec(
        prop_oneof![
            6 => line().prop_map(|l| (l, Vec::new())),
            1 => pem(),
        ],
        0..12,
    )
    .prop_map(|parts| {
        let mut text = Vec::new();
        let mut bodies = Vec::new();
        for (t, b) in parts {
            text.extend_from_slice(t.as_bytes());
            bodies.extend(b);
        }
        (text, bodies)
    })
}

fn mask_all(max_line: usize, pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = TextStream::new(masker(), max_line);
    let mut out = Vec::new();
    for p in pieces {
        s.push(p, &mut out);
    }
    s.finish(&mut out);
    out
}

fn split<'a>(data: &'a [u8], raw_cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = raw_cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain(std::iter::once(data.len())) {
        out.push(&data[prev..c]);
        prev = c;
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #[test]
    fn splitting_the_input_anywhere_changes_nothing(
        (input, _) in text(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..16),
        max_line in prop_oneof![Just(64usize), Just(4096)],
        noise in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        // arbitrary bytes too (invalid UTF-8, control characters, overlong lines)
        let mut input = input;
        input.extend_from_slice(&noise);
        let whole = mask_all(max_line, &[&input]);
        let pieces = split(&input, &raw_cuts);
        prop_assert_eq!(mask_all(max_line, &pieces), whole);
    }

    #[test]
    fn line_by_line_it_masks_what_the_text_masker_masks(
        lines in prop::collection::vec(line(), 0..12),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let input = lines.concat();
        let mut want = String::new();
        for l in &lines {
            let (content, end) = match l.strip_suffix("\r\n") {
                Some(c) => (c, "\r\n"),
                None => (l.strip_suffix('\n').unwrap_or(l), "\n"),
            };
            want.push_str(&masker().mask(content, &mut MaskSummary::new()));
            want.push_str(end);
        }
        let got = mask_all(4096, &split(input.as_bytes(), &raw_cuts));
        prop_assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn no_detected_credential_or_private_key_line_survives(
        (input, bodies) in text(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let out = mask_all(4096, &split(&input, &raw_cuts));
        let text = String::from_utf8(out.clone()).unwrap();
        for l in text.lines() {
            prop_assert!(!masker().is_flagged(l), "flagged output line {:?}", l);
        }
        for b in &bodies {
            prop_assert!(!contains(&out, b.as_bytes()), "private key line {:?} in {:?}", b, text);
        }
    }
}
