//! Server-side printing: `meta.k8s.io/v1` `Table` conversion with the columns kubectl shows per
//! kind (CRDs from their `additionalPrinterColumns`, evaluated with a small JSONPath subset), and
//! `PartialObjectMetadata`.

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// What a Table row's `object` carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

fn col(name: &str, ty: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    )
}

/// kubectl's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = m % 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{rem}h", h / 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    let y = h / (24 * 365);
    if y < 8 {
        let d = (h / 24) % 365;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{y}y")
}

fn age_of(ts: &Value, now: i64) -> Value {
    match ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => Value::String(human_duration(now - t.as_second())),
        None => Value::String("<unknown>".into()),
    }
}

fn str_or(v: &Value, default: &str) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Null => default.to_string(),
        Value::String(_) => default.to_string(),
        other => other.to_string(),
    }
}

fn join_or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join(",")
    }
}

fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.as_object() {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    join_or_none(parts)
}

/// Column definitions for a resource.
pub fn columns(res: &ResourceInfo) -> Vec<Value> {
    let s = |n: &str| col(n, "string", "", 0, "");
    let w = |n: &str| col(n, "string", "", 1, "");
    let i = |n: &str| col(n, "integer", "", 0, "");
    if res.custom {
        if res.printer_columns.is_empty() {
            return vec![name_col(), age_col()];
        }
        let mut v = vec![name_col()];
        for c in &res.printer_columns {
            v.push(col(
                &c.name,
                &c.type_,
                &c.format,
                c.priority,
                &c.description,
            ));
        }
        return v;
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => vec![
            name_col(),
            s("Ready"),
            s("Status"),
            s("Restarts"),
            age_col(),
            w("IP"),
            w("Node"),
            w("Nominated Node"),
            w("Readiness Gates"),
        ],
        ("", "namespaces") => vec![name_col(), s("Status"), age_col()],
        ("", "secrets") => vec![name_col(), s("Type"), i("Data"), age_col()],
        ("", "configmaps") => vec![name_col(), i("Data"), age_col()],
        ("", "services") => vec![
            name_col(),
            s("Type"),
            s("Cluster-IP"),
            s("External-IP"),
            s("Port(s)"),
            age_col(),
            w("Selector"),
        ],
        ("", "serviceaccounts") => vec![name_col(), i("Secrets"), age_col()],
        ("", "nodes") => vec![
            name_col(),
            s("Status"),
            s("Roles"),
            age_col(),
            s("Version"),
            w("Internal-IP"),
            w("OS-Image"),
            w("Kernel-Version"),
            w("Container-Runtime"),
        ],
        ("", "events") | ("events.k8s.io", "events") => {
            vec![
                s("Last Seen"),
                s("Type"),
                s("Reason"),
                s("Object"),
                s("Message"),
            ]
        }
        ("apps", "deployments") => vec![
            name_col(),
            s("Ready"),
            i("Up-to-date"),
            i("Available"),
            age_col(),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        ("apps", "replicasets") => vec![
            name_col(),
            i("Desired"),
            i("Current"),
            i("Ready"),
            age_col(),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        ("apps", "statefulsets") => vec![
            name_col(),
            s("Ready"),
            age_col(),
            w("Containers"),
            w("Images"),
        ],
        ("apps", "daemonsets") => vec![
            name_col(),
            i("Desired"),
            i("Current"),
            i("Ready"),
            i("Up-to-date"),
            i("Available"),
            s("Node Selector"),
            age_col(),
        ],
        ("batch", "jobs") => vec![
            name_col(),
            s("Status"),
            s("Completions"),
            s("Duration"),
            age_col(),
        ],
        ("batch", "cronjobs") => vec![
            name_col(),
            s("Schedule"),
            s("Timezone"),
            s("Suspend"),
            i("Active"),
            s("Last Schedule"),
            age_col(),
        ],
        ("rbac.authorization.k8s.io", "rolebindings")
        | ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            vec![
                name_col(),
                s("Role"),
                age_col(),
                w("Users"),
                w("Groups"),
                w("ServiceAccounts"),
            ]
        }
        ("rbac.authorization.k8s.io", _) | ("apiextensions.k8s.io", _) => {
            vec![name_col(), col("Created At", "date", "", 0, "")]
        }
        ("certificates.k8s.io", _) => vec![
            name_col(),
            age_col(),
            s("SignerName"),
            s("Requestor"),
            s("RequestedDuration"),
            s("Condition"),
        ],
        _ => vec![name_col(), age_col()],
    }
}

fn containers_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    (
        join_or_none(
            cs.iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_string())
                .collect(),
        ),
        join_or_none(
            cs.iter()
                .map(|c| c["image"].as_str().unwrap_or("").to_string())
                .collect(),
        ),
    )
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Cells of one row.
pub fn cells(res: &ResourceInfo, obj: &Value, now: i64) -> Vec<Value> {
    let md = &obj["metadata"];
    let name = json!(md["name"].as_str().unwrap_or_default());
    let age = age_of(&md["creationTimestamp"], now);
    let spec = &obj["spec"];
    let status = &obj["status"];
    if res.custom {
        if res.printer_columns.is_empty() {
            return vec![name, age];
        }
        let mut v = vec![name];
        for c in &res.printer_columns {
            let found = jsonpath(obj, &c.json_path).into_iter().next();
            let cell = match (found, c.type_.as_str()) {
                (None, _) => Value::Null,
                (Some(x), "date") => age_of(&x, now),
                (Some(Value::Array(a)), _) => {
                    json!(
                        a.iter()
                            .map(|x| str_or(x, ""))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }
                (Some(Value::Object(o)), _) => json!(Value::Object(o).to_string()),
                (Some(x), _) => x,
            };
            v.push(cell);
        }
        return v;
    }
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => {
            let cs = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = spec["containers"].as_array().map(Vec::len).unwrap_or(0);
            let ready = cs
                .iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = cs.iter().map(|c| int(&c["restartCount"])).sum();
            let mut phase = str_or(&status["phase"], "Pending");
            if md.get("deletionTimestamp").is_some() {
                phase = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!(restarts.to_string()),
                age,
                json!(str_or(&status["podIP"], "<none>")),
                json!(str_or(&spec["nodeName"], "<none>")),
                json!(str_or(&status["nominatedNodeName"], "<none>")),
                json!("<none>"),
            ]
        }
        ("", "namespaces") => vec![name, json!(str_or(&status["phase"], "Active")), age],
        ("", "secrets") => {
            let n = obj["data"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![name, json!(str_or(&obj["type"], "Opaque")), json!(n), age]
        }
        ("", "configmaps") => {
            let n = obj["data"].as_object().map(|m| m.len()).unwrap_or(0)
                + obj["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![name, json!(n), age]
        }
        ("", "services") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let base = format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    );
                    match p["nodePort"].as_i64() {
                        Some(np) => format!(
                            "{}:{np}/{}",
                            int(&p["port"]),
                            p["protocol"].as_str().unwrap_or("TCP")
                        ),
                        None => base,
                    }
                })
                .collect();
            let ext = spec["externalIPs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(str_or(&spec["type"], "ClusterIP")),
                json!(str_or(&spec["clusterIP"], "<none>")),
                json!(ext),
                json!(join_or_none(ports)),
                age,
                json!(selector_string(&spec["selector"])),
            ]
        }
        ("", "serviceaccounts") => {
            vec![
                name,
                json!(obj["secrets"].as_array().map(Vec::len).unwrap_or(0)),
                age,
            ]
        }
        ("", "nodes") => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let roles: Vec<String> = md["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect();
            let info = &status["nodeInfo"];
            let ip = status["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["type"] == "InternalIP")
                .map(|a| str_or(&a["address"], "<none>"))
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(join_or_none(roles)),
                age,
                json!(str_or(&info["kubeletVersion"], "")),
                json!(ip),
                json!(str_or(&info["osImage"], "<unknown>")),
                json!(str_or(&info["kernelVersion"], "<unknown>")),
                json!(str_or(&info["containerRuntimeVersion"], "<unknown>")),
            ]
        }
        ("", "events") => {
            let io = &obj["involvedObject"];
            let last = if obj["lastTimestamp"].is_string() {
                &obj["lastTimestamp"]
            } else {
                &obj["eventTime"]
            };
            vec![
                age_of(
                    if last.is_null() {
                        &md["creationTimestamp"]
                    } else {
                        last
                    },
                    now,
                ),
                json!(str_or(&obj["type"], "")),
                json!(str_or(&obj["reason"], "")),
                json!(format!(
                    "{}/{}",
                    io["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    io["name"].as_str().unwrap_or("")
                )),
                json!(str_or(&obj["message"], "")),
            ]
        }
        ("events.k8s.io", "events") => {
            let r = &obj["regarding"];
            vec![
                age_of(&md["creationTimestamp"], now),
                json!(str_or(&obj["type"], "")),
                json!(str_or(&obj["reason"], "")),
                json!(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    r["name"].as_str().unwrap_or("")
                )),
                json!(str_or(&obj["note"], "")),
            ]
        }
        ("apps", "deployments") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                json!(int(&status["updatedReplicas"])),
                json!(int(&status["availableReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(selector_string(&spec["selector"]["matchLabels"])),
            ]
        }
        ("apps", "replicasets") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(spec["replicas"].as_i64().unwrap_or(1)),
                json!(int(&status["replicas"])),
                json!(int(&status["readyReplicas"])),
                age,
                json!(c),
                json!(i),
                json!(selector_string(&spec["selector"]["matchLabels"])),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, i) = containers_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                age,
                json!(c),
                json!(i),
            ]
        }
        ("apps", "daemonsets") => vec![
            name,
            json!(int(&status["desiredNumberScheduled"])),
            json!(int(&status["currentNumberScheduled"])),
            json!(int(&status["numberReady"])),
            json!(int(&status["updatedNumberScheduled"])),
            json!(int(&status["numberAvailable"])),
            json!(selector_string(&spec["template"]["spec"]["nodeSelector"])),
            age,
        ],
        ("batch", "jobs") => {
            let completions = spec["completions"].as_i64().unwrap_or(1);
            let succeeded = int(&status["succeeded"]);
            let st = if succeeded >= completions {
                "Complete"
            } else {
                "Running"
            };
            vec![
                name,
                json!(st),
                json!(format!("{succeeded}/{completions}")),
                json!("0s"),
                age,
            ]
        }
        ("batch", "cronjobs") => vec![
            name,
            json!(str_or(&spec["schedule"], "")),
            json!(str_or(&spec["timeZone"], "<none>")),
            json!(spec["suspend"].as_bool().unwrap_or(false).to_string()),
            json!(status["active"].as_array().map(Vec::len).unwrap_or(0)),
            json!(if status["lastScheduleTime"].is_string() {
                age_of(&status["lastScheduleTime"], now)
            } else {
                json!("<none>")
            }),
            age,
        ],
        ("rbac.authorization.k8s.io", "rolebindings")
        | ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            let subj = obj["subjects"].as_array().cloned().unwrap_or_default();
            let pick = |k: &str| -> String {
                join_or_none(
                    subj.iter()
                        .filter(|s| s["kind"] == k)
                        .map(|s| match s["namespace"].as_str() {
                            Some(ns) if k == "ServiceAccount" => {
                                format!("{ns}/{}", s["name"].as_str().unwrap_or(""))
                            }
                            _ => s["name"].as_str().unwrap_or("").to_string(),
                        })
                        .collect(),
                )
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    obj["roleRef"]["kind"].as_str().unwrap_or(""),
                    obj["roleRef"]["name"].as_str().unwrap_or("")
                )),
                age,
                json!(pick("User")),
                json!(pick("Group")),
                json!(pick("ServiceAccount")),
            ]
        }
        ("rbac.authorization.k8s.io", _) | ("apiextensions.k8s.io", _) => {
            vec![name, md["creationTimestamp"].clone()]
        }
        ("certificates.k8s.io", _) => {
            let cond = status["conditions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["type"].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "Pending".into());
            vec![
                name,
                age,
                json!(str_or(&spec["signerName"], "")),
                json!(str_or(&spec["username"], "")),
                json!(
                    spec["expirationSeconds"]
                        .as_i64()
                        .map(human_duration)
                        .unwrap_or_else(|| "<none>".into())
                ),
                json!(cond),
            ]
        }
        _ => vec![name, age],
    }
}

/// PartialObjectMetadata of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"].clone(),
    })
}

/// One Table row.
pub fn row(res: &ResourceInfo, obj: &Value, now: i64, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(res, obj, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A tiny JSONPath evaluator: `.a.b`, `[n]`, `[*]`, `['key']` and `[?(@.k=="v")]` filters.
pub fn jsonpath(obj: &Value, path: &str) -> Vec<Value> {
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut cur: Vec<Value> = vec![obj.clone()];
    let bytes = p.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'.' && bytes[j] != b'[' {
                    j += 1;
                }
                let key = &p[start..j];
                if !key.is_empty() {
                    cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
                }
                i = j;
            }
            b'[' => {
                let Some(end) = p[i..].find(']').map(|e| e + i) else {
                    return vec![];
                };
                let inner = p[i + 1..end].trim();
                if inner == "*" {
                    cur = cur
                        .iter()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .collect();
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                    let f = f.trim().trim_start_matches('@').trim_start_matches('.');
                    let (k, want) = f.split_once("==").unwrap_or((f, ""));
                    let want = want.trim().trim_matches('"').trim_matches('\'');
                    let k = k.trim();
                    cur = cur
                        .iter()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter(|item| {
                            let mut x = item;
                            for part in k.split('.') {
                                x = &x[part];
                            }
                            match x {
                                Value::String(s) => s == want,
                                Value::Null => false,
                                other => *other == want,
                            }
                        })
                        .collect();
                } else if let Ok(n) = inner.parse::<usize>() {
                    cur = cur.iter().filter_map(|v| v.get(n).cloned()).collect();
                } else {
                    let key = inner.trim_matches('\'').trim_matches('"');
                    cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"n": 3}});
        assert_eq!(jsonpath(&o, ".spec.n"), vec![json!(3)]);
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(jsonpath(&o, ".status.conditions[0].type"), vec![json!("A")]);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3 * 3600), "3h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
