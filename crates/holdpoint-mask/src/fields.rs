//! Field rules from the configuration: fields of a kind (custom resources of secret managers,
//! operators' credential objects, ...) whose values are always masked, like a Secret's `data`.
//!
//! A rule names an object `kind`, optionally its `apiVersion` (`group/version`, or `group/*` for
//! any version of the group), and field selectors: keys separated by dots, where `*` is any key
//! of an object and `[*]` (or `[]`) is every element of a list, e.g. `spec.password`,
//! `spec.credentials[*].value`, `spec.data.*`. Every scalar under a selected field becomes the
//! placeholder (`[MASKED]`; numbers and booleans too, so a field's type may change from number
//! to string: no secret is kept for the sake of a type); `null` stays. An object without
//! `apiVersion` (a list item) matches on its kind alone: when in doubt, mask.
//!
//! A rule's `columns` name `Table` columns (printer columns) that show its fields: their cells
//! are masked in every Table, since a Table's rows do not say their kind.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{MaskError, MaskSummary, PLACEHOLDER};

/// A configured field rule (`mask.field_rules[]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Shown in the mask summary (`field.NAME`).
    pub name: String,
    /// `group/version` (`v1` for the core group), `group/*` for any version; omitted: any.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The objects' `kind`.
    pub kind: String,
    /// Field selectors (see the module documentation).
    pub fields: Vec<String>,
    /// Names of `Table` columns that show these fields (the CRD's `additionalPrinterColumns`,
    /// as `kubectl get` prints them): their cells are masked in every Table, whatever its rows
    /// (a Table's rows do not say their kind unless the whole object is included).
    #[serde(default)]
    pub columns: Vec<String>,
}

/// One step of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    AnyKey,
    AnyElement,
}

/// A rule ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    rule: String,
    api_version: Option<String>,
    selectors: Vec<Vec<Step>>,
}

fn parse_selector(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in text.split('.') {
        let mut part = part;
        let mut elements = 0;
        loop {
            if let Some(p) = part.strip_suffix("[*]") {
                part = p;
            } else if let Some(p) = part.strip_suffix("[]") {
                part = p;
            } else {
                break;
            }
            elements += 1;
        }
        if part.is_empty() && elements == 0 {
            return Err(format!("{text:?} has an empty step"));
        }
        if part.contains(['[', ']']) {
            return Err(format!(
                "{text:?}: only [*] (every element) may follow a key"
            ));
        }
        match part {
            "" => {}
            "*" => steps.push(Step::AnyKey),
            key => steps.push(Step::Key(key.to_owned())),
        }
        steps.extend(std::iter::repeat_n(Step::AnyElement, elements));
    }
    Ok(steps)
}

impl FieldRule {
    /// Checks the rule; `index` is its place in the list (for the message).
    pub fn validate(&self, index: usize) -> Result<(), MaskError> {
        self.compile()
            .map(|_| ())
            .map_err(|reason| MaskError::BadFieldRule { index, reason })
    }

    pub(crate) fn compile(&self) -> Result<(String, CompiledRule), String> {
        if self.name.trim().is_empty() {
            return Err("empty name".into());
        }
        if self.kind.trim().is_empty() {
            return Err(format!("{}: empty kind", self.name));
        }
        if self.fields.is_empty() {
            return Err(format!("{}: no fields", self.name));
        }
        if self.columns.iter().any(|c| c.trim().is_empty()) {
            return Err(format!("{}: an empty column name", self.name));
        }
        if let Some(v) = &self.api_version
            && (v.is_empty()
                || v.starts_with('/')
                || v.ends_with('/')
                || v.matches('/').count() > 1)
        {
            return Err(format!(
                "{}: api_version {v:?} is not group/version, group/* or a core version",
                self.name
            ));
        }
        let selectors = self
            .fields
            .iter()
            .map(|f| parse_selector(f).map_err(|e| format!("{}: {e}", self.name)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            self.kind.clone(),
            CompiledRule {
                rule: format!("field.{}", self.name),
                api_version: self.api_version.clone(),
                selectors,
            },
        ))
    }
}

impl CompiledRule {
    fn matches_api_version(&self, object: &Map<String, Value>) -> bool {
        let (Some(want), Some(have)) = (
            self.api_version.as_deref(),
            object.get("apiVersion").and_then(Value::as_str),
        ) else {
            return true;
        };
        match want.strip_suffix("/*") {
            Some(group) => have.rsplit_once('/').is_some_and(|(g, _)| g == group),
            None => want == have,
        }
    }

    /// Masks the selected fields of `object` (of the rule's kind).
    pub(crate) fn apply(&self, object: &mut Map<String, Value>, s: &mut MaskSummary) {
        if !self.matches_api_version(object) {
            return;
        }
        for selector in &self.selectors {
            let Some((first, rest)) = selector.split_first() else {
                continue;
            };
            match first {
                Step::Key(k) => {
                    if let Some(v) = object.get_mut(k) {
                        select(v, rest, &self.rule, s);
                    }
                }
                Step::AnyKey => {
                    for v in object.values_mut() {
                        select(v, rest, &self.rule, s);
                    }
                }
                Step::AnyElement => {}
            }
        }
    }
}

fn select(value: &mut Value, steps: &[Step], rule: &str, s: &mut MaskSummary) {
    let Some((first, rest)) = steps.split_first() else {
        mask_leaves(value, rule, s);
        return;
    };
    match (first, value) {
        (Step::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get_mut(k) {
                select(v, rest, rule, s);
            }
        }
        (Step::AnyKey, Value::Object(map)) => {
            for v in map.values_mut() {
                select(v, rest, rule, s);
            }
        }
        (Step::AnyElement, Value::Array(items)) => {
            for v in items {
                select(v, rest, rule, s);
            }
        }
        _ => {}
    }
}

fn mask_leaves(value: &mut Value, rule: &str, s: &mut MaskSummary) {
    match value {
        Value::Null => {}
        Value::String(t) if t == PLACEHOLDER => {}
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            *value = Value::String(PLACEHOLDER.to_owned());
            s.add(rule);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_leaves(v, rule, s)),
        Value::Object(map) => map.values_mut().for_each(|v| mask_leaves(v, rule, s)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(api_version: Option<&str>, fields: &[&str]) -> CompiledRule {
        FieldRule {
            name: "vault".into(),
            api_version: api_version.map(str::to_owned),
            kind: "VaultStaticSecret".into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            columns: Vec::new(),
        }
        .compile()
        .unwrap()
        .1
    }

    fn apply(r: &CompiledRule, mut v: Value) -> (Value, u64) {
        let mut s = MaskSummary::new();
        r.apply(v.as_object_mut().unwrap(), &mut s);
        (v, s.count("field.vault"))
    }

    #[test]
    fn selectors_reach_keys_any_keys_and_elements() {
        let r = rule(
            None,
            &[
                "spec.password",
                "spec.credentials[*].value",
                "status.data.*",
            ],
        );
        let (v, n) = apply(
            &r,
            json!({"kind": "VaultStaticSecret", "spec": {"password": "p", "user": "u",
                "credentials": [{"name": "a", "value": "v1"}, {"name": "b", "value": 42}]},
                "status": {"data": {"x": "1", "y": {"deep": true, "none": null}}}}),
        );
        assert_eq!(v["spec"]["password"], PLACEHOLDER);
        assert_eq!(v["spec"]["user"], "u");
        assert_eq!(v["spec"]["credentials"][0]["value"], PLACEHOLDER);
        assert_eq!(v["spec"]["credentials"][1]["value"], PLACEHOLDER);
        assert_eq!(v["spec"]["credentials"][0]["name"], "a");
        assert_eq!(v["status"]["data"]["x"], PLACEHOLDER);
        assert_eq!(v["status"]["data"]["y"]["deep"], PLACEHOLDER);
        assert_eq!(v["status"]["data"]["y"]["none"], Value::Null);
        assert_eq!(n, 5);
        // idempotent
        let (again, n) = apply(&r, v.clone());
        assert_eq!((again, n), (v, 0));
    }

    #[test]
    fn api_version_narrows_and_a_missing_one_matches() {
        let r = rule(Some("secrets.hashicorp.com/*"), &["spec.password"]);
        let obj = |av: Option<&str>| {
            let mut v = json!({"kind": "VaultStaticSecret", "spec": {"password": "p"}});
            if let Some(av) = av {
                v["apiVersion"] = json!(av);
            }
            v
        };
        assert_eq!(apply(&r, obj(Some("secrets.hashicorp.com/v1beta1"))).1, 1);
        assert_eq!(apply(&r, obj(None)).1, 1);
        assert_eq!(apply(&r, obj(Some("example.com/v1"))).1, 0);
        let exact = rule(Some("secrets.hashicorp.com/v1"), &["spec.password"]);
        assert_eq!(
            apply(&exact, obj(Some("secrets.hashicorp.com/v1beta1"))).1,
            0
        );
        assert_eq!(apply(&exact, obj(Some("secrets.hashicorp.com/v1"))).1, 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad = |name: &str, kind: &str, av: Option<&str>, fields: &[&str]| {
            FieldRule {
                name: name.into(),
                api_version: av.map(str::to_owned),
                kind: kind.into(),
                fields: fields.iter().map(|f| (*f).to_owned()).collect(),
                columns: Vec::new(),
            }
            .validate(3)
            .unwrap_err()
            .to_string()
        };
        assert!(bad("", "K", None, &["a"]).contains("mask.field_rules[3]"));
        assert!(bad("n", "", None, &["a"]).contains("empty kind"));
        assert!(bad("n", "K", None, &[]).contains("no fields"));
        assert!(bad("n", "K", None, &["a..b"]).contains("empty step"));
        assert!(bad("n", "K", None, &["a[0]"]).contains("[*]"));
        assert!(bad("n", "K", Some("a/b/c"), &["a"]).contains("api_version"));
    }
}
