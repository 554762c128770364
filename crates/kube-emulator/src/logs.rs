//! `pods/{name}/log`: deterministic per-container log lines (startup lines naming the pod and
//! container; env values only when the container's args contain `print-env`), `follow=true`
//! streaming a heartbeat line every ~200 ms until the client leaves or the pod goes away,
//! `tailLines`, `container`, `timestamps`, `limitBytes`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::respond::{Body, bytes_response};
use crate::router::App;

/// Follow-mode line interval.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// Picks the container like the apiserver does.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> ApiResult<Value> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &pod["spec"];
    let all = || {
        spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["initContainers"].as_array().into_iter().flatten())
            .chain(spec["ephemeralContainers"].as_array().into_iter().flatten())
    };
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => all().find(|x| x["name"] == c).cloned().ok_or_else(|| {
            ApiError::bad_request(format!("container {c} is not valid for pod {pod_name}"))
        }),
        None => {
            let cs = names(&spec["containers"]);
            if let Some(d) =
                pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
                && let Some(c) = all().find(|x| x["name"] == d)
            {
                return Ok(c.clone());
            }
            if cs.len() == 1 {
                return Ok(spec["containers"][0].clone());
            }
            let mut msg = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                cs.join(" ")
            );
            let init = names(&spec["initContainers"]);
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

fn resolve_env(app: &App, ns: &str, container: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let decode =
        |s: &str| String::from_utf8_lossy(&STANDARD.decode(s).unwrap_or_default()).to_string();
    for src in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = src["prefix"].as_str().unwrap_or("");
        if let Some(n) = src["secretRef"]["name"].as_str()
            && let Some(s) = app.store.get("/secrets", ns, n)
        {
            for (k, v) in s["data"].as_object().into_iter().flatten() {
                out.push((format!("{prefix}{k}"), decode(v.as_str().unwrap_or(""))));
            }
        }
        if let Some(n) = src["configMapRef"]["name"].as_str()
            && let Some(c) = app.store.get("/configmaps", ns, n)
        {
            for (k, v) in c["data"].as_object().into_iter().flatten() {
                out.push((format!("{prefix}{k}"), v.as_str().unwrap_or("").to_string()));
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let (n, k) = (
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            );
            app.store
                .get("/secrets", ns, n)
                .and_then(|s| s["data"][k].as_str().map(decode))
                .unwrap_or_default()
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            let (n, k) = (
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            );
            app.store
                .get("/configmaps", ns, n)
                .and_then(|c| c["data"][k].as_str().map(String::from))
                .unwrap_or_default()
        } else {
            String::new()
        };
        out.push((name, value));
    }
    out
}

/// The deterministic startup lines of a container.
pub fn startup_lines(app: &App, pod: &Value, container: &Value) -> Vec<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let c = container["name"].as_str().unwrap_or("");
    let image = container["image"].as_str().unwrap_or("");
    let port = container["ports"][0]["containerPort"]
        .as_i64()
        .unwrap_or(8080);
    let mut lines = vec![
        format!("[{c}] starting container {c} of pod {ns}/{pod_name} (image {image})"),
        format!("[{c}] loading configuration"),
    ];
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["command"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    if args.iter().any(|a| a.contains("print-env")) {
        for (k, v) in resolve_env(app, ns, container) {
            lines.push(format!("[{c}] env {k}={v}"));
        }
    }
    lines.push(format!("[{c}] listening on 0.0.0.0:{port}"));
    lines.push(format!("[{c}] ready"));
    lines
}

fn rfc3339_nano(secs: i64, nanos: i32) -> String {
    let base = jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default();
    format!("{}.{:09}Z", base.trim_end_matches('Z'), nanos.max(0))
}

/// Serves a log request.
pub fn serve(app: Arc<App>, pod: Value, q: &HashMap<String, String>) -> ApiResult<Response<Body>> {
    let container = pick_container(&pod, q.get("container").map(String::as_str))?;
    let cname = container["name"].as_str().unwrap_or_default().to_string();
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if q.get("previous").is_some_and(|v| v == "true") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{cname}\" in pod \"{pod_name}\" not found"
        )));
    }
    let timestamps = q.get("timestamps").is_some_and(|v| v == "true");
    let follow = q.get("follow").is_some_and(|v| v == "true");
    let tail: Option<usize> = q
        .get("tailLines")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|n| n.max(0) as usize);
    let limit_bytes: Option<usize> = q.get("limitBytes").and_then(|v| v.parse().ok());
    let start = pod["status"]["startTime"]
        .as_str()
        .or(pod["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0);
    let mut lines: Vec<String> = startup_lines(&app, &pod, &container)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if timestamps {
                format!("{} {l}", rfc3339_nano(start, i as i32 * 1000))
            } else {
                l
            }
        })
        .collect();
    if let Some(t) = tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    let mut text = String::new();
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    if let Some(lb) = limit_bytes {
        text.truncate(lb.min(text.len()));
    }
    if !follow {
        return Ok(bytes_response(
            StatusCode::OK,
            "text/plain",
            text.into_bytes(),
            false,
        ));
    }
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = pod["metadata"]["uid"].clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        if !text.is_empty() && tx.send(Bytes::from(text)).await.is_err() {
            return;
        }
        let mut n: u64 = 0;
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
                _ = tick.tick() => {}
            }
            match app.store.get("/pods", &ns, &pod_name) {
                Some(p) if p["metadata"]["uid"] == uid => {}
                _ => break,
            }
            n += 1;
            let line = format!("[{cname}] heartbeat {n}");
            let line = if timestamps {
                let now = jiff::Timestamp::now();
                format!(
                    "{} {line}\n",
                    rfc3339_nano(now.as_second(), now.subsec_nanosecond())
                )
            } else {
                format!("{line}\n")
            };
            if tx.send(Bytes::from(line)).await.is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let body = StreamBody::new(stream).boxed_unsync();
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| Response::new(crate::respond::full(Bytes::new()))))
}
