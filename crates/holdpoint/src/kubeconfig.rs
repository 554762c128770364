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

/// The cluster extension naming the gateway's admin listener (the reviewer API), which
/// `holdpoint approvals|wait|freeze` read. kubectl and client-go ignore extensions.
pub const ADMIN_SERVER_EXTENSION: &str = "holdpoint.dev/admin-server";

/// Adds the [`ADMIN_SERVER_EXTENSION`] to every cluster of a kubeconfig written by this module.
pub fn with_admin_server(kubeconfig: &str, admin_server: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(kubeconfig) else {
        return kubeconfig.to_owned();
    };
    if let Some(clusters) = doc["clusters"].as_array_mut() {
        for c in clusters {
            c["cluster"]["extensions"] = json!([{
                "name": ADMIN_SERVER_EXTENSION,
                "extension": { "server": admin_server },
            }]);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| kubeconfig.to_owned())
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

/// The kubelogin exec plugin (<https://github.com/int128/kubelogin>, installed as the kubectl
/// plugin `kubectl oidc-login`, e.g. with `kubectl krew install oidc-login`): kubectl runs it to
/// get an ID token, which opens a browser for the issuer's login the first time and caches the
/// token (refreshing it) afterwards.
pub const OIDC_EXEC_COMMAND: &str = "kubectl";

/// A kubeconfig whose only context reaches `server` (the gateway) as whoever logs in at the
/// OIDC `issuer`: the user entry runs `kubectl oidc-login get-token` (kubelogin) with the
/// issuer, client id and extra scopes, and sends the ID token it prints as the bearer token.
pub fn for_oidc(
    server: &str,
    ca_pem: &str,
    context: &str,
    issuer: &str,
    client_id: &str,
    extra_scopes: &[String],
    namespace: Option<&str>,
) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let mut ctx = json!({ "cluster": "holdpoint", "user": context });
    if let Some(ns) = namespace {
        ctx["namespace"] = json!(ns);
    }
    let mut args = vec![
        "oidc-login".to_string(),
        "get-token".to_string(),
        format!("--oidc-issuer-url={issuer}"),
        format!("--oidc-client-id={client_id}"),
    ];
    args.extend(
        extra_scopes
            .iter()
            .map(|s| format!("--oidc-extra-scope={s}")),
    );
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "holdpoint", "cluster": { "server": server, "certificate-authority-data": ca } }],
        "users": [{ "name": context, "user": { "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": OIDC_EXEC_COMMAND,
            "args": args,
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": false,
        } } }],
        "contexts": [{ "name": context, "context": ctx }],
        "current-context": context,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_kubeconfig_runs_kubelogin() {
        let text = for_oidc(
            "https://127.0.0.1:1",
            "-----BEGIN CERTIFICATE-----\n",
            "me",
            "https://issuer.example",
            "holdpoint",
            &["email".into()],
            None,
        );
        let kc: kube::config::Kubeconfig = serde_json::from_str(&text).unwrap();
        let exec = kc.auth_infos[0]
            .auth_info
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap();
        assert_eq!(exec.command.as_deref(), Some("kubectl"));
        assert_eq!(
            exec.args.as_deref().unwrap(),
            [
                "oidc-login",
                "get-token",
                "--oidc-issuer-url=https://issuer.example",
                "--oidc-client-id=holdpoint",
                "--oidc-extra-scope=email"
            ]
        );
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
