//! A complete local environment: the Kubernetes API emulator (or a real cluster given by a
//! kubeconfig), the gateway in front of it, and kubeconfigs for an agent and a reviewer.
//!
//! `holdpoint demo` runs one; the end-to-end tests start one per test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use holdpoint_gateway::clock::{Clock, SystemClock};
use holdpoint_gateway::config::{
    AdminConfig, AuthenticationConfig, Config, Limits, StoreConfig, UpstreamConfig,
};
use holdpoint_gateway::{PhaseOverrides, RunningGateway};

use crate::tokens::{self, TokenSpec};

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
    /// The store (`sqlite://...` or `postgres://...`); `None`: SQLite in the directory.
    pub store_url: Option<String>,
    /// Authenticators besides the agent's and reviewer's stored tokens (static tokens,
    /// service-account tokens, client certificates).
    pub authentication: AuthenticationConfig,
    /// `upstream.impersonate` of the gateway (the default is `true`).
    pub impersonate: bool,
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
    /// A config file for this environment's gateway (same data dir and store), for the
    /// operator commands: `holdpoint token ... --config`, `holdpoint kubeconfig --config`.
    pub config_file: PathBuf,
}

impl Env {
    /// Starts everything.
    pub async fn start(options: EnvOptions) -> anyhow::Result<Self> {
        Self::start_with(options, PhaseOverrides::default()).await
    }

    /// Starts everything with some gateway phases replaced.
    ///
    /// Without a `decider` override the gateway uses the embedded default policy for AI agents
    /// (as `holdpoint demo` does): reads pass, changes are held for a reviewer in group
    /// `reviewers`, whose members are also the admins (freeze).
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

        let clock: std::sync::Arc<dyn Clock> = overrides
            .clock
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(SystemClock));
        let mut config = Config {
            listen: options.listen,
            admin_listen: options.admin_listen,
            data_threads: 0,
            data_dir: dir.join("data"),
            tls: None,
            upstream: UpstreamConfig {
                kubeconfig: upstream_kubeconfig.clone(),
                context: None,
                impersonate: options.impersonate,
            },
            // The agent's and reviewer's tokens are stored tokens, made below as
            // `holdpoint kubeconfig` makes them.
            authentication: options.authentication.clone(),
            limits: Limits::default(),
            policy: Default::default(),
            admin: AdminConfig {
                groups: vec!["reviewers".into()],
                ..AdminConfig::default()
            },
            store: StoreConfig {
                url: options.store_url.clone(),
            },
            instance_name: None,
            mask: Default::default(),
            audit: Default::default(),
        };
        adjust(&mut config);
        config.validate()?;
        let gateway = holdpoint_gateway::start_with(config.clone(), overrides)
            .await
            .context("starting the gateway")?;

        let config_file = dir.join("holdpoint.yaml");
        write_config_file(&config_file, &config, &gateway)?;

        let server = gateway.url();
        let admin_server = gateway.admin_url();
        let agent_kubeconfig = dir.join("agent.kubeconfig");
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        let ns = matches!(options.upstream, UpstreamChoice::Emulator).then_some("demo");
        let spec = |user: &str, group: &str| TokenSpec {
            user: user.into(),
            groups: vec![group.into()],
            ttl: None,
            description: Some("holdpoint demo".into()),
            created_by: "holdpoint-demo".into(),
        };
        let (agent_token, _) = tokens::write_token_kubeconfig(
            gateway.store(),
            &spec("demo-agent", "agents"),
            tokens::Target {
                server: &server,
                admin_server: &admin_server,
                ca_pem: gateway.ca_pem(),
                namespace: ns,
            },
            &agent_kubeconfig,
            clock.now(),
        )
        .await?;
        tokens::write_token_kubeconfig(
            gateway.store(),
            &spec("demo-admin", "reviewers"),
            tokens::Target {
                server: &server,
                admin_server: &admin_server,
                ca_pem: gateway.ca_pem(),
                namespace: ns,
            },
            &admin_kubeconfig,
            clock.now(),
        )
        .await?;
        Ok(Self {
            emulator,
            gateway,
            agent_kubeconfig,
            admin_kubeconfig,
            upstream_kubeconfig,
            agent_token,
            config_file,
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

/// Writes the environment's gateway config as YAML (the addresses it actually listens on).
fn write_config_file(path: &Path, config: &Config, gateway: &RunningGateway) -> anyhow::Result<()> {
    // JSON strings are YAML strings: any path is quoted correctly.
    let q = |p: &Path| {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        serde_json::to_string(&abs.display().to_string()).unwrap_or_default()
    };
    let text = format!(
        "# Written by holdpoint for this environment; the gateway runs in the demo process.\n\
         listen: {listen}\nadmin_listen: {admin}\ndata_dir: {data}\nupstream:\n  kubeconfig: {kc}\n{store}",
        // The operator commands must reach the same store as the gateway (PostgreSQL in tests
        // that run on it).
        store = match &config.store.url {
            Some(url) => format!(
                "store:\n  url: {}\n",
                serde_json::to_string(url).unwrap_or_default()
            ),
            None => String::new(),
        },
        listen = gateway.addr(),
        admin = gateway.admin_addr(),
        data = q(&config.data_dir),
        kc = q(&config.upstream.kubeconfig),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
