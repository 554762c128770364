//! The audit writer: one task that writes queued events in batches (group commit: whatever
//! queued while the previous transaction committed goes into the next, up to
//! `audit.max_batch`), and signs a checkpoint every `checkpoint_every_events` events or
//! `checkpoint_interval` with new events.
//!
//! When a batch fails, callers waiting for durability (mutations) are told at once, so their
//! requests are refused; events nobody waits for are kept and retried with backoff (up to 5 s)
//! until the store writes again. They stay bounded by `audit.max_queue` (counted at submit).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use holdpoint_store::{AuditSigner, NewAuditEvent, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Job, Shared};
use crate::clock::Clock;

type Done = Option<oneshot::Sender<Result<(), String>>>;

pub(super) struct Writer {
    pub store: Store,
    pub rx: mpsc::UnboundedReceiver<Job>,
    pub shared: Arc<Shared>,
    pub signer: Arc<AuditSigner>,
    pub clock: Arc<dyn Clock>,
    pub max_batch: usize,
    pub batch_delay: Duration,
    pub session_gap: Duration,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
}

impl Writer {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut events: Vec<NewAuditEvent> = Vec::new();
        let mut dones: Vec<Done> = Vec::new();
        let mut since_checkpoint: u64 = 0;
        let mut backoff = Duration::ZERO;
        let mut tick = tokio::time::interval(self.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        while open {
            if events.is_empty() {
                tokio::select! {
                    job = self.rx.recv() => match job {
                        Some(job) => {
                            events.push(job.event);
                            dones.push(job.done);
                        }
                        None => open = false,
                    },
                    _ = tick.tick() => {
                        self.checkpoint(&mut since_checkpoint).await;
                        continue;
                    }
                    _ = cancel.cancelled() => open = false,
                }
            } else if !backoff.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => open = false,
                }
            }
            self.take_queued(&mut events, &mut dones);
            if events.is_empty() {
                continue;
            }
            if open && backoff.is_zero() {
                self.linger(&mut events, &mut dones).await;
            }
            let n = events.len().min(self.max_batch);
            match self
                .store
                .append_audit(&events[..n], self.session_gap)
                .await
            {
                Ok(_) => {
                    events.drain(..n);
                    for done in dones.drain(..n).flatten() {
                        let _ = done.send(Ok(()));
                    }
                    self.written(n);
                    backoff = Duration::ZERO;
                    since_checkpoint += n as u64;
                    if since_checkpoint >= self.checkpoint_every {
                        self.checkpoint(&mut since_checkpoint).await;
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    tracing::error!(target: "holdpoint::audit", error = %why, events = n, "audit write failed");
                    self.shared.metrics.write_failures.inc();
                    self.set_healthy(false);
                    // Waiting callers are refused now; the rest are retried.
                    let mut kept_events = Vec::with_capacity(events.len());
                    let mut kept_dones = Vec::with_capacity(dones.len());
                    let mut given_up = 0;
                    for (event, done) in events.drain(..).zip(dones.drain(..)) {
                        match done {
                            Some(done) => {
                                let _ = done.send(Err(format!("the audit store failed: {why}")));
                                given_up += 1;
                            }
                            None => {
                                kept_events.push(event);
                                kept_dones.push(None);
                            }
                        }
                    }
                    events = kept_events;
                    dones = kept_dones;
                    self.release(given_up);
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                    if !open {
                        break;
                    }
                }
            }
        }
        // Stopping: write what is queued once more, then sign the head.
        while let Ok(job) = self.rx.try_recv() {
            events.push(job.event);
            dones.push(job.done);
        }
        for chunk_start in (0..events.len()).step_by(self.max_batch.max(1)) {
            let end = (chunk_start + self.max_batch).min(events.len());
            let result = self
                .store
                .append_audit(&events[chunk_start..end], self.session_gap)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            if result.is_ok() {
                self.written(end - chunk_start);
            } else {
                tracing::error!(target: "holdpoint::audit", events = end - chunk_start, "audit events lost at shutdown: the store did not write them");
                self.release(end - chunk_start);
            }
            for done in dones[chunk_start..end].iter_mut().filter_map(Option::take) {
                let _ = done.send(result.clone());
            }
        }
        self.checkpoint(&mut since_checkpoint).await;
    }

    /// Lets a batch that nobody waits for (events of reads) gather more events for up to
    /// `batch_delay`: one transaction instead of many. Returns at once when an event somebody
    /// waits for (a mutation's) is queued. The writer sleeps meanwhile: a read's event does not
    /// wake it (one wake-up per batch, not one per request).
    async fn linger(&mut self, events: &mut Vec<NewAuditEvent>, dones: &mut Vec<Done>) {
        if self.batch_delay.is_zero() || dones.iter().any(Option::is_some) {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.batch_delay;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = self.shared.urgent.notified() => {}
        }
        self.take_queued(events, dones);
    }

    /// Adds what is already queued to the batch, up to `max_batch`.
    fn take_queued(&mut self, events: &mut Vec<NewAuditEvent>, dones: &mut Vec<Done>) {
        while events.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(job) => {
                    events.push(job.event);
                    dones.push(job.done);
                }
                Err(_) => break,
            }
        }
    }

    fn written(&self, n: usize) {
        self.shared.metrics.events_written.inc_by(n as u64);
        self.release(n);
        self.set_healthy(true);
    }

    fn release(&self, n: usize) {
        let left = self
            .shared
            .queued
            .fetch_sub(n, Ordering::AcqRel)
            .saturating_sub(n);
        self.shared.metrics.queue_depth.set(left as i64);
    }

    fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::Release);
        self.shared.metrics.store_healthy.set(i64::from(healthy));
    }

    async fn checkpoint(&self, since: &mut u64) {
        match self
            .store
            .audit_checkpoint(&self.signer, self.clock.now())
            .await
        {
            Ok(Some(cp)) => {
                self.shared.metrics.checkpoints.inc();
                tracing::debug!(target: "holdpoint::audit", seq = cp.seq, "audit checkpoint signed");
                *since = 0;
            }
            Ok(None) => *since = 0,
            Err(e) => {
                tracing::warn!(target: "holdpoint::audit", error = %e, "audit checkpoint failed; retried later")
            }
        }
    }
}
