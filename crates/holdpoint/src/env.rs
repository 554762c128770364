//! A complete local environment: the Kubernetes API emulator (or a real cluster given by a
//! kubeconfig), the gateway in front of it, and kubeconfigs for an agent and a reviewer.
//!
//! `holdpoint demo` runs one; the end-to-end tests start one per test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use holdpoint_gateway::config::{
    AuthenticationConfig, Config, Limits, StaticTokenConfig, UpstreamConfig,
};
use holdpoint_gateway::phases::authenticate::token_sha256_hex;
use holdpoint_gateway::{PhaseOverrides, RunningGateway};

use crate::kubeconfig;

/// The upstream the environment fronts.
#[derive(Debug, Clone)]
pub enum UpstreamChoice {
    /// Start the in-tree emulator, seeded with the demo objects.
    Emulator,
    /// A real cluster's admin kubeconfig.
    Kubeconfig(PathBuf),
}

impl UpstreamChoice {
    /// `HOLDPOINT_E2E_KUBECONFIG` when set, otherwise the emulator.
    pub fn from_env() -> Self {
        match std::env::var_os("HOLDPOINT_E2E_KUBECONFIG") {
            Some(p) if !p.is_empty() => Self::Kubeconfig(PathBuf::from(p)),
            _ => Self::Emulator,
        }
    }
}

/// Options of an environment.
#[derive(Debug)]
pub struct EnvOptions {
    /// Where config, certificates and kubeconfigs go.
    pub dir: PathBuf,
    /// Data-path listener (port 0 for any).
    pub listen: SocketAddr,
    /// Admin listener (port 0 for any).
    pub admin_listen: SocketAddr,
    /// What is upstream.
    pub upstream: UpstreamChoice,
}

/// A running environment.
#[derive(Debug)]
pub struct Env {
    /// The emulator, when one was started.
    pub emulator: Option<kube_emulator::RunningEmulator>,
    /// The gateway.
    pub gateway: RunningGateway,
    /// Kubeconfig of the agent identity (`demo-agent`, group `agents`).
    pub agent_kubeconfig: PathBuf,
    /// Kubeconfig of the reviewer identity (`demo-admin`, group `reviewers`).
    pub admin_kubeconfig: PathBuf,
    /// The upstream's own admin kubeconfig (never handed to callers).
    pub upstream_kubeconfig: PathBuf,
    /// The agent's token (tests use it for raw HTTP).
    pub agent_token: String,
}

impl Env {
    /// Starts everything.
    pub async fn start(options: EnvOptions) -> anyhow::Result<Self> {
        Self::start_with(options, PhaseOverrides::default()).await
    }

    /// Starts everything with some gateway phases replaced.
    pub async fn start_with(
        options: EnvOptions,
        overrides: PhaseOverrides,
    ) -> anyhow::Result<Self> {
        Self::start_configured(options, overrides, |_| {}).await
    }

    /// Starts everything; `adjust` changes the gateway's config before it is validated and used
    /// (tests add authenticators this way, e.g. OIDC issuers).
    pub async fn start_configured(
        options: EnvOptions,
        overrides: PhaseOverrides,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let dir = &options.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (emulator, upstream_kubeconfig) = match &options.upstream {
            UpstreamChoice::Emulator => {
                let emulator = kube_emulator::start(kube_emulator::EmulatorConfig {
                    listen: "127.0.0.1:0".parse()?,
                    seed: kube_emulator::Seed::Demo,
                    admin_token: None,
                })
                .await
                .context("starting the Kubernetes API emulator")?;
                let path = dir.join("upstream.kubeconfig");
                emulator.write_kubeconfig(&path)?;
                (Some(emulator), path)
            }
            UpstreamChoice::Kubeconfig(path) => (None, path.clone()),
        };

        let agent_token = kubeconfig::new_token();
        let admin_token = kubeconfig::new_token();
        let mut config = Config {
            listen: options.listen,
            admin_listen: options.admin_listen,
            data_dir: dir.join("data"),
            tls: None,
            upstream: UpstreamConfig {
                kubeconfig: upstream_kubeconfig.clone(),
                context: None,
            },
            authentication: AuthenticationConfig {
                static_tokens: vec![
                    StaticTokenConfig {
                        sha256: token_sha256_hex(&agent_token),
                        user: "demo-agent".into(),
                        groups: vec!["agents".into()],
                        uid: None,
                    },
                    StaticTokenConfig {
                        sha256: token_sha256_hex(&admin_token),
                        user: "demo-admin".into(),
                        groups: vec!["reviewers".into()],
                        uid: None,
                    },
                ],
                ..AuthenticationConfig::default()
            },
            limits: Limits::default(),
        };
        adjust(&mut config);
        config.validate()?;
        let gateway = holdpoint_gateway::start_with(config, overrides)
            .await
            .context("starting the gateway")?;

        let server = gateway.url();
        let agent_kubeconfig = dir.join("agent.kubeconfig");
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        let ns = matches!(options.upstream, UpstreamChoice::Emulator).then_some("demo");
        kubeconfig::write_private(
            &agent_kubeconfig,
            &kubeconfig::for_token(&server, gateway.ca_pem(), "demo-agent", &agent_token, ns),
        )?;
        kubeconfig::write_private(
            &admin_kubeconfig,
            &kubeconfig::for_token(&server, gateway.ca_pem(), "demo-admin", &admin_token, ns),
        )?;
        Ok(Self {
            emulator,
            gateway,
            agent_kubeconfig,
            admin_kubeconfig,
            upstream_kubeconfig,
            agent_token,
        })
    }

    /// The directory's kubeconfig for `who` (`agent` or `admin`).
    pub fn kubeconfig(&self, who: &str) -> &Path {
        if who == "admin" {
            &self.admin_kubeconfig
        } else {
            &self.agent_kubeconfig
        }
    }

    /// Stops the gateway and the emulator.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        if let Some(e) = self.emulator {
            e.shutdown().await;
        }
    }
}
