//! The canary suite of issue 5: secret values reach no caller, whatever way it reads them.
//!
//! Every test starts its own environment and seeds the upstream (through the upstream's own
//! admin kubeconfig, with `kubectl apply`, so the objects carry kubectl's last-applied
//! annotation as in real clusters) with Secrets of every type (Opaque with `stringData`,
//! service-account token, docker config, TLS, a Helm release), a ConfigMap whose values and
//! annotation the text detectors flag, a Pod, Deployment and CronJob with literal env values, a
//! custom resource embedding a Secret and a connection URL, and an Event with a token in its
//! message: each value a unique canary (plain, and base64 where the API stores base64). Then it
//! reads them through the gateway one way (each vector is its own test: raw HTTP/1.1 and
//! HTTP/2, kubectl, every `Accept` and encoding, Table, PartialObjectMetadata, watch, pages,
//! logs, TokenRequest) and asserts that no canary is in any byte received, and that the read
//! did return the objects (so no test passes by reading nothing). The Python client's vectors
//! are in `tests/python/test_masking.py`; an upstream that misbehaves (gzip unasked, protobuf,
//! broken JSON) is in `e2e_hostile_upstream.rs`.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{TestEnv, kubectl_blocking, start, start_with, tls_connector};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "canary";
const MASKED: &str = "[MASKED]";
const DATA_MASKED: &str = "W01BU0tFRF0=";

fn b64(s: impl AsRef<[u8]>) -> String {
    STANDARD.encode(s)
}

/// Every string that must never reach a caller, with a label for the failure message.
struct Canaries(Vec<(&'static str, String)>);

impl Canaries {
    fn assert_absent(&self, vector: &str, bytes: &[u8]) {
        for (label, canary) in &self.0 {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{vector}: canary {label} ({canary}) reached the caller:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

// The canaries. Detector-shaped ones have the shape their detector looks for.
const SECRET_PW: &str = "CnrySecretPw3Rt7";
const SA_JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJjYW5hcnkiOiJzYS10b2tlbiJ9.CnrySaSig5Mn";
const REGISTRY_PW: &str = "CnryRegistry1Pw";
const TLS_KEY_BODY: &str = "MIIEvQIBADANCnryTlsKey8Vd2";
const HELM_PW: &str = "CnryHelmPw6Gb";
const URL_PW: &str = "CnryUrlPw7Zq4";
const AWS_KEY: &str = "AKIACNRYQ7WXZ2K4LMNB";
const GH_TOKEN: &str = "ghp_Cnry0123456789abcdefghijKLMNOPQRSTuv";
const PROP_PW: &str = "CnryProp9Xk2Wq";
const ANNOTATION_TOKEN: &str = "CnryAnnot5Bx9";
const POD_ENV: &str = "CnryPodEnv4Lq8";
const DSN_PW: &str = "CnryDsn6Tw3";
const DEPLOY_ENV: &str = "CnryDeploy2Hv5";
const CRON_ENV: &str = "CnryCron8Jd1";
const CR_URL_PW: &str = "CnryCrUrl4Pz";
const CR_EMBEDDED: &str = "CnryCrEmbedded7";
const EVENT_TOKEN: &str = "ghp_CnryEv0123456789abcdefghijKLMNOPQRST";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn dockerconfig() -> String {
    json!({"auths": {"registry.example": {"username": "bot", "password": REGISTRY_PW,
        "auth": b64(format!("bot:{REGISTRY_PW}"))}}})
    .to_string()
}

fn tls_key() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{TLS_KEY_BODY}\n-----END PRIVATE KEY-----\n")
}

/// Helm stores a release as base64(gzip(JSON)) inside the Secret's (base64) data.
fn helm_release() -> String {
    b64(gzip(
        json!({"name": "web", "config": {"dbPassword": HELM_PW}})
            .to_string()
            .as_bytes(),
    ))
}

fn canaries() -> Canaries {
    Canaries(vec![
        ("Secret stringData (plain)", SECRET_PW.into()),
        ("Secret data (base64)", b64(SECRET_PW)),
        ("service-account token", SA_JWT.into()),
        ("service-account token (base64)", b64(SA_JWT)),
        ("docker config password", REGISTRY_PW.into()),
        ("docker config (base64)", b64(dockerconfig())),
        ("TLS key", TLS_KEY_BODY.into()),
        ("TLS key (base64)", b64(tls_key())),
        ("Helm release (base64)", b64(helm_release())),
        ("Helm release payload", helm_release()),
        ("ConfigMap URL password", URL_PW.into()),
        ("ConfigMap AWS key", AWS_KEY.into()),
        ("ConfigMap GitHub token", GH_TOKEN.into()),
        ("ConfigMap properties password", PROP_PW.into()),
        ("annotation token", ANNOTATION_TOKEN.into()),
        ("Pod env literal", POD_ENV.into()),
        ("Pod env DSN password", DSN_PW.into()),
        ("Deployment env literal", DEPLOY_ENV.into()),
        ("CronJob env literal", CRON_ENV.into()),
        ("custom resource URL password", CR_URL_PW.into()),
        ("custom resource embedded Secret (base64)", b64(CR_EMBEDDED)),
        ("custom resource embedded Secret", CR_EMBEDDED.into()),
        ("Event message token", EVENT_TOKEN.into()),
    ])
}

fn container(name: &str, env: Value) -> Value {
    json!({"name": name, "image": "registry.example/app:1", "args": ["serve", "--print-env"], "env": env})
}

fn seed_objects() -> Vec<Value> {
    let secret = |name: &str, ty: &str, data: Value| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
               "type": ty, "data": data})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": NS},
               "type": "Opaque", "stringData": {"password": SECRET_PW, "username": "app"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "sa-token", "namespace": NS,
                            "annotations": {"kubernetes.io/service-account.name": "default"}},
               "type": "kubernetes.io/service-account-token",
               "data": {"token": b64(SA_JWT), "namespace": b64(NS)}}),
        secret(
            "registry",
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": b64(dockerconfig())}),
        ),
        secret(
            "tls",
            "kubernetes.io/tls",
            json!({"tls.key": b64(tls_key()), "tls.crt": b64("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}),
        ),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": NS,
                            "labels": {"owner": "helm", "name": "web", "status": "deployed", "version": "1"}},
               "type": "helm.sh/release.v1", "data": {"release": b64(helm_release())}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": NS,
                            "annotations": {"example.com/note": format!("rotate token={ANNOTATION_TOKEN} monthly")}},
               "data": {"DATABASE_URL": format!("postgres://app:{URL_PW}@db:5432/app"),
                        "AWS_ACCESS_KEY_ID": AWS_KEY, "GITHUB_TOKEN": GH_TOKEN,
                        "app.properties": format!("db.user=app\ndb.password={PROP_PW}\n"),
                        "LOG_LEVEL": "info"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-canary", "namespace": NS},
               "spec": {"containers": [container("app", json!([
                   {"name": "DB_PASSWORD", "value": POD_ENV},
                   {"name": "DSN", "value": format!("postgres://u:{DSN_PW}@db/app")},
                   {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}},
                   {"name": "MODE", "value": "production"}]))]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": NS},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                        "template": {"metadata": {"labels": {"app": "api"}},
                                     "spec": {"containers": [container("api", json!([{"name": "API_KEY", "value": DEPLOY_ENV}]))]}}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup", "namespace": NS},
               "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "OnFailure",
                   "containers": [container("backup", json!([{"name": "SECRET_KEY", "value": CRON_ENV}]))]}}}}}}),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-canary.pull", "namespace": NS},
               "involvedObject": {"kind": "Pod", "name": "web-canary", "namespace": NS},
               "reason": "Failed", "type": "Warning",
               "message": format!("Failed to pull image: authorization with {EVENT_TOKEN} was refused")}),
        json!({"apiVersion": "example.com/v1", "kind": "Vault", "metadata": {"name": "main", "namespace": NS},
               "spec": {"connection": format!("mysql://root:{CR_URL_PW}@db:3306/vault"),
                        "template": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "generated"},
                                     "data": {"key": b64(CR_EMBEDDED)}}}}),
    ]
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "vaults.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "vaults", "singular": "vault", "kind": "Vault", "listKind": "VaultList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "additionalPrinterColumns": [{"name": "Connection", "type": "string", "jsonPath": ".spec.connection"}]}]}})
}

/// kubectl with the upstream's own admin credential (never handed to callers).
async fn upstream_kubectl(t: &TestEnv, args: &[&str], stdin: Option<String>) -> String {
    let kubeconfig = t.env.upstream_kubeconfig.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        kubectl_blocking(&kubeconfig, &args, stdin.as_deref().map(str::as_bytes))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "upstream kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn apply(t: &TestEnv, objects: Vec<Value>) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string();
    upstream_kubectl(t, &["apply", "-f", "-"], Some(list)).await;
}

/// Creates the test namespace and `crd` upstream, and waits until the CRD is served (a real
/// cluster establishes it after a moment).
async fn namespace_and_crd(t: &TestEnv, crd: Value) {
    let name = format!("crd/{}", crd["metadata"]["name"].as_str().unwrap());
    apply(
        t,
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            crd,
        ],
    )
    .await;
    let _ = upstream_kubectl(
        t,
        &[
            "wait",
            "--for=condition=Established",
            &name,
            "--timeout=30s",
        ],
        None,
    )
    .await;
}

struct Seeded {
    t: TestEnv,
    c: Canaries,
}

async fn seeded_env(t: TestEnv) -> Seeded {
    namespace_and_crd(&t, crd()).await;
    apply(&t, seed_objects()).await;
    Seeded { t, c: canaries() }
}

/// An allow-all environment (masking on, as by default) with the canaries seeded.
async fn seeded() -> Seeded {
    seeded_env(start().await).await
}

/// `GET path` as the agent over raw HTTP/1.1 with extra header lines; returns status, head
/// (lowercase) and body (dechunked; gunzipped if the gateway compressed it).
async fn get(s: &Seeded, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let token = s.t.agent_token();
    let r = s
        .t
        .raw(
            format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{headers}Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let body = r.body.into_bytes();
    (r.status, r.head, body)
}

/// Like [`get`], for a response that streams (watch, follow): reads for `wait`, then returns
/// what arrived (dechunked).
async fn get_streaming(s: &Seeded, path: &str, headers: &str, wait: Duration) -> (String, Vec<u8>) {
    let token = s.t.agent_token().to_owned();
    let tcp = tokio::net::TcpStream::connect(s.t.env.gateway.addr())
        .await
        .unwrap();
    let mut tls = tls_connector(s.t.env.gateway.ca_pem())
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{headers}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut chunk = [0u8; 16384];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        common::dechunk(&buf[end + 4..])
    } else {
        buf[end + 4..].to_vec()
    };
    (head, body)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The watch events in a body (one JSON object per line).
fn events(body: &[u8]) -> Vec<Value> {
    body.split(|c| *c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(json_of)
        .collect()
}

fn content_type(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("content-type:"))
        .unwrap_or("")
        .trim()
}

async fn kubectl(s: &Seeded, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-n", NS]);
    s.t.kubectl_ok(&all).await
}

// ------------------------------------------------------------------ raw HTTP: objects

#[tokio::test(flavor = "multi_thread")]
async fn raw_get_secret() {
    let s = seeded().await;
    let (status, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets/db-credentials"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    s.c.assert_absent("GET secret", &body);
    let v = json_of(&body);
    assert_eq!(v["data"]["password"], DATA_MASKED);
    assert_eq!(v["data"]["username"], DATA_MASKED);
    assert_eq!(v["metadata"]["name"], "db-credentials");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_list_secrets_in_namespace() {
    let s = seeded().await;
    let (status, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/secrets"), "").await;
    assert_eq!(status, 200);
    s.c.assert_absent("LIST secrets in a namespace", &body);
    let v = json_of(&body);
    assert_eq!(v["kind"], "SecretList");
    assert!(v["items"].as_array().unwrap().len() >= 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_list_secrets_across_namespaces() {
    let s = seeded().await;
    let (status, _, body) = get(&s, "/api/v1/secrets", "").await;
    assert_eq!(status, 200);
    s.c.assert_absent("LIST secrets across namespaces", &body);
    let v = json_of(&body);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"sh.helm.release.v1.web.v1"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_service_account_token_secret() {
    let s = seeded().await;
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/secrets/sa-token"), "").await;
    s.c.assert_absent("service-account token Secret", &body);
    assert_eq!(json_of(&body)["data"]["token"], DATA_MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_docker_config_secret() {
    let s = seeded().await;
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/secrets/registry"), "").await;
    s.c.assert_absent("docker config Secret", &body);
    assert_eq!(json_of(&body)["data"][".dockerconfigjson"], DATA_MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_tls_secret() {
    let s = seeded().await;
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/secrets/tls"), "").await;
    s.c.assert_absent("TLS Secret", &body);
    assert_eq!(json_of(&body)["data"]["tls.key"], DATA_MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_helm_release_secret() {
    let s = seeded().await;
    let (_, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets?labelSelector=owner%3Dhelm"),
        "",
    )
    .await;
    s.c.assert_absent("Helm release Secret", &body);
    let v = json_of(&body);
    assert_eq!(v["items"][0]["data"]["release"], DATA_MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_configmap_values_flagged_by_detectors() {
    let s = seeded().await;
    let (_, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/configmaps/app-config"),
        "",
    )
    .await;
    s.c.assert_absent("ConfigMap", &body);
    let v = json_of(&body);
    assert_eq!(v["data"]["LOG_LEVEL"], "info", "clean values stay");
    assert_eq!(
        v["data"]["DATABASE_URL"],
        format!("postgres://app:{MASKED}@db:5432/app"),
        "only the secret part of a text is masked"
    );
    assert_eq!(v["data"]["AWS_ACCESS_KEY_ID"], MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_pod_env_literals() {
    let s = seeded().await;
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/pods/web-canary"), "").await;
    s.c.assert_absent("Pod", &body);
    let v = json_of(&body);
    let env = &v["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["value"], MASKED);
    assert_eq!(env[3]["value"], "production", "other literals stay");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_deployment_and_cronjob_env_literals() {
    let s = seeded().await;
    for path in [
        format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        format!("/apis/batch/v1/namespaces/{NS}/cronjobs/backup"),
        "/apis/apps/v1/deployments".to_owned(),
    ] {
        let (status, _, body) = get(&s, &path, "").await;
        assert_eq!(status, 200, "{path}");
        s.c.assert_absent(&path, &body);
        assert!(
            String::from_utf8_lossy(&body).contains(MASKED),
            "{path}: nothing was masked"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_custom_resource() {
    let s = seeded().await;
    for path in [
        format!("/apis/example.com/v1/namespaces/{NS}/vaults/main"),
        format!("/apis/example.com/v1/namespaces/{NS}/vaults"),
        "/apis/example.com/v1/vaults".to_owned(),
    ] {
        let (status, _, body) = get(&s, &path, "").await;
        assert_eq!(status, 200, "{path}");
        s.c.assert_absent(&path, &body);
        assert!(
            String::from_utf8_lossy(&body).contains(DATA_MASKED),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_event_message() {
    let s = seeded().await;
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/events"), "").await;
    s.c.assert_absent("Events", &body);
    let v = json_of(&body);
    let message = v["items"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("Failed to pull image"), "{message}");
    assert!(message.contains(MASKED), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_last_applied_configuration() {
    let s = seeded().await;
    let (_, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets/db-credentials"),
        "",
    )
    .await;
    s.c.assert_absent("last-applied annotation", &body);
    let v = json_of(&body);
    let applied = v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("kubectl apply wrote the annotation");
    let applied: Value = serde_json::from_str(applied).expect("still JSON");
    assert_eq!(applied["stringData"]["password"], MASKED);
    assert_eq!(applied["metadata"]["name"], "db-credentials");
}

// ------------------------------------------------------------------ raw HTTP: representations

const TABLE: &str = "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn raw_table_without_include_object() {
    let s = seeded().await;
    for path in [
        format!("/api/v1/namespaces/{NS}/secrets"),
        format!("/api/v1/namespaces/{NS}/configmaps"),
        format!("/api/v1/namespaces/{NS}/events"),
    ] {
        let (_, _, body) = get(&s, &path, TABLE).await;
        s.c.assert_absent(&format!("Table of {path}"), &body);
        assert_eq!(json_of(&body)["kind"], "Table", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_table_with_include_object() {
    let s = seeded().await;
    for path in [
        format!("/api/v1/namespaces/{NS}/secrets?includeObject=Object"),
        format!("/api/v1/namespaces/{NS}/pods?includeObject=Object"),
        format!("/api/v1/namespaces/{NS}/configmaps/app-config?includeObject=Object"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments?includeObject=Object"),
    ] {
        let (_, _, body) = get(&s, &path, TABLE).await;
        s.c.assert_absent(&format!("Table of {path}"), &body);
        let v = json_of(&body);
        assert_eq!(v["kind"], "Table");
        assert!(
            v["rows"][0]["object"]["metadata"]["name"].is_string(),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_table_of_custom_resource_printer_columns() {
    let s = seeded().await;
    let (_, _, body) = get(
        &s,
        &format!("/apis/example.com/v1/namespaces/{NS}/vaults"),
        TABLE,
    )
    .await;
    s.c.assert_absent("Table of a custom resource", &body);
    let v = json_of(&body);
    let cells = v["rows"][0]["cells"].to_string();
    assert!(cells.contains("mysql://root:[MASKED]@db"), "{cells}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_partial_object_metadata() {
    let s = seeded().await;
    let pom = "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json\r\n";
    let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/configmaps"), pom).await;
    s.c.assert_absent("PartialObjectMetadataList", &body);
    assert_eq!(json_of(&body)["kind"], "PartialObjectMetadataList");
    let pom = "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1\r\n";
    for name in ["configmaps/app-config", "secrets/db-credentials"] {
        let (_, _, body) = get(&s, &format!("/api/v1/namespaces/{NS}/{name}"), pom).await;
        s.c.assert_absent("PartialObjectMetadata", &body);
        assert_eq!(json_of(&body)["kind"], "PartialObjectMetadata");
    }
}

// ------------------------------------------------------------------ raw HTTP: negotiation

#[tokio::test(flavor = "multi_thread")]
async fn raw_accept_protobuf_only_is_refused_with_406() {
    let s = seeded().await;
    if let Some(emu) = &s.t.env.emulator {
        emu.clear_requests();
    }
    let (status, head, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets"),
        "Accept: application/vnd.kubernetes.protobuf\r\n",
    )
    .await;
    assert_eq!(status, 406);
    assert!(content_type(&head).starts_with("application/json"));
    let v = json_of(&body);
    assert_eq!(
        (v["kind"].as_str(), v["code"].as_i64()),
        (Some("Status"), Some(406))
    );
    s.c.assert_absent("Accept protobuf", &body);
    // refused by the gateway itself: an apiserver would have answered in protobuf
    if let Some(emu) = &s.t.env.emulator {
        assert!(
            !emu.requests()
                .iter()
                .any(|r| r.path.ends_with(&format!("{NS}/secrets"))),
            "the request reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_accept_protobuf_or_json_gets_masked_json() {
    let s = seeded().await;
    let (status, head, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets/db-credentials"),
        "Accept: application/vnd.kubernetes.protobuf, application/json\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type(&head).starts_with("application/json"),
        "{head}"
    );
    s.c.assert_absent("Accept protobuf, json", &body);
    assert_eq!(json_of(&body)["data"]["password"], DATA_MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_accept_cbor_or_yaml_only_is_refused_with_406() {
    let s = seeded().await;
    for accept in [
        "application/cbor",
        "application/yaml",
        "application/cbor;stream=watch, application/vnd.kubernetes.protobuf;stream=watch",
        "application/json;q=0, application/yaml",
    ] {
        let (status, _, body) = get(
            &s,
            &format!("/api/v1/namespaces/{NS}/secrets"),
            &format!("Accept: {accept}\r\n"),
        )
        .await;
        assert_eq!(status, 406, "{accept}");
        s.c.assert_absent(accept, &body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_accept_tricks() {
    let s = seeded().await;
    for accept in [
        "APPLICATION/JSON;AS=Table;G=meta.k8s.io;V=v1",
        "application/json;as=Table;g=meta.k8s.io;v=v1beta1",
        "application/json ; as=Table ; g=meta.k8s.io ; v=v1",
        "application/json;as=Table;v=v1;g=meta.k8s.io;includeObject=Object",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;q=0.1",
        "application/json;charset=utf-8",
        "application/json;stream=watch",
        "*/*",
        "application/*",
        "text/html, */*;q=0.5",
    ] {
        for path in [
            format!("/api/v1/namespaces/{NS}/secrets?includeObject=Object"),
            format!("/api/v1/namespaces/{NS}/secrets/db-credentials"),
        ] {
            let (status, head, body) = get(&s, &path, &format!("Accept: {accept}\r\n")).await;
            assert_eq!(
                status,
                200,
                "{accept} {path}: {}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                content_type(&head).starts_with("application/json"),
                "{accept}: {head}"
            );
            s.c.assert_absent(&format!("Accept {accept} {path}"), &body);
        }
    }
    // two Accept headers, one of them protobuf: still JSON
    let (status, head, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets"),
        "Accept: application/vnd.kubernetes.protobuf\r\nAccept: application/json\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type(&head).starts_with("application/json"));
    s.c.assert_absent("two Accept headers", &body);
}

/// Enough Secrets that the list is well over the apiserver's 128 KiB gzip threshold.
async fn many_secrets(s: &Seeded, n: usize) {
    let objects = (0..n)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": format!("bulk-{i:04}"), "namespace": NS},
                   "data": {"password": b64(SECRET_PW), "padding": b64("x".repeat(400))}})
        })
        .collect();
    apply(&s.t, objects).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_gzip_list_over_128_kib() {
    let s = seeded().await;
    many_secrets(&s, 300).await;
    let (status, head, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets"),
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(body.len() > 128 * 1024, "{} bytes", body.len());
    s.c.assert_absent("gzip list", &body);
    assert!(json_of(&body)["items"].as_array().unwrap().len() >= 300);
    // the upstream was asked for an uncompressed answer
    if let Some(emu) = &s.t.env.emulator {
        let req = emu
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.path.ends_with("/secrets"))
            .unwrap();
        assert!(
            !req.headers.iter().any(|(n, _)| n == "accept-encoding"),
            "{:?}",
            req.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_gzip_only_accept_encoding() {
    let s = seeded().await;
    many_secrets(&s, 300).await;
    let (status, _, body) = get(
        &s,
        "/api/v1/secrets",
        "Accept-Encoding: gzip;q=1, identity;q=0, *;q=0\r\n",
    )
    .await;
    assert_eq!(status, 200);
    s.c.assert_absent("gzip-only Accept-Encoding", &body);
    assert!(json_of(&body)["items"].as_array().unwrap().len() >= 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_limit_and_continue() {
    let s = seeded().await;
    let mut path = format!("/api/v1/namespaces/{NS}/secrets?limit=2");
    let mut items = 0;
    for page in 0.. {
        assert!(page < 20, "too many pages");
        let (status, _, body) = get(&s, &path, "").await;
        assert_eq!(status, 200);
        s.c.assert_absent(&format!("page {page}"), &body);
        let v = json_of(&body);
        items += v["items"].as_array().unwrap().len();
        match v["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => {
                path = format!("/api/v1/namespaces/{NS}/secrets?limit=2&continue={c}")
            }
            _ => break,
        }
    }
    assert!(items >= 5, "{items}");
}

// ------------------------------------------------------------------ raw HTTP: watch

#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_initial_events() {
    let s = seeded().await;
    let (status, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets?watch=1&timeoutSeconds=1"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    s.c.assert_absent("watch", &body);
    let evs = events(&body);
    assert!(evs.len() >= 5, "{evs:?}");
    assert!(evs.iter().all(|e| e["type"] == "ADDED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_send_initial_events() {
    let s = seeded().await;
    let (_, body) = get_streaming(
        &s,
        "/api/v1/secrets?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
        "",
        Duration::from_secs(4),
    )
    .await;
    s.c.assert_absent("streaming list", &body);
    let evs = events(&body);
    assert!(evs.iter().any(|e| e["type"] == "BOOKMARK"), "{evs:?}");
    assert!(evs.iter().filter(|e| e["type"] == "ADDED").count() >= 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_modified_and_deleted() {
    let s = Arc::new(seeded().await);
    let watcher = {
        let s = s.clone();
        tokio::spawn(async move {
            get_streaming(
                &s,
                &format!(
                    "/api/v1/namespaces/{NS}/secrets?watch=1&resourceVersion=0&timeoutSeconds=4"
                ),
                "",
                Duration::from_secs(6),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = "CnryModified9Yc3";
    upstream_kubectl(
        &s.t,
        &[
            "patch",
            "secret",
            "db-credentials",
            "-n",
            NS,
            "--type=merge",
            "-p",
            &json!({"stringData": {"password": later}}).to_string(),
        ],
        None,
    )
    .await;
    upstream_kubectl(&s.t, &["delete", "secret", "tls", "-n", NS], None).await;
    let (_, body) = watcher.await.unwrap();
    s.c.assert_absent("watch MODIFIED/DELETED", &body);
    Canaries(vec![
        ("modified value", later.into()),
        ("modified (base64)", b64(later)),
    ])
    .assert_absent("watch MODIFIED", &body);
    let evs = events(&body);
    assert!(evs.iter().any(|e| e["type"] == "MODIFIED"), "{evs:?}");
    assert!(evs.iter().any(|e| e["type"] == "DELETED"), "{evs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_legacy_prefix_and_single_object() {
    let s = seeded().await;
    for path in [
        format!("/api/v1/watch/namespaces/{NS}/secrets?timeoutSeconds=1"),
        format!("/api/v1/namespaces/{NS}/secrets/db-credentials?watch=true&timeoutSeconds=1"),
        format!(
            "/api/v1/namespaces/{NS}/secrets?fieldSelector=metadata.name%3Dregistry&watch=1&timeoutSeconds=1"
        ),
        "/api/v1/watch/secrets?timeoutSeconds=1".to_owned(),
    ] {
        let (status, _, body) = get(&s, &path, "").await;
        assert_eq!(status, 200, "{path}");
        s.c.assert_absent(&path, &body);
        assert!(!events(&body).is_empty(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_as_table() {
    let s = seeded().await;
    let (_, _, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/secrets?watch=1&timeoutSeconds=1&includeObject=Object"),
        TABLE,
    )
    .await;
    s.c.assert_absent("watch as Table", &body);
    let evs = events(&body);
    assert!(!evs.is_empty());
    assert!(
        evs.iter().all(|e| e["object"]["kind"] == "Table"),
        "{evs:?}"
    );
}

// ------------------------------------------------------------------ raw HTTP: credentials minted

async fn token_request(s: &Seeded, query: &str) -> (u16, Vec<u8>) {
    let token = s.t.agent_token();
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": 3600}})
    .to_string();
    let r = s
        .t
        .raw(
            format!(
                "POST /api/v1/namespaces/{NS}/serviceaccounts/default/token{query} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    (r.status, r.body.into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_token_request() {
    let s = seeded().await;
    let (status, body) = token_request(&s, "").await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["kind"], "TokenRequest");
    assert_eq!(v["status"]["token"], MASKED);
    assert!(
        !String::from_utf8_lossy(&body).contains("eyJ"),
        "a JWT reached the caller"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_token_request_dry_run() {
    let s = seeded().await;
    // a dry-run TokenRequest mints a real token on the apiserver
    let (status, body) = token_request(&s, "?dryRun=All").await;
    assert_eq!(status, 201);
    assert_eq!(json_of(&body)["status"]["token"], MASKED);
    assert!(!String::from_utf8_lossy(&body).contains("eyJ"));
}

// ------------------------------------------------------------------ raw HTTP: logs

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_raw_logs() {
    let s = seeded().await;
    common::require_emulator(&s.t);
    let (status, head, body) = get(
        &s,
        &format!("/api/v1/namespaces/{NS}/pods/web-canary/log"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type(&head).starts_with("text/plain"));
    s.c.assert_absent("pods/log", &body);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("env MODE=production"), "{text}");
    assert!(text.contains("env DB_PASSWORD=[MASKED]"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_raw_logs_follow() {
    let s = seeded().await;
    common::require_emulator(&s.t);
    let (head, body) = get_streaming(
        &s,
        &format!("/api/v1/namespaces/{NS}/pods/web-canary/log?follow=true&timestamps=true"),
        "",
        Duration::from_millis(1500),
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    s.c.assert_absent("pods/log follow", &body);
    let text = String::from_utf8_lossy(&body);
    // lines arrive while the stream is open
    assert!(text.contains("heartbeat 2"), "{text}");
    assert!(text.contains("API_TOKEN=[MASKED]"), "{text}");
}

// ------------------------------------------------------------------ HTTP/2

#[tokio::test(flavor = "multi_thread")]
async fn http2_get_list_and_watch() {
    use http_body_util::BodyExt;
    let s = seeded().await;
    let mut config = (*common::client_config(s.t.env.gateway.ca_pem())).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(s.t.env.gateway.addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (path, accept) in [
        (
            format!("/api/v1/namespaces/{NS}/secrets/db-credentials"),
            "application/vnd.kubernetes.protobuf, application/json",
        ),
        (
            format!("/api/v1/namespaces/{NS}/secrets"),
            "application/json",
        ),
        (
            "/api/v1/secrets?watch=1&timeoutSeconds=1".to_owned(),
            "application/json",
        ),
        (
            format!("/api/v1/namespaces/{NS}/secrets?includeObject=Object"),
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ),
    ] {
        let req = http::Request::get(format!("https://localhost{path}"))
            .header("authorization", format!("Bearer {}", s.t.agent_token()))
            .header("accept", accept)
            .header("accept-encoding", "gzip")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers().get("content-encoding").is_none());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        s.c.assert_absent(&format!("HTTP/2 {path}"), &body);
        assert!(
            String::from_utf8_lossy(&body).contains(DATA_MASKED),
            "{path}"
        );
    }
}

// ------------------------------------------------------------------ kubectl

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_secret_yaml() {
    let s = seeded().await;
    let out = kubectl(&s, &["get", "secret", "db-credentials", "-o", "yaml"]).await;
    s.c.assert_absent("kubectl get secret -o yaml", out.as_bytes());
    assert!(out.contains(&format!("password: {DATA_MASKED}")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_secrets_json() {
    let s = seeded().await;
    let out = kubectl(&s, &["get", "secrets", "-o", "json"]).await;
    s.c.assert_absent("kubectl get secrets -o json", out.as_bytes());
    assert!(json_of(out.as_bytes())["items"].as_array().unwrap().len() >= 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_all_namespaces_tables() {
    let s = seeded().await;
    for kind in [
        "secrets",
        "configmaps",
        "pods",
        "events",
        "vaults",
        "deployments,cronjobs",
    ] {
        let out = s.t.kubectl_ok(&["get", kind, "-A", "-o", "wide"]).await;
        s.c.assert_absent(&format!("kubectl get {kind} -A"), out.as_bytes());
        assert!(out.contains(NS), "{kind}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_describe() {
    let s = seeded().await;
    for what in [
        ["secret", "db-credentials"],
        ["secret", "sh.helm.release.v1.web.v1"],
        ["configmap", "app-config"],
        ["pod", "web-canary"],
        ["deployment", "api"],
        ["cronjob", "backup"],
        ["vault", "main"],
    ] {
        let out = kubectl(&s, &["describe", what[0], what[1]]).await;
        s.c.assert_absent(&format!("kubectl describe {what:?}"), out.as_bytes());
        assert!(out.contains(what[1]), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_other_kinds_yaml() {
    let s = seeded().await;
    for what in [
        "configmap/app-config",
        "pod/web-canary",
        "deployment/api",
        "cronjob/backup",
        "vault/main",
        "events",
        "secret/sa-token",
        "secret/registry",
        "secret/tls",
    ] {
        let out = kubectl(&s, &["get", what, "-o", "yaml"]).await;
        s.c.assert_absent(&format!("kubectl get {what} -o yaml"), out.as_bytes());
        assert!(
            out.contains("[MASKED]") || out.contains(DATA_MASKED),
            "{what}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_raw() {
    let s = seeded().await;
    for path in [
        format!("/api/v1/namespaces/{NS}/secrets"),
        "/api/v1/secrets?watch=1&timeoutSeconds=1".to_owned(),
        format!("/apis/example.com/v1/namespaces/{NS}/vaults"),
    ] {
        let out = s.t.kubectl_ok(&["get", "--raw", &path]).await;
        s.c.assert_absent(&format!("kubectl get --raw {path}"), out.as_bytes());
        assert!(out.contains(DATA_MASKED), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_token() {
    let s = seeded().await;
    let out = kubectl(&s, &["create", "token", "default"]).await;
    assert_eq!(out.trim(), MASKED);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_watch_secrets() {
    let s = seeded().await;
    let out =
        s.t.kubectl(&[
            "get",
            "secrets",
            "-n",
            NS,
            "--watch",
            "-o",
            "json",
            "--request-timeout=2s",
        ])
        .await;
    let stdout = out.stdout;
    s.c.assert_absent("kubectl get secrets --watch", &stdout);
    assert!(String::from_utf8_lossy(&stdout).contains(DATA_MASKED));
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_kubectl_logs() {
    let s = seeded().await;
    common::require_emulator(&s.t);
    let out = kubectl(&s, &["logs", "web-canary"]).await;
    s.c.assert_absent("kubectl logs", out.as_bytes());
    assert!(out.contains("DB_PASSWORD=[MASKED]"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_only_kubectl_logs_follow() {
    let s = seeded().await;
    common::require_emulator(&s.t);
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.t.env.kubeconfig("agent"))
        .args(["logs", "-f", "web-canary", "-n", NS])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    s.c.assert_absent("kubectl logs -f", &out.stdout);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("heartbeat"), "{text}");
    assert!(text.contains("API_TOKEN=[MASKED]"), "{text}");
}

// ------------------------------------------------------------------ who sees what

#[tokio::test(flavor = "multi_thread")]
async fn reveal_shows_secrets_to_the_named_group_only() {
    use holdpoint_gateway::phases::decide::{PolicyDecider, no_freeze};
    let policy = holdpoint_policy::Policy::from_yaml(
        "default: {action: allow}\nreveal:\n  - name: reviewers-read-secrets\n    subjects: {groups: [reviewers]}\n    kinds: [Secret]\n",
    )
    .unwrap();
    let t = start_with(
        None,
        holdpoint_gateway::PhaseOverrides {
            decider: Some(Arc::new(PolicyDecider::with_policy(policy, no_freeze()))),
            ..Default::default()
        },
    )
    .await;
    let s = seeded_env(t).await;
    // the agent: masked
    let out = kubectl(&s, &["get", "secret", "db-credentials", "-o", "json"]).await;
    s.c.assert_absent("agent", out.as_bytes());
    // the reviewer (group `reviewers`): the Secret as it is; other kinds still masked
    let out =
        s.t.kubectl_as(
            "admin",
            &["get", "secret", "db-credentials", "-n", NS, "-o", "json"],
            None,
        )
        .await;
    let v = json_of(&out.stdout);
    assert_eq!(v["data"]["password"], b64(SECRET_PW));
    let out =
        s.t.kubectl_as(
            "admin",
            &["get", "configmap", "app-config", "-n", NS, "-o", "json"],
            None,
        )
        .await;
    s.c.assert_absent("reviewer reading a ConfigMap", &out.stdout);
    // the reveal is counted
    let metrics = reqwest_metrics(&s).await;
    assert!(
        metrics.contains("holdpoint_revealed_objects_total{kind=\"Secret\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("holdpoint_masked_values_total{rule=\"secret.data\"}"));
}

async fn reqwest_metrics(s: &Seeded) -> String {
    let r = common::raw_request(
        s.t.env.gateway.admin_addr(),
        s.t.env.gateway.ca_pem(),
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    r.body
}

#[tokio::test(flavor = "multi_thread")]
async fn executed_approval_answers_are_masked() {
    // the embedded default policy: a create is held until a reviewer approves; the gateway
    // sends it and hands the upstream's answer to the caller
    let t = start_with(None, holdpoint_gateway::PhaseOverrides::default()).await;
    let s = seeded_env(t).await;
    let body =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "held", "namespace": NS},
                      "stringData": {"password": SECRET_PW}})
        .to_string();
    let token = s.t.agent_token().to_owned();
    let request = format!(
        "POST /api/v1/namespaces/{NS}/secrets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/vnd.kubernetes.protobuf, application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let held = s.t.raw(request.as_bytes()).await;
    assert_eq!(held.status, 429, "{}", held.body);
    let message = held.status_json()["message"].as_str().unwrap().to_owned();
    let id = message
        .split_whitespace()
        .find(|w| w.starts_with("ap-"))
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .unwrap_or_else(|| panic!("{message}"))
        .to_owned();
    let reviewer = holdpoint::approvals_cmd::ApiClient::new(&holdpoint::approvals_cmd::ApiArgs {
        kubeconfig: Some(s.t.env.admin_kubeconfig.clone()),
        admin_url: None,
    })
    .await
    .unwrap();
    let voted = reviewer
        .post(&format!("/v1/approvals/{id}/approve"), json!({}))
        .await
        .unwrap();
    assert_eq!(voted["state"], "executed", "{voted:#}");
    let answer = s.t.raw(request.as_bytes()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(content_type(&answer.head).starts_with("application/json"));
    s.c.assert_absent("executed approval", answer.body.as_bytes());
    assert_eq!(answer.status_json()["data"]["password"], DATA_MASKED);
}

// ------------------------------------------------------------------ field rules from the config

const FIELD_CANARY: &str = "plainFieldCanary81";

fn vault_static_secret_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "vaultstaticsecrets.secrets.example.com"},
        "spec": {"group": "secrets.example.com", "scope": "Namespaced",
            "names": {"plural": "vaultstaticsecrets", "singular": "vaultstaticsecret",
                      "kind": "VaultStaticSecret", "listKind": "VaultStaticSecretList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "additionalPrinterColumns": [
                    {"name": "Path", "type": "string", "jsonPath": ".spec.path"},
                    {"name": "Password", "type": "string", "jsonPath": ".spec.password"}]}]}})
}

/// A field rule (`mask.field_rules`) masks a custom resource's field whose value no detector
/// would flag, every way it can be read: get and list as JSON and YAML, across namespaces,
/// `kubectl get` (a Table with metadata-only rows: the printer column named by the rule),
/// `describe`, Table with the whole object, watch, the last-applied annotation, and Accept
/// protobuf (JSON or nothing); the audit log holds no copy either.
#[tokio::test(flavor = "multi_thread")]
async fn field_rules_mask_a_custom_resource_every_way() {
    let mask = holdpoint_gateway::config::MaskConfig {
        field_rules: vec![holdpoint_mask::FieldRule {
            name: "vault-static-secret".into(),
            api_version: Some("secrets.example.com/*".into()),
            kind: "VaultStaticSecret".into(),
            fields: vec!["spec.password".into(), "spec.extra[*].value".into()],
            columns: vec!["Password".into()],
        }],
        ..Default::default()
    };
    let masker = holdpoint_gateway::phases::mask::EngineMasker::new(
        &mask,
        Arc::new(holdpoint_gateway::metrics::Metrics::default()),
    )
    .unwrap();
    let t = common::start_custom(
        Default::default(),
        true,
        holdpoint_gateway::PhaseOverrides {
            masker: Some(Arc::new(masker)),
            ..Default::default()
        },
    )
    .await;
    namespace_and_crd(&t, vault_static_secret_crd()).await;
    apply(
        &t,
        vec![
            json!({"apiVersion": "secrets.example.com/v1", "kind": "VaultStaticSecret",
            "metadata": {"name": "app", "namespace": NS},
            "spec": {"path": "kv/app", "password": FIELD_CANARY,
                     "extra": [{"name": "pin", "value": format!("{FIELD_CANARY}-pin")}]}}),
        ],
    )
    .await;
    let s = Seeded {
        t,
        c: Canaries(vec![("field rule canary", FIELD_CANARY.into())]),
    };

    for (what, out) in [
        (
            "get -o json",
            kubectl(&s, &["get", "vaultstaticsecrets", "app", "-o", "json"]).await,
        ),
        (
            "get -o yaml",
            kubectl(&s, &["get", "vaultstaticsecrets", "-o", "yaml"]).await,
        ),
        (
            "get (Table)",
            kubectl(&s, &["get", "vaultstaticsecrets"]).await,
        ),
        (
            "get -A -o wide",
            s.t.kubectl_ok(&["get", "vaultstaticsecrets", "-A", "-o", "wide"])
                .await,
        ),
        (
            "describe",
            kubectl(&s, &["describe", "vaultstaticsecret", "app"]).await,
        ),
    ] {
        s.c.assert_absent(what, out.as_bytes());
        assert!(out.contains("app"), "{what} read the object: {out}");
        if what != "describe" {
            assert!(out.contains(MASKED), "{what}: {out}");
        }
    }
    let table = kubectl(&s, &["get", "vaultstaticsecrets"]).await;
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("kv/app") && l.contains(MASKED)),
        "the Password column is masked, Path is not: {table}"
    );

    let base = format!("/apis/secrets.example.com/v1/namespaces/{NS}/vaultstaticsecrets");
    for (what, path, headers) in [
        ("raw get", format!("{base}/app"), ""),
        ("raw list", base.clone(), ""),
        (
            "raw cluster-wide list",
            "/apis/secrets.example.com/v1/vaultstaticsecrets".to_owned(),
            "",
        ),
        (
            "Table with the object",
            format!("{base}?includeObject=Object"),
            "Accept: application/json;as=Table;v=v1;g=meta.k8s.io\r\n",
        ),
        (
            "Table without the object",
            base.clone(),
            "Accept: application/json;as=Table;v=v1;g=meta.k8s.io\r\n",
        ),
        (
            "protobuf or JSON",
            format!("{base}/app"),
            "Accept: application/vnd.kubernetes.protobuf, application/json\r\n",
        ),
    ] {
        let (status, _, body) = get(&s, &path, headers).await;
        assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&body));
        s.c.assert_absent(what, &body);
        assert!(String::from_utf8_lossy(&body).contains(MASKED), "{what}");
    }
    let v = json_of(&get(&s, &format!("{base}/app"), "").await.2);
    assert_eq!(v["spec"]["password"], MASKED);
    assert_eq!(v["spec"]["extra"][0]["value"], MASKED);
    assert_eq!(v["spec"]["path"], "kv/app", "other fields are left alone");
    let last_applied =
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("the upstream kubectl apply left its annotation");
    assert!(last_applied.contains(MASKED), "{last_applied}");

    let (_, body) = get_streaming(
        &s,
        &format!("{base}?watch=true"),
        "",
        Duration::from_secs(2),
    )
    .await;
    s.c.assert_absent("watch", &body);
    assert_eq!(events(&body)[0]["object"]["spec"]["password"], MASKED);

    // and nothing stored in the audit log holds it
    let cfg = s.t.env.config_file.display().to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_holdpoint"))
        .args(["audit", "export", "--config", &cfg])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", common::output_text(&out));
    assert!(out.stdout.len() > 100, "events were exported");
    s.c.assert_absent("audit export", &out.stdout);
}
