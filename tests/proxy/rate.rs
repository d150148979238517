//! Rates through the built proxy: a user's `rate` in reject and delay mode
//! (shared by all of the user's connections), and the per-IP failed-AUTH
//! throttle. Time only gives bounds here that GCRA guarantees (never more than
//! burst + rate x elapsed; a delay never shorter than the rate allows), never
//! speed targets.

use std::time::{Duration, Instant};

use crate::support::*;

const METRICS: &str = "metrics_listen = \"127.0.0.1:0\"";

/// alice: 50 commands/s, burst 10. carol: no rate. `u`: a password user.
fn config(pki: &TestPki, redis: &RedisServer, mode: &str, auth_rate: &str) -> String {
    let extra = format!(
        "[limits]\nrate_mode = \"{mode}\"\nauth_failures_per_ip = {auth_rate}\n\n\
         [[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n\
         rate = {{ ops_per_sec = 50, burst = 10 }}\n\n\
         [[users]]\nname = \"carol\"\nrules = \"on ~* &* +@all\"\n\n\
         [[users]]\nname = \"u\"\nrules = \"on >secret ~* +@all\"\n"
    );
    base_config_with_server(pki, &redis.addr(), METRICS, &extra)
}

fn pings(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| encode_command(&[b"PING"])).collect()
}

/// Sends `rounds` pipelines of `per_round` PINGs, `gap` apart, over `conns`
/// connections taking turns; returns (passed, rejected, elapsed).
async fn pound<S>(
    conns: &mut [RespConn<S>],
    rounds: usize,
    per_round: usize,
    gap: Duration,
) -> (usize, usize, Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let start = Instant::now();
    let (mut passed, mut rejected) = (0, 0);
    for round in 0..rounds {
        let conn = &mut conns[round % conns.len()];
        conn.send_raw(&pings(per_round)).await;
        for _ in 0..per_round {
            match conn.read_reply().await {
                Reply::Simple(s) if s == "PONG" => passed += 1,
                Reply::Error(e) if e == "ERR rate limit exceeded" => rejected += 1,
                other => panic!("unexpected reply {other:?}"),
            }
        }
        tokio::time::sleep(gap).await;
    }
    (passed, rejected, start.elapsed())
}

#[tokio::test]
async fn reject_mode_passes_rate_times_time_plus_burst_across_the_users_connections() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &config(&pki, &redis, "reject", "{ ops_per_sec = 0, burst = 1 }"),
        pki.dir(),
    );
    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    let mut alices = vec![
        resp_tls(proxy.tls_addr(), &pki, Some("alice")).await,
        resp_tls(proxy.tls_addr(), &pki, Some("alice")).await,
    ];
    let (passed, rejected, elapsed) = pound(&mut alices, 12, 40, Duration::from_millis(100)).await;
    assert_eq!(passed + rejected, 12 * 40);
    // GCRA never lets more through than burst + rate x elapsed, whichever
    // connection asks; on a busy machine fewer rounds fit, so the lower bound
    // only asks for the burst plus half the rate.
    let ceiling = 10.0 + 50.0 * elapsed.as_secs_f64() + 1.0;
    let floor = 10.0 + 25.0 * (elapsed.as_secs_f64() - 0.2);
    assert!(
        (passed as f64) <= ceiling && (passed as f64) >= floor,
        "passed {passed} in {elapsed:?}: expected between {floor:.0} and {ceiling:.0}"
    );
    // Another user is not limited, and alice's rejected commands never reached Redis.
    let mut many = pings(500);
    many.extend(encode_command(&[b"ECHO", b"done"]));
    carol.send_raw(&many).await;
    for _ in 0..500 {
        assert_eq!(carol.read_reply().await, Reply::Simple("PONG".into()));
    }
    assert_eq!(
        carol.read_reply().await,
        Reply::Bulk(Some(b"done".to_vec()))
    );
    let hits = scrape(&proxy, "portcullis_limit_hits_total{limit=\"rate_reject\"}").await;
    assert_eq!(hits as usize, rejected);
    // A rejected command inside MULTI fails the transaction like any refusal.
    let alice = &mut alices[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = encode_command(&[b"MULTI"]);
    tx.extend(pings(30));
    tx.extend(encode_command(&[b"EXEC"]));
    alice.send_raw(&tx).await;
    assert!(alice.read_reply().await.is_ok());
    let mut saw_reject = false;
    for _ in 0..30 {
        match alice.read_reply().await {
            Reply::Simple(s) => assert_eq!(s, "QUEUED"),
            Reply::Error(e) if e == "ERR rate limit exceeded" => saw_reject = true,
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_reject);
    assert_eq!(
        alice.read_reply().await,
        Reply::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
}

#[tokio::test]
async fn delay_mode_answers_everything_in_order_at_the_rate() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &config(&pki, &redis, "delay", "{ ops_per_sec = 0, burst = 1 }"),
        pki.dir(),
    );
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    const N: usize = 110;
    let batch: Vec<u8> = (0..N)
        .flat_map(|i| encode_command(&[b"ECHO", i.to_string().as_bytes()]))
        .collect();
    let start = Instant::now();
    alice.send_raw(&batch).await;
    // While alice is held back, carol is served at once.
    let t = Instant::now();
    assert_eq!(carol.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    let carol_took = t.elapsed();
    for i in 0..N {
        assert_eq!(
            alice.read_reply().await,
            Reply::Bulk(Some(i.to_string().into_bytes())),
            "reply {i} out of order or lost"
        );
    }
    let elapsed = start.elapsed();
    // (N - burst) tokens at 50/s: at least 2 s (minus a token's worth of rounding).
    let least = Duration::from_secs_f64((N - 10) as f64 / 50.0 - 0.03);
    assert!(
        elapsed >= least,
        "{N} commands took {elapsed:?}, rate allows no less than {least:?}"
    );
    assert!(
        carol_took < elapsed / 2,
        "carol waited {carol_took:?} behind alice's {elapsed:?}"
    );
    assert!(scrape(&proxy, "portcullis_limit_hits_total{limit=\"rate_delay\"}").await >= 1.0);
}

#[tokio::test]
async fn failed_auths_from_one_address_are_delayed_past_the_burst() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &config(&pki, &redis, "delay", "{ ops_per_sec = 4, burst = 3 }"),
        pki.dir(),
    );
    // bob's certificate names no user: it authenticates with AUTH.
    let mut guesser = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    let mut batch = Vec::new();
    for i in 0..7 {
        batch.extend(encode_command(&[
            b"AUTH",
            b"u",
            format!("guess{i}").as_bytes(),
        ]));
    }
    batch.extend(encode_command(&[b"AUTH", b"u", b"secret"]));
    batch.extend(encode_command(&[b"ECHO", b"in"]));
    let start = Instant::now();
    guesser.send_raw(&batch).await;
    let wrongpass =
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    for i in 0..7 {
        assert_eq!(guesser.read_reply().await, wrongpass, "guess {i}");
        if i == 2 {
            // The burst is answered at once.
            assert!(
                start.elapsed() < Duration::from_millis(700),
                "{:?}",
                start.elapsed()
            );
        }
    }
    assert!(
        guesser.read_reply().await.is_ok(),
        "the right password still works"
    );
    assert_eq!(
        guesser.read_reply().await,
        Reply::Bulk(Some(b"in".to_vec()))
    );
    // 4 failures past the burst of 3 at 4/s: at least ~1 s.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    // Another address is not held back, even right after the flood.
    let from = "127.0.0.2".parse().unwrap();
    let mut other = resp_tls_from(from, proxy.tls_addr(), &pki, Some("bob")).await;
    let t = Instant::now();
    for _ in 0..3 {
        assert_eq!(other.cmd_str(&["AUTH", "u", "nope"]).await, wrongpass);
    }
    assert!(other.cmd_str(&["AUTH", "u", "secret"]).await.is_ok());
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    let hits = scrape(
        &proxy,
        "portcullis_limit_hits_total{limit=\"auth_failures_per_ip\"}",
    )
    .await;
    assert!(hits >= 4.0, "{hits}");
    // The audit line names the user tried but never the password.
    let failed = proxy.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("authentication failed")
    });
    assert!(failed.is_some());
    let logs = proxy.logs().join("\n");
    assert!(!logs.contains("guess3") && !logs.contains("secret"));
}

/// alice at 100 commands/s, burst 20, kept in the upstream Redis.
fn shared_config(pki: &TestPki, redis: &RedisServer) -> String {
    let extra = "[limits]\nrate_mode = \"reject\"\nrate_scope = \"shared\"\n\n\
                 [[users]]\nname = \"alice\"\nrules = \"on ~* &* +@all\"\n\
                 rate = { ops_per_sec = 100, burst = 20 }\n";
    base_config_with_server(pki, &redis.addr(), METRICS, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_one_budget() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let other_dir = tempfile::tempdir().expect("dir");
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::copy(pki.dir().join(f), other_dir.path().join(f)).expect("copy");
    }
    let first = Proxy::start(&shared_config(&pki, &redis), pki.dir());
    let second = Proxy::start(&shared_config(&pki, &redis), other_dir.path());
    let mut a = vec![
        resp_tls(first.tls_addr(), &pki, Some("alice")).await,
        resp_tls(first.tls_addr(), &pki, Some("alice")).await,
    ];
    let mut b = vec![
        resp_tls(second.tls_addr(), &pki, Some("alice")).await,
        resp_tls(second.tls_addr(), &pki, Some("alice")).await,
    ];
    let start = std::time::Instant::now();
    let gap = Duration::from_millis(50);
    let ((pa, ra, _), (pb, rb, _)) =
        tokio::join!(pound(&mut a, 60, 20, gap), pound(&mut b, 60, 20, gap));
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(pa + ra + pb + rb, 2 * 60 * 20);
    let admitted = (pa + pb) as f64;
    let budget = 100.0 * elapsed + 20.0;
    println!("shared budget: {pa} + {pb} = {admitted} admitted in {elapsed:.2} s; rate x time + burst = {budget:.0}");
    // Together, within 5% of what one budget allows; and both processes were served.
    assert!(admitted <= budget * 1.05, "{admitted} > {budget:.0} + 5%");
    assert!(
        admitted >= budget * 0.85,
        "{admitted} far below {budget:.0}"
    );
    assert!(pa > 0 && pb > 0);
    // Each process alone would have admitted about the whole budget: the
    // store is what held them to one.
    let fallbacks = scrape(&first, "portcullis_rate_store_fallbacks_total").await
        + scrape(&second, "portcullis_rate_store_fallbacks_total").await;
    assert_eq!(fallbacks, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_falls_back_to_local_limits_and_comes_back() {
    let mut redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&shared_config(&pki, &redis), pki.dir());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert_eq!(alice.cmd_str(&["PING"]).await, Reply::Simple("PONG".into()));
    redis.kill();
    // (Its upstream connection is gone, and so is alice's connection.) A new
    // client: every command is answered; the local bucket decides, and the
    // upstream is down.
    assert!(alice.try_read_reply().await.is_err());
    let mut alice = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    alice.send_raw(&pings(40)).await;
    let mut limited = 0;
    for _ in 0..40 {
        match alice.read_reply().await {
            Reply::Error(e) if e == "ERR rate limit exceeded" => limited += 1,
            Reply::Error(e) if e.starts_with("ERR upstream") => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        limited >= 10,
        "the local bucket (burst 20) decided: {limited}"
    );
    assert!(scrape(&proxy, "portcullis_rate_store_fallbacks_total").await >= 1.0);
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("rate store unreachable"))
        .is_some());
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut fresh = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    let mut pong = false;
    for _ in 0..20 {
        if fresh.cmd_str(&["PING"]).await == Reply::Simple("PONG".into()) {
            pong = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pong);
    assert!(proxy
        .wait_for_log(Duration::from_secs(5), |l| l
            .contains("rate store reachable again"))
        .is_some());
}
