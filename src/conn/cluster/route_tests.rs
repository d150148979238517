use super::*;
use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};

fn route_of(line: &str) -> Route {
    let wire = format!("{line}\r\n");
    let mut scanner = RequestScanner::new(ScanLimits::default());
    match scanner.scan(wire.as_bytes(), false) {
        Ok(RequestScan::Complete(_)) => route(scanner.args(wire.as_bytes()), &mut Vec::new()),
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn keyed_commands_go_to_their_slot() {
    assert_eq!(route_of("GET foo"), Route::Slot(12182));
    assert_eq!(route_of("SET {user1000}.a 1"), Route::Slot(3443));
    assert_eq!(
        route_of("MGET {user1000}.a {user1000}.b"),
        Route::Slot(3443)
    );
    assert_eq!(route_of("EVAL x 1 foo"), Route::Slot(12182));
    assert_eq!(route_of("EVAL x 0"), Route::Any);
    assert_eq!(route_of("PING"), Route::Any);
    assert_eq!(route_of("SPUBLISH foo m"), Route::Slot(12182));
    assert_eq!(route_of("SSUBSCRIBE foo bar"), Route::CrossSlot);
    assert_eq!(route_of("PUBLISH foo m"), Route::Any);
    assert_eq!(route_of("RENAME foo bar"), Route::CrossSlot);
    assert_eq!(route_of("BLPOP foo bar 0"), Route::CrossSlot);
}

#[test]
fn multi_key_commands_split_per_slot() {
    let Route::Split {
        combine,
        parts,
        total,
    } = route_of("MGET foo bar {foo}x")
    else {
        panic!("not split");
    };
    assert_eq!(combine, Combine::Mget);
    assert_eq!(total, 3);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].slot, 12182);
    assert_eq!(parts[0].positions, vec![0, 2]);
    assert_eq!(
        parts[0].bytes,
        encode::command(&[b"MGET", b"foo", b"{foo}x"])
    );
    assert_eq!(parts[1].bytes, encode::command(&[b"MGET", b"bar"]));
    let Route::Split { combine, parts, .. } = route_of("mset foo 1 bar 2") else {
        panic!("not split");
    };
    assert_eq!(combine, Combine::First);
    assert_eq!(parts[1].bytes, encode::command(&[b"mset", b"bar", b"2"]));
    assert!(matches!(
        route_of("DEL foo bar"),
        Route::Split {
            combine: Combine::Sum,
            ..
        }
    ));
}

#[test]
fn keyless_and_local_routes() {
    assert_eq!(route_of("DBSIZE"), Route::All(Combine::Sum));
    assert_eq!(route_of("KEYS *"), Route::All(Combine::Concat));
    assert_eq!(route_of("FLUSHALL"), Route::All(Combine::First));
    assert_eq!(route_of("SCRIPT LOAD x"), Route::All(Combine::First));
    assert_eq!(route_of("SCAN 0 COUNT 10"), Route::Scan);
    assert_eq!(
        route_of("SELECT 1"),
        Route::Local(LocalAnswer::Fixed(SELECT_REFUSED))
    );
    assert_eq!(
        route_of("CLUSTER KEYSLOT foo"),
        Route::Local(LocalAnswer::KeySlot(12182))
    );
    assert_eq!(
        route_of("cluster slots"),
        Route::Local(LocalAnswer::Cluster(ClusterQuery::Slots))
    );
    assert_eq!(route_of("CLUSTER COUNTKEYSINSLOT 7"), Route::Slot(7));
}
