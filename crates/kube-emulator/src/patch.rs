//! Patch application: JSON patch (RFC 6902), JSON merge patch (RFC 7386), a strategic merge patch
//! that knows the merge keys common objects use (containers, env, ports, volumes, ... by key;
//! `$patch`, `$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList` directives) and falls
//! back to merge-patch semantics elsewhere, and server-side apply (merge of the applied fields).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Which patch flavour the Content-Type named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (also `+cbor`, served as YAML/JSON here)
    Apply,
}

impl PatchType {
    /// From a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Parses a body as JSON, falling back to YAML.
pub fn parse_json_or_yaml(body: &[u8]) -> ApiResult<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
    }
}

/// Applies a JSON patch document.
pub fn apply_json_patch(doc: &Value, patch: &[u8]) -> ApiResult<Value> {
    let p: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &p).map_err(|e| ApiError {
        code: http::StatusCode::UNPROCESSABLE_ENTITY,
        reason: "Invalid",
        message: format!("the server rejected our request due to an error in our request: {e}"),
        details: None,
    })?;
    Ok(out)
}

/// Applies a JSON merge patch.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// The merge key of a list field, judged from the field name and the elements.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "hostAliases" => Some("ip"),
        "readinessGates" => Some("conditionType"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => {
            if has("containerPort") {
                Some("containerPort")
            } else if has("port") {
                Some("port")
            } else {
                None
            }
        }
        "conditions" => Some("type"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ownerReferences" => Some("uid"),
        "taints" => Some("key"),
        "addresses" if has("type") && has("address") => Some("type"),
        _ => None,
    }
}

/// Primitive lists with a `merge` strategy (set union).
fn primitive_merge(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch.
pub fn apply_strategic(doc: &Value, patch: &Value) -> ApiResult<Value> {
    let mut out = doc.clone();
    match (&mut out, patch) {
        (Value::Object(o), Value::Object(p)) => merge_map(o, p)?,
        _ => {
            return Err(ApiError::bad_request(
                "strategic merge patch must be an object",
            ));
        }
    }
    Ok(out)
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) -> ApiResult<()> {
    if let Some(d) = patch.get("$patch").and_then(Value::as_str) {
        match d {
            "replace" => {
                let mut p = patch.clone();
                p.remove("$patch");
                strip_directives(&mut p);
                *target = p;
                return Ok(());
            }
            "delete" => {
                target.clear();
                return Ok(());
            }
            "merge" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown patch type: {other}"
                )));
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(arr)), Some(del)) = (target.get_mut(field), pv.as_array()) {
                arr.retain(|x| !del.contains(x));
            }
            continue;
        }
        match pv {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(k);
                    continue;
                }
                match target.get_mut(k) {
                    Some(Value::Object(tm)) => merge_map(tm, pm)?,
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, pm)?;
                        target.insert(k.clone(), Value::Object(fresh));
                    }
                }
            }
            Value::Array(pa) => {
                let merged = merge_list(k, target.get(k), pa)?;
                target.insert(k.clone(), merged);
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
        if let Some(order) = patch
            .get(&format!("$setElementOrder/{k}"))
            .and_then(Value::as_array)
            && let Some(Value::Array(arr)) = target.get_mut(k)
        {
            reorder(k, arr, order);
        }
    }
    Ok(())
}

fn reorder(field: &str, arr: &mut [Value], order: &[Value]) {
    let key = merge_key(field, arr);
    let pos = |v: &Value| -> usize {
        let id = match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        };
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k) == Some(&id),
                None => *o == id,
            })
            .unwrap_or(usize::MAX)
    };
    arr.sort_by_key(|v| pos(v));
}

fn strip_directives(m: &mut Map<String, Value>) {
    m.retain(|k, _| !k.starts_with('$'));
    for v in m.values_mut() {
        match v {
            Value::Object(o) => strip_directives(o),
            Value::Array(a) => {
                for x in a {
                    if let Value::Object(o) = x {
                        strip_directives(o);
                    }
                }
            }
            _ => {}
        }
    }
}

fn merge_list(field: &str, current: Option<&Value>, patch: &[Value]) -> ApiResult<Value> {
    let cur: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // `$patch: replace` as a list element replaces the whole list.
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let mut rest: Vec<Value> = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .collect();
        for r in &mut rest {
            if let Value::Object(o) = r {
                strip_directives(o);
            }
        }
        return Ok(Value::Array(rest));
    }
    if primitive_merge(field) && patch.iter().all(|p| !p.is_object()) {
        let mut out = cur;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let all: Vec<Value> = cur.iter().chain(patch.iter()).cloned().collect();
    let Some(key) = merge_key(field, &all) else {
        let mut p = patch.to_vec();
        for r in &mut p {
            if let Value::Object(o) = r {
                strip_directives(o);
            }
        }
        return Ok(Value::Array(p));
    };
    let mut out = cur;
    for p in patch {
        let Value::Object(pm) = p else { continue };
        let id = pm.get(key).cloned().unwrap_or(Value::Null);
        let idx = out.iter().position(|c| c.get(key) == Some(&id));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = idx {
                out.remove(i);
            }
            continue;
        }
        match idx {
            Some(i) => {
                if let Value::Object(cm) = &mut out[i] {
                    merge_map(cm, pm)?;
                }
            }
            None => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, pm)?;
                out.push(Value::Object(fresh));
            }
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let doc = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"}
        ]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "z", "env": [{"name": "B", "value": "2"}]}]}});
        let out = apply_strategic(&doc, &patch).unwrap();
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(out["spec"]["containers"][0]["image"], "z");
        assert_eq!(
            out["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn strategic_delete_directive() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        let out = apply_strategic(&doc, &patch).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
    }
}
