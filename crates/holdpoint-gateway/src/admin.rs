//! The admin listener: `/healthz`, `/readyz` and `/metrics`, over TLS with the serving
//! certificate. Later the reviewer and audit APIs live here too.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body};
use crate::error::status_response;
use crate::metrics::Metrics;

fn route(req: &Request<Incoming>, metrics: &Metrics) -> Response<Body> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz" | "/livez" | "/readyz") => {
            let mut r = Response::new(body::full("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, "text/plain".parse().expect("static"));
            r
        }
        ("GET", "/metrics") => {
            let mut r = Response::new(body::full(metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    .parse()
                    .expect("static"),
            );
            r
        }
        _ => status_response(StatusCode::NOT_FOUND, "NotFound", "not found"),
    }
}

/// Serves the admin listener until cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let tls = tls.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), tls.accept(tcp)).await
            else {
                return;
            };
            let svc = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(&req, &metrics)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
