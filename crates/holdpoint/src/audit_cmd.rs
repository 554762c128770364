//! `holdpoint audit verify|export|public-key` and `holdpoint sessions list|show|replay`: the audit
//! log, read straight from the store named by the gateway's config (the operator's view; the
//! same lists and exports are on the admin listener for auditors, `/v1/audit/...`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use holdpoint_gateway::audit::query::{self, Selection};
use holdpoint_gateway::config::Config;
use holdpoint_store::{AuditPublicKey, AuditSigner, Store};

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The gateway's config (for its store and its checkpoint key).
    #[arg(long)]
    pub config: PathBuf,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<(Config, Store)> {
        let config = Config::load(&self.config)?;
        let store = Store::open(&config.store_url())
            .await
            .context("opening the store")?;
        Ok((config, store))
    }
}

/// `holdpoint audit ...`
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain and the signed checkpoints; report the first edited, deleted,
    /// inserted, reordered or truncated event. Exit code 0: the log holds; 1: it does not.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Start at the newest signed checkpoint before this time (RFC 3339, or a duration
        /// back from now: 1h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Trust this checkpoint key (base64, or a file holding it; repeat for several).
        /// Default: the key in the gateway's data directory (`audit.signing_key_file`).
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stream the events out as JSON lines (with a progress count on a terminal).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// `jsonl` (Holdpoint's events with chain positions and masked bodies) or `k8s-audit`
        /// (plain audit.k8s.io/v1 Events, Holdpoint's fields as annotations).
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Only events from this time on (RFC 3339, or a duration back from now).
        #[arg(long)]
        since: Option<String>,
        /// Only this caller's.
        #[arg(long)]
        user: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the checkpoint key's public half (base64), for `verify --public-key` elsewhere.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Holdpoint's events.
    Jsonl,
    /// audit.k8s.io/v1 Events.
    K8sAudit,
}

/// `holdpoint sessions ...`
#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// One line per session: who, when, commands, requests, mutations, approvals, denials.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this caller's sessions.
        #[arg(long)]
        user: Option<String>,
        /// Only sessions with events from this time on (RFC 3339, or 1h, 7d, ...).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (newest first).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A session's timeline: a line per request; `--bodies` adds the masked bodies as YAML.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Session id (from `sessions list`).
        id: String,
        /// Add the masked request and response bodies.
        #[arg(long)]
        bodies: bool,
    },
    /// Play a session's exec/attach recordings with their timing, and print its API requests
    /// as `kubectl -v=6` shows them; `--export DIR` writes the casts and the events instead.
    Replay {
        #[command(flatten)]
        store: StoreArgs,
        /// Session id.
        id: String,
        /// Play this many times faster.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Write `<n>-<auditID>.cast` (asciinema v2) and `events.jsonl` here.
        #[arg(long)]
        export: Option<PathBuf>,
    },
}

/// The keys `verify` trusts.
fn trusted_keys(config: &Config, given: &[String]) -> anyhow::Result<Vec<AuditPublicKey>> {
    if given.is_empty() {
        let path = config.audit.signing_key_path(&config.data_dir);
        let signer = AuditSigner::load(&path).with_context(|| {
            format!(
                "no --public-key, and the checkpoint key {} cannot be read",
                path.display()
            )
        })?;
        return Ok(vec![signer.public_key().clone()]);
    }
    given
        .iter()
        .map(|k| {
            let text = if Path::new(k).is_file() {
                std::fs::read_to_string(k).with_context(|| format!("reading {k}"))?
            } else {
                k.clone()
            };
            Ok(AuditPublicKey::from_base64(&text)?)
        })
        .collect()
}

fn since(text: Option<&str>) -> anyhow::Result<Option<jiff::Timestamp>> {
    text.map(|t| query::parse_since(t, jiff::Timestamp::now()))
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// Runs `holdpoint audit ...`; returns the exit code.
pub async fn audit(command: AuditCommand) -> anyhow::Result<i32> {
    match command {
        AuditCommand::Verify {
            store,
            since: since_text,
            public_keys,
            json,
        } => {
            let (config, store) = store.open().await?;
            let keys = trusted_keys(&config, &public_keys)?;
            let report = store
                .verify_audit(&keys, since(since_text.as_deref())?)
                .await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_report(&report));
            }
            Ok(if report.holds() { 0 } else { 1 })
        }
        AuditCommand::Export {
            store,
            format,
            since: since_text,
            user,
            out,
        } => {
            let (_, store) = store.open().await?;
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let progress = std::io::stderr().is_terminal();
            let mut n: u64 = 0;
            let mut failed = None;
            query::walk(
                &store,
                &Selection {
                    since: since(since_text.as_deref())?,
                    user,
                    ..Default::default()
                },
                |s| {
                    let line = match format {
                        ExportFormat::Jsonl => query::to_jsonl(&s),
                        ExportFormat::K8sAudit => query::to_k8s(&s),
                    };
                    if let Err(e) = writeln!(sink, "{line}") {
                        failed = Some(e);
                        return Ok(false);
                    }
                    n += 1;
                    if progress && n.is_multiple_of(1000) {
                        eprint!("\rexported {n} events");
                    }
                    Ok(true)
                },
            )
            .await?;
            store.close().await;
            if let Some(e) = failed {
                return Err(e.into());
            }
            sink.flush()?;
            if progress {
                eprintln!("\rexported {n} events");
            }
            Ok(0)
        }
        AuditCommand::PublicKey { store } => {
            let config = Config::load(&store.config)?;
            let path = config.audit.signing_key_path(&config.data_dir);
            let signer = AuditSigner::load(&path)
                .with_context(|| format!("reading the checkpoint key {}", path.display()))?;
            println!("{}", signer.public_key().to_base64());
            Ok(0)
        }
    }
}

/// The text report of `audit verify`.
pub fn render_report(r: &holdpoint_store::VerifyReport) -> String {
    let mut out = String::new();
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" ({a}..={b})"),
        _ => String::new(),
    };
    if r.holds() {
        out.push_str(&format!("audit log holds: {} events{range}", r.events));
    } else {
        out.push_str(&format!(
            "audit log does NOT hold: {}{} problem(s) in {} events{range}",
            r.problems.len(),
            if r.more_problems { "+" } else { "" },
            r.events
        ));
    }
    if r.checkpoints_unverified {
        out.push_str("; checkpoints not verified (no key)\n");
    } else {
        out.push_str(&format!(
            "; {} checkpoints verified{}\n",
            r.checkpoints,
            r.last_checkpoint
                .map(|c| format!(", the last at event {c}"))
                .unwrap_or_default()
        ));
        let tail = r.unsigned_tail();
        if tail > 0 {
            out.push_str(&format!(
                "{tail} events after the last checkpoint are protected by the hash chain only\n"
            ));
        }
    }
    for p in &r.problems {
        out.push_str(&format!("  event {}: {}: {}\n", p.seq, p.kind, p.detail));
    }
    out
}

/// Runs `holdpoint sessions ...`.
pub async fn sessions(command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::List {
            store,
            user,
            since: since_text,
            limit,
            json,
        } => {
            let (_, store) = store.open().await?;
            let list = query::sessions(
                &store,
                &Selection {
                    since: since(since_text.as_deref())?,
                    user,
                    ..Default::default()
                },
                limit,
            )
            .await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render_sessions(&list));
            }
        }
        SessionsCommand::Show { store, id, bodies } => {
            let (_, store) = store.open().await?;
            let events = query::session(&store, &id, bodies).await?;
            store.close().await;
            print!("{}", query::timeline(&events, bodies));
        }
        SessionsCommand::Replay {
            store,
            id,
            speed,
            export,
        } => {
            if speed <= 0.0 || !speed.is_finite() {
                bail!("--speed must be positive");
            }
            let (config, store) = store.open().await?;
            let events = query::session(&store, &id, true).await?;
            store.close().await;
            match export {
                Some(dir) => export_session(&events, &dir)?,
                None => {
                    let server = format!("https://{}", config.listen);
                    replay(&events, speed, &server).await?
                }
            }
        }
    }
    Ok(())
}

/// One line per session.
pub fn render_sessions(list: &[query::SessionSummary]) -> String {
    let mut out = format!(
        "{:<20} {:<20} {:<20} {:<20} {:>5} {:>4} {:>4} {:>4}  {}\n",
        "SESSION", "USER", "FIRST", "LAST", "REQS", "MUT", "APPR", "DENY", "COMMANDS"
    );
    let ts = |t: Option<jiff::Timestamp>| {
        t.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    for s in list {
        out.push_str(&format!(
            "{:<20} {:<20} {:<20} {:<20} {:>5} {:>4} {:>4} {:>4}  {}\n",
            s.id,
            s.users.join(","),
            ts(s.first),
            ts(s.last),
            s.requests,
            s.mutations,
            s.approvals.len(),
            s.denials,
            s.commands.join("; ")
        ));
    }
    out
}

fn export_session(events: &[query::Stored], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut lines = String::new();
    let mut casts = 0;
    for s in events {
        lines.push_str(&query::to_jsonl(s).to_string());
        lines.push('\n');
        if let Some(cast) = s.cast() {
            casts += 1;
            let path = dir.join(format!("{casts}-{}.cast", s.row.audit_id));
            std::fs::write(&path, cast).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let path = dir.join("events.jsonl");
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} events and {casts} recordings to {}",
        events.len(),
        dir.display()
    );
    Ok(())
}

async fn replay(events: &[query::Stored], speed: f64, server: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let api = query::kubectl_lines(events, server);
    if !api.is_empty() {
        stdout.write_all(api.as_bytes())?;
    }
    for s in events {
        let Some(cast) = s.cast() else { continue };
        writeln!(
            stdout,
            "--- {} {} ({})",
            s.event.user.username, s.event.request_uri, s.row.audit_id
        )?;
        let mut last = 0.0;
        for (t, code, data) in query::cast_events(&cast) {
            let wait = ((t - last) / speed).max(0.0);
            last = t;
            if wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(wait.min(60.0))).await;
            }
            if code == "o" {
                stdout.write_all(data.as_bytes())?;
                stdout.flush()?;
            }
        }
        writeln!(stdout)?;
    }
    Ok(())
}
