//! The resource registry: every built-in kind the emulator serves (group, version, plural, kind,
//! scope, short names, categories, subresources) plus the resources that installed
//! CustomResourceDefinitions add.

use serde_json::Value;

/// The standard verbs of a stored resource.
pub const STORAGE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One column of a CRD's `additionalPrinterColumns`.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column name.
    pub name: String,
    /// `type` (string, integer, number, boolean, date).
    pub type_: String,
    /// `format`.
    pub format: String,
    /// `description`.
    pub description: String,
    /// `priority`.
    pub priority: i64,
    /// JSONPath.
    pub json_path: String,
}

/// Everything the router needs to know about one resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// Version served.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Subresources (`status`, `scale`, `log`, ...).
    pub subresources: Vec<&'static str>,
    /// Verbs; empty = [`STORAGE_VERBS`]. Virtual resources (reviews) only `create`.
    pub verbs: Vec<&'static str>,
    /// True for custom resources.
    pub custom: bool,
    /// Printer columns of a custom resource.
    pub printer_columns: Vec<PrinterColumn>,
    /// A custom resource with a scale subresource: JSON paths (spec, status replicas, selector).
    pub scale_paths: Option<(String, String, String)>,
}

impl ResourceInfo {
    /// `apiVersion` of objects of this resource.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key (version-independent).
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// True for create-only virtual resources (reviews, token requests).
    pub fn is_virtual(&self) -> bool {
        self.verbs == ["create"]
    }

    /// Whether the subresource exists.
    pub fn has_sub(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Verbs as served in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.verbs.is_empty() {
            STORAGE_VERBS.to_vec()
        } else {
            self.verbs.clone()
        }
    }

    /// Whether DELETE answers with the deleted object (true) or a `Status` (false).
    pub fn returns_deleted_object(&self) -> bool {
        self.custom
            || matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("", "pods")
                    | ("", "serviceaccounts")
                    | ("", "namespaces")
                    | ("apiextensions.k8s.io", "customresourcedefinitions")
            )
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    all: bool,
    subs: &[&'static str],
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if all { vec!["all".into()] } else { vec![] },
        subresources: subs.to_vec(),
        verbs: vec![],
        custom: false,
        printer_columns: vec![],
        scale_paths: None,
    }
}

fn virtual_res(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
) -> ResourceInfo {
    let mut r = builtin(group, version, plural, kind, namespaced, &[], false, &[]);
    r.verbs = vec!["create"];
    r
}

/// All built-in resources, in discovery order.
pub fn builtins() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            false,
            &["status", "finalize"],
        ),
        builtin(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            &["po"],
            true,
            &[
                "status",
                "log",
                "exec",
                "attach",
                "portforward",
                "binding",
                "eviction",
                "ephemeralcontainers",
            ],
        ),
        builtin("", "v1", "secrets", "Secret", true, &[], false, &[]),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            &[],
        ),
        builtin(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            true,
            &["status", "proxy"],
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            &["token"],
        ),
        builtin("", "v1", "events", "Event", true, &["ev"], false, &[]),
        builtin(
            "",
            "v1",
            "nodes",
            "Node",
            false,
            &["no"],
            false,
            &["status", "proxy"],
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
            &["status", "scale"],
        ),
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            true,
            &["status"],
        ),
        builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            true,
            &["status", "scale"],
        ),
        builtin("batch", "v1", "jobs", "Job", true, &[], true, &["status"]),
        builtin(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            true,
            &["cj"],
            true,
            &["status"],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            false,
            &["status"],
        ),
        builtin(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "CertificateSigningRequest",
            false,
            &["csr"],
            false,
            &["status", "approval"],
        ),
        virtual_res(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            "TokenReview",
            false,
        ),
        virtual_res(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
        ),
        virtual_res(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
        ),
        virtual_res(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
        ),
        virtual_res(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
        ),
    ]
}

/// Group version preference (discovery lists groups in this order).
pub const GROUP_ORDER: &[&str] = &[
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "batch",
    "certificates.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
];

fn s(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default().to_string()
}

/// The resources (one per served version) a CRD object defines.
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = s(spec, &["group"]);
    let names = &spec["names"];
    let plural = s(names, &["plural"]);
    let kind = s(names, &["kind"]);
    let mut singular = s(names, &["singular"]);
    if singular.is_empty() {
        singular = kind.to_ascii_lowercase();
    }
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for ver in spec["versions"].as_array().into_iter().flatten() {
        if ver["served"].as_bool() == Some(false) {
            continue;
        }
        let mut subs = Vec::new();
        let sr = if ver["subresources"].is_object() {
            &ver["subresources"]
        } else {
            &spec["subresources"]
        };
        if sr.get("status").is_some() {
            subs.push("status");
        }
        let scale_paths = sr.get("scale").map(|sc| {
            subs.push("scale");
            (
                s(sc, &["specReplicasPath"]),
                s(sc, &["statusReplicasPath"]),
                s(sc, &["labelSelectorPath"]),
            )
        });
        let cols_v = if ver["additionalPrinterColumns"].is_array() {
            &ver["additionalPrinterColumns"]
        } else {
            &spec["additionalPrinterColumns"]
        };
        let printer_columns = cols_v
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: s(c, &["name"]),
                type_: s(c, &["type"]),
                format: s(c, &["format"]),
                description: s(c, &["description"]),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: {
                    let jp = s(c, &["jsonPath"]);
                    if jp.is_empty() {
                        s(c, &["JSONPath"])
                    } else {
                        jp
                    }
                },
            })
            .collect();
        out.push(ResourceInfo {
            group: group.clone(),
            version: s(ver, &["name"]),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            subresources: subs,
            verbs: vec![],
            custom: true,
            printer_columns,
            scale_paths,
        });
    }
    out
}
