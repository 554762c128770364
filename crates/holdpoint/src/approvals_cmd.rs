//! `holdpoint approvals|wait|freeze`: the reviewer API from the command line.
//!
//! Credentials come from a kubeconfig (as kubectl's): its user (token, client certificate or
//! exec plugin such as kubelogin) and its cluster's CA. The API lives on the gateway's admin
//! listener, whose URL is `--admin-url`, else `HOLDPOINT_ADMIN_URL`, else the cluster extension
//! `holdpoint.dev/admin-server` that `holdpoint kubeconfig` and `holdpoint demo` write.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::kubeconfig::ADMIN_SERVER_EXTENSION;

/// How to reach the reviewer API.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Kubeconfig with the caller's credential for the gateway (default: `~/.kube/config`).
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The admin listener's URL (default: from the kubeconfig's `holdpoint.dev/admin-server`
    /// cluster extension).
    #[arg(long, env = "HOLDPOINT_ADMIN_URL", global = true)]
    pub admin_url: Option<String>,
}

/// `holdpoint approvals ...`
#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// List approvals (newest first).
    List {
        /// Only this state (pending, approved, executed, denied, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only this requester.
        #[arg(long)]
        requester: Option<String>,
        /// Only this namespace.
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one approval: the request as YAML, the live object, the dry-run diff, risk flags.
    Show {
        /// Approval id (`ap-...`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve.
    Approve {
        /// Approval id.
        id: String,
        /// Why (optional).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny (a reason is required; the caller sees it).
    Deny {
        /// Approval id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending request.
    Cancel {
        /// Approval id.
        id: String,
        /// Why (optional).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `holdpoint freeze ...`
#[derive(Subcommand, Debug)]
pub enum FreezeCommand {
    /// Deny (or hold) every mutating request, whatever the policy says.
    On {
        /// Why (shown to callers).
        #[arg(long)]
        reason: String,
        /// `deny` (default) or `hold`.
        #[arg(long, default_value = "deny")]
        mode: String,
    },
    /// Lift the freeze.
    Off,
    /// Show the freeze.
    Status,
}

/// A client of the reviewer API.
pub struct ApiClient {
    client: kube::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client with the kubeconfig's credential, aimed at the admin listener.
    pub async fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let path = match &args.kubeconfig {
            Some(p) => p.clone(),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".kube/config"))
                .context("no --kubeconfig, no KUBECONFIG and no HOME")?,
        };
        let kc = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let admin = match &args.admin_url {
            Some(u) => u.clone(),
            None => admin_server_of(&kc).with_context(|| {
                format!(
                    "{} names no admin server: pass --admin-url or set HOLDPOINT_ADMIN_URL",
                    path.display()
                )
            })?,
        };
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("kubeconfig")?;
        config.cluster_url = admin
            .parse()
            .with_context(|| format!("admin url {admin:?}"))?;
        config.default_namespace = "default".into();
        let client = kube::Client::try_from(config).context("building the API client")?;
        Ok(Self { client })
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(bytes)?;
        let text = self.client.request_text(req).await.map_err(|e| match e {
            kube::Error::Api(s) => anyhow::anyhow!("{} ({})", s.message, s.code),
            other => anyhow::anyhow!(other),
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(http::Method::GET, path, None).await
    }

    /// GET, the answer as text (JSON lines of the audit export).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let req = http::Request::builder()
            .method(http::Method::GET)
            .uri(path)
            .body(Vec::new())?;
        self.client.request_text(req).await.map_err(|e| match e {
            kube::Error::Api(s) => anyhow::anyhow!("{} ({})", s.message, s.code),
            other => anyhow::anyhow!(other),
        })
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(http::Method::POST, path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(http::Method::PUT, path, Some(body)).await
    }
}

/// The admin server a kubeconfig's current cluster names in its Holdpoint extension.
pub fn admin_server_of(kc: &kube::config::Kubeconfig) -> Option<String> {
    let ctx_name = kc.current_context.as_deref()?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)?
        .context
        .as_ref()?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .as_ref()?;
    cluster
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.name == ADMIN_SERVER_EXTENSION)?
        .extension
        .get("server")?
        .as_str()
        .map(str::to_owned)
}

fn enc(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.~".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32 as u8)
            }
        })
        .collect()
}

fn line(a: &Value) -> String {
    let s = &a["summary"];
    let target = [
        s["namespace"].as_str().map(|n| format!("-n {n}")),
        Some(format!(
            "{}{}",
            s["resource"].as_str().unwrap_or(""),
            s["subresource"]
                .as_str()
                .map(|x| format!("/{x}"))
                .unwrap_or_default()
        )),
        s["name"].as_str().map(str::to_owned),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    format!(
        "{id}  {state:<9}  {user:<24}  {verb:<8} {target}  ({created})",
        id = a["id"].as_str().unwrap_or("?"),
        state = a["state"].as_str().unwrap_or("?"),
        user = a["requester"]["username"].as_str().unwrap_or("?"),
        verb = s["verb"].as_str().unwrap_or(""),
        created = a["createdAt"].as_str().unwrap_or(""),
    )
}

fn print_show(a: &Value) {
    println!("{}", line(a));
    let r = &a["requester"];
    println!(
        "requested by {} (groups {}) via {} from {}",
        r["username"].as_str().unwrap_or("?"),
        r["groups"],
        r["authenticator"].as_str().unwrap_or("?"),
        r["source"].as_str().unwrap_or("?")
    );
    if let Some(cmd) = a["kubectlCommand"].as_str() {
        println!("kubectl command: {cmd} (session {})", a["kubectlSession"]);
    }
    println!(
        "request: {} {}{}  rule: {}  quorum: {}  reviewers: {}  mode: {}  expires: {}",
        a["request"]["method"].as_str().unwrap_or(""),
        a["request"]["path"].as_str().unwrap_or(""),
        a["request"]["query"]
            .as_str()
            .filter(|q| !q.is_empty())
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        a["rule"].as_str().unwrap_or(""),
        a["quorum"],
        a["reviewers"],
        a["mode"].as_str().unwrap_or(""),
        a["expiresAt"].as_str().unwrap_or(""),
    );
    let review = &a["review"];
    if let Some(flags) = review["flags"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = flags.iter().filter_map(Value::as_str).collect();
        println!("FLAGS: {}", names.join(", "));
    }
    for (title, key) in [
        ("request body", "request"),
        ("live object", "live"),
        ("diff (live -> server dry run)", "diff"),
    ] {
        if let Some(text) = review[key].as_str().filter(|t| !t.is_empty()) {
            println!("--- {title}:\n{text}");
        }
    }
    if let Some(names) = review["wouldDelete"].as_array() {
        println!("--- would delete: {names:?}");
    }
    for v in a["votes"].as_array().into_iter().flatten() {
        println!(
            "vote: {} {} {}",
            v["reviewer"].as_str().unwrap_or(""),
            v["decision"].as_str().unwrap_or(""),
            v["reason"].as_str().unwrap_or("")
        );
    }
}

/// Runs `holdpoint approvals ...`.
pub async fn approvals(api: &ApiArgs, command: ApprovalsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api).await?;
    match command {
        ApprovalsCommand::List {
            state,
            requester,
            namespace,
            json,
        } => {
            let mut q = Vec::new();
            for (k, v) in [
                ("state", state),
                ("requester", requester),
                ("namespace", namespace),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(&v)));
                }
            }
            let out = client
                .get(&format!("/v1/approvals?{}", q.join("&")))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for a in out["items"].as_array().into_iter().flatten() {
                    println!("{}", line(a));
                }
            }
        }
        ApprovalsCommand::Show { id, json } => {
            let out = client.get(&format!("/v1/approvals/{}", enc(&id))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_show(&out);
            }
        }
        ApprovalsCommand::Approve { id, reason } => {
            let out = client
                .post(
                    &format!("/v1/approvals/{}/approve", enc(&id)),
                    json!({ "reason": reason }),
                )
                .await?;
            if out["counted"] == false {
                println!(
                    "{id}: you had already voted; nothing changed (state {})",
                    out["state"]
                );
            } else {
                println!(
                    "{id}: approved by you ({} of {} needed); state {}",
                    out["approvals"], out["quorum"], out["state"]
                );
            }
        }
        ApprovalsCommand::Deny { id, reason } => {
            let out = client
                .post(
                    &format!("/v1/approvals/{}/deny", enc(&id)),
                    json!({ "reason": reason }),
                )
                .await?;
            println!("{id}: {}", out["state"].as_str().unwrap_or("?"));
        }
        ApprovalsCommand::Cancel { id, reason } => {
            let out = client
                .post(
                    &format!("/v1/approvals/{}/cancel", enc(&id)),
                    json!({ "reason": reason }),
                )
                .await?;
            println!("{id}: {}", out["state"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// Runs `holdpoint wait ID`: returns the process exit code (0 only when the request was
/// executed and the upstream accepted it, or, for a `grant`, when it was approved).
pub async fn wait(api: &ApiArgs, id: &str, timeout: Option<Duration>) -> anyhow::Result<i32> {
    let client = ApiClient::new(api).await?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_secs(60)),
            None => Duration::from_secs(60),
        };
        let a = client
            .get(&format!(
                "/v1/approvals/{}/wait?timeout={}ms",
                enc(id),
                slice.as_millis().max(1)
            ))
            .await?;
        let state = a["state"].as_str().unwrap_or("?").to_owned();
        let grant = a["mode"] == "grant";
        let done = match state.as_str() {
            "pending" | "executing" => false,
            "approved" => grant,
            _ => true,
        };
        let out_of_time = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if !done && !out_of_time {
            continue;
        }
        return Ok(match state.as_str() {
            "executed" if !grant => {
                let status = a["result"]["status"].as_u64().unwrap_or(0);
                println!("{id}: executed; the API server answered {status}");
                if let Some(msg) = a["result"]["body"]["message"].as_str() {
                    println!("{msg}");
                }
                if (200..300).contains(&status) { 0 } else { 1 }
            }
            "approved" | "executed" => {
                println!(
                    "{id}: approved (grant): send the identical request again to run it, once"
                );
                0
            }
            "denied" => {
                println!(
                    "{id}: denied by {}: {}",
                    a["denial"]["reviewer"].as_str().unwrap_or("a reviewer"),
                    a["denial"]["reason"].as_str().unwrap_or("")
                );
                1
            }
            "pending" | "executing" => {
                println!("{id}: still {state} after the timeout");
                2
            }
            other => {
                println!("{id}: {other}");
                1
            }
        });
    }
}

/// Runs `holdpoint freeze ...`.
pub async fn freeze(api: &ApiArgs, command: FreezeCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api).await?;
    let out = match command {
        FreezeCommand::On { reason, mode } => {
            if mode != "deny" && mode != "hold" {
                bail!("--mode is deny or hold");
            }
            client
                .put(
                    "/v1/freeze",
                    json!({"on": true, "reason": reason, "mode": mode}),
                )
                .await?
        }
        FreezeCommand::Off => client.put("/v1/freeze", json!({"on": false})).await?,
        FreezeCommand::Status => client.get("/v1/freeze").await?,
    };
    if out["on"] == true {
        println!(
            "freeze ON ({}): {} (by {} at {})",
            out["mode"].as_str().unwrap_or("deny"),
            out["reason"].as_str().unwrap_or(""),
            out["by"].as_str().unwrap_or(""),
            out["at"].as_str().unwrap_or("")
        );
    } else {
        println!("freeze off");
    }
    Ok(())
}
