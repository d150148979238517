//! Step 3, policy: the glob matcher behind key (`~`, `%R~`, `%W~`) and channel (`&`) patterns.
//!
//! [`matches()`] is Redis 7.0.15's `stringmatchlen(pattern, string, nocase = 0)` as shipped by
//! Debian (with the CVE-2024-31228 nesting limit), byte for byte, quirks included; see
//! section 4 of the ACL reference. Key and channel checks call it once per pattern and name; it
//! neither allocates nor panics, and its recursion is at most 1001 `*` levels deep.
//!
//! Semantics, with `p` the remaining pattern and `s` the remaining string; the main loop runs
//! while both are non-empty:
//! - `*`: a run of `*`s is one `*`. If it ends the pattern, match. Otherwise try the rest of the
//!   pattern at every non-empty suffix of `s`; if none matches, give up on the whole match
//!   (Redis's `skipLongerMatches`). Each such attempt is one level deeper; deeper than 1000
//!   levels is a no-match (Debian).
//! - `?`: any one byte.
//! - `[`: a class of single bytes (`^` negates, `\` escapes, `a-b` ranges, `]` closes); it
//!   consumes one byte. Quirks are listed on `class_matches`.
//! - `\`: if another pattern byte follows, that byte is literal; a trailing `\` is a literal `\`.
//! - anything else: that byte.
//! - After each step, once `s` is used up, trailing `*`s are dropped.
//!
//! The result is a match only if both are used up, so `*` does not match the empty string.

/// Redis gives up (no match) when `*` expansions nest deeper than this.
const MAX_NESTING: u32 = 1000;

/// Redis 7.0.15 (Debian) `stringmatchlen(pattern, string, nocase=0)`: byte-wise, case-sensitive,
/// with every quirk (see the reference) and the >1000 nesting give-up.
///
/// ```
/// use portcullis::acl::glob::matches;
/// assert!(matches(b"cache:*", b"cache:users"));
/// assert!(!matches(b"*", b"")); // `%R~*` denies the empty key
/// assert!(matches(b"[a-]", b"]")); // the range is ']'..='a'
/// assert!(matches(b"x\\", b"x\\")); // a trailing backslash is literal
/// ```
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
    match_at(pattern, string, 0) == Outcome::Match
}

/// What one (possibly nested) match attempt concluded.
///
/// `GiveUp` stands for Redis's shared `skipLongerMatches` flag: Redis sets it only when a `*`
/// found no suffix to match, and reads it only in a `*` loop straight after a nested call
/// returned no-match, where it then returns no-match at once. Every frame below the top is
/// in such a loop, so once the flag is set every frame returns no-match without doing
/// anything else; returning `GiveUp` up the stack does exactly that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The pattern matches the string.
    Match,
    /// No match here; an enclosing `*` may try a later suffix.
    NoMatch,
    /// No match anywhere: every enclosing `*` stops too.
    GiveUp,
}

/// Matches `pattern` against `string` at `nesting` levels of `*` expansion.
fn match_at(mut pattern: &[u8], mut string: &[u8], nesting: u32) -> Outcome {
    if nesting > MAX_NESTING {
        // Debian's limit: a plain no-match, so the enclosing `*` tries its next suffix.
        return Outcome::NoMatch;
    }
    while let (Some(&op), Some(&byte)) = (pattern.first(), string.first()) {
        match op {
            b'*' => return star(pattern, string, nesting),
            b'?' => pattern = &pattern[1..],
            b'[' => match class_matches(&pattern[1..], byte) {
                (true, rest) => pattern = rest,
                (false, _) => return Outcome::NoMatch,
            },
            _ => {
                let (literal, used) = match pattern {
                    [b'\\', escaped, ..] => (*escaped, 2),
                    _ => (op, 1),
                };
                if literal != byte {
                    return Outcome::NoMatch;
                }
                pattern = &pattern[used..];
            }
        }
        string = &string[1..];
        if string.is_empty() {
            pattern = skip_stars(pattern);
            break;
        }
    }
    if pattern.is_empty() && string.is_empty() {
        Outcome::Match
    } else {
        Outcome::NoMatch
    }
}

/// The `*` step: `pattern` starts with `*` and `string` is not empty.
fn star(pattern: &[u8], mut string: &[u8], nesting: u32) -> Outcome {
    let rest = skip_stars(pattern);
    if rest.is_empty() {
        return Outcome::Match;
    }
    while !string.is_empty() {
        match match_at(rest, string, nesting + 1) {
            Outcome::NoMatch => string = &string[1..],
            decided => return decided,
        }
    }
    Outcome::GiveUp
}

/// `pattern` without its leading `*`s.
fn skip_stars(mut pattern: &[u8]) -> &[u8] {
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
    }
    pattern
}

/// Whether `byte` is in the class whose text (after the `[`) starts `pattern`, and the
/// pattern after the class.
///
/// An optional `^` negates. Members are read in this order of precedence until `]`:
/// - `\x` (at least 2 bytes left): the literal `x`;
/// - `]`: the end of the class (so `[]` matches nothing and `[^]` any byte);
/// - end of pattern: an unterminated class ends here with the members seen so far;
/// - `a-b` (at least 3 bytes left): a range, ends in either order, compared as signed C
///   `char`s (amd64), so bytes >= 0x80 sort below 0x00. In `[a-]` the `]` is the range end;
/// - any other byte, including a lone trailing `\`: that byte.
fn class_matches(mut pattern: &[u8], byte: u8) -> (bool, &[u8]) {
    let negated = pattern.first() == Some(&b'^');
    if negated {
        pattern = &pattern[1..];
    }
    let mut hit = false;
    loop {
        match pattern {
            [b'\\', escaped, rest @ ..] => {
                hit |= *escaped == byte;
                pattern = rest;
            }
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [] => break,
            [start, b'-', end, rest @ ..] => {
                hit |= in_signed_range(*start, *end, byte);
                pattern = rest;
            }
            [member, rest @ ..] => {
                hit |= *member == byte;
                pattern = rest;
            }
        }
    }
    (hit != negated, pattern)
}

/// Whether `byte` lies between `start` and `end` (either order), all read as signed `char`.
fn in_signed_range(start: u8, end: u8, byte: u8) -> bool {
    let (a, b, c) = (start as i8, end as i8, byte as i8);
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    (low..=high).contains(&c)
}

#[cfg(test)]
mod tests {
    use super::matches;

    /// `n` copies of `unit` concatenated.
    fn repeat(unit: &[u8], n: usize) -> Vec<u8> {
        unit.repeat(n)
    }

    #[track_caller]
    fn yes(pattern: &[u8], string: &[u8]) {
        assert!(
            matches(pattern, string),
            "{pattern:?} should match {string:?}"
        );
    }

    #[track_caller]
    fn no(pattern: &[u8], string: &[u8]) {
        assert!(
            !matches(pattern, string),
            "{pattern:?} should not match {string:?}"
        );
    }

    #[test]
    fn star_does_not_match_the_empty_string() {
        no(b"*", b""); // `%R~*` denies `GET ""`
        no(b"**", b"");
        yes(b"*", b"a");
        yes(b"*", b"\0");
        yes(b"", b"");
        no(b"", b"a");
        no(b"a", b"");
    }

    #[test]
    fn stars() {
        yes(b"a*", b"a");
        yes(b"a***", b"a");
        yes(b"a**b", b"ab");
        yes(b"a*b", b"axxb");
        no(b"a*b", b"axxbc");
        yes(b"*a*", b"xa");
        yes(b"ab*", b"ab");
        no(b"a*?", b"a"); // trailing `?` is not dropped like a trailing `*`
        yes(b"a*?", b"ab");
        yes(b"user:*:profile", b"user:42:profile");
        yes(b"user:*:profile", b"user::profile");
        no(b"user:*:profile", b"user:42:profiles");
        yes(b"a*b*c*d", b"aXbYcZd");
        no(b"a*b*c*d", b"aXbYcZ");
    }

    #[test]
    fn question_mark_is_one_byte() {
        yes(b"?", b"\xff");
        no(b"?", b"");
        no(b"?", b"ab");
        yes(b"a?c", b"abc");
    }

    #[test]
    fn literals_are_case_sensitive_and_binary() {
        no(b"abc", b"ABC");
        yes(b"a\0b", b"a\0b");
        no(b"a\0b", b"a\0c");
        yes(b"\xe9t\xe9", b"\xe9t\xe9");
    }

    #[test]
    fn backslash() {
        yes(b"x\\", b"x\\"); // trailing backslash is a literal backslash
        yes(b"\\", b"\\");
        no(b"\\", b"");
        yes(b"\\*", b"*");
        no(b"\\*", b"a");
        yes(b"\\?", b"?");
        no(b"\\?", b"a");
        yes(b"\\[", b"[");
        yes(b"\\a", b"a");
        yes(b"\\\\", b"\\");
        no(b"\\\\", b"\\\\");
    }

    #[test]
    fn unterminated_classes() {
        for s in [&b"a"[..], b"b", b"c"] {
            yes(b"[abc", s);
        }
        no(b"[abc", b"d");
        no(b"[abc", b"ab");
        for s in [&b""[..], b"[", b"a", b"]"] {
            no(b"[", s);
        }
        yes(b"[^", b"a");
        yes(b"[^", b"^");
        no(b"[^", b"");
        no(b"[^", b"ab");
        yes(b"[a-", b"a"); // too short for a range: members 'a' and '-'
        yes(b"[a-", b"-");
        no(b"[a-", b"b");
        yes(b"[\\", b"\\"); // a lone `\` is a member
        yes(b"x[\\", b"x\\");
    }

    #[test]
    fn empty_and_negated_empty_classes() {
        for s in [&b""[..], b"a", b"]", b"[]"] {
            no(b"[]", s);
            no(b"[]]", s);
        }
        yes(b"[^]", b"a");
        yes(b"[^]", b"]");
        yes(b"[^]", b"\0");
        no(b"[^]", b"ab");
        yes(b"[^]]", b"a]");
    }

    #[test]
    fn classes() {
        yes(b"[abc]", b"b");
        no(b"[abc]", b"d");
        yes(b"[^abc]", b"d");
        no(b"[^abc]", b"a");
        yes(b"[\\]]", b"]");
        yes(b"[\\-x]", b"-");
        no(b"[\\-x]", b"a");
        yes(b"[a\\-z]", b"-");
        no(b"[a\\-z]", b"m");
        yes(b"[*?]", b"*");
        no(b"[*?]x", b"ax");
        yes(b"[a-c]x", b"bx");
    }

    #[test]
    fn reversed_ranges_are_swapped() {
        for s in [&b"a"[..], b"m", b"z"] {
            yes(b"[z-a]", s);
            yes(b"[a-z]", s);
        }
        no(b"[z-a]", b"A");
        no(b"[^z-a]", b"m");
    }

    #[test]
    fn range_ending_in_the_closing_bracket() {
        // `[a-]` is the range ']'..='a' (0x5D..=0x61) and the class stays open.
        for s in [&b"]"[..], b"^", b"_", b"`", b"a"] {
            yes(b"[a-]", s);
        }
        for s in [&b"-"[..], b"b", b"\\", b"a]"] {
            no(b"[a-]", s);
        }
        yes(b"[a-]x", b"x"); // `x` is one more member, not a literal after the class
        no(b"[a-]x", b"ax");
    }

    #[test]
    fn star_then_open_bracket_never_matches() {
        for s in [&b""[..], b"[", b"a[", b"ab", b"\0"] {
            no(b"*[", s);
        }
    }

    #[test]
    fn high_bytes_in_ranges_compare_as_signed_char() {
        // 0x80..=0xff is -128..=-1: a plain range over the high half.
        yes(b"[\x80-\xff]", b"\x80");
        yes(b"[\x80-\xff]", b"\xff");
        no(b"[\x80-\xff]", b"\x7f");
        no(b"[\x80-\xff]", b"\0");
        // 0x00..=0xff is 0..=-1, swapped to -1..=0: only 0xff and 0x00.
        yes(b"[\x00-\xff]", b"\xff");
        yes(b"[\x00-\xff]", b"\0");
        no(b"[\x00-\xff]", b"a");
        no(b"[\x00-\xff]", b"\xfe");
        // 'a'..=0xff is 97..=-1, swapped to -1..=97.
        yes(b"[a-\xff]", b"\xff");
        yes(b"[a-\xff]", b"0");
        no(b"[a-\xff]", b"b");
        no(b"[a-\xff]", b"\x80");
        // 0x7f..=0x80 is 127..=-128, swapped to every byte.
        for byte in 0..=255u8 {
            yes(b"[\x7f-\x80]", &[byte]);
        }
        no(b"[^\x80-\xff]", b"\x90");
        yes(b"[^\x80-\xff]", b"z");
        // Plain members compare by equality, sign does not matter.
        yes(b"[\xe9]", b"\xe9");
        no(b"[\xe9]", b"\x69");
    }

    #[test]
    fn nesting_limit() {
        let a1200 = vec![b'a'; 1200];
        no(&repeat(b"a*", 1100), &a1200);
        yes(&repeat(b"a*", 900), &a1200);
        // n copies nest n-1 levels deep; the limit is 1000 levels.
        yes(&repeat(b"a*", 1001), &a1200);
        no(&repeat(b"a*", 1002), &a1200);
        // A run of stars is one level.
        yes(&[&b"a"[..], &[b'*'; 5000]].concat(), b"ab");
        // Stars dropped after the string is used up do not nest.
        yes(&repeat(b"*", 3000), b"a");
        let mut p = repeat(b"*a", 1000);
        p.extend_from_slice(&repeat(b"*", 10));
        yes(&p, &vec![b'a'; 1000]);
        no(&repeat(b"*a", 1002), &vec![b'a'; 1002]);
    }

    #[test]
    fn pathological_patterns_finish() {
        let s = vec![b'a'; 5000];
        let mut p = repeat(b"a*", 999);
        p.push(b'b');
        no(&p, &s);
        no(&repeat(b"*?", 2000), &s);
    }

    mod spec {
        //! The matcher against a plain backtracking model without the give-up shortcut,
        //! on patterns too short to reach the nesting limit.
        use proptest::prelude::*;

        /// Redis's glob rules with plain backtracking: `*` tries every non-empty suffix.
        fn model(p: &[u8], s: &[u8]) -> bool {
            let (Some(&op), Some(&byte)) = (p.first(), s.first()) else {
                return p.is_empty() && s.is_empty();
            };
            let rest = match op {
                b'*' => {
                    let tail = trim_stars(p);
                    return tail.is_empty() || (0..s.len()).any(|i| model(tail, &s[i..]));
                }
                b'?' => &p[1..],
                b'[' => match class(&p[1..], byte) {
                    Some(rest) => rest,
                    None => return false,
                },
                b'\\' if p.len() >= 2 => match p[1] == byte {
                    true => &p[2..],
                    false => return false,
                },
                _ if op == byte => &p[1..],
                _ => return false,
            };
            let s = &s[1..];
            let rest = if s.is_empty() { trim_stars(rest) } else { rest };
            model(rest, s)
        }

        fn trim_stars(p: &[u8]) -> &[u8] {
            let n = p.iter().take_while(|&&b| b == b'*').count();
            &p[n..]
        }

        /// The pattern after a class containing `byte`, or `None`.
        fn class(p: &[u8], byte: u8) -> Option<&[u8]> {
            let (neg, mut i) = if p.first() == Some(&b'^') {
                (true, 1)
            } else {
                (false, 0)
            };
            let mut hit = false;
            loop {
                if p.len() - i >= 2 && p[i] == b'\\' {
                    hit |= p[i + 1] == byte;
                    i += 2;
                } else if i < p.len() && p[i] == b']' {
                    i += 1;
                    break;
                } else if i == p.len() {
                    break;
                } else if p.len() - i >= 3 && p[i + 1] == b'-' {
                    let (lo, hi) = (p[i] as i8, p[i + 2] as i8);
                    let c = byte as i8;
                    hit |= lo.min(hi) <= c && c <= lo.max(hi);
                    i += 3;
                } else {
                    hit |= p[i] == byte;
                    i += 1;
                }
            }
            (hit != neg).then_some(&p[i..])
        }

        fn pattern() -> impl Strategy<Value = Vec<u8>> {
            let byte = prop::sample::select(b"**??[[]]^^--\\\\ab\x80\xff".to_vec());
            prop::collection::vec(byte, 0..12)
        }

        fn string() -> impl Strategy<Value = Vec<u8>> {
            let byte = prop::sample::select(b"ab*?[]^-\\\x80\xff\0".to_vec());
            prop::collection::vec(byte, 0..8)
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 4000,
                // Failures are reported, not written into the source tree.
                failure_persistence: None,
                ..ProptestConfig::default()
            })]
            #[test]
            fn same_as_backtracking(p in pattern(), s in string()) {
                prop_assert_eq!(super::matches(&p, &s), model(&p, &s));
            }
        }
    }
}
