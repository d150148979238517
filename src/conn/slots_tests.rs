use super::*;
use bytes::Bytes;

fn run(slots: &mut ReplySlots, frames: &[(&[u8], u8)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    slots.drain_local(&mut out);
    for (f, ty) in frames {
        slots.on_frame(f, *ty, false, &mut out).unwrap();
    }
    out.to_vec()
}

#[test]
fn local_and_upstream_replies_keep_command_order() {
    let mut s = ReplySlots::new();
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    s.push_local(LocalReply::Static(b"-NOAUTH x\r\n"));
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    s.push_local(LocalReply::Static(b"+OK\r\n"));
    let out = run(&mut s, &[(b"$1\r\na\r\n", b'$'), (b":1\r\n", b':')]);
    assert_eq!(out, b"$1\r\na\r\n-NOAUTH x\r\n:1\r\n+OK\r\n");
    assert!(s.is_empty());
}

#[test]
fn dropped_and_replaced_replies() {
    let mut s = ReplySlots::new();
    s.push_upstream(SlotKind::Plain, Emit::Drop);
    s.push_upstream(
        SlotKind::Plain,
        Emit::Replace(Bytes::from_static(b"-EXECABORT x\r\n")),
    );
    let out = run(&mut s, &[(b"+OK\r\n", b'+'), (b"+OK\r\n", b'+')]);
    assert_eq!(out, b"-EXECABORT x\r\n");
}

#[test]
fn resp2_subscribe_confirmations_fill_one_slot_and_messages_take_none() {
    let mut s = ReplySlots::new();
    s.push_upstream(
        SlotKind::Subscription {
            kind: PubSubKind::Subscribe,
            frames: 2,
        },
        Emit::Pass,
    );
    s.push_upstream(SlotKind::Plain, Emit::Pass); // PING in subscribed mode
    let sub_a: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
    let msg: &[u8] = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n";
    let sub_b: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n";
    let pong: &[u8] = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    run(&mut s, &[(sub_a, b'*'), (msg, b'*'), (sub_b, b'*')]);
    assert_eq!(s.len(), 1);
    assert!(s.subscribed());
    run(&mut s, &[(msg, b'*'), (pong, b'*')]);
    assert!(s.is_empty());
}

#[test]
fn unsubscribe_all_expects_one_frame_per_channel() {
    let mut s = ReplySlots::new();
    s.push_upstream(
        SlotKind::Subscription {
            kind: PubSubKind::Subscribe,
            frames: 2,
        },
        Emit::Pass,
    );
    run(
        &mut s,
        &[
            (b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", b'*'),
            (b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n", b'*'),
        ],
    );
    s.push_upstream(
        SlotKind::UnsubscribeAll(PubSubKind::Unsubscribe),
        Emit::Pass,
    );
    s.push_local(LocalReply::Static(b"+L\r\n"));
    let out = run(
        &mut s,
        &[(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n", b'*')],
    );
    assert!(!out.ends_with(b"+L\r\n"));
    let out = run(
        &mut s,
        &[(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n", b'*')],
    );
    assert!(out.ends_with(b"+L\r\n"));
    assert!(!s.subscribed() && s.is_empty());
    // Nothing subscribed: one frame with a null channel.
    s.push_upstream(
        SlotKind::UnsubscribeAll(PubSubKind::Unsubscribe),
        Emit::Pass,
    );
    run(
        &mut s,
        &[(b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", b'*')],
    );
    assert!(s.is_empty());
}

#[test]
fn resp3_pushes_and_hello() {
    let mut s = ReplySlots::new();
    s.push_upstream(SlotKind::Hello(Some(3)), Emit::Pass);
    run(&mut s, &[(b"%1\r\n+proto\r\n:3\r\n", b'%')]);
    assert!(s.resp3());
    s.push_upstream(
        SlotKind::Subscription {
            kind: PubSubKind::Subscribe,
            frames: 1,
        },
        Emit::Pass,
    );
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    // A list reply that looks like a message is not one in RESP3.
    let list: &[u8] = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n";
    run(
        &mut s,
        &[
            (b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", b'>'),
            (b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n", b'>'),
            (b">2\r\n$10\r\ninvalidate\r\n*0\r\n", b'>'),
            (list, b'*'),
        ],
    );
    assert!(s.is_empty());
}

#[test]
fn errors_end_a_subscription_slot_and_unexpected_frames_desync() {
    let mut s = ReplySlots::new();
    s.push_upstream(
        SlotKind::Subscription {
            kind: PubSubKind::Subscribe,
            frames: 3,
        },
        Emit::Pass,
    );
    run(&mut s, &[(b"-NOPERM x\r\n", b'-')]);
    assert!(s.is_empty());
    let mut out = BytesMut::new();
    assert_eq!(s.on_frame(b"+OK\r\n", b'+', false, &mut out), Err(Desync));
}

#[test]
fn monitor_lines_are_pushes_and_replies_still_fill_slots() {
    let mut s = ReplySlots::new();
    s.push_upstream(SlotKind::Monitor, Emit::Pass);
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    run(
        &mut s,
        &[
            (b"+OK\r\n", b'+'),
            (b"+1700000000.1 [0 127.0.0.1:1] \"PING\"\r\n", b'+'),
        ],
    );
    assert_eq!(s.len(), 1);
    run(&mut s, &[(b"+PONG\r\n", b'+')]);
    assert!(s.is_empty());
}

#[test]
fn upstream_failure_answers_every_waiting_slot_in_order() {
    let mut s = ReplySlots::new();
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    s.push_local(LocalReply::Static(b"+L\r\n"));
    s.push_upstream(SlotKind::Plain, Emit::Drop);
    s.push_upstream(SlotKind::Plain, Emit::Pass);
    let mut out = BytesMut::new();
    s.fail_upstream(&mut out, b"-ERR lost\r\n");
    assert_eq!(&out[..], b"-ERR lost\r\n+L\r\n-ERR lost\r\n");
}

/// Redis 7.0.15 delivers (un)subscribe confirmations under `CLIENT REPLY
/// OFF|SKIP`, in RESP2 and RESP3 alike, and the pushes written inside a reply
/// it hides: only the reply itself is dropped.
#[test]
fn hidden_replies_never_hide_confirmations_or_pushes() {
    for resp3 in [false, true] {
        let mut s = ReplySlots::new();
        s.resp3 = resp3;
        s.push_upstream(
            SlotKind::Subscription {
                kind: PubSubKind::Subscribe,
                frames: 1,
            },
            Emit::Drop,
        );
        s.push_upstream(SlotKind::Plain, Emit::Drop);
        let (ty, sub): (u8, &[u8]) = if resp3 {
            (b'>', b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
        } else {
            (b'*', b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
        };
        let out = run(&mut s, &[(sub, ty), (b"+PONG\r\n", b'+')]);
        assert_eq!(out, sub, "resp3={resp3}");
        assert!(s.is_empty() && s.subscribed());
    }
    let mut s = ReplySlots::new();
    s.resp3 = true;
    s.channels = 1;
    s.push_upstream(SlotKind::Plain, Emit::Drop); // EXEC under CLIENT REPLY OFF
    let push: &[u8] = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n";
    let mut exec = b"*2\r\n".to_vec();
    exec.extend_from_slice(push);
    exec.extend_from_slice(b":1\r\n*1\r\n");
    exec.extend_from_slice(push);
    exec.extend_from_slice(b"+OK\r\n");
    let out = run(&mut s, &[(&exec, b'*')]);
    assert_eq!(out, [push, push].concat());
}
