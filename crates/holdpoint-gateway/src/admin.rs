//! The admin listener: `/healthz`, `/readyz` and `/metrics`, and the reviewer API
//! ([`crate::approvals::api`]), over TLS with the serving certificate.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use axum::routing::get;
use http::{StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::phases::authenticate::ConnectionInfo;

async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain")], "ok")
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn not_found() -> impl IntoResponse {
    let resp = crate::error::status_response(StatusCode::NOT_FOUND, "NotFound", "not found");
    let (parts, body) = resp.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::new(body))
}

/// The admin listener's routes: health, metrics and the reviewer API.
pub fn router(metrics: Arc<Metrics>, api: Router) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(self::metrics))
        .with_state(metrics)
        .merge(api)
        .fallback(not_found)
}

/// Serves the admin listener until cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    metrics: Arc<Metrics>,
    api: Router,
    cancel: CancellationToken,
) {
    let app = router(metrics, api);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), tls.accept(tcp)).await
            else {
                return;
            };
            let client_certs = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let conn = ConnectionInfo { peer, client_certs };
            let svc = TowerToHyperService::new(app.layer(Extension(conn)));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}
