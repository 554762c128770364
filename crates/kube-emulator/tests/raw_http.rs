//! Raw HTTPS requests (hyper + tokio-rustls) checking wire-level behaviour.

mod common;

use std::time::Duration;

use common::{call, get_json, send, start};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use kube_emulator::Seed;
use serde_json::{Value, json};

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn stale_resource_version_update_is_409_conflict() {
    let env = start(Seed::Demo).await;
    let (_, cm) = get_json(&env.emu, "/api/v1/namespaces/demo/configmaps/web-config").await;
    let mut stale = cm.clone();
    stale["data"]["x"] = json!("1");
    let path = "/api/v1/namespaces/demo/configmaps/web-config";
    let (s, _, _) = call(
        &env.emu,
        Method::PUT,
        path,
        &[JSON],
        serde_json::to_vec(&stale).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Same (now stale) resourceVersion again.
    let (s, _, b) = call(
        &env.emu,
        Method::PUT,
        path,
        &[JSON],
        serde_json::to_vec(&stale).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let st: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(st["code"], 409);
    assert_eq!(
        st["details"],
        json!({"name": "web-config", "kind": "configmaps"})
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn status_bodies_for_errors() {
    let env = start(Seed::Demo).await;
    let (s, v) = get_json(&env.emu, "/apis/apps/v1/namespaces/demo/deployments/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
    );
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}}),
    )
    .unwrap();
    let (s, _, b) = call(
        &env.emu,
        Method::POST,
        "/api/v1/namespaces/demo/configmaps",
        &[JSON],
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["reason"],
        "AlreadyExists"
    );
    let (s, _, b) = call(
        &env.emu,
        Method::POST,
        "/api/v1/namespaces/demo/configmaps?dryRun=Bogus",
        &[JSON],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["reason"],
        "Invalid"
    );
    let (s, _, b) = call(
        &env.emu,
        Method::POST,
        "/api/v1/namespaces/demo/configmaps",
        &[JSON],
        vec![b' '; 3 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["code"], 413);
    let (s, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/pods",
        &[("accept", "application/vnd.kubernetes.protobuf")],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["kind"],
        "Status"
    );
    let (s, _, b) = call(
        &env.emu,
        Method::PUT,
        "/api/v1/namespaces/demo/pods",
        &[JSON],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["reason"],
        "MethodNotAllowed"
    );
    let (s, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/demo/pods/web-0/log?container=nope",
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["reason"],
        "BadRequest"
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let env = start(Seed::Demo).await;
    let resp = send(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces",
        &[],
        vec![],
        false,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_i64()),
        (Some("Status"), Some("Unauthorized"), Some(401))
    );
    let resp = send(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces",
        &[("authorization", "Bearer wrong")],
        vec![],
        false,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = send(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces",
        &[("authorization", "Basic YTpi")],
        vec![],
        false,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn recorded_requests_keep_all_headers() {
    let env = start(Seed::Demo).await;
    env.emu.clear_requests();
    let (s, v) = {
        let (s, _, b) = call(
            &env.emu,
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &[
                JSON,
                ("impersonate-user", "alice"),
                ("impersonate-group", "devs"),
                ("impersonate-extra-scopes", "view"),
                ("x-canary", "c-123"),
            ],
            br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec(),
        )
        .await;
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["status"]["userInfo"]["username"], "alice");
    assert_eq!(
        v["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    let reqs = env.emu.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/apis/authentication.k8s.io/v1/selfsubjectreviews");
    assert_eq!(r.header("x-canary"), Some("c-123"));
    assert_eq!(r.header("Impersonate-User"), Some("alice"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", env.emu.admin_token()).as_str())
    );
    let (_, _, _) = call(
        &env.emu,
        Method::GET,
        "/api/v1/pods?limit=1&labelSelector=app%3Dweb",
        &[],
        vec![],
    )
    .await;
    let last = env.emu.requests().pop().unwrap();
    assert_eq!(
        last.query.as_deref(),
        Some("limit=1&labelSelector=app%3Dweb")
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn limit_and_continue_pages_through_everything() {
    let env = start(Seed::None).await;
    let n = env
        .emu
        .insert_many((0..25).map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:02}"), "namespace": "bulk"}, "data": {"i": i.to_string()}})))
        .unwrap();
    assert_eq!(n, 25);
    let mut names = Vec::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/api/v1/namespaces/bulk/configmaps?limit=10&continue={cont}");
        let (s, v) = get_json(&env.emu, &path).await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for i in v["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match v["metadata"]["continue"].as_str() {
            Some(c) => {
                let remaining = v["metadata"]["remainingItemCount"].as_u64().unwrap();
                assert_eq!(remaining as usize, 25 - names.len());
                cont = c.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        (0..25).map(|i| format!("cm-{i:02}")).collect::<Vec<_>>()
    );
    let (s, v) = get_json(
        &env.emu,
        "/api/v1/namespaces/bulk/configmaps?limit=5&continue=garbage",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    env.emu.shutdown().await;
}

#[tokio::test]
async fn table_with_include_object() {
    let env = start(Seed::Demo).await;
    let accept = (
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    let (s, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/demo/pods",
        &[accept],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let t: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..5], &["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "web-0");
    assert_eq!(t["rows"][0]["cells"][2], "Running");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let (_, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/demo/pods?includeObject=Object",
        &[accept],
        vec![],
    )
    .await;
    let t: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(t["rows"][0]["object"]["kind"], "Pod");
    assert_eq!(
        t["rows"][0]["object"]["spec"]["containers"][0]["name"],
        "app"
    );
    let (_, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/demo/secrets",
        &[accept],
        vec![],
    )
    .await;
    let t: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(t["rows"][0]["cells"][1], "Opaque");
    assert_eq!(t["rows"][0]["cells"][2], 3);
    let pm = (
        "accept",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    );
    let (_, _, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/demo/configmaps",
        &[pm],
        vec![],
    )
    .await;
    let l: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert!(l["items"][0].get("data").is_none());
    env.emu.shutdown().await;
}

#[tokio::test]
async fn gzip_only_above_128_kib() {
    let env = start(Seed::None).await;
    env.emu
        .insert_many((0..400).map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("big-{i:03}"), "namespace": "big"}, "data": {"blob": "x".repeat(1024)}})))
        .unwrap();
    let gz = ("accept-encoding", "gzip");
    let (s, h, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/big/configmaps",
        &[gz],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&b[..]), &mut text).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 400);
    let (_, h, b) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/big/configmaps?limit=5",
        &[gz],
        vec![],
    )
    .await;
    assert!(
        h.get("content-encoding").is_none(),
        "small bodies are not compressed"
    );
    assert!(b.len() < 128 * 1024);
    let (_, h, _) = call(
        &env.emu,
        Method::GET,
        "/api/v1/namespaces/big/configmaps",
        &[],
        vec![],
    )
    .await;
    assert!(h.get("content-encoding").is_none(), "no gzip unless asked");
    env.emu.shutdown().await;
}

async fn next_line(body: &mut hyper::body::Incoming, buf: &mut Vec<u8>) -> Value {
    loop {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            return serde_json::from_slice(&line).expect("event JSON");
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("event in time");
        let frame = frame.expect("stream open").expect("frame");
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
    }
}

#[tokio::test]
async fn watch_send_initial_events_framing() {
    let env = start(Seed::Demo).await;
    let path = "/api/v1/namespaces/demo/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=20";
    let resp = send(&env.emu, Method::GET, path, &[], vec![], true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let first = next_line(&mut body, &mut buf).await;
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "web-config");
    let bm = next_line(&mut body, &mut buf).await;
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let bm_rv: u64 = bm["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    env.emu.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "namespace": "demo"}})).unwrap();
    let ev = next_line(&mut body, &mut buf).await;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "later");
    let rv: u64 = ev["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > bm_rv);
    // Missing resourceVersionMatch is rejected like the apiserver.
    let (s, _, _) = call(&env.emu, Method::GET, "/api/v1/namespaces/demo/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true", &[], vec![]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn watch_from_resource_version_and_legacy_prefix() {
    let env = start(Seed::Demo).await;
    let (_, list) = get_json(&env.emu, "/api/v1/namespaces/demo/configmaps").await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    env.emu.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after", "namespace": "demo"}})).unwrap();
    let resp = send(
        &env.emu,
        Method::GET,
        &format!("/api/v1/watch/namespaces/demo/configmaps?resourceVersion={rv}"),
        &[],
        vec![],
        true,
    )
    .await;
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let ev = next_line(&mut body, &mut buf).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("after"))
    );
    let (s, _, _) = call(
        &env.emu,
        Method::DELETE,
        "/api/v1/namespaces/demo/configmaps/after",
        &[],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ev = next_line(&mut body, &mut buf).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("after"))
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn token_request_dry_run_still_mints_usable_token_and_token_review() {
    let env = start(Seed::Demo).await;
    let body = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["aud-x"],"expirationSeconds":3600}}"#.to_vec();
    let (s, _, b) = call(
        &env.emu,
        Method::POST,
        "/api/v1/namespaces/demo/serviceaccounts/deployer/token?dryRun=All",
        &[JSON],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let tr: Value = serde_json::from_slice(&b).unwrap();
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    let review = |aud: &str| {
        serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": [aud]}})).unwrap()
    };
    let (s, _, b) = call(
        &env.emu,
        Method::POST,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[JSON],
        review("aud-x"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["status"]["authenticated"], true);
    assert_eq!(
        v["status"]["user"]["username"],
        "system:serviceaccount:demo:deployer"
    );
    let (_, _, b) = call(
        &env.emu,
        Method::POST,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[JSON],
        review("other"),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["status"]["authenticated"],
        false
    );
    // Deleting the service account invalidates the token.
    call(
        &env.emu,
        Method::DELETE,
        "/api/v1/namespaces/demo/serviceaccounts/deployer",
        &[],
        vec![],
    )
    .await;
    let (_, _, b) = call(
        &env.emu,
        Method::POST,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[JSON],
        review("aud-x"),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["status"]["authenticated"],
        false
    );
    env.emu.shutdown().await;
}
