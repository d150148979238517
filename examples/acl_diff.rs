//! Long differential run of the ACL against a real redis-server: the generators of
//! `tests/acl_vs_redis.rs` for as many cases as asked.
//!
//! ```text
//! cargo run --release --example acl_diff -- [HOST:PORT] [--cases N] [--rules N] [--seed S]
//! ```
//!
//! Without HOST:PORT, starts `/usr/bin/redis-server` on a free loopback port (and
//! stops it at the end). `--cases` is the number of `ACL DRYRUN` commands of the
//! decision run (default 120000, 20 per user); `--rules` the number of random
//! `ACL SETUSER` rule lists of the parsing run (default 30000). Users are named
//! `acldiff<seed>_r<n>` / `acldiff<seed>_d<n>`, so a shared server is not disturbed
//! beyond the users added. Prints the counts and the first mismatches; exits 1 on
//! any mismatch.

#[path = "../tests/vs_redis/acl/gen.rs"]
#[allow(dead_code)]
mod gen;
#[path = "../tests/vs_redis/acl/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use harness::{Conn, Stats};

/// Commands per user in the decision run.
const PER_USER: usize = 20;
/// DRYRUN probes per user of the parsing run.
const PROBES: usize = 3;

struct Args {
    addr: Option<String>,
    cases: usize,
    rules: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: None,
        cases: 120_000,
        rules: 30_000,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "--cases" => args.cases = number("--cases")? as usize,
            "--rules" => args.rules = number("--rules")? as usize,
            "--seed" => args.seed = number("--seed")?,
            "-h" | "--help" => {
                return Err("usage: acl_diff [HOST:PORT] [--cases N] [--rules N] [--seed S]".into())
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ => args.addr = Some(a),
        }
    }
    Ok(args)
}

/// A redis-server child on a free port, killed on drop.
struct Server {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Server {
    fn start() -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("acl_diff_{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run /usr/bin/redis-server: {e}"))?;
        let addr = format!("127.0.0.1:{port}");
        let mut server = Server { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = Conn::connect(&server.addr) {
                if c.pipeline(&[vec![b"PING".to_vec()]]).is_ok() {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.stop();
        Err("redis-server did not come up".into())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn report(name: &str, stats: &Stats, took: Duration) {
    println!("{name}: {} in {took:.1?}", stats.summary());
    for m in &stats.shown {
        println!("--- mismatch\n{m}");
    }
}

fn run(args: &Args, addr: &str) -> Result<bool, String> {
    let mut conn = Conn::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    println!("acl_diff against {addr}, seed {}", args.seed);
    let prefix = format!("acldiff{}_", args.seed % 100_000);
    let mut rng = gen::Rng::new(args.seed);

    let started = Instant::now();
    let rules = harness::rules_run(
        &mut conn,
        &mut rng,
        &format!("{prefix}r"),
        args.rules,
        PROBES,
    )
    .map_err(|e| format!("redis I/O: {e}"))?;
    report(
        "rules (ACL SETUSER + DRYRUN probes)",
        &rules,
        started.elapsed(),
    );

    let started = Instant::now();
    let users = args.cases.div_ceil(PER_USER);
    let decisions =
        harness::dryrun_run(&mut conn, &mut rng, &format!("{prefix}d"), users, PER_USER)
            .map_err(|e| format!("redis I/O: {e}"))?;
    report("decisions (ACL DRYRUN)", &decisions, started.elapsed());

    Ok(rules.mismatches == 0 && decisions.mismatches == 0)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut server = None;
    let addr = match &args.addr {
        Some(a) => a.clone(),
        None => match Server::start() {
            Ok(s) => {
                let a = s.addr.clone();
                server = Some(s);
                a
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    let result = run(&args, &addr);
    drop(server);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
