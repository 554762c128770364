//! The listeners: the TLS data-path listener (HTTP/1.1 with upgrades and HTTP/2) and the admin
//! listener, and [`start`], which wires configuration into a running gateway.
//!
//! Data-path connections are served by `data_threads` threads, each running a single-threaded
//! tokio runtime with its own upstream connection pool (as nginx's worker processes and
//! pingora's per-thread runtimes do): the acceptor hands each accepted connection to the next
//! thread, and everything that connection does (TLS, the phases, the upstream exchange) then
//! runs on that thread, without cross-thread wake-ups. The control plane (audit writer,
//! approvals, admin listener) runs on the main runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::approvals::{self, ApprovalSettings, Approvals};
use crate::audit::{Audit, AuditRecorder};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::phases::Pipeline;
use crate::phases::authenticate::{AuthChain, ChainDeps, ConnectionInfo};
use crate::phases::decide::{Decider, FreezeHandle, PolicyDecider, PolicyLoadError, no_freeze};
use crate::phases::hold::Holder;
use crate::phases::mask::{EngineMasker, Masker, NoMask};
use crate::phases::record::{LogRecorder, Recorder};
use crate::tls::{ServingCert, TlsError};
use crate::upstream::{Upstream, UpstreamError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The upstream kubeconfig.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The policy file.
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    /// The masking configuration does not compile.
    #[error("invalid mask configuration: {0}")]
    Mask(#[from] holdpoint_mask::MaskError),
    /// The store could not be opened or migrated.
    #[error("cannot open the store: {0}")]
    Store(#[from] holdpoint_store::StoreError),
    /// The audit log could not start.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditStartError),
    /// Starting the data-path threads.
    #[error("cannot start the data-path threads: {0}")]
    Threads(std::io::Error),
    /// Binding a listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Phases that replace the defaults (used by later capabilities and by tests).
#[derive(Debug, Default)]
pub struct PhaseOverrides {
    /// Replaces the policy from the config (`policy.file`, or the embedded default policy).
    pub decider: Option<Arc<dyn Decider>>,
    /// The freeze state the configured policy reads (the store keeps it current). Absent: a
    /// handle nobody sets, i.e. never frozen. Ignored when `decider` is given.
    pub freeze: Option<FreezeHandle>,
    /// Replaces the approval workflow (tests use `NoHold`).
    pub holder: Option<Arc<dyn Holder>>,
    /// Replaces the masker built from `mask:` (the engine, or pass-through when disabled).
    pub masker: Option<Arc<dyn Masker>>,
    /// Replaces the recorder (the audit log, or the log line with `audit.enabled: false`).
    pub recorder: Option<Arc<dyn Recorder>>,
    /// Replaces the system clock.
    pub clock: Option<Arc<dyn Clock>>,
}

/// A gateway that is serving. Dropping it does not stop it; call [`RunningGateway::shutdown`].
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    ca_pem: String,
    store: holdpoint_store::Store,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    data: Arc<DataThreads>,
}

impl RunningGateway {
    /// The data-path address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }
    /// `https://` URL of the data path.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    /// `https://` and the admin address (the reviewer API).
    pub fn admin_url(&self) -> String {
        format!("https://{}", self.admin_addr)
    }
    /// PEM of the CA callers must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// The store the gateway keeps its state in.
    pub fn store(&self) -> &holdpoint_store::Store {
        &self.store
    }
    /// Stops accepting, gives open connections a moment, then stops.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        self.store.close().await;
        // Last: store connections opened on a data thread are driven by its runtime.
        let data = self.data.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || data.stop()),
        )
        .await;
    }
    /// Waits until the gateway stops (it stops only on shutdown).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the gateway with the default phases.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    start_with(config, PhaseOverrides::default()).await
}

/// Starts the gateway with some phases replaced.
pub async fn start_with(
    config: Config,
    overrides: PhaseOverrides,
) -> Result<RunningGateway, StartError> {
    let cert = ServingCert::load_or_create(config.tls.as_ref(), &config.data_dir, &[])?;
    let tls = TlsAcceptor::from(cert.server_config()?);
    // The data path asks for client certificates when they are configured; the admin listener
    // never does.
    let data_tls = TlsAcceptor::from(
        cert.server_config_with_client_ca(
            config
                .authentication
                .client_certificates
                .as_ref()
                .map(|c| c.ca_file.as_path()),
        )?,
    );
    let data =
        Arc::new(DataThreads::start(config.data_thread_count()).map_err(StartError::Threads)?);
    let upstream = Upstream::from_kubeconfig(
        &config.upstream.kubeconfig,
        config.upstream.context.as_deref(),
        config.limits.upstream_response_timeout,
        data.handles.len(),
    )
    .await?;
    // After the certificate: that created data_dir, where the SQLite store lives by default.
    let store = holdpoint_store::Store::open(&config.store_url()).await?;
    let metrics = Arc::new(Metrics::default());
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let authenticator = Arc::new(AuthChain::from_config(
        &config.authentication,
        &ChainDeps {
            upstream: upstream.clone(),
            clock: clock.clone(),
            store: Some(store.clone()),
        },
    ));

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let listener = bind(config.listen).await?;
    let admin_listener = bind(config.admin_listen).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.admin_listen,
            source,
        })?;

    // The freeze: kept in the store, read by the decider from this handle.
    let freeze = overrides.freeze.unwrap_or_else(no_freeze);
    approvals::freeze::refresh(&store, &freeze).await;

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();

    // record: the audit log in the store, written by its own task (group commit).
    let audit = if config.audit.enabled {
        let (audit, writer) = Audit::start(
            store.clone(),
            &config.audit,
            &config.mask.engine(),
            crate::audit::AuditRuntime {
                data_dir: &config.data_dir,
                instance: config.instance_name(),
                metrics: &metrics,
                clock: clock.clone(),
                cancel: cancel.clone(),
            },
        )?;
        tasks.spawn(writer);
        Some(audit)
    } else {
        None
    };

    // decide: the override, or the configured policy (watched for changes and SIGHUP)
    let mut policy_watch = None;
    let decider: Arc<dyn Decider> = match overrides.decider {
        Some(d) => d,
        None => {
            let decider = Arc::new(match &config.policy.file {
                Some(path) => PolicyDecider::from_file(path, freeze.clone())?,
                None => PolicyDecider::embedded(freeze.clone()),
            });
            if decider.file().is_some() {
                policy_watch = Some(
                    decider
                        .clone()
                        .watch(Duration::from_secs(1), cancel.clone()),
                );
                if let Some(audit) = &audit {
                    tasks.spawn(crate::audit::recorder::record_policy_reloads(
                        audit.clone(),
                        decider.reloads(),
                        cancel.clone(),
                    ));
                }
            }
            decider
        }
    };

    // hold: approvals in the store. Approvals left executing by a crash become `unknown`.
    let approvals = Approvals::new(
        store.clone(),
        upstream.clone(),
        clock.clone(),
        ApprovalSettings {
            reviewer_url: config
                .admin
                .url
                .clone()
                .unwrap_or_else(|| format!("https://{admin_addr}")),
            retry_after: Duration::from_secs(1),
            instance: config.instance_name(),
            impersonate: config.upstream.impersonate,
        },
        audit.clone(),
    );
    approvals.recover().await?;
    let mut api = approvals::api::router(approvals::api::ApiState {
        approvals: approvals.clone(),
        auth: authenticator.clone(),
        admins: approvals::api::Admins {
            users: config.admin.users.clone(),
            groups: config.admin.groups.clone(),
        },
        freeze: freeze.clone(),
        audit: audit.clone(),
    });
    if let Some(audit) = &audit {
        let mut readers = config.audit.auditors.clone();
        readers.users.extend(config.admin.users.iter().cloned());
        readers.groups.extend(config.admin.groups.iter().cloned());
        api = api.merge(crate::audit::api::router(
            crate::audit::api::AuditApiState {
                public_key: audit.public_key().clone(),
                audit: audit.clone(),
                auth: authenticator.clone(),
                readers,
            },
        ));
    }
    let recorder: Arc<dyn Recorder> = match (overrides.recorder, &audit) {
        (Some(r), _) => r,
        (None, Some(audit)) => Arc::new(AuditRecorder::new(audit.clone())),
        (None, None) => Arc::new(LogRecorder),
    };

    let pipeline = Arc::new(Pipeline {
        authenticator,
        decider,
        holder: overrides
            .holder
            .unwrap_or_else(|| Arc::new(approvals.clone())),
        masker: match overrides.masker {
            Some(m) => m,
            None if config.mask.enabled => {
                Arc::new(EngineMasker::new(&config.mask, metrics.clone())?)
            }
            None => Arc::new(NoMask),
        },
        recorder,
        upstream,
        impersonate: config.upstream.impersonate,
        limits: config.limits.clone(),
        metrics: metrics.clone(),
        clock,
    });

    if let Some(watch) = policy_watch {
        tasks.spawn(watch);
    }
    tasks.spawn(
        approvals
            .clone()
            .sweep_forever(Duration::from_secs(1), cancel.clone()),
    );
    tasks.spawn(approvals::freeze::follow(
        store.clone(),
        freeze,
        Duration::from_secs(1),
        cancel.clone(),
    ));
    tasks.spawn(serve_data(
        listener,
        data_tls,
        pipeline,
        config.limits.clone(),
        data.clone(),
        cancel.clone(),
    ));
    tasks.spawn(admin::serve(
        admin_listener,
        tls,
        metrics,
        api,
        cancel.clone(),
    ));
    tracing::info!(%addr, %admin_addr, instance = %config.instance_name(), "holdpoint gateway listening");
    Ok(RunningGateway {
        addr,
        admin_addr,
        ca_pem: cert.ca_pem,
        store,
        cancel,
        tasks,
        data,
    })
}

/// The data-path threads, each running a single-threaded runtime until stopped (on shutdown, or
/// when the gateway is dropped).
#[derive(Debug)]
struct DataThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    stopping: CancellationToken,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl DataThreads {
    fn start(n: usize) -> std::io::Result<Self> {
        let stopping = CancellationToken::new();
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stop = stopping.clone();
            let thread = std::thread::Builder::new()
                .name(format!("holdpoint-data-{i}"))
                .spawn(move || {
                    crate::upstream::use_data_thread_pool(i);
                    runtime.block_on(stop.cancelled());
                    runtime.shutdown_timeout(Duration::from_secs(1));
                });
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stopping.cancel();
                    return Err(e);
                }
            }
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            stopping,
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// The runtime of the thread the next connection goes to (round robin).
    fn next(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// Stops every thread and waits for them (blocking).
    fn stop(&self) {
        self.stopping.cancel();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for DataThreads {
    fn drop(&mut self) {
        self.stopping.cancel();
    }
}

async fn serve_data(
    listener: TcpListener,
    tls: TlsAcceptor,
    pipeline: Arc<Pipeline>,
    limits: crate::config::Limits,
    data: Arc<DataThreads>,
    cancel: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(1000);
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // Handed to a data thread, whose runtime then polls the socket.
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand over an accepted connection");
                continue;
            }
        };
        let tls = tls.clone();
        let pipeline = pipeline.clone();
        let builder = builder.clone();
        let limits = limits.clone();
        let cancel = cancel.clone();
        data.next().spawn(connections.track_future(async move {
            let tcp = match tokio::net::TcpStream::from_std(tcp) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot register an accepted connection");
                    return;
                }
            };
            let stream =
                match tokio::time::timeout(limits.tls_handshake_timeout, tls.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let client_certs = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let conn = Arc::new(ConnectionInfo { peer, client_certs });
            let activity = Arc::new(Activity::new());
            let svc = {
                let activity = activity.clone();
                service_fn(move |req| {
                    let pipeline = pipeline.clone();
                    let conn = conn.clone();
                    let busy = activity.begin();
                    async move {
                        let response = pipeline.handle(req, &conn).await;
                        // The request stays in progress until its response body is done.
                        Ok::<_, Infallible>(
                            response.map(|b| b.map_frame(move |f| busy.keep(f)).boxed_unsync()),
                        )
                    }
                })
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            let mut tick = tokio::time::interval(limits.idle_timeout / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut closing = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = cancel.cancelled(), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = tick.tick(), if !closing => {
                        if activity.idle_for() >= limits.idle_timeout {
                            tracing::debug!(%peer, "closing idle connection");
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
        }));
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

/// Requests in progress on one connection and when the last one ended, for the idle timeout.
struct Activity {
    in_progress: AtomicUsize,
    base: Instant,
    /// Milliseconds after `base` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_progress: AtomicUsize::new(0),
            base: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// How long no request has been in progress (zero while one is).
    fn idle_for(&self) -> Duration {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        self.base.elapsed().saturating_sub(since)
    }
}

/// Marks a request in progress until dropped (with its response body).
struct Busy(Arc<Activity>);

impl Busy {
    /// Passes a body frame through; holding `self` keeps the request in progress.
    fn keep<T>(&self, frame: T) -> T {
        frame
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}
