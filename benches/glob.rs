//! Glob matcher cost: [`matches`] on typical ACL key patterns against keys that match and
//! keys that do not, one benchmark per pair (`<pattern>/<hit|miss>`), reported as time per call.
//!
//! ```text
//! cargo bench --bench glob -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;

use criterion::Criterion;
use portcullis::acl::glob::matches;

/// One pattern with a key it matches and a key it does not.
struct Case {
    name: &'static str,
    pattern: &'static [u8],
    hit: &'static [u8],
    miss: &'static [u8],
}

/// Typical ACL key patterns.
const CASES: &[Case] = &[
    Case {
        name: "prefix",
        pattern: b"cache:*",
        hit: b"cache:session:8f14e45fceea167a",
        miss: b"users:session:8f14e45fceea167a",
    },
    Case {
        name: "middle",
        pattern: b"user:*:profile",
        hit: b"user:1048576:profile",
        miss: b"user:1048576:settings",
    },
    Case {
        name: "star",
        pattern: b"*",
        hit: b"orders:2024:11:23",
        miss: b"",
    },
    Case {
        name: "four_parts",
        pattern: b"a*b*c*d",
        hit: b"a-xxxxxxxx-b-xxxxxxxx-c-xxxxxxxx-d",
        miss: b"a-xxxxxxxx-b-xxxxxxxx-c-xxxxxxxx-e",
    },
    Case {
        name: "literal",
        pattern: b"config:main",
        hit: b"config:main",
        miss: b"config:mail",
    },
    Case {
        name: "class",
        pattern: b"shard:[0-9][0-9]:*",
        hit: b"shard:07:queue",
        miss: b"shard:x7:queue",
    },
];

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    for &Case {
        name,
        pattern,
        hit,
        miss,
    } in CASES
    {
        assert!(matches(pattern, hit), "{name}: should match");
        assert!(!matches(pattern, miss), "{name}: should not match");
        let mut group = criterion.benchmark_group(name);
        group.bench_function("hit", |b| {
            b.iter(|| matches(black_box(pattern), black_box(hit)))
        });
        group.bench_function("miss", |b| {
            b.iter(|| matches(black_box(pattern), black_box(miss)))
        });
        group.finish();
    }
    criterion.final_summary();
}
