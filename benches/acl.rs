//! ACL check cost: `check()` for GET/SET/MGET against users with 1, 10 and 100
//! key patterns (the matching one last, so every pattern is tried), and for an
//! `allkeys` user. Compare with the scanner bench's per-command cost.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::acl::check::{check, CheckScratch};
use portcullis::acl::rules::apply_rules;
use portcullis::acl::User;
use portcullis::command::by_name;

/// A user with `n` key patterns; the last one matches the `app:` keys used below.
fn user(n: usize) -> User {
    let mut rules = String::from("on nopass &* +@all");
    for i in 0..n.saturating_sub(1) {
        rules.push_str(&format!(" ~tenant{i}:*:data"));
    }
    rules.push_str(" ~app:*");
    let mut u = User::new("bench");
    apply_rules(&mut u, &rules).expect("rules");
    u
}

fn bench_check(c: &mut Criterion) {
    let commands: [(&str, Vec<&[u8]>); 3] = [
        ("get", vec![b"GET", b"app:user:1000"]),
        ("set", vec![b"SET", b"app:user:1000", b"value"]),
        (
            "mget10",
            vec![
                b"MGET", b"app:1", b"app:2", b"app:3", b"app:4", b"app:5", b"app:6", b"app:7",
                b"app:8", b"app:9", b"app:10",
            ],
        ),
    ];
    let mut group = c.benchmark_group("acl_check");
    for n in [1, 10, 100] {
        let u = user(n);
        for (name, args) in &commands {
            let cmd = by_name(args[0]).expect("command");
            let mut scratch = CheckScratch::default();
            group.bench_function(format!("{name}/{n}_patterns"), |b| {
                b.iter(|| black_box(check(&u, cmd, black_box(args), &mut scratch)))
            });
        }
    }
    let mut allkeys = User::new("all");
    apply_rules(&mut allkeys, "on nopass ~* &* +@all").expect("rules");
    let get = by_name(b"GET").expect("get");
    let args: Vec<&[u8]> = vec![b"GET", b"app:user:1000"];
    let mut scratch = CheckScratch::default();
    group.bench_function("get/allkeys", |b| {
        b.iter(|| black_box(check(&allkeys, get, black_box(&args), &mut scratch)))
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
