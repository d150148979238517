//! The built `portcullis` binary as a child process, and its proxy.toml.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pki::TestPki;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// How long [`Proxy::start`] waits for every listener.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `portcullis ARGS...` to completion (for `check`, `gen-certs`, `acl dryrun`).
pub fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `"VmRSS"`, `"VmSize"`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{field}: N kB` line in {path}"))
}

/// A TOML basic string holding `text`.
pub fn toml_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML string for a path.
fn toml_path(path: &Path) -> String {
    toml_str(&path.to_string_lossy())
}

/// proxy.toml text: TLS on `127.0.0.1:0` with the pki's server cert, `client_ca` and
/// `client_auth = "required"`, upstream `upstream`, then `extra` (e.g. `[[users]]` tables).
pub fn base_config(pki: &TestPki, upstream: &str, extra: &str) -> String {
    base_config_with_server(pki, upstream, "", extra)
}

/// Like [`base_config`], with `server_extra` lines added inside `[server]`
/// (e.g. `plaintext_listen = "127.0.0.1:0"` or `shutdown_grace_s = 2`).
pub fn base_config_with_server(
    pki: &TestPki,
    upstream: &str,
    server_extra: &str,
    extra: &str,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n\n\
         [tls]\ncert = {}\nkey = {}\nclient_ca = {}\nclient_auth = \"required\"\n\n\
         [upstream]\naddress = {}\n\n{extra}\n",
        toml_path(&pki.server_cert()),
        toml_path(&pki.server_key()),
        toml_path(&pki.ca_pem()),
        toml_str(upstream),
    )
}

/// How many TLS and plaintext listeners a proxy.toml asks for.
fn listener_counts(toml_text: &str) -> (usize, usize) {
    let value: toml::Table = match toml_text.parse() {
        Ok(v) => v,
        // Not our job to judge the file: wait for one TLS listener and let the proxy fail.
        Err(_) => return (1, 0),
    };
    let count = |key: &str| match value.get("server").and_then(|s| s.get(key)) {
        Some(toml::Value::String(_)) => 1,
        Some(toml::Value::Array(list)) => list.len(),
        _ => 0,
    };
    (count("listen"), count("plaintext_listen"))
}

/// A running proxy; killed when dropped.
pub struct Proxy {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    tls: Vec<SocketAddr>,
    plaintext: Vec<SocketAddr>,
    config_path: PathBuf,
}

/// The `(kind, addr)` of a `listening` log line.
fn listening_line(line: &str) -> Option<(String, SocketAddr)> {
    if !line.starts_with('{') {
        // Text format: `... INFO portcullis::server: listening kind="tls" addr=127.0.0.1:1`.
        let rest = line.split_once(": listening ")?.1;
        let kind = rest.split_once("kind=\"")?.1.split_once('"')?.0.to_string();
        let addr = rest.split_once("addr=")?.1.split_whitespace().next()?;
        return Some((kind, addr.parse().ok()?));
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    let kind = fields.get("kind")?.as_str()?.to_string();
    let addr = fields.get("addr")?.as_str()?.parse().ok()?;
    Some((kind, addr))
}

impl Proxy {
    /// The bound address of `server.metrics_listen` (waits up to 10 s for its line).
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self
            .wait_for_log(START_TIMEOUT, |l| {
                listening_line(l).is_some_and(|(kind, _)| kind == "metrics")
            })
            .expect("no metrics listening line");
        listening_line(&line).expect("listening line").1
    }

    /// Writes `toml_text` to `dir/proxy.toml`, runs `portcullis run --config ... --log-format json`
    /// (`PORTCULLIS_LOG=debug` unless already set) and waits (10 s) until every listener
    /// has logged its bound address.
    pub fn start(toml_text: &str, dir: &Path) -> Proxy {
        Self::start_with_env(toml_text, dir, &[])
    }

    /// Like [`Proxy::start`], with extra environment variables for the child.
    pub fn start_with_env(toml_text: &str, dir: &Path, env: &[(&str, &str)]) -> Proxy {
        Self::start_logging(toml_text, dir, env, "json")
    }

    /// Like [`Proxy::start`], logging in the text format (what a terminal shows).
    pub fn start_text_logs(toml_text: &str, dir: &Path) -> Proxy {
        Self::start_logging(toml_text, dir, &[], "text")
    }

    fn start_logging(toml_text: &str, dir: &Path, env: &[(&str, &str)], format: &str) -> Proxy {
        let config_path = dir.join("proxy.toml");
        std::fs::write(&config_path, toml_text).expect("write proxy.toml");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(["--log-format", format]);
        if std::env::var_os("PORTCULLIS_LOG").is_none() {
            cmd.env("PORTCULLIS_LOG", "debug");
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));

        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => sink.lock().expect("log lock").push(line),
                    Err(_) => break,
                }
            }
        });

        let mut proxy = Proxy {
            child,
            logs,
            tls: Vec::new(),
            plaintext: Vec::new(),
            config_path,
        };
        proxy.wait_listening(listener_counts(toml_text));
        proxy
    }

    fn wait_listening(&mut self, (want_tls, want_plain): (usize, usize)) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (mut tls, mut plain) = (Vec::new(), Vec::new());
            for line in self.logs() {
                match listening_line(&line) {
                    Some((kind, addr)) if kind == "tls" => tls.push(addr),
                    Some((kind, addr)) if kind == "plaintext" => plain.push(addr),
                    _ => {}
                }
            }
            if tls.len() >= want_tls && plain.len() >= want_plain && tls.len() + plain.len() > 0 {
                self.tls = tls;
                self.plaintext = plain;
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                panic!(
                    "portcullis exited ({status}) before listening; stderr:\n{}",
                    self.logs().join("\n")
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "portcullis did not log {want_tls} tls + {want_plain} plaintext \
                     `listening` lines within {START_TIMEOUT:?}; stderr:\n{}",
                    self.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first TLS listener's bound address.
    pub fn tls_addr(&self) -> SocketAddr {
        *self.tls.first().expect("proxy has no TLS listener")
    }

    /// Every TLS listener's bound address, in log order.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls
    }

    /// The first plaintext listener's bound address, if any.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext.first().copied()
    }

    /// The `proxy.toml` path (rewrite it, then [`Proxy::sighup`], to test reload).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Stderr lines so far parsed as JSON (non-JSON lines are skipped).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits up to `timeout` for a stderr line matching `pred`; returns it.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`"TERM"`, `"HUP"`, `"INT"`, `"KILL"`) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.child.id());
    }

    /// SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// SIGHUP (reload).
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {head}"));
    (status, body.to_string())
}

/// The value of one sample (`name{labels}` exactly as exposed) in `/metrics` text; 0 if absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("sample value"))
}

/// Scrapes the proxy's `/metrics` and returns `sample`'s value.
pub async fn scrape(proxy: &Proxy, sample: &str) -> f64 {
    let (status, body) = http_get(proxy.metrics_addr(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    metric(&body, sample)
}
