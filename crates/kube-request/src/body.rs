//! Request body formats, from the `Content-Type` header.
//!
//! Only the media type (`type/subtype`) matters; parameters such as
//! `;charset=utf-8` or `;stream=watch` are ignored and the comparison is
//! ASCII case-insensitive. Anything unrecognised is
//! [`BodyFormat::Unknown`], so policy can deny it explicitly.

use serde::Serialize;

/// The serialization of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum BodyFormat {
    /// `application/json`
    Json,
    /// `application/yaml`
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (also with `;stream=watch`)
    Protobuf,
    /// `application/cbor`, `application/cbor-seq`
    Cbor,
    /// `application/json-patch+json` (RFC 6902)
    JsonPatch,
    /// `application/merge-patch+json` (RFC 7386)
    MergePatch,
    /// `application/strategic-merge-patch+json`
    StrategicMergePatch,
    /// `application/apply-patch+yaml` (server-side apply)
    ApplyPatchYaml,
    /// `application/apply-patch+cbor` (server-side apply)
    ApplyPatchCbor,
    /// Anything else; holds the header value as given (trimmed).
    Unknown(String),
}

/// The apiserver's `types.PatchType`, for `PATCH` bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml`
    ApplyYaml,
    /// `application/apply-patch+cbor`
    ApplyCbor,
}

impl PatchType {
    /// The media type the apiserver expects for this patch type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::ApplyYaml => "application/apply-patch+yaml",
            PatchType::ApplyCbor => "application/apply-patch+cbor",
        }
    }
}

impl BodyFormat {
    /// Classifies a `Content-Type` header value.
    pub fn from_content_type(content_type: &str) -> BodyFormat {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        const TABLE: &[(&str, BodyFormat)] = &[
            ("application/json", BodyFormat::Json),
            ("application/yaml", BodyFormat::Yaml),
            ("application/vnd.kubernetes.protobuf", BodyFormat::Protobuf),
            ("application/cbor", BodyFormat::Cbor),
            ("application/cbor-seq", BodyFormat::Cbor),
            ("application/json-patch+json", BodyFormat::JsonPatch),
            ("application/merge-patch+json", BodyFormat::MergePatch),
            (
                "application/strategic-merge-patch+json",
                BodyFormat::StrategicMergePatch,
            ),
            ("application/apply-patch+yaml", BodyFormat::ApplyPatchYaml),
            ("application/apply-patch+cbor", BodyFormat::ApplyPatchCbor),
        ];
        for (mt, fmt) in TABLE {
            if essence.eq_ignore_ascii_case(mt) {
                return fmt.clone();
            }
        }
        BodyFormat::Unknown(content_type.trim().to_owned())
    }

    /// The patch type, for the patch media types; `None` otherwise
    /// (a `PATCH` with any other content type is rejected by the apiserver
    /// with 415).
    pub fn patch_type(&self) -> Option<PatchType> {
        match self {
            BodyFormat::JsonPatch => Some(PatchType::Json),
            BodyFormat::MergePatch => Some(PatchType::Merge),
            BodyFormat::StrategicMergePatch => Some(PatchType::StrategicMerge),
            BodyFormat::ApplyPatchYaml => Some(PatchType::ApplyYaml),
            BodyFormat::ApplyPatchCbor => Some(PatchType::ApplyCbor),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        use BodyFormat::*;
        assert_eq!(BodyFormat::from_content_type("application/json"), Json);
        assert_eq!(
            BodyFormat::from_content_type("Application/JSON; charset=utf-8"),
            Json
        );
        assert_eq!(BodyFormat::from_content_type("application/yaml"), Yaml);
        assert_eq!(
            BodyFormat::from_content_type("application/vnd.kubernetes.protobuf;stream=watch"),
            Protobuf
        );
        assert_eq!(BodyFormat::from_content_type("application/cbor-seq"), Cbor);
        assert_eq!(BodyFormat::from_content_type("application/cbor"), Cbor);
        assert_eq!(
            BodyFormat::from_content_type(" application/json-patch+json "),
            JsonPatch
        );
        assert_eq!(
            BodyFormat::from_content_type("application/merge-patch+json"),
            MergePatch
        );
        assert_eq!(
            BodyFormat::from_content_type("application/strategic-merge-patch+json"),
            StrategicMergePatch
        );
        assert_eq!(
            BodyFormat::from_content_type("application/apply-patch+yaml"),
            ApplyPatchYaml
        );
        assert_eq!(
            BodyFormat::from_content_type("application/apply-patch+cbor"),
            ApplyPatchCbor
        );
        assert_eq!(
            BodyFormat::from_content_type("text/plain"),
            Unknown("text/plain".into())
        );
        assert_eq!(BodyFormat::from_content_type(""), Unknown(String::new()));
        assert_eq!(JsonPatch.patch_type(), Some(PatchType::Json));
        assert_eq!(ApplyPatchCbor.patch_type(), Some(PatchType::ApplyCbor));
        assert_eq!(Json.patch_type(), None);
        assert_eq!(
            PatchType::Merge.media_type(),
            "application/merge-patch+json"
        );
    }
}
