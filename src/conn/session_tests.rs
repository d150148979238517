use super::*;
use crate::config::UserEntry;
use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};

fn users(entries: &[(&str, &str)]) -> Users {
    users_with(entries, |_| {})
}

/// Users built from `(name, rules)`, each entry adjusted by `edit`.
fn users_with(entries: &[(&str, &str)], edit: impl Fn(&mut UserEntry)) -> Users {
    let mut cfg = crate::config::parse(
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[upstream]\naddress = \"127.0.0.1:1\"\n",
        std::path::Path::new("/tmp/proxy.toml"),
    )
    .expect("base config");
    cfg.users = entries
        .iter()
        .map(|(n, r)| UserEntry {
            name: n.to_string(),
            rules: r.to_string(),
            max_clients: None,
            rate: None,
            access: crate::edge::Access::default(),
            enforce: true,
            filter_listings: false,
        })
        .collect();
    cfg.users.iter_mut().for_each(edit);
    Users::from_config(&cfg).expect("users")
}

/// Runs inline commands through a session; returns each decision.
fn run(session: &mut Session, users: &Users, script: &str) -> Vec<Decided> {
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let mut out = Vec::new();
    for line in script.lines() {
        let buf = format!("{line}\r\n");
        match scanner.scan(buf.as_bytes(), false) {
            Ok(RequestScan::Complete(_)) => {
                out.push(session.decide(scanner.args(buf.as_bytes()), users, &Default::default()));
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    out
}

fn replies(ds: &[Decided]) -> Vec<String> {
    ds.iter()
        .map(|d| match &d.decision {
            Decision::Local(r) => String::from_utf8_lossy(r.bytes()).trim_end().to_string(),
            Decision::Forward(k) => format!("forward {k:?}"),
            Decision::ForwardFiltered(l, u) => format!("filtered {l:?} for {}", u.name),
            Decision::ForwardInstead(b, k, e) => {
                format!("instead {:?} {k:?} {e:?}", String::from_utf8_lossy(b))
            }
            Decision::Quit => "quit".into(),
            Decision::Refuse(r) => format!("refuse {}", String::from_utf8_lossy(r).trim_end()),
            Decision::Nothing => "nothing".into(),
        } + if d.suppress { " (suppressed)" } else { "" })
        .collect()
}

#[test]
fn no_users_means_noauth_for_everything_but_auth_hello_quit_reset() {
    let u = users(&[]);
    let mut s = Session::new(None);
    let got = replies(&run(
        &mut s,
        &u,
        "GET k\nAUTH pw\nAUTH a b\nHELLO 3\nRESET\nQUIT",
    ));
    assert_eq!(
        got,
        vec![
            "-NOAUTH Authentication required.",
            "-WRONGPASS invalid username-password pair or user is disabled.",
            "-WRONGPASS invalid username-password pair or user is disabled.",
            String::from_utf8_lossy(replies::HELLO_NOAUTH).trim_end(),
            "+RESET",
            "quit",
        ]
    );
}

#[test]
fn auth_forms_and_default_user() {
    let u = users(&[
        ("default", "on nopass ~* &* +@all"),
        ("app", "on >pw ~* &* +@all"),
        ("off", "off >pw ~* &* +@all"),
    ]);
    let mut s = Session::new(None);
    let got = replies(&run(
        &mut s,
        &u,
        "GET k\nAUTH pw\nAUTH app nope\nAUTH off pw\nAUTH app pw\nAUTH\nAUTH a b c",
    ));
    assert_eq!(got, vec![
        "forward Plain",
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        "-WRONGPASS invalid username-password pair or user is disabled.",
        "-WRONGPASS invalid username-password pair or user is disabled.",
        "+OK",
        "-ERR wrong number of arguments for 'auth' command",
        "-ERR syntax error",
    ]);
    assert_eq!(s.user(&u).map(|u| u.name.as_str()), Some("app"));
}

#[test]
fn hello_checks_and_rewrites() {
    let u = users(&[("app", "on >pw ~* &* +@all")]);
    let mut s = Session::new(None);
    let got = replies(&run(
        &mut s,
        &u,
        "HELLO 4\nHELLO x\nHELLO 3 FOO\nHELLO 3 AUTH app bad\nHELLO 3 AUTH app pw SETNAME n\nHELLO",
    ));
    assert_eq!(got, vec![
        "-NOPROTO unsupported protocol version",
        "-ERR Protocol version is not an integer or out of range",
        "-ERR Syntax error in HELLO option 'FOO'",
        "-WRONGPASS invalid username-password pair or user is disabled.",
        "instead \"*4\\r\\n$5\\r\\nHELLO\\r\\n$1\\r\\n3\\r\\n$7\\r\\nSETNAME\\r\\n$1\\r\\nn\\r\\n\" Hello(Some(3)) Pass",
        "instead \"*1\\r\\n$5\\r\\nHELLO\\r\\n\" Hello(None) Pass",
    ]);
}

#[test]
fn client_reply_off_skip_on() {
    let u = users(&[("default", "on nopass ~* &* +@all")]);
    let mut s = Session::new(None);
    let got = replies(&run(&mut s, &u, "CLIENT REPLY SKIP\nGET a\nGET b\nCLIENT REPLY OFF\nGET c\nNOSUCH\nCLIENT REPLY ON\nCLIENT REPLY maybe"));
    assert_eq!(
        got,
        vec![
            "nothing",
            "forward Plain (suppressed)",
            "forward Plain",
            "nothing",
            "forward Plain (suppressed)",
            "forward Plain (suppressed)",
            "+OK",
            "forward Plain",
        ]
    );
}

#[test]
fn transactions_and_pubsub_slots() {
    let u = users(&[("default", "on nopass ~* &* +@all")]);
    let mut s = Session::new(None);
    let got = replies(&run(
        &mut s,
        &u,
        "MULTI\nAUTH x\nEXEC\nSUBSCRIBE a b\nUNSUBSCRIBE\nPSUBSCRIBE\nMULTI\nEXEC",
    ));
    assert_eq!(got, vec![
        "forward Plain",
        "-ERR Command not allowed inside a transaction",
        "instead \"*1\\r\\n$7\\r\\nDISCARD\\r\\n\" Plain Replace(b\"-EXECABORT Transaction discarded because of previous errors.\\r\\n\")",
        "forward Subscription { kind: Subscribe, frames: 2 }",
        "forward UnsubscribeAll(Unsubscribe)",
        "-ERR wrong number of arguments for 'psubscribe' command",
        "forward Plain",
        "forward Plain",
    ]);
}

#[test]
fn reset_returns_to_the_certificate_user() {
    let u = users(&[("app", "on >pw ~* &* +@all"), ("cert", "on ~* &* +@all")]);
    let cert = u.get("cert").cloned();
    let mut s = Session::new(cert);
    let got = replies(&run(&mut s, &u, "AUTH app pw\nRESET\nGET k"));
    assert_eq!(got, vec!["+OK", "forward Reset", "forward Plain"]);
    assert_eq!(s.user(&u).map(|u| u.name.as_str()), Some("cert"));
}

#[test]
fn client_reply_on_keeps_the_protocol_and_reset_drops_it() {
    let u = users(&[("default", "on nopass ~* &* +@all")]);
    let mut s = Session::new(None);
    run(&mut s, &u, "HELLO 3\nCLIENT REPLY ON");
    assert!(s.resp3);
    run(&mut s, &u, "RESET");
    assert!(!s.resp3);
}

#[test]
fn error_texts_stop_at_nul_like_c() {
    let u = users(&[("default", "on nopass ~* &* +@all")]);
    let mut s = Session::new(None);
    let mut scanner = RequestScanner::new(ScanLimits::default());
    let buf = b"*3\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nFO\x00O\r\n*3\r\n$3\r\nACL\r\n$3\r\nCAT\r\n$4\r\nab\x00c\r\n";
    let mut pos = 0;
    let mut got = Vec::new();
    while let Ok(RequestScan::Complete(n)) = scanner.scan(&buf[pos..], false) {
        got.push(s.decide(scanner.args(&buf[pos..]), &u, &Default::default()));
        pos += n;
    }
    assert_eq!(
        replies(&got),
        vec![
            "-ERR Syntax error in HELLO option 'FO'",
            "-ERR Unknown category 'ab'",
        ]
    );
}

#[test]
fn auth_over_a_users_max_clients_is_refused_and_the_connection_stays_unauthenticated() {
    let u = users_with(&[("app", "on >pw ~* +@all")], |e| e.max_clients = Some(1));
    let adm = Arc::new(crate::limits::Admission::default());
    let mut a = Session::new(None).with_admission(Arc::clone(&adm), None);
    let mut b = Session::new(None).with_admission(Arc::clone(&adm), None);
    assert_eq!(replies(&run(&mut a, &u, "AUTH app pw")), ["+OK"]);
    assert_eq!(adm.of_user("app"), 1);
    assert_eq!(
        replies(&run(&mut b, &u, "AUTH app pw\nHELLO 3 AUTH app pw\nGET k")),
        [
            "refuse -ERR max number of clients reached",
            "refuse -ERR max number of clients reached",
            "-NOAUTH Authentication required."
        ]
    );
    assert_eq!(b.take_events().user_cap.as_deref(), Some("app"));
    assert!(!b.authenticated(&u));
    // Re-authenticating as the same user takes no second place.
    assert_eq!(replies(&run(&mut a, &u, "AUTH app pw")), ["+OK"]);
    assert_eq!(adm.of_user("app"), 1);
    drop(a);
    assert_eq!(adm.of_user("app"), 0);
    assert_eq!(replies(&run(&mut b, &u, "AUTH app pw")), ["+OK"]);
    assert_eq!(b.take_events(), Events::default());
}

#[test]
fn failed_auth_is_reported_and_a_rate_refusal_fails_the_transaction() {
    let u = users(&[("app", "on >pw ~* +@all")]);
    let mut s = Session::new(None);
    assert_eq!(
        replies(&run(&mut s, &u, "AUTH app nope")),
        ["-WRONGPASS invalid username-password pair or user is disabled."]
    );
    assert!(s.take_events().auth_failed);
    assert!(!s.take_events().auth_failed, "taken once");
    run(&mut s, &u, "AUTH app pw\nMULTI");
    let refused = s.refuse(replies::RATE_LIMITED);
    assert_eq!(replies(&[refused]), ["-ERR rate limit exceeded"]);
    assert_eq!(
        replies(&run(&mut s, &u, "EXEC")),
        ["instead \"*1\\r\\n$7\\r\\nDISCARD\\r\\n\" Plain Replace(b\"-EXECABORT Transaction discarded because of previous errors.\\r\\n\")"]
    );
    // CLIENT REPLY SKIP hides the refusal like any reply.
    run(&mut s, &u, "CLIENT REPLY SKIP");
    assert!(s.refuse(replies::RATE_LIMITED).suppress);
}

fn sources(list: &[&str]) -> crate::edge::SourceList {
    let owned: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    crate::edge::SourceList::parse(&owned).expect("sources")
}

#[test]
fn allow_from_and_auth_methods_refuse_like_a_wrong_password() {
    use crate::edge::{AuthMethod, AuthMethods};
    let u = users_with(
        &[
            ("app", "on >pw ~* +@all"),
            ("svc", "on >pw ~* +@all"),
            ("default", "on nopass ~* +@all"),
        ],
        |e| match e.name.as_str() {
            "app" => e.access.allow_from = Some(sources(&["127.0.0.2", "10.0.0.0/8"])),
            "svc" => e.access.methods = AuthMethods::NONE.with(AuthMethod::Cert),
            _ => e.access.allow_from = Some(sources(&["127.0.0.3"])),
        },
    );
    let from = |ip: &str| Session::new(None).with_peer(ip.parse().expect("ip"));
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.";
    for ip in ["127.0.0.2", "10.9.8.7", "::ffff:10.1.1.1"] {
        assert_eq!(
            replies(&run(&mut from(ip), &u, "AUTH app pw")),
            ["+OK"],
            "{ip}"
        );
    }
    for ip in ["127.0.0.1", "11.0.0.1", "::1"] {
        let mut s = from(ip);
        assert_eq!(
            replies(&run(&mut s, &u, "AUTH app pw\nHELLO 3 AUTH app pw")),
            [wrongpass, wrongpass],
            "{ip}"
        );
        // Counted like a failed AUTH (the per-IP failure throttle).
        assert!(s.take_events().auth_failed);
    }
    // A password is never enough for a certificate-only user.
    assert_eq!(
        replies(&run(&mut from("127.0.0.2"), &u, "AUTH svc pw")),
        [wrongpass]
    );
    // The nopass default user is the implicit user only where it may be used.
    assert!(from("127.0.0.3").authenticated(&u));
    assert!(!from("127.0.0.1").authenticated(&u));
    assert_eq!(
        replies(&run(&mut from("127.0.0.1"), &u, "GET k")),
        ["-NOAUTH Authentication required."]
    );
}

#[test]
fn shadow_mode_forwards_what_the_acl_would_refuse_and_says_so() {
    let u = users_with(
        &[
            ("app", "on >pw ~app:* &app:* +@all -flushall"),
            ("strict", "on >pw ~app:* +get"),
        ],
        |e| e.enforce = e.name != "app",
    );
    let mut s = Session::new(None);
    assert_eq!(replies(&run(&mut s, &u, "AUTH app pw")), ["+OK"]);
    s.take_events();
    for (line, reason) in [
        ("FLUSHALL", Reason::Command),
        ("GET other:k", Reason::Key),
        ("PUBLISH other:c m", Reason::Channel),
    ] {
        assert_eq!(replies(&run(&mut s, &u, line)), ["forward Plain"], "{line}");
        let events = s.take_events();
        assert_eq!(events.shadow_denied, Some(reason), "{line}");
        assert_eq!(events.denied, None, "{line}");
    }
    assert_eq!(replies(&run(&mut s, &u, "GET app:k")), ["forward Plain"]);
    assert_eq!(s.take_events().shadow_denied, None);
    // Not ACL denials: still answered by the proxy.
    assert_eq!(
        replies(&run(&mut s, &u, "GET")),
        ["-ERR wrong number of arguments for 'get' command"]
    );
    // An enforced user next to it is refused as usual.
    let mut t = Session::new(None);
    let got = replies(&run(&mut t, &u, "AUTH strict pw\nSET app:k v"));
    assert_eq!(
        got,
        [
            "+OK",
            "-NOPERM this user has no permissions to run the 'set' command"
        ]
    );
}
