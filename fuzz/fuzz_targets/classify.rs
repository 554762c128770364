//! Fuzz `kube_request::classify` (and the query / content-type parsers).
//!
//! Input layout: `method \n path \n query`; a missing third part means "no
//! query". Bytes are converted lossily to UTF-8. Nothing may panic, and an
//! accepted path must satisfy Holdpoint's path-safety invariants.
#![no_main]

use kube_request::{BodyFormat, DryRun, classify, query_values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut it = text.splitn(3, '\n');
    let method = it.next().unwrap_or("");
    let path = it.next().unwrap_or("");
    let query = it.next();

    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET);
    if let Ok(info) = classify(&method, path, query) {
        let _ = (
            info.is_mutating(),
            info.connect_kind(),
            info.is_upgrade_allowed(),
            info.is_read_only_review(),
            info.non_resource_kind(),
            info.proxy_path(),
        );
        assert!(info.path.starts_with('/'));
        assert!(!info.path.contains('%'), "decoded path kept a '%': {:?}", info.path);
        assert!(!info.path.contains('\\') && !info.path.contains(';'));
        assert!(!info.path.contains("//") && !info.path.contains("/../") && !info.path.contains("/./"));
        assert!(!info.path.bytes().any(|b| b < 0x20 || b == 0x7f));
        if info.is_resource_request {
            assert!(info.api_prefix == "api" || info.api_prefix == "apis");
        } else {
            assert!(info.non_resource_kind().is_some());
        }
    }
    let _ = DryRun::parse(query);
    let _ = query_values(query.unwrap_or(""), "dryRun");
    let _ = BodyFormat::from_content_type(path).patch_type();
});
