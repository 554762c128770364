//! Watches: newline-delimited `{"type":..,"object":..}` events flushed one per chunk as they
//! happen; resourceVersion semantics (unset/"0": synthetic ADDED for the current state, N: replay
//! from the history, 410 Gone as an ERROR event when too old), `allowWatchBookmarks`,
//! `sendInitialEvents=true` + `resourceVersionMatch=NotOlderThan` streaming lists ending in a
//! BOOKMARK annotated `k8s.io/initial-events-end: "true"`, `timeoutSeconds`, Table/partial
//! metadata event objects.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, ApiResult};
use crate::objects::now_secs;
use crate::resources::ResourceInfo;
use crate::respond::{As, Body, Negotiated};
use crate::router::App;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::table::{self, IncludeObject};

/// Interval between bookmarks when the client allows them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);
/// Default watch duration when the client gives no `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Parsed watch options.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub rv_match: Option<String>,
    /// `sendInitialEvents`.
    pub send_initial: Option<bool>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Output representation.
    pub neg: Negotiated,
    /// Table rows' object.
    pub include: IncludeObject,
}

/// Applies the requested representation to an event object.
fn present(
    res: &ResourceInfo,
    obj: &Value,
    neg: Negotiated,
    include: IncludeObject,
    first: bool,
) -> Value {
    match neg.as_ {
        As::Table => {
            let mut t = json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "columnDefinitions": if first { json!(table::columns(res)) } else { json!([]) },
                "rows": [table::row(res, obj, now_secs(), include)],
            });
            if !first {
                t["columnDefinitions"] = Value::Null;
            }
            t
        }
        As::PartialMetadata => table::partial_metadata(obj),
        _ => with_version(res, obj),
    }
}

/// The object with `apiVersion` of the requested version (custom resources store any version).
pub fn with_version(res: &ResourceInfo, obj: &Value) -> Value {
    if res.custom {
        let mut o = obj.clone();
        o["apiVersion"] = json!(res.api_version());
        o
    } else {
        obj.clone()
    }
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(res: &ResourceInfo, rv: u64, initial_end: bool) -> Value {
    let mut md = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": md})
}

fn invalid_list_options(msg: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        &[("sendInitialEvents".into(), msg.into())],
    )
}

/// Starts a watch.
pub fn serve(app: Arc<App>, res: ResourceInfo, p: WatchParams) -> ApiResult<Response<Body>> {
    let key = res.storage_key();
    if let Some(si) = p.send_initial {
        if p.rv_match.as_deref() != Some("NotOlderThan") {
            return Err(invalid_list_options(
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if si && !p.bookmarks {
            return Err(invalid_list_options(
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
    } else if p.rv_match.is_some() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[(
                "resourceVersionMatch".into(),
                "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
            )],
        ));
    }
    let rv: Option<u64> = match p.resource_version.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let ns = p.namespace.clone();
    let matches = {
        let p = p.clone();
        move |ev_ns: &str, obj: &Value| -> bool {
            p.namespace.as_deref().is_none_or(|n| n == ev_ns)
                && p.labels.matches(obj)
                && p.fields.matches(obj)
        }
    };
    // Decide the start: snapshot (synthetic ADDED) or replay from the history.
    let snapshot = match (p.send_initial, rv) {
        (Some(true), _) => true,
        (Some(false), _) => false,
        (None, None) | (None, Some(0)) => true,
        (None, Some(_)) => false,
    };
    let (start_rv, initial, backlog, rx) = if snapshot {
        let (cur, objs, rx) = app.store.subscribe_snapshot(&key, ns.as_deref());
        (cur, objs, Vec::new(), rx)
    } else {
        let start = match rv {
            Some(0) | None => app.store.current_rv(),
            Some(n) => n,
        };
        match app.store.subscribe_after(&key, start) {
            Ok((backlog, rx)) => (start, Vec::new(), backlog, rx),
            Err(e) => {
                // Like the watch cache: 200 with a single ERROR event carrying the 410.
                return Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(crate::respond::full(line("ERROR", &e.to_status())))
                    .unwrap_or_else(|_| Response::new(crate::respond::full(Bytes::new()))));
            }
        }
    };
    let send_initial_end = p.send_initial == Some(true);
    Ok(stream_response(
        app,
        res,
        p,
        start_rv,
        initial,
        backlog,
        rx,
        matches,
        send_initial_end,
    ))
}

#[allow(clippy::too_many_arguments)]
fn stream_response(
    app: Arc<App>,
    res: ResourceInfo,
    p: WatchParams,
    start_rv: u64,
    initial: Vec<Value>,
    backlog: Vec<Arc<crate::store::WatchEvent>>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::store::WatchEvent>>,
    matches: impl Fn(&str, &Value) -> bool + Send + Sync + 'static,
    initial_end_bookmark: bool,
) -> Response<Body> {
    let (tx, mut out) = tokio::sync::mpsc::channel::<Bytes>(64);
    let key = res.storage_key();
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let mut first = true;
        let mut last_rv = start_rv;
        let deadline = tokio::time::sleep(p.timeout);
        tokio::pin!(deadline);
        for obj in &initial {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
            if !matches(ns, obj) {
                continue;
            }
            let o = present(&res, obj, p.neg, p.include, first);
            first = false;
            if tx.send(line("ADDED", &o)).await.is_err() {
                return;
            }
        }
        if initial_end_bookmark
            && tx
                .send(line("BOOKMARK", &bookmark(&res, last_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let send_ev = |ev: &crate::store::WatchEvent, first: bool| -> Option<Bytes> {
            if ev.key != key || !matches(&ev.namespace, &ev.object) {
                return None;
            }
            Some(line(
                ev.kind.as_str(),
                &present(&res, &ev.object, p.neg, p.include, first),
            ))
        };
        for ev in &backlog {
            last_rv = last_rv.max(ev.rv);
            if let Some(b) = send_ev(ev, first) {
                first = false;
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        let mut bm = tokio::time::interval(BOOKMARK_INTERVAL);
        bm.tick().await;
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
                _ = &mut deadline => break,
                _ = bm.tick(), if p.bookmarks => {
                    if tx.send(line("BOOKMARK", &bookmark(&res, last_rv, false))).await.is_err() { break; }
                    continue;
                }
                r = rx.recv() => r,
            };
            match msg {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    if ev.key == key {
                        last_rv = ev.rv;
                    }
                    if let Some(b) = send_ev(&ev, first) {
                        first = false;
                        if tx.send(b).await.is_err() {
                            break;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let e = ApiError::gone("watch fell behind; too old resource version");
                    let _ = tx.send(line("ERROR", &e.to_status())).await;
                    break;
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        out.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| Response::new(crate::respond::full(Bytes::new())))
}
