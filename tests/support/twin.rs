//! One client, twice: a connection through the proxy and one straight to the
//! oracle redis-server of a [`SameStream`], driven in lockstep. Every reply
//! is read from both and compared, so a scenario with several clients
//! interleaved (one transaction beside another client's write) is checked
//! against what Redis does with the same interleaving.

use tokio::net::TcpStream;

use super::{encode_command, resp_tls, Reply, RespConn, SameStream};

/// The proxy's side of a twin.
pub type ProxySide = RespConn<tokio_rustls::client::TlsStream<TcpStream>>;

/// A client through the proxy and its twin straight to Redis.
pub struct Twin {
    /// Through the proxy.
    pub proxy: ProxySide,
    /// Straight to the oracle.
    pub direct: RespConn<TcpStream>,
    name: &'static str,
}

impl Twin {
    /// Connects both sides and authenticates them as `user` (password `pw`).
    pub async fn connect(ss: &SameStream, name: &'static str, user: &str) -> Twin {
        let proxy = resp_tls(ss.proxy.tls_addr(), &ss.pki, Some("bob")).await;
        let direct = RespConn::connect_tcp(&ss.oracle.addr())
            .await
            .expect("oracle");
        let mut twin = Twin {
            proxy,
            direct,
            name,
        };
        let auth = twin.cmd(&["AUTH", user, "pw"]).await;
        assert!(auth.is_ok(), "{name}: AUTH {user}: {auth:?}");
        twin
    }

    /// Sends a command to both sides without reading.
    pub async fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let wire = encode_command(&args);
        self.proxy.send_raw(&wire).await;
        self.direct.send_raw(&wire).await;
    }

    /// Reads one reply from both sides; they must be equal (a `HELLO`'s
    /// connection id aside). Returns the proxy's.
    pub async fn read(&mut self) -> Reply {
        let proxy = self.proxy.read_reply().await;
        let direct = self.direct.read_reply().await;
        assert_eq!(
            without_id(proxy.clone()),
            without_id(direct),
            "{}: the proxy's reply differs from Redis's",
            self.name
        );
        proxy
    }

    /// Sends a command to both sides and compares the replies.
    pub async fn cmd(&mut self, args: &[&str]) -> Reply {
        self.send(args).await;
        self.read().await
    }
}

/// A `HELLO` reply's `id` (the connection's, different on each side) as 0.
fn without_id(reply: Reply) -> Reply {
    let id = Reply::Bulk(Some(b"id".to_vec()));
    match reply {
        Reply::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| if k == id { (k, Reply::Int(0)) } else { (k, v) })
                .collect(),
        ),
        Reply::Array(Some(items))
            if items.len() == 14
                && items.first() == Some(&Reply::Bulk(Some(b"server".to_vec()))) =>
        {
            let mut items = items;
            if let Some(v) = items.get_mut(7) {
                *v = Reply::Int(0);
            }
            Reply::Array(Some(items))
        }
        other => other,
    }
}
