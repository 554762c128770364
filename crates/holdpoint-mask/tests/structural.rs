//! Structural masking: each rule on objects shaped as the apiserver and kubectl send them.

use holdpoint_mask::{DATA_PLACEHOLDER, MaskConfig, MaskSummary, Masker, PLACEHOLDER};
use serde_json::{Value, json};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const CANARY: &str = "canary-7f3a9c";
const CANARY_B64: &str = "Y2FuYXJ5LTdmM2E5Yw=="; // base64("canary-7f3a9c")

fn masker() -> Masker {
    Masker::new(&MaskConfig::default()).unwrap()
}

fn mask(v: &mut Value) -> MaskSummary {
    let m = masker();
    let s = m.mask_value(v);
    // every structural test also checks idempotence
    let before = v.clone();
    let again = m.mask_value(v);
    assert_eq!(*v, before, "second pass changed the object");
    assert!(again.is_empty(), "second pass counted {again:?}");
    s
}

fn assert_no_canary(v: &Value) {
    let text = v.to_string();
    assert!(
        !text.contains(CANARY) && !text.contains(CANARY_B64),
        "canary survived: {text}"
    );
}

fn secret(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "uid": "0b6a1c9e-1f2d-4a61-9a52-6f1f0d5d2c11",
                     "resourceVersion": "4711", "creationTimestamp": "2026-12-01T10:00:00Z"},
        "type": "Opaque",
        "data": {"password": CANARY_B64, "username": "YWRtaW4="},
        "stringData": {"extra": CANARY}
    })
}

#[test]
fn secret_data_values_become_valid_base64_placeholder_and_keys_stay() {
    let mut v = secret("db");
    let s = mask(&mut v);
    assert_eq!(
        v["data"],
        json!({"password": DATA_PLACEHOLDER, "username": DATA_PLACEHOLDER})
    );
    assert_eq!(v["stringData"], json!({"extra": PLACEHOLDER}));
    assert_eq!(v["metadata"]["name"], "db");
    assert_eq!(v["type"], "Opaque");
    assert_eq!(s.count("secret.data"), 2);
    assert_eq!(s.count("secret.stringData"), 1);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(DATA_PLACEHOLDER)
        .unwrap();
    assert_eq!(decoded, PLACEHOLDER.as_bytes());
    assert_no_canary(&v);
}

#[test]
fn secret_types_sa_token_helm_dockerconfig_tls_are_all_masked() {
    for (ty, key) in [
        ("kubernetes.io/service-account-token", "token"),
        ("helm.sh/release.v1", "release"),
        ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
        ("kubernetes.io/tls", "tls.key"),
    ] {
        let mut v = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                           "type": ty, "data": {key: CANARY_B64, "ca.crt": CANARY_B64}});
        mask(&mut v);
        assert_eq!(v["data"][key], DATA_PLACEHOLDER, "{ty}");
        assert_no_canary(&v);
    }
}

#[test]
fn secret_with_a_non_string_data_value_is_still_masked() {
    let mut v = json!({"kind": "Secret", "data": {"a": {"nested": CANARY}, "b": 12}});
    mask(&mut v);
    assert_eq!(
        v["data"],
        json!({"a": DATA_PLACEHOLDER, "b": DATA_PLACEHOLDER})
    );
}

#[test]
fn secret_list_items_without_kind_are_masked_as_secrets() {
    // the apiserver omits kind/apiVersion on the items of a typed list
    let mut item = secret("a");
    item.as_object_mut().unwrap().remove("kind");
    item.as_object_mut().unwrap().remove("apiVersion");
    let mut v = json!({"kind": "SecretList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": "99", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},
                       "items": [item.clone(), item]});
    let s = mask(&mut v);
    assert_eq!(s.count("secret.data"), 4);
    assert_eq!(v["items"][1]["data"]["password"], DATA_PLACEHOLDER);
    assert_no_canary(&v);
}

#[test]
fn kubectl_v1_list_with_mixed_kinds() {
    // `kubectl get secrets,configmaps -o json` sends kind: List with kinded items
    let mut v = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [secret("a"),
                  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"app.properties": "db.url=jdbc:x\ndb.password=Qx7!vR2#pL9m", "mode": "prod"}}]});
    let s = mask(&mut v);
    assert_eq!(v["items"][0]["data"]["password"], DATA_PLACEHOLDER);
    assert_eq!(
        v["items"][1]["data"]["app.properties"],
        format!("db.url=jdbc:x\ndb.password={PLACEHOLDER}")
    );
    assert_eq!(v["items"][1]["data"]["mode"], "prod");
    assert_eq!(s.count("text.generic-assignment"), 1);
    assert_no_canary(&v);
}

#[test]
fn watch_events_mask_their_object() {
    for ty in ["ADDED", "MODIFIED", "DELETED"] {
        let mut ev = json!({"type": ty, "object": secret("w")});
        let s = mask(&mut ev);
        assert_eq!(ev["type"], ty);
        assert_eq!(ev["object"]["data"]["password"], DATA_PLACEHOLDER);
        assert_eq!(s.count("secret.data"), 2);
        assert_no_canary(&ev);
    }
    let mut bookmark = json!({"type": "BOOKMARK", "object": {"kind": "Secret", "apiVersion": "v1",
        "metadata": {"resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}}}});
    let before = bookmark.clone();
    assert!(mask(&mut bookmark).is_empty());
    assert_eq!(bookmark, before);
}

#[test]
fn table_with_include_object_masks_row_objects_and_matching_cells() {
    let mut obj = secret("t");
    obj["data"]["shown"] = json!(CANARY_B64);
    let mut v = json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "5"},
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name"},
                              {"name": "Type", "type": "string"}, {"name": "Shown", "type": "string"},
                              {"name": "Decoded", "type": "string"}],
        "rows": [{"cells": ["t", "Opaque", CANARY_B64, CANARY], "object": obj}]
    });
    let s = mask(&mut v);
    assert_eq!(
        v["rows"][0]["cells"],
        json!(["t", "Opaque", PLACEHOLDER, PLACEHOLDER])
    );
    assert_eq!(v["rows"][0]["object"]["data"]["password"], DATA_PLACEHOLDER);
    assert_eq!(s.count("table.cell"), 2);
    assert_no_canary(&v);
}

#[test]
fn table_cells_and_partial_metadata_rows_get_the_detectors() {
    // a CRD printer column showing a token; the row object is PartialObjectMetadata
    let token = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
    let mut v = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "rows": [{"cells": ["x", token, 3],
                  "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": {"name": "x", "annotations": {"note": format!("token={token}")}}}}]});
    mask(&mut v);
    assert_eq!(v["rows"][0]["cells"], json!(["x", PLACEHOLDER, 3]));
    assert_eq!(
        v["rows"][0]["object"]["metadata"]["annotations"]["note"],
        format!("token={PLACEHOLDER}")
    );
}

#[test]
fn last_applied_is_parsed_masked_and_written_back() {
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
                         "stringData": {"password": CANARY}, "type": "Opaque"});
    let mut v = secret("db");
    v["metadata"]["annotations"] =
        json!({LAST_APPLIED: format!("{applied}\n"), "team": "payments"});
    let s = mask(&mut v);
    let text = v["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
    assert!(text.ends_with('\n'), "kubectl's trailing newline kept");
    let back: Value = serde_json::from_str(text).unwrap();
    assert_eq!(back["stringData"]["password"], PLACEHOLDER);
    assert_eq!(back["metadata"]["name"], "db");
    assert_eq!(v["metadata"]["annotations"]["team"], "payments");
    assert_eq!(s.count("last-applied"), 1);
    assert_no_canary(&v);
}

#[test]
fn last_applied_on_a_partial_object_metadata_list() {
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": CANARY_B64}});
    let mut v = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
        "items": [{"metadata": {"name": "a", "annotations": {LAST_APPLIED: applied.to_string()}}}]});
    mask(&mut v);
    assert_no_canary(&v);
}

#[test]
fn last_applied_that_does_not_parse_is_replaced_whole() {
    let broken = format!("{{\"stringData\":{{\"p\":\"{CANARY}\"");
    let mut v = json!({"kind": "ConfigMap", "metadata": {"name": "c", "annotations": {LAST_APPLIED: broken}}});
    let s = mask(&mut v);
    assert_eq!(v["metadata"]["annotations"][LAST_APPLIED], PLACEHOLDER);
    assert_eq!(s.count("last-applied"), 1);
}

#[test]
fn last_applied_without_secrets_is_left_byte_for_byte() {
    let original = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"a\":\"b\"}}\n";
    let mut v = json!({"kind": "ConfigMap", "metadata": {"annotations": {LAST_APPLIED: original}}});
    assert!(mask(&mut v).is_empty());
    assert_eq!(v["metadata"]["annotations"][LAST_APPLIED], original);
}

#[test]
fn token_request_csr_and_token_review_credentials() {
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.sig";
    let mut tr = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
        "status": {"token": jwt, "expirationTimestamp": "2026-12-02T11:00:00Z"}});
    let s = mask(&mut tr);
    assert_eq!(tr["status"]["token"], PLACEHOLDER);
    assert_eq!(tr["status"]["expirationTimestamp"], "2026-12-02T11:00:00Z");
    assert_eq!(s.count("tokenrequest.token"), 1);

    let mut csr = json!({"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
        "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0=", "signerName": "kubernetes.io/kube-apiserver-client"},
        "status": {"certificate": CANARY_B64, "conditions": [{"type": "Approved", "status": "True"}]}});
    let s = mask(&mut csr);
    assert_eq!(csr["status"]["certificate"], DATA_PLACEHOLDER);
    assert_eq!(s.count("csr.certificate"), 1);
    assert_no_canary(&csr);

    let mut review = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "spec": {"token": CANARY}, "status": {"authenticated": true, "user": {"username": "alice"}}});
    let s = mask(&mut review);
    assert_eq!(review["spec"]["token"], PLACEHOLDER);
    assert_eq!(review["status"]["user"]["username"], "alice");
    assert_eq!(s.count("tokenreview.token"), 1);
}

fn containers() -> Value {
    json!([{"name": "app", "image": "nginx:1.27",
            "env": [{"name": "DB_PASSWORD", "value": CANARY},
                    {"name": "Stripe_ApiKey", "value": CANARY},
                    {"name": "LOG_LEVEL", "value": "debug"},
                    {"name": "GITHUB", "value": "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}])
}

fn assert_env_masked(env: &Value) {
    assert_eq!(env[0]["value"], PLACEHOLDER);
    assert_eq!(env[1]["value"], PLACEHOLDER, "case-insensitive name match");
    assert_eq!(env[2]["value"], "debug");
    assert_eq!(env[3]["value"], PLACEHOLDER, "detector-flagged value");
    assert_eq!(
        env[4]["valueFrom"]["secretKeyRef"]["key"], "password",
        "references stay"
    );
}

#[test]
fn pod_env_values_by_name_and_by_detector_in_all_container_lists() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": containers(), "initContainers": containers(), "ephemeralContainers": containers()}});
    let s = mask(&mut pod);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        assert_env_masked(&pod["spec"][list][0]["env"]);
    }
    assert_eq!(s.count("env.name"), 6);
    assert_eq!(s.count("text.github-token"), 3);
    assert_no_canary(&pod);
}

#[test]
fn every_pod_template_kind() {
    let tpl = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers()}});
    let cases = [
        (
            "Deployment",
            json!({"spec": {"replicas": 2, "template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "StatefulSet",
            json!({"spec": {"template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "DaemonSet",
            json!({"spec": {"template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "ReplicaSet",
            json!({"spec": {"template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "ReplicationController",
            json!({"spec": {"template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "Job",
            json!({"spec": {"template": tpl}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "CronJob",
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tpl}}}}),
            vec!["spec", "jobTemplate", "spec", "template", "spec"],
        ),
        (
            "PodTemplate",
            json!({"template": tpl}),
            vec!["template", "spec"],
        ),
    ];
    for (kind, mut obj, path) in cases {
        obj["kind"] = json!(kind);
        obj["apiVersion"] = json!("apps/v1");
        let s = mask(&mut obj);
        let mut spec = &obj;
        for k in &path {
            spec = &spec[*k];
        }
        assert_env_masked(&spec["containers"][0]["env"]);
        assert_eq!(s.count("env.name"), 2, "{kind}");
        assert_no_canary(&obj);
    }
}

#[test]
fn deployment_list_items_without_kind() {
    let tpl = json!({"spec": {"containers": containers()}});
    let mut v = json!({"kind": "DeploymentList", "apiVersion": "apps/v1",
                       "items": [{"metadata": {"name": "d"}, "spec": {"template": tpl}}]});
    mask(&mut v);
    assert_env_masked(&v["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"]);
}

#[test]
fn env_name_patterns_are_configurable() {
    let m = Masker::new(&MaskConfig {
        env_name_patterns: vec!["LEVEL".into()],
        ..MaskConfig::default()
    })
    .unwrap();
    let mut pod = json!({"kind": "Pod", "spec": {"containers": containers()}});
    m.mask_value(&mut pod);
    let env = &pod["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], CANARY, "password is no longer a pattern");
    assert_eq!(env[2]["value"], PLACEHOLDER);
}

#[test]
fn env_in_a_non_pod_kind_is_only_scanned_by_detectors() {
    // structural env rules follow the kind; a ConfigMap is not a pod template
    let mut v = json!({"kind": "ConfigMap", "spec": {"containers": containers()}});
    mask(&mut v);
    assert_eq!(v["spec"]["containers"][0]["env"][0]["value"], CANARY);
    assert_eq!(v["spec"]["containers"][0]["env"][3]["value"], PLACEHOLDER);
}

#[test]
fn event_messages_and_annotations_get_the_detectors() {
    let mut ev = json!({"kind": "Event", "apiVersion": "v1", "reason": "Failed",
        "message": "Error: login to postgres://app:Zx8!pQ2v@db:5432 failed",
        "metadata": {"annotations": {"ci/token": "glpat-Xy9_abcDEF123456ghij"}}});
    let s = mask(&mut ev);
    assert_eq!(
        ev["message"],
        format!("Error: login to postgres://app:{PLACEHOLDER}@db:5432 failed")
    );
    assert_eq!(ev["metadata"]["annotations"]["ci/token"], PLACEHOLDER);
    assert_eq!(s.count("text.url-password"), 1);
    assert_eq!(s.count("text.gitlab-token"), 1);
}

#[test]
fn a_flagged_map_key_is_masked_too() {
    let mut v = json!({"kind": "ConfigMap", "data": {"AKIAIOSFODNN7EXAMPL3": "x", "plain": "y"}});
    mask(&mut v);
    let keys: Vec<_> = v["data"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, vec![PLACEHOLDER.to_owned(), "plain".to_owned()]);
}

#[test]
fn summary_never_contains_values() {
    let mut v = secret("s");
    let s = masker().mask_value(&mut v);
    let dbg = format!("{s:?}");
    assert!(!dbg.contains(CANARY) && !dbg.contains(CANARY_B64), "{dbg}");
    assert_eq!(s.total(), 3);
}

#[test]
fn status_error_objects_are_left_alone() {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": "secrets \"db\" not found", "reason": "NotFound", "code": 404});
    let before = v.clone();
    assert!(mask(&mut v).is_empty());
    assert_eq!(v, before);
}
