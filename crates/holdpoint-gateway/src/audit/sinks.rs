//! Sinks besides the store (`audit.sinks`), like the apiserver's audit backends: a JSON-lines
//! file with rotation and a batching webhook.
//!
//! A sink reads the events from the store (after its cursor, kept in the store), delivers a
//! batch, and only then moves its cursor: a sink that fails (`holdpoint_audit_sink_failures_total`)
//! retries with backoff and loses nothing, and the store never waits for a sink. Delivery is at
//! least once (a crash between delivery and cursor update repeats a batch; several replicas
//! sharing a webhook may repeat one). A file sink's cursor is per instance (each gateway writes
//! its own file with every event); a webhook's is shared by the replicas.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use holdpoint_store::{AuditFilter, Store};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::query::{self, Stored};
use crate::config::{FileSinkConfig, SinkFormat, WebhookSinkConfig};
use crate::metrics::{AuditMetrics, SinkLabels};

/// How long a sink waits before looking for new events again.
const POLL: Duration = Duration::from_millis(500);
/// The longest wait between retries of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn line(format: SinkFormat, s: &Stored) -> Value {
    match format {
        SinkFormat::Jsonl => query::to_jsonl(s),
        SinkFormat::K8sAudit => query::to_k8s(s),
    }
}

/// Delivers batches of events after the sink's cursor until `cancel`.
async fn deliver_forever<F, Fut>(
    store: Store,
    name: String,
    label: &'static str,
    batch: usize,
    metrics: AuditMetrics,
    cancel: CancellationToken,
    mut deliver: F,
) where
    F: FnMut(Vec<Stored>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let labels = SinkLabels { sink: label };
    let mut backoff = Duration::ZERO;
    loop {
        let wait = if backoff.is_zero() { POLL } else { backoff };
        let page = async {
            let cursor = store
                .audit_sink_cursor(&name)
                .await
                .map_err(|e| e.to_string())?;
            let rows = store
                .audit_events(&AuditFilter {
                    after_seq: Some(cursor.unwrap_or(0)),
                    limit: u32::try_from(batch).unwrap_or(u32::MAX),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            rows.into_iter()
                .map(|r| Stored::decode(r).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        }
        .await;
        let result = match page {
            Ok(events) if events.is_empty() => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => continue,
                }
            }
            Ok(events) => {
                let last = events.last().map(|e| e.row.seq).unwrap_or(0);
                let n = events.len() as u64;
                match deliver(events).await {
                    Ok(()) => store
                        .set_audit_sink_cursor(&name, last)
                        .await
                        .map(|_| n)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(n) => {
                metrics.sink_events.get_or_create(&labels).inc_by(n);
                backoff = Duration::ZERO;
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            Err(e) => {
                metrics.sink_failures.get_or_create(&labels).inc();
                tracing::warn!(target: "holdpoint::audit", sink = %name, error = %e, "audit sink failed; retrying (the store keeps the events)");
                backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A JSON-lines file that rotates to `PATH.1` .. `PATH.N` when it would pass `max_bytes`.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
}

impl RotatingFile {
    /// The file of `config`.
    pub fn new(config: &FileSinkConfig) -> Self {
        Self {
            path: config.path.clone(),
            max_bytes: config.max_bytes,
            max_files: config.max_files,
        }
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.rotated(self.max_files));
        for n in (1..self.max_files).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    /// Appends `text` (whole lines), rotating between lines whenever the next line would take
    /// the file past the limit (a batch of many events is spread over files like single ones;
    /// a line longer than the limit gets a file of its own), and syncs each file it wrote to.
    pub fn append(&self, text: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let mut rest = text;
        while !rest.is_empty() {
            // the whole lines that fit in the current file (an empty file takes at least one)
            let mut take = 0usize;
            for line in rest.split_inclusive(|b| *b == b'\n') {
                let after = size + (take + line.len()) as u64;
                if (size > 0 || take > 0) && after > self.max_bytes {
                    break;
                }
                take += line.len();
            }
            if take > 0 {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                f.write_all(&rest[..take])?;
                f.sync_data()?;
                rest = &rest[take..];
            }
            if !rest.is_empty() {
                self.rotate()?;
                size = 0;
            }
        }
        Ok(())
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs the file sink.
pub(super) async fn run_file(
    store: Store,
    config: FileSinkConfig,
    instance: String,
    metrics: AuditMetrics,
    cancel: CancellationToken,
) {
    let file = std::sync::Arc::new(RotatingFile::new(&config));
    let name = format!("file:{instance}:{}", config.path.display());
    let format = config.format;
    deliver_forever(store, name, "file", 500, metrics, cancel, move |events| {
        let file = file.clone();
        async move {
            let mut text = Vec::new();
            for s in &events {
                text.extend_from_slice(line(format, s).to_string().as_bytes());
                text.push(b'\n');
            }
            tokio::task::spawn_blocking(move || file.append(&text))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{}: {e}", file_display(&e)))
        }
    })
    .await
}

fn file_display(e: &std::io::Error) -> String {
    e.kind().to_string()
}

/// Runs the webhook sink.
pub(super) async fn run_webhook(
    store: Store,
    config: WebhookSinkConfig,
    metrics: AuditMetrics,
    cancel: CancellationToken,
) {
    let client = match webhook_client(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "holdpoint::audit", error = %e, "audit webhook sink cannot start");
            metrics
                .sink_failures
                .get_or_create(&SinkLabels { sink: "webhook" })
                .inc();
            return;
        }
    };
    let name = format!("webhook:{}", config.url);
    let batch = config.batch_max;
    deliver_forever(
        store,
        name,
        "webhook",
        batch,
        metrics,
        cancel,
        move |events| {
            let client = client.clone();
            let config = config.clone();
            async move { post(&client, &config, &events).await }
        },
    )
    .await
}

type WebhookClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn webhook_client(config: &WebhookSinkConfig) -> Result<WebhookClient, String> {
    let tls = crate::tls::client_config(config.ca_file.as_deref())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// One batch: an `EventList` (`k8s-audit`) or JSON lines (`jsonl`).
async fn post(
    client: &WebhookClient,
    config: &WebhookSinkConfig,
    events: &[Stored],
) -> Result<(), String> {
    let (body, content_type) = match config.format {
        SinkFormat::K8sAudit => {
            let items: Vec<Value> = events.iter().map(query::to_k8s).collect();
            (
                serde_json::json!({
                    "kind": "EventList",
                    "apiVersion": "audit.k8s.io/v1",
                    "metadata": {},
                    "items": items,
                })
                .to_string()
                .into_bytes(),
                "application/json",
            )
        }
        SinkFormat::Jsonl => {
            let mut text = Vec::new();
            for s in events {
                text.extend_from_slice(query::to_jsonl(s).to_string().as_bytes());
                text.push(b'\n');
            }
            (text, "application/x-ndjson")
        }
    };
    let req = http::Request::post(config.url.as_str())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(config.timeout, client.request(req))
        .await
        .map_err(|_| format!("no answer within {:?}", config.timeout))?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    // Drain the answer so the connection can be reused.
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One append of many lines is spread over files of at most `max_bytes` (each line whole,
    /// none lost, in order), and a line longer than the limit gets a file of its own.
    #[test]
    fn a_big_batch_rotates_between_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let file = RotatingFile {
            path: path.clone(),
            max_bytes: 100,
            max_files: 50,
        };
        let lines: Vec<String> = (0..20)
            .map(|i| format!("{{\"n\":{i:02},\"pad\":\"xxxxxxxxxx\"}}\n"))
            .collect();
        assert_eq!(lines[0].len(), 28);
        file.append(lines.concat().as_bytes()).unwrap();
        let long = format!("{}\n", "y".repeat(250));
        file.append(long.as_bytes()).unwrap();
        file.append(lines[0].as_bytes()).unwrap();

        // oldest first: PATH.N .. PATH.1, then PATH
        let mut all = String::new();
        let mut n = 1;
        let mut files = vec![];
        while file.rotated(n).exists() {
            files.push(file.rotated(n));
            n += 1;
        }
        files.reverse();
        files.push(path);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.ends_with('\n'), "{f:?} ends inside a line");
            if text != long {
                assert!(text.len() <= 100, "{f:?} has {} bytes", text.len());
            }
            all.push_str(&text);
        }
        assert_eq!(all, format!("{}{long}{}", lines.concat(), lines[0]));
        assert_eq!(files.len(), 9, "{files:?}");
    }
}
