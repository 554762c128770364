// The 200-rule policy shared by benches/evaluate.rs and examples/evaluate_count.rs.

/// 200 rules: 196 team rules that do not match the benchmarked requests, then 3 platform rules,
/// the second of which matches, and a catch-all.
pub fn big_policy() -> String {
    use std::fmt::Write;
    let mut y = String::from("rules:\n");
    for i in 0..196 {
        let team = format!("team-{i:03}");
        match i % 4 {
            0 => write!(
                y,
                "  - name: {team}-deploys\n    match:\n      subjects: {{groups: [{team}]}}\n      verbs: [create, update, patch]\n      apiGroups: [apps]\n      resources: [deployments, statefulsets, deployments/scale]\n      namespaces: ['{team}-*']\n    action: approve\n    approval: {{reviewers: {{groups: [{team}-leads]}}}}\n"
            ),
            1 => write!(
                y,
                "  - name: {team}-window\n    match:\n      mutating: true\n      namespaces: ['{team}-prod']\n      when:\n        outside:\n          - {{cron: '0 10 * * TUE', duration: 2h, timeZone: Europe/Berlin}}\n    action: deny\n    message: outside the change window\n"
            ),
            2 => write!(
                y,
                "  - name: {team}-replicas\n    match:\n      verbs: [patch, update]\n      resources: [deployments]\n      namespaces: ['{team}-*']\n      conditions: ['object.spec.replicas > 20']\n    action: deny\n    message: too many replicas\n"
            ),
            _ => write!(
                y,
                "  - name: {team}-reads\n    match:\n      subjects: {{users: ['system:serviceaccount:{team}:*']}}\n      verbs: [get, list, watch]\n      namespaces: ['{team}-*']\n    action: allow\n"
            ),
        }
        .unwrap();
    }
    y.push_str(
        "  - name: platform-exec\n    match:\n      resources: [pods/exec, pods/attach, pods/portforward]\n    action: approve\n    approval: {reviewers: {groups: [sre]}, quorum: 2}\n\
         \x20 - name: platform-changes\n    match:\n      subjects: {groups: [agents], authenticators: ['static-token', 'oidc:*']}\n      mutating: true\n      verbs: [create, update, patch, delete]\n      apiGroups: ['', apps, batch]\n      resources: ['*']\n      namespaces: ['shared-*']\n    action: approve\n    approval: {reviewers: {groups: [reviewers]}}\n\
         \x20 - name: platform-reads\n    match: {mutating: false}\n    action: allow\n\
         \x20 - name: everything-else\n    action: approve\n    approval: {reviewers: {groups: [reviewers]}}\n",
    );
    y.push_str("default: {action: deny, message: no rule matched}\n");
    y
}
