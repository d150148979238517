use super::*;
use crate::acl::rules::apply_rules;

fn user(rules: &str) -> User {
    let mut u = User::new("u");
    apply_rules(&mut u, rules).expect("rules");
    u
}

fn filtered(frame: &[u8], listing: Listing, rules: &str, resp3: bool) -> String {
    let mut out = BytesMut::new();
    filter(
        frame,
        listing,
        &std::sync::Arc::new(user(rules)),
        resp3,
        &mut out,
    );
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

/// Streams `frame` through a [`ListingStream`] in pieces cut at `cuts`.
fn streamed(frame: &[u8], listing: Listing, rules: &str, cuts: &[usize]) -> String {
    let mut s = ListingStream::new(listing, std::sync::Arc::new(user(rules)));
    let mut out = BytesMut::new();
    let mut from = 0;
    for &cut in cuts {
        let cut = cut.min(frame.len());
        if cut > from {
            s.feed(&frame[from..cut], &mut out);
            from = cut;
        }
    }
    s.finish(&frame[from..], &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn streaming_filters_exactly_like_the_whole_reply() {
    let mut big = format!("*{}\r\n", 600).into_bytes();
    for i in 0..600 {
        let key = format!("{}:{i}:{}", ["a", "b", "c"][i % 3], "x".repeat(i % 50));
        big.extend_from_slice(format!("${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    let mut scan = b"*2\r\n$5\r\n12345\r\n".to_vec();
    scan.extend_from_slice(&big);
    let mut with_push = b"*2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n$1\r\n0\r\n".to_vec();
    with_push.extend_from_slice(&big);
    let mut rng = 0x9e37_79b9_u64;
    for rules in [
        "on ~a:* +@all",
        "on %R~b:* ~c:1* +@all",
        "on allkeys +@all",
        "on +@all",
    ] {
        for (frame, listing) in [
            (&big, Listing::Keys),
            (&scan, Listing::Scan),
            (&with_push, Listing::Scan),
        ] {
            let whole = filtered(frame, listing, rules, true);
            for _ in 0..20 {
                let mut cuts: Vec<usize> = (0..8)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % frame.len() as u64) as usize
                    })
                    .collect();
                cuts.sort_unstable();
                assert_eq!(
                    streamed(frame, listing, rules, &cuts),
                    whole,
                    "{rules} {cuts:?}"
                );
            }
            // One byte at a time.
            let every: Vec<usize> = (1..frame.len()).collect();
            assert_eq!(
                streamed(frame, listing, rules, &every),
                whole,
                "{rules} byte by byte"
            );
        }
    }
    // A reply that is not what the command returns is never passed on.
    assert_eq!(
        streamed(b"*3\r\n$1\r\na\r\n", Listing::Keys, "on ~* +@all", &[4]),
        String::from_utf8_lossy(UNFILTERABLE)
    );
    assert_eq!(
        streamed(
            b"*3\r\n$1\r\na\r\n:1\r\n",
            Listing::Scan,
            "on ~* +@all",
            &[4]
        ),
        String::from_utf8_lossy(UNFILTERABLE)
    );
}
