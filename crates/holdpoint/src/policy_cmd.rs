//! `holdpoint policy check` and `holdpoint policy explain`: validate a policy file, and show
//! which rule a request would meet and why, without sending anything.
//!
//! `explain` takes the request either kubectl-style (`VERB RESOURCE [NAME] [-n NS]`, e.g.
//! `delete namespace prod`, `scale deployment web -n prod`, `exec web-0 -n demo`) or raw
//! (`METHOD /path?query`), turns it into a method and path, and classifies that with
//! `kube-request` exactly as the gateway would.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use holdpoint_policy::{Evaluation, Explanation, Freeze, Policy, Request, Subject, Verdict};
use http::Method;
use kube_request::{DryRun, RequestInfo, classify};

/// Loads a policy file, or the embedded default policy when `file` is `None`.
pub fn load(file: Option<&Path>) -> anyhow::Result<Policy> {
    match file {
        None => Ok(Policy::default_for_agents()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read policy file {}", path.display()))?;
            Policy::from_yaml(&text).with_context(|| format!("policy file {}", path.display()))
        }
    }
}

/// The caller and circumstances `explain` assumes.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// Username.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Authenticator name.
    pub authenticator: String,
    /// The time to evaluate at (default now).
    pub at: jiff::Timestamp,
    /// The object being written (for CEL conditions).
    pub object: Option<serde_json::Value>,
    /// A freeze in force.
    pub freeze: Option<Freeze>,
}

/// A request turned into what the gateway would see.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// HTTP method.
    pub method: Method,
    /// Raw path.
    pub path: String,
    /// Raw query.
    pub query: Option<String>,
}

struct Known {
    names: &'static [&'static str],
    resource: &'static str,
    group: &'static str,
    version: &'static str,
    namespaced: bool,
}

const fn k(
    names: &'static [&'static str],
    resource: &'static str,
    group: &'static str,
    version: &'static str,
    namespaced: bool,
) -> Known {
    Known {
        names,
        resource,
        group,
        version,
        namespaced,
    }
}

/// The resources kubectl users name most, with their short names.
const KNOWN: &[Known] = &[
    k(&["pods", "pod", "po"], "pods", "", "v1", true),
    k(&["services", "service", "svc"], "services", "", "v1", true),
    k(
        &["configmaps", "configmap", "cm"],
        "configmaps",
        "",
        "v1",
        true,
    ),
    k(&["secrets", "secret"], "secrets", "", "v1", true),
    k(
        &["serviceaccounts", "serviceaccount", "sa"],
        "serviceaccounts",
        "",
        "v1",
        true,
    ),
    k(
        &["namespaces", "namespace", "ns"],
        "namespaces",
        "",
        "v1",
        false,
    ),
    k(&["nodes", "node", "no"], "nodes", "", "v1", false),
    k(
        &["persistentvolumeclaims", "persistentvolumeclaim", "pvc"],
        "persistentvolumeclaims",
        "",
        "v1",
        true,
    ),
    k(
        &["persistentvolumes", "persistentvolume", "pv"],
        "persistentvolumes",
        "",
        "v1",
        false,
    ),
    k(&["events", "event", "ev"], "events", "", "v1", true),
    k(&["endpoints", "ep"], "endpoints", "", "v1", true),
    k(
        &["deployments", "deployment", "deploy"],
        "deployments",
        "apps",
        "v1",
        true,
    ),
    k(
        &["statefulsets", "statefulset", "sts"],
        "statefulsets",
        "apps",
        "v1",
        true,
    ),
    k(
        &["daemonsets", "daemonset", "ds"],
        "daemonsets",
        "apps",
        "v1",
        true,
    ),
    k(
        &["replicasets", "replicaset", "rs"],
        "replicasets",
        "apps",
        "v1",
        true,
    ),
    k(&["jobs", "job"], "jobs", "batch", "v1", true),
    k(
        &["cronjobs", "cronjob", "cj"],
        "cronjobs",
        "batch",
        "v1",
        true,
    ),
    k(
        &["ingresses", "ingress", "ing"],
        "ingresses",
        "networking.k8s.io",
        "v1",
        true,
    ),
    k(
        &["networkpolicies", "networkpolicy", "netpol"],
        "networkpolicies",
        "networking.k8s.io",
        "v1",
        true,
    ),
    k(
        &["roles", "role"],
        "roles",
        "rbac.authorization.k8s.io",
        "v1",
        true,
    ),
    k(
        &["rolebindings", "rolebinding"],
        "rolebindings",
        "rbac.authorization.k8s.io",
        "v1",
        true,
    ),
    k(
        &["clusterroles", "clusterrole"],
        "clusterroles",
        "rbac.authorization.k8s.io",
        "v1",
        false,
    ),
    k(
        &["clusterrolebindings", "clusterrolebinding"],
        "clusterrolebindings",
        "rbac.authorization.k8s.io",
        "v1",
        false,
    ),
    k(
        &[
            "customresourcedefinitions",
            "customresourcedefinition",
            "crd",
            "crds",
        ],
        "customresourcedefinitions",
        "apiextensions.k8s.io",
        "v1",
        false,
    ),
    k(
        &[
            "certificatesigningrequests",
            "certificatesigningrequest",
            "csr",
        ],
        "certificatesigningrequests",
        "certificates.k8s.io",
        "v1",
        false,
    ),
    k(
        &["storageclasses", "storageclass", "sc"],
        "storageclasses",
        "storage.k8s.io",
        "v1",
        false,
    ),
    k(
        &["poddisruptionbudgets", "poddisruptionbudget", "pdb"],
        "poddisruptionbudgets",
        "policy",
        "v1",
        true,
    ),
    k(
        &["horizontalpodautoscalers", "horizontalpodautoscaler", "hpa"],
        "horizontalpodautoscalers",
        "autoscaling",
        "v2",
        true,
    ),
    k(
        &["leases", "lease"],
        "leases",
        "coordination.k8s.io",
        "v1",
        true,
    ),
];

/// Parses `METHOD /path?query` or a kubectl-style request into a method, path and query.
pub fn parse_request(args: &[String], dry_run: bool) -> anyhow::Result<ParsedRequest> {
    let mut parsed = if args.len() == 2
        && args[1].starts_with('/')
        && !args[0].is_empty()
        && args[0].bytes().all(|b| b.is_ascii_uppercase())
    {
        let method = Method::from_bytes(args[0].as_bytes()).context("invalid HTTP method")?;
        let (path, query) = match args[1].split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (args[1].clone(), None),
        };
        ParsedRequest {
            method,
            path,
            query,
        }
    } else {
        parse_kubectl(args)?
    };
    if dry_run {
        parsed.query = Some(match parsed.query {
            Some(q) if !q.is_empty() => format!("{q}&dryRun=All"),
            _ => "dryRun=All".into(),
        });
    }
    Ok(parsed)
}

fn parse_kubectl(args: &[String]) -> anyhow::Result<ParsedRequest> {
    let mut namespace: Option<String> = None;
    let mut subresource: Option<String> = None;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-n" || a == "--namespace" {
            namespace = Some(it.next().context("-n needs a namespace")?.clone());
        } else if let Some(ns) = a.strip_prefix("--namespace=") {
            namespace = Some(ns.to_owned());
        } else if let Some(s) = a.strip_prefix("--subresource=") {
            subresource = Some(s.to_owned());
        } else if a.starts_with('-') {
            bail!("unknown option {a:?} in the request (use -n NS, --subresource=S)");
        } else {
            positional.push(a.as_str());
        }
    }
    let Some((&verb, rest)) = positional.split_first() else {
        bail!("no request given: use `VERB RESOURCE [NAME] [-n NS]` or `METHOD /path`");
    };
    // pod-only verbs: `exec NAME`, `exec pod/NAME`
    let pod_sub = match verb {
        "exec" => Some("exec"),
        "attach" => Some("attach"),
        "port-forward" => Some("portforward"),
        "logs" | "log" => Some("log"),
        _ => None,
    };
    let (kind, name): (&str, Option<&str>) = if let Some(sub) = pod_sub {
        subresource.get_or_insert_with(|| sub.to_owned());
        let target = rest.first().context("which pod?")?;
        match target.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => ("pods", Some(*target)),
        }
    } else {
        let target = rest.first().context("which resource?")?;
        match target.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (*target, rest.get(1).copied()),
        }
    };
    let (resource, group, version, namespaced) = resolve_kind(kind, namespace.is_some());
    if verb == "scale" {
        subresource.get_or_insert_with(|| "scale".to_owned());
    }
    let (method, query, needs_name) = match verb {
        "get" | "describe" => (Method::GET, None, false),
        "list" => (Method::GET, None, false),
        "watch" => (Method::GET, Some("watch=1".to_owned()), false),
        "create" => (Method::POST, None, false),
        "update" | "replace" => (Method::PUT, None, true),
        "patch" | "apply" | "scale" | "label" | "annotate" | "edit" | "set" => {
            (Method::PATCH, None, true)
        }
        "delete" => (Method::DELETE, None, true),
        "deletecollection" => (Method::DELETE, None, false),
        "exec" | "attach" | "port-forward" => (Method::POST, None, true),
        "logs" | "log" => (Method::GET, None, true),
        other => bail!(
            "unknown verb {other:?}: use get, list, watch, create, update, patch, apply, scale, delete, deletecollection, exec, attach, port-forward, logs, or the raw form METHOD /path"
        ),
    };
    if needs_name && name.is_none() {
        bail!("{verb} needs a NAME");
    }
    if verb == "deletecollection" && name.is_some() {
        bail!("deletecollection takes no NAME");
    }
    let name = if verb == "create" && subresource.is_none() {
        None // a create names its object in the body
    } else {
        name
    };
    let mut path = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    if namespaced {
        let ns = namespace.as_deref().unwrap_or("default");
        write!(path, "/namespaces/{ns}")?;
    }
    write!(path, "/{resource}")?;
    if let Some(n) = name {
        write!(path, "/{n}")?;
    }
    if let Some(s) = &subresource {
        if name.is_none() {
            bail!("a subresource needs a NAME");
        }
        write!(path, "/{s}")?;
    }
    Ok(ParsedRequest {
        method,
        path,
        query,
    })
}

/// `(resource, group, version, namespaced)` for a kubectl resource name: a known name or
/// short name, or `resource.group` (version `v1`; namespaced when a namespace was given).
fn resolve_kind(kind: &str, namespace_given: bool) -> (String, String, String, bool) {
    let lower = kind.to_ascii_lowercase();
    if let Some(known) = KNOWN.iter().find(|k| k.names.contains(&lower.as_str())) {
        return (
            known.resource.into(),
            known.group.into(),
            known.version.into(),
            known.namespaced,
        );
    }
    match lower.split_once('.') {
        Some((resource, group)) => {
            if let Some(known) = KNOWN
                .iter()
                .find(|k| k.group == group && k.names.contains(&resource))
            {
                return (
                    known.resource.into(),
                    known.group.into(),
                    known.version.into(),
                    known.namespaced,
                );
            }
            (resource.into(), group.into(), "v1".into(), namespace_given)
        }
        None => (lower, String::new(), "v1".into(), namespace_given),
    }
}

/// Classifies and explains a request. Returns the explanation and the classification.
pub fn explain(
    policy: &Policy,
    parsed: &ParsedRequest,
    options: &ExplainOptions,
) -> anyhow::Result<(Explanation, RequestInfo, bool)> {
    let info = classify(&parsed.method, &parsed.path, parsed.query.as_deref())
        .map_err(|e| anyhow::anyhow!("the gateway would refuse this path: {e}"))?;
    let dry_run = DryRun::for_request(&parsed.method, parsed.query.as_deref(), false).is_dry_run();
    let request = Request::new(
        Subject {
            username: &options.user,
            groups: &options.groups,
            authenticator: &options.authenticator,
        },
        &info,
        dry_run,
        options.at,
    )
    .with_object(options.object.as_ref())
    .with_freeze(options.freeze.as_ref());
    Ok((policy.explain(&request), info, dry_run))
}

fn friendly(d: std::time::Duration) -> String {
    jiff::SignedDuration::try_from(d)
        .map(|s| format!("{s:#}"))
        .unwrap_or_else(|_| format!("{d:?}"))
}

/// One line for the final answer.
pub fn describe(e: &Evaluation) -> String {
    match &e.verdict {
        Verdict::Allow => format!("ALLOW (rule {:?})", e.rule),
        Verdict::Deny { message } => format!("DENY (rule {:?}): {message}", e.rule),
        Verdict::Approve(a) => {
            let mut who: Vec<String> = a
                .reviewers
                .users
                .iter()
                .map(|u| format!("user {u}"))
                .collect();
            who.extend(a.reviewers.groups.iter().map(|g| format!("group {g}")));
            format!(
                "HOLD for approval (rule {:?}): {} of [{}] must approve; pending for {}, caller held {}, mode {}",
                e.rule,
                a.quorum,
                who.join(", "),
                friendly(a.ttl),
                friendly(a.hold),
                match a.mode {
                    holdpoint_policy::ApprovalMode::Execute => "execute",
                    holdpoint_policy::ApprovalMode::Grant => "grant",
                }
            )
        }
    }
}

/// The text `holdpoint policy explain` prints.
pub fn render(
    source: &str,
    parsed: &ParsedRequest,
    info: &RequestInfo,
    dry_run: bool,
    options: &ExplainOptions,
    e: &Explanation,
) -> String {
    let mut out = String::new();
    let target = match &parsed.query {
        Some(q) => format!("{}?{q}", parsed.path),
        None => parsed.path.clone(),
    };
    let _ = writeln!(out, "request:  {} {target}", parsed.method);
    if info.is_resource_request {
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        let _ = writeln!(
            out,
            "          verb {:?}, apiGroup {:?}, resource {resource:?}, namespace {:?}, name {:?}",
            info.verb, info.api_group, info.namespace, info.name
        );
    } else {
        let _ = writeln!(
            out,
            "          non-resource URL {:?}, verb {:?}",
            info.path, info.verb
        );
    }
    let _ = writeln!(
        out,
        "          {}, {}",
        if info.is_mutating() {
            "mutating"
        } else {
            "read-only"
        },
        if dry_run {
            "a dry run (dryRun=All)"
        } else {
            "not a dry run"
        }
    );
    let _ = writeln!(
        out,
        "caller:   {} (groups: {}; authenticator: {})",
        options.user,
        if options.groups.is_empty() {
            "none".to_owned()
        } else {
            options.groups.join(", ")
        },
        options.authenticator
    );
    let _ = writeln!(out, "at:       {}", options.at);
    let _ = writeln!(out, "policy:   {source}");
    let _ = writeln!(out, "rules tried:");
    for (i, r) in e.rules.iter().enumerate() {
        let mark = if r.missed.is_none() { "=>" } else { "  " };
        let _ = writeln!(
            out,
            "{mark} {:>3}. {} (line {}): {}",
            i + 1,
            r.rule,
            r.line,
            r.reason
        );
        for n in &r.notes {
            let _ = writeln!(out, "          note: {n}");
        }
    }
    if e.rules.last().is_none_or(|r| r.missed.is_some()) {
        let _ = writeln!(out, "=>      no rule matched: the default action applies");
    }
    if let Some(f) = &e.freeze {
        let _ = writeln!(out, "freeze:   {f}");
    }
    let _ = writeln!(out, "decision: {}", describe(&e.evaluation));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> ParsedRequest {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_request(&args, false).unwrap()
    }

    #[test]
    fn kubectl_style_requests_become_paths() {
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["get", "pods", "-n", "demo"],
                "GET",
                "/api/v1/namespaces/demo/pods",
            ),
            (
                &["get", "pod/web-0", "-n", "demo"],
                "GET",
                "/api/v1/namespaces/demo/pods/web-0",
            ),
            (
                &["delete", "namespace", "prod"],
                "DELETE",
                "/api/v1/namespaces/prod",
            ),
            (&["delete", "ns/prod"], "DELETE", "/api/v1/namespaces/prod"),
            (
                &["scale", "deploy", "web", "-n", "prod"],
                "PATCH",
                "/apis/apps/v1/namespaces/prod/deployments/web/scale",
            ),
            (
                &["exec", "web-0", "-n", "demo"],
                "POST",
                "/api/v1/namespaces/demo/pods/web-0/exec",
            ),
            (
                &["port-forward", "pod/web-0"],
                "POST",
                "/api/v1/namespaces/default/pods/web-0/portforward",
            ),
            (
                &["create", "configmap", "x", "--namespace=demo"],
                "POST",
                "/api/v1/namespaces/demo/configmaps",
            ),
            (
                &[
                    "create",
                    "serviceaccount",
                    "default",
                    "--subresource=token",
                    "-n",
                    "demo",
                ],
                "POST",
                "/api/v1/namespaces/demo/serviceaccounts/default/token",
            ),
            (
                &["patch", "clusterrolebinding", "admin"],
                "PATCH",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
            ),
            (
                &["delete", "crd", "foos.example.com"],
                "DELETE",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com",
            ),
            (
                &["delete", "widgets.example.com", "w1", "-n", "demo"],
                "DELETE",
                "/apis/example.com/v1/namespaces/demo/widgets/w1",
            ),
            (
                &["deletecollection", "pods", "-n", "demo"],
                "DELETE",
                "/api/v1/namespaces/demo/pods",
            ),
        ];
        for (args, method, path) in cases {
            let got = p(args);
            assert_eq!(
                (got.method.as_str(), got.path.as_str()),
                (*method, *path),
                "{args:?}"
            );
        }
        assert_eq!(p(&["watch", "pods"]).query.as_deref(), Some("watch=1"));
    }

    #[test]
    fn raw_requests_and_dry_run() {
        let got = p(&[
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/b?fieldManager=x",
        ]);
        assert_eq!(got.method, Method::PATCH);
        assert_eq!(got.query.as_deref(), Some("fieldManager=x"));
        let args = vec![
            "POST".to_string(),
            "/api/v1/namespaces/a/configmaps".to_string(),
        ];
        assert_eq!(
            parse_request(&args, true).unwrap().query.as_deref(),
            Some("dryRun=All")
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        for args in [
            &["frobnicate", "pods"][..],
            &["delete", "pods"],
            &[],
            &["get", "pods", "--all"],
        ] {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert!(parse_request(&args, false).is_err(), "{args:?}");
        }
    }

    #[test]
    fn explain_the_default_policy() {
        let policy = Policy::default_for_agents();
        let options = ExplainOptions {
            user: "demo-agent".into(),
            groups: vec!["agents".into()],
            authenticator: "static-token".into(),
            at: "2026-12-02T12:00:00Z".parse().unwrap(),
            object: None,
            freeze: None,
        };
        let parsed = p(&["delete", "namespace", "prod"]);
        let (e, info, dry) = explain(&policy, &parsed, &options).unwrap();
        let text = render("embedded", &parsed, &info, dry, &options, &e);
        assert!(text.contains("=>   3. protected-deletes"), "{text}");
        assert!(
            text.contains("decision: DENY (rule \"protected-deletes\")"),
            "{text}"
        );
        assert!(text.contains("1. reads (line"), "{text}");

        let parsed = p(&["scale", "deploy", "coredns", "-n", "kube-system"]);
        let (e, info, dry) = explain(&policy, &parsed, &options).unwrap();
        let text = render("embedded", &parsed, &info, dry, &options, &e);
        assert!(text.contains("decision: HOLD for approval (rule \"kube-system\"): 2 of [group reviewers] must approve; pending for 1h, caller held 5s, mode execute"), "{text}");

        // path tricks are refused as the gateway would
        let parsed = p(&["GET", "/api/v1/namespaces/a/pods/..%2Fsecrets"]);
        assert!(explain(&policy, &parsed, &options).is_err());
    }
}
