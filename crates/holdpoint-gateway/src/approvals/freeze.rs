//! Keeps the decider's view of the freeze in step with the store.
//!
//! The freeze is a stored setting, so it survives restarts and reaches every replica. The
//! decider reads it for every request from a lock-free [`FreezeHandle`]; this module fills the
//! handle at start, whenever the API switches the freeze, and by re-reading the store every
//! second (a switch made through another replica arrives within that).

use std::time::Duration;

use holdpoint_store::{Freeze as StoredFreeze, FreezeMode as StoredMode, Store};
use tokio_util::sync::CancellationToken;

use crate::phases::decide::{Freeze, FreezeHandle, FreezeMode};

/// Puts the stored freeze into the handle.
pub fn apply(handle: &FreezeHandle, stored: &StoredFreeze) {
    if stored.on {
        handle.store(Some(std::sync::Arc::new(Freeze {
            reason: stored
                .reason
                .clone()
                .unwrap_or_else(|| "change freeze".into()),
            mode: match stored.mode {
                StoredMode::Deny => FreezeMode::Deny,
                StoredMode::Hold => FreezeMode::Hold,
            },
        })));
    } else {
        handle.store(None);
    }
}

/// Reads the stored freeze into the handle once. A store that cannot be read counts as
/// frozen (deny): fail closed.
pub async fn refresh(store: &Store, handle: &FreezeHandle) {
    match store.freeze().await {
        Ok(f) => apply(handle, &f),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the freeze from the store; mutations are refused until it can be read");
            handle.store(Some(std::sync::Arc::new(Freeze {
                reason: "the gateway cannot read its state store".into(),
                mode: FreezeMode::Deny,
            })));
        }
    }
}

/// Re-reads the stored freeze every `interval` until `cancel`.
pub async fn follow(
    store: Store,
    handle: FreezeHandle,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => refresh(&store, &handle).await,
        }
    }
}
