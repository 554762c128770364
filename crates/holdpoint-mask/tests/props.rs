//! Property tests: masking is idempotent, keeps JSON valid, and no detector-flagged string (value
//! or key) survives anywhere in a masked random object; Secret data never survives. The
//! streaming masker (zero-copy fast path, item by item) masks exactly as the `Value` walker
//! does, in any chunking, for documents, lists and watch streams.

use holdpoint_mask::{
    DATA_PLACEHOLDER, JsonStream, MaskConfig, MaskSummary, Masker, NO_REVEAL, PLACEHOLDER, Reveal,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn masker() -> &'static Masker {
    static M: std::sync::OnceLock<Masker> = std::sync::OnceLock::new();
    M.get_or_init(|| Masker::new(&MaskConfig::default()).unwrap())
}

/// A credential of one of the built-in shapes.
fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        "(AKIA|ASIA)[A-Z2-7]{16}",
        "gh[pousr]_[0-9A-Za-z]{36}",
        "glpat-[0-9A-Za-z_-]{20,30}",
        "xox[bp]-[0-9A-Za-z-]{10,40}",
        "sk_live_[0-9A-Za-z]{16,32}",
        "eyJ[A-Za-z0-9_-]{10,30}\\.eyJ[A-Za-z0-9_-]{10,30}\\.[A-Za-z0-9_-]{0,30}",
        "-----BEGIN (RSA |EC )?PRIVATE KEY-----\n[A-Za-z0-9+/]{20,60}\n-----END (RSA |EC )?PRIVATE KEY-----",
        "(https|postgres)://[a-z]{1,8}:[A-Za-z0-9!#%*-]{1,16}@[a-z.]{1,12}",
        "(password|api_key|TOKEN|secret)(=|: |\":\")[A-Za-z0-9!#%^+/]{8,24}",
    ]
}

/// Plain text, text with a credential inside, or a credential.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 =:._/-]{0,24}",
        2 => ("[a-z =:]{0,8}", credential(), "[a-z =:.]{0,8}").prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        1 => credential(),
    ]
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Secret"),
        Just("SecretList"),
        Just("List"),
        Just("Pod"),
        Just("Deployment"),
        Just("CronJob"),
        Just("Table"),
        Just("TokenRequest"),
        Just("TokenReview"),
        Just("CertificateSigningRequest"),
        Just("ConfigMap"),
        Just("PartialObjectMetadataList"),
        Just("Event"),
        Just("Foo"),
    ]
    .prop_map(str::to_owned)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just("data"), Just("stringData"), Just("items"), Just("object"), Just("type"),
            Just("metadata"), Just("annotations"), Just("spec"), Just("status"), Just("token"),
            Just("template"), Just("containers"), Just("env"), Just("name"), Just("value"),
            Just("rows"), Just("cells"), Just("certificate"), Just("jobTemplate"),
        ].prop_map(str::to_owned),
        2 => "[a-z]{1,6}",
        1 => text(),
    ]
}

fn random_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            (
                prop::option::of(kind()),
                prop::collection::vec((key(), inner), 0..6)
            )
                .prop_map(|(kind, fields)| {
                    let mut m: Map<String, Value> = fields.into_iter().collect();
                    if let Some(k) = kind {
                        m.insert("kind".into(), Value::String(k));
                    }
                    Value::Object(m)
                }),
        ]
    })
}

/// Random objects, some wrapped in realistic shells: env lists, watch events, last-applied.
fn object() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => random_value(),
        1 => (random_value(), any::<bool>()).prop_map(|(inner, nl)| {
            let mut s = inner.to_string();
            if nl { s.push('\n'); }
            json!({"kind": "ConfigMap", "metadata": {"annotations": {LAST_APPLIED: s}}})
        }),
        1 => (prop_oneof![Just("ADDED"), Just("MODIFIED"), Just("DELETED")], random_value())
            .prop_map(|(t, o)| json!({"type": t, "object": o})),
        1 => prop::collection::vec(("[A-Za-z_]{1,12}", text()), 0..6).prop_map(|env| {
            let env: Vec<Value> = env.into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
            json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "env": env}]}})
        }),
        1 => prop::collection::vec(("[a-z.]{1,10}", "[A-Za-z0-9+/]{0,20}"), 0..5).prop_map(|data| {
            let data: Map<String, Value> = data.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            json!({"kind": "SecretList", "items": [{"data": data.clone()}, {"kind": "Secret", "data": data}]})
        }),
    ]
}

/// Every string (values and keys) in `v`, parsing last-applied annotations too.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k);
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// Masks `body` with the streaming masker, fed in chunks of `size` bytes.
fn stream(body: &[u8], size: usize) -> Vec<u8> {
    stream_counting(body, size, NO_REVEAL).0
}

/// [`stream`] with objects of `reveal`'s kinds unmasked, and what the streaming masker counted.
fn stream_counting(body: &[u8], size: usize, reveal: &Reveal) -> (Vec<u8>, MaskSummary) {
    let mut s = JsonStream::new(reveal.clone(), 1 << 24);
    let mut out = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        s.push(masker(), chunk, &mut out)
            .expect("valid JSON streams");
    }
    s.finish(masker(), &mut out).expect("complete JSON streams");
    (out, s.summary().clone())
}

fn masked(v: &Value) -> Value {
    let mut m = v.clone();
    masker().mask_value(&mut m);
    m
}

proptest! {
    // PROPTEST_CASES=N runs more cases (256 by default)
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn masking_is_idempotent(mut v in object()) {
        masker().mask_value(&mut v);
        let once = v.clone();
        let again = masker().mask_value(&mut v);
        prop_assert_eq!(&v, &once);
        prop_assert!(again.is_empty(), "second pass counted {:?}", again);
    }

    #[test]
    fn no_flagged_string_survives_and_json_stays_valid(mut v in object()) {
        masker().mask_value(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &v);
        let mut all = Vec::new();
        strings(&v, &mut all);
        for s in &all {
            prop_assert!(!masker().text().is_flagged(s), "flagged string survived: {:?}", s);
        }
        // last-applied annotations, parsed, hold no flagged string either
        if let Some(Value::String(la)) = v.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED))
            && let Ok(parsed) = serde_json::from_str::<Value>(la)
        {
            let mut inner = Vec::new();
            strings(&parsed, &mut inner);
            for s in &inner {
                prop_assert!(!masker().text().is_flagged(s), "flagged string in last-applied: {:?}", s);
            }
        }
    }

    #[test]
    fn secret_list_data_never_survives(mut v in object()) {
        masker().mask_value(&mut v);
        if v.get("kind").and_then(Value::as_str) == Some("SecretList") {
            // items without a kind of their own, or of kind Secret, are Secrets
            for item in v.get("items").and_then(Value::as_array).into_iter().flatten() {
                let kind = item.get("kind").and_then(Value::as_str);
                if kind.is_some_and(|k| k != "Secret") {
                    continue;
                }
                for val in item.get("data").and_then(Value::as_object).into_iter().flat_map(|d| d.values()) {
                    prop_assert_eq!(val.as_str(), Some(DATA_PLACEHOLDER));
                }
            }
        }
    }

    #[test]
    fn streaming_masks_as_the_value_walker_does_in_any_chunking(
        v in object(),
        size in 1usize..48,
        pretty in any::<bool>(),
    ) {
        let body = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
        let (whole, counted) = stream_counting(&body, body.len(), NO_REVEAL);
        prop_assert_eq!(whole.last(), Some(&b'\n'));
        // the raw walker (fast path, strings masked in place) counts what the value walker counts
        prop_assert_eq!(&counted, &masker().mask_value(&mut v.clone()));
        let streamed: Value = serde_json::from_slice(&whole).expect("valid JSON out");
        // in chunks the bytes may be laid out differently (whitespace), never masked otherwise
        let chunked: Value = serde_json::from_slice(&stream(&body, size)).expect("valid JSON out");
        prop_assert_eq!(&chunked, &streamed, "the chunking changed the output");
        prop_assert_eq!(&streamed, &masked(&v));
        // masking the output again changes nothing (the bytes may be laid out anew when a
        // value takes the slow path)
        let again: Value = serde_json::from_slice(&stream(&whole, size)).unwrap();
        prop_assert_eq!(&again, &streamed);
    }

    #[test]
    fn with_revealed_kinds_streaming_masks_and_counts_as_the_value_walker(
        v in object(),
        revealed in prop::collection::vec(kind(), 0..3),
        size in 1usize..48,
    ) {
        // one value through the raw walker (a top-level list or Table streams item by item,
        // masking items of a revealed list by their own kind: stricter than the value walker),
        // so such a value is wrapped
        let top_kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        let v = if top_kind.ends_with("List") || top_kind == "Table" {
            json!({ "wrapped": v })
        } else {
            v
        };
        let reveal = Reveal::kinds(revealed);
        let body = serde_json::to_vec(&v).unwrap();
        let (out, streamed_counts) = stream_counting(&body, size, &reveal);
        let streamed: Value = serde_json::from_slice(&out).expect("valid JSON out");
        let mut expected = v.clone();
        let mut counted = MaskSummary::new();
        masker().mask_value_with(&mut expected, None, &reveal, &mut counted);
        prop_assert_eq!(&streamed, &expected);
        prop_assert_eq!(&streamed_counts, &counted);
    }

    #[test]
    fn lists_stream_item_by_item_as_the_value_walker_masks_them(
        items in prop::collection::vec(object(), 0..6),
        kind in prop_oneof![Just("SecretList"), Just("PodList"), Just("List"), Just("DeploymentList")],
        size in 1usize..64,
    ) {
        let list = json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                          "items": items, "extra": {"token": "not-a-secret"}});
        let body = serde_json::to_vec(&list).unwrap();
        let out = stream(&body, size);
        let streamed: Value = serde_json::from_slice(&out).expect("valid JSON out");
        prop_assert_eq!(&streamed, &masked(&list));
    }

    #[test]
    fn watch_streams_are_masked_event_by_event(
        objects in prop::collection::vec(object(), 1..5),
        size in 1usize..64,
    ) {
        let events: Vec<Value> = objects.iter().map(|o| json!({"type": "ADDED", "object": o})).collect();
        let mut body = Vec::new();
        for e in &events {
            serde_json::to_writer(&mut body, e).unwrap();
            body.push(b'\n');
        }
        let out = stream(&body, size);
        let lines: Vec<Value> = out
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("one JSON event per line"))
            .collect();
        let expected: Vec<Value> = events.iter().map(masked).collect();
        prop_assert_eq!(lines, expected);
    }

    #[test]
    fn text_masking_leaves_no_finding(t in prop::collection::vec(text(), 1..6)) {
        let t = t.join(" ");
        let mut s = holdpoint_mask::MaskSummary::new();
        let out = masker().mask_text(&t, &mut s);
        prop_assert!(!masker().text().is_flagged(&out), "{:?} -> {:?}", t, out);
        if masker().text().is_flagged(&t) {
            prop_assert!(out.contains(PLACEHOLDER));
            prop_assert!(!s.is_empty());
        }
    }
}

/// The properties above are only meaningful if the generated credentials are detected: most
/// samples of `credential()` must be flagged (a generic assignment may have low entropy).
#[test]
fn generated_credentials_are_mostly_flagged() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = credential();
    let n = 500;
    let flagged = (0..n)
        .filter(|_| {
            let c = strategy.new_tree(&mut runner).unwrap().current();
            masker().text().is_flagged(&c)
        })
        .count();
    assert!(
        flagged * 100 >= n * 85,
        "only {flagged}/{n} generated credentials flagged"
    );
}
