//! The masking configuration: env-name patterns, custom text detectors and field rules.

use serde::Deserialize;

use crate::MaskError;

/// Default env-var name fragments whose literal value is always masked (case-insensitive
/// substring match).
pub const DEFAULT_ENV_NAME_PATTERNS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "credential",
    "apikey",
    "private",
];

/// How objects and texts are masked.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Env-var name fragments (case-insensitive substrings): a literal `env[].value` whose name
    /// contains one is masked whatever the value.
    pub env_name_patterns: Vec<String>,
    /// Whether the built-in (gitleaks-derived) detectors run. On by default.
    pub builtin_detectors: bool,
    /// Extra text detectors.
    pub detectors: Vec<CustomDetector>,
    /// Fields of named kinds whose values are always masked (custom resources).
    pub field_rules: Vec<crate::FieldRule>,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            env_name_patterns: DEFAULT_ENV_NAME_PATTERNS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            builtin_detectors: true,
            detectors: Vec::new(),
            field_rules: Vec::new(),
        }
    }
}

/// A configured text detector: a regex; if it has a capture group named `secret` only that
/// group is masked, otherwise the whole match.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Shown in the mask summary (`text.NAME`).
    pub name: String,
    /// Rust `regex` syntax.
    pub regex: String,
}

impl MaskConfig {
    /// Checks the configuration: non-empty env patterns, unique non-empty detector names,
    /// compiling regexes, readable field rules with unique names.
    pub fn validate(&self) -> Result<(), MaskError> {
        let mut rule_names = std::collections::BTreeSet::new();
        for (index, rule) in self.field_rules.iter().enumerate() {
            rule.validate(index)?;
            if !rule_names.insert(rule.name.as_str()) {
                return Err(MaskError::BadFieldRule {
                    index,
                    reason: format!("{}: duplicate name", rule.name),
                });
            }
        }
        for (index, p) in self.env_name_patterns.iter().enumerate() {
            if p.trim().is_empty() {
                return Err(MaskError::EmptyEnvPattern { index });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, d) in self.detectors.iter().enumerate() {
            if d.name.trim().is_empty() {
                return Err(MaskError::BadDetectorName {
                    index,
                    reason: "empty name",
                });
            }
            if !seen.insert(d.name.as_str()) {
                return Err(MaskError::BadDetectorName {
                    index,
                    reason: "duplicate name",
                });
            }
            regex::Regex::new(&d.regex).map_err(|e| MaskError::BadRegex {
                index,
                name: d.name.clone(),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}
