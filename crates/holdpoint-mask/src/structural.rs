//! Structural masking of a decoded Kubernetes object, by its `kind` (never by URL).
//!
//! Rules, applied wherever such an object appears (top level, list items, watch events, Table
//! rows, embedded objects, the last-applied annotation):
//!
//! | rule (summary key) | what |
//! |---|---|
//! | `secret.data` | every Secret `data` value becomes [`DATA_PLACEHOLDER`] (valid base64); keys stay |
//! | `secret.stringData` | every Secret `stringData` value becomes [`PLACEHOLDER`] |
//! | `last-applied` | the `kubectl.kubernetes.io/last-applied-configuration` annotation is parsed, masked with the same rules and written back; unparseable: replaced whole |
//! | `tokenrequest.token` | TokenRequest `status.token` |
//! | `csr.certificate` | CertificateSigningRequest `status.certificate` |
//! | `tokenreview.token` | TokenReview `spec.token` |
//! | `env.name` | literal `env[].value` of containers, init and ephemeral containers of Pods and pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, PodTemplate) whose name contains a configured pattern |
//! | `table.cell` | a `Table` cell equal to a value of the Secret in its row's `object` |
//! | `text.ID` | any string value or map key a text detector flags (see [`crate::detect`]) |
//!
//! Lists: `items` of any object are masked; items of a `FooList` without their own `kind` (as
//! the apiserver sends them) are masked as `Foo`. Watch events (`{"type", "object"}`) mask their
//! `object`. `PartialObjectMetadata[List]` carries only metadata: the annotation rule and the
//! text detectors cover it.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::{
    DATA_PLACEHOLDER, MaskConfig, MaskError, MaskSummary, NO_REVEAL, PLACEHOLDER, Reveal,
    detect::TextMasker,
};

/// The annotation kubectl writes on `apply` (holds the whole applied object, `stringData` too).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The compiled masking engine: cheap to share (`&self` everywhere), build it once per config.
#[derive(Debug)]
pub struct Masker {
    text: TextMasker,
    /// Lowercased env-name fragments.
    env_patterns: Vec<String>,
    /// Configured field rules, by kind.
    field_rules: std::collections::HashMap<String, Vec<crate::fields::CompiledRule>>,
    /// Lowercased `Table` column names whose cells are always masked (from field rules).
    table_columns: std::collections::HashSet<String>,
}

/// Where the pod spec of a kind is, as a path of object keys.
pub(crate) fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "PodTemplate" => &["template", "spec"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

fn get_path_mut<'a>(map: &'a mut Map<String, Value>, path: &[&str]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut v = map.get_mut(*first)?;
    for k in rest {
        v = v.as_object_mut()?.get_mut(*k)?;
    }
    Some(v)
}

/// Whether an object is a watch event: `type` and `object` and nothing else.
fn is_watch_event(map: &Map<String, Value>) -> bool {
    map.len() == 2
        && map.get("type").is_some_and(Value::is_string)
        && map.get("object").is_some_and(Value::is_object)
}

impl Masker {
    /// Compiles a configuration (validates it first).
    pub fn new(config: &MaskConfig) -> Result<Self, MaskError> {
        let text = TextMasker::new(config)?;
        let mut field_rules: std::collections::HashMap<String, Vec<_>> = Default::default();
        for (index, rule) in config.field_rules.iter().enumerate() {
            let (kind, compiled) = rule
                .compile()
                .map_err(|reason| MaskError::BadFieldRule { index, reason })?;
            field_rules.entry(kind).or_default().push(compiled);
        }
        let table_columns = config
            .field_rules
            .iter()
            .flat_map(|r| r.columns.iter().map(|c| c.trim().to_lowercase()))
            .collect();
        Ok(Self {
            text,
            field_rules,
            table_columns,
            env_patterns: config
                .env_name_patterns
                .iter()
                .map(|p| p.to_lowercase())
                .collect(),
        })
    }

    /// Whether field rules name Table columns to mask.
    pub(crate) fn has_table_columns(&self) -> bool {
        !self.table_columns.is_empty()
    }

    /// The indexes of a Table's columns (its `columnDefinitions`) whose cells are always
    /// masked.
    pub(crate) fn masked_columns(&self, definitions: Option<&Value>) -> Vec<usize> {
        if self.table_columns.is_empty() {
            return Vec::new();
        }
        definitions
            .and_then(Value::as_array)
            .map(|defs| {
                defs.iter()
                    .enumerate()
                    .filter(|(_, d)| {
                        d.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| self.table_columns.contains(&n.trim().to_lowercase()))
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether configured field rules name `kind` (the raw fast path leaves those objects to
    /// the structural walker).
    pub(crate) fn has_field_rules(&self, kind: &str) -> bool {
        !self.field_rules.is_empty() && self.field_rules.contains_key(kind)
    }

    /// The text detectors, for texts that are not objects (logs, exec output, event messages).
    pub fn text(&self) -> &TextMasker {
        &self.text
    }

    /// Masks a text (a ConfigMap value, a log line, an event message), replacing the secret
    /// parts.
    pub fn mask_text<'a>(&self, text: &'a str, summary: &mut MaskSummary) -> Cow<'a, str> {
        self.text.mask(text, summary)
    }

    /// Masks a decoded object (or list, watch event, Table...) in place and says what it masked.
    pub fn mask_value(&self, value: &mut Value) -> MaskSummary {
        let mut summary = MaskSummary::new();
        self.mask_value_into(value, &mut summary);
        summary
    }

    /// Like [`Masker::mask_value`], adding to an existing summary.
    pub fn mask_value_into(&self, value: &mut Value, summary: &mut MaskSummary) {
        self.walk(value, None, NO_REVEAL, summary);
    }

    /// Masks a decoded value in place, adding to `summary`: `kind_hint` is the kind of a value
    /// without its own `kind` (a list item, a patch body), and objects whose kind `reveal`
    /// names are left as they are (counted in [`MaskSummary::revealed`]).
    pub fn mask_value_with(
        &self,
        value: &mut Value,
        kind_hint: Option<&str>,
        reveal: &Reveal,
        summary: &mut MaskSummary,
    ) {
        self.walk(value, kind_hint, reveal, summary);
    }

    /// Masks one row of a `Table` (`{"cells": [...], "object": {...}}`) as it would be masked
    /// inside its Table: cells equal to a value of the row's Secret, then the row's contents.
    pub fn mask_table_row(&self, row: &mut Value, reveal: &Reveal, summary: &mut MaskSummary) {
        self.mask_table_row_with(row, &[], reveal, summary);
    }

    /// [`Masker::mask_table_row`], with the indexes of the columns whose cells are always
    /// masked (see [`crate::FieldRule::columns`]).
    pub(crate) fn mask_table_row_with(
        &self,
        row: &mut Value,
        columns: &[usize],
        reveal: &Reveal,
        summary: &mut MaskSummary,
    ) {
        if let Value::Object(map) = row {
            mask_column_cells(map, columns, summary);
            self.mask_row_cells(map, reveal, summary);
        }
        self.walk(row, None, reveal, summary);
    }

    /// Masks a body whose kind is known from elsewhere (the request's resource), for bodies
    /// that carry no `kind`: merge patches, strategic merge patches, apply bodies. A `kind` in
    /// the body still wins.
    pub fn mask_value_as(&self, value: &mut Value, kind: &str) -> MaskSummary {
        let mut summary = MaskSummary::new();
        self.walk(value, Some(kind), NO_REVEAL, &mut summary);
        summary
    }

    /// Masks a JSON patch (RFC 6902 array of operations) against an object of `kind`, for the
    /// record phase. Values written under a Secret's `/data` or `/stringData` are masked; a
    /// literal `…/env/N/value` is masked whatever the variable's name (the patch does not say
    /// it: fail closed); env entries and lists get the name rule; a whole-object `""` value is
    /// masked as `kind`; everything else gets the text detectors. Non-patch input is masked
    /// like any value.
    pub fn mask_json_patch(&self, patch: &mut Value, kind: &str) -> MaskSummary {
        let mut s = MaskSummary::new();
        let Value::Array(ops) = patch else {
            self.walk(patch, Some(kind), NO_REVEAL, &mut s);
            return s;
        };
        for op in ops {
            let Some(op) = op.as_object_mut() else {
                self.walk(op, None, NO_REVEAL, &mut s);
                continue;
            };
            let path = op
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if let Some(value) = op.get_mut("value") {
                self.mask_patch_value(&path, value, kind, &mut s);
            }
            for (k, v) in op.iter_mut() {
                if k != "value" {
                    self.walk(v, None, NO_REVEAL, &mut s);
                }
            }
        }
        s
    }

    fn mask_patch_value(&self, path: &str, value: &mut Value, kind: &str, s: &mut MaskSummary) {
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let is_index = |seg: &str| seg == "-" || seg.bytes().all(|b| b.is_ascii_digit());
        if path.is_empty() || path == "/" {
            self.walk(value, Some(kind), NO_REVEAL, s);
            return;
        }
        if kind == "Secret"
            && let Some(field @ ("data" | "stringData")) = segments.first().copied()
        {
            let (placeholder, rule) = if field == "data" {
                (DATA_PLACEHOLDER, "secret.data")
            } else {
                (PLACEHOLDER, "secret.stringData")
            };
            let mut wrapped = Map::new();
            if segments.len() == 1 {
                wrapped.insert(field.to_owned(), std::mem::take(value));
            } else {
                let mut inner = Map::new();
                inner.insert("k".to_owned(), std::mem::take(value));
                wrapped.insert(field.to_owned(), Value::Object(inner));
            }
            mask_secret(&mut wrapped, s);
            let masked = wrapped.remove(field).unwrap_or(Value::Null);
            *value = if segments.len() == 1 {
                match masked {
                    Value::Object(_) => masked,
                    // a non-object written over data is replaced whole
                    other => {
                        if other.as_str() != Some(placeholder) {
                            s.add(rule);
                        }
                        Value::String(placeholder.to_owned())
                    }
                }
            } else {
                masked.get("k").cloned().unwrap_or(Value::Null)
            };
            return;
        }
        let n = segments.len();
        let env_at = |i: usize| n > i && segments[n - 1 - i] == "env";
        if n >= 3 && segments[n - 1] == "value" && is_index(segments[n - 2]) && env_at(2) {
            if let Value::String(v) = value
                && v != PLACEHOLDER
            {
                *v = PLACEHOLDER.to_owned();
                s.add("env.name");
            }
            return;
        }
        if env_at(0) || (n >= 2 && is_index(segments[n - 1]) && env_at(1)) {
            // one env entry or a whole env list: wrap it as a pod to apply the name rule
            let env = match std::mem::take(value) {
                Value::Array(a) => a,
                other => vec![other],
            };
            let single = !env_at(0);
            let mut pod =
                serde_json::json!({"kind": "Pod", "spec": {"containers": [{"env": env}]}});
            self.walk(&mut pod, None, NO_REVEAL, s);
            let mut env = pod["spec"]["containers"][0]["env"].take();
            *value = if single {
                env.get_mut(0).map(Value::take).unwrap_or(Value::Null)
            } else {
                env
            };
            return;
        }
        self.walk(value, None, NO_REVEAL, s);
    }

    /// Whether an env var of this name has its literal value masked whatever the value.
    pub(crate) fn env_name_matches(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.env_patterns.iter().any(|p| lower.contains(p.as_str()))
    }

    fn walk(&self, value: &mut Value, kind_hint: Option<&str>, r: &Reveal, s: &mut MaskSummary) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(masked) = self.text.mask(text, s) {
                    *text = masked;
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.walk(item, None, r, s);
                }
            }
            Value::Object(map) => self.mask_object(map, kind_hint, r, s),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn mask_object(
        &self,
        map: &mut Map<String, Value>,
        kind_hint: Option<&str>,
        r: &Reveal,
        s: &mut MaskSummary,
    ) {
        if is_watch_event(map) {
            // no kind of its own: its `type` gets the detectors like any string
            self.mask_keys(map, s);
            for child in map.values_mut() {
                self.walk(child, None, r, s);
            }
            return;
        }
        let kind: Option<String> = map
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| kind_hint.map(str::to_owned));
        if let Some(k) = kind.as_deref()
            && r.is_revealed(k)
        {
            s.add_revealed(k);
            return;
        }
        self.mask_keys(map, s);
        match kind.as_deref() {
            Some("Secret") => mask_secret(map, s),
            Some("TokenRequest") => set_string(
                map,
                &["status", "token"],
                PLACEHOLDER,
                "tokenrequest.token",
                s,
            ),
            Some("CertificateSigningRequest") => set_string(
                map,
                &["status", "certificate"],
                // status.certificate is base64 bytes in JSON
                DATA_PLACEHOLDER,
                "csr.certificate",
                s,
            ),
            Some("TokenReview") => {
                set_string(map, &["spec", "token"], PLACEHOLDER, "tokenreview.token", s)
            }
            Some("Table") => self.mask_table_cells(map, r, s),
            Some(k) => {
                if let Some(path) = pod_spec_path(k)
                    && let Some(Value::Object(spec)) = get_path_mut(map, path)
                {
                    self.mask_pod_spec(spec, s);
                }
            }
            None => {}
        }
        if let Some(rules) = kind.as_deref().and_then(|k| self.field_rules.get(k)) {
            for rule in rules {
                rule.apply(map, s);
            }
        }
        self.mask_last_applied(map, r, s);
        let item_kind: Option<String> = kind
            .as_deref()
            .and_then(|k| k.strip_suffix("List"))
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        for (key, child) in map.iter_mut() {
            if key == "items"
                && let Value::Array(items) = child
            {
                for item in items {
                    self.walk(item, item_kind.as_deref(), r, s);
                }
                continue;
            }
            self.walk(child, None, r, s);
        }
    }

    /// Masks map keys a detector flags (rare; rebuilds the map only then).
    fn mask_keys(&self, map: &mut Map<String, Value>, s: &mut MaskSummary) {
        if !map.keys().any(|k| self.text.is_flagged(k)) {
            return;
        }
        let old = std::mem::take(map);
        for (k, v) in old {
            let k = self.text.mask(&k, s).into_owned();
            map.insert(k, v);
        }
    }

    fn mask_pod_spec(&self, spec: &mut Map<String, Value>, s: &mut MaskSummary) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let Some(Value::Array(containers)) = spec.get_mut(list) else {
                continue;
            };
            for c in containers {
                let Some(Value::Array(env)) = c.get_mut("env") else {
                    continue;
                };
                for var in env {
                    let Some(var) = var.as_object_mut() else {
                        continue;
                    };
                    let named = var
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| self.env_name_matches(n));
                    if named
                        && let Some(Value::String(v)) = var.get_mut("value")
                        && v != PLACEHOLDER
                    {
                        *v = PLACEHOLDER.to_owned();
                        s.add("env.name");
                    }
                    // values not matched by name are scanned by the detectors in the walk
                }
            }
        }
    }

    fn mask_last_applied(&self, map: &mut Map<String, Value>, r: &Reveal, s: &mut MaskSummary) {
        let Some(Value::Object(ann)) = get_path_mut(map, &["metadata", "annotations"]) else {
            return;
        };
        let Some(Value::String(text)) = ann.get_mut(LAST_APPLIED) else {
            return;
        };
        if let Some(masked) = self.mask_last_applied_text(text, r, s) {
            *text = masked;
        }
    }

    /// Masks the text of a `kubectl.kubernetes.io/last-applied-configuration` annotation: the
    /// JSON is parsed, masked with the same rules and written back; text that does not parse,
    /// or that masking would break, is replaced whole. `None`: nothing to change.
    pub(crate) fn mask_last_applied_text(
        &self,
        text: &str,
        r: &Reveal,
        s: &mut MaskSummary,
    ) -> Option<String> {
        let replacement = match serde_json::from_str::<Value>(text) {
            Ok(mut applied) => {
                let mut inner = MaskSummary::new();
                self.walk(&mut applied, None, r, &mut inner);
                let masked_any = !inner.is_empty();
                // revealed objects inside count where they are served, not again here
                let candidate: Cow<'_, str> = if !masked_any {
                    Cow::Borrowed(text)
                } else {
                    // serializing a Value cannot fail (string keys only)
                    let mut out =
                        serde_json::to_string(&applied).unwrap_or_else(|_| PLACEHOLDER.to_owned());
                    if text.ends_with('\n') {
                        out.push('\n');
                    }
                    Cow::Owned(out)
                };
                // a credential can span JSON strings in the serialized text (`"password":"…"`):
                // mask the text too (unless the object is revealed); if that breaks the JSON,
                // replace it whole
                let revealed = applied
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| r.is_revealed(k));
                let masked = if revealed {
                    candidate
                } else {
                    self.text.mask(&candidate, &mut inner)
                };
                if inner.is_empty() {
                    None
                } else {
                    s.merge(&inner);
                    if serde_json::from_str::<Value>(&masked).is_ok() {
                        Some(masked.into_owned())
                    } else {
                        Some(PLACEHOLDER.to_owned())
                    }
                }
            }
            Err(_) => (text != PLACEHOLDER).then(|| PLACEHOLDER.to_owned()),
        };
        if replacement.is_some() {
            s.add("last-applied");
        }
        replacement
    }

    /// Table cells equal to a value of the Secret embedded in the row (`includeObject=Object`),
    /// raw or base64-decoded, are masked (printer columns can show data fields). Other cells
    /// get the text detectors in the walk.
    fn mask_table_cells(&self, map: &mut Map<String, Value>, r: &Reveal, s: &mut MaskSummary) {
        let columns = self.masked_columns(map.get("columnDefinitions"));
        let Some(Value::Array(rows)) = map.get_mut("rows") else {
            return;
        };
        for row in rows {
            if let Some(row) = row.as_object_mut() {
                mask_column_cells(row, &columns, s);
                self.mask_row_cells(row, r, s);
            }
        }
    }

    fn mask_row_cells(&self, row: &mut Map<String, Value>, r: &Reveal, s: &mut MaskSummary) {
        if r.is_revealed("Secret") {
            return;
        }
        let secrets = row.get("object").map(secret_values).unwrap_or_default();
        if secrets.is_empty() {
            return;
        }
        let Some(Value::Array(cells)) = row.get_mut("cells") else {
            return;
        };
        for cell in cells {
            if let Value::String(c) = cell
                && c != PLACEHOLDER
                && secrets.iter().any(|v| v == c)
            {
                *c = PLACEHOLDER.to_owned();
                s.add("table.cell");
            }
        }
    }
}

/// Masks the cells of `columns` in a Table row.
fn mask_column_cells(row: &mut Map<String, Value>, columns: &[usize], s: &mut MaskSummary) {
    if columns.is_empty() {
        return;
    }
    let Some(Value::Array(cells)) = row.get_mut("cells") else {
        return;
    };
    for &i in columns {
        if let Some(cell) = cells.get_mut(i)
            && !cell.is_null()
            && cell.as_str() != Some(PLACEHOLDER)
        {
            *cell = Value::String(PLACEHOLDER.to_owned());
            s.add("table.column");
        }
    }
}

/// The values of a Secret object (raw and base64-decoded `data`, `stringData`), non-empty only.
fn secret_values(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if obj.get("kind").and_then(Value::as_str) != Some("Secret") {
        return out;
    }
    if let Some(Value::Object(data)) = obj.get("data") {
        for v in data.values().filter_map(Value::as_str) {
            if v.is_empty() || v == DATA_PLACEHOLDER {
                continue;
            }
            out.push(v.to_owned());
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v)
                && let Ok(text) = String::from_utf8(bytes)
                && !text.is_empty()
            {
                out.push(text);
            }
        }
    }
    if let Some(Value::Object(data)) = obj.get("stringData") {
        for v in data.values().filter_map(Value::as_str) {
            if !v.is_empty() && v != PLACEHOLDER {
                out.push(v.to_owned());
            }
        }
    }
    out
}

fn mask_secret(map: &mut Map<String, Value>, s: &mut MaskSummary) {
    for (field, placeholder, rule) in [
        ("data", DATA_PLACEHOLDER, "secret.data"),
        ("stringData", PLACEHOLDER, "secret.stringData"),
    ] {
        let Some(Value::Object(values)) = map.get_mut(field) else {
            continue;
        };
        for v in values.values_mut() {
            // any non-placeholder value (string, or a malformed non-string) is replaced
            if v.as_str() != Some(placeholder) {
                *v = Value::String(placeholder.to_owned());
                s.add(rule);
            }
        }
    }
}

fn set_string(
    map: &mut Map<String, Value>,
    path: &[&str],
    placeholder: &str,
    rule: &str,
    s: &mut MaskSummary,
) {
    if let Some(v) = get_path_mut(map, path)
        && !v.is_null()
        && v.as_str() != Some(placeholder)
    {
        *v = Value::String(placeholder.to_owned());
        s.add(rule);
    }
}
