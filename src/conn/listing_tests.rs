use super::*;
use crate::acl::rules::apply_rules;

fn user(rules: &str) -> User {
    let mut u = User::new("u");
    apply_rules(&mut u, rules).expect("rules");
    u
}

fn filtered(frame: &[u8], listing: Listing, rules: &str, resp3: bool) -> String {
    let mut out = BytesMut::new();
    filter(frame, listing, &user(rules), resp3, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

const KEYS: &[u8] = b"*4\r\n$5\r\na:one\r\n$5\r\nb:two\r\n$7\r\na:three\r\n$0\r\n\r\n";

#[test]
fn keys_keep_what_the_user_may_read() {
    let got = filtered(KEYS, Listing::Keys, "on ~a:* +@all", false);
    assert_eq!(got, "*2\r\n$5\r\na:one\r\n$7\r\na:three\r\n");
    // %W~ grants no read; a selector without GET does not count either.
    assert_eq!(
        filtered(KEYS, Listing::Keys, "on %W~* +@all", false),
        "*0\r\n"
    );
    assert_eq!(
        filtered(KEYS, Listing::Keys, "on ~* +@all -get", false),
        "*0\r\n"
    );
    assert_eq!(
        filtered(KEYS, Listing::Keys, "on ~* +@all -get (~b:* +get)", false),
        "*1\r\n$5\r\nb:two\r\n"
    );
    assert_eq!(
        filtered(KEYS, Listing::Keys, "on allkeys +@all", false),
        String::from_utf8_lossy(KEYS)
    );
    assert_eq!(
        filtered(b"*0\r\n", Listing::Keys, "on ~a:* +@all", false),
        "*0\r\n"
    );
    assert_eq!(
        filtered(b"-ERR boom\r\n", Listing::Keys, "on ~a:* +@all", false),
        "-ERR boom\r\n"
    );
}

#[test]
fn scan_keeps_its_cursor_and_pushes_go_first() {
    let page = b"*2\r\n$4\r\n1792\r\n*3\r\n$3\r\nb:x\r\n$3\r\na:y\r\n$3\r\nb:z\r\n";
    assert_eq!(
        filtered(page, Listing::Scan, "on ~a:* +@all", false),
        "*2\r\n$4\r\n1792\r\n*1\r\n$3\r\na:y\r\n"
    );
    assert_eq!(
        filtered(page, Listing::Scan, "on ~c:* +@all", false),
        "*2\r\n$4\r\n1792\r\n*0\r\n"
    );
    // A RESP3 push written inside the reply (between header and elements).
    let with_push =
        b"*2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n$1\r\n0\r\n*1\r\n$3\r\na:y\r\n";
    assert_eq!(
        filtered(with_push, Listing::Scan, "on ~a:* +@all", true),
        ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n*2\r\n$1\r\n0\r\n*1\r\n$3\r\na:y\r\n"
    );
    // Malformed: never passed on as it is.
    assert_eq!(
        filtered(b"*2\r\n$1\r\n0\r\n", Listing::Scan, "on ~a:* +@all", false),
        String::from_utf8_lossy(UNFILTERABLE)
    );
}

#[test]
fn randomkey_becomes_nil_when_unreadable() {
    let rules = "on ~a:* +@all";
    assert_eq!(
        filtered(b"$3\r\na:k\r\n", Listing::RandomKey, rules, false),
        "$3\r\na:k\r\n"
    );
    assert_eq!(
        filtered(b"$3\r\nb:k\r\n", Listing::RandomKey, rules, false),
        "$-1\r\n"
    );
    assert_eq!(
        filtered(b"$3\r\nb:k\r\n", Listing::RandomKey, rules, true),
        "_\r\n"
    );
    assert_eq!(
        filtered(b"$-1\r\n", Listing::RandomKey, rules, false),
        "$-1\r\n"
    );
    assert_eq!(filtered(b"_\r\n", Listing::RandomKey, rules, true), "_\r\n");
    assert_eq!(Listing::of("scan"), Some(Listing::Scan));
    assert_eq!(Listing::of("hscan"), None);
}
