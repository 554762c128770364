//! The audit log: every request (allowed, denied, held, approved, executed, failed, refused),
//! every reviewer and admin action, and every exec/attach/port-forward stream, recorded in the
//! store's hash chain (`holdpoint_store::audit`), grouped into sessions, replayable and
//! exportable as Kubernetes audit events.
//!
//! ```text
//!  Pipeline ── begin (mutations: wait until durable, else refuse) ──┐
//!     └────── finish (wraps the response body: capture up to the cap) ─┤  Audit::submit / write
//!  Approvals::execute, reviewer API, freeze, tokens, policy reload ───┤        │ (unbounded
//!  StreamRecorder (exec/attach casts, port-forward byte counts) ──────┘        ▼  queue, counted)
//!                                       writer task: group commit (one transaction per batch,
//!                                       under the chain lock) + signed checkpoints every N events
//!                                       or M seconds ──▶ holdpoint_store::Store::append_audit
//! ```
//!
//! - [`event`]: the event (Kubernetes `audit.k8s.io/v1` Event plus Holdpoint's fields).
//! - [`body`]: masking, capping and compressing bodies (the one place that calls the masker).
//! - [`recorder`]: the record phase's [`crate::phases::record::Recorder`] and the stream
//!   recorder (asciinema v2 casts).
//! - `writer` (private): the group-commit writer and the checkpoints.
//! - [`query`]: sessions, timelines, replays and exports, for the CLI and the admin API.
//! - [`api`]: the auditor API on the admin listener.
//!
//! Fail closed: a mutation (and, with `audit.reads: wait`, a read) is forwarded only once its
//! `RequestReceived` event is durable; while the store fails, reads are refused
//! (`audit.reads: refuse`) or served and counted (`serve`). Events queue in memory only until
//! written (bounded by `audit.max_queue`; beyond it events of reads are dropped and counted).

pub mod api;
pub mod body;
pub mod event;
pub mod query;
pub mod recorder;
pub mod retention;
pub mod sinks;
mod writer;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use holdpoint_store::{AuditSigner, NewAuditEvent, SessionKey, Store};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{AuditConfig, AuditReads};
use crate::metrics::{AuditMetrics, Metrics};
use crate::phases::record::CallerHeaders;

pub use event::{AdminAction, Event};
pub use recorder::AuditRecorder;

/// The actor of what the gateway does by itself (policy reloads, retention).
pub const SYSTEM_ACTOR: &str = "holdpoint";

/// How long a request waits for its record to become durable before it is refused.
const DURABLE_WAIT: Duration = Duration::from_secs(5);

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The session an event belongs to: `Kubectl-Session` (one kubectl invocation), else
/// `Holdpoint-Session` (an agent's task), else the caller's requests until a pause of
/// `audit.session_gap`. Header values are the caller's, so the id is derived from the
/// username and the value: nobody can add events to another caller's session.
pub fn session_key(username: Option<&str>, caller: &CallerHeaders, peer: IpAddr) -> SessionKey {
    let derive = |prefix: &str, value: &str| {
        let mut h = Sha256::new();
        h.update(username.unwrap_or("").as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        SessionKey::Fixed(format!("{prefix}-{}", &hex(&h.finalize())[..16]))
    };
    if let Some(k) = &caller.kubectl_session {
        return derive("k", k);
    }
    if let Some(h) = &caller.holdpoint_session {
        return derive("h", h);
    }
    SessionKey::Gap(match username {
        Some(u) => format!("user:{u}"),
        None => format!("anonymous@{peer}"),
    })
}

/// One event waiting to be written; `done` is told when it is durable (or failed).
#[derive(Debug)]
struct Job {
    event: NewAuditEvent,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Recording settings the data path needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `audit.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `audit.reads`.
    pub reads: AuditReads,
    /// `audit.max_queue`.
    pub max_queue: usize,
    /// The instance name recorded with each event.
    pub instance: String,
}

/// A handle on the audit log (cheap to clone). Dropping every handle ends the writer once it
/// has written what was queued.
#[derive(Debug, Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
    settings: Settings,
    masker: holdpoint_mask::Masker,
    clock: Arc<dyn Clock>,
    store: Store,
    public_key: holdpoint_store::AuditPublicKey,
    signer: Arc<AuditSigner>,
}

/// What the handles and the writer share.
#[derive(Debug)]
struct Shared {
    /// Events submitted and not yet written (or given up).
    queued: AtomicUsize,
    /// The last write succeeded.
    healthy: AtomicBool,
    /// Rung when an event somebody waits for (a mutation's) is queued: a writer gathering reads'
    /// events for `batch_delay` is woken by these only, not by every read.
    urgent: tokio::sync::Notify,
    metrics: AuditMetrics,
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditStartError {
    /// The checkpoint key.
    #[error("audit signing key: {0}")]
    Key(holdpoint_store::StoreError),
    /// The masking configuration.
    #[error("audit masking: {0}")]
    Mask(#[from] holdpoint_mask::MaskError),
}

/// What the audit log runs with besides its configuration.
pub struct AuditRuntime<'a> {
    /// Where the signing key is created when the config names none.
    pub data_dir: &'a std::path::Path,
    /// This gateway's name in events (`holdpoint.instance`).
    pub instance: String,
    /// The gateway's metrics.
    pub metrics: &'a Arc<Metrics>,
    /// The clock events are stamped with.
    pub clock: Arc<dyn Clock>,
    /// Stops the writer (after it wrote what is queued).
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for AuditRuntime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditRuntime")
            .field("data_dir", &self.data_dir)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Starts recording into `store`: returns the handle and the writer, which runs until
    /// `cancel` (then writes what is queued and signs a last checkpoint).
    pub fn start(
        store: Store,
        config: &AuditConfig,
        mask: &holdpoint_mask::MaskConfig,
        runtime: AuditRuntime<'_>,
    ) -> Result<(Self, impl std::future::Future<Output = ()> + Send + 'static), AuditStartError>
    {
        let AuditRuntime {
            data_dir,
            instance,
            metrics,
            clock,
            cancel,
        } = runtime;
        let signer = Arc::new(
            AuditSigner::load_or_create(&config.signing_key_path(data_dir))
                .map_err(AuditStartError::Key)?,
        );
        let public_key = signer.public_key().clone();
        // The audit store masks with the same rules as the mask phase (detectors, field rules).
        let masker = holdpoint_mask::Masker::new(mask)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            urgent: tokio::sync::Notify::new(),
            metrics: metrics.audit.clone(),
        });
        shared.metrics.store_healthy.set(1);
        let writer = writer::Writer {
            store: store.clone(),
            rx,
            shared: shared.clone(),
            signer: signer.clone(),
            clock: clock.clone(),
            max_batch: config.max_batch,
            batch_delay: config.batch_delay,
            session_gap: config.session_gap,
            checkpoint_every: config.checkpoint_every_events,
            checkpoint_interval: config.checkpoint_interval,
        };
        let audit = Self {
            inner: Arc::new(Inner {
                tx,
                shared,
                settings: Settings {
                    max_body_bytes: config.max_body_bytes,
                    reads: config.reads,
                    max_queue: config.max_queue,
                    instance,
                },
                masker,
                clock,
                store: store.clone(),
                public_key,
                signer: signer.clone(),
            }),
        };
        // The writer, retention and the sinks, as one task.
        let background = {
            let audit = audit.clone();
            let config = config.clone();
            let metrics = metrics.audit.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                tasks.spawn(retention::run(
                    audit.clone(),
                    signer,
                    config.retention.clone(),
                    cancel.clone(),
                ));
                if let Some(file) = config.sinks.file.clone() {
                    tasks.spawn(sinks::run_file(
                        store.clone(),
                        file,
                        audit.settings().instance.clone(),
                        metrics.clone(),
                        cancel.clone(),
                    ));
                }
                if let Some(webhook) = config.sinks.webhook.clone() {
                    tasks.spawn(sinks::run_webhook(
                        store.clone(),
                        webhook,
                        metrics.clone(),
                        cancel.clone(),
                    ));
                }
                // The handle held here must not keep the writer's queue open.
                drop(audit);
                writer.run(cancel).await;
                while tasks.join_next().await.is_some() {}
            }
        };
        Ok((audit, background))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The masking engine the record phase uses.
    pub fn masker(&self) -> &holdpoint_mask::Masker {
        &self.inner.masker
    }

    /// The store the log is in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    /// Whether the last write succeeded.
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Acquire)
    }

    /// The audit metrics.
    pub fn metrics(&self) -> &AuditMetrics {
        &self.inner.shared.metrics
    }

    fn enqueue(
        &self,
        event: NewAuditEvent,
        done: Option<oneshot::Sender<Result<(), String>>>,
    ) -> bool {
        let shared = &self.inner.shared;
        let depth = shared.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if depth > self.inner.settings.max_queue {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        shared.metrics.queue_depth.set(depth as i64);
        if self.inner.tx.send(Job { event, done }).is_err() {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues an event without waiting. `false`: the queue was full or the writer has stopped;
    /// the event is lost (and counted).
    pub fn submit(&self, event: NewAuditEvent) -> bool {
        let queued = self.enqueue(event, None);
        if !queued {
            self.metrics().events_dropped.inc();
            tracing::warn!(target: "holdpoint::audit", "audit queue full or writer stopped: an event was dropped");
        }
        queued
    }

    /// Queues an event and waits until it is durable in the store.
    pub async fn write(&self, event: NewAuditEvent) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if !self.enqueue(event, Some(tx)) {
            return Err("the audit queue is full".into());
        }
        self.inner.shared.urgent.notify_one();
        match tokio::time::timeout(DURABLE_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the audit writer stopped".into()),
            Err(_) => Err(format!(
                "the audit store did not confirm the write within {}s",
                DURABLE_WAIT.as_secs()
            )),
        }
    }

    /// Records a reviewer or admin action and waits until it is durable (a failure is logged:
    /// the action itself already happened and is also in the store's own history).
    pub async fn admin(&self, action: &AdminAction<'_>) {
        let record = admin_record(action, self.now(), Some(&self.inner.settings.instance));
        if let Err(e) = self.write(record).await {
            tracing::error!(target: "holdpoint::audit", action = action.action, error = %e, "an admin action could not be recorded in the audit log");
        }
    }

    /// Records a refused admin-API request without waiting for it to be durable (what was
    /// refused changed nothing); counted like a read's event when the queue is full.
    pub fn admin_refused(&self, action: &AdminAction<'_>) {
        let record = admin_record(action, self.now(), Some(&self.inner.settings.instance));
        if !self.submit(record) {
            tracing::warn!(target: "holdpoint::audit", action = action.action, "a refused admin request was not recorded: the audit queue is full");
        }
    }

    /// The public key checkpoints are verified with.
    pub fn public_key(&self) -> &holdpoint_store::AuditPublicKey {
        &self.inner.public_key
    }

    /// The key that signs checkpoints.
    pub fn signer(&self) -> &AuditSigner {
        &self.inner.signer
    }
}

/// The stored event of an admin action.
fn admin_record(
    action: &AdminAction<'_>,
    now: jiff::Timestamp,
    instance: Option<&str>,
) -> NewAuditEvent {
    let audit_id = uuid::Uuid::new_v4().to_string();
    let mut event = action.to_event(&audit_id, now);
    event.holdpoint.instance = instance.map(str::to_owned);
    let username = (!event.user.username.is_empty()).then(|| event.user.username.clone());
    let peer = action.source.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let session = session_key(username.as_deref(), &CallerHeaders::default(), peer);
    NewAuditEvent {
        audit_id,
        kind: "admin".into(),
        at: now,
        username,
        session,
        event: event.to_json(),
        request_body: None,
        response_body: None,
    }
}

/// Records an admin action straight into the store, for the operator commands that change the
/// store without a running gateway (`holdpoint token create|revoke`, `holdpoint kubeconfig`).
pub async fn append_action(
    store: &Store,
    action: &AdminAction<'_>,
    session_gap: Duration,
    now: jiff::Timestamp,
) -> Result<(), holdpoint_store::StoreError> {
    store
        .append_audit(&[admin_record(action, now, None)], session_gap)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn event(id: &str) -> NewAuditEvent {
        NewAuditEvent {
            audit_id: id.into(),
            kind: "request".into(),
            at: jiff::Timestamp::now(),
            username: Some("demo-agent".into()),
            session: SessionKey::Fixed("s-test".into()),
            event: format!(r#"{{"auditID":"{id}"}}"#),
            request_body: None,
            response_body: None,
        }
    }

    async fn stored(store: &Store) -> Vec<String> {
        store
            .audit_events(&holdpoint_store::AuditFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.audit_id)
            .collect()
    }

    /// Reads' events gather for `batch_delay` (one transaction); a mutation's event is written
    /// at once, and takes the waiting reads' events with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_gather_for_the_batch_delay_and_mutations_never_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let config = AuditConfig {
            batch_delay: Duration::from_secs(1),
            ..AuditConfig::default()
        };
        let cancel = CancellationToken::new();
        let (audit, background) = Audit::start(
            store.clone(),
            &config,
            &holdpoint_mask::MaskConfig::default(),
            AuditRuntime {
                data_dir: dir.path(),
                instance: "test".into(),
                metrics: &Arc::new(Metrics::default()),
                clock: Arc::new(crate::clock::SystemClock),
                cancel: cancel.clone(),
            },
        )
        .unwrap();
        let background = tokio::spawn(background);

        assert!(audit.submit(event("read-1")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            stored(&store).await.is_empty(),
            "the read waits for company"
        );
        let started = Instant::now();
        audit.write(event("mutation-1")).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "a mutation never waits for the batch delay: {:?}",
            started.elapsed()
        );
        assert_eq!(stored(&store).await, ["read-1", "mutation-1"]);

        // a read alone is written once the delay is over
        assert!(audit.submit(event("read-2")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&store).await.len() < 3 {
            assert!(Instant::now() < deadline, "the read was never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(audit);
        cancel.cancel();
        background.await.unwrap();
    }
}
