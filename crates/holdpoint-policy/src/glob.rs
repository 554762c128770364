//! Minimal glob patterns for names: `*` matches any run of characters (also none); everything
//! else matches itself. Compiled once so the common shapes (exact, `*`, `prefix*`, `*suffix`)
//! are a single comparison.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    /// `*`
    Any,
    /// No `*`.
    Exact(Box<str>),
    /// `abc*`
    Prefix(Box<str>),
    /// `*abc`
    Suffix(Box<str>),
    /// Anything else: the literal pieces between the stars, and whether the pattern starts or
    /// ends with a star.
    General {
        /// Literal pieces, in order.
        pieces: Vec<Box<str>>,
        /// Pattern starts with `*`.
        open_start: bool,
        /// Pattern ends with `*`.
        open_end: bool,
    },
}

impl Glob {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Glob {
        if pattern == "*" {
            return Glob::Any;
        }
        let stars = pattern.matches('*').count();
        if stars == 0 {
            return Glob::Exact(pattern.into());
        }
        if stars == 1 && pattern.ends_with('*') {
            return Glob::Prefix(pattern[..pattern.len() - 1].into());
        }
        if stars == 1 && pattern.starts_with('*') {
            return Glob::Suffix(pattern[1..].into());
        }
        Glob::General {
            pieces: pattern
                .split('*')
                .filter(|p| !p.is_empty())
                .map(Into::into)
                .collect(),
            open_start: pattern.starts_with('*'),
            open_end: pattern.ends_with('*'),
        }
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(e) => &**e == text,
            Glob::Prefix(p) => text.starts_with(&**p),
            Glob::Suffix(s) => text.ends_with(&**s),
            Glob::General {
                pieces,
                open_start,
                open_end,
            } => {
                let mut rest = text;
                for (i, piece) in pieces.iter().enumerate() {
                    let first = i == 0;
                    let last = i + 1 == pieces.len();
                    if first && !open_start {
                        match rest.strip_prefix(&**piece) {
                            Some(r) => rest = r,
                            None => return false,
                        }
                        if last && !open_end {
                            return rest.is_empty();
                        }
                        continue;
                    }
                    if last && !open_end {
                        return rest.ends_with(&**piece);
                    }
                    match rest.find(&**piece) {
                        Some(at) => rest = &rest[at + piece.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

/// A list of globs; matches when any entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobSet(Vec<Glob>);

impl GlobSet {
    /// Compiles each pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> GlobSet {
        let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p.as_ref())).collect();
        if globs.contains(&Glob::Any) {
            return GlobSet(vec![Glob::Any]);
        }
        GlobSet(globs)
    }

    /// Whether any entry matches.
    pub fn matches(&self, text: &str) -> bool {
        self.0.iter().any(|g| g.matches(text))
    }

    /// Whether the set matches everything.
    pub fn is_any(&self) -> bool {
        self.0.first() == Some(&Glob::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "abc", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("", "", true),
            ("", "a", false),
            ("prod-*", "prod-eu", true),
            ("prod-*", "prod-", true),
            ("prod-*", "staging", false),
            ("*-prod", "eu-prod", true),
            ("*-prod", "eu-prod-x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyycd", false),
            ("a*b*c", "xabc", false),
            ("*a*", "xay", true),
            ("*a*", "xy", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("/debug/*", "/debug/pprof", true),
            ("/debug/*", "/debugx", false),
            ("*b*c", "bc", true),
            ("*b*c", "xbxc", true),
            ("*b*c", "xbxcx", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                *want,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn set_with_star_is_any() {
        let set = GlobSet::new(&["a", "*"]);
        assert!(set.is_any());
        assert!(set.matches("zzz"));
        assert!(!GlobSet::new(&["a", "b"]).matches("c"));
    }
}
