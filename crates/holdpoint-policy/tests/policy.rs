//! The policy language: parsing and validation (with line numbers), each match key, change
//! windows, CEL conditions (fail closed), the freeze, and `explain`.

use holdpoint_policy::{
    ApprovalMode, Freeze, FreezeMode, Key, Policy, PolicyError, Request, Subject, Verdict,
};
use http::Method;
use kube_request::{DryRun, RequestInfo, classify};

fn classify_target(method: &str, target: &str) -> (RequestInfo, bool) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let dry = DryRun::for_request(&method, query, false).is_dry_run();
    (classify(&method, path, query).unwrap(), dry)
}

struct Call<'a> {
    user: &'a str,
    groups: Vec<String>,
    authenticator: &'a str,
    now: jiff::Timestamp,
    object: Option<serde_json::Value>,
    freeze: Option<Freeze>,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call {
            user: "agent",
            groups: vec!["agents".into()],
            authenticator: "static-token",
            now: "2026-12-02T12:00:00Z".parse().unwrap(),
            object: None,
            freeze: None,
        }
    }
}

fn decide(p: &Policy, method: &str, target: &str, call: &Call<'_>) -> (String, Verdict) {
    let (info, dry) = classify_target(method, target);
    let req = Request::new(
        Subject {
            username: call.user,
            groups: &call.groups,
            authenticator: call.authenticator,
        },
        &info,
        dry,
        call.now,
    )
    .with_object(call.object.as_ref())
    .with_freeze(call.freeze.as_ref());
    let e = p.evaluate(&req);
    (e.rule, e.verdict)
}

fn rule_of(p: &Policy, method: &str, target: &str) -> String {
    decide(p, method, target, &Call::default()).0
}

const DEFAULT_DENY: &str = "default: {action: deny, message: no rule matched}\n";

fn policy(rules: &str) -> Policy {
    Policy::from_yaml(&format!("rules:\n{rules}\n{DEFAULT_DENY}")).unwrap()
}

fn invalid(text: &str) -> String {
    match Policy::from_yaml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_keys_are_rejected_with_a_line_number() {
    let e = invalid(
        "rules:\n  - name: a\n    match:\n      verb: [get]\n    action: allow\ndefault: {action: allow}\n",
    );
    assert!(e.contains("verb"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let e = invalid("rules: []\ndefault: {action: allow}\ntypo: 1\n");
    assert!(e.contains("typo"), "{e}");
    let e = invalid("rules: []\ndefault: {action: maybe}\n");
    assert!(e.contains("maybe"), "{e}");
    // the default action is required
    let e = invalid("rules: []\n");
    assert!(e.contains("default"), "{e}");
}

#[test]
fn validation_reports_every_problem_with_its_line() {
    let text = "\
rules:
  - name: a
    match: {verbs: []}
    action: allow
  - name: a
    action: approve
  - name: b
    action: approve
    approval: {reviewers: {}, quorum: 0, ttl: nonsense, hold: 2h}
  - name: c
    match:
      when:
        outside:
          - {cron: '0 10 * * XYZ', duration: 2h, timeZone: Mars/Olympus}
      conditions: ['object.spec.replicas >']
    action: deny
  - name: d
    match: {resources: [pods], nonResourceURLs: [/logs]}
    action: allow
  - name: default
    action: allow
  - name: e
    action: allow
    message: hi
  - name: f
    action: approve
    approval: {reviewers: {users: [alice]}, quorum: 2}
  - name: g
    action: approve
    approval: {reviewers: {users: [alice]}, hold: 2h, ttl: 1h}
default: {action: allow}
";
    let e = invalid(text);
    for want in [
        "line 2: rule \"a\": match.verbs is empty",
        "line 5: rule \"a\": duplicate rule name",
        "rule \"a\" (line 6): the approve action needs `approval`",
        "rule \"b\": approval.reviewers needs at least one",
        "rule \"b\": approval.quorum must be at least 1",
        "rule \"b\" (line 9): approval.ttl",
        "rule \"c\" (line 14): cron \"0 10 * * XYZ\"",
        "rule \"c\" (line 14): time zone \"Mars/Olympus\"",
        "rule \"c\" (line 15): condition \"object.spec.replicas >\" does not compile",
        "rule \"d\": nonResourceURLs cannot be combined",
        "rule \"default\": the name is reserved",
        "rule \"e\" (line 23): `message` is only for deny",
        "rule \"f\": approval.quorum 2 is more than the 1 listed reviewer(s)",
        "rule \"g\": approval.hold",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    assert!(matches!(
        Policy::from_yaml(text),
        Err(PolicyError::Invalid(_))
    ));
}

#[test]
fn approval_defaults_and_parameters() {
    let p = Policy::from_yaml(
        "rules:\n  - name: a\n    action: approve\n    approval: {reviewers: {users: [alice, bob], groups: [sre]}, quorum: 2, ttl: 30m, hold: 8s, mode: grant}\ndefault:\n  action: approve\n  approval: {reviewers: {groups: [reviewers]}}\n",
    )
    .unwrap();
    let (_, v) = decide(
        &p,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &Call::default(),
    );
    let Verdict::Approve(a) = v else {
        panic!("{v:?}")
    };
    assert_eq!(a.reviewers.users, ["alice", "bob"]);
    assert_eq!(a.reviewers.groups, ["sre"]);
    assert_eq!(a.quorum, 2);
    assert_eq!(a.ttl, std::time::Duration::from_secs(1800));
    assert_eq!(a.hold, std::time::Duration::from_secs(8));
    assert_eq!(a.mode, ApprovalMode::Grant);
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["ttl"], "30m");
    assert_eq!(json["hold"], "8s");
    assert_eq!(json["mode"], "grant");

    let p = Policy::from_yaml(
        "rules: []\ndefault:\n  action: approve\n  approval: {reviewers: {groups: [reviewers]}}\n",
    )
    .unwrap();
    let (rule, v) = decide(
        &p,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &Call::default(),
    );
    assert_eq!(rule, "default");
    let Verdict::Approve(a) = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (a.quorum, a.ttl.as_secs(), a.hold.as_secs(), a.mode),
        (1, 3600, 5, ApprovalMode::Execute)
    );
}

#[test]
fn first_match_wins() {
    let p = policy(
        "  - {name: first, match: {verbs: [create]}, action: deny, message: first}\n  - {name: second, match: {verbs: [create]}, action: allow}\n",
    );
    assert_eq!(
        rule_of(&p, "POST", "/api/v1/namespaces/default/pods"),
        "first"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/default/pods"),
        "default"
    );
}

#[test]
fn resources_follow_rbac_subresource_rules() {
    let p = policy(
        "  - {name: pods, match: {resources: [pods]}, action: allow}\n  - {name: exec, match: {resources: [pods/exec]}, action: allow}\n  - {name: any-scale, match: {resources: ['*/scale']}, action: allow}\n  - {name: pod-subs, match: {resources: ['pods/*']}, action: allow}\n  - {name: everything, match: {resources: ['*']}, action: allow}\n",
    );
    assert_eq!(rule_of(&p, "GET", "/api/v1/namespaces/d/pods/x"), "pods");
    assert_eq!(
        rule_of(&p, "POST", "/api/v1/namespaces/d/pods/x/exec"),
        "exec"
    );
    assert_eq!(
        rule_of(&p, "PUT", "/apis/apps/v1/namespaces/d/deployments/x/scale"),
        "any-scale"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/d/pods/x/log"),
        "pod-subs"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/d/secrets/x"),
        "everything"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/d/secrets/x/status"),
        "everything"
    );
    // resource rules never match non-resource URLs
    assert_eq!(rule_of(&p, "GET", "/version"), "default");
}

#[test]
fn api_groups_verbs_namespaces_names_and_urls() {
    let p = policy(
        "  - {name: apps-prod, match: {apiGroups: [apps], namespaces: ['prod-*'], verbs: [patch]}, action: deny}\n  - {name: cluster, match: {namespaces: [''], resources: ['*']}, action: allow}\n  - {name: web, match: {names: ['web-*']}, action: allow}\n  - {name: debug, match: {nonResourceURLs: ['/debug/*']}, action: deny}\n",
    );
    assert_eq!(
        rule_of(
            &p,
            "PATCH",
            "/apis/apps/v1/namespaces/prod-eu/deployments/x"
        ),
        "apps-prod"
    );
    assert_eq!(
        rule_of(&p, "PUT", "/apis/apps/v1/namespaces/prod-eu/deployments/x"),
        "default"
    );
    assert_eq!(
        rule_of(&p, "PATCH", "/api/v1/namespaces/prod-eu/pods/x"),
        "default"
    );
    assert_eq!(
        rule_of(
            &p,
            "PATCH",
            "/apis/apps/v1/namespaces/staging/deployments/x"
        ),
        "default"
    );
    assert_eq!(rule_of(&p, "DELETE", "/api/v1/nodes/n1"), "cluster");
    assert_eq!(rule_of(&p, "GET", "/api/v1/namespaces/d/pods/web-1"), "web");
    assert_eq!(rule_of(&p, "GET", "/debug/pprof/heap"), "debug");
    assert_eq!(rule_of(&p, "GET", "/debugz"), "default");
    // a create names its object in the body
    let call = Call {
        object: Some(serde_json::json!({"metadata": {"name": "web-9"}})),
        ..Call::default()
    };
    assert_eq!(
        decide(&p, "POST", "/api/v1/namespaces/d/pods", &call).0,
        "web"
    );
    assert_eq!(rule_of(&p, "POST", "/api/v1/namespaces/d/pods"), "default");
}

#[test]
fn subjects_users_groups_and_authenticators() {
    let p = policy(
        "  - {name: sa, match: {subjects: {users: ['system:serviceaccount:agents:*']}}, action: allow}\n  - {name: sre-oidc, match: {subjects: {groups: [sre], authenticators: ['oidc:*']}}, action: allow}\n",
    );
    let target = "/api/v1/namespaces/d/pods";
    let call = |user, groups: &[&str], auth| Call {
        user,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        authenticator: auth,
        ..Call::default()
    };
    assert_eq!(
        decide(
            &p,
            "POST",
            target,
            &call("system:serviceaccount:agents:bot", &[], "sa")
        )
        .0,
        "sa"
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            target,
            &call("system:serviceaccount:other:bot", &[], "sa")
        )
        .0,
        "default"
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            target,
            &call("ann", &["sre"], "oidc:https://idp")
        )
        .0,
        "sre-oidc"
    );
    assert_eq!(
        decide(&p, "POST", target, &call("ann", &["sre"], "static-token")).0,
        "default"
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            target,
            &call("ann", &["dev"], "oidc:https://idp")
        )
        .0,
        "default"
    );
}

#[test]
fn dry_run_key_matches_only_real_dry_runs() {
    let p = policy(
        "  - {name: dry, match: {dryRun: true}, action: allow}\n  - {name: real, match: {dryRun: false}, action: deny}\n",
    );
    assert_eq!(
        rule_of(&p, "POST", "/api/v1/namespaces/d/pods?dryRun=All"),
        "dry"
    );
    for q in [
        "dryRun=all",
        "dryrun=All",
        "dryRun=All&dryRun=None",
        "dryRun=All;",
        "dryRun=%41ll",
    ] {
        let got = rule_of(&p, "POST", &format!("/api/v1/namespaces/d/pods?{q}"));
        // `%41ll` decodes to `All`, which the apiserver honours
        let want = if q == "dryRun=%41ll" { "dry" } else { "real" };
        assert_eq!(got, want, "{q}");
    }
}

const WINDOW: &str = "  - name: prod-change-window
    match:
      mutating: true
      namespaces: [prod]
      when:
        outside:
          - {cron: '0 10 * * TUE', duration: 2h, timeZone: Europe/Berlin}
    action: deny
    message: outside the Tuesday window
  - {name: rest, action: allow}
";

#[test]
fn change_window_denies_outside_and_allows_inside() {
    let p = policy(WINDOW);
    let at = |t: &str| Call {
        now: t.parse().unwrap(),
        ..Call::default()
    };
    let target = "/apis/apps/v1/namespaces/prod/deployments/web";
    // 2026-12-01 is a Tuesday; Berlin is UTC+1 in December: the window is 09:00-11:00 UTC.
    for (t, rule) in [
        ("2026-12-01T08:59:59Z", "prod-change-window"),
        ("2026-12-01T09:00:00Z", "rest"),
        ("2026-12-01T10:59:59Z", "rest"),
        ("2026-12-01T11:00:00Z", "prod-change-window"),
        ("2026-12-02T09:30:00Z", "prod-change-window"),
        // summer time: UTC+2, the window is 08:00-10:00 UTC
        ("2026-06-02T08:30:00Z", "rest"),
        ("2026-06-02T10:30:00Z", "prod-change-window"),
    ] {
        assert_eq!(decide(&p, "PATCH", target, &at(t)).0, rule, "{t}");
    }
    // reads and other namespaces are not affected
    assert_eq!(
        decide(&p, "GET", target, &at("2026-12-02T09:30:00Z")).0,
        "rest"
    );
    assert_eq!(
        decide(
            &p,
            "PATCH",
            "/apis/apps/v1/namespaces/dev/deployments/web",
            &at("2026-12-02T09:30:00Z")
        )
        .0,
        "rest"
    );
}

#[test]
fn inside_windows() {
    let p = policy(
        "  - name: maintenance
    match:
      when:
        inside:
          - {cron: '0 22 * * *', duration: 4h}
    action: allow
",
    );
    let at = |t: &str| Call {
        now: t.parse().unwrap(),
        ..Call::default()
    };
    assert_eq!(
        decide(
            &p,
            "POST",
            "/api/v1/namespaces/d/pods",
            &at("2026-12-02T23:00:00Z")
        )
        .0,
        "maintenance"
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            "/api/v1/namespaces/d/pods",
            &at("2026-12-03T01:59:00Z")
        )
        .0,
        "maintenance"
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            "/api/v1/namespaces/d/pods",
            &at("2026-12-03T02:00:00Z")
        )
        .0,
        "default"
    );
}

#[test]
fn cel_conditions_see_object_and_old_object() {
    let p = policy(
        "  - name: big
    match:
      conditions: ['object.spec.replicas > 10']
    action: deny
    message: too many replicas
  - name: privileged
    match:
      conditions:
        - \"has(object.spec.containers) && object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)\"
    action: deny
  - name: ok-small
    match:
      conditions: ['object.spec.replicas <= 10']
    action: allow
",
    );
    let with = |obj: serde_json::Value| Call {
        object: Some(obj),
        ..Call::default()
    };
    let t = "/apis/apps/v1/namespaces/d/deployments/web";
    assert_eq!(
        decide(
            &p,
            "PATCH",
            t,
            &with(serde_json::json!({"spec": {"replicas": 11}}))
        )
        .0,
        "big"
    );
    assert_eq!(
        decide(
            &p,
            "PATCH",
            t,
            &with(serde_json::json!({"spec": {"replicas": 3}}))
        )
        .0,
        "ok-small"
    );
    let pod = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "securityContext": {"privileged": true}}]}});
    // `object.spec.replicas` is missing on a pod: the deny rule counts it as a match (fail
    // closed), so the pod is denied by `big` before `privileged` is reached.
    assert_eq!(
        decide(&p, "POST", "/api/v1/namespaces/d/pods", &with(pod)).0,
        "big"
    );

    // oldObject
    let p = policy(
        "  - name: shrink
    match:
      conditions: ['object.spec.replicas < oldObject.spec.replicas']
    action: deny
",
    );
    let (info, _) = classify_target("PATCH", t);
    let groups = vec![];
    let new = serde_json::json!({"spec": {"replicas": 1}});
    let old = serde_json::json!({"spec": {"replicas": 5}});
    let req = Request::new(
        Subject {
            username: "a",
            groups: &groups,
            authenticator: "x",
        },
        &info,
        false,
        Call::default().now,
    )
    .with_object(Some(&new))
    .with_old_object(Some(&old));
    assert_eq!(p.evaluate(&req).rule, "shrink");
    let req = req.with_old_object(Some(&new));
    assert_eq!(p.evaluate(&req).rule, "default");
}

#[test]
fn conditions_that_fail_to_evaluate_fail_closed() {
    let p = policy(
        "  - name: allow-small
    match:
      conditions: ['object.spec.replicas < 3']
    action: allow
  - name: hold-big
    match:
      conditions: ['object.spec.replicas >= 3']
    action: approve
    approval: {reviewers: {groups: [reviewers]}}
",
    );
    let t = "/apis/apps/v1/namespaces/d/deployments/web";
    // no body at all (e.g. protobuf that could not be decoded): allow does not match, approve does
    assert_eq!(decide(&p, "PATCH", t, &Call::default()).0, "hold-big");
    // wrong type: same
    let call = Call {
        object: Some(serde_json::json!({"spec": {"replicas": "many"}})),
        ..Call::default()
    };
    assert_eq!(decide(&p, "PATCH", t, &call).0, "hold-big");
    // a non-bool result is an error too
    let p = policy("  - {name: nonbool, match: {conditions: ['1 + 1']}, action: allow}\n");
    assert_eq!(decide(&p, "PATCH", t, &Call::default()).0, "default");
}

#[test]
fn freeze_denies_every_mutation_whatever_the_rules_say() {
    let p = Policy::from_yaml(
        "rules:\n  - {name: all, action: allow}\ndefault: {action: allow}\nfreeze:\n  approval: {reviewers: {groups: [sre]}}\n",
    )
    .unwrap();
    let frozen = |mode| Call {
        freeze: Some(Freeze {
            reason: "incident 42".into(),
            mode,
        }),
        ..Call::default()
    };
    let t = "/api/v1/namespaces/d/configmaps";
    let (rule, v) = decide(&p, "POST", t, &frozen(FreezeMode::Deny));
    assert_eq!(rule, "freeze");
    assert_eq!(
        v,
        Verdict::Deny {
            message: "changes are frozen: incident 42".into()
        }
    );
    // a dry run is a mutating request too; exec as GET too
    assert_eq!(
        decide(
            &p,
            "POST",
            &format!("{t}?dryRun=All"),
            &frozen(FreezeMode::Deny)
        )
        .0,
        "freeze"
    );
    assert_eq!(
        decide(
            &p,
            "GET",
            "/api/v1/namespaces/d/pods/x/exec",
            &frozen(FreezeMode::Deny)
        )
        .0,
        "freeze"
    );
    // reads and review APIs pass
    assert_eq!(
        decide(&p, "GET", t, &frozen(FreezeMode::Deny)),
        ("all".into(), Verdict::Allow)
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &frozen(FreezeMode::Deny)
        )
        .1,
        Verdict::Allow
    );
    // hold mode holds what the rules allow, with freeze.approval
    let (rule, v) = decide(&p, "POST", t, &frozen(FreezeMode::Hold));
    assert_eq!(rule, "freeze");
    let Verdict::Approve(a) = v else {
        panic!("{v:?}")
    };
    assert_eq!(a.reviewers.groups, ["sre"]);
}

#[test]
fn freeze_hold_never_loosens_a_deny_and_needs_an_approval() {
    let p = policy(
        "  - {name: no, match: {verbs: [delete]}, action: deny, message: never}\n  - {name: yes, action: allow}\n",
    );
    let frozen = Call {
        freeze: Some(Freeze {
            reason: "r".into(),
            mode: FreezeMode::Hold,
        }),
        ..Call::default()
    };
    assert_eq!(
        decide(&p, "DELETE", "/api/v1/namespaces/d/pods/x", &frozen),
        (
            "no".into(),
            Verdict::Deny {
                message: "never".into()
            }
        )
    );
    // no freeze.approval in this policy: hold mode denies what the rules allow
    let (rule, v) = decide(&p, "POST", "/api/v1/namespaces/d/pods", &frozen);
    assert_eq!(rule, "freeze");
    assert!(matches!(v, Verdict::Deny { .. }), "{v:?}");
}

#[test]
fn explain_lists_every_rule_tried_and_why() {
    let p = policy(WINDOW);
    let (info, dry) = classify_target("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web");
    let groups = vec!["agents".to_string()];
    let req = Request::new(
        Subject {
            username: "agent",
            groups: &groups,
            authenticator: "static-token",
        },
        &info,
        dry,
        "2026-12-01T09:30:00Z".parse().unwrap(),
    );
    let e = p.explain(&req);
    assert_eq!(e.rules.len(), 2);
    assert_eq!(e.rules[0].rule, "prod-change-window");
    assert_eq!(e.rules[0].line, 2);
    assert_eq!(e.rules[0].missed, Some(Key::When));
    assert!(
        e.rules[0].reason.contains("windows"),
        "{}",
        e.rules[0].reason
    );
    assert_eq!(e.rules[1].missed, None);
    assert_eq!(e.matched, "rest");
    assert_eq!(e.evaluation, p.evaluate(&req));

    let (info, dry) = classify_target("GET", "/api/v1/namespaces/prod/pods");
    let req = Request::new(
        Subject {
            username: "agent",
            groups: &groups,
            authenticator: "x",
        },
        &info,
        dry,
        req.now,
    );
    let e = p.explain(&req);
    assert_eq!(e.rules[0].missed, Some(Key::Mutating));
    assert!(
        e.rules[0].reason.contains("only reads"),
        "{}",
        e.rules[0].reason
    );
}

#[test]
fn explain_notes_fail_closed_conditions() {
    let p =
        policy("  - {name: c, match: {conditions: ['object.spec.replicas > 1']}, action: deny}\n");
    let (info, dry) = classify_target("POST", "/api/v1/namespaces/d/pods");
    let groups = vec![];
    let req = Request::new(
        Subject {
            username: "a",
            groups: &groups,
            authenticator: "x",
        },
        &info,
        dry,
        Call::default().now,
    );
    let e = p.explain(&req);
    assert_eq!(e.matched, "c");
    assert!(
        e.rules[0].notes[0].contains("fail closed"),
        "{:?}",
        e.rules[0].notes
    );
}

#[test]
fn the_default_policy_embedded_is_the_file() {
    assert_eq!(
        holdpoint_policy::DEFAULT_POLICY_YAML,
        include_str!("../default-policy.yaml")
    );
    assert!(Policy::default_for_agents().len() >= 10);
}

#[test]
fn requests_that_do_not_name_a_namespace_or_object_fail_closed() {
    let p = policy(
        "  - {name: no-prod-secrets, match: {resources: [secrets], namespaces: [prod]}, action: deny}\n  - {name: no-db-deletes, match: {verbs: [delete, deletecollection, create], names: [prod-db]}, action: deny}\n  - {name: web-only, match: {names: ['web-*'], verbs: [list, create]}, action: allow}\n  - {name: dev-only, match: {namespaces: [dev]}, action: allow}\n  - {name: cluster, match: {namespaces: ['']}, action: allow}\n",
    );
    // listing secrets across all namespaces includes prod's
    assert_eq!(rule_of(&p, "GET", "/api/v1/secrets"), "no-prod-secrets");
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/secrets?watch=1"),
        "no-prod-secrets"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/prod/secrets/x"),
        "no-prod-secrets"
    );
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/dev/secrets/x"),
        "dev-only"
    );
    // a get of one cluster-scoped object is not a collection
    assert_eq!(rule_of(&p, "GET", "/api/v1/nodes/n1"), "cluster");
    // deletecollection may delete prod-db
    assert_eq!(
        rule_of(&p, "DELETE", "/api/v1/namespaces/dev/pods"),
        "no-db-deletes"
    );
    assert_eq!(
        rule_of(&p, "DELETE", "/api/v1/namespaces/dev/pods/other"),
        "dev-only"
    );
    // a create whose name is not known (no decodable body, generateName) may be prod-db
    assert_eq!(
        rule_of(&p, "POST", "/api/v1/namespaces/dev/pods"),
        "no-db-deletes"
    );
    let named = |name: &str| Call {
        object: Some(serde_json::json!({"metadata": {"name": name}})),
        ..Call::default()
    };
    assert_eq!(
        decide(&p, "POST", "/api/v1/namespaces/dev/pods", &named("web-1")).0,
        "web-only"
    );
    assert_eq!(
        decide(&p, "POST", "/api/v1/namespaces/dev/pods", &named("prod-db")).0,
        "no-db-deletes"
    );
    // an allow rule's names do not cover a list of everything
    let p = policy("  - {name: web-only, match: {names: ['web-*']}, action: allow}\n");
    assert_eq!(rule_of(&p, "GET", "/api/v1/namespaces/dev/pods"), "default");
    assert_eq!(
        rule_of(&p, "GET", "/api/v1/namespaces/dev/pods/web-1"),
        "web-only"
    );
}

#[test]
fn reveal_rules_open_kinds_to_the_named_subjects_only() {
    let p = Policy::from_yaml(
        "default: {action: allow}\nreveal:\n  - name: sre-secrets\n    subjects: {groups: [sre]}\n    kinds: [Secret]\n  - name: ann-tokens\n    subjects: {users: [ann], authenticators: ['oidc:*']}\n    kinds: [TokenRequest, Secret]\n",
    )
    .unwrap();
    assert_eq!(p.reveal_rules(), 2);
    let who = |user: &str, groups: &[&str], authenticator: &str| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let grant = p.reveal_for(&Subject {
            username: user,
            groups: &groups,
            authenticator,
        });
        (grant.kinds, grant.rules)
    };
    // masking stays on for everyone a rule does not name
    assert_eq!(who("agent", &["agents"], "static-token"), (vec![], vec![]));
    assert_eq!(
        who("bob", &["sre"], "static-token"),
        (vec!["Secret".into()], vec!["sre-secrets".into()])
    );
    assert_eq!(
        who("ann", &["sre"], "oidc:https://idp"),
        (
            vec!["Secret".into(), "TokenRequest".into()],
            vec!["sre-secrets".into(), "ann-tokens".into()]
        )
    );
    // the authenticator narrows a reveal
    assert_eq!(who("ann", &[], "static-token"), (vec![], vec![]));
}

#[test]
fn reveal_rules_must_name_someone_and_a_kind() {
    let err = |yaml: &str| match Policy::from_yaml(&format!(
        "default: {{action: allow}}\nreveal:\n{yaml}"
    )) {
        Err(PolicyError::Invalid(p)) => p.join("\n"),
        other => panic!("expected a validation error, got {other:?}"),
    };
    assert!(
        err("  - {name: all, subjects: {groups: ['*']}, kinds: [Secret]}\n")
            .contains("must not be `*`")
    );
    assert!(
        err("  - {name: anyone, subjects: {authenticators: [x]}, kinds: [Secret]}\n")
            .contains("needs users or groups")
    );
    assert!(
        err("  - {name: none, subjects: {users: [a]}, kinds: []}\n").contains("kinds is empty")
    );
    assert!(
        err("  - {name: glob, subjects: {users: [a]}, kinds: ['Sec*']}\n").contains("object kind")
    );
    assert!(
        err("  - {name: d, subjects: {users: [a]}, kinds: [Secret]}\n  - {name: d, subjects: {users: [b]}, kinds: [Secret]}\n")
            .contains("duplicate reveal name")
    );
    assert!(matches!(
        Policy::from_yaml(
            "default: {action: allow}\nreveal:\n  - {name: x, subjects: {users: [a]}, kinds: [Secret], verbs: [get]}\n"
        ),
        Err(PolicyError::Parse(_))
    ));
}
