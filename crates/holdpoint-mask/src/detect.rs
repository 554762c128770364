//! Text detectors: finds credentials in free text (ConfigMap values, log lines, event messages,
//! annotation values) and replaces the secret part with [`PLACEHOLDER`].
//!
//! The built-in detectors are curated and adapted from the gitleaks rule set
//! (<https://github.com/gitleaks/gitleaks>, `config/gitleaks.toml`, MIT License, Copyright (c)
//! 2019 Zachary Rice; full notice in this crate's `NOTICE` file). All detectors, built-in and
//! configured, are compiled into one [`RegexSet`]: a text is scanned once for all of them, and
//! only the detectors that matched are run again to find the positions, so the cost of a clean
//! text does not grow with the number of detectors.
//!
//! A match that lies inside an existing placeholder is ignored, so masking is idempotent. If a
//! text still has findings after a few rounds of replacement (a configured regex that matches
//! its own replacement's surroundings), the whole text is replaced: fail closed.

use std::borrow::Cow;

use regex::bytes::{Regex, RegexSet};

use crate::{CustomDetector, MaskConfig, MaskError, MaskSummary, PLACEHOLDER};

/// One built-in detector: id, regex (group `secret` = the part to mask), minimum Shannon
/// entropy (bits per char) of the masked part.
struct Builtin {
    id: &'static str,
    regex: &'static str,
    min_entropy: Option<f64>,
}

/// Characters a generic secret value may contain (no quotes, whitespace, separators or the
/// placeholder's brackets).
macro_rules! value_chars {
    () => {
        r#"[^\x00-\x20"'`,;&<>\[\]{}()\x7f]"#
    };
}

/// The built-in detectors (adapted from gitleaks; ids follow gitleaks' rule ids).
const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "aws-access-key-id",
        regex: r"(?-u)\b(?P<secret>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        min_entropy: None,
    },
    Builtin {
        id: "aws-secret-access-key",
        regex: r#"(?i-u)aws_?secret_?(?:access_?)?key["']?[ \t]*(?:=|:|=>|:=)[ \t]*["']?(?P<secret>[A-Za-z0-9/+=]{40})\b"#,
        min_entropy: None,
    },
    Builtin {
        id: "github-token",
        regex: r"(?-u)\b(?P<secret>(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36})\b",
        min_entropy: None,
    },
    Builtin {
        id: "github-fine-grained-pat",
        regex: r"(?-u)\b(?P<secret>github_pat_[0-9A-Za-z_]{82})\b",
        min_entropy: None,
    },
    Builtin {
        id: "gitlab-token",
        regex: r"(?-u)\b(?P<secret>(?:glpat|gldt|glrt|glptt|glsoat)-[0-9A-Za-z_-]{20,})",
        min_entropy: None,
    },
    Builtin {
        id: "slack-token",
        regex: r"(?-u)\b(?P<secret>xox[abeoprs]-[0-9A-Za-z-]{10,})",
        min_entropy: None,
    },
    Builtin {
        id: "slack-webhook-url",
        regex: r"(?-u)hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9+/]{43,})",
        min_entropy: None,
    },
    Builtin {
        id: "stripe-key",
        regex: r"(?-u)\b(?P<secret>(?:sk|rk)_(?:test|live|prod)_[0-9A-Za-z]{10,})\b",
        min_entropy: None,
    },
    Builtin {
        id: "private-key",
        // a whole PEM block; a block cut off before its END line is masked up to where the
        // base64 body ends (escaped newlines count, for JSON-in-text)
        regex: r"(?s-u)(?P<secret>-----BEGIN[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END[ A-Z0-9_-]*PRIVATE KEY(?: BLOCK)?-----|(?:[A-Za-z0-9+/=:\t\r\n -]|\\n|\\r)*))",
        min_entropy: None,
    },
    Builtin {
        id: "jwt",
        regex: r"(?-u)\b(?P<secret>ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*)",
        min_entropy: None,
    },
    Builtin {
        id: "url-password",
        regex: r"(?-u)[A-Za-z0-9+.-]://[^\x00-\x20:@/\[\]\x7f]+:(?P<secret>[^\x00-\x20:@/\[\]\x7f]+)@",
        min_entropy: None,
    },
    Builtin {
        id: "generic-assignment",
        regex: concat!(
            r#"(?i-u)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|auth)"#,
            r#"[A-Za-z0-9_.-]{0,20}["']?[ \t]*(?:=|:|=>|:=)[ \t]*["']?(?P<secret>"#,
            value_chars!(),
            r#"{8,})"#
        ),
        min_entropy: Some(3.0),
    },
];

/// Where a detector found a secret in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The detector's id (built-in) or configured name.
    pub rule: String,
    /// Byte range of the secret part in the scanned text.
    pub range: std::ops::Range<usize>,
}

struct Detector {
    /// `text.ID`, the summary rule.
    rule: String,
    regex: Regex,
    min_entropy: Option<f64>,
}

/// The compiled text detectors.
pub struct TextMasker {
    set: RegexSet,
    has_custom: bool,
    /// No detector has a start/end-of-text or line anchor, so a detector that finds something
    /// in a JSON string also matches the raw JSON bytes around it (see [`Self::raw_may_match`]).
    raw_prefilter_sound: bool,
    detectors: Vec<Detector>,
}

impl std::fmt::Debug for TextMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextMasker")
            .field(
                "detectors",
                &self.detectors.iter().map(|d| &d.rule).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How many rounds of replacement before the whole text is replaced.
const MAX_ROUNDS: usize = 3;

/// Whether a (compiling) regex has a text or line anchor. Unparseable counts as anchored.
fn has_anchor(pattern: &str) -> bool {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(|hir| hir.properties().look_set().contains_anchor())
        .unwrap_or(true)
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

impl TextMasker {
    /// Compiles the built-in detectors (if enabled) and the configured ones.
    pub fn new(config: &MaskConfig) -> Result<Self, MaskError> {
        config.validate()?;
        let mut detectors = Vec::new();
        if config.builtin_detectors {
            for b in BUILTINS {
                detectors.push(Detector {
                    rule: format!("text.{}", b.id),
                    // built-in patterns are tested to compile
                    regex: Regex::new(b.regex).expect("built-in detector regex compiles"),
                    min_entropy: b.min_entropy,
                });
            }
        }
        for (index, CustomDetector { name, regex }) in config.detectors.iter().enumerate() {
            detectors.push(Detector {
                rule: format!("text.{name}"),
                regex: Regex::new(regex).map_err(|e| MaskError::BadRegex {
                    index,
                    name: name.clone(),
                    source: Box::new(e),
                })?,
                min_entropy: None,
            });
        }
        let set = RegexSet::new(detectors.iter().map(|d| d.regex.as_str())).map_err(|e| {
            MaskError::BadRegex {
                index: 0,
                name: "<set>".to_owned(),
                source: Box::new(e),
            }
        })?;
        let raw_prefilter_sound = config.detectors.iter().all(|d| !has_anchor(&d.regex));
        Ok(Self {
            set,
            has_custom: !config.detectors.is_empty(),
            raw_prefilter_sound,
            detectors,
        })
    }

    /// Whether any detector matches anywhere in `bytes`, positions and entropy left aside: one
    /// DFA pass. The streaming masker runs it over raw JSON: a string without escapes is the
    /// same bytes raw and decoded, and its neighbours (`"`) are non-word characters like the
    /// edges of a text, so whatever a detector finds in such a string it also matches here
    /// (matches across strings are extra, never missing). Sound only without anchors
    /// ([`Self::raw_prefilter_sound`]).
    pub(crate) fn raw_may_match(&self, bytes: &[u8]) -> bool {
        self.set.is_match(bytes)
    }

    /// Whether [`Self::raw_may_match`] is sound for every detector (configured regexes with
    /// `^`, `$`, `\A` or `\z` make it unsound; strings are then checked one by one).
    pub(crate) fn raw_prefilter_sound(&self) -> bool {
        self.raw_prefilter_sound
    }

    /// The ids of the enabled detectors (`text.ID`).
    pub fn rules(&self) -> impl Iterator<Item = &str> {
        self.detectors.iter().map(|d| d.rule.as_str())
    }

    /// Whether any detector flags `text` (outside existing placeholders).
    pub fn is_flagged(&self, text: &str) -> bool {
        let mut out = Vec::new();
        self.find_into(text, &mut out);
        !out.is_empty()
    }

    /// All findings in `text`, outside existing placeholders.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.find_into(text, &mut out);
        out.into_iter()
            .map(|(range, i)| Finding {
                rule: self.detectors[i].rule["text.".len()..].to_owned(),
                range,
            })
            .collect()
    }

    fn find_into(&self, text: &str, out: &mut Vec<(std::ops::Range<usize>, usize)>) {
        // the shortest built-in match ("a://b:c@") is 8 bytes
        if text.len() < 8 && !self.has_custom {
            return;
        }
        let bytes = text.as_bytes();
        // is_match stops at the first match and needs no per-pattern bookkeeping: the common
        // clean string costs only this
        if !self.set.is_match(bytes) {
            return;
        }
        let matched = self.set.matches(bytes);
        if !matched.matched_any() {
            return;
        }
        let placeholders: Vec<usize> = text.match_indices(PLACEHOLDER).map(|(i, _)| i).collect();
        let inside_placeholder = |r: &std::ops::Range<usize>| {
            placeholders
                .iter()
                .any(|&p| r.start >= p && r.end <= p + PLACEHOLDER.len())
        };
        for i in matched.iter() {
            let d = &self.detectors[i];
            for caps in d.regex.captures_iter(bytes) {
                let Some(m) = caps.name("secret").or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.is_empty() {
                    continue;
                }
                // ASCII-mode classes can stop inside a multi-byte character: widen to
                // character boundaries so the replacement keeps the text valid UTF-8
                let mut r = m.range();
                while !text.is_char_boundary(r.start) {
                    r.start -= 1;
                }
                while !text.is_char_boundary(r.end) {
                    r.end += 1;
                }
                if let Some(min) = d.min_entropy
                    && shannon_entropy(&text[r.clone()]) < min
                {
                    continue;
                }
                if inside_placeholder(&r) {
                    continue;
                }
                out.push((r, i));
            }
        }
    }

    /// Masks every finding in `text` with [`PLACEHOLDER`], counting each under `text.RULE`.
    /// Returns the text unchanged (borrowed) when nothing is flagged.
    pub fn mask<'a>(&self, text: &'a str, summary: &mut MaskSummary) -> Cow<'a, str> {
        let mut current: Cow<'a, str> = Cow::Borrowed(text);
        let mut found = Vec::new();
        for _ in 0..MAX_ROUNDS {
            found.clear();
            self.find_into(&current, &mut found);
            if found.is_empty() {
                return current;
            }
            found.sort_by_key(|(r, _)| (r.start, r.end));
            let mut out = String::with_capacity(current.len());
            let mut pos = 0usize;
            let mut span_end = 0usize;
            let mut open = false;
            for (r, i) in &found {
                summary.add(&self.detectors[*i].rule);
                if open && r.start <= span_end {
                    span_end = span_end.max(r.end);
                    continue;
                }
                if open {
                    out.push_str(PLACEHOLDER);
                    pos = span_end;
                }
                out.push_str(&current[pos..r.start]);
                span_end = r.end;
                open = true;
            }
            if open {
                out.push_str(PLACEHOLDER);
                pos = span_end;
            }
            out.push_str(&current[pos..]);
            current = Cow::Owned(out);
        }
        found.clear();
        self.find_into(&current, &mut found);
        if found.is_empty() {
            current
        } else {
            summary.add("text.unmaskable");
            Cow::Borrowed(PLACEHOLDER)
        }
    }
}
