//! The metrics HTTP endpoint over real sockets: routes, status lines, bodies,
//! readiness toggling, bad requests, and shutdown through the stop token.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use portcullis::metrics::{self, CommandResult, Limit, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Response {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(raw: &[u8]) -> Response {
    let raw = std::str::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line").to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Response {
        status_line,
        headers,
        body: body.to_owned(),
    }
}

/// One request on its own connection (`Connection: close`), read to EOF.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw)
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path).await
}

struct Endpoint {
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(metrics: Arc<Metrics>) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let ready = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ready);
    let stop = CancellationToken::new();
    let task = tokio::spawn(metrics::serve(
        listener,
        metrics,
        metrics::Probes {
            ready: Arc::new(move || {
                let ready = flag.load(Ordering::SeqCst);
                Box::pin(async move { ready }) as metrics::ReadyFuture
            }),
            status: None,
        },
        stop.clone(),
    ));
    Endpoint {
        addr,
        ready,
        stop,
        task,
    }
}

#[tokio::test]
async fn routes_status_lines_and_bodies() {
    let m = Arc::new(Metrics::new());
    m.limit_hit(Limit::MaxClients);
    m.limit_hit(Limit::MaxClients);
    m.command("alice", CommandResult::Forwarded);
    let ep = start(Arc::clone(&m)).await;

    let r = get(ep.addr, "/metrics").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.header("content-type"), Some(metrics::CONTENT_TYPE));
    assert!(r
        .body
        .lines()
        .any(|l| l == "portcullis_limit_hits_total{limit=\"max_clients\"} 2"));
    assert!(r
        .body
        .lines()
        .any(|l| l == "portcullis_commands_total{user=\"alice\",result=\"forwarded\"} 1"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);

    // Values are live: a later scrape sees later bumps.
    m.limit_hit(Limit::MaxClients);
    let r = get(ep.addr, "/metrics?x=1").await;
    assert!(r
        .body
        .lines()
        .any(|l| l == "portcullis_limit_hits_total{limit=\"max_clients\"} 3"));

    let r = get(ep.addr, "/healthz").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, "ok");

    let r = get(ep.addr, "/readyz").await;
    assert_eq!(r.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(r.body, "not ready");

    ep.ready.store(true, Ordering::SeqCst);
    let r = get(ep.addr, "/readyz").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, "ready");

    let r = get(ep.addr, "/nope").await;
    assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(r.body, "not found");

    let r = request(ep.addr, "POST", "/metrics").await;
    assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");

    let r = request(ep.addr, "HEAD", "/healthz").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, "");

    ep.stop.cancel();
    ep.task.await.expect("serve ends cleanly after stop");
}

#[tokio::test]
async fn garbage_only_ends_that_connection() {
    let ep = start(Arc::new(Metrics::new())).await;

    let mut stream = TcpStream::connect(ep.addr).await.expect("connect");
    stream
        .write_all(b"\x00\x01 not http at all\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    // Whatever hyper answers (at most a 400), the connection must end.
    let _ = stream.read_to_end(&mut raw).await;
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 400"),
        "{raw:?}"
    );

    let r = get(ep.addr, "/healthz").await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");

    ep.stop.cancel();
    ep.task.await.expect("serve ends cleanly after stop");
}

#[tokio::test]
async fn stop_closes_idle_keep_alive_connections_and_serve_returns() {
    let ep = start(Arc::new(Metrics::new())).await;

    let mut stream = TcpStream::connect(ep.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    // Read exactly one response: headers, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert_ne!(n, 0, "closed before a full response");
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = parse(&raw[..head_end]);
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    let len: usize = head
        .header("content-length")
        .expect("content-length")
        .parse()
        .expect("numeric content-length");
    while raw.len() < head_end + len {
        let n = stream.read(&mut buf).await.expect("read");
        assert_ne!(n, 0, "closed mid-body");
        raw.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&raw[head_end..], b"ok");

    // The connection is idle and kept alive; stop must close it and end serve.
    ep.stop.cancel();
    ep.task.await.expect("serve ends cleanly after stop");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{rest:?}");
}

/// Idle and slow connections (anyone who can reach the port) never keep a
/// liveness probe from being answered, and slow senders are cut off.
#[tokio::test]
async fn idle_and_slow_peers_never_starve_a_probe() {
    let endpoint = start(Arc::new(Metrics::new())).await;
    // Far more idle connections than the endpoint serves at once.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(endpoint.addr).await.expect("connect"));
    }
    // A slowloris: a header byte now and then, never finishing.
    let mut slow = TcpStream::connect(endpoint.addr).await.expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nX: ")
        .await
        .unwrap();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let probe = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            get(endpoint.addr, "/healthz"),
        )
        .await
        .expect("/healthz answered within 2 s despite idle connections");
        assert_eq!(probe.status_line, "HTTP/1.1 200 OK");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        idle.push(TcpStream::connect(endpoint.addr).await.expect("connect"));
    }
    // The slow sender is closed once its headers are overdue (2 s).
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(6), async {
        loop {
            if slow.write_all(b"x").await.is_err() {
                return;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(std::time::Duration::from_millis(200), slow.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => rest.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "slow peer still connected after {:?}",
        started.elapsed()
    );
    endpoint.stop.cancel();
}
