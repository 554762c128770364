//! The emulator's built-in "container runtime": what runs when a client execs into or attaches
//! to a pod. There are no real processes; a tiny shell interprets a fixed set of built-ins
//! (`echo`, `cat`, `env`, `sh`, `ls`, `hostname`, `sleep`, `true`, `false`, `exit`, ...) over a
//! small read-only virtual filesystem, reading stdin and writing stdout/stderr through channels
//! that the WebSocket and SPDY transports connect to the client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kube_streams::TermSize;
use tokio::sync::{mpsc, watch};

/// The fixed fake service account token found at
/// `/var/run/secrets/kubernetes.io/serviceaccount/token` in every emulated container.
pub const SERVICE_ACCOUNT_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imt1YmUtZW11bGF0b3IifQ.\
eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmRlbW86ZGVmYXVsdCJ9.\
ZW11bGF0b3ItZmFrZS1zaWduYXR1cmU";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container a session runs in, extracted from the stored Pod.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub pod: String,
    pub namespace: String,
    pub name: String,
    /// Literal `env[].value` entries of the container spec.
    pub env: Vec<(String, String)>,
    pub pod_ip: String,
}

impl Container {
    /// Picks `requested` (or the first container) out of a Pod object.
    pub(crate) fn from_pod(
        pod: &serde_json::Value,
        requested: Option<&str>,
    ) -> Result<Self, String> {
        let pod_name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let containers = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let chosen = match requested.filter(|c| !c.is_empty()) {
            Some(name) => containers
                .iter()
                .find(|c| c["name"].as_str() == Some(name))
                .ok_or_else(|| format!("container {name} is not valid for pod {pod_name}"))?,
            None => containers
                .first()
                .ok_or_else(|| format!("pod {pod_name} does not have any containers"))?,
        };
        let env = chosen["env"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| {
                        Some((
                            v["name"].as_str()?.to_string(),
                            v["value"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            pod: pod_name,
            namespace,
            name: chosen["name"].as_str().unwrap_or_default().to_string(),
            env,
            pod_ip: pod["status"]["podIP"]
                .as_str()
                .unwrap_or("10.244.0.10")
                .to_string(),
        })
    }

    /// The read-only virtual filesystem: `(path, contents)`.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
        vec![
            ("/etc/hostname".into(), format!("{}\n", self.pod).into_bytes()),
            (
                "/etc/hosts".into(),
                format!(
                    "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
                    self.pod_ip, self.pod
                )
                .into_bytes(),
            ),
            (
                "/etc/os-release".into(),
                b"PRETTY_NAME=\"Emulated Linux 1.0\"\nNAME=\"Emulated Linux\"\nID=emulated\nVERSION_ID=1.0\n".to_vec(),
            ),
            (format!("{sa}/namespace"), self.namespace.clone().into_bytes()),
            (format!("{sa}/token"), SERVICE_ACCOUNT_TOKEN.as_bytes().to_vec()),
        ]
    }

    fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let path = normalize(path);
        self.files()
            .into_iter()
            .find(|(p, _)| *p == path)
            .map(|(_, c)| c)
    }

    /// Entries directly under directory `dir`, or `None` if `dir` is not a directory.
    fn list_dir(&self, dir: &str) -> Option<Vec<String>> {
        let dir = normalize(dir);
        let base = [
            "/bin", "/etc", "/home", "/proc", "/root", "/tmp", "/usr", "/var",
        ];
        let mut paths: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        paths.extend(self.files().into_iter().map(|(p, _)| p));
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let mut names: Vec<String> = paths
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty())
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        let exists = dir == "/" || base.contains(&dir.as_str());
        if names.is_empty() && !exists {
            return None;
        }
        names.sort();
        names.dedup();
        Some(names)
    }
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One chunk of process output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub container: Arc<Container>,
    /// The command for exec; empty means "the container's main process" (attach).
    pub argv: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
}

/// The transport's side of a running process.
#[derive(Debug)]
pub(crate) struct ProcessHandle {
    /// Feed stdin here; drop it (set to `None`) to signal end of input.
    pub stdin: Option<mpsc::UnboundedSender<Bytes>>,
    /// Publish terminal sizes here.
    pub resize: watch::Sender<Option<TermSize>>,
    /// Process output in order; yields `None` once the process has finished writing.
    pub output: mpsc::UnboundedReceiver<Output>,
    /// The exit code.
    pub exit: tokio::task::JoinHandle<i32>,
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        self.exit.abort();
    }
}

impl ProcessHandle {
    /// Hands stdin data to the process (ignored once stdin is closed).
    pub(crate) fn write_stdin(&self, data: &[u8]) {
        if let Some(tx) = &self.stdin {
            let _ = tx.send(Bytes::copy_from_slice(data));
        }
    }

    /// Waits for the exit code after `output` yielded `None`.
    pub(crate) async fn wait(&mut self) -> i32 {
        (&mut self.exit).await.unwrap_or(137)
    }
}

/// Starts the process described by `spec`.
pub(crate) fn spawn(spec: ProcessSpec) -> ProcessHandle {
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (resize_tx, resize_rx) = watch::channel(None);
    let mut env = vec![
        ("PATH".to_string(), PATH.to_string()),
        ("HOSTNAME".to_string(), spec.container.pod.clone()),
    ];
    if spec.tty {
        env.push(("TERM".to_string(), "xterm".to_string()));
    }
    env.extend(spec.container.env.iter().cloned());
    env.push(("HOME".to_string(), "/root".to_string()));
    let mut proc = Proc {
        c: spec.container.clone(),
        stdin: stdin_rx,
        pending: Vec::new(),
        eof: false,
        out: out_tx,
        tty: spec.tty,
        size: resize_rx,
        env,
        status: 0,
        redirect: [Sink::Stdout, Sink::Stderr],
    };
    let argv = spec.argv;
    let exit = tokio::spawn(async move {
        if argv.is_empty() {
            proc.main_process(spec.stdin).await
        } else {
            match proc.run_argv(&argv).await {
                Flow::Next(code) | Flow::Exit(code) => code,
            }
        }
    });
    ProcessHandle {
        stdin: spec.stdin.then_some(stdin_tx),
        resize: resize_tx,
        output: out_rx,
        exit,
    }
}

/// Whether the shell carries on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next(i32),
    Exit(i32),
}

struct Proc {
    c: Arc<Container>,
    stdin: mpsc::UnboundedReceiver<Bytes>,
    pending: Vec<u8>,
    eof: bool,
    out: mpsc::UnboundedSender<Output>,
    tty: bool,
    size: watch::Receiver<Option<TermSize>>,
    env: Vec<(String, String)>,
    status: i32,
    /// Where fd 1 and fd 2 currently go.
    redirect: [Sink; 2],
}

/// A destination of fd 1 or fd 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Stdout,
    Stderr,
    Null,
}

/// Marks a redirection word produced by [`parse_script`]: `"\0<fd><target>"`.
const REDIRECT_MARK: char = '\0';

impl Proc {
    fn emit(&self, data: &[u8], to_stderr: bool) {
        if data.is_empty() {
            return;
        }
        let data = if self.tty {
            // The terminal's output processing turns "\n" into "\r\n".
            let mut v = Vec::with_capacity(data.len() + 8);
            for (i, &b) in data.iter().enumerate() {
                if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
                    v.push(b'\r');
                }
                v.push(b);
            }
            Bytes::from(v)
        } else {
            Bytes::copy_from_slice(data)
        };
        let out = match self.redirect[usize::from(to_stderr)] {
            Sink::Null => return,
            Sink::Stderr if !self.tty => Output::Stderr(data),
            _ => Output::Stdout(data),
        };
        let _ = self.out.send(out);
    }

    fn print(&self, s: &str) {
        self.emit(s.as_bytes(), false);
    }

    fn eprint(&self, s: &str) {
        self.emit(s.as_bytes(), true);
    }

    /// Next raw chunk of stdin (pending bytes first), `None` at end of input.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        if self.eof {
            return None;
        }
        match self.stdin.recv().await {
            Some(b) => Some(b.to_vec()),
            None => {
                self.eof = true;
                None
            }
        }
    }

    /// Reads one line of input. With a tty this is a minimal line discipline: input is echoed,
    /// CR ends a line, DEL erases, Ctrl-C discards the line and Ctrl-D on an empty line is EOF.
    async fn read_line(&mut self) -> Option<String> {
        let mut line: Vec<u8> = Vec::new();
        loop {
            let Some(chunk) = self.next_chunk().await else {
                return (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned());
            };
            let mut iter = chunk.into_iter();
            let mut echo = Vec::new();
            let mut done = false;
            for b in iter.by_ref() {
                match b {
                    b'\n' | b'\r' => {
                        if self.tty {
                            echo.extend_from_slice(b"\r\n");
                        }
                        done = true;
                        break;
                    }
                    0x7f | 0x08 if self.tty => {
                        if line.pop().is_some() {
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                    }
                    0x03 if self.tty => {
                        echo.extend_from_slice(b"^C\r\n");
                        line.clear();
                    }
                    0x04 if self.tty && line.is_empty() => {
                        self.pending = iter.collect();
                        self.emit(&echo, false);
                        return None;
                    }
                    b => {
                        if self.tty {
                            echo.push(b);
                        }
                        line.push(b);
                    }
                }
            }
            self.pending = iter.collect();
            if !echo.is_empty() {
                let _ = self.out.send(Output::Stdout(Bytes::from(echo)));
            }
            if done {
                // In a tty, a CR directly followed by LF counts as one line end.
                if self.tty && self.pending.first() == Some(&b'\n') {
                    self.pending.remove(0);
                }
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        if name == "?" {
            return Some(self.status.to_string());
        }
        self.env
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn set_var(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The attached "main process": an interactive shell when stdin is attached, otherwise a
    /// couple of log-like lines.
    async fn main_process(&mut self, stdin: bool) -> i32 {
        if !stdin {
            self.print(&format!(
                "container {} of pod {}/{} is running (kube-emulator)\n",
                self.c.name, self.c.namespace, self.c.pod
            ));
            self.print("no stdin attached; nothing to do\n");
            return 0;
        }
        self.interactive().await
    }

    /// The `sh` read-eval loop over stdin; prints `$ ` prompts when a tty is attached.
    async fn interactive(&mut self) -> i32 {
        loop {
            if self.tty {
                self.print("$ ");
            }
            let Some(line) = self.read_line().await else {
                return self.status;
            };
            if let Flow::Exit(code) = self.run_script(&line).await {
                return code;
            }
        }
    }

    async fn run_script(&mut self, script: &str) -> Flow {
        let commands = match parse_script(script, |name| self.var(name)) {
            Ok(c) => c,
            Err(e) => {
                self.eprint(&format!("sh: {e}\n"));
                self.status = 2;
                return Flow::Next(2);
            }
        };
        let mut skip = false;
        for (argv, next_op) in commands {
            if !skip && !argv.is_empty() {
                match Box::pin(self.run_argv(&argv)).await {
                    Flow::Exit(code) => return Flow::Exit(code),
                    Flow::Next(code) => self.status = code,
                }
            }
            skip = match next_op {
                Op::Seq => false,
                Op::And => self.status != 0,
                Op::Or => self.status == 0,
            };
        }
        Flow::Next(self.status)
    }

    async fn run_argv(&mut self, argv: &[String]) -> Flow {
        if !argv.iter().any(|a| a.starts_with(REDIRECT_MARK)) {
            return self.run_plain(argv).await;
        }
        let saved = self.redirect;
        let mut plain = Vec::new();
        for word in argv {
            let Some(spec) = word.strip_prefix(REDIRECT_MARK) else {
                plain.push(word.clone());
                continue;
            };
            let (fd, target) = spec.split_at(1);
            let sink = match target {
                "&1" => self.redirect[0],
                "&2" => self.redirect[1],
                "/dev/null" => Sink::Null,
                "/dev/stdout" => Sink::Stdout,
                "/dev/stderr" => Sink::Stderr,
                other => {
                    self.redirect = saved;
                    self.eprint(&format!(
                        "sh: cannot create {other}: Read-only file system\n"
                    ));
                    return Flow::Next(2);
                }
            };
            self.redirect[usize::from(fd == "2")] = sink;
        }
        let flow = if plain.is_empty() {
            Flow::Next(0)
        } else {
            Box::pin(self.run_plain(&plain)).await
        };
        self.redirect = saved;
        flow
    }

    async fn run_plain(&mut self, argv: &[String]) -> Flow {
        let name = argv[0].rsplit('/').next().unwrap_or(&argv[0]).to_string();
        let args = &argv[1..];
        let code = match name.as_str() {
            "echo" => {
                let (newline, words) = match args.first().map(String::as_str) {
                    Some("-n") => (false, &args[1..]),
                    _ => (true, args),
                };
                let mut s = words.join(" ");
                if newline {
                    s.push('\n');
                }
                self.print(&s);
                0
            }
            "cat" => self.cat(args).await,
            "env" | "printenv" => {
                if let Some(var) = args.first().filter(|_| name == "printenv") {
                    match self.var(var) {
                        Some(v) => {
                            self.print(&format!("{v}\n"));
                            0
                        }
                        None => 1,
                    }
                } else {
                    let text: String = self.env.iter().map(|(n, v)| format!("{n}={v}\n")).collect();
                    self.print(&text);
                    0
                }
            }
            "sh" | "bash" | "ash" | "dash" => match args.first().map(String::as_str) {
                Some("-c") => match args.get(1) {
                    Some(script) => match Box::pin(self.run_script(script)).await {
                        Flow::Next(code) | Flow::Exit(code) => code,
                    },
                    None => {
                        self.eprint(&format!("{name}: -c: option requires an argument\n"));
                        2
                    }
                },
                Some(script_file) => {
                    self.eprint(&format!(
                        "{name}: 0: cannot open {script_file}: No such file\n"
                    ));
                    2
                }
                None => Box::pin(self.interactive()).await,
            },
            "ls" => self.ls(args),
            "hostname" => {
                self.print(&format!("{}\n", self.c.pod));
                0
            }
            "pwd" => {
                self.print("/\n");
                0
            }
            "whoami" => {
                self.print("root\n");
                0
            }
            "uname" => {
                let all = args.iter().any(|a| a == "-a");
                self.print(if all {
                    "Linux emulated 6.1.0-emulated #1 SMP x86_64 GNU/Linux\n"
                } else {
                    "Linux\n"
                });
                0
            }
            "stty" if args.first().map(String::as_str) == Some("size") => {
                if !self.tty {
                    self.eprint("stty: 'standard input': Inappropriate ioctl for device\n");
                    1
                } else {
                    let size = (*self.size.borrow()).unwrap_or(TermSize {
                        width: 80,
                        height: 24,
                    });
                    self.print(&format!("{} {}\n", size.height, size.width));
                    0
                }
            }
            "sleep" => self.sleep(args).await,
            "true" | ":" => 0,
            "false" => 1,
            "exit" => {
                let code = match args.first() {
                    None => self.status,
                    Some(a) => match a.parse::<i64>() {
                        Ok(n) => (n & 0xff) as i32,
                        Err(_) => {
                            self.eprint(&format!("sh: exit: Illegal number: {a}\n"));
                            2
                        }
                    },
                };
                return Flow::Exit(code);
            }
            "export" => {
                for a in args {
                    if let Some((n, v)) = a.split_once('=') {
                        self.set_var(n, v);
                    }
                }
                0
            }
            _ if args.is_empty() && is_assignment(&name) => {
                let (n, v) = argv[0].split_once('=').unwrap_or_default();
                self.set_var(n, v);
                0
            }
            _ => {
                self.eprint(&format!("sh: {}: not found\n", argv[0]));
                127
            }
        };
        Flow::Next(code)
    }

    async fn cat(&mut self, args: &[String]) -> i32 {
        let files: Vec<&String> = args
            .iter()
            .filter(|a| !a.starts_with('-') || *a == "-")
            .collect();
        if files.is_empty() || files.iter().all(|f| *f == "-") {
            self.copy_stdin().await;
            return 0;
        }
        let mut code = 0;
        for f in files {
            if f == "-" {
                self.copy_stdin().await;
                continue;
            }
            if self.c.list_dir(f).is_some() {
                self.eprint(&format!("cat: {f}: Is a directory\n"));
                code = 1;
                continue;
            }
            match self.c.read_file(f) {
                Some(content) => self.emit(&content, false),
                None => {
                    self.eprint(&format!("cat: {f}: No such file or directory\n"));
                    code = 1;
                }
            }
        }
        code
    }

    /// `cat` of stdin: copies input to output until end of input (line by line with a tty).
    async fn copy_stdin(&mut self) {
        if self.tty {
            while let Some(line) = self.read_line().await {
                self.print(&format!("{line}\n"));
            }
        } else {
            while let Some(chunk) = self.next_chunk().await {
                let _ = self.out.send(Output::Stdout(Bytes::from(chunk)));
            }
        }
    }

    fn ls(&mut self, args: &[String]) -> i32 {
        let targets: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        let targets: Vec<String> = if targets.is_empty() {
            vec!["/".to_string()]
        } else {
            targets.into_iter().cloned().collect()
        };
        let many = targets.len() > 1;
        let mut code = 0;
        let mut text = String::new();
        for (i, t) in targets.iter().enumerate() {
            if let Some(entries) = self.c.list_dir(t) {
                if many {
                    if i > 0 {
                        text.push('\n');
                    }
                    text.push_str(&format!("{t}:\n"));
                }
                for e in entries {
                    text.push_str(&e);
                    text.push('\n');
                }
            } else if self.c.read_file(t).is_some() {
                text.push_str(&format!("{t}\n"));
            } else {
                self.eprint(&format!(
                    "ls: cannot access '{t}': No such file or directory\n"
                ));
                code = 2;
            }
        }
        self.print(&text);
        code
    }

    async fn sleep(&mut self, args: &[String]) -> i32 {
        let Some(arg) = args.first() else {
            self.eprint("sleep: missing operand\n");
            return 1;
        };
        if arg == "infinity" {
            std::future::pending::<()>().await;
        }
        let (num, mult) = match arg.chars().last() {
            Some('s') => (&arg[..arg.len() - 1], 1.0),
            Some('m') => (&arg[..arg.len() - 1], 60.0),
            Some('h') => (&arg[..arg.len() - 1], 3600.0),
            _ => (arg.as_str(), 1.0),
        };
        match num.parse::<f64>() {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => {
                tokio::time::sleep(Duration::from_secs_f64(secs * mult)).await;
                0
            }
            _ => {
                self.eprint(&format!("sleep: invalid time interval '{arg}'\n"));
                1
            }
        }
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// How a command is joined to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Seq,
    And,
    Or,
}

/// Splits a shell script into commands (words after quote removal and `$VAR` expansion) and
/// the operator following each. Supports `'...'`, `"..."`, `\`, `;`, newlines, `&&`, `||`, `#`.
fn parse_script(
    script: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(Vec<String>, Op)>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let expand = |i: &mut usize, out: &mut String| {
        // chars[*i] == '$'
        let start = *i + 1;
        if start < chars.len() && chars[start] == '?' {
            out.push_str(&lookup("?").unwrap_or_default());
            *i = start + 1;
        } else if start < chars.len() && chars[start] == '{' {
            let end = chars[start..]
                .iter()
                .position(|&c| c == '}')
                .map(|p| start + p);
            match end {
                Some(end) => {
                    let name: String = chars[start + 1..end].iter().collect();
                    out.push_str(&lookup(&name).unwrap_or_default());
                    *i = end + 1;
                }
                None => {
                    out.push('$');
                    *i = start;
                }
            }
        } else {
            let mut end = start;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            if end == start {
                out.push('$');
            } else {
                let name: String = chars[start..end].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            *i = end;
        }
    };
    macro_rules! end_word {
        () => {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        };
    }
    macro_rules! end_command {
        ($op:expr) => {
            end_word!();
            commands.push((std::mem::take(&mut words), $op));
        };
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                end_word!();
                i += 1;
            }
            '\n' | ';' => {
                end_command!(Op::Seq);
                i += 1;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                end_command!(Op::And);
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                end_command!(Op::Or);
                i += 2;
            }
            '&' => {
                end_command!(Op::Seq);
                i += 1;
            }
            '|' => return Err("pipelines are not supported by the emulated shell".into()),
            '>' if !in_word || word == "1" || word == "2" => {
                let fd = if word == "2" { '2' } else { '1' };
                word.clear();
                in_word = false;
                i += 1;
                let mut target = String::new();
                if chars.get(i) == Some(&'&') {
                    target.push('&');
                    i += 1;
                } else {
                    while matches!(chars.get(i), Some(' ' | '\t')) {
                        i += 1;
                    }
                }
                while let Some(&c) = chars.get(i) {
                    if c.is_whitespace() || matches!(c, ';' | '&' | '|') {
                        break;
                    }
                    target.push(c);
                    i += 1;
                }
                if target.is_empty() || target == "&" {
                    return Err("syntax error: redirection without a target".into());
                }
                words.push(format!("{REDIRECT_MARK}{fd}{target}"));
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unterminated quoted string")?;
                word.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => expand(&mut i, &mut word),
                        Some(&c) => {
                            word.push(c);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(&next) = chars.get(i + 1)
                    && next != '\n'
                {
                    word.push(next);
                }
                i += 2;
            }
            '$' => {
                let before = word.len();
                expand(&mut i, &mut word);
                // An unquoted expansion that yields nothing does not create a word.
                in_word = in_word || word.len() > before;
            }
            c => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    commands.push((words, Op::Seq));
    commands.retain(|(w, _)| !w.is_empty());
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Arc<Container> {
        let pod = serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "demo"},
            "spec": {"containers": [
                {"name": "app", "env": [
                    {"name": "DB_PASSWORD", "value": "hunter2"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                ]},
                {"name": "sidecar"}
            ]}
        });
        Arc::new(Container::from_pod(&pod, None).unwrap())
    }

    async fn run(argv: &[&str], stdin: Option<&[u8]>, tty: bool) -> (String, String, i32) {
        let mut h = spawn(ProcessSpec {
            container: container(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.is_some(),
            tty,
        });
        if let Some(data) = stdin {
            h.write_stdin(data);
        }
        h.stdin = None;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(o) = h.output.recv().await {
            match o {
                Output::Stdout(b) => out.extend_from_slice(&b),
                Output::Stderr(b) => err.extend_from_slice(&b),
            }
        }
        let code = h.wait().await;
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            code,
        )
    }

    #[test]
    fn container_defaulting_and_validation() {
        let c = container();
        assert_eq!(c.name, "app");
        assert_eq!(
            c.env,
            vec![("DB_PASSWORD".to_string(), "hunter2".to_string())]
        );
        let pod =
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            Container::from_pod(&pod, Some("nope")).unwrap_err(),
            "container nope is not valid for pod p"
        );
    }

    #[tokio::test]
    async fn echo_cat_env_and_exit_codes() {
        assert_eq!(
            run(&["echo", "hello", "world"], None, false).await,
            ("hello world\n".into(), "".into(), 0)
        );
        assert_eq!(
            run(&["cat", "/etc/hostname"], None, false).await.0,
            "web-0\n"
        );
        assert_eq!(
            run(
                &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
                None,
                false
            )
            .await
            .0,
            SERVICE_ACCOUNT_TOKEN
        );
        let (out, _, _) = run(&["env"], None, false).await;
        assert!(
            out.contains("DB_PASSWORD=hunter2\n") && out.contains("HOSTNAME=web-0\n"),
            "{out}"
        );
        assert_eq!(run(&["false"], None, false).await.2, 1);
        let (_, err, code) = run(&["nosuchcmd"], None, false).await;
        assert_eq!((err.as_str(), code), ("sh: nosuchcmd: not found\n", 127));
        let (_, err, code) = run(&["cat", "/nope"], None, false).await;
        assert_eq!(
            (err.as_str(), code),
            ("cat: /nope: No such file or directory\n", 1)
        );
        assert_eq!(
            run(&["ls", "/etc"], None, false).await.0,
            "hostname\nhosts\nos-release\n"
        );
    }

    #[tokio::test]
    async fn shell_scripts() {
        assert_eq!(run(&["sh", "-c", "echo hi"], None, false).await.0, "hi\n");
        assert_eq!(
            run(
                &[
                    "sh",
                    "-c",
                    "echo \"$HOSTNAME\" 'a  b'; false || echo no && echo yes; exit 3"
                ],
                None,
                false
            )
            .await,
            ("web-0 a  b\nno\nyes\n".into(), "".into(), 3)
        );
        assert_eq!(
            run(
                &[
                    "sh",
                    "-c",
                    "echo err >&2; echo out 2>/dev/null; nope 2>&1; cat /x 2> /dev/null"
                ],
                None,
                false
            )
            .await,
            ("out\nsh: nope: not found\n".into(), "err\n".into(), 1)
        );
        assert_eq!(
            run(&["/bin/sh", "-c", "true && exit 7"], None, false)
                .await
                .2,
            7
        );
    }

    #[tokio::test]
    async fn cat_copies_stdin_and_sh_reads_commands() {
        let mut h = spawn(ProcessSpec {
            container: container(),
            argv: vec!["cat".into()],
            stdin: true,
            tty: false,
        });
        h.write_stdin(b"abc\x00\xff");
        h.write_stdin(b"def");
        h.stdin = None;
        let mut out = Vec::new();
        while let Some(Output::Stdout(b)) = h.output.recv().await {
            out.extend_from_slice(&b);
        }
        assert_eq!(out, b"abc\x00\xffdef");
        assert_eq!(h.wait().await, 0);
        assert_eq!(
            run(
                &["sh"],
                Some(b"echo one\nhostname\nexit 4\necho never\n"),
                false
            )
            .await,
            ("one\nweb-0\n".into(), "".into(), 4)
        );
    }

    #[tokio::test]
    async fn tty_echoes_input_prompts_and_merges_stderr() {
        let (out, err, code) = run(&["sh"], Some(b"echo hi\rnope\r"), true).await;
        assert_eq!(err, "");
        assert_eq!(code, 127);
        assert_eq!(
            out,
            "$ echo hi\r\nhi\r\n$ nope\r\nsh: nope: not found\r\n$ "
        );
    }
}
