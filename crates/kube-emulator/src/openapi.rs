//! OpenAPI: `/openapi/v3` (index of group-versions) and `/openapi/v3/{api/v1|apis/g/v}` documents
//! listing every resource path with its operations, each tagged with
//! `x-kubernetes-group-version-kind` and the `fieldValidation`/`dryRun`/`fieldManager` query
//! parameters. That is what kubectl checks before sending `fieldValidation=Strict` (server-side
//! validation) instead of validating on the client. Component schemas are deliberately absent, so
//! kubectl computes apply patches from its compiled-in types (built-ins) or JSON merge patch (CRs).
//! `/openapi/v2` is a minimal Swagger 2.0 document without definitions.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::discovery;
use crate::resources::ResourceInfo;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn gv_doc_for(resources: &[ResourceInfo], group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let base = format!("/{}", gv_path(group, version));
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let op = |action: &str, params: &[&str]| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "parameters": params.iter().map(|p| param(p)).collect::<Vec<_>>(),
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        if r.is_virtual() {
            paths.insert(
                coll,
                json!({"post": op("post", &["dryRun", "fieldManager", "fieldValidation"])}),
            );
            continue;
        }
        paths.insert(
            coll.clone(),
            json!({
                "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": op("post", &["dryRun", "fieldManager", "fieldValidation"]),
                "delete": op("deletecollection", &["dryRun", "labelSelector", "fieldSelector"]),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": op("get", &[]),
                "put": op("put", &["dryRun", "fieldManager", "fieldValidation"]),
                "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
                "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kube-emulator"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

/// The hash of a group-version document (changes when CRDs change).
fn doc_hash(doc: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(doc).unwrap_or_default());
    digest.iter().take(32).map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`.
pub fn v3_index(resources: &[ResourceInfo]) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in discovery::groups(resources) {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        let hash = doc_hash(&gv_doc_for(resources, &g, &v));
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{path}`.
pub fn v3_doc(resources: &[ResourceInfo], path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.split('/').collect();
    let (g, v) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    if !resources.iter().any(|r| r.group == g && r.version == v) {
        return None;
    }
    Some(gv_doc_for(resources, g, v))
}

/// `/openapi/v2`.
pub fn v2(_resources: &[ResourceInfo]) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kube-emulator"},
        "paths": {},
        "definitions": {},
    })
}

/// Media type kubectl asks `/openapi/v2` for.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` as a gnostic `openapi_v2.Document` protobuf: `swagger` and `info` only, no
/// definitions (so client-side validation has no schema to apply and passes).
pub fn v2_protobuf() -> Vec<u8> {
    fn field(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }
    let mut info = field(1, b"Kubernetes");
    info.extend(field(2, b"v1.32.0-kube-emulator"));
    let mut doc = field(1, b"2.0");
    doc.extend(field(2, &info));
    doc
}
