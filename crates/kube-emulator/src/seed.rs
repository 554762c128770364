//! Seed data: the base namespaces every cluster has (with their `default` ServiceAccounts and a
//! Node), and the `Demo` set (namespace `demo` with a Deployment, Pods, a Service, a ConfigMap
//! and a Secret holding credential-looking values, ServiceAccounts).

use serde_json::{Value, json};

/// Objects present in every emulator.
pub fn base() -> Vec<Value> {
    let mut v: Vec<Value> = ["default", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    v.push(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "emulator-node", "labels": {
            "kubernetes.io/hostname": "emulator-node", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/control-plane": ""
        }},
        "spec": {}
    }));
    v
}

fn pod(name: &str, with_secret_env: bool) -> Value {
    let mut container = json!({
        "name": "app",
        "image": "ghcr.io/holdpoint/demo-web:1.0",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "args": ["serve", "--port=8080"],
    });
    if with_secret_env {
        container["env"] = json!([
            {"name": "DATABASE_PASSWORD", "value": "hunter2-Pr0d-DB-pa55"},
            {"name": "LOG_LEVEL", "value": "info"}
        ]);
        container["envFrom"] = json!([{"secretRef": {"name": "web-credentials"}}]);
        container["args"] = json!(["serve", "--port=8080", "--print-env"]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": "web"}},
        "spec": {"containers": [container], "serviceAccountName": "deployer"}
    })
}

/// The `Demo` seed.
pub fn demo() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": "demo"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": "default"}}),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "web-credentials", "namespace": "demo", "labels": {"app": "web"}},
            "type": "Opaque",
            "stringData": {
                "username": "app",
                "password": "s3cr3t-pa55",
                "api-token": "ghp_Zx9demoTokenAbCdEf0123456789SECRET"
            }
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "demo", "labels": {"app": "web"}},
            "data": {
                "app.properties": "listen=:8080\nlog_level=info\ndb_url=postgres://app:s3cr3t-pa55@db:5432/app\n",
                "feature-flags": "new-ui=true"
            }
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"serviceAccountName": "deployer", "containers": [{
                        "name": "app", "image": "ghcr.io/holdpoint/demo-web:1.0",
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "env": [{"name": "DATABASE_PASSWORD", "value": "hunter2-Pr0d-DB-pa55"}],
                        "envFrom": [{"secretRef": {"name": "web-credentials"}}]
                    }]}
                }
            }
        }),
        pod("web-0", true),
        pod("web-1", false),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }),
    ]
}
