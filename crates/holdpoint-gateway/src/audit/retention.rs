//! Retention (`audit.retention`): every `interval`, the oldest events past `max_age`,
//! `max_events` or `max_bytes` are pruned by `Store::prune_audit`, which signs a checkpoint of
//! the last pruned event first and records the prune (an event of kind `prune`) in the chain, so
//! `audit verify` still holds for what remains and can tell a prune from a deletion.

use std::sync::Arc;

use holdpoint_store::verify::PRUNE_KIND;
use holdpoint_store::{AuditSigner, StoreError};
use tokio_util::sync::CancellationToken;

use super::event::{PruneNote, holdpoint_object};
use super::{AdminAction, Audit, admin_record};
use crate::config::RetentionConfig;

/// Prunes by the limits every `interval` until `cancel` (returns at once without limits).
pub(super) async fn run(
    audit: Audit,
    signer: Arc<AuditSigner>,
    config: RetentionConfig,
    cancel: CancellationToken,
) {
    if config.max_age.is_none() && config.max_events.is_none() && config.max_bytes.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match prune_once(&audit, &signer, &config).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(target: "holdpoint::audit", pruned = n, "audit events pruned by retention")
            }
            Err(e) => {
                tracing::warn!(target: "holdpoint::audit", error = %e, "audit retention failed; retried later")
            }
        }
    }
}

/// Prunes once by the limits; returns how many events were deleted.
pub async fn prune_once(
    audit: &Audit,
    signer: &AuditSigner,
    config: &RetentionConfig,
) -> Result<u64, StoreError> {
    let store = audit.store();
    let (Some(first), head) = store.audit_bounds().await? else {
        return Ok(0);
    };
    let now = audit.now();
    let mut keep = first;
    let mut reason = "";
    if let Some(age) = config.max_age {
        let cutoff = now
            .checked_sub(jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MIN);
        let from_age = store
            .audit_first_seq_since(cutoff)
            .await?
            .unwrap_or(head + 1);
        if from_age > keep {
            (keep, reason) = (from_age, "age");
        }
    }
    if let Some(n) = config.max_events {
        let from_count = head - i64::try_from(n).unwrap_or(i64::MAX) + 1;
        if from_count > keep {
            (keep, reason) = (from_count, "events");
        }
    }
    if let Some(bytes) = config.max_bytes
        && let Some(from_size) = store.audit_first_kept_by_size(bytes).await?
        && from_size > keep
    {
        (keep, reason) = (from_size, "bytes");
    }
    if keep <= first {
        return Ok(0);
    }
    let mut record = admin_record(
        &AdminAction {
            actor: None,
            actor_name: None,
            source: None,
            action: "audit.prune",
            request_uri: String::new(),
            object: holdpoint_object("audit", "events"),
            outcome: "ok".into(),
            status: 200,
            reason: Some(format!("retention by {reason}")),
            detail: None,
            approval: None,
            user_agent: None,
        },
        now,
        Some(&audit.settings().instance),
    );
    // The chain's own record of the prune (what `verify` reads).
    let mut event =
        super::Event::from_json(&record.event).map_err(|e| StoreError::Invalid(e.to_string()))?;
    event.holdpoint.prune = Some(PruneNote {
        first_kept: keep,
        reason: reason.into(),
    });
    record.event = event.to_json();
    record.kind = PRUNE_KIND.into();
    let n = store.prune_audit(keep, signer, &record, now).await?;
    audit.metrics().pruned.inc_by(n);
    Ok(n)
}
