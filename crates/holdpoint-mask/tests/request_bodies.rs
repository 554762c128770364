//! Request bodies without a `kind` (for the record phase): merge/apply bodies with a kind from the
//! request, and JSON patches against Secrets and pod templates.

use holdpoint_mask::{DATA_PLACEHOLDER, MaskConfig, Masker, PLACEHOLDER};
use serde_json::json;

const CANARY: &str = "canary-7f3a9c";
const CANARY_B64: &str = "Y2FuYXJ5LTdmM2E5Yw==";

fn masker() -> Masker {
    Masker::new(&MaskConfig::default()).unwrap()
}

#[test]
fn merge_patch_of_a_secret_without_kind_is_masked_as_the_requested_kind() {
    let m = masker();
    let mut body = json!({"data": {"password": CANARY_B64}, "stringData": {"x": CANARY}});
    let s = m.mask_value_as(&mut body, "Secret");
    assert_eq!(
        body,
        json!({"data": {"password": DATA_PLACEHOLDER}, "stringData": {"x": PLACEHOLDER}})
    );
    assert_eq!(s.count("secret.data"), 1);
    // without the kind it would not be recognised
    let mut body = json!({"data": {"password": CANARY_B64}});
    assert!(m.mask_value(&mut body).is_empty());
}

#[test]
fn json_patch_on_secret_data_paths() {
    let m = masker();
    let mut patch = json!([
        {"op": "add", "path": "/data/password", "value": CANARY_B64},
        {"op": "replace", "path": "/stringData", "value": {"a": CANARY, "b": CANARY}},
        {"op": "replace", "path": "/data", "value": CANARY},
        {"op": "add", "path": "", "value": {"data": {"k": CANARY_B64}}},
        {"op": "add", "path": "/metadata/labels/app", "value": "web"},
        {"op": "test", "path": "/data/password", "value": CANARY_B64},
        {"op": "remove", "path": "/data/old"}
    ]);
    let s = m.mask_json_patch(&mut patch, "Secret");
    assert!(
        !patch.to_string().contains(CANARY) && !patch.to_string().contains(CANARY_B64),
        "{patch}"
    );
    assert_eq!(patch[0]["value"], DATA_PLACEHOLDER);
    assert_eq!(
        patch[1]["value"],
        json!({"a": PLACEHOLDER, "b": PLACEHOLDER})
    );
    assert_eq!(patch[2]["value"], DATA_PLACEHOLDER);
    assert_eq!(patch[3]["value"]["data"]["k"], DATA_PLACEHOLDER);
    assert_eq!(patch[4]["value"], "web");
    assert_eq!(patch[6], json!({"op": "remove", "path": "/data/old"}));
    assert_eq!(s.count("secret.data"), 4);
    // idempotent
    let once = patch.clone();
    assert!(m.mask_json_patch(&mut patch, "Secret").is_empty());
    assert_eq!(patch, once);
}

#[test]
fn json_patch_on_env_values_and_entries() {
    let m = masker();
    let mut patch = json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/env/3/value", "value": CANARY},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "API_TOKEN", "value": CANARY}},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "LOG_LEVEL", "value": "debug"}},
        {"op": "replace", "path": "/spec/template/spec/containers/1/env",
         "value": [{"name": "DB_PASSWORD", "value": CANARY}, {"name": "MODE", "value": "prod"}]},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/annotations/note", "value": "token=ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"}
    ]);
    let s = m.mask_json_patch(&mut patch, "Deployment");
    assert_eq!(
        patch[0]["value"], PLACEHOLDER,
        "env value by path: fail closed"
    );
    assert_eq!(
        patch[1]["value"],
        json!({"name": "API_TOKEN", "value": PLACEHOLDER})
    );
    assert_eq!(
        patch[2]["value"],
        json!({"name": "LOG_LEVEL", "value": "debug"})
    );
    assert_eq!(
        patch[3]["value"],
        json!([{"name": "DB_PASSWORD", "value": PLACEHOLDER}, {"name": "MODE", "value": "prod"}])
    );
    assert_eq!(patch[4]["value"], 3);
    assert_eq!(patch[5]["value"], format!("token={PLACEHOLDER}"));
    assert_eq!(s.count("env.name"), 3);
    assert!(!patch.to_string().contains(CANARY));
}

#[test]
fn a_non_array_patch_is_masked_as_a_value() {
    let m = masker();
    let mut body = json!({"data": {"k": CANARY_B64}});
    m.mask_json_patch(&mut body, "Secret");
    assert_eq!(body["data"]["k"], DATA_PLACEHOLDER);
}
