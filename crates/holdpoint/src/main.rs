//! `holdpoint`: the gateway between AI agents (and humans) and the Kubernetes API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use holdpoint::env::{Env, EnvOptions, UpstreamChoice};

/// mimalloc instead of glibc malloc: the data path allocates and frees many small buffers per
/// request across worker threads (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "holdpoint",
    version,
    about = "A Kubernetes API gateway that holds risky requests for human approval"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HOLDPOINT_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway with a config file.
    Serve {
        /// Path of the YAML config (see examples/holdpoint.yaml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a config file and exit.
    CheckConfig {
        /// Path of the YAML config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the emulator and the gateway in one process, with kubeconfigs for an agent and a
    /// reviewer in DIR.
    Demo {
        /// Directory for config, certificates and kubeconfigs.
        #[arg(long, default_value = "./holdpoint-demo")]
        dir: PathBuf,
        /// Data-path address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Admin listener address.
        #[arg(long, default_value = "127.0.0.1:8444")]
        admin_listen: SocketAddr,
        /// Front a real cluster given by this admin kubeconfig instead of the emulator.
        #[arg(long)]
        upstream_kubeconfig: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLDPOINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { config } => {
            let config = holdpoint_gateway::Config::load(&config)?;
            let gateway = holdpoint_gateway::start(config).await?;
            shutdown_signal().await;
            gateway.shutdown().await;
        }
        Command::CheckConfig { config } => {
            holdpoint_gateway::Config::load(&config)?;
            println!("config ok");
        }
        Command::Demo {
            dir,
            listen,
            admin_listen,
            upstream_kubeconfig,
        } => {
            let upstream = match upstream_kubeconfig {
                Some(p) => UpstreamChoice::Kubeconfig(p),
                None => UpstreamChoice::Emulator,
            };
            let env = Env::start(EnvOptions {
                dir: dir.clone(),
                listen,
                admin_listen,
                upstream,
                authentication: Default::default(),
                impersonate: true,
            })
            .await
            .context("starting the demo")?;
            print_demo_help(&env, &dir);
            shutdown_signal().await;
            env.shutdown().await;
        }
    }
    Ok(())
}

fn print_demo_help(env: &Env, dir: &std::path::Path) {
    let agent = env.agent_kubeconfig.display();
    let admin = env.admin_kubeconfig.display();
    println!(
        "Holdpoint demo is running.\n\n  gateway:  {url}\n  admin:    https://{admin_addr} (/healthz, /readyz, /metrics)\n  files:    {dir}\n\nIn another terminal, act as the AI agent:\n\n  export KUBECONFIG={agent}\n  kubectl get pods,deploy,svc,cm,secrets\n  kubectl logs web-0\n  kubectl exec web-0 -- env\n  kubectl scale deployment web --replicas=3\n  kubectl create configmap hello --from-literal=greeting=hi\n\nor as the human reviewer: export KUBECONFIG={admin}\n\nPress Ctrl-C to stop.",
        url = env.gateway.url(),
        admin_addr = env.gateway.admin_addr(),
        dir = dir.display(),
    );
}
