//! Discovery documents: `/version`, legacy `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//! `/apis/{group}/{version}`, and aggregated discovery (`apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList`) for `/api` and `/apis`.

use serde_json::{Value, json};

use crate::resources::{GROUP_ORDER, ResourceInfo};

/// The version the emulator claims.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "emulationMajor": "1",
        "emulationMinor": "32",
        "gitVersion": "v1.32.0-kube-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Subresource description: (kind, group, version, verbs).
fn sub_meta(res: &ResourceInfo, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let same = |kind: &str, verbs: &[&'static str]| {
        (
            kind.to_string(),
            String::new(),
            String::new(),
            verbs.to_vec(),
        )
    };
    match sub {
        "status" => same(&res.kind, &["get", "patch", "update"]),
        "scale" => (
            "Scale".into(),
            "autoscaling".into(),
            "v1".into(),
            vec!["get", "patch", "update"],
        ),
        "log" => same("Pod", &["get"]),
        "exec" => same("PodExecOptions", &["create", "get"]),
        "attach" => same("PodAttachOptions", &["create", "get"]),
        "portforward" => same("PodPortForwardOptions", &["create", "get"]),
        "binding" => same("Binding", &["create"]),
        "eviction" => (
            "Eviction".into(),
            "policy".into(),
            "v1".into(),
            vec!["create"],
        ),
        "ephemeralcontainers" => same("Pod", &["get", "patch", "update"]),
        "proxy" => same(
            &format!("{}ProxyOptions", res.kind),
            &["create", "delete", "get", "patch", "update"],
        ),
        "token" => (
            "TokenRequest".into(),
            "authentication.k8s.io".into(),
            "v1".into(),
            vec!["create"],
        ),
        "finalize" => same(&res.kind, &["update"]),
        "approval" => same(&res.kind, &["get", "patch", "update"]),
        _ => same(&res.kind, &["get"]),
    }
}

/// Groups (with their versions) in discovery order.
pub fn groups(resources: &[ResourceInfo]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) => {
                if !vs.contains(&r.version) {
                    vs.push(r.version.clone())
                }
            }
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    out.sort_by_key(|(g, _)| {
        GROUP_ORDER
            .iter()
            .position(|x| x == g)
            .unwrap_or(usize::MAX)
    });
    for (_, vs) in &mut out {
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    out
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (lvl, n) = if let Some(b) = tail.strip_prefix("beta") {
        (2, b)
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, a)
    } else {
        (0, "0")
    };
    (lvl, major, n.parse().unwrap_or(0))
}

fn gv(group: &str, v: &str) -> String {
    if group.is_empty() {
        v.to_string()
    } else {
        format!("{group}/{v}")
    }
}

/// `/api`.
pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]
    })
}

fn group_obj(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": gv(name, v), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": {"groupVersion": gv(name, &versions[0]), "version": versions[0]},
    })
}

/// `/apis`.
pub fn api_group_list(resources: &[ResourceInfo]) -> Value {
    let gs: Vec<Value> = groups(resources)
        .iter()
        .map(|(g, vs)| group_obj(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `/apis/{group}`.
pub fn api_group(resources: &[ResourceInfo], group: &str) -> Option<Value> {
    let (g, vs) = groups(resources).into_iter().find(|(g, _)| g == group)?;
    let mut v = group_obj(&g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    for r in rs {
        let mut o = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            o["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            o["categories"] = json!(r.categories);
        }
        items.push(o);
        for s in &r.subresources {
            let (kind, g, v, verbs) = sub_meta(r, s);
            let mut o = json!({
                "name": format!("{}/{s}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !g.is_empty() {
                o["group"] = json!(g);
                o["version"] = json!(v);
            }
            items.push(o);
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(group, version), "resources": items}),
    )
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut o = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        o["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        o["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                let (kind, g, v, verbs) = sub_meta(r, s);
                let (g, v) = if kind == r.kind || g.is_empty() { (r.group.clone(), r.version.clone()) } else { (g, v) };
                json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": verbs})
            })
            .collect();
        o["subresources"] = json!(subs);
    }
    o
}

/// Aggregated discovery for `/api` (`legacy`) or `/apis`.
pub fn aggregated(resources: &[ResourceInfo], legacy: bool) -> Value {
    let gs: Vec<(String, Vec<String>)> = if legacy {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources)
    };
    let items: Vec<Value> = gs
        .iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = resources
                        .iter()
                        .filter(|r| r.group == *g && r.version == *v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            let mut md = json!({"creationTimestamp": null});
            if !g.is_empty() {
                md["name"] = json!(g);
            }
            json!({"metadata": md, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
