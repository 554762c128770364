//! What a masking pass did: counts by rule, never the values.

use std::collections::BTreeMap;

/// Counts of masked values by rule (for example `secret.data`, `env.name`, `text.jwt`).
/// Only values that actually changed are counted, so masking a masked object counts nothing.
/// Objects left unmasked because their kind was revealed (see [`crate::Reveal`]) are counted
/// apart, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskSummary {
    counts: BTreeMap<String, u64>,
    revealed: BTreeMap<String, u64>,
}

impl MaskSummary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one masked value under `rule`.
    pub fn add(&mut self, rule: &str) {
        self.add_n(rule, 1);
    }

    /// Adds `n` masked values under `rule`.
    pub fn add_n(&mut self, rule: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.counts.get_mut(rule) {
            *c += n;
        } else {
            self.counts.insert(rule.to_owned(), n);
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

    /// Whether nothing was masked (revealed objects aside).
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds one object of `kind` that was left unmasked because its kind was revealed.
    pub fn add_revealed(&mut self, kind: &str) {
        if let Some(n) = self.revealed.get_mut(kind) {
            *n += 1;
        } else {
            self.revealed.insert(kind.to_owned(), 1);
        }
    }

    /// Objects left unmasked because their kind was revealed, by kind, in kind order.
    pub fn revealed(&self) -> impl Iterator<Item = (&str, u64)> {
        self.revealed.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many objects were revealed in all.
    pub fn revealed_total(&self) -> u64 {
        self.revealed.values().sum()
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
        for (k, v) in &other.revealed {
            *self.revealed.entry(k.clone()).or_insert(0) += v;
        }
    }
}
