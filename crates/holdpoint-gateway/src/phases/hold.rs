//! The hold phase: a request policy decided to hold waits here for reviewers.
//!
//! The foundation has no approvals yet, so [`NoHold`] refuses held requests (fail closed: a
//! request that should wait for a human is never forwarded without one).

use std::fmt::Debug;

use futures::future::BoxFuture;

use super::Exchange;
use crate::error::GatewayError;

/// Waits for (or refuses) a held request. Returns `Ok(())` when it may be forwarded.
pub trait Holder: Send + Sync + Debug {
    /// Called only for requests policy decided to hold.
    fn hold<'a>(&'a self, exchange: &'a Exchange) -> BoxFuture<'a, Result<(), GatewayError>>;
}

/// Refuses every held request: there is no approval workflow to wait for.
#[derive(Debug, Default)]
pub struct NoHold;

impl Holder for NoHold {
    fn hold<'a>(&'a self, _exchange: &'a Exchange) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async {
            Err(GatewayError::Forbidden(
                "this request needs approval, and no approval workflow is configured".into(),
            ))
        })
    }
}
