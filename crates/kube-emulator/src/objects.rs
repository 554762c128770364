//! Admission for writes: metadata on create (generateName, uid, creationTimestamp, generation),
//! per-kind defaults and validation, update rules (immutable metadata, status vs spec, generation
//! bumps) and the "controllers" that make workloads look healthy instantly (Pods Running,
//! Deployments available, CRDs Established, Services with a ClusterIP).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::store::Inner;

/// Current time as an RFC 3339 string with second precision.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::from_second(now_secs())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Current unix time in seconds.
pub fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Random suffix like the apiserver's generateName.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()
        .iter()
        .take(n)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_dns_label(s: &str) -> bool {
    is_dns_subdomain(s) && s.len() <= 63 && !s.contains('.')
}

/// Checks `kind`/`apiVersion` of a body against the resource and fills them in when missing.
pub fn check_type(res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let Some(m) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_av = res.api_version();
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) => {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if group != res.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
            m.insert("apiVersion".into(), json!(want_av));
        }
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(res.kind));
        }
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
        _ => {}
    }
    if !m.get("metadata").is_some_and(Value::is_object) {
        m.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// Fills metadata for a create and validates name/namespace. Returns the final name.
pub fn prepare_create(
    res: &ResourceInfo,
    obj: &mut Value,
    ns: &str,
    inner: &Inner,
    now: &str,
) -> ApiResult<String> {
    check_type(res, obj)?;
    let md = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    if res.namespaced {
        match md.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                md.insert("namespace".into(), json!(ns));
            }
        }
        if !inner.namespace_exists(ns) {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        if inner
            .table("/namespaces")
            .get(&(String::new(), ns.to_string()))
            .is_some_and(|n| n["metadata"].get("deletionTimestamp").is_some())
        {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.plural,
                md.get("name").and_then(Value::as_str).unwrap_or("")
            )));
        }
    } else {
        md.remove("namespace");
    }
    let mut name = md
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty()
        && let Some(gn) = md.get("generateName").and_then(Value::as_str)
        && !gn.is_empty()
    {
        name = format!("{gn}{}", random_suffix(5));
        md.insert("name".into(), json!(name));
    }
    if name.is_empty() {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            "",
            &[(
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    let label_only = matches!(res.plural.as_str(), "namespaces" | "services");
    let ok = if label_only {
        is_dns_label(&name)
    } else {
        is_dns_subdomain(&name)
    };
    let ok = ok
        || (res.group == "rbac.authorization.k8s.io" && !name.contains('/') && !name.contains('%'));
    if !ok {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            &name,
            &[(
                "metadata.name".into(),
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    if label_only { "label" } else { "subdomain" }
                ),
            )],
        ));
    }
    md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    md.insert("creationTimestamp".into(), json!(now));
    md.remove("resourceVersion");
    md.remove("deletionTimestamp");
    md.remove("selfLink");
    if obj.get("spec").is_some() || res.custom {
        obj["metadata"]["generation"] = json!(1);
    }
    defaults(res, obj, inner, now, true)?;
    Ok(name)
}

/// Merges an update onto the stored object: keeps immutable metadata, applies the status or main
/// resource rules, bumps generation, re-runs defaults and controllers.
pub fn prepare_update(
    res: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    sub: Option<&str>,
    inner: &Inner,
    now: &str,
) -> ApiResult<()> {
    check_type(res, new)?;
    let old_md = &old["metadata"];
    let name = old_md["name"].as_str().unwrap_or_default();
    if let Some(n) = new["metadata"]["name"].as_str()
        && !n.is_empty()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(n) = new["metadata"]["namespace"].as_str()
        && !n.is_empty()
        && old_md["namespace"].as_str().is_some_and(|o| o != n)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if sub == Some("status") {
        // Only the status changes.
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        *new = merged;
        return Ok(());
    }
    {
        let md = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            match old_md.get(k) {
                Some(v) => {
                    md.insert(k.into(), v.clone());
                }
                None => {
                    md.remove(k);
                }
            }
        }
    }
    if res.has_sub("status") || res.custom && res.subresources.contains(&"status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if (res.plural == "secrets" || res.plural == "configmaps")
        && old["immutable"].as_bool() == Some(true)
        && (old.get("data") != new.get("data")
            || old.get("binaryData") != new.get("binaryData")
            || new["immutable"].as_bool() != Some(true))
    {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            name,
            &[(
                "data".into(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            )],
        ));
    }
    let changed = |o: &Value, n: &Value| {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        strip(o) != strip(n)
    };
    if changed(old, new) && old_md.get("generation").is_some() {
        let g = old_md["generation"].as_i64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    defaults(res, new, inner, now, false)
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if !m.contains_key(k) || m[k].is_null() {
        m.insert(k.into(), v);
    }
}

fn obj_mut<'a>(v: &'a mut Value, k: &str) -> &'a mut Map<String, Value> {
    if !v[k].is_object() {
        v[k] = json!({});
    }
    v[k].as_object_mut().expect("just set to an object")
}

fn require(res: &ResourceInfo, name: &str, causes: &mut [(String, String)]) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&res.group, &res.kind, name, causes))
    }
}

fn default_containers(spec: &mut Value, path: &str, causes: &mut Vec<(String, String)>) {
    if spec["containers"].as_array().is_none_or(|a| a.is_empty()) {
        causes.push((format!("{path}.containers"), "Required value".into()));
        return;
    }
    for key in ["containers", "initContainers"] {
        let Some(cs) = spec[key].as_array_mut() else {
            continue;
        };
        for (i, c) in cs.iter_mut().enumerate() {
            let Some(m) = c.as_object_mut() else { continue };
            if m.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push((format!("{path}.{key}[{i}].name"), "Required value".into()));
            }
            let image = m
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if image.is_empty() {
                causes.push((format!("{path}.{key}[{i}].image"), "Required value".into()));
            }
            let latest =
                !image.rsplit('/').next().unwrap_or("").contains(':') || image.ends_with(":latest");
            set_default(
                m,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(m, "terminationMessagePolicy", json!("File"));
            set_default(m, "resources", json!({}));
            if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(pm) = p.as_object_mut() {
                        set_default(pm, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    if let Some(m) = spec.as_object_mut() {
        set_default(m, "restartPolicy", json!("Always"));
        set_default(m, "terminationGracePeriodSeconds", json!(30));
        set_default(m, "dnsPolicy", json!("ClusterFirst"));
        set_default(m, "securityContext", json!({}));
        set_default(m, "schedulerName", json!("default-scheduler"));
    }
}

fn pod_status(pod: &Value, now: &str) -> Value {
    let idx = pod["metadata"]["uid"]
        .as_str()
        .map(|u| {
            u.bytes()
                .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32))
        })
        .unwrap_or(0);
    let ip = format!("10.244.{}.{}", (idx >> 8) % 250, idx % 250 + 2);
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or("");
            json!({
                "name": c["name"],
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image,
                "imageID": format!("docker.io/library/{image}@sha256:{}", "0".repeat(64)),
                "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                "started": true,
            })
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": "172.18.0.2",
        "hostIPs": [{"ip": "172.18.0.2"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    })
}

fn workload_status(res: &ResourceInfo, obj: &Value, now: &str) -> Value {
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": msg});
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    match res.plural.as_str() {
        "deployments" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                cond("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                cond("Progressing", "NewReplicaSetAvailable", &format!("ReplicaSet \"{name}\" has successfully progressed.")),
            ],
        }),
        "statefulsets" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": format!("{name}-1"),
            "updateRevision": format!("{name}-1"),
            "collisionCount": 0,
        }),
        "replicasets" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }),
        "daemonsets" => json!({
            "observedGeneration": generation,
            "currentNumberScheduled": 1,
            "desiredNumberScheduled": 1,
            "numberAvailable": 1,
            "numberMisscheduled": 0,
            "numberReady": 1,
            "updatedNumberScheduled": 1,
        }),
        _ => json!({}),
    }
}

/// Per-kind defaults, validation and instant "controllers".
fn defaults(
    res: &ResourceInfo,
    obj: &mut Value,
    inner: &Inner,
    now: &str,
    create: bool,
) -> ApiResult<()> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut causes = Vec::new();
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            obj_mut(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            if obj["metadata"].get("deletionTimestamp").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
            obj_mut(&mut obj["metadata"], "labels")
                .insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        ("", "pods") => {
            let spec = &mut obj["spec"];
            default_containers(spec, "spec", &mut causes);
            require(res, &name, &mut causes)?;
            if let Some(m) = spec.as_object_mut() {
                set_default(m, "serviceAccountName", json!("default"));
                let sa = m["serviceAccountName"].clone();
                set_default(m, "serviceAccount", sa);
                set_default(m, "nodeName", json!("emulator-node"));
                set_default(m, "enableServiceLinks", json!(true));
                set_default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
                set_default(m, "priority", json!(0));
            }
            if create {
                obj["status"] = pod_status(obj, now);
            }
        }
        ("", "secrets") => {
            let m = obj.as_object_mut().expect("object");
            set_default(m, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = obj_mut(obj, "data");
                for (k, v) in sd {
                    data.insert(k, json!(STANDARD.encode(v.as_str().unwrap_or_default())));
                }
            }
            if let Some(data) = obj["data"].as_object() {
                for (k, v) in data {
                    if v.as_str().is_none_or(|s| STANDARD.decode(s).is_err()) {
                        causes.push((
                            format!("data[{k}]"),
                            "Invalid value: illegal base64 data".into(),
                        ));
                    }
                }
            }
            require(res, &name, &mut causes)?;
        }
        ("", "services") => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
            if spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                let n = inner.rv % 60_000;
                spec.insert(
                    "clusterIP".into(),
                    json!(format!("10.96.{}.{}", n / 250, n % 250 + 2)),
                );
            }
            let cip = spec["clusterIP"].clone();
            set_default(spec, "clusterIPs", json!([cip]));
            if !headless {
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            }
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            let node_ports = matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for (i, p) in ports.iter_mut().enumerate() {
                    if let Some(pm) = p.as_object_mut() {
                        set_default(pm, "protocol", json!("TCP"));
                        let port = pm.get("port").cloned().unwrap_or(Value::Null);
                        if port.is_null() {
                            causes.push((format!("spec.ports[{i}].port"), "Required value".into()));
                        }
                        set_default(pm, "targetPort", port);
                        if node_ports {
                            set_default(
                                pm,
                                "nodePort",
                                json!(30000 + (inner.rv % 2000) as i64 + i as i64),
                            );
                        }
                    }
                }
            }
            if !obj["status"].is_object() {
                obj["status"] = json!({"loadBalancer": {}});
            }
            require(res, &name, &mut causes)?;
        }
        ("", "nodes") if create && !obj["status"].is_object() => {
            obj["status"] = json!({
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Emulated Linux", "kernelVersion": "6.0.0", "containerRuntimeVersion": "containerd://1.7.0", "architecture": "amd64", "operatingSystem": "linux"},
                "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            });
        }
        ("apps", "deployments" | "statefulsets" | "replicasets" | "daemonsets") => {
            let spec = obj_mut(obj, "spec");
            if res.plural != "daemonsets" {
                set_default(spec, "replicas", json!(1));
            }
            if !spec.get("selector").is_some_and(Value::is_object) {
                causes.push(("spec.selector".into(), "Required value".into()));
            }
            let tpl = &mut obj["spec"]["template"]["spec"];
            default_containers(tpl, "spec.template.spec", &mut causes);
            require(res, &name, &mut causes)?;
            if res.plural == "deployments" {
                let spec = obj_mut(obj, "spec");
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                let anns = obj_mut(&mut obj["metadata"], "annotations");
                let rev = anns
                    .get("deployment.kubernetes.io/revision")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(1);
                anns.insert(
                    "deployment.kubernetes.io/revision".into(),
                    json!(rev.to_string()),
                );
            }
            obj["status"] = workload_status(res, obj, now);
        }
        ("batch", "jobs") => {
            let tpl = &mut obj["spec"]["template"]["spec"];
            default_containers(tpl, "spec.template.spec", &mut causes);
            require(res, &name, &mut causes)?;
            let completions = obj["spec"]["completions"].as_i64().unwrap_or(1);
            let spec = obj_mut(obj, "spec");
            set_default(spec, "completions", json!(completions));
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            if create {
                obj["status"] = json!({
                    "startTime": now, "completionTime": now, "succeeded": completions, "ready": 0, "terminating": 0,
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"},
                        {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
                    ],
                });
            }
        }
        ("batch", "cronjobs") => {
            if obj["spec"]["schedule"].as_str().is_none_or(str::is_empty) {
                causes.push(("spec.schedule".into(), "Required value".into()));
            }
            require(res, &name, &mut causes)?;
            let spec = obj_mut(obj, "spec");
            set_default(spec, "suspend", json!(false));
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            if !obj["status"].is_object() {
                obj["status"] = json!({});
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let spec = &obj["spec"];
            let group = spec["group"].as_str().unwrap_or("");
            let plural = spec["names"]["plural"].as_str().unwrap_or("");
            if group.is_empty() {
                causes.push(("spec.group".into(), "Required value".into()));
            }
            if plural.is_empty() {
                causes.push(("spec.names.plural".into(), "Required value".into()));
            }
            if spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
                causes.push(("spec.names.kind".into(), "Required value".into()));
            }
            if spec["versions"].as_array().is_none_or(|v| v.is_empty()) {
                causes.push((
                    "spec.versions".into(),
                    "Invalid value: must have exactly one version marked as storage version".into(),
                ));
            }
            if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
                causes.push((
                    "spec.scope".into(),
                    "Unsupported value: supported values: \"Cluster\", \"Namespaced\"".into(),
                ));
            }
            if causes.is_empty() && name != format!("{plural}.{group}") {
                causes.push((
                    "metadata.name".into(),
                    format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                ));
            }
            require(res, &name, &mut causes)?;
            let mut accepted = spec["names"].clone();
            if let Some(a) = accepted.as_object_mut() {
                let singular = a
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase();
                set_default(a, "singular", json!(singular));
                let lk = a
                    .get("kind")
                    .and_then(Value::as_str)
                    .map(|k| format!("{k}List"))
                    .unwrap_or_default();
                set_default(a, "listKind", json!(lk));
            }
            let storage: Vec<Value> = spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect();
            obj["spec"]["names"] = accepted.clone();
            let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
            obj["status"] = json!({
                "conditions": [
                    cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                    cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
                "acceptedNames": accepted,
                "storedVersions": storage,
            });
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            if obj["spec"]["request"].as_str().is_none_or(str::is_empty) {
                causes.push(("spec.request".into(), "Required value".into()));
            }
            if obj["spec"]["signerName"].as_str().is_none_or(str::is_empty) {
                causes.push(("spec.signerName".into(), "Required value".into()));
            }
            require(res, &name, &mut causes)?;
            if create {
                obj["spec"]["username"] = json!("kubernetes-admin");
                obj["spec"]["groups"] = json!(["kubeadm:cluster-admins", "system:authenticated"]);
                if !obj["status"].is_object() {
                    obj["status"] = json!({});
                }
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            if !obj["roleRef"].is_object() {
                causes.push(("roleRef.name".into(), "Required value".into()));
            }
            require(res, &name, &mut causes)?;
        }
        _ => {}
    }
    Ok(())
}

/// Builds an `autoscaling/v1` Scale for a workload.
pub fn scale_of(res: &ResourceInfo, obj: &Value) -> Value {
    let md = &obj["metadata"];
    let (spec_r, status_r, selector) = if let Some((sp, st, sel)) = &res.scale_paths {
        let first = |p: &str| crate::table::jsonpath(obj, p).into_iter().next();
        (
            first(sp).and_then(|v| v.as_i64()).unwrap_or(0),
            first(st).and_then(|v| v.as_i64()).unwrap_or(0),
            if sel.is_empty() {
                None
            } else {
                first(sel).and_then(|v| v.as_str().map(String::from))
            },
        )
    } else {
        let sel = obj["spec"]["selector"]["matchLabels"].as_object().map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        });
        (
            obj["spec"]["replicas"].as_i64().unwrap_or(1),
            obj["status"]["replicas"].as_i64().unwrap_or(0),
            sel,
        )
    };
    let mut status = json!({"replicas": status_r});
    if let Some(s) = selector {
        status["selector"] = json!(s);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": {"replicas": spec_r},
        "status": status,
    })
}

/// Writes `replicas` into a workload (or a CR's specReplicasPath).
pub fn set_replicas(res: &ResourceInfo, obj: &mut Value, replicas: i64) {
    let path = res
        .scale_paths
        .as_ref()
        .map(|(sp, _, _)| sp.clone())
        .unwrap_or_else(|| ".spec.replicas".into());
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur[*p] = json!(replicas);
        } else {
            if !cur[*p].is_object() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
    }
}
