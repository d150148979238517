//! A Sentinel deployment on loopback: a master, a replica and three sentinels
//! (`redis-server sentinel.conf --sentinel`, `down-after-milliseconds 1000`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{RedisServer, REDIS_SERVER};
use super::resp::RespConn;

/// The master's name in the sentinels' configuration.
pub const MASTER_NAME: &str = "mymaster";

/// One sentinel process; killed when dropped.
pub struct Sentinel {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if port != 6379 {
            return port;
        }
    }
}

impl Sentinel {
    /// A sentinel on a free port watching the master at `master_port` (quorum 2).
    pub fn start(master_port: u16) -> Sentinel {
        Self::start_on(free_port(), master_port)
    }

    /// A sentinel on `port` (e.g. one that was down until now).
    pub fn start_on(port: u16, master_port: u16) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir for sentinel");
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 2000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let mut sentinel = Sentinel {
            port,
            child: None,
            dir,
        };
        sentinel.spawn(conf);
        sentinel
    }

    fn spawn(&mut self, conf: PathBuf) {
        let log = std::fs::File::create(self.dir.path().join("sentinel.log")).expect("log");
        let child = Command::new(REDIS_SERVER)
            .arg(conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("redis-server --sentinel");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sentinel on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The master's port this sentinel names now.
    pub async fn master_port(&self) -> Option<u16> {
        let mut c = RespConn::connect_tcp(&self.addr()).await.ok()?;
        let reply = c
            .cmd_str(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
            .await;
        let port = reply.as_array()?.get(1)?.as_bytes()?.to_vec();
        String::from_utf8(port).ok()?.parse().ok()
    }

    /// A field of `SENTINEL MASTER` (e.g. `num-slaves`).
    async fn master_field(&self, field: &str) -> Option<String> {
        let mut c = RespConn::connect_tcp(&self.addr()).await.ok()?;
        let reply = c.cmd_str(&["SENTINEL", "MASTER", MASTER_NAME]).await;
        let items = reply.as_array()?;
        let i = items
            .iter()
            .position(|r| r.as_bytes() == Some(field.as_bytes()))?;
        String::from_utf8(items.get(i + 1)?.as_bytes()?.to_vec()).ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A master, a replica of it and three sentinels watching them.
pub struct SentinelGroup {
    /// The first master (after a failover, the replica is the master).
    pub master: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The sentinels.
    pub sentinels: Vec<Sentinel>,
}

impl SentinelGroup {
    /// Starts everything and waits until the sentinels know the replica and
    /// each other (a failover can then happen).
    pub async fn start() -> SentinelGroup {
        let master = RedisServer::start();
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]);
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port)).collect();
        let group = SentinelGroup {
            master,
            replica,
            sentinels,
        };
        group.wait_settled().await;
        group
    }

    /// Waits (up to 20 s) until every sentinel sees a replica and two other sentinels.
    pub async fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut settled = true;
            for s in &self.sentinels {
                let slaves = s.master_field("num-slaves").await;
                let others = s.master_field("num-other-sentinels").await;
                settled &= slaves.as_deref() == Some("1") && others.as_deref() == Some("2");
            }
            if settled {
                return;
            }
            assert!(Instant::now() < deadline, "the sentinels did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `127.0.0.1:PORT` of each sentinel.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }

    /// Waits (up to `limit`) until a sentinel names `port` as the master.
    pub async fn wait_master(&self, port: u16, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            for s in &self.sentinels {
                if s.master_port().await == Some(port) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}
