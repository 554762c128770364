//! What a masking pass did: counts by rule, never the values.

use std::collections::BTreeMap;

/// Counts of masked values by rule (for example `secret.data`, `env.name`, `text.jwt`).
/// Only values that actually changed are counted, so masking a masked object counts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskSummary {
    counts: BTreeMap<String, u64>,
}

impl MaskSummary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one masked value under `rule`.
    pub fn add(&mut self, rule: &str) {
        if let Some(n) = self.counts.get_mut(rule) {
            *n += 1;
        } else {
            self.counts.insert(rule.to_owned(), 1);
        }
    }

    /// How many values `rule` masked.
    pub fn count(&self, rule: &str) -> u64 {
        self.counts.get(rule).copied().unwrap_or(0)
    }

    /// All values masked.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Counts by rule, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Adds another summary's counts to this one.
    pub fn merge(&mut self, other: &MaskSummary) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += v;
        }
    }
}
