//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`: the
//! `k8s\0` magic + `runtime.Unknown` envelope) into JSON, for the kinds kubectl's typed clients
//! send as protobuf: TokenRequest, TokenReview, SelfSubjectReview, SelfSubject{Access,Rules}Review,
//! ConfigMap, Secret, Namespace, ServiceAccount, Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding. Responses are always JSON (typed clients accept it).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// Field types of the schema subset.
#[derive(Debug, Clone, Copy)]
enum T {
    Str,
    Int,
    Bool,
    Msg(&'static [(u32, &'static str, T)]),
    RepStr,
    RepMsg(&'static [(u32, &'static str, T)]),
    MapStr,
    MapBytes,
    Time,
}

type Schema = &'static [(u32, &'static str, T)];

const OWNER_REF: Schema = &[
    (1, "kind", T::Str),
    (3, "name", T::Str),
    (4, "uid", T::Str),
    (5, "apiVersion", T::Str),
    (6, "controller", T::Bool),
    (7, "blockOwnerDeletion", T::Bool),
];
const OBJECT_META: Schema = &[
    (1, "name", T::Str),
    (2, "generateName", T::Str),
    (3, "namespace", T::Str),
    (5, "uid", T::Str),
    (6, "resourceVersion", T::Str),
    (7, "generation", T::Int),
    (8, "creationTimestamp", T::Time),
    (11, "labels", T::MapStr),
    (12, "annotations", T::MapStr),
    (13, "ownerReferences", T::RepMsg(OWNER_REF)),
    (14, "finalizers", T::RepStr),
];
const BOUND_REF: Schema = &[
    (1, "kind", T::Str),
    (2, "apiVersion", T::Str),
    (3, "name", T::Str),
    (4, "uid", T::Str),
];
const TOKEN_REQUEST: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (
        2,
        "spec",
        T::Msg(&[
            (1, "audiences", T::RepStr),
            (3, "boundObjectRef", T::Msg(BOUND_REF)),
            (4, "expirationSeconds", T::Int),
        ]),
    ),
];
const TOKEN_REVIEW: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (
        2,
        "spec",
        T::Msg(&[(1, "token", T::Str), (2, "audiences", T::RepStr)]),
    ),
];
const RESOURCE_ATTRS: Schema = &[
    (1, "namespace", T::Str),
    (2, "verb", T::Str),
    (3, "group", T::Str),
    (4, "version", T::Str),
    (5, "resource", T::Str),
    (6, "subresource", T::Str),
    (7, "name", T::Str),
];
const SSAR: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (
        2,
        "spec",
        T::Msg(&[
            (1, "resourceAttributes", T::Msg(RESOURCE_ATTRS)),
            (
                2,
                "nonResourceAttributes",
                T::Msg(&[(1, "path", T::Str), (2, "verb", T::Str)]),
            ),
        ]),
    ),
];
const SSRR: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "spec", T::Msg(&[(1, "namespace", T::Str)])),
];
const META_ONLY: Schema = &[(1, "metadata", T::Msg(OBJECT_META))];
const CONFIG_MAP: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "data", T::MapStr),
    (3, "binaryData", T::MapBytes),
    (4, "immutable", T::Bool),
];
const SECRET: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "data", T::MapBytes),
    (3, "type", T::Str),
    (4, "stringData", T::MapStr),
    (5, "immutable", T::Bool),
];
const NAMESPACE: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "spec", T::Msg(&[(1, "finalizers", T::RepStr)])),
];
const OBJECT_REF: Schema = &[
    (1, "kind", T::Str),
    (2, "namespace", T::Str),
    (3, "name", T::Str),
    (4, "uid", T::Str),
    (5, "apiVersion", T::Str),
];
const SERVICE_ACCOUNT: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "secrets", T::RepMsg(OBJECT_REF)),
    (3, "imagePullSecrets", T::RepMsg(&[(1, "name", T::Str)])),
    (4, "automountServiceAccountToken", T::Bool),
];
const POLICY_RULE: Schema = &[
    (1, "verbs", T::RepStr),
    (2, "apiGroups", T::RepStr),
    (3, "resources", T::RepStr),
    (4, "resourceNames", T::RepStr),
    (5, "nonResourceURLs", T::RepStr),
];
const ROLE: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (2, "rules", T::RepMsg(POLICY_RULE)),
];
const BINDING: Schema = &[
    (1, "metadata", T::Msg(OBJECT_META)),
    (
        2,
        "subjects",
        T::RepMsg(&[
            (1, "kind", T::Str),
            (2, "apiGroup", T::Str),
            (3, "name", T::Str),
            (4, "namespace", T::Str),
        ]),
    ),
    (
        3,
        "roleRef",
        T::Msg(&[
            (1, "apiGroup", T::Str),
            (2, "kind", T::Str),
            (3, "name", T::Str),
        ]),
    ),
];

fn schema_for(kind: &str) -> Option<Schema> {
    Some(match kind {
        "TokenRequest" => TOKEN_REQUEST,
        "TokenReview" => TOKEN_REVIEW,
        "SelfSubjectAccessReview" | "SubjectAccessReview" => SSAR,
        "SelfSubjectRulesReview" => SSRR,
        "SelfSubjectReview" => META_ONLY,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        _ => return None,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i)?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()? as usize;
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    /// Next `(field, wire type, varint value, bytes)`.
    fn next(&mut self) -> Option<Option<(u32, u64, &'a [u8])>> {
        if self.i >= self.b.len() {
            return Some(None);
        }
        let key = self.varint()?;
        let (field, wt) = ((key >> 3) as u32, key & 7);
        match wt {
            0 => Some(Some((field, self.varint()?, &[]))),
            1 => {
                self.i += 8;
                Some(Some((field, 0, &[])))
            }
            2 => {
                let b = self.bytes()?;
                Some(Some((field, 0, b)))
            }
            5 => {
                self.i += 4;
                Some(Some((field, 0, &[])))
            }
            _ => None,
        }
    }
}

fn decode_msg(b: &[u8], schema: Schema) -> Option<Value> {
    let mut out = Map::new();
    let mut r = Reader { b, i: 0 };
    while let Some((field, v, bytes)) = r.next()? {
        let Some((_, name, ty)) = schema.iter().find(|(n, _, _)| *n == field) else {
            continue;
        };
        let name = (*name).to_string();
        let text = || String::from_utf8_lossy(bytes).to_string();
        match ty {
            T::Str => {
                out.insert(name, json!(text()));
            }
            T::Int => {
                out.insert(name, json!(v as i64));
            }
            T::Bool => {
                out.insert(name, json!(v != 0));
            }
            T::Msg(s) => {
                out.insert(name, decode_msg(bytes, s)?);
            }
            T::RepStr => {
                let e = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!(text()));
                }
            }
            T::RepMsg(s) => {
                let m = decode_msg(bytes, s)?;
                let e = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(m);
                }
            }
            T::MapStr | T::MapBytes => {
                let mut er = Reader { b: bytes, i: 0 };
                let (mut k, mut val) = (String::new(), Value::String(String::new()));
                while let Some((f, _, eb)) = er.next()? {
                    match f {
                        1 => k = String::from_utf8_lossy(eb).to_string(),
                        2 => {
                            val = if matches!(ty, T::MapBytes) {
                                json!(STANDARD.encode(eb))
                            } else {
                                json!(String::from_utf8_lossy(eb))
                            }
                        }
                        _ => {}
                    }
                }
                let e = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = e.as_object_mut() {
                    m.insert(k, val);
                }
            }
            T::Time => {
                let mut tr = Reader { b: bytes, i: 0 };
                let mut secs = 0i64;
                while let Some((f, tv, _)) = tr.next()? {
                    if f == 1 {
                        secs = tv as i64;
                    }
                }
                let ts = jiff::Timestamp::from_second(secs)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                out.insert(name, json!(ts));
            }
        }
    }
    Some(Value::Object(out))
}

/// Decodes a protobuf-encoded Kubernetes object. `Err` carries the kind when it is not supported.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| "missing protobuf magic".to_string())?;
    let mut r = Reader { b: rest, i: 0 };
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    while let Some((f, _, b)) = r.next().ok_or("malformed envelope")? {
        match f {
            1 => {
                let mut tr = Reader { b, i: 0 };
                while let Some((tf, _, tb)) = tr.next().ok_or("malformed TypeMeta")? {
                    match tf {
                        1 => api_version = String::from_utf8_lossy(tb).to_string(),
                        2 => kind = String::from_utf8_lossy(tb).to_string(),
                        _ => {}
                    }
                }
            }
            2 => raw = b,
            _ => {}
        }
    }
    let schema = schema_for(&kind).ok_or_else(|| kind.clone())?;
    let mut v = decode_msg(raw, schema).ok_or_else(|| format!("malformed {kind}"))?;
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    Ok(v)
}
