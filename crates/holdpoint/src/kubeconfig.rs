//! Kubeconfigs that point a client at the gateway: the cluster is the gateway (with its CA), the
//! user a bearer token for one identity.

use std::path::Path;

use base64::Engine;
use serde_json::json;

/// A kubeconfig whose only context reaches `server` (the gateway) as the holder of `token`.
pub fn for_token(
    server: &str,
    ca_pem: &str,
    context: &str,
    token: &str,
    namespace: Option<&str>,
) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let mut ctx = json!({ "cluster": "holdpoint", "user": context });
    if let Some(ns) = namespace {
        ctx["namespace"] = json!(ns);
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "holdpoint", "cluster": { "server": server, "certificate-authority-data": ca } }],
        "users": [{ "name": context, "user": { "token": token } }],
        "contexts": [{ "name": context, "context": ctx }],
        "current-context": context,
    });
    // JSON is valid YAML; kubectl, client-go, kube-rs and the Python client all read it.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Writes a kubeconfig readable only by its owner (it holds a credential).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A fresh random bearer token (256 bits from the OS generator, as two v4 UUIDs' random bits
/// would give only 244; here 32 random bytes, hex encoded).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random generator is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("hp_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        assert!(a.starts_with("hp_"));
    }

    #[test]
    fn kubeconfig_parses_with_kube() {
        let text = for_token(
            "https://127.0.0.1:1",
            "-----BEGIN CERTIFICATE-----\n",
            "agent",
            "tok",
            Some("demo"),
        );
        let kc: kube::config::Kubeconfig = serde_json::from_str(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("agent"));
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://127.0.0.1:1")
        );
    }
}
