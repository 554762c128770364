//! Field rules from the configuration, through every way an object is masked: a decoded value,
//! the streaming masker (lists item by item, watch events, any chunking), the last-applied
//! annotation and `Table` rows with embedded objects.

use holdpoint_mask::{FieldRule, JsonStream, MaskConfig, Masker, PLACEHOLDER, Reveal};
use serde_json::{Value, json};

const CANARY: &str = "vault-canary-5150";

fn masker() -> Masker {
    Masker::new(&MaskConfig {
        field_rules: vec![FieldRule {
            name: "vault".into(),
            api_version: Some("secrets.example.com/*".into()),
            kind: "VaultStaticSecret".into(),
            fields: vec!["spec.password".into(), "spec.keys[*].value".into()],
            columns: vec!["Password".into()],
        }],
        ..MaskConfig::default()
    })
    .unwrap()
}

fn object(name: &str) -> Value {
    json!({
        "apiVersion": "secrets.example.com/v1",
        "kind": "VaultStaticSecret",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"path": "kv/app", "password": CANARY,
                 "keys": [{"name": "a", "value": CANARY}, {"name": "b", "value": 7}]}
    })
}

fn stream(m: &Masker, body: &[u8], chunk: usize) -> Value {
    let mut s = JsonStream::new(Reveal::default(), 1 << 20);
    let mut out = Vec::new();
    for c in body.chunks(chunk) {
        s.push(m, c, &mut out).unwrap();
    }
    s.finish(m, &mut out).unwrap();
    assert!(s.summary().total() >= 1, "something was masked");
    serde_json::from_slice(&out).unwrap()
}

fn assert_masked(v: &Value) {
    let text = v.to_string();
    assert!(!text.contains(CANARY), "{text}");
    assert!(!text.contains("\"value\":7"), "{text}");
    assert!(text.contains("kv/app"), "other fields stay: {text}");
}

#[test]
fn a_decoded_object_is_masked() {
    let m = masker();
    let mut v = object("one");
    let summary = m.mask_value(&mut v);
    assert_masked(&v);
    assert_eq!(v["spec"]["password"], PLACEHOLDER);
    assert_eq!(summary.count("field.vault"), 3);
}

#[test]
fn another_group_with_the_same_kind_is_left_alone() {
    let m = masker();
    let mut v = object("other");
    v["apiVersion"] = json!("example.org/v1");
    v["spec"]["password"] = json!("not-a-secret-here");
    m.mask_value(&mut v);
    assert_eq!(v["spec"]["password"], "not-a-secret-here");
}

#[test]
fn lists_and_watch_events_stream_masked_in_any_chunking() {
    let m = masker();
    let list = json!({"apiVersion": "secrets.example.com/v1", "kind": "VaultStaticSecretList",
        "metadata": {"resourceVersion": "9"}, "items": [object("a"), object("b")]});
    // items without their own kind and apiVersion (as some lists carry them)
    let mut bare = list.clone();
    for item in bare["items"].as_array_mut().unwrap() {
        let o = item.as_object_mut().unwrap();
        o.remove("kind");
        o.remove("apiVersion");
    }
    for body in [list, bare] {
        let bytes = serde_json::to_vec(&body).unwrap();
        for chunk in [1, 7, 64, bytes.len()] {
            let out = stream(&m, &bytes, chunk);
            assert_masked(&out);
            assert_eq!(out["items"].as_array().unwrap().len(), 2);
        }
    }
    let events: String = ["ADDED", "MODIFIED", "DELETED"]
        .iter()
        .map(|t| format!("{}\n", json!({"type": t, "object": object("w")})))
        .collect();
    let mut s = JsonStream::new(Reveal::default(), 1 << 20);
    let mut out = Vec::new();
    for c in events.as_bytes().chunks(5) {
        s.push(&m, c, &mut out).unwrap();
    }
    s.finish(&m, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains(CANARY), "{text}");
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn the_last_applied_annotation_and_table_rows_are_masked() {
    let m = masker();
    let mut v = object("la");
    let applied = object("la").to_string();
    v["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": applied});
    v["spec"]["password"] = json!(PLACEHOLDER);
    v["spec"]["keys"] = json!([]);
    let out = stream(&m, &serde_json::to_vec(&v).unwrap(), 16);
    assert!(!out.to_string().contains(CANARY), "{out}");

    let table = json!({"apiVersion": "meta.k8s.io/v1", "kind": "Table",
        "columnDefinitions": [{"name": "Name", "type": "string"}],
        "rows": [{"cells": ["t"], "object": object("t")}]});
    let out = stream(&m, &serde_json::to_vec(&table).unwrap(), 9);
    assert!(!out.to_string().contains(CANARY), "{out}");
    assert_eq!(out["rows"][0]["object"]["spec"]["password"], PLACEHOLDER);
}

/// `kubectl get` asks for a Table whose rows carry only metadata: the printer column that shows
/// the field is masked by its name.
#[test]
fn printer_columns_named_by_a_rule_are_masked_in_every_table() {
    let m = masker();
    let metadata = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": "t"}});
    let table = json!({"apiVersion": "meta.k8s.io/v1", "kind": "Table",
        "metadata": {"resourceVersion": "3"},
        "columnDefinitions": [{"name": "Name", "type": "string"},
                              {"name": "password", "type": "string"},
                              {"name": "Age", "type": "date"}],
        "rows": [{"cells": ["t", CANARY, "3d"], "object": metadata},
                 {"cells": ["u", 1234, "4d"], "object": metadata}]});
    let bytes = serde_json::to_vec(&table).unwrap();
    for chunk in [1, 13, bytes.len()] {
        let out = stream(&m, &bytes, chunk);
        assert!(!out.to_string().contains(CANARY), "{out}");
        assert_eq!(out["rows"][0]["cells"], json!(["t", PLACEHOLDER, "3d"]));
        assert_eq!(out["rows"][1]["cells"], json!(["u", PLACEHOLDER, "4d"]));
    }
    let mut whole = table.clone();
    m.mask_value(&mut whole);
    assert_eq!(whole["rows"][0]["cells"][1], PLACEHOLDER);

    // columns after the rows cannot be streamed safely: refused, never passed
    let late = format!(
        r#"{{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{{"cells":["t","{CANARY}"]}}],"columnDefinitions":[{{"name":"Name"}},{{"name":"Password"}}]}}"#
    );
    let mut s = JsonStream::new(Reveal::default(), 1 << 20);
    let mut out = Vec::new();
    let r = s
        .push(&m, late.as_bytes(), &mut out)
        .and_then(|()| s.finish(&m, &mut out));
    assert!(r.is_err(), "{}", String::from_utf8_lossy(&out));
    assert!(!String::from_utf8_lossy(&out).contains(CANARY));
}
