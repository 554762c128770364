//! `holdpoint`: the gateway between AI agents (and humans) and the Kubernetes API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use holdpoint::env::{Env, EnvOptions, UpstreamChoice};
use holdpoint::tokens::{self, TokenSpec};

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
    /// Check a policy file, or explain which rule a request meets.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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
        /// A policy file instead of the embedded default policy for AI agents (reloaded when it
        /// changes, like `policy.file`).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Review held requests: list, show, approve, deny, cancel (the reviewer API).
    Approvals {
        #[command(flatten)]
        api: holdpoint::approvals_cmd::ApiArgs,
        #[command(subcommand)]
        command: holdpoint::approvals_cmd::ApprovalsCommand,
    },
    /// Wait until an approval is decided and executed; exit 0 only if it was executed
    /// successfully (or, for a grant, approved).
    Wait {
        #[command(flatten)]
        api: holdpoint::approvals_cmd::ApiArgs,
        /// Approval id (`ap-...`), as the held request's message gives it.
        id: String,
        /// Give up after this long (`30s`, `10m`); default: wait until decided.
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Deny (or hold) every mutating request at once, whatever the policy says; stored, so it
    /// survives restarts and reaches every replica.
    Freeze {
        #[command(flatten)]
        api: holdpoint::approvals_cmd::ApiArgs,
        #[command(subcommand)]
        command: holdpoint::approvals_cmd::FreezeCommand,
    },
    /// The audit log: verify the chain, export events, the checkpoint key.
    Audit {
        #[command(subcommand)]
        command: holdpoint::audit_cmd::AuditCommand,
    },
    /// Sessions in the audit log: list, show (timeline), replay.
    Sessions {
        #[command(subcommand)]
        command: holdpoint::audit_cmd::SessionsCommand,
    },
    /// Stored static tokens (bootstrap and CI agents): create, revoke, list.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write a kubeconfig that reaches the gateway: with a fresh stored token for --user, or
    /// (with --oidc-issuer) one that logs a human in through OIDC with kubelogin.
    Kubeconfig {
        /// The gateway's config (for its store, CA and address).
        #[arg(long)]
        config: PathBuf,
        /// Username of the new token (with --oidc-issuer: only the name of the kubeconfig
        /// entry; the identity comes from the issuer).
        #[arg(long, required_unless_present = "oidc_issuer")]
        user: Option<String>,
        /// Groups of the new token (repeat).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Lifetime of the new token (`12h`, `30d`, `PT1H`); default: until revoked.
        #[arg(long)]
        ttl: Option<String>,
        /// What the token is for (shown by `token list`).
        #[arg(long)]
        description: Option<String>,
        /// Gateway URL the kubeconfig points at; default: https:// and the config's `listen`.
        #[arg(long)]
        server: Option<String>,
        /// Default namespace of the context.
        #[arg(long)]
        namespace: Option<String>,
        /// Write here (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// OIDC issuer URL: write a kubeconfig whose user runs `kubectl oidc-login get-token`
        /// (kubelogin, https://github.com/int128/kubelogin) instead of holding a token.
        #[arg(long, requires = "oidc_client_id", conflicts_with_all = ["groups", "ttl", "description"])]
        oidc_issuer: Option<String>,
        /// OIDC client id (with --oidc-issuer).
        #[arg(long, requires = "oidc_issuer")]
        oidc_client_id: Option<String>,
        /// Extra OIDC scopes to ask for (repeat; with --oidc-issuer).
        #[arg(long = "oidc-extra-scope", requires = "oidc_issuer")]
        oidc_extra_scopes: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token; prints it once on standard output (the store keeps only its SHA-256).
    Create {
        /// The gateway's config (for its store).
        #[arg(long)]
        config: PathBuf,
        /// Username the token authenticates as.
        #[arg(long)]
        user: String,
        /// Groups (repeat).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Lifetime (`12h`, `30d`, `PT1H`); default: until revoked.
        #[arg(long)]
        ttl: Option<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Revoke a token by id, or every token of a user. Running gateways refuse it within 5 s.
    Revoke {
        /// The gateway's config (for its store).
        #[arg(long)]
        config: PathBuf,
        /// Token id (`tk-...`, from `token list`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Revoke every token of this user instead.
        #[arg(long)]
        user: Option<String>,
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List tokens (ids, users, groups, state, expiry; never the tokens).
    List {
        /// The gateway's config (for its store).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate a policy file (exit code 0 when it is valid).
    Check {
        /// The policy file (see examples/policy.yaml).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Or: the gateway config whose `policy.file` to check (the embedded default policy
        /// when it has none).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show which rule a request meets and why, without sending anything:
    /// `explain --as USER [--group G]... -- VERB RESOURCE [NAME] [-n NS]` or
    /// `-- METHOD /path?query`.
    Explain {
        /// The policy file; the embedded default policy when absent.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The caller's username.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// The caller's groups (repeat for several).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// The authenticator the caller came through.
        #[arg(long, default_value = "static-token")]
        authenticator: String,
        /// Treat the request as a server-side dry run (adds dryRun=All).
        #[arg(long)]
        dry_run: bool,
        /// The object being written, as JSON or YAML (for CEL conditions).
        #[arg(long, value_name = "FILE")]
        object: Option<PathBuf>,
        /// Evaluate at this time (RFC 3339) instead of now, for change windows.
        #[arg(long, value_name = "TIMESTAMP")]
        at: Option<jiff::Timestamp>,
        /// Assume a freeze is on, with this reason.
        #[arg(long, value_name = "REASON")]
        frozen: Option<String>,
        /// With --frozen: the freeze holds instead of denying.
        #[arg(long, requires = "frozen")]
        freeze_holds: bool,
        /// The request: `VERB RESOURCE [NAME] [-n NS]` or `METHOD /path?query`.
        #[arg(last = true, required = true, value_name = "REQUEST")]
        request: Vec<String>,
    },
}

fn run_policy(command: PolicyCommand) -> anyhow::Result<()> {
    use holdpoint::policy_cmd;
    match command {
        PolicyCommand::Check { file, config } => {
            let file = match (file, config) {
                (Some(file), _) => Some(file),
                (None, Some(config)) => holdpoint_gateway::Config::load(&config)?.policy.file,
                (None, None) => None,
            };
            let policy = policy_cmd::load(file.as_deref())?;
            match &file {
                Some(f) => println!("policy ok: {} rules ({})", policy.len(), f.display()),
                None => println!(
                    "policy ok: {} rules (the embedded default policy)",
                    policy.len()
                ),
            }
        }
        PolicyCommand::Explain {
            file,
            user,
            groups,
            authenticator,
            dry_run,
            object,
            at,
            frozen,
            freeze_holds,
            request,
        } => {
            let policy = policy_cmd::load(file.as_deref())?;
            let object = match object {
                None => None,
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(
                        serde_saphyr::from_str::<serde_json::Value>(&text)
                            .with_context(|| format!("{} is not JSON or YAML", path.display()))?,
                    )
                }
            };
            let options = policy_cmd::ExplainOptions {
                user,
                groups,
                authenticator,
                at: at.unwrap_or_else(jiff::Timestamp::now),
                object,
                freeze: frozen.map(|reason| holdpoint_policy::Freeze {
                    reason,
                    mode: if freeze_holds {
                        holdpoint_policy::FreezeMode::Hold
                    } else {
                        holdpoint_policy::FreezeMode::Deny
                    },
                }),
            };
            let parsed = policy_cmd::parse_request(&request, dry_run)?;
            let (explanation, info, dry) = policy_cmd::explain(&policy, &parsed, &options)?;
            let source = match &file {
                Some(f) => format!("{} ({} rules)", f.display(), policy.len()),
                None => format!(
                    "embedded default policy for AI agents ({} rules)",
                    policy.len()
                ),
            };
            print!(
                "{}",
                policy_cmd::render(&source, &parsed, &info, dry, &options, &explanation)
            );
        }
    }
    Ok(())
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
        Command::Policy { command } => run_policy(command)?,
        Command::Demo {
            dir,
            listen,
            admin_listen,
            upstream_kubeconfig,
            policy,
        } => {
            let upstream = match upstream_kubeconfig {
                Some(p) => UpstreamChoice::Kubeconfig(p),
                None => UpstreamChoice::Emulator,
            };
            let policy = policy
                .map(|p| std::path::absolute(&p).with_context(|| format!("{}", p.display())))
                .transpose()?;
            let env = Env::start_configured(
                EnvOptions {
                    dir: dir.clone(),
                    listen,
                    admin_listen,
                    upstream,
                    store_url: None,
                    authentication: Default::default(),
                    impersonate: true,
                },
                holdpoint_gateway::PhaseOverrides::default(),
                |config| config.policy.file = policy,
            )
            .await
            .context("starting the demo")?;
            print_demo_help(&env, &dir);
            shutdown_signal().await;
            env.shutdown().await;
        }
        Command::Token { command } => token_command(command).await?,
        Command::Audit { command } => {
            let code = holdpoint::audit_cmd::audit(command).await?;
            std::process::exit(code);
        }
        Command::Sessions { command } => holdpoint::audit_cmd::sessions(command).await?,
        Command::Approvals { api, command } => {
            holdpoint::approvals_cmd::approvals(&api, command).await?
        }
        Command::Wait { api, id, timeout } => {
            let timeout = timeout
                .as_deref()
                .map(holdpoint_gateway::config::parse_duration)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let code = holdpoint::approvals_cmd::wait(&api, &id, timeout).await?;
            std::process::exit(code);
        }
        Command::Freeze { api, command } => holdpoint::approvals_cmd::freeze(&api, command).await?,
        Command::Kubeconfig {
            config,
            user,
            groups,
            ttl,
            description,
            server,
            namespace,
            out,
            oidc_issuer,
            oidc_client_id,
            oidc_extra_scopes,
        } => {
            let config = holdpoint_gateway::Config::load(&config)?;
            let ca_pem = holdpoint_gateway::tls::ServingCert::load_or_create(
                config.tls.as_ref(),
                &config.data_dir,
                &[],
            )?
            .ca_pem;
            let server = server.unwrap_or_else(|| gateway_url(config.listen));
            let text = match (oidc_issuer, oidc_client_id) {
                (Some(issuer), Some(client_id)) => holdpoint::kubeconfig::for_oidc(
                    &server,
                    &ca_pem,
                    user.as_deref().unwrap_or("oidc"),
                    &issuer,
                    &client_id,
                    &oidc_extra_scopes,
                    namespace.as_deref(),
                ),
                _ => {
                    let store = open_store(&config).await?;
                    let spec = TokenSpec {
                        user: user.context("--user is required")?,
                        groups,
                        ttl: ttl.as_deref().map(parse_ttl).transpose()?,
                        description,
                        created_by: tokens::cli_actor(),
                    };
                    let (token, stored) =
                        tokens::issue(&store, &spec, jiff::Timestamp::now()).await?;
                    store.close().await;
                    eprintln!("created token {} for {}", stored.id, stored.username);
                    holdpoint::kubeconfig::for_token(
                        &server,
                        &ca_pem,
                        &spec.user,
                        &token,
                        namespace.as_deref(),
                    )
                }
            };
            let admin_server = config
                .admin
                .url
                .clone()
                .unwrap_or_else(|| gateway_url(config.admin_listen));
            let text = holdpoint::kubeconfig::with_admin_server(&text, &admin_server);
            match out {
                Some(path) => {
                    holdpoint::kubeconfig::write_private(&path, &text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}

async fn open_store(config: &holdpoint_gateway::Config) -> anyhow::Result<holdpoint_store::Store> {
    holdpoint_store::Store::open(&config.store_url())
        .await
        .context("opening the store")
}

fn parse_ttl(text: &str) -> anyhow::Result<std::time::Duration> {
    holdpoint_gateway::config::parse_duration(text).map_err(|e| anyhow::anyhow!("--ttl: {e}"))
}

/// `https://` and the listen address (a wildcard address becomes loopback).
fn gateway_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("https://{addr}")
}

async fn token_command(command: TokenCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    match command {
        TokenCommand::Create {
            config,
            user,
            groups,
            ttl,
            description,
        } => {
            let config = holdpoint_gateway::Config::load(&config)?;
            let store = open_store(&config).await?;
            let spec = TokenSpec {
                user,
                groups,
                ttl: ttl.as_deref().map(parse_ttl).transpose()?,
                description,
                created_by: tokens::cli_actor(),
            };
            let (token, stored) = tokens::issue(&store, &spec, now).await?;
            store.close().await;
            eprintln!(
                "created token {} for {} (expires: {}); it is shown only once:",
                stored.id,
                stored.username,
                stored
                    .expires_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "never".into())
            );
            println!("{token}");
        }
        TokenCommand::Revoke {
            config,
            id,
            user,
            reason,
        } => {
            let config = holdpoint_gateway::Config::load(&config)?;
            let store = open_store(&config).await?;
            let which = match (id, user) {
                (Some(id), _) => holdpoint_store::TokenSelector::Id(id),
                (None, Some(user)) => holdpoint_store::TokenSelector::User(user),
                (None, None) => anyhow::bail!("give a token id or --user"),
            };
            let revoked = tokens::revoke(
                &store,
                &which,
                &tokens::cli_actor(),
                reason.as_deref(),
                config.audit.session_gap,
                now,
            )
            .await?;
            store.close().await;
            if revoked.is_empty() {
                println!("nothing to revoke (already revoked)");
            }
            for id in revoked {
                println!("revoked {id}");
            }
        }
        TokenCommand::List { config } => {
            let config = holdpoint_gateway::Config::load(&config)?;
            let store = open_store(&config).await?;
            let list = store.list_tokens().await?;
            store.close().await;
            print!("{}", tokens::format_list(&list, now));
        }
    }
    Ok(())
}

fn print_demo_help(env: &Env, dir: &std::path::Path) {
    let agent = env.agent_kubeconfig.display();
    let admin = env.admin_kubeconfig.display();
    println!(
        "Holdpoint demo is running (default policy for AI agents: reads pass, changes wait for a reviewer).\n\n  gateway:  {url}\n  admin:    https://{admin_addr} (reviewer API: /v1/approvals, /openapi.json; /healthz, /metrics)\n  files:    {dir}\n\nIn another terminal, act as the AI agent:\n\n  export KUBECONFIG={agent}\n  kubectl get pods,deploy,svc,cm,secrets\n  kubectl logs web-0\n  kubectl scale deployment web --replicas=3      # held until a reviewer decides\n\nIn a third, as the human reviewer:\n\n  export KUBECONFIG={admin}\n  holdpoint approvals list\n  holdpoint approvals show ID\n  holdpoint approvals approve ID                 # or: deny ID --reason \"...\"\n  holdpoint freeze on --reason \"incident\"        # and: holdpoint freeze off\n\nWhat happened (the audit log):\n\n  holdpoint sessions list --config {config}\n  holdpoint sessions show SESSION --config {config} --bodies\n  holdpoint audit verify --config {config}\n\nMore kubeconfigs and tokens (stored; revoke with `holdpoint token revoke`):\n\n  holdpoint kubeconfig --config {config} --user my-agent --group agents --ttl 8h --out my-agent.kubeconfig\n  holdpoint token list --config {config}\n\nPress Ctrl-C to stop.",
        url = env.gateway.url(),
        admin_addr = env.gateway.admin_addr(),
        dir = dir.display(),
        config = env.config_file.display(),
    );
}
