//! Fuzz target for `filter_listings` (`portcullis::conn::listing`): a large
//! `KEYS`/`SCAN` reply is filtered as it streams, in parts cut anywhere; the
//! result must equal the filter of the whole reply, for any valid reply.
//!
//! Input: one byte picks the listing and the user's rules, then `n % 16`
//! cut bytes (each a part length), then the reply. Inputs that are not one
//! complete array reply are skipped (the proxy streams only those).
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis::acl::rules::apply_rules;
use portcullis::acl::User;
use portcullis::conn::listing::{filter, Listing, ListingStream};
use portcullis::resp::reply::{ReplyScan, ReplyScanner};

const RULES: [&str; 4] = ["on ~a* +@all", "on %R~*b* ~c +@all", "on allkeys +@all", "on +@all -get (~a* +get)"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some((&n, rest)) = rest.split_first() else { return };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, frame) = rest.split_at(n);
    if frame.first() != Some(&b'*') {
        return;
    }
    match ReplyScanner::new().scan(frame) {
        Ok(ReplyScan::Complete { len }) if len == frame.len() => {}
        _ => return,
    }
    let listing = if pick & 1 == 0 { Listing::Keys } else { Listing::Scan };
    let mut user = User::new("u");
    if apply_rules(&mut user, RULES[usize::from(pick >> 1) % RULES.len()]).is_err() {
        return;
    }
    let user = Arc::new(user);
    let mut whole = BytesMut::new();
    filter(frame, listing, &user, true, &mut whole);
    let mut stream = ListingStream::new(listing, Arc::clone(&user));
    let mut out = BytesMut::new();
    let mut from = 0;
    for &cut in cuts {
        let to = (from + usize::from(cut)).min(frame.len());
        stream.feed(&frame[from..to], &mut out);
        from = to;
    }
    stream.finish(&frame[from..], &mut out);
    assert_eq!(out, whole, "streamed and whole filters differ");
});
