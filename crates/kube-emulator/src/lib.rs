//! In-tree Kubernetes API emulator: an HTTPS server (HTTP/1.1 with upgrades and HTTP/2 via ALPN)
//! that speaks enough of the real API for unmodified kubectl, client-go, the Python client and
//! kube-rs: discovery, OpenAPI v3, CRUD + patch + watch over a JSON object store, Tables, logs,
//! TokenRequest/TokenReview, and streaming subresources (in [`streams`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::EmulatorError> {
//! let emu = kube_emulator::start(kube_emulator::EmulatorConfig::default()).await?;
//! emu.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod logs;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod proto;
pub mod resources;
pub mod respond;
pub mod router;
pub mod seed;
pub mod selectors;
pub mod store;
pub mod streams;
pub mod table;
pub mod tls;
pub mod watch;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, EmulatorError};
pub use router::RecordedRequest;

/// What to preload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// Only what every cluster has: namespaces `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease` (each with a `default` ServiceAccount) and the Node `emulator-node`.
    #[default]
    None,
    /// Plus the `demo` namespace (see [`seed::demo`]).
    Demo,
}

/// Start-up options.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on (`127.0.0.1:0` by default).
    pub listen: SocketAddr,
    /// Preloaded objects.
    pub seed: Seed,
    /// The admin bearer token; random when `None`.
    pub admin_token: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Seed::None,
            admin_token: None,
        }
    }
}

/// A running emulator. Dropping it without [`RunningEmulator::shutdown`] leaves the server
/// running until the runtime stops.
#[derive(Debug)]
pub struct RunningEmulator {
    app: Arc<router::App>,
    addr: SocketAddr,
    ca_pem: String,
    task: JoinHandle<()>,
}

/// Starts the emulator.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    let certs = tls::generate()?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let admin_token = config
        .admin_token
        .unwrap_or_else(|| format!("emulator-admin-{}", uuid::Uuid::new_v4().simple()));
    let app = Arc::new(router::App {
        store: store::Store::new(),
        signer: auth::TokenSigner::random(),
        admin_token,
        recorder: Mutex::new(VecDeque::new()),
        shutdown: CancellationToken::new(),
        server: addr.to_string(),
        token_reviews: Default::default(),
    });
    let mut objs = seed::base();
    if config.seed == Seed::Demo {
        objs.extend(seed::demo());
    }
    for o in objs {
        handlers::insert_object(&app, o).map_err(|e| EmulatorError::Seed(e.to_string()))?;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config);
    let task = tokio::spawn(accept_loop(listener, acceptor, app.clone()));
    tracing::info!(%addr, "kube-emulator listening");
    Ok(RunningEmulator {
        app,
        addr,
        ca_pem: certs.ca_pem,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Arc<router::App>,
) {
    let shutdown = app.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(router::handle(app, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(%peer, error = %e, "connection ended with error") },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

impl RunningEmulator {
    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.app.admin_token
    }

    /// An admin kubeconfig (cluster with CA data, user with the admin token, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig(&self.url(), &self.ca_pem, &self.app.admin_token)
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Every request received so far (up to the last 100,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// How many TokenReviews this emulator has answered since it started.
    pub fn token_reviews(&self) -> u64 {
        self.app
            .token_reviews
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.app
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Creates or replaces an object (any served kind, by `apiVersion`/`kind`) with the same
    /// defaulting as a create; a missing namespace is created. Returns the stored object.
    pub fn insert(&self, obj: Value) -> Result<Value, ApiError> {
        handlers::insert_object(&self.app, obj)
    }

    /// [`Self::insert`] for many objects; returns how many were stored.
    pub fn insert_many(&self, objs: impl IntoIterator<Item = Value>) -> Result<usize, ApiError> {
        let mut n = 0;
        for o in objs {
            self.insert(o)?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads one object straight from the store (`namespace` "" for cluster-scoped kinds).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = self.app.store.resolve_kind(api_version, kind)?;
        self.app.store.get(&res.storage_key(), namespace, name)
    }

    /// Mints a service-account token like TokenRequest would (the account must exist for it to
    /// authenticate).
    pub fn mint_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        expiration_seconds: i64,
    ) -> String {
        let uid = self
            .app
            .store
            .get("/serviceaccounts", namespace, service_account)
            .and_then(|sa| sa["metadata"]["uid"].as_str().map(String::from))
            .unwrap_or_default();
        let now = objects::now_secs();
        let aud: Vec<String> = if audiences.is_empty() {
            vec![auth::ISSUER.to_string()]
        } else {
            audiences.iter().map(|a| a.to_string()).collect()
        };
        self.app.signer.mint(
            &auth::TokenClaims {
                namespace: namespace.into(),
                name: service_account.into(),
                sa_uid: uid,
                audiences: aud,
                exp: now + expiration_seconds,
                jti: uuid::Uuid::new_v4().to_string(),
                bound: None,
            },
            now,
        )
    }

    /// Stops accepting, ends every connection, watch and log stream.
    pub async fn shutdown(self) {
        self.app.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// An admin kubeconfig for a server URL, CA and token.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emulator\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts:\n- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator-admin\n    namespace: default\ncurrent-context: kube-emulator\nusers:\n- name: kube-emulator-admin\n  user:\n    token: {token}\npreferences: {{}}\n",
        STANDARD.encode(ca_pem)
    )
}
