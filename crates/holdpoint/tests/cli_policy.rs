//! `holdpoint policy check` and `holdpoint policy explain` as an operator runs them.

use std::process::Command;

fn holdpoint(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdpoint"))
        .args(args)
        .output()
        .expect("holdpoint runs")
}

#[test]
fn check_exits_zero_for_a_valid_file_and_nonzero_with_the_line_for_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "rules:\n  - {name: a, action: allow}\ndefault: {action: deny}\n",
    )
    .unwrap();
    let out = holdpoint(&["policy", "check", "--file", good.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy ok: 1 rules"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - name: a\n    match: {verbs: [get], resourcez: [pods]}\n    action: allow\ndefault: {action: deny}\n",
    )
    .unwrap();
    let out = holdpoint(&["policy", "check", "--file", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resourcez"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");

    // without --file or --config: a usage error
    let out = holdpoint(&["policy", "check"]);
    assert!(!out.status.success());

    // the shipped reference policy is valid
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.yaml");
    let out = holdpoint(&["policy", "check", "--file", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn explain_prints_the_rules_tried_and_the_decision() {
    let out = holdpoint(&[
        "policy",
        "explain",
        "--as",
        "demo-agent",
        "--group",
        "agents",
        "--",
        "delete",
        "namespace",
        "prod",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1. reads (line"), "{stdout}");
    assert!(
        stdout.contains("decision: DENY (rule \"protected-deletes\")"),
        "{stdout}"
    );

    let out = holdpoint(&[
        "policy",
        "explain",
        "--as",
        "demo-agent",
        "--",
        "POST",
        "/api/v1/namespaces/demo/serviceaccounts/default/token?dryRun=All",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a dry run (dryRun=All)"), "{stdout}");
    assert!(
        stdout.contains("decision: HOLD for approval (rule \"streams-and-credentials\")"),
        "{stdout}"
    );

    // the change window of the reference policy, at a fixed time
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.yaml");
    let out = holdpoint(&[
        "policy",
        "explain",
        "--file",
        example,
        "--as",
        "ci-bot",
        "--group",
        "agents",
        "--at",
        "2026-12-02T09:30:00Z",
        "--",
        "scale",
        "deployment",
        "web",
        "-n",
        "prod",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("decision: DENY (rule \"prod-change-window\")"),
        "{stdout}"
    );
    let out = holdpoint(&[
        "policy",
        "explain",
        "--file",
        example,
        "--as",
        "ci-bot",
        "--group",
        "agents",
        "--at",
        "2026-12-01T09:30:00Z",
        "--",
        "scale",
        "deployment",
        "web",
        "-n",
        "prod",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("decision: DENY"), "{stdout}");
}

#[test]
fn check_reads_the_policy_file_named_by_a_gateway_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), "").unwrap();
    let config = dir.path().join("holdpoint.yaml");
    std::fs::write(
        &config,
        "data_dir: data\nupstream:\n  kubeconfig: kubeconfig\npolicy:\n  file: policy.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "rules:\n  - {name: a, action: allow}\n  - {name: b, action: allow}\ndefault: {action: deny}\n",
    )
    .unwrap();
    let out = holdpoint(&["policy", "check", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy ok: 2 rules"));

    std::fs::write(dir.path().join("policy.yaml"), "rules: []\n").unwrap();
    let out = holdpoint(&["policy", "check", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("default"),
        "{out:?}"
    );
}
