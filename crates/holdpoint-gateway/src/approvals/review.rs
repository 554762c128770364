//! What a reviewer is shown about a held request, computed without sending it for real.
//!
//! Pure helpers: the decoded request body rendered as YAML, the risk flags of a write (pods that
//! read Secrets or escape their sandbox, RBAC and admission changes, `kube-system`, cluster-scoped
//! objects), and a unified diff between the live object and the server-side dry-run result. The
//! I/O (fetching the live object, sending the dry run) is done by the approvals service.

use kube_request::{BodyFormat, RequestInfo};
use serde::Serialize;
use serde_json::Value;

/// A reason for a reviewer to look twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// A pod (or pod template) mounts a Secret, reads one into `env`/`envFrom`, or a projected
    /// service-account token.
    ReadsSecrets,
    /// A container runs privileged, may escalate privileges or adds capabilities.
    Privileged,
    /// The pod shares the node's network, PID or IPC namespace.
    HostNamespace,
    /// The pod mounts a path of the node.
    HostPath,
    /// Creates or changes an RBAC role or binding.
    Rbac,
    /// An RBAC rule grants `bind`, `escalate`, `impersonate` or `*`.
    RbacEscalation,
    /// Changes an admission webhook configuration or policy.
    Webhook,
    /// Changes an aggregated APIService (redirects part of the API to another server).
    ApiService,
    /// Mints a credential (TokenRequest, CSR approval).
    MintsCredential,
    /// Opens an interactive stream into a workload (exec, attach, port-forward, proxy).
    Interactive,
    /// Targets `kube-system`.
    KubeSystem,
    /// Targets a cluster-scoped object.
    ClusterScoped,
}

/// The pod specs inside an object of a known workload kind (a Pod's own spec, a template's, a
/// CronJob's job template's).
fn pod_specs(object: &Value) -> Vec<&Value> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let spec = &object["spec"];
    match kind {
        "Pod" => vec![spec],
        "PodTemplate" => vec![&object["template"]["spec"]],
        "CronJob" => vec![&spec["jobTemplate"]["spec"]["template"]["spec"]],
        "EphemeralContainers" => vec![spec],
        _ if spec.get("template").is_some() => vec![&spec["template"]["spec"]],
        _ => Vec::new(),
    }
}

fn containers(pod_spec: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|k| pod_spec.get(k).and_then(Value::as_array))
        .flatten()
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn truthy(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn pod_flags(pod_spec: &Value, out: &mut Vec<Flag>) {
    let volumes = array(pod_spec, "volumes");
    let secret_volume = volumes.iter().any(|v| {
        v.get("secret").is_some()
            || array(&v["projected"], "sources")
                .iter()
                .any(|s| s.get("secret").is_some() || s.get("serviceAccountToken").is_some())
    });
    let secret_env = containers(pod_spec).any(|c| {
        array(c, "env")
            .iter()
            .any(|e| e.pointer("/valueFrom/secretKeyRef").is_some())
            || array(c, "envFrom")
                .iter()
                .any(|e| e.get("secretRef").is_some())
    });
    if secret_volume || secret_env {
        out.push(Flag::ReadsSecrets);
    }
    let privileged = containers(pod_spec).any(|c| {
        truthy(c, "/securityContext/privileged")
            || truthy(c, "/securityContext/allowPrivilegeEscalation")
            || !array(&c["securityContext"]["capabilities"], "add").is_empty()
    });
    if privileged {
        out.push(Flag::Privileged);
    }
    if ["/hostNetwork", "/hostPID", "/hostIPC"]
        .iter()
        .any(|p| truthy(pod_spec, p))
    {
        out.push(Flag::HostNamespace);
    }
    if volumes.iter().any(|v| v.get("hostPath").is_some()) {
        out.push(Flag::HostPath);
    }
}

fn grants_escalation(object: &Value) -> bool {
    array(object, "rules").iter().any(|rule| {
        array(rule, "verbs")
            .iter()
            .any(|v| matches!(v.as_str(), Some("bind" | "escalate" | "impersonate" | "*")))
    })
}

/// The flags of a request, from its classification and (for writes) the decoded object.
pub fn flags(info: &RequestInfo, object: Option<&Value>) -> Vec<Flag> {
    let mut out = Vec::new();
    if let Some(object) = object {
        for spec in pod_specs(object) {
            pod_flags(spec, &mut out);
        }
    }
    let group = info.api_group.as_str();
    let resource = info.resource.as_str();
    let sub = info.subresource.as_str();
    if group == "rbac.authorization.k8s.io" {
        out.push(Flag::Rbac);
        if object.is_some_and(grants_escalation) {
            out.push(Flag::RbacEscalation);
        }
    }
    if group == "admissionregistration.k8s.io" {
        out.push(Flag::Webhook);
    }
    if group == "apiregistration.k8s.io" {
        out.push(Flag::ApiService);
    }
    if (resource == "serviceaccounts" && sub == "token")
        || (resource == "certificatesigningrequests" && sub == "approval")
    {
        out.push(Flag::MintsCredential);
    }
    if matches!(sub, "exec" | "attach" | "portforward" | "proxy") {
        out.push(Flag::Interactive);
    }
    if info.namespace == "kube-system" {
        out.push(Flag::KubeSystem);
    }
    if info.is_resource_request && info.namespace.is_empty() {
        out.push(Flag::ClusterScoped);
    }
    out.dedup();
    out
}

/// Decodes a request body for display and policy: JSON and YAML bodies and the four patch kinds
/// become a JSON value; protobuf and CBOR bodies are not decoded (`None`).
pub fn decode_body(format: &BodyFormat, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    match format {
        BodyFormat::Json
        | BodyFormat::JsonPatch
        | BodyFormat::MergePatch
        | BodyFormat::StrategicMergePatch => serde_json::from_slice(body).ok(),
        BodyFormat::Yaml | BodyFormat::ApplyPatchYaml => {
            let text = std::str::from_utf8(body).ok()?;
            serde_saphyr::from_str(text).ok()
        }
        _ => None,
    }
}

/// Renders a value as YAML for a reviewer.
pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// A unified diff from `before` to `after`, both rendered as YAML; `managedFields`,
/// `resourceVersion` and `generation` are left out, they change on every write.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> String {
    fn clean(v: Option<&Value>) -> String {
        let Some(v) = v else {
            return String::new();
        };
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in ["managedFields", "resourceVersion", "generation"] {
                meta.remove(key);
            }
        }
        to_yaml(&v)
    }
    let (a, b) = (clean(before), clean(after));
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("live", "after (server dry run)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(method: &str, path: &str) -> RequestInfo {
        kube_request::classify(&method.parse().unwrap(), path, None).unwrap()
    }

    #[test]
    fn pod_template_reading_secrets_and_privileged() {
        let deploy = json!({
            "kind": "Deployment",
            "spec": {"template": {"spec": {
                "hostNetwork": true,
                "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                "containers": [{
                    "name": "c",
                    "envFrom": [{"secretRef": {"name": "db"}}],
                    "securityContext": {"privileged": true}
                }]
            }}}
        });
        let f = flags(
            &info("POST", "/apis/apps/v1/namespaces/prod/deployments"),
            Some(&deploy),
        );
        assert_eq!(
            f,
            vec![
                Flag::ReadsSecrets,
                Flag::Privileged,
                Flag::HostNamespace,
                Flag::HostPath
            ]
        );
    }

    #[test]
    fn cronjob_secret_key_ref_and_projected_token() {
        let cj = json!({
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]
            }}}}}
        });
        assert!(
            flags(
                &info("POST", "/apis/batch/v1/namespaces/a/cronjobs"),
                Some(&cj)
            )
            .contains(&Flag::ReadsSecrets)
        );
        let pod = json!({"kind": "Pod", "spec": {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}], "containers": []}});
        assert!(
            flags(&info("POST", "/api/v1/namespaces/a/pods"), Some(&pod))
                .contains(&Flag::ReadsSecrets)
        );
    }

    #[test]
    fn plain_pod_has_no_flags() {
        let pod = json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        assert!(flags(&info("POST", "/api/v1/namespaces/a/pods"), Some(&pod)).is_empty());
    }

    #[test]
    fn rbac_escalation_kube_system_cluster_scope() {
        let role = json!({"kind": "ClusterRole", "rules": [{"verbs": ["impersonate"], "resources": ["users"]}]});
        let f = flags(
            &info("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
            Some(&role),
        );
        assert_eq!(
            f,
            vec![Flag::Rbac, Flag::RbacEscalation, Flag::ClusterScoped]
        );
        let f = flags(
            &info("DELETE", "/api/v1/namespaces/kube-system/configmaps/x"),
            None,
        );
        assert_eq!(f, vec![Flag::KubeSystem]);
        let f = flags(
            &info("POST", "/api/v1/namespaces/a/serviceaccounts/default/token"),
            None,
        );
        assert_eq!(f, vec![Flag::MintsCredential]);
        let f = flags(&info("GET", "/api/v1/namespaces/a/pods/p/exec"), None);
        assert_eq!(f, vec![Flag::Interactive]);
        let f = flags(
            &info(
                "POST",
                "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            ),
            None,
        );
        assert_eq!(f, vec![Flag::Webhook, Flag::ClusterScoped]);
    }

    #[test]
    fn decodes_every_text_format() {
        let j = decode_body(&BodyFormat::Json, br#"{"a":1}"#).unwrap();
        assert_eq!(j, json!({"a": 1}));
        let y = decode_body(&BodyFormat::ApplyPatchYaml, b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(y, json!({"a": 1, "b": ["x"]}));
        let p = decode_body(&BodyFormat::JsonPatch, br#"[{"op":"remove","path":"/a"}]"#).unwrap();
        assert!(p.is_array());
        assert_eq!(decode_body(&BodyFormat::Protobuf, b"k8s\0..."), None);
        assert_eq!(decode_body(&BodyFormat::Json, b"{not json"), None);
    }

    #[test]
    fn diff_shows_the_change_only() {
        let live =
            json!({"metadata": {"name": "w", "resourceVersion": "1"}, "spec": {"replicas": 1}});
        let after =
            json!({"metadata": {"name": "w", "resourceVersion": "2"}, "spec": {"replicas": 3}});
        let d = diff(Some(&live), Some(&after));
        assert!(d.contains("-  replicas: 1"), "{d}");
        assert!(d.contains("+  replicas: 3"), "{d}");
        assert!(!d.contains("resourceVersion"), "{d}");
    }
}
