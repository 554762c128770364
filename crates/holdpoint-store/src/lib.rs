//! Holdpoint's durable state, shared by every gateway replica: stored static tokens, settings
//! (the freeze) and the approval lifecycle (approvals, votes, events).
//!
//! Two backends behind one [`Store`]: SQLite (embedded default, one file in the data dir, WAL)
//! and PostgreSQL (several replicas share one database). Each has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), run on [`Store::open`]. The operations are
//! written once (`ops.rs`) and compiled for each backend with its own types and the few SQL
//! differences (`FOR UPDATE` row locks and `pg_notify` on PostgreSQL, `BEGIN IMMEDIATE` on
//! SQLite).
//!
//! Invariants are enforced here, inside one transaction per operation, not by callers:
//! - every approval state change writes an [`ApprovalEvent`] (actor, time, reason) in the same
//!   transaction, before the state update;
//! - transitions are conditional (`... WHERE state = 'pending'` with the row locked), so
//!   concurrent votes, retries and executors cannot both win;
//! - at most one live (pending, approved, executing) approval per binding key (a unique partial
//!   index), so identical requests attach to one row;
//! - token and setting changes write a `store_events` row in the same transaction.
//!
//! Times are passed in from the caller's injected clock; nothing here reads the system clock.
//!
//! Waiting for a decision: [`Store::wait_for_change`] wakes on changes made through this `Store`
//! and on PostgreSQL `LISTEN/NOTIFY` (changes made by other replicas), only for its own approval;
//! as a fallback (SQLite shared by several processes, a dropped listener connection) one poller
//! per store reads the states of every waited-for approval each [`Store::set_poll_interval`]
//! (`waiters.rs`).

pub mod audit;
mod error;
pub mod pack;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
pub mod verify;
mod waiters;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use audit::{
    AppendedEvent, AuditCheckpoint, AuditEvent, AuditFilter, AuditHead, AuditPublicKey,
    AuditSigner, NewAuditEvent, SessionKey,
};
pub use error::StoreError;
pub use types::*;
pub use verify::{Problem, ProblemKind, VerifyReport};

/// The PostgreSQL channel that carries `id:state` for every approval change.
pub const NOTIFY_CHANNEL: &str = "holdpoint_approvals";

/// Store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

mod sqlite_ops {
    //! The operations compiled for SQLite: writers serialise on `BEGIN IMMEDIATE`, so a row read
    //! inside a transaction cannot change before it commits.
    type Db = sqlx::Sqlite;
    /// SQLite locks the whole database for the writer; no row lock clause.
    const LOCK: &str = "";
    /// No cross-process notification on SQLite.
    const NOTIFY: Option<&str> = None;
    async fn begin(pool: &sqlx::Pool<Db>) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
    include!("ops.rs");
    include!("audit_ops.rs");
}

mod pg_ops {
    //! The operations compiled for PostgreSQL: READ COMMITTED transactions that lock the
    //! approval row (`FOR UPDATE`) before reading the state they check.
    type Db = sqlx::Postgres;
    /// Row lock for read-check-write.
    const LOCK: &str = " FOR UPDATE";
    /// Tells other replicas (delivered on commit).
    const NOTIFY: Option<&str> = Some("SELECT pg_notify('holdpoint_approvals', $1)");
    async fn begin(pool: &sqlx::Pool<Db>) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin().await
    }
    include!("ops.rs");
    include!("audit_ops.rs");
}

enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

struct Inner {
    backend: Backend,
    poll_interval: std::sync::Mutex<Duration>,
    listener: Option<tokio::task::JoinHandle<()>>,
    waiters: Arc<waiters::Waiters>,
    /// The waiters' fallback poller, started by the first wait.
    poller: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
        if let Some(p) = self.poller.get() {
            p.abort();
        }
    }
}

/// How often the waiters' poller reads the states of the waited-for approvals. Waiters wake at
/// once on this process's changes and on PostgreSQL notifications from other replicas; polling
/// only catches changes made without either (another process on the same SQLite file).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The store: cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Shows only the backend: a PostgreSQL URL may carry a password.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* $(,)? )) => {
        match &$self.inner.backend {
            Backend::Sqlite(pool) => sqlite_ops::$f(pool, $($arg),*).await,
            Backend::Postgres(pool) => pg_ops::$f(pool, $($arg),*).await,
        }
    };
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// - `sqlite://PATH` (or `sqlite:PATH`): a file, created if missing, in WAL mode with a busy
    ///   timeout and foreign keys on; `sqlite::memory:` for a private in-memory store;
    /// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?...]` (or `postgresql://`): a shared
    ///   database; changes are announced on [`NOTIFY_CHANNEL`].
    pub async fn open(url: &str) -> Result<Self> {
        let waiters = Arc::new(waiters::Waiters::default());
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|_| StoreError::InvalidUrl("not a valid sqlite:// URL"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a transition is on disk before the gateway acts on it (exactly once
                // across a power loss, not only a process crash).
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A 32 MiB page cache per connection (grown only as pages are read) keeps the
                // hot index pages out of `pread`, and checkpointing every 4,000 WAL pages
                // (16 MiB) instead of 1,000 writes each hot page back less often. Measured in
                // docs/BENCHMARKS.md (with one audit row per event, before packs).
                .pragma("cache_size", "-32768")
                .pragma("wal_autocheckpoint", "4000");
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let pool = SqlitePoolOptions::new()
                // an in-memory database lives in one connection
                .max_connections(if memory { 1 } else { 8 })
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(3600))
                })
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            sqlite_ops::repack_legacy_audit(&pool).await?;
            Ok(Self::from_backend(Backend::Sqlite(pool), waiters, None))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|_| StoreError::InvalidUrl("not a valid postgres:// URL"))?
                .application_name("holdpoint");
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            pg_ops::repack_legacy_audit(&pool).await?;
            let listener = spawn_pg_listener(&pool, waiters.clone()).await?;
            Ok(Self::from_backend(
                Backend::Postgres(pool),
                waiters,
                Some(listener),
            ))
        } else {
            Err(StoreError::InvalidUrl(
                "expected sqlite://PATH or postgres://USER@HOST/DB",
            ))
        }
    }

    fn from_backend(
        backend: Backend,
        waiters: Arc<waiters::Waiters>,
        listener: Option<tokio::task::JoinHandle<()>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                poll_interval: std::sync::Mutex::new(DEFAULT_POLL_INTERVAL),
                listener,
                waiters,
                poller: std::sync::OnceLock::new(),
            }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        if let Some(l) = &self.inner.listener {
            l.abort();
        }
        match &self.inner.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// How often [`Store::wait_for_change`] re-reads the approval when no notification came
    /// (default [`DEFAULT_POLL_INTERVAL`]).
    pub fn set_poll_interval(&self, interval: Duration) {
        *self
            .inner
            .poll_interval
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = interval;
    }

    fn poll_interval(&self) -> Duration {
        *self
            .inner
            .poll_interval
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the waiters of approval `id` after a change made through this store.
    fn publish(&self, id: &str) {
        self.inner.waiters.wake(id);
    }

    // ---- tokens ----

    /// Stores a static token's hash. `sha256` must be 64 lowercase hex characters.
    pub async fn create_token(&self, new: &NewToken, now: Timestamp) -> Result<StoredToken> {
        dispatch!(self, create_token(new, now))
    }

    /// The token with this SHA-256 (lowercase hex) if it is neither expired nor revoked at `now`.
    pub async fn lookup_token_by_hash(
        &self,
        sha256: &str,
        now: Timestamp,
    ) -> Result<Option<StoredToken>> {
        dispatch!(self, lookup_token_by_hash(sha256, now))
    }

    /// Revokes one token or every token of a user; returns the ids revoked now (tokens already
    /// revoked are left as they are). An unknown id is `NotFound`.
    pub async fn revoke_tokens(
        &self,
        which: &TokenSelector,
        by: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        dispatch!(self, revoke_tokens(which, by, reason, now))
    }

    /// Every stored token (valid or not), oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<StoredToken>> {
        dispatch!(self, list_tokens())
    }

    /// Token and setting changes (who, when, why), newest first; only those of `subject` (a
    /// token id or setting key) when given.
    pub async fn store_events(&self, subject: Option<&str>, limit: u32) -> Result<Vec<StoreEvent>> {
        dispatch!(self, store_events(subject, limit))
    }

    // ---- settings ----

    /// A setting, if set.
    pub async fn get_setting(&self, key: &str) -> Result<Option<Setting>> {
        dispatch!(self, get_setting(key))
    }

    /// Sets a setting (recorded in `store_events` with who, when and why).
    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        by: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Setting> {
        dispatch!(self, set_setting(key, value, by, reason, now))
    }

    /// The freeze (off when never set).
    pub async fn freeze(&self) -> Result<Freeze> {
        match self.get_setting("freeze").await? {
            None => Ok(Freeze::default()),
            Some(s) => serde_json::from_value(s.value)
                .map_err(|e| StoreError::Corrupt(format!("freeze setting: {e}"))),
        }
    }

    /// Switches the freeze; `freeze.by` and `freeze.at` are set from `by` and `now`.
    pub async fn set_freeze(
        &self,
        on: bool,
        mode: FreezeMode,
        reason: Option<&str>,
        by: &str,
        now: Timestamp,
    ) -> Result<Freeze> {
        let freeze = Freeze {
            on,
            reason: reason.map(str::to_owned),
            mode,
            by: by.to_owned(),
            at: Some(now),
        };
        let value = serde_json::to_value(&freeze)
            .map_err(|e| StoreError::Invalid(format!("freeze: {e}")))?;
        self.set_setting("freeze", &value, by, reason, now).await?;
        Ok(freeze)
    }

    // ---- approvals ----

    /// Creates a pending approval, or returns the live (pending, approved, executing) one with
    /// the same binding key: `(approval, attached)`. A live one whose time to live has passed
    /// (pending, or an unused grant) is expired first and a new one created. Concurrent
    /// identical calls yield one row. Refuses an approval without reviewers, with quorum 0,
    /// or with a body hash that does not match the body.
    pub async fn create_or_attach(&self, new: &NewApproval) -> Result<(Approval, bool)> {
        let (approval, attached, expired) = dispatch!(self, create_or_attach(new))?;
        if let Some(old) = expired {
            self.publish(&old);
        }
        if !attached {
            self.publish(&approval.id);
        }
        Ok((approval, attached))
    }

    /// Records a reviewer's vote. Only while pending and not expired (an expired one is moved
    /// to `expired` and `Expired` returned); the requester cannot vote (`SelfApproval`); the
    /// voter must be among the reviewers (`NotAReviewer`); a second vote by the same reviewer
    /// changes nothing (`counted: false`); a denial needs a reason and ends it (`denied`);
    /// approvals from `quorum` distinct reviewers make it `approved`.
    pub async fn vote(
        &self,
        id: &str,
        voter: &Voter,
        decision: Decision,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<VoteResult> {
        let res = dispatch!(self, vote(id, voter, decision, reason, now));
        match &res {
            Ok(r) if r.counted => self.publish(id),
            Err(StoreError::Expired(_)) => self.publish(id),
            _ => {}
        }
        res
    }

    /// The requester withdraws a pending approval.
    pub async fn cancel(
        &self,
        id: &str,
        by: &str,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Approval> {
        let a = dispatch!(self, cancel(id, by, reason, now))?;
        self.publish(id);
        Ok(a)
    }

    /// Expires every pending approval and unused grant whose time to live has passed at `now`;
    /// returns their ids. (An approved `execute` approval is not expired: it is sent or, after
    /// a crash, found by listing `approved`.)
    pub async fn expire_due(&self, now: Timestamp) -> Result<Vec<String>> {
        let ids = dispatch!(self, expire_due(now))?;
        for id in &ids {
            self.publish(id);
        }
        Ok(ids)
    }

    /// approved (execute mode) -> executing, recorded before the request is sent. Returns true
    /// only for the one caller that made the transition: send the request only then. `executor`
    /// names this gateway instance (for [`Store::recover_after_crash`]).
    pub async fn begin_execute(&self, id: &str, executor: &str, now: Timestamp) -> Result<bool> {
        let won = dispatch!(self, begin_execute(id, executor, now))?;
        if won {
            self.publish(id);
        }
        Ok(won)
    }

    /// executing -> executed (the upstream answered; `result` kept, body bounded) or failed.
    pub async fn finish_execute(
        &self,
        id: &str,
        outcome: ExecutionOutcome,
        result: Option<&UpstreamResult>,
        now: Timestamp,
    ) -> Result<Approval> {
        let a = dispatch!(self, finish_execute(id, outcome, result, now))?;
        self.publish(id);
        Ok(a)
    }

    /// After a restart: every approval left `executing` (by `executor`, or by anyone when
    /// `None`) becomes `unknown`; it is never resent. Returns their ids. With several replicas,
    /// pass this instance's executor name so a live replica's sends are not touched.
    pub async fn recover_after_crash(
        &self,
        executor: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let ids = dispatch!(self, recover_after_crash(executor, now))?;
        for id in &ids {
            self.publish(id);
        }
        Ok(ids)
    }

    /// Grant mode: the caller re-sent the identical request. If an approved, unexpired grant
    /// with this binding key exists, it becomes `executed` (used) and is returned: forward the
    /// request. Each grant is used at most once, even under concurrent calls.
    pub async fn consume_grant(
        &self,
        binding_key: &str,
        now: Timestamp,
    ) -> Result<Option<Approval>> {
        let (used, expired) = dispatch!(self, consume_grant(binding_key, now))?;
        if let Some(id) = expired {
            self.publish(&id);
        }
        if let Some(a) = &used {
            self.publish(&a.id);
        }
        Ok(used)
    }

    /// One approval.
    pub async fn get_approval(&self, id: &str) -> Result<Option<Approval>> {
        dispatch!(self, get_approval(id))
    }

    /// Approvals matching the filter, newest first.
    pub async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>> {
        dispatch!(self, list_approvals(filter))
    }

    /// An approval's transitions, in order.
    pub async fn approval_events(&self, id: &str) -> Result<Vec<ApprovalEvent>> {
        dispatch!(self, approval_events(id))
    }

    /// An approval's votes, in order.
    pub async fn approval_votes(&self, id: &str) -> Result<Vec<Vote>> {
        dispatch!(self, approval_votes(id))
    }

    // ---- audit ----

    /// Appends events to the audit chain, in order, in one transaction under the chain's lock
    /// (so several replicas append to one chain). Events with [`SessionKey::Gap`] join their
    /// caller's open session, or open a new one when the caller's last such event is more than
    /// `session_gap` older. Durable when this returns (SQLite `synchronous=FULL`, PostgreSQL
    /// commit).
    pub async fn append_audit(
        &self,
        events: &[NewAuditEvent],
        session_gap: Duration,
    ) -> Result<Vec<AppendedEvent>> {
        let gap = i64::try_from(session_gap.as_micros()).unwrap_or(i64::MAX);
        dispatch!(self, append_audit(events, gap))
    }

    /// Signs a checkpoint of the chain head, unless one already covers it. `None`: nothing new.
    pub async fn audit_checkpoint(
        &self,
        signer: &AuditSigner,
        now: Timestamp,
    ) -> Result<Option<AuditCheckpoint>> {
        dispatch!(self, audit_checkpoint(signer, now))
    }

    /// Checkpoints at or after `from_seq`, oldest first.
    pub async fn audit_checkpoints(&self, from_seq: i64) -> Result<Vec<AuditCheckpoint>> {
        dispatch!(self, audit_checkpoints(from_seq))
    }

    /// The chain head (sequence number 0 when the log is empty).
    pub async fn audit_head(&self) -> Result<AuditHead> {
        dispatch!(self, audit_head())
    }

    /// Events matching the filter, oldest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        dispatch!(self, audit_events(filter))
    }

    /// The first event at or after `at`.
    pub async fn audit_first_seq_since(&self, at: Timestamp) -> Result<Option<i64>> {
        dispatch!(self, audit_first_seq_since(at))
    }

    /// The first event kept (`None`: none) and the chain head's sequence number.
    pub async fn audit_bounds(&self) -> Result<(Option<i64>, i64)> {
        dispatch!(self, audit_bounds())
    }

    /// How far sink `name` has delivered (`None`: never ran).
    pub async fn audit_sink_cursor(&self, name: &str) -> Result<Option<i64>> {
        dispatch!(self, audit_sink_cursor(name))
    }

    /// Records that sink `name` delivered every event up to `seq`.
    pub async fn set_audit_sink_cursor(&self, name: &str, seq: i64) -> Result<()> {
        dispatch!(self, set_audit_sink_cursor(name, seq))
    }

    /// The first event to keep so that the newest events take at most `max_bytes` (event text
    /// and stored bodies); `None` when everything fits.
    pub async fn audit_first_kept_by_size(&self, max_bytes: u64) -> Result<Option<i64>> {
        let max = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        dispatch!(self, audit_first_kept_by_size(max))
    }

    /// Deletes the events before `first_kept`: first signs a checkpoint of the last deleted
    /// event (the remaining chain verifies from there), then appends `record` (kind
    /// [`verify::PRUNE_KIND`], JSON with `holdpoint.prune.firstKept` equal to `first_kept`), so
    /// the prune itself is in the chain. Returns how many events were deleted.
    pub async fn prune_audit(
        &self,
        first_kept: i64,
        signer: &AuditSigner,
        record: &NewAuditEvent,
        now: Timestamp,
    ) -> Result<u64> {
        if record.kind != verify::PRUNE_KIND
            || verify::prune_first_kept(&record.event) != Some(first_kept)
        {
            return Err(StoreError::Invalid(
                "a prune record must be of kind prune and name the first event kept".into(),
            ));
        }
        dispatch!(self, prune_audit(first_kept, signer, record, now))
    }

    /// Waits until approval `id` is no longer in state `seen` or `timeout` passes, and returns
    /// it as it is then (its state is still `seen` on timeout). Wakes on this process's changes
    /// and PostgreSQL notifications for this approval at once, and on the shared poller's
    /// reading otherwise (see `waiters.rs`).
    pub async fn wait_for_change(
        &self,
        id: &str,
        seen: ApprovalState,
        timeout: Duration,
    ) -> Result<Approval> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Register before reading, so a change between the read and the wait is not missed.
        let mut registration = self.inner.waiters.register(id, seen);
        self.start_poller();
        loop {
            let current = self
                .get_approval(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
            if current.state != seen || tokio::time::Instant::now() >= deadline {
                return Ok(current);
            }
            match tokio::time::timeout_at(deadline, registration.rx.changed()).await {
                // woken, or the deadline: read once more
                Ok(Ok(())) | Err(_) => {}
                // the registry dropped the sender: cannot happen while registered
                Ok(Err(_)) => tokio::time::sleep_until(deadline).await,
            }
        }
    }

    /// Starts the waiters' fallback poller (once per store; it ends with the store).
    fn start_poller(&self) {
        self.inner.poller.get_or_init(|| {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                loop {
                    let interval = match weak.upgrade() {
                        Some(inner) => Store { inner }.poll_interval(),
                        None => return,
                    };
                    tokio::time::sleep(interval).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let store = Store { inner };
                    let ids = store.inner.waiters.ids();
                    if ids.is_empty() {
                        continue;
                    }
                    match dispatch!(store, approval_states(&ids)) {
                        Ok(states) => store.inner.waiters.polled(&ids, &states),
                        Err(e) => {
                            tracing::warn!(error = %e, "store: polling waited-for approvals failed")
                        }
                    }
                }
            })
        });
    }
}

/// Wakes the waiters named by `holdpoint_approvals` notifications (`id:state`) from other
/// replicas. Reconnects by itself (sqlx's listener); the waiters' poller also runs, so a gap
/// while it reconnects only delays them.
async fn spawn_pg_listener(
    pool: &sqlx::PgPool,
    waiters: Arc<waiters::Waiters>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(n) => {
                    // `id:state`; the waiters re-read the state themselves.
                    if let Some((id, _)) = n.payload().split_once(':') {
                        waiters.wake(id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store: PostgreSQL listener failed; retrying");
                    // Notifications may have been lost meanwhile: every waiter re-reads.
                    waiters.wake_all();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

/// Microseconds since the epoch, the stored form of a time.
pub(crate) fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("time {us}: {e}")))
}

/// A short readable id: `prefix-` and 10 lowercase base32 characters (50 random bits).
pub(crate) fn new_id(prefix: &str) -> Result<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid(format!("randomness: {e}")))?;
    let mut s = String::with_capacity(prefix.len() + 11);
    s.push_str(prefix);
    s.push('-');
    for b in bytes {
        s.push(ALPHABET[(b & 31) as usize] as char);
    }
    Ok(s)
}

/// A fresh static token: `hpt_` and 43 base64url characters (256 random bits). Print it once;
/// store only [`sha256_hex`] of it.
pub fn generate_token() -> Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 43];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid(format!("randomness: {e}")))?;
    let mut s = String::from("hpt_");
    for b in bytes {
        s.push(ALPHABET[(b & 63) as usize] as char);
    }
    Ok(s)
}
