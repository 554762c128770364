//! Stored static tokens and the kubeconfigs that carry them: the code `holdpoint token create`,
//! `holdpoint kubeconfig` and `holdpoint demo` share. The token is returned (and printed or
//! written) once; the store keeps only its SHA-256.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use holdpoint_store::{NewToken, Store, StoredToken};
use jiff::{SignedDuration, Timestamp};

use crate::kubeconfig;

/// Who a new token stands for.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// Username.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Lifetime (`None`: until revoked).
    pub ttl: Option<Duration>,
    /// What it is for.
    pub description: Option<String>,
    /// Who creates it (recorded in the store's events).
    pub created_by: String,
}

/// Creates a token: returns the token itself (show it once) and what was stored.
pub async fn issue(
    store: &Store,
    spec: &TokenSpec,
    now: Timestamp,
) -> anyhow::Result<(String, StoredToken)> {
    anyhow::ensure!(!spec.user.is_empty(), "a token needs a user");
    let expires_at = match spec.ttl {
        None => None,
        Some(ttl) => {
            anyhow::ensure!(!ttl.is_zero(), "--ttl must be positive");
            let ttl = SignedDuration::try_from(ttl).context("--ttl is too long")?;
            Some(now.checked_add(ttl).context("--ttl is too long")?)
        }
    };
    let token = holdpoint_store::generate_token()?;
    let stored = store
        .create_token(
            &NewToken {
                sha256: holdpoint_store::sha256_hex(token.as_bytes()),
                username: spec.user.clone(),
                groups: spec.groups.clone(),
                uid: None,
                description: spec.description.clone(),
                expires_at,
                created_by: spec.created_by.clone(),
            },
            now,
        )
        .await?;
    record(
        store,
        &spec.created_by,
        "token.create",
        &stored.id,
        spec.description.clone(),
        Some(serde_json::json!({
            "username": stored.username,
            "groups": stored.groups,
            "expiresAt": stored.expires_at,
        })),
        DEFAULT_SESSION_GAP,
        now,
    )
    .await?;
    Ok((token, stored))
}

/// The session gap of records made outside a gateway when the config does not say.
const DEFAULT_SESSION_GAP: Duration = Duration::from_secs(15 * 60);

/// Revokes one token or every token of a user, and records it in the audit log. Returns the ids
/// revoked now.
pub async fn revoke(
    store: &Store,
    which: &holdpoint_store::TokenSelector,
    actor: &str,
    reason: Option<&str>,
    session_gap: Duration,
    now: Timestamp,
) -> anyhow::Result<Vec<String>> {
    let revoked = store.revoke_tokens(which, actor, reason, now).await?;
    for id in &revoked {
        record(
            store,
            actor,
            "token.revoke",
            id,
            reason.map(str::to_owned),
            None,
            session_gap,
            now,
        )
        .await?;
    }
    Ok(revoked)
}

/// Records a token change in the audit log (never the token).
#[allow(clippy::too_many_arguments)]
async fn record(
    store: &Store,
    actor: &str,
    action: &str,
    id: &str,
    reason: Option<String>,
    detail: Option<serde_json::Value>,
    session_gap: Duration,
    now: Timestamp,
) -> anyhow::Result<()> {
    use holdpoint_gateway::audit::{AdminAction, append_action, event::holdpoint_object};
    append_action(
        store,
        &AdminAction {
            actor: None,
            actor_name: Some(actor.to_owned()),
            source: None,
            action,
            request_uri: String::new(),
            object: holdpoint_object("tokens", id),
            outcome: "ok".into(),
            status: 200,
            reason,
            detail,
            approval: None,
            user_agent: Some("holdpoint".into()),
        },
        session_gap,
        now,
    )
    .await
    .context("recording the token change in the audit log")
}

/// Where a written kubeconfig points: the gateway, its CA, its admin listener.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The gateway's data-path URL.
    pub server: &'a str,
    /// The admin listener's URL (the reviewer API), written as a cluster extension.
    pub admin_server: &'a str,
    /// The CA that signed the gateway's serving certificate.
    pub ca_pem: &'a str,
    /// The context's default namespace.
    pub namespace: Option<&'a str>,
}

/// Creates a token for `spec` and writes (mode 0600) a kubeconfig that reaches `target` with
/// it. Returns the token and what was stored.
pub async fn write_token_kubeconfig(
    store: &Store,
    spec: &TokenSpec,
    target: Target<'_>,
    out: &Path,
    now: Timestamp,
) -> anyhow::Result<(String, StoredToken)> {
    let (token, stored) = issue(store, spec, now).await?;
    kubeconfig::write_private(
        out,
        &kubeconfig::with_admin_server(
            &kubeconfig::for_token(
                target.server,
                target.ca_pem,
                &spec.user,
                &token,
                target.namespace,
            ),
            target.admin_server,
        ),
    )
    .with_context(|| format!("writing {}", out.display()))?;
    Ok((token, stored))
}

/// Who runs this command, for the store's records: `cli:$USER`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// One line per token for `holdpoint token list` (never the token itself).
pub fn format_list(tokens: &[StoredToken], now: Timestamp) -> String {
    let mut out = format!(
        "{:<14} {:<24} {:<24} {:<10} {:<20} {:<20} {}\n",
        "ID", "USER", "GROUPS", "STATE", "CREATED", "EXPIRES", "DESCRIPTION"
    );
    let ts = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for t in tokens {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if !t.is_valid_at(now) {
            "expired"
        } else {
            "valid"
        };
        out.push_str(&format!(
            "{:<14} {:<24} {:<24} {:<10} {:<20} {:<20} {}\n",
            t.id,
            t.username,
            t.groups.join(","),
            state,
            ts(t.created_at),
            t.expires_at.map(ts).unwrap_or_else(|| "never".into()),
            t.description.as_deref().unwrap_or(""),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issue_stores_only_the_hash_with_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let spec = TokenSpec {
            user: "bot".into(),
            groups: vec!["agents".into()],
            ttl: Some(Duration::from_secs(3600)),
            description: Some("ci".into()),
            created_by: "test".into(),
        };
        let (token, stored) = issue(&store, &spec, now).await.unwrap();
        assert!(token.starts_with("hpt_"));
        assert_eq!(stored.sha256, holdpoint_store::sha256_hex(token.as_bytes()));
        assert_eq!(
            stored.expires_at,
            Some("2026-12-02T11:00:00Z".parse().unwrap())
        );
        let listed = format_list(&store.list_tokens().await.unwrap(), now);
        assert!(listed.contains(&stored.id) && listed.contains("valid"));
        assert!(!listed.contains(&token));
        let zero = TokenSpec {
            ttl: Some(Duration::ZERO),
            ..spec
        };
        assert!(issue(&store, &zero, now).await.is_err());
    }
}
