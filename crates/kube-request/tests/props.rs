//! Property tests for `classify`: round-tripping of well-formed paths,
//! total robustness on arbitrary input, rejection of path tricks, and
//! invariance under percent-encoding of unreserved letters.

use http::Method;
use kube_request::{BodyFormat, DryRun, classify};
use proptest::prelude::*;

const RESERVED: &[&str] = &["namespaces", "watch", "proxy", "status", "finalize"];

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?"
}

fn resource() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,15}".prop_filter("reserved word", |r| !RESERVED.contains(&r.as_str()))
}

fn group() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("apps".to_string()),
        Just("rbac.authorization.k8s.io".to_string()),
        "[a-z][a-z0-9]{0,8}(\\.[a-z][a-z0-9]{0,8}){0,3}",
    ]
}

fn version() -> impl Strategy<Value = String> {
    "v[1-9](alpha[1-9]|beta[1-9])?"
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
    ]
}

#[derive(Debug, Clone)]
struct Req {
    group: Option<String>,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
    method: Method,
}

impl Req {
    fn path(&self) -> String {
        let mut p = match &self.group {
            Some(g) => format!("/apis/{g}/{}", self.version),
            None => format!("/api/{}", self.version),
        };
        if let Some(ns) = &self.namespace {
            p += &format!("/namespaces/{ns}");
        }
        p += &format!("/{}", self.resource);
        if let Some(n) = &self.name {
            p += &format!("/{n}");
            if let Some(s) = &self.subresource {
                p += &format!("/{s}");
            }
        }
        p
    }

    fn verb(&self) -> &'static str {
        let named = self.name.is_some();
        match self.method {
            Method::GET | Method::HEAD if named => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => "",
        }
    }
}

fn req() -> impl Strategy<Value = Req> {
    (
        proptest::option::of(group()),
        version(),
        proptest::option::of(label()),
        resource(),
        proptest::option::of(label()),
        proptest::option::of(resource()),
        method(),
    )
        .prop_map(
            |(group, version, namespace, resource, name, subresource, method)| Req {
                group,
                version,
                namespace,
                resource,
                name,
                subresource,
                method,
            },
        )
}

const TRICKS: &[&str] = &[
    "/../", "/./", "//", "%2F", "%2f", "%2E", "%2e", "%5C", "%5c", "\\", "%252F", ";x=y", ";",
    "%3B", "%00", "\0", "\n", "%0a", "%zz", "%g", "%4x", " ", "#", "?",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_paths_round_trip(r in req()) {
        let path = r.path();
        let info = classify(&r.method, &path, None).unwrap();
        prop_assert!(info.is_resource_request);
        prop_assert_eq!(&info.path, &path);
        prop_assert_eq!(info.verb.as_str(), r.verb());
        prop_assert_eq!(&info.api_prefix, if r.group.is_some() { "apis" } else { "api" });
        prop_assert_eq!(&info.api_group, r.group.as_deref().unwrap_or(""));
        prop_assert_eq!(&info.api_version, &r.version);
        prop_assert_eq!(&info.namespace, r.namespace.as_deref().unwrap_or(""));
        prop_assert_eq!(&info.resource, &r.resource);
        prop_assert_eq!(&info.name, r.name.as_deref().unwrap_or(""));
        let sub = if r.name.is_some() { r.subresource.as_deref().unwrap_or("") } else { "" };
        prop_assert_eq!(&info.subresource, sub);
        prop_assert_eq!(info.parts.first(), Some(&r.resource));
        // a trailing slash changes nothing but `path`
        let slash = classify(&r.method, &format!("{path}/"), None).unwrap();
        prop_assert_eq!(slash.path, format!("{path}/"));
        prop_assert_eq!(slash.parts, info.parts);
        prop_assert_eq!(slash.verb, info.verb);
    }

    #[test]
    fn never_panics(m in "[A-Za-z]{1,8}", path in any::<String>(), query in proptest::option::of(any::<String>())) {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        if let Ok(info) = classify(&method, &path, query.as_deref()) {
            let _ = (info.is_mutating(), info.connect_kind(), info.is_read_only_review(),
                     info.non_resource_kind(), info.proxy_path(), info.is_upgrade_allowed());
            prop_assert!(!info.path.contains('%'));
            prop_assert!(!info.path.contains("/../") && !info.path.contains("/./") && !info.path.contains("//"));
            prop_assert!(!info.path.contains('\\') && !info.path.contains(';') && !info.path.contains('\0'));
        }
        let _ = DryRun::parse(query.as_deref());
        let _ = BodyFormat::from_content_type(&path).patch_type();
    }

    #[test]
    fn never_panics_on_path_like_input(path in "/[a-z0-9%./;\\\\:+?#]{0,40}", query in "[a-zA-Z0-9%=&;+.]{0,30}") {
        let _ = classify(&Method::GET, &path, Some(&query));
        let _ = DryRun::parse(Some(&query));
    }

    #[test]
    fn tricks_are_rejected(r in req(), trick in proptest::sample::select(TRICKS), pos in any::<prop::sample::Index>()) {
        let path = r.path();
        // insert anywhere after the leading '/'
        let at = 1 + pos.index(path.len());
        let bad = format!("{}{}{}", &path[..at], trick, &path[at..]);
        prop_assert!(classify(&r.method, &bad, None).is_err(), "accepted {:?}", bad);
    }

    #[test]
    fn encoding_unreserved_letters_is_invisible(r in req(), mask in proptest::collection::vec(any::<bool>(), 128), q in proptest::option::of("(watch=(1|true|false)|limit=5)")) {
        let path = r.path();
        let mut enc = String::new();
        for (i, c) in path.chars().enumerate() {
            if c.is_ascii_alphanumeric() && mask[i % mask.len()] {
                enc += &format!("%{:02X}", c as u32);
            } else {
                enc.push(c);
            }
        }
        let a = classify(&r.method, &path, q.as_deref()).unwrap();
        let b = classify(&r.method, &enc, q.as_deref()).unwrap();
        prop_assert_eq!(a, b);
    }
}
