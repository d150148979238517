//! A real `redis-server` child process on a free loopback port or a unix socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the Debian package installs Redis 7.0.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    /// The TCP port (0 for a unix-socket-only server).
    pub port: u16,
    child: Option<Child>,
    unix: Option<PathBuf>,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    /// Only a TLS port: readiness is read from the log alone.
    tls_only: bool,
}

/// A loopback port that was free a moment ago (never 6379).
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if port != 6379 {
            return port;
        }
    }
}

/// Sends PING over `stream` and checks for `+PONG` (or `-NOAUTH` under `--requirepass`).
fn ping<S: Read + Write + SetTimeout>(mut stream: S) -> bool {
    let _ = stream.set_timeout();
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && line.len() < 256 {
        if stream.read_exact(&mut byte).is_err() {
            return false;
        }
        line.push(byte[0]);
    }
    line.starts_with(b"+PONG") || line.starts_with(b"-NOAUTH")
}

/// What redis-server logs (any case) once it accepts connections: "Ready to accept
/// connections" on TCP, "The server is now ready to accept connections at PATH" on a socket.
const READY_LINE: &str = "ready to accept connections";

/// Read/write timeouts for the readiness probe.
trait SetTimeout {
    fn set_timeout(&self) -> std::io::Result<()>;
}
impl SetTimeout for TcpStream {
    fn set_timeout(&self) -> std::io::Result<()> {
        self.set_read_timeout(Some(Duration::from_secs(1)))
    }
}
impl SetTimeout for UnixStream {
    fn set_timeout(&self) -> std::io::Result<()> {
        self.set_read_timeout(Some(Duration::from_secs(1)))
    }
}

impl RedisServer {
    /// Starts a plain redis-server on a free loopback port.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts redis-server on a free loopback port with extra arguments
    /// (e.g. `&["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir for redis");
            let mut server = Self::spawn(dir, port, None, extra);
            if server.wait_ready(0) {
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("redis-server did not start on a free port; last log:\n{last_log}");
    }

    /// Starts redis-server on `port` (chosen by the caller, e.g. with its
    /// cluster bus port free too) with extra arguments.
    pub fn start_on_port(port: &str, extra: &[&str]) -> RedisServer {
        let port: u16 = port.parse().expect("a port number");
        let dir = tempfile::tempdir().expect("tempdir for redis");
        let mut server = Self::spawn(dir, port, None, extra);
        if server.wait_ready(0) {
            return server;
        }
        let log = server.log();
        server.kill();
        panic!("redis-server did not start on port {port}:\n{log}");
    }

    /// Starts a redis-server that speaks only TLS, on a free loopback port
    /// (`port`); `extra` names its certificate files (`--tls-cert-file` ...).
    pub fn start_tls(extra: &[&str]) -> RedisServer {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir for redis");
            let port_arg = port.to_string();
            let mut args = vec!["--port", "0", "--tls-port", port_arg.as_str()];
            args.extend_from_slice(extra);
            let mut server = Self::spawn(dir, port, None, &args);
            server.tls_only = true;
            if server.wait_ready(0) {
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("TLS redis-server did not start; last log:\n{last_log}");
    }

    /// Starts redis-server listening only on a unix socket in a temporary directory.
    pub fn start_unix() -> RedisServer {
        Self::start_unix_with(&[])
    }

    /// Like [`RedisServer::start_unix`], with extra arguments.
    pub fn start_unix_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir for redis");
        let socket = dir.path().join("redis.sock");
        let mut server = Self::spawn(dir, 0, Some(socket.clone()), extra);
        if server.wait_ready(0) {
            return server;
        }
        let log = server.log();
        server.kill();
        panic!("redis-server did not start on {}:\n{log}", socket.display());
    }

    fn spawn(dir: tempfile::TempDir, port: u16, unix: Option<PathBuf>, extra: &[&str]) -> Self {
        let child = Self::spawn_child(dir.path(), port, unix.as_deref(), extra);
        RedisServer {
            port,
            child: Some(child),
            unix,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            tls_only: false,
        }
    }

    fn spawn_child(dir: &Path, port: u16, unix: Option<&Path>, extra: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("redis.log"))
            .expect("redis log file");
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.arg("--port").arg(port.to_string());
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        cmd.args(["--daemonize", "no"]);
        cmd.arg("--dir").arg(dir);
        if let Some(socket) = unix {
            cmd.arg("--unixsocket").arg(socket);
            cmd.args(["--unixsocketperm", "700"]);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log));
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run {REDIS_SERVER}: {e}"))
    }

    /// Waits up to 5 s until our child logged (after byte `log_from` of its log) that it
    /// is ready and answers PING; false if it died or never got there. Checking our own
    /// log means a different server that happens to hold the port is never mistaken for ours.
    fn wait_ready(&mut self, log_from: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return false;
                }
            }
            let logged = self
                .log()
                .get(log_from..)
                .is_some_and(|l| l.to_ascii_lowercase().contains(READY_LINE));
            if logged && (self.tls_only || self.ping()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// One PING over a fresh connection.
    fn ping(&self) -> bool {
        match &self.unix {
            Some(socket) => UnixStream::connect(socket).map(ping).unwrap_or(false),
            None => TcpStream::connect(self.addr()).map(ping).unwrap_or(false),
        }
    }

    /// The directory it runs in (its log and any files it writes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The unix socket path (only for [`RedisServer::start_unix`]).
    pub fn unix_path(&self) -> &Path {
        self.unix
            .as_deref()
            .expect("unix_path() on a TCP redis server")
    }

    /// The upstream address for proxy.toml: `127.0.0.1:P` or `unix:/path`.
    pub fn upstream_address(&self) -> String {
        match &self.unix {
            Some(path) => format!("unix:{}", path.display()),
            None => self.addr(),
        }
    }

    /// Starts the server again (after [`RedisServer::kill`]) on the same port or socket,
    /// with the same arguments; an empty dataset. Panics if it does not come up in 5 s.
    pub fn restart(&mut self) {
        self.kill();
        let log_from = self.log().len();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let child = Self::spawn_child(self.dir.path(), self.port, self.unix.as_deref(), &extra);
        self.child = Some(child);
        let ready = self.wait_ready(log_from);
        assert!(ready, "redis-server did not restart:\n{}", self.log());
    }

    /// SIGKILLs the server now and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
