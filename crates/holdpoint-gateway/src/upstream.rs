//! The upstream Kubernetes API server: a pooled HTTPS client for ordinary requests and one-shot
//! connections for protocol upgrades.
//!
//! The client is built from a kubeconfig with the kube crate, so client certificates, bearer
//! tokens, token files and exec plugins (with refresh) all work, and the upstream CA is verified.
//! Redirects are never followed (hyper does not follow them; the forward phase refuses to relay
//! them). An upgrade request gets a fresh connection that is never pooled: if the upstream answers
//! anything but `101`, that connection is dropped with the request (CVE-2018-1002105).
//!
//! Each data-path thread (see `server`) has its own connection pool, so a request and the
//! upstream connection it uses are driven by the same thread; code on any other thread (the
//! approvals executor, TokenReview) shares one more pool.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Service = BoxCloneSyncService<Request<Full<Bytes>>, Response<Incoming>, BoxError>;

/// Errors reaching the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The kubeconfig could not be read or used.
    #[error("upstream kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig path.
        path: String,
        /// What went wrong (never a credential).
        message: String,
    },
    /// Connecting or exchanging with the upstream failed.
    #[error("{0}")]
    Transport(String),
    /// The upstream did not answer in time.
    #[error("no response from the upstream within {0:?}")]
    Timeout(Duration),
}

thread_local! {
    /// Which pool this thread uses: 0 for threads outside the data path, `i + 1` for data-path
    /// thread `i`.
    static POOL: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread use pool `i + 1` (called once by data-path thread `i`).
pub(crate) fn use_data_thread_pool(i: usize) {
    POOL.with(|p| p.set(i + 1));
}

/// The upstream API server and the gateway's credential for it.
#[derive(Clone)]
pub struct Upstream {
    base: Uri,
    /// Pooled connections, with the gateway's credential added: one pool per data-path thread
    /// plus one for every other thread.
    pools: Arc<[Service]>,
    /// A fresh, never-reused connection per request, with the credential added.
    one_shot: Service,
    response_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the upstream from a kubeconfig file and optional context, with a connection pool
    /// for each of `data_threads` data-path threads and one more for every other thread.
    pub async fn from_kubeconfig(
        path: &Path,
        context: Option<&str>,
        response_timeout: Duration,
        data_threads: usize,
    ) -> Result<Self, UpstreamError> {
        let err = |message: String| UpstreamError::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| err(e.to_string()))?;
        let connector = config
            .rustls_https_connector()
            .map_err(|e| err(e.to_string()))?;
        // The auth layer is not Clone; each service (every pool, the one-shot path) gets its
        // own: an exec plugin then keeps one token cache per service and runs once per service
        // when the token expires (data_threads + 2 runs), which is harmless.
        let auth = || config.auth_layer().map_err(|e| err(e.to_string()));
        let pools = (0..=data_threads)
            .map(|_| {
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(64)
                    .build(connector.clone());
                let pooled = tower::ServiceBuilder::new()
                    .option_layer(auth()?)
                    .service(client.map_err(BoxError::from));
                Ok(BoxCloneSyncService::new(pooled))
            })
            .collect::<Result<Arc<[Service]>, UpstreamError>>()?;
        let one_shot =
            tower::ServiceBuilder::new()
                .option_layer(auth()?)
                .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
                    send_on_fresh_connection(connector.clone(), req)
                }));
        Ok(Self {
            base: config.cluster_url,
            pools,
            one_shot: BoxCloneSyncService::new(one_shot),
            response_timeout,
        })
    }

    /// The upstream URI for a caller's raw path and query. The path is never cleaned: the
    /// classifier already refused anything the apiserver could read differently.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let base_path = self.base.path().trim_end_matches('/');
        let mut parts = self.base.clone().into_parts();
        let pq = format!("{base_path}{path_and_query}");
        parts.path_and_query = Some(
            pq.parse()
                .map_err(|e: http::uri::InvalidUri| UpstreamError::Transport(e.to_string()))?,
        );
        Uri::from_parts(parts).map_err(|e| UpstreamError::Transport(e.to_string()))
    }

    async fn with_timeout<T>(
        &self,
        fut: impl Future<Output = Result<T, BoxError>>,
    ) -> Result<T, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(UpstreamError::Transport(describe(&*e))),
            Err(_) => Err(UpstreamError::Timeout(self.response_timeout)),
        }
    }

    /// Sends an ordinary request on a pooled connection with the gateway's credential.
    /// The response body streams; only the head is bounded by the response timeout.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let pool = POOL.with(Cell::get) % self.pools.len();
        self.with_timeout(self.pools[pool].clone().oneshot(req))
            .await
    }

    /// Sends an upgrade request on a fresh connection that is never reused. Returns the response
    /// head; on `101` the caller takes the upgraded stream with `hyper::upgrade::on`. On any other
    /// status the connection closes once the response is dropped.
    pub async fn send_upgrade(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.with_timeout(self.one_shot.clone().oneshot(req)).await
    }
}

/// Opens a new connection, sends one request on it and returns the response. The connection
/// task ends when the response (or its upgraded stream) is dropped; it is never pooled.
async fn send_on_fresh_connection(
    connector: Connector,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, BoxError> {
    let io = connector.oneshot(req.uri().clone()).await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Full<Bytes>>(io)
        .await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender.send_request(req).await?)
}

/// The error chain as one line, for messages that reach the caller (no credentials are ever in
/// transport errors).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Adapts the upgraded connection for tokio I/O.
pub fn tokio_io(upgraded: hyper::upgrade::Upgraded) -> TokioIo<hyper::upgrade::Upgraded> {
    TokioIo::new(upgraded)
}
