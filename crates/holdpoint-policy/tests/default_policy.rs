//! The embedded default policy for AI agents, line by line (table-driven), plus a property: no
//! request makes a mutating request `allow` unless it is a real dry run of an ordinary
//! built-in resource.

use holdpoint_policy::{Evaluation, Policy, Request, Subject, Verdict};
use http::Method;
use kube_request::{DryRun, classify};
use proptest::prelude::*;

fn agent_groups() -> Vec<String> {
    vec!["agents".into(), "system:authenticated".into()]
}

fn now() -> jiff::Timestamp {
    "2026-12-02T12:00:00Z".parse().unwrap()
}

/// Evaluates `METHOD path?query` as the agent, with an optional JSON body as `object`.
fn eval(
    policy: &Policy,
    method: &str,
    target: &str,
    body: Option<serde_json::Value>,
) -> Evaluation {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let info = classify(&method, path, query).unwrap();
    let groups = agent_groups();
    let dry_run = DryRun::for_request(&method, query, false).is_dry_run();
    let req = Request::new(
        Subject {
            username: "agent",
            groups: &groups,
            authenticator: "static-token",
        },
        &info,
        dry_run,
        now(),
    )
    .with_object(body.as_ref());
    policy.evaluate(&req)
}

#[derive(Debug)]
enum Want {
    Allow,
    Deny,
    Approve(u32),
}

fn check(policy: &Policy, method: &str, target: &str, rule: &str, want: Want) {
    let got = eval(policy, method, target, None);
    assert_eq!(got.rule, rule, "{method} {target}: {got:?}");
    match (&want, &got.verdict) {
        (Want::Allow, Verdict::Allow) | (Want::Deny, Verdict::Deny { .. }) => {}
        (Want::Approve(q), Verdict::Approve(a)) => {
            assert_eq!(a.quorum, *q, "{method} {target}: quorum");
            assert_eq!(a.reviewers.groups, vec!["reviewers".to_string()]);
            assert!(a.reviewers.users.is_empty());
            assert_eq!(a.hold, holdpoint_policy::DEFAULT_HOLD);
            assert_eq!(a.ttl, holdpoint_policy::DEFAULT_TTL);
            assert_eq!(a.mode, holdpoint_policy::ApprovalMode::Execute);
        }
        _ => panic!("{method} {target}: want {want:?}, got {got:?}"),
    }
}

#[test]
fn each_line_of_the_default_policy() {
    use Want::*;
    let p = Policy::default_for_agents();
    let table: &[(&str, &str, &str, Want)] = &[
        // reads
        ("GET", "/api/v1/namespaces/default/pods", "reads", Allow),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web-0",
            "reads",
            Allow,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods?watch=1",
            "reads",
            Allow,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web-0/log",
            "reads",
            Allow,
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system/secrets",
            "reads",
            Allow,
        ),
        ("HEAD", "/apis/apps/v1/deployments", "reads", Allow),
        ("GET", "/version", "reads", Allow),
        ("GET", "/openapi/v3", "reads", Allow),
        ("GET", "/apis", "reads", Allow),
        // review APIs
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "review-apis",
            Allow,
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            "review-apis",
            Allow,
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            "review-apis",
            Allow,
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews",
            "review-apis",
            Allow,
        ),
        (
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            "review-apis",
            Allow,
        ),
        (
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "review-apis",
            Allow,
        ),
        // a review API written with another verb is not a read
        (
            "DELETE",
            "/apis/authentication.k8s.io/v1/tokenreviews/x",
            "changes",
            Approve(1),
        ),
        // protected deletes
        (
            "DELETE",
            "/api/v1/namespaces/default",
            "protected-deletes",
            Deny,
        ),
        ("DELETE", "/api/v1/namespaces", "protected-deletes", Deny),
        ("DELETE", "/api/v1/nodes/node-1", "protected-deletes", Deny),
        (
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com",
            "protected-deletes",
            Deny,
        ),
        (
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "protected-deletes",
            Deny,
        ),
        // a dry run does not get around the protected deletes
        (
            "DELETE",
            "/api/v1/namespaces/default?dryRun=All",
            "protected-deletes",
            Deny,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/kube-system",
            "protected-deletes",
            Deny,
        ),
        // streams and credentials in kube-system: quorum 2, dry run or not
        (
            "POST",
            "/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=sh",
            "kube-system-streams-and-credentials",
            Approve(2),
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=sh",
            "kube-system-streams-and-credentials",
            Approve(2),
        ),
        (
            "POST",
            "/api/v1/namespaces/kube-system/serviceaccounts/default/token?dryRun=All",
            "kube-system-streams-and-credentials",
            Approve(2),
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system/services/dns:53/proxy/metrics",
            "kube-system-streams-and-credentials",
            Approve(2),
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/kube-system/pods/x/",
            "kube-system-legacy-proxy",
            Approve(2),
        ),
        // streams and credentials: always held
        (
            "POST",
            "/api/v1/namespaces/default/pods/web-0/exec?command=env",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web-0/exec?command=env",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web-0/attach",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web-0/portforward?ports=80",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web-0/proxy/",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services/web/proxy/admin",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/nodes/node-1/proxy/configz",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/pods/web-0/ephemeralcontainers",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/pods/web-0/ephemeralcontainers?dryRun=All",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/default/token?dryRun=All",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "PUT",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "PUT",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval?dryRun=All",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web-0/exec?command=env&dryRun=All",
            "streams-and-credentials",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/default/pods/web-0/",
            "legacy-proxy",
            Approve(1),
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/default/pods/web-0/?dryRun=All",
            "legacy-proxy",
            Approve(1),
        ),
        // connect subresources by name, whatever the resource
        (
            "POST",
            "/api/v1/namespaces/default/widgets/x/exec?dryRun=All",
            "streams-and-credentials",
            Approve(1),
        ),
        // dry runs of ordinary built-in resources
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            "dry-run",
            Allow,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?dryRun=All&fieldManager=kubectl",
            "dry-run",
            Allow,
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/default/deployments/web/scale?dryRun=All",
            "dry-run",
            Allow,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods/web-0?dryRun=All",
            "dry-run",
            Allow,
        ),
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings?dryRun=All",
            "dry-run",
            Allow,
        ),
        (
            "POST",
            "/api/v1/namespaces/kube-system/configmaps?dryRun=All",
            "dry-run",
            Allow,
        ),
        // ...but only real dry runs (the apiserver ignores these spellings)
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=all",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryrun=All",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All&dryRun=x",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All;x=y",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=",
            "changes",
            Approve(1),
        ),
        // ...and not for custom or aggregated APIs, which may ignore dryRun
        (
            "POST",
            "/apis/example.com/v1/namespaces/default/widgets?dryRun=All",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?dryRun=All",
            "changes",
            Approve(1),
        ),
        // RBAC: quorum 2
        (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            "rbac",
            Approve(2),
        ),
        (
            "PUT",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            "rbac",
            Approve(2),
        ),
        (
            "DELETE",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x",
            "rbac",
            Approve(2),
        ),
        (
            "PATCH",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/x",
            "rbac",
            Approve(2),
        ),
        // kube-system: quorum 2
        (
            "POST",
            "/api/v1/namespaces/kube-system/configmaps",
            "kube-system",
            Approve(2),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/kube-system/pods/coredns-1",
            "kube-system",
            Approve(2),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale",
            "kube-system",
            Approve(2),
        ),
        (
            "PUT",
            "/api/v1/namespaces/kube-system/finalize",
            "kube-system",
            Approve(2),
        ),
        (
            "POST",
            "/api/v1/namespaces/kube-system/pods/x/eviction",
            "kube-system",
            Approve(2),
        ),
        // a deletecollection across all namespaces may reach kube-system: quorum 2
        ("DELETE", "/api/v1/pods", "kube-system", Approve(2)),
        // every other change: one reviewer
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "changes",
            Approve(1),
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/x",
            "changes",
            Approve(1),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            "changes",
            Approve(1),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            "changes",
            Approve(1),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods/web-0",
            "changes",
            Approve(1),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/pods",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            "changes",
            Approve(1),
        ),
        ("POST", "/api/v1/namespaces", "changes", Approve(1)),
        (
            "PUT",
            "/api/v1/namespaces/prod/finalize",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web-0/eviction",
            "changes",
            Approve(1),
        ),
        (
            "POST",
            "/apis/example.com/v1/namespaces/default/widgets",
            "changes",
            Approve(1),
        ),
        ("PUT", "/debug/flags/v", "changes", Approve(1)),
        ("POST", "/logs/x", "changes", Approve(1)),
        // a "read" verb by another method is not a read
        (
            "DELETE",
            "/api/v1/watch/namespaces/default/pods",
            "changes",
            Approve(1),
        ),
        (
            "OPTIONS",
            "/api/v1/namespaces/default/pods/x",
            "changes",
            Approve(1),
        ),
    ];
    for (method, target, rule, want) in table {
        check(
            &p,
            method,
            target,
            rule,
            match want {
                Allow => Allow,
                Deny => Deny,
                Approve(q) => Approve(*q),
            },
        );
    }
}

#[test]
fn the_deny_message_says_what_to_do() {
    let p = Policy::default_for_agents();
    let got = eval(&p, "DELETE", "/api/v1/namespaces/prod", None);
    match got.verdict {
        Verdict::Deny { message } => {
            assert!(message.contains("cluster administrator"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_delete_with_a_body_is_never_a_dry_run_even_with_the_query() {
    // The apiserver reads DeleteOptions from the body when there is one and ignores the query.
    let p = Policy::default_for_agents();
    let info = classify(
        &Method::DELETE,
        "/api/v1/namespaces/default/pods/web-0",
        Some("dryRun=All"),
    )
    .unwrap();
    let groups = agent_groups();
    let dry_run = DryRun::for_request(&Method::DELETE, Some("dryRun=All"), true).is_dry_run();
    assert!(!dry_run);
    let req = Request::new(
        Subject {
            username: "agent",
            groups: &groups,
            authenticator: "static-token",
        },
        &info,
        dry_run,
        now(),
    );
    assert_eq!(p.evaluate(&req).rule, "changes");
}

fn default_policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(Policy::default_for_agents)
}

fn method_strategy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT",
    ])
}

fn segment_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "api",
        "apis",
        "v1",
        "apps",
        "namespaces",
        "default",
        "kube-system",
        "pods",
        "web-0",
        "exec",
        "attach",
        "portforward",
        "proxy",
        "watch",
        "serviceaccounts",
        "token",
        "certificates.k8s.io",
        "certificatesigningrequests",
        "approval",
        "ephemeralcontainers",
        "status",
        "finalize",
        "scale",
        "deployments",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "authorization.k8s.io",
        "authentication.k8s.io",
        "selfsubjectaccessreviews",
        "tokenreviews",
        "secrets",
        "nodes",
        "example.com",
        "widgets",
        "eviction",
        "debug",
        "logs",
        "x",
    ])
    .prop_map(str::to_owned)
}

fn query_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(vec![
            "dryRun=All",
            "dryRun=all",
            "dryrun=All",
            "dryRun=All&dryRun=All",
            "dryRun=All&dryRun=x",
            "watch=1",
            "watch=true&dryRun=All",
            "dryRun=All;x",
            "command=sh&dryRun=All",
            "dry%52un=All",
            "fieldSelector=metadata.name%3Dx",
            "ports=80",
        ])
        .prop_map(str::to_owned),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn no_mutation_is_allowed_unless_a_real_dry_run_of_an_ordinary_resource(
        method in method_strategy(),
        segs in prop::collection::vec(segment_strategy(), 1..8),
        query in query_strategy(),
        has_body in any::<bool>(),
    ) {
        let p = default_policy();
        let path = format!("/{}", segs.join("/"));
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let Ok(info) = classify(&m, &path, query.as_deref()) else { return Ok(()) };
        let groups = agent_groups();
        let dry_run = DryRun::for_request(&m, query.as_deref(), has_body).is_dry_run();
        let req = Request::new(
            Subject { username: "agent", groups: &groups, authenticator: "static-token" },
            &info,
            dry_run,
            now(),
        );
        let got = p.evaluate(&req);
        if req.mutating && got.verdict == Verdict::Allow {
            prop_assert!(dry_run, "{method} {path}?{query:?} allowed without a dry run: {got:?}");
            prop_assert_eq!(&got.rule, "dry-run");
            prop_assert!(info.is_resource_request);
            prop_assert!(info.connect_kind().is_none(), "{} {}", method, path);
            let sub = info.subresource.as_str();
            prop_assert!(!matches!(
                (info.resource.as_str(), sub),
                ("serviceaccounts", "token") | ("certificatesigningrequests", "approval") | ("pods", "ephemeralcontainers")
            ), "{} {}", method, path);
            prop_assert!(!(info.verb.starts_with("delete") && matches!(info.resource.as_str(), "namespaces" | "nodes" | "customresourcedefinitions")));
        }
        // The review APIs and reads are the only non-dry-run allows.
        if got.verdict == Verdict::Allow && !dry_run {
            prop_assert!(!req.mutating, "{} {}: {:?}", method, path, got);
        }
    }
}
