//! Fuzz the streaming JSON masker (`holdpoint_mask::JsonStream`).
//!
//! Input layout: the first byte picks the chunk size (1-256 bytes), the rest is the body, fed
//! to the masker in chunks of that size. Nothing may panic. When serde_json reads the body as
//! a sequence of JSON objects and arrays (what the apiserver sends: one document, or one watch
//! event per line), streaming must succeed and write a sequence of valid JSON values, each
//! followed by a newline and each exactly what the `Value` walker makes of the input value.
#![no_main]

use std::sync::OnceLock;

use holdpoint_mask::{FieldRule, JsonStream, MaskConfig, Masker, NO_REVEAL};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The default rules plus a field rule (objects of kind `Vault` leave the raw fast path).
fn masker() -> &'static Masker {
    static M: OnceLock<Masker> = OnceLock::new();
    M.get_or_init(|| {
        Masker::new(&MaskConfig {
            field_rules: vec![FieldRule {
                name: "vault".into(),
                api_version: None,
                kind: "Vault".into(),
                fields: vec!["spec.password".into(), "data.*".into(), "spec.keys[*]".into()],
                columns: Vec::new(),
            }],
            ..MaskConfig::default()
        })
        .expect("fuzz config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let m = masker();
    let mut stream = JsonStream::new(NO_REVEAL.clone(), 1 << 20);
    let mut out = Vec::new();
    let mut ok = true;
    for chunk in body.chunks(usize::from(size) + 1) {
        if stream.push(m, chunk, &mut out).is_err() {
            ok = false;
            break;
        }
    }
    ok = ok && stream.finish(m, &mut out).is_ok();

    let values: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .collect();
    let Ok(values) = values else { return };
    if values.is_empty() || !values.iter().all(|v| v.is_object() || v.is_array()) {
        return;
    }
    assert!(ok, "valid JSON did not stream");
    assert_eq!(out.last(), Some(&b'\n'), "every value ends with a newline");
    let lines: Vec<Value> = serde_json::Deserializer::from_slice(&out)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("the masker wrote invalid JSON");
    let expected: Vec<Value> = values
        .into_iter()
        .map(|mut v| {
            m.mask_value(&mut v);
            v
        })
        .collect();
    assert_eq!(lines, expected, "streamed masking differs from the Value walker");
});
