//! What clients and operators see: log lines no client can forge, `CLIENT
//! INFO`/`LIST` that describe the proxy's clients and never the upstream, and
//! the `ACL LOG` merge as Redis 7.0 does it.

use portcullis::certgen::ClientSpec;

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"alice\"\nrules = \"on >pw ~alice:* +@all\"\n\n\
                     [[users]]\nname = \"admin\"\nrules = \"on >pw ~* &* +@all\"\n";

/// Certificate fields and AUTH user names with newlines and terminal escapes
/// reach the log escaped, in the text format and in JSON.
#[tokio::test]
async fn log_fields_cannot_start_lines_or_drive_a_terminal() {
    let redis = RedisServer::start();
    let mut pki = TestPki::new();
    let evil_cn = "mallory\nWARN forged line\x1b[2J\x1b[31m";
    let issued = pki
        .authority()
        .client(&ClientSpec::new(evil_cn))
        .expect("evil cert");
    pki.add_issued("evil", issued);
    let mut spec = ClientSpec::new("x");
    spec.san_uri = vec!["spiffe://a/\r\nINFO injected"];
    let issued = pki.authority().client(&spec).expect("uri cert");
    pki.add_issued("evil-uri", issued);
    let config = base_config(&pki, &redis.addr(), USERS);
    for text in [true, false] {
        let proxy = if text {
            Proxy::start_text_logs(&config, pki.dir())
        } else {
            Proxy::start(&config, pki.dir())
        };
        let lines_before = proxy.logs().len();
        for cert in ["evil", "evil-uri"] {
            let mut c = resp_tls(proxy.tls_addr(), &pki, Some(cert)).await;
            // Names no user: WARN "certificate user refused" (the CN) or NOAUTH.
            let reply = c.cmd_str(&["GET", "k"]).await;
            assert!(reply.is_error());
            // A failed AUTH with a forged user name, and a denial.
            let reply = c
                .cmd(&[
                    b"AUTH",
                    b"eve\n2026-01-01T00:00:00Z WARN fake\x1b]0;t\x07",
                    b"x",
                ])
                .await;
            assert!(reply.is_error());
            assert!(c.cmd_str(&["AUTH", "alice", "pw"]).await.is_ok());
            assert!(c.cmd_str(&["GET", "bob:k"]).await.is_error());
        }
        // Both connections' denials (the log is read from the child
        // asynchronously: wait for the second, not just the first).
        let both = proxy.wait_for_log(std::time::Duration::from_secs(5), |_| {
            proxy.logs()[lines_before..]
                .iter()
                .filter(|l| l.contains("ACL denied"))
                .count()
                >= 2
        });
        assert!(both.is_some(), "denials logged");
        let logs = proxy.logs();
        let new = &logs[lines_before..];
        for line in new {
            assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
            assert!(!line.contains('\r'), "{line:?}");
            if text {
                assert!(
                    line.contains(" INFO ")
                        || line.contains(" WARN ")
                        || line.contains(" DEBUG ")
                        || line.contains(" ERROR "),
                    "a line that is not a log event: {line:?}"
                );
            } else {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}"));
                let fields = &value["fields"];
                for field in ["identity", "user"] {
                    if let Some(v) = fields[field].as_str() {
                        assert!(
                            !v.chars().any(char::is_control),
                            "{field} carries control characters: {v:?}"
                        );
                    }
                }
            }
        }
        // The escaped values themselves (a JSON line escapes their backslashes once more).
        let logged = |escaped: &str| {
            let json = escaped.replace('\\', "\\\\");
            new.iter()
                .any(|l| l.contains(if text { escaped } else { &json }))
        };
        assert!(
            logged("cn=mallory\\nWARN forged line\\u{1b}[2J"),
            "the escaped CN is logged:\n{}",
            new.join("\n")
        );
        assert!(logged("uri=spiffe://a/\\r\\nINFO injected"));
        assert!(logged(
            "eve\\n2026-01-01T00:00:00Z WARN fake\\u{1b}]0;t\\u{7}"
        ));
    }
}

/// The reply text of `CLIENT INFO` (RESP2 bulk or RESP3 verbatim).
fn text(reply: &Reply) -> String {
    String::from_utf8(reply.as_bytes().expect("bulk").to_vec()).unwrap()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|t| t.strip_prefix(name).and_then(|t| t.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

#[tokio::test]
async fn client_info_and_list_describe_the_proxy_clients() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let toml = base_config(
        &pki,
        &redis.addr(),
        &format!("{USERS}\n[[users]]\nname = \"carol\"\nrules = \"on ~* +@all\"\n"),
    );
    let proxy = Proxy::start(
        &toml.replace(
            "[upstream]\n",
            "[upstream]\nusername = \"proxy\"\npassword = \"up-pw\"\n",
        ),
        pki.dir(),
    );
    let mut direct = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let setup = [
        "ACL", "SETUSER", "proxy", "on", ">up-pw", "~*", "&*", "+@all",
    ];
    assert!(direct.cmd_str(&setup).await.is_ok());
    // A client of the upstream that is not the proxy's, as the proxy's user.
    let mut other = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    assert!(other.cmd_str(&["AUTH", "proxy", "up-pw"]).await.is_ok());

    let mut carol = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    let mut bob = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(bob.cmd_str(&["AUTH", "alice", "pw"]).await.is_ok());
    assert!(bob.cmd_str(&["CLIENT", "SETNAME", "bobs"]).await.is_ok());
    let upstream_port = redis.port.to_string();
    for resp3 in [false, true] {
        if resp3 {
            assert!(!bob.cmd_str(&["HELLO", "3"]).await.is_error());
        }
        let info = text(&bob.cmd_str(&["CLIENT", "INFO"]).await);
        assert_eq!(field(&info, "user"), "alice", "{info}");
        assert_eq!(field(&info, "name"), "bobs");
        assert_eq!(
            field(&info, "laddr"),
            proxy.tls_addr().to_string(),
            "{info}"
        );
        assert!(field(&info, "addr").starts_with("127.0.0.1:"));
        assert!(
            !info.contains(&upstream_port) && !info.contains("proxy"),
            "{info}"
        );
    }
    assert_eq!(carol.cmd_str(&["PING"]).await.as_str(), Some("PONG"));
    let list = text(&bob.cmd_str(&["CLIENT", "LIST"]).await);
    assert!(!list.contains(&format!(":{upstream_port} ")), "{list}");
    assert!(!list.contains("user=proxy"), "{list}");
    let mine = list
        .lines()
        .find(|l| field(l, "name") == "bobs")
        .expect("own line");
    assert_eq!(field(mine, "user"), "alice");
    let carols = list
        .lines()
        .find(|l| field(l, "user") == "carol")
        .unwrap_or_else(|| panic!("carol's line: {list}"));
    assert_eq!(field(carols, "laddr"), proxy.tls_addr().to_string());
    // The direct client logged in as the proxy's user: both hidden.
    assert!(
        list.lines()
            .any(|l| field(l, "user") == "?" && field(l, "laddr") == "?"),
        "{list}"
    );
}

/// Redis 7.0 merges a repeated denial into the newest entry and gives it the
/// newest client's info; compared with a real redis-server.
#[tokio::test]
async fn acl_log_merge_keeps_the_newest_client_info_like_redis() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(&base_config(&pki, &redis.addr(), USERS), pki.dir());
    let mut admin = RespConn::connect_tcp(&redis.addr()).await.unwrap();
    let setup = ["ACL", "SETUSER", "alice", "on", ">pw", "~alice:*", "+@all"];
    assert!(admin.cmd_str(&setup).await.is_ok());

    let entry_of =
        |log: Reply| -> Vec<Reply> { log.as_array().unwrap()[0].as_array().unwrap().to_vec() };
    let get = |entry: &[Reply], name: &str| -> Reply {
        let i = entry
            .iter()
            .position(|r| r.as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name}"));
        entry[i + 1].clone()
    };
    // Redis: two connections, the same denial.
    let mut infos = Vec::new();
    for _ in 0..2 {
        let mut c = RespConn::connect_tcp(&redis.addr()).await.unwrap();
        assert!(c.cmd_str(&["AUTH", "alice", "pw"]).await.is_ok());
        assert!(c.cmd_str(&["GET", "bob:k"]).await.is_error());
        let id = c.cmd_str(&["CLIENT", "ID"]).await.as_int().unwrap();
        infos.push(format!("id={id} "));
    }
    let redis_entry = entry_of(admin.cmd_str(&["ACL", "LOG", "1"]).await);
    assert_eq!(get(&redis_entry, "count").as_int(), Some(2));
    let info = String::from_utf8(
        get(&redis_entry, "client-info")
            .as_bytes()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        info.starts_with(&infos[1]),
        "redis keeps the newest: {info}"
    );

    // The proxy: the same through two connections from two addresses.
    let mut peers = Vec::new();
    for source in ["127.0.0.1", "127.0.0.2"] {
        let from = source.parse().unwrap();
        let mut c = resp_tls_from(from, proxy.tls_addr(), &pki, Some("bob")).await;
        assert!(c.cmd_str(&["AUTH", "alice", "pw"]).await.is_ok());
        assert!(c.cmd_str(&["GET", "bob:k"]).await.is_error());
        peers.push(source);
    }
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("bob")).await;
    assert!(c.cmd_str(&["AUTH", "admin", "pw"]).await.is_ok());
    let entry = entry_of(c.cmd_str(&["ACL", "LOG", "1"]).await);
    assert_eq!(get(&entry, "count").as_int(), Some(2));
    let info = String::from_utf8(get(&entry, "client-info").as_bytes().unwrap().to_vec()).unwrap();
    assert!(
        info.contains(&format!("addr={}:", peers[1])),
        "newest client: {info}"
    );
}
