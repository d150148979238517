//! 240 clients at once through a pool of 2, each with a generated pipeline
//! of mixed commands (forwarded, denied, answered by the proxy, upstream
//! errors, large values, some transactions): each one's reply stream must be
//! exactly what a direct connection to Redis gives, and the upstream never
//! sees more than the pool plus the clients pinned by a transaction.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::*;

const CLIENTS: usize = 240;
const POOL: usize = 2;

/// Client `i`'s commands, on keys of its own; a transaction when `multi`.
fn workload(rng: &mut Rng, i: usize, multi: bool) -> Vec<Command> {
    let key = |name: &str| format!("c{i}:{name}");
    let mut cmds = vec![command(&["AUTH", "app", "pw"])];
    let n = 20 + rng.below(30);
    let at = rng.below(n);
    for step in 0..n {
        if multi && step == at {
            cmds.extend([
                command(&["MULTI"]),
                command(&["INCR", &key("t")]),
                command(&["GET", &key("a")]),
                command(&["EXEC"]),
            ]);
        }
        let value = match rng.below(10) {
            0 => "x".repeat(20_000 + rng.below(30_000)),
            1 => "bin\r\n\0\u{7f}".to_string(),
            _ => format!("v{}", rng.below(1000)),
        };
        let cmd: Vec<String> = match rng.below(15) {
            0 | 1 => vec!["SET".into(), key("a"), value],
            2 | 3 => vec!["GET".into(), key("a")],
            4 => vec!["INCR".into(), key("n")],
            5 => vec!["INCR".into(), key("a")],
            6 => vec!["RPUSH".into(), key("l"), value],
            7 => vec!["LRANGE".into(), key("l"), "0".into(), "-1".into()],
            8 => vec!["MGET".into(), key("a"), key("n"), key("none")],
            9 => vec!["GET".into(), format!("secret:{i}")],
            10 => vec!["FLUSHALL".into()],
            11 => vec!["ACL".into(), "WHOAMI".into()],
            12 => vec!["NOSUCHCOMMAND".into(), key("a")],
            13 => vec!["DEL".into(), key("l"), key("n")],
            _ => vec![rng.pick(&["PING", "ECHO", "SELECT"]).into(), "0".into()],
        };
        cmds.push(cmd.into_iter().map(String::into_bytes).collect());
    }
    cmds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_exactly_its_replies_in_order() {
    let ss = Arc::new(pooled(POOL, "").await);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    println!("seed {seed}");
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (addr, done, peak) = (ss.upstream.addr(), done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(connected_clients(&addr).await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut rng = Rng::new(seed);
    let mut pinned = 0;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let multi = rng.chance(10);
        pinned += usize::from(multi);
        let commands = workload(&mut Rng::new(rng.next()), i, multi);
        let ss = Arc::clone(&ss);
        tasks.push(tokio::spawn(
            async move { ss.same_alongside(&commands).await },
        ));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.expect("client task") {
            failures.push(e);
        }
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.expect("watcher");
    // The oracle's own log helps when it is the side that closed (seen twice
    // under a fully loaded CI machine, never alone; cause not found yet).
    let oracle_log = ss.oracle.log();
    let oracle_tail: Vec<&str> = oracle_log.lines().rev().take(15).collect();
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients differ (seed {seed}); the first:\n{}\noracle log (newest first):\n{}",
        failures.len(),
        failures[0],
        oracle_tail.join("\n")
    );
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= (POOL + pinned) as u64,
        "the upstream saw {peak} connections; pool {POOL} + {pinned} pinned"
    );
    assert!(peak >= 1, "the watcher saw no connection at all");
    assert_eq!(upstream_connections(&ss, "pooled").await, POOL as f64);
}
