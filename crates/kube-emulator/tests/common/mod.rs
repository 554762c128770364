//! Shared helpers: start an emulator, run kubectl against it, and a raw HTTPS client built from
//! hyper + tokio-rustls that trusts the emulator's CA.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kube_emulator::{EmulatorConfig, RunningEmulator, Seed};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};

pub const KUBECTL: &str = "/usr/bin/kubectl";

pub struct Env {
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub async fn start(seed: Seed) -> Env {
    let emu = kube_emulator::start(EmulatorConfig {
        seed,
        ..Default::default()
    })
    .await
    .expect("start emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
    Env {
        emu,
        dir,
        kubeconfig,
    }
}

pub fn have_kubectl() -> bool {
    std::path::Path::new(KUBECTL).exists()
}

impl Env {
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args);
        c
    }

    /// Runs kubectl (blocking in a worker thread) and returns its output.
    pub async fn kubectl_output(&self, args: &[&str]) -> Output {
        let mut cmd = self.kubectl_cmd(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run kubectl"))
            .await
            .expect("join")
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn write(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p.to_string_lossy().to_string()
    }
}

/// A raw HTTPS/1.1 client trusting the emulator's CA.
pub async fn send(
    emu: &RunningEmulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    with_token: bool,
) -> hyper::Response<Incoming> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(emu.ca_pem().as_bytes()).expect("CA PEM");
    roots.add(ca).expect("add CA");
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(emu.addr())
        .await
        .expect("connect");
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", emu.addr().to_string());
    if with_token {
        req = req.header("authorization", format!("Bearer {}", emu.admin_token()));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    sender.send_request(req).await.expect("send")
}

/// Sends and collects the whole body.
pub async fn call(
    emu: &RunningEmulator,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    let resp = send(emu, method, path, headers, body, true).await;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

pub async fn get_json(emu: &RunningEmulator, path: &str) -> (StatusCode, serde_json::Value) {
    let (s, _, b) = call(
        emu,
        Method::GET,
        path,
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}
