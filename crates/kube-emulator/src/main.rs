//! `kube-emulator`: runs the emulator until killed.
//!
//! `kube-emulator --listen 127.0.0.1:6443 --kubeconfig-out PATH [--seed demo] [--bulk NS:KIND:COUNT]...`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_emulator::{EmulatorConfig, Seed};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SeedArg {
    None,
    Demo,
}

#[derive(Debug, Parser)]
#[command(
    name = "kube-emulator",
    about = "A Kubernetes API server emulator for tests, benchmarks and demos"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Preloaded data set.
    #[arg(long, value_enum, default_value = "none")]
    seed: SeedArg,
    /// Admin bearer token (random if omitted).
    #[arg(long, env = "KUBE_EMULATOR_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Bulk objects, `NAMESPACE:KIND:COUNT` (KIND: configmaps, secrets, pods, services, serviceaccounts).
    #[arg(long)]
    bulk: Vec<String>,
}

fn bulk_object(kind: &str, ns: &str, i: usize) -> anyhow::Result<serde_json::Value> {
    let name = format!("{}-{i:05}", kind.trim_end_matches('s'));
    let md =
        json!({"name": name, "namespace": ns, "labels": {"bulk": "true", "index": i.to_string()}});
    Ok(match kind {
        "configmaps" | "configmap" | "cm" => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md,
            "data": {"key": format!("value-{i}"), "config.yaml": format!("setting: {i}\npassword: bulk-pa55-{i}\n")}})
        }
        "secrets" | "secret" => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": md, "type": "Opaque",
            "stringData": {"username": format!("user-{i}"), "password": format!("bulk-s3cret-{i}")}})
        }
        "pods" | "pod" | "po" => json!({"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}),
        "services" | "service" | "svc" => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": md,
            "spec": {"ports": [{"port": 80}]}})
        }
        "serviceaccounts" | "serviceaccount" | "sa" => {
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md})
        }
        other => bail!("unsupported bulk kind {other}"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let emu = kube_emulator::start(EmulatorConfig {
        listen: args.listen,
        seed: match args.seed {
            SeedArg::None => Seed::None,
            SeedArg::Demo => Seed::Demo,
        },
        admin_token: args.admin_token,
    })
    .await
    .context("starting the emulator")?;
    for spec in &args.bulk {
        let parts: Vec<&str> = spec.split(':').collect();
        let [ns, kind, count] = parts.as_slice() else {
            bail!("--bulk wants NAMESPACE:KIND:COUNT, got {spec}")
        };
        let count: usize = count
            .parse()
            .with_context(|| format!("bad count in {spec}"))?;
        let objs = (0..count)
            .map(|i| bulk_object(kind, ns, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        emu.insert_many(objs)
            .map_err(|e| anyhow::anyhow!("bulk {spec}: {e}"))?;
        eprintln!("seeded {count} {kind} in {ns}");
    }
    if let Some(p) = &args.kubeconfig_out {
        emu.write_kubeconfig(p)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!("kube-emulator listening on {}", emu.url());
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
