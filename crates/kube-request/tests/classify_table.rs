//! Table-driven classification tests: one row per request.
//!
//! Every row states the method, raw path, raw query and either the full
//! expected classification (verb, group, version, namespace, resource,
//! subresource, name, is_resource_request, is_mutating) or the expected
//! [`PathError`].

use http::Method;
use kube_request::{ConnectKind, DryRun, NonResourceKind as NK, PathError as PE, classify};

#[derive(Debug)]
enum Want {
    Res {
        verb: &'static str,
        group: &'static str,
        version: &'static str,
        ns: &'static str,
        resource: &'static str,
        sub: &'static str,
        name: &'static str,
        mutating: bool,
    },
    NonRes {
        verb: &'static str,
        kind: NK,
        mutating: bool,
    },
    Err(PE),
}

struct Row(&'static str, &'static str, Option<&'static str>, Want);

#[allow(clippy::too_many_arguments)]
const fn res(
    verb: &'static str,
    group: &'static str,
    version: &'static str,
    ns: &'static str,
    resource: &'static str,
    sub: &'static str,
    name: &'static str,
    mutating: bool,
) -> Want {
    Want::Res {
        verb,
        group,
        version,
        ns,
        resource,
        sub,
        name,
        mutating,
    }
}

/// Core group (`/api/v1`) shorthand.
const fn core(
    verb: &'static str,
    ns: &'static str,
    resource: &'static str,
    sub: &'static str,
    name: &'static str,
    mutating: bool,
) -> Want {
    res(verb, "", "v1", ns, resource, sub, name, mutating)
}

const fn nr(verb: &'static str, kind: NK, mutating: bool) -> Want {
    Want::NonRes {
        verb,
        kind,
        mutating,
    }
}

const fn err(e: PE) -> Want {
    Want::Err(e)
}

const P: &str = "/api/v1/namespaces/d/pods";

fn rows() -> Vec<Row> {
    let mut v = vec![
        // ---------------------------------------------------------- core, namespaced
        Row(
            "GET",
            "/api/v1/namespaces/d/pods",
            None,
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("get", "d", "pods", "", "p", false),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods",
            None,
            core("create", "d", "pods", "", "", true),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("update", "d", "pods", "", "p", true),
        ),
        Row(
            "PATCH",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("patch", "d", "pods", "", "p", true),
        ),
        Row(
            "DELETE",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("delete", "d", "pods", "", "p", true),
        ),
        Row(
            "DELETE",
            "/api/v1/namespaces/d/pods",
            None,
            core("deletecollection", "d", "pods", "", "", true),
        ),
        Row(
            "HEAD",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("get", "d", "pods", "", "p", false),
        ),
        Row(
            "HEAD",
            "/api/v1/namespaces/d/pods",
            None,
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "OPTIONS",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("", "d", "pods", "", "p", true),
        ),
        Row(
            "CONNECT",
            "/api/v1/namespaces/d/pods/p",
            None,
            core("", "d", "pods", "", "p", true),
        ),
        Row(
            "TRACE",
            "/api/v1/namespaces/d/pods",
            None,
            core("", "d", "pods", "", "", true),
        ),
        Row(
            "get",
            "/api/v1/namespaces/d/pods",
            None,
            core("", "d", "pods", "", "", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/secrets/s",
            None,
            core("get", "d", "secrets", "", "s", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            Some("limit=500"),
            core("list", "d", "configmaps", "", "", false),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/configmaps",
            Some("fieldManager=kubectl"),
            core("create", "d", "configmaps", "", "", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/events",
            Some("resourceVersion=0"),
            core("list", "d", "events", "", "", false),
        ),
        // ---------------------------------------------------------- core, cluster-scoped
        Row(
            "GET",
            "/api/v1/pods",
            None,
            core("list", "", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n1",
            None,
            core("get", "", "nodes", "", "n1", false),
        ),
        Row(
            "DELETE",
            "/api/v1/nodes",
            None,
            core("deletecollection", "", "nodes", "", "", true),
        ),
        Row(
            "GET",
            "/api/v1/persistentvolumes/pv1",
            None,
            core("get", "", "persistentvolumes", "", "pv1", false),
        ),
        Row(
            "PATCH",
            "/api/v1/nodes/n1/status",
            None,
            core("patch", "", "nodes", "status", "n1", true),
        ),
        // ---------------------------------------------------------- namespaces
        Row(
            "GET",
            "/api/v1/namespaces",
            None,
            core("list", "", "namespaces", "", "", false),
        ),
        Row(
            "POST",
            "/api/v1/namespaces",
            None,
            core("create", "", "namespaces", "", "", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/kube-system",
            None,
            core("get", "kube-system", "namespaces", "", "kube-system", false),
        ),
        Row(
            "DELETE",
            "/api/v1/namespaces/foo",
            None,
            core("delete", "foo", "namespaces", "", "foo", true),
        ),
        Row(
            "PATCH",
            "/api/v1/namespaces/foo",
            None,
            core("patch", "foo", "namespaces", "", "foo", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/foo/status",
            None,
            core("get", "foo", "namespaces", "status", "foo", false),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/foo/status",
            None,
            core("update", "foo", "namespaces", "status", "foo", true),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/foo/finalize",
            None,
            core("update", "foo", "namespaces", "finalize", "foo", true),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/foo/finalize/",
            None,
            core("update", "foo", "namespaces", "finalize", "foo", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/status",
            None,
            core("get", "status", "namespaces", "", "status", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/foo/statuses",
            None,
            core("list", "foo", "statuses", "", "", false),
        ),
        // ---------------------------------------------------------- named groups
        Row(
            "GET",
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            res("list", "apps", "v1", "d", "deployments", "", "", false),
        ),
        Row(
            "GET",
            "/apis/apps/v1/namespaces/d/deployments/web",
            None,
            res("get", "apps", "v1", "d", "deployments", "", "web", false),
        ),
        Row(
            "POST",
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            res("create", "apps", "v1", "d", "deployments", "", "", true),
        ),
        Row(
            "DELETE",
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            res(
                "deletecollection",
                "apps",
                "v1",
                "d",
                "deployments",
                "",
                "",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            None,
            res(
                "get",
                "apps",
                "v1",
                "d",
                "deployments",
                "scale",
                "web",
                false,
            ),
        ),
        Row(
            "PUT",
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            None,
            res(
                "update",
                "apps",
                "v1",
                "d",
                "deployments",
                "scale",
                "web",
                true,
            ),
        ),
        Row(
            "PATCH",
            "/apis/apps/v1/namespaces/d/deployments/web/status",
            None,
            res(
                "patch",
                "apps",
                "v1",
                "d",
                "deployments",
                "status",
                "web",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/apps/v1/namespaces/d/replicasets/r/scale",
            None,
            res("get", "apps", "v1", "d", "replicasets", "scale", "r", false),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/d/replicationcontrollers/rc/scale",
            None,
            core("update", "d", "replicationcontrollers", "scale", "rc", true),
        ),
        Row(
            "GET",
            "/apis/apps/v1/deployments",
            None,
            res("list", "apps", "v1", "", "deployments", "", "", false),
        ),
        Row(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            None,
            res(
                "list",
                "rbac.authorization.k8s.io",
                "v1",
                "",
                "clusterroles",
                "",
                "",
                false,
            ),
        ),
        Row(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/admin",
            None,
            res(
                "get",
                "rbac.authorization.k8s.io",
                "v1",
                "",
                "clusterrolebindings",
                "",
                "admin",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/d/rolebindings",
            None,
            res(
                "create",
                "rbac.authorization.k8s.io",
                "v1",
                "d",
                "rolebindings",
                "",
                "",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/batch/v1/namespaces/d/jobs/j",
            None,
            res("get", "batch", "v1", "d", "jobs", "", "j", false),
        ),
        Row(
            "PATCH",
            "/apis/batch/v1/namespaces/d/cronjobs/c/status",
            None,
            res("patch", "batch", "v1", "d", "cronjobs", "status", "c", true),
        ),
        Row(
            "GET",
            "/apis/networking.k8s.io/v1/ingressclasses",
            None,
            res(
                "list",
                "networking.k8s.io",
                "v1",
                "",
                "ingressclasses",
                "",
                "",
                false,
            ),
        ),
        Row(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com",
            None,
            res(
                "get",
                "apiextensions.k8s.io",
                "v1",
                "",
                "customresourcedefinitions",
                "",
                "foos.example.com",
                false,
            ),
        ),
        Row(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/standard",
            None,
            res(
                "get",
                "storage.k8s.io",
                "v1",
                "",
                "storageclasses",
                "",
                "standard",
                false,
            ),
        ),
        Row(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node1",
            None,
            res(
                "update",
                "coordination.k8s.io",
                "v1",
                "kube-node-lease",
                "leases",
                "",
                "node1",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/autoscaling/v2/namespaces/d/horizontalpodautoscalers/h/status",
            None,
            res(
                "get",
                "autoscaling",
                "v2",
                "d",
                "horizontalpodautoscalers",
                "status",
                "h",
                false,
            ),
        ),
        Row(
            "DELETE",
            "/apis/apiregistration.k8s.io/v1/apiservices/v1.example.com",
            None,
            res(
                "delete",
                "apiregistration.k8s.io",
                "v1",
                "",
                "apiservices",
                "",
                "v1.example.com",
                true,
            ),
        ),
        // ---------------------------------------------------------- custom resources
        Row(
            "GET",
            "/apis/example.com/v1alpha1/namespaces/d/widgets",
            None,
            res(
                "list",
                "example.com",
                "v1alpha1",
                "d",
                "widgets",
                "",
                "",
                false,
            ),
        ),
        Row(
            "GET",
            "/apis/example.com/v1alpha1/namespaces/d/widgets/w1",
            None,
            res(
                "get",
                "example.com",
                "v1alpha1",
                "d",
                "widgets",
                "",
                "w1",
                false,
            ),
        ),
        Row(
            "PATCH",
            "/apis/example.com/v1alpha1/namespaces/d/widgets/w1/status",
            None,
            res(
                "patch",
                "example.com",
                "v1alpha1",
                "d",
                "widgets",
                "status",
                "w1",
                true,
            ),
        ),
        Row(
            "PUT",
            "/apis/example.com/v1/clusterwidgets/cw/scale",
            None,
            res(
                "update",
                "example.com",
                "v1",
                "",
                "clusterwidgets",
                "scale",
                "cw",
                true,
            ),
        ),
        Row(
            "DELETE",
            "/apis/example.com/v1/clusterwidgets",
            None,
            res(
                "deletecollection",
                "example.com",
                "v1",
                "",
                "clusterwidgets",
                "",
                "",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/stable.example.com/v1/namespaces/d/crontabs",
            Some("watch=true"),
            res(
                "watch",
                "stable.example.com",
                "v1",
                "d",
                "crontabs",
                "",
                "",
                false,
            ),
        ),
        // A namespaced CR named like a namespace subresource is misread by the apiserver too.
        Row(
            "GET",
            "/apis/example.com/v1/namespaces/d/status",
            None,
            res(
                "get",
                "example.com",
                "v1",
                "d",
                "namespaces",
                "status",
                "d",
                false,
            ),
        ),
        // ---------------------------------------------------------- pod subresources
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/log",
            None,
            core("get", "d", "pods", "log", "p", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/log",
            Some("follow=true&container=c"),
            core("get", "d", "pods", "log", "p", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/status",
            None,
            core("get", "d", "pods", "status", "p", false),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/d/pods/p/status",
            None,
            core("update", "d", "pods", "status", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/exec",
            Some("command=ls&stdout=true"),
            core("get", "d", "pods", "exec", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/exec",
            Some("command=sh&stdin=true&tty=true"),
            core("create", "d", "pods", "exec", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/ex%65c",
            Some("command=id"),
            core("get", "d", "pods", "exec", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/%65%78%65%63",
            None,
            core("create", "d", "pods", "exec", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/exec/extra",
            None,
            core("get", "d", "pods", "exec", "p", true),
        ),
        Row(
            "HEAD",
            "/api/v1/namespaces/d/pods/p/exec",
            None,
            core("get", "d", "pods", "exec", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/attach",
            None,
            core("get", "d", "pods", "attach", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/attach",
            Some("stdin=true"),
            core("create", "d", "pods", "attach", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/%61ttach",
            None,
            core("get", "d", "pods", "attach", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/portforward",
            Some("ports=8080"),
            core("get", "d", "pods", "portforward", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/portforward",
            None,
            core("create", "d", "pods", "portforward", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/ephemeralcontainers",
            None,
            core("get", "d", "pods", "ephemeralcontainers", "p", false),
        ),
        Row(
            "PATCH",
            "/api/v1/namespaces/d/pods/p/ephemeralcontainers",
            None,
            core("patch", "d", "pods", "ephemeralcontainers", "p", true),
        ),
        Row(
            "PUT",
            "/api/v1/namespaces/d/pods/p/ephemeralcontainers",
            None,
            core("update", "d", "pods", "ephemeralcontainers", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/eviction",
            None,
            core("create", "d", "pods", "eviction", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p/binding",
            None,
            core("create", "d", "pods", "binding", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/bindings",
            None,
            core("create", "d", "bindings", "", "", true),
        ),
        Row(
            "PATCH",
            "/api/v1/namespaces/d/pods/p/resize",
            None,
            core("patch", "d", "pods", "resize", "p", true),
        ),
        // ---------------------------------------------------------- proxy subresources
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/proxy",
            None,
            core("get", "d", "pods", "proxy", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/proxy/some/path",
            None,
            core("get", "d", "pods", "proxy", "p", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/pods/p:8080/proxy/api/x",
            None,
            core("create", "d", "pods", "proxy", "p:8080", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/services/s:http/proxy/",
            None,
            core("get", "d", "services", "proxy", "s:http", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/services/https:s:443/proxy/metrics",
            Some("x=1"),
            core("get", "d", "services", "proxy", "https:s:443", true),
        ),
        Row(
            "DELETE",
            "/api/v1/namespaces/d/services/s/proxy/x",
            None,
            core("delete", "d", "services", "proxy", "s", true),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n1/proxy",
            None,
            core("get", "", "nodes", "proxy", "n1", true),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n1/proxy/metrics",
            None,
            core("get", "", "nodes", "proxy", "n1", true),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n1/proxy/stats/summary",
            None,
            core("get", "", "nodes", "proxy", "n1", true),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n1:10250/proxy/configz",
            None,
            core("get", "", "nodes", "proxy", "n1:10250", true),
        ),
        // ---------------------------------------------------------- credentials / approval
        Row(
            "POST",
            "/api/v1/namespaces/d/serviceaccounts/sa/token",
            None,
            core("create", "d", "serviceaccounts", "token", "sa", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/serviceaccounts/sa/token",
            Some("dryRun=All"),
            core("create", "d", "serviceaccounts", "token", "sa", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/serviceaccounts/sa/token",
            None,
            core("get", "d", "serviceaccounts", "token", "sa", true),
        ),
        Row(
            "POST",
            "/api/v1/namespaces/d/serviceaccounts/sa/t%6Fken",
            None,
            core("create", "d", "serviceaccounts", "token", "sa", true),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/serviceaccounts/sa",
            None,
            core("get", "d", "serviceaccounts", "", "sa", false),
        ),
        Row(
            "PUT",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1/approval",
            None,
            res(
                "update",
                "certificates.k8s.io",
                "v1",
                "",
                "certificatesigningrequests",
                "approval",
                "csr1",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1/approval",
            None,
            res(
                "get",
                "certificates.k8s.io",
                "v1",
                "",
                "certificatesigningrequests",
                "approval",
                "csr1",
                true,
            ),
        ),
        Row(
            "PATCH",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1/status",
            None,
            res(
                "patch",
                "certificates.k8s.io",
                "v1",
                "",
                "certificatesigningrequests",
                "status",
                "csr1",
                true,
            ),
        ),
        Row(
            "GET",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1",
            None,
            res(
                "get",
                "certificates.k8s.io",
                "v1",
                "",
                "certificatesigningrequests",
                "",
                "csr1",
                false,
            ),
        ),
        // ---------------------------------------------------------- legacy /watch/ prefix
        Row(
            "GET",
            "/api/v1/watch/pods",
            None,
            core("watch", "", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/watch/namespaces/x/pods",
            None,
            core("watch", "x", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/watch/namespaces/x/pods/p",
            None,
            core("watch", "x", "pods", "", "p", false),
        ),
        Row(
            "GET",
            "/api/v1/watch/namespaces/x",
            None,
            core("watch", "x", "namespaces", "", "x", false),
        ),
        Row(
            "GET",
            "/api/v1/watch/namespaces",
            None,
            core("watch", "", "namespaces", "", "", false),
        ),
        Row(
            "GET",
            "/apis/apps/v1/watch/namespaces/x/deployments",
            None,
            res("watch", "apps", "v1", "x", "deployments", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/watch/namespaces/x/pods",
            Some("watch=false"),
            core("watch", "x", "pods", "", "", false),
        ),
        Row(
            "DELETE",
            "/api/v1/watch/pods",
            None,
            core("watch", "", "pods", "", "", true),
        ),
        Row(
            "POST",
            "/api/v1/watch/namespaces/x/pods",
            None,
            core("watch", "x", "pods", "", "", true),
        ),
        Row("GET", "/api/v1/watch", None, err(PE::MissingResource)),
        Row(
            "GET",
            "/apis/apps/v1/watch/",
            None,
            err(PE::MissingResource),
        ),
        // ---------------------------------------------------------- legacy /proxy/ prefix
        Row(
            "GET",
            "/api/v1/proxy/namespaces/d/pods/p/healthz",
            None,
            core("proxy", "d", "pods", "", "p", true),
        ),
        Row(
            "GET",
            "/api/v1/proxy/nodes/n1/stats",
            None,
            core("proxy", "", "nodes", "", "n1", true),
        ),
        Row(
            "POST",
            "/api/v1/proxy/namespaces/d/services/s",
            None,
            core("proxy", "d", "services", "", "s", true),
        ),
        Row("GET", "/api/v1/proxy", None, err(PE::MissingResource)),
        // ---------------------------------------------------------- watch query parameter
        Row(
            "GET",
            P,
            Some("watch=true"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=1"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=t"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=T"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=TRUE"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=True"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=false"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=0"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=FALSE"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=False"),
            core("list", "d", "pods", "", "", false),
        ),
        // The apiserver is not strconv.ParseBool: only "0" and "false" (any case) are false.
        Row(
            "GET",
            P,
            Some("watch=garbage"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=f"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=no"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch="),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=false&watch=true"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=true&watch=false"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=1&watch=0"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("Watch=true"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("w%61tch=1"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=%74rue"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=%zz"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=%zz&watch=1"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("watch=1;x=y"),
            core("list", "d", "pods", "", "", false),
        ),
        // strings.EqualFold folds U+017F (long s) to 's' ...
        Row(
            "GET",
            P,
            Some("watch=fal%C5%BFe"),
            core("list", "d", "pods", "", "", false),
        ),
        // ... but when ListOptions decoding fails, the fallback uses strings.ToLower.
        Row(
            "GET",
            P,
            Some("watch=fal%C5%BFe&limit=abc"),
            core("watch", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p",
            Some("watch=true"),
            core("get", "d", "pods", "", "p", false),
        ),
        Row(
            "DELETE",
            P,
            Some("watch=true"),
            core("deletecollection", "d", "pods", "", "", true),
        ),
        // ---------------------------------------------------------- fieldSelector metadata.name
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name%3Dfoo"),
            core("list", "d", "pods", "", "foo", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name=foo&watch=1"),
            core("watch", "d", "pods", "", "foo", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name==foo"),
            core("list", "d", "pods", "", "foo", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name!=foo"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=spec.nodeName%3Dn,metadata.name%3Dfoo"),
            core("list", "d", "pods", "", "foo", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name=.."),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name=foo&limit=x"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            P,
            Some("fieldSelector=metadata.name=a=b"),
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "DELETE",
            P,
            Some("fieldSelector=metadata.name=foo"),
            core("deletecollection", "d", "pods", "", "", true),
        ),
        // ---------------------------------------------------------- review APIs
        Row(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            res(
                "create",
                "authorization.k8s.io",
                "v1",
                "",
                "selfsubjectaccessreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            None,
            res(
                "create",
                "authorization.k8s.io",
                "v1",
                "",
                "selfsubjectrulesreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            None,
            res(
                "create",
                "authorization.k8s.io",
                "v1",
                "",
                "subjectaccessreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authorization.k8s.io/v1/namespaces/d/localsubjectaccessreviews",
            None,
            res(
                "create",
                "authorization.k8s.io",
                "v1",
                "d",
                "localsubjectaccessreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            None,
            res(
                "create",
                "authentication.k8s.io",
                "v1",
                "",
                "tokenreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
            res(
                "create",
                "authentication.k8s.io",
                "v1",
                "",
                "selfsubjectreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews",
            None,
            res(
                "create",
                "authentication.k8s.io",
                "v1beta1",
                "",
                "selfsubjectreviews",
                "",
                "",
                false,
            ),
        ),
        Row(
            "POST",
            "/apis/authentication.k8s.io/v1/subjectaccessreviews",
            None,
            res(
                "create",
                "authentication.k8s.io",
                "v1",
                "",
                "subjectaccessreviews",
                "",
                "",
                true,
            ),
        ),
        Row(
            "POST",
            "/apis/evil.example.com/v1/tokenreviews",
            None,
            res(
                "create",
                "evil.example.com",
                "v1",
                "",
                "tokenreviews",
                "",
                "",
                true,
            ),
        ),
        Row(
            "DELETE",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews/x",
            None,
            res(
                "delete",
                "authorization.k8s.io",
                "v1",
                "",
                "subjectaccessreviews",
                "",
                "x",
                true,
            ),
        ),
        // ---------------------------------------------------------- non-resource URLs
        Row("GET", "/", None, nr("get", NK::Discovery, false)),
        Row("GET", "/api", None, nr("get", NK::Discovery, false)),
        Row("GET", "/api/", None, nr("get", NK::Discovery, false)),
        Row("GET", "/api/v1", None, nr("get", NK::Discovery, false)),
        Row("GET", "/apis", None, nr("get", NK::Discovery, false)),
        Row("GET", "/apis/apps", None, nr("get", NK::Discovery, false)),
        Row(
            "GET",
            "/apis/apps/v1",
            None,
            nr("get", NK::Discovery, false),
        ),
        Row(
            "GET",
            "/apis/apps/v1/",
            None,
            nr("get", NK::Discovery, false),
        ),
        Row("POST", "/api/v1", None, nr("post", NK::Discovery, true)),
        Row("GET", "/version", None, nr("get", NK::Version, false)),
        Row("GET", "/healthz", None, nr("get", NK::Health, false)),
        Row("GET", "/livez/ping", None, nr("get", NK::Health, false)),
        Row(
            "GET",
            "/readyz",
            Some("verbose"),
            nr("get", NK::Health, false),
        ),
        Row("GET", "/metrics", None, nr("get", NK::Metrics, false)),
        Row("GET", "/metrics/slis", None, nr("get", NK::Metrics, false)),
        Row("GET", "/openapi/v2", None, nr("get", NK::OpenApi, false)),
        Row(
            "GET",
            "/openapi/v3/apis/apps/v1",
            Some("hash=abc"),
            nr("get", NK::OpenApi, false),
        ),
        Row(
            "GET",
            "/logs/kube-apiserver.log",
            None,
            nr("get", NK::Logs, false),
        ),
        Row(
            "GET",
            "/debug/pprof/profile",
            Some("seconds=30"),
            nr("get", NK::Debug, false),
        ),
        Row("PUT", "/debug/flags/v", None, nr("put", NK::Debug, true)),
        Row(
            "GET",
            "/.well-known/openid-configuration",
            None,
            nr("get", NK::WellKnown, false),
        ),
        Row(
            "GET",
            "/openid/v1/jwks",
            None,
            nr("get", NK::WellKnown, false),
        ),
        Row("POST", "/healthz", None, nr("post", NK::Health, true)),
        Row("DELETE", "/metrics", None, nr("delete", NK::Metrics, true)),
        Row("HEAD", "/version", None, nr("head", NK::Version, false)),
        Row("OPTIONS", "/api", None, nr("options", NK::Discovery, true)),
        Row("GET", "/foo/bar/baz", None, nr("get", NK::Other, false)),
        Row("POST", "/foo/bar/baz", None, nr("post", NK::Other, true)),
        Row("GET", "/apiss/v1/pods", None, nr("get", NK::Other, false)),
        Row("GET", "/API/v1/pods", None, nr("get", NK::Other, false)),
        // ---------------------------------------------------------- path tricks
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/../secrets",
            None,
            err(PE::DotSegment),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/./pods",
            None,
            err(PE::DotSegment),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/..",
            None,
            err(PE::DotSegment),
        ),
        Row("GET", "/..", None, err(PE::DotSegment)),
        Row("GET", "/api/v1//pods", None, err(PE::EmptySegment)),
        Row("GET", "//api/v1/pods", None, err(PE::EmptySegment)),
        Row("GET", "//", None, err(PE::EmptySegment)),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods//",
            None,
            err(PE::EmptySegment),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods%2Fp",
            None,
            err(PE::EncodedSlash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods%2fp",
            None,
            err(PE::EncodedSlash),
        ),
        Row("GET", "/api%2Fv1/pods", None, err(PE::EncodedSlash)),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/%2E%2E",
            None,
            err(PE::EncodedDot),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/%2e",
            None,
            err(PE::EncodedDot),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/.%2e",
            None,
            err(PE::EncodedDot),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%5Cx",
            None,
            err(PE::EncodedBackslash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%5cx",
            None,
            err(PE::EncodedBackslash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods\\p",
            None,
            err(PE::Backslash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/..\\secrets",
            None,
            err(PE::Backslash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods%252Fp",
            None,
            err(PE::DoubleEncoding),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/%252e%252e",
            None,
            err(PE::DoubleEncoding),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p;x=y",
            None,
            err(PE::PathParameter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods;/p",
            None,
            err(PE::PathParameter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%3Bx",
            None,
            err(PE::PathParameter),
        ),
        Row(
            "GET",
            "http://host/api/v1/pods",
            None,
            err(PE::NotOriginForm),
        ),
        Row(
            "GET",
            "https://host:6443/api/v1/namespaces/d/secrets",
            None,
            err(PE::NotOriginForm),
        ),
        Row("GET", "", None, err(PE::NotOriginForm)),
        Row("OPTIONS", "*", None, err(PE::NotOriginForm)),
        Row("GET", "api/v1/pods", None, err(PE::NotOriginForm)),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/%zz",
            None,
            err(PE::InvalidPercentEncoding),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%",
            None,
            err(PE::InvalidPercentEncoding),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%0",
            None,
            err(PE::InvalidPercentEncoding),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%00",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p\0",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p\nx",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%0Ax",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p%7F",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p\tx",
            None,
            err(PE::ControlCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/a b",
            None,
            err(PE::InvalidCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods?x",
            None,
            err(PE::InvalidCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods#frag",
            None,
            err(PE::InvalidCharacter),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/%FF",
            None,
            err(PE::InvalidUtf8),
        ),
        // trailing slash: classified like the apiserver (strings.Trim of "/")
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/",
            None,
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/",
            None,
            core("get", "d", "pods", "", "p", false),
        ),
        Row(
            "DELETE",
            "/api/v1/namespaces/d/pods/",
            None,
            core("deletecollection", "d", "pods", "", "", true),
        ),
        // proxy trailing paths get the same strict rules
        Row(
            "GET",
            "/api/v1/namespaces/d/services/s/proxy/../../secrets",
            None,
            err(PE::DotSegment),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/services/s/proxy/a%2Fb",
            None,
            err(PE::EncodedSlash),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/pods/p/proxy/a//b",
            None,
            err(PE::EmptySegment),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n/proxy/%2e%2e/x",
            None,
            err(PE::EncodedDot),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n/proxy/a;b",
            None,
            err(PE::PathParameter),
        ),
        Row(
            "GET",
            "/api/v1/nodes/n/proxy/a%252fb",
            None,
            err(PE::DoubleEncoding),
        ),
        // encoded unreserved letters decode before splitting
        Row(
            "GET",
            "/api/%761/namespaces/d/pods",
            None,
            core("list", "d", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/%61pi/v1/pods",
            None,
            core("list", "", "pods", "", "", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/%64/pods/%70",
            None,
            core("get", "d", "pods", "", "p", false),
        ),
        Row(
            "GET",
            "/api/v1/%77atch/pods",
            None,
            core("watch", "", "pods", "", "", false),
        ),
        // '+' stays '+' in paths; other decoded bytes are kept
        Row(
            "GET",
            "/api/v1/namespaces/d/configmaps/a+b",
            None,
            core("get", "d", "configmaps", "", "a+b", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/configmaps/a%20b",
            None,
            core("get", "d", "configmaps", "", "a b", false),
        ),
        Row(
            "GET",
            "/api/v1/namespaces/d/configmaps/%C3%A9",
            None,
            core("get", "d", "configmaps", "", "\u{e9}", false),
        ),
    ];
    v.shrink_to_fit();
    v
}

#[test]
fn classify_table() {
    let rows = rows();
    assert!(rows.len() >= 150, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for Row(method, path, query, want) in &rows {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let got = classify(&m, path, *query);
        let ok = match (want, &got) {
            (Want::Err(e), Err(g)) => e == g,
            (
                Want::Res {
                    verb,
                    group,
                    version,
                    ns,
                    resource,
                    sub,
                    name,
                    mutating,
                },
                Ok(i),
            ) => {
                i.is_resource_request
                    && i.verb == *verb
                    && i.api_group == *group
                    && i.api_version == *version
                    && i.namespace == *ns
                    && i.resource == *resource
                    && i.subresource == *sub
                    && i.name == *name
                    && i.is_mutating() == *mutating
                    && i.api_prefix == if group.is_empty() { "api" } else { "apis" }
                    && i.non_resource_kind().is_none()
            }
            (
                Want::NonRes {
                    verb,
                    kind,
                    mutating,
                },
                Ok(i),
            ) => {
                !i.is_resource_request
                    && i.verb == *verb
                    && i.non_resource_kind() == Some(*kind)
                    && i.is_mutating() == *mutating
                    && i.resource.is_empty()
                    && i.parts.is_empty()
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{method} {path} {query:?}\n   want {want:?}\n   got  {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("{} classification rows passed", rows.len());
}

#[test]
fn parts_and_connect_kinds() {
    let get = |p: &str| classify(&Method::GET, p, None).unwrap();
    let i = get("/api/v1/namespaces/d/pods/p/proxy/some/path");
    assert_eq!(i.parts, ["pods", "p", "proxy", "some", "path"]);
    assert_eq!(i.connect_kind(), Some(ConnectKind::Proxy));
    assert_eq!(i.proxy_path().as_deref(), Some("some/path"));
    assert!(i.is_upgrade_allowed());

    let i = get("/api/v1/proxy/namespaces/d/pods/p/healthz");
    assert_eq!(i.parts, ["pods", "p", "healthz"]);
    assert_eq!(i.connect_kind(), Some(ConnectKind::Proxy));
    assert_eq!(i.proxy_path().as_deref(), Some("healthz"));

    assert_eq!(
        get("/api/v1/namespaces/d/pods/p/ex%65c").connect_kind(),
        Some(ConnectKind::Exec)
    );
    assert_eq!(
        get("/api/v1/namespaces/d/pods/p/attach").connect_kind(),
        Some(ConnectKind::Attach)
    );
    assert_eq!(
        get("/api/v1/namespaces/d/pods/p/portforward").connect_kind(),
        Some(ConnectKind::PortForward)
    );
    let i = get("/api/v1/namespaces/d/pods/p/log");
    assert_eq!(i.connect_kind(), None);
    assert!(!i.is_upgrade_allowed());
    assert_eq!(i.proxy_path(), None);

    let i = get("/api/v1/namespaces/foo/status");
    assert_eq!(i.parts, ["namespaces", "foo", "status"]);
    let i = get("/api/v1/namespaces/d/pods/p/ex%65c");
    assert_eq!(i.path, "/api/v1/namespaces/d/pods/p/exec");
    let i = get("/api/v1/namespaces/d/pods/");
    assert_eq!(i.path, "/api/v1/namespaces/d/pods/");
    assert_eq!(i.parts, ["pods"]);

    let i = classify(
        &Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        None,
    )
    .unwrap();
    assert!(i.is_read_only_review());
    let i = classify(
        &Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x",
        None,
    )
    .unwrap();
    assert!(!i.is_read_only_review());
    assert!(i.is_mutating());
}

#[test]
fn selectors_are_recorded_like_the_apiserver() {
    let q = Some("labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1&labelSelector=x");
    let i = classify(&Method::GET, P, q).unwrap();
    assert_eq!(i.label_selector, "app=web");
    assert_eq!(i.field_selector, "spec.nodeName=n1");
    // not for get, not for the legacy /watch/ prefix
    let i = classify(&Method::GET, "/api/v1/namespaces/d/pods/p", q).unwrap();
    assert_eq!(i.label_selector, "");
    let i = classify(&Method::GET, "/api/v1/watch/namespaces/d/pods", q).unwrap();
    assert_eq!(i.label_selector, "");
    let i = classify(&Method::DELETE, P, q).unwrap();
    assert_eq!(i.label_selector, "app=web");
}

// ------------------------------------------------------------------ dry run

const DRY_RUN_ROWS: &[(Option<&str>, DryRun)] = &[
    (Some("dryRun=All"), DryRun::All),
    (Some("dryrun=All"), DryRun::NotDryRun),
    (Some("DryRun=All"), DryRun::NotDryRun),
    (Some("dryRun=all"), DryRun::NotDryRun),
    (Some("dryRun=ALL"), DryRun::NotDryRun),
    (Some("dryRun="), DryRun::NotDryRun),
    (Some("dryRun"), DryRun::NotDryRun),
    (Some("dryRun=All&dryRun=All"), DryRun::All),
    (Some("dryRun=All&dryRun=x"), DryRun::NotDryRun),
    (Some("dryRun=x&dryRun=All"), DryRun::NotDryRun),
    (Some("dryRun=All&dryRun="), DryRun::NotDryRun),
    // Go sees the key "dryRun=All" with an empty value
    (Some("dryRun%3DAll"), DryRun::NotDryRun),
    // Go decodes keys: this IS dryRun
    (Some("dry%52un=All"), DryRun::All),
    (Some("dryRun=%41ll"), DryRun::All),
    // Go drops pairs containing ';' (and Holdpoint refuses any ';')
    (Some("dryRun=All;x=y"), DryRun::NotDryRun),
    (Some("x=y;z&dryRun=All"), DryRun::NotDryRun),
    (Some("a=b&dryRun=All"), DryRun::All),
    (Some("&dryRun=All&"), DryRun::All),
    (Some("dryRun=All%26x=y"), DryRun::NotDryRun),
    (Some("dryRun=All=x"), DryRun::NotDryRun),
    (Some("dryRun+=All"), DryRun::NotDryRun),
    (Some("dryRun=All+"), DryRun::NotDryRun),
    (Some("dryRun=+All"), DryRun::NotDryRun),
    (Some("dryRun=All%00"), DryRun::NotDryRun),
    // the malformed pair is dropped by Go; the apiserver sees dryRun=[All]
    (Some("dryRun=All&dryRun=%zz"), DryRun::All),
    (Some("dryRun=%zz"), DryRun::NotDryRun),
    (Some("=All"), DryRun::NotDryRun),
    (Some(""), DryRun::NotDryRun),
    (None, DryRun::NotDryRun),
];

#[test]
fn dry_run_table() {
    for (q, want) in DRY_RUN_ROWS {
        assert_eq!(DryRun::parse(*q), *want, "query {q:?}");
    }
    // DELETE with a body: the apiserver reads DeleteOptions from the body, not the query.
    assert_eq!(
        DryRun::for_request(&Method::DELETE, Some("dryRun=All"), true),
        DryRun::NotDryRun
    );
    assert_eq!(
        DryRun::for_request(&Method::DELETE, Some("dryRun=All"), false),
        DryRun::All
    );
    assert_eq!(
        DryRun::for_request(&Method::POST, Some("dryRun=All"), true),
        DryRun::All
    );
    // too many parameters for Go's parser
    let many = "a=b&".repeat(kube_request::MAX_QUERY_PARAMS) + "dryRun=All";
    assert_eq!(DryRun::parse(Some(&many)), DryRun::NotDryRun);
    assert!(DryRun::All.is_dry_run());
}

#[test]
fn go_query_values() {
    use kube_request::{query_first, query_values};
    assert_eq!(query_values("a=1&a=2&b=3", "a"), ["1", "2"]);
    assert_eq!(query_values("a=1;a=2&a=3", "a"), ["3"]);
    assert_eq!(query_values("%61=x+y&a=%2B", "a"), ["x y", "+"]);
    assert_eq!(query_values("a", "a"), [""]);
    assert!(query_values("A=1", "a").is_empty());
    assert_eq!(query_first("a=1&a=2", "a").as_deref(), Some("1"));
}

#[test]
fn serializes_in_camel_case() {
    let i = classify(&Method::GET, "/api/v1/namespaces/d/pods/p", None).unwrap();
    let v = serde_json::to_value(&i).unwrap();
    assert_eq!(v["isResourceRequest"], true);
    assert_eq!(v["verb"], "get");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["parts"], serde_json::json!(["pods", "p"]));
    let e = classify(&Method::GET, "/api/v1/namespaces/d/pods%2Fp", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the request path must not contain an encoded slash (%2F)"
    );
}
