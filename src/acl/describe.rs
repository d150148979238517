//! Step 3, policy shown back: a [`User`] described in Redis 7.0's own words, for
//! `ACL LIST` and `ACL GETUSER` (Redis's `ACLDescribeUser`, `ACLDescribeSelector`
//! and `ACLDescribeSelectorCommandRules`).
//!
//! The command rules are not the rules the user was written with: like Redis, they
//! are rebuilt from the command bitset. Start from `+@all` (if the selector can run
//! future commands) or `-@all`, then greedily add the category that fits the bitset
//! best until none helps, then fix up single commands and emit first-args.
//!
//! One difference is unavoidable: Redis emits the single-command rules in the
//! iteration order of its command hash table, whose seed is random per process (two
//! redis-server processes print the same user differently). We use the command
//! table's order (top-level commands by name, each followed by its subcommands);
//! the set of rules, and the order of everything else, is Redis's.
//!
//! Descriptions are bytes: patterns and first-args given inside a quoted selector
//! may be any bytes.

use crate::command::{CommandSpec, CATEGORIES, COMMANDS};
use crate::resp::encode::{bulk, header};

use super::selector::{KeyPattern, Selector, PERM_READ, PERM_WRITE};
use super::user::User;

// The "can run future commands" bit (Redis's reserved last command bit, set only by
// `+@all`/`allcommands` and cleared only by `-@all`/`nocommands`) is read as the
// selector's first bit past the command table, which exists only while the table
// does not fill its last bitset word.
const _: () = assert!(!COMMANDS.len().is_multiple_of(64));

/// The id one past the last command: a padding bit of the selector's bitset that
/// only `+@all` sets and only `-@all` clears, like Redis's future-commands bit.
fn future_bit_id() -> u16 {
    u16::try_from(COMMANDS.len()).unwrap_or(u16::MAX)
}

/// True when the selector was last given `+@all`/`allcommands` rather than
/// `-@all`/`nocommands` (Redis's `ACLSelectorCanExecuteFutureCommands`).
pub fn can_run_future_commands(sel: &Selector) -> bool {
    sel.allows_id(future_bit_id())
}

/// The user flags Redis shows (`ACLUserFlags` order): `on`/`off`, `nopass`,
/// `skip-sanitize-payload`, `sanitize-payload`.
pub fn user_flags(u: &User) -> Vec<&'static str> {
    let mut flags = vec![if u.enabled { "on" } else { "off" }];
    if u.nopass {
        flags.push("nopass");
    }
    if u.skip_sanitize_payload {
        flags.push("skip-sanitize-payload");
    }
    if u.sanitize_payload {
        flags.push("sanitize-payload");
    }
    flags
}

/// A password digest as Redis shows it: 64 lowercase hex digits.
pub fn password_hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key pattern as Redis writes it: `~p` (read and write), `%R~p` or `%W~p`.
fn push_key_pattern(out: &mut Vec<u8>, k: &KeyPattern) {
    let prefix: &[u8] = if k.perms == PERM_READ | PERM_WRITE {
        b"~"
    } else if k.perms & PERM_READ != 0 {
        b"%R~"
    } else if k.perms & PERM_WRITE != 0 {
        b"%W~"
    } else {
        b""
    };
    out.extend_from_slice(prefix);
    out.extend_from_slice(&k.pattern);
}

/// The `keys` field of `ACL GETUSER`: `~*`, or the patterns separated by spaces.
pub fn keys_field(sel: &Selector) -> Vec<u8> {
    if sel.all_keys {
        return b"~*".to_vec();
    }
    let mut out = Vec::new();
    for (i, k) in sel.keys.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_key_pattern(&mut out, k);
    }
    out
}

/// The `channels` field of `ACL GETUSER`: `&*`, or `&p` patterns separated by spaces.
pub fn channels_field(sel: &Selector) -> Vec<u8> {
    if sel.all_channels {
        return b"&*".to_vec();
    }
    let mut out = Vec::new();
    for (i, c) in sel.channels.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.push(b'&');
        out.extend_from_slice(c);
    }
    out
}

/// A scratch copy of a command bitset (Redis's temporary and fake selectors).
struct Bits(Vec<bool>);

impl Bits {
    fn of(sel: &Selector) -> Bits {
        Bits((0..COMMANDS.len()).map(|i| sel.allows_id(id(i))).collect())
    }

    fn all(on: bool) -> Bits {
        Bits(vec![on; COMMANDS.len()])
    }

    fn get(&self, cmd: &CommandSpec) -> bool {
        self.0.get(usize::from(cmd.id)).copied().unwrap_or(false)
    }

    /// `±cmd`: the command and, for a container, every subcommand.
    fn change(&mut self, cmd: &CommandSpec, on: bool) {
        for i in std::iter::once(cmd.id).chain(cmd.subcommands.iter().copied()) {
            if let Some(b) = self.0.get_mut(usize::from(i)) {
                *b = on;
            }
        }
    }

    /// `±@cat`: every command and subcommand in the category (with a container's
    /// subcommands).
    fn change_category(&mut self, cat: usize, on: bool) {
        for cmd in COMMANDS.iter().filter(|c| c.in_category(cat)) {
            self.change(cmd, on);
        }
    }

    /// Commands and subcommands of the category that are (on, off).
    fn count(&self, cat: usize) -> (usize, usize) {
        COMMANDS
            .iter()
            .filter(|c| c.in_category(cat))
            .fold((0, 0), |(on, off), c| {
                if self.get(c) {
                    (on + 1, off)
                } else {
                    (on, off + 1)
                }
            })
    }
}

fn id(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// The command rules of a selector, as Redis 7.0 rebuilds them from the bitset:
/// `+@all` or `-@all`, then categories, then single commands and first-args.
pub fn command_rules(sel: &Selector) -> Vec<u8> {
    let additive = !can_run_future_commands(sel);
    let mut rules: Vec<Vec<u8>> = vec![if additive { b"-@all" } else { b"+@all" }.to_vec()];
    // `fake` follows the rules emitted so far; `temp` starts as the selector and has
    // each chosen category undone, so that overlaps count against later categories.
    let mut fake = Bits::all(!additive);
    let mut temp = Bits::of(sel);
    let mut applied = [false; CATEGORIES.len()];
    loop {
        let mut best = None;
        let (mut min_diff, mut max_same) = (usize::MAX, 0);
        for (cat, done) in applied.iter().enumerate() {
            if *done {
                continue;
            }
            let (on, off) = temp.count(cat);
            let (diff, same) = if additive { (off, on) } else { (on, off) };
            if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                best = Some(cat);
                min_diff = diff;
                max_same = same;
            }
        }
        let Some(cat) = best else { break };
        fake.change_category(cat, additive);
        temp.change_category(cat, !additive);
        applied[cat] = true;
        let sign = if additive { "+@" } else { "-@" };
        rules.push(format!("{sign}{}", CATEGORIES[cat]).into_bytes());
    }
    let mut emit = |cmd: &CommandSpec, fake: &mut Bits| {
        let user_bit = sel.allows_id(cmd.id);
        if user_bit != fake.get(cmd) {
            let sign = if user_bit { "+" } else { "-" };
            rules.push(format!("{sign}{}", cmd.name).into_bytes());
            fake.change(cmd, user_bit);
        }
        if !user_bit {
            let args = sel.first_args.iter().filter(|(i, _)| *i == cmd.id);
            for arg in args.flat_map(|(_, list)| list) {
                let mut rule = format!("+{}|", cmd.name).into_bytes();
                rule.extend_from_slice(arg);
                rules.push(rule);
            }
        }
    };
    for cmd in COMMANDS.iter().filter(|c| c.parent.is_none()) {
        emit(cmd, &mut fake);
        for sub in cmd
            .subcommands
            .iter()
            .filter_map(|&s| COMMANDS.get(usize::from(s)))
        {
            emit(sub, &mut fake);
        }
    }
    debug_assert!(
        COMMANDS.iter().all(|c| fake.get(c) == sel.allows_id(c.id)),
        "described command rules do not rebuild the bitset"
    );
    rules.join(&b' ')
}

/// One selector as `ACL LIST` shows it: keys, channels, command rules.
pub fn describe_selector(sel: &Selector) -> Vec<u8> {
    let mut out = Vec::new();
    if sel.all_keys {
        out.extend_from_slice(b"~* ");
    } else {
        for k in &sel.keys {
            push_key_pattern(&mut out, k);
            out.push(b' ');
        }
    }
    if sel.all_channels {
        out.extend_from_slice(b"&* ");
    } else {
        out.extend_from_slice(b"resetchannels ");
        for c in &sel.channels {
            out.push(b'&');
            out.extend_from_slice(c);
            out.push(b' ');
        }
    }
    out.extend_from_slice(&command_rules(sel));
    out
}

/// The text after `user <name> ` in `ACL LIST`, as bytes: flags, `#<hex>`
/// passwords, the root selector, then ` (…)` for each other selector.
pub fn describe_user_bytes(u: &User) -> Vec<u8> {
    let mut out = Vec::new();
    for flag in user_flags(u) {
        out.extend_from_slice(flag.as_bytes());
        out.push(b' ');
    }
    for p in &u.passwords {
        out.push(b'#');
        out.extend_from_slice(password_hex(p).as_bytes());
        out.push(b' ');
    }
    for (i, sel) in u.selectors.iter().enumerate() {
        if i == 0 {
            out.extend_from_slice(&describe_selector(sel));
        } else {
            out.extend_from_slice(b" (");
            out.extend_from_slice(&describe_selector(sel));
            out.push(b')');
        }
    }
    out
}

/// The text after `user <name> ` in `ACL LIST` (bytes that are not UTF-8, possible
/// only in quoted selector patterns, are replaced).
pub fn describe_user(u: &User) -> String {
    String::from_utf8_lossy(&describe_user_bytes(u)).into_owned()
}

/// One `ACL LIST` line: `user <name> <description>`.
pub fn list_line(u: &User) -> Vec<u8> {
    let mut out = format!("user {} ", u.name).into_bytes();
    out.extend_from_slice(&describe_user_bytes(u));
    out
}

/// The `ACL LIST` reply: one bulk string per user, sorted by name (bytewise, like
/// Redis's radix tree).
pub fn list_reply<'a>(users: impl IntoIterator<Item = &'a User>) -> Vec<u8> {
    let mut users: Vec<&User> = users.into_iter().collect();
    users.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut out = Vec::new();
    header(&mut out, b'*', users.len());
    for u in users {
        bulk(&mut out, &list_line(u));
    }
    out
}

/// `commands`, `keys`, `channels` of one selector (Redis's
/// `aclAddReplySelectorDescription`).
fn selector_fields(out: &mut Vec<u8>, sel: &Selector) {
    bulk(out, b"commands");
    bulk(out, &command_rules(sel));
    bulk(out, b"keys");
    bulk(out, &keys_field(sel));
    bulk(out, b"channels");
    bulk(out, &channels_field(sel));
}

/// The `ACL GETUSER` reply: a null for an unknown user, otherwise `flags`,
/// `passwords`, the root selector's `commands`/`keys`/`channels`, and `selectors`
/// (one `commands`/`keys`/`channels` map per other selector). RESP2 writes maps as
/// flat arrays and the flag set as an array.
pub fn getuser_reply(u: Option<&User>, resp3: bool) -> Vec<u8> {
    let Some(u) = u else {
        let null: &[u8] = if resp3 { b"_\r\n" } else { b"$-1\r\n" };
        return null.to_vec();
    };
    let (map, set, map_len) = if resp3 {
        (b'%', b'~', 1)
    } else {
        (b'*', b'*', 2)
    };
    let mut out = Vec::new();
    header(&mut out, map, 6 * map_len);
    bulk(&mut out, b"flags");
    let flags = user_flags(u);
    header(&mut out, set, flags.len());
    for f in flags {
        bulk(&mut out, f.as_bytes());
    }
    bulk(&mut out, b"passwords");
    header(&mut out, b'*', u.passwords.len());
    for p in &u.passwords {
        bulk(&mut out, password_hex(p).as_bytes());
    }
    selector_fields(&mut out, u.root());
    bulk(&mut out, b"selectors");
    let others = u.selectors.get(1..).unwrap_or_default();
    header(&mut out, b'*', others.len());
    for sel in others {
        header(&mut out, map, 3 * map_len);
        selector_fields(&mut out, sel);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rules::apply_rules;

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        apply_rules(&mut u, rules).expect("valid rules");
        u
    }

    /// Descriptions checked by hand against redis-server 7.0.15.
    #[test]
    fn known_descriptions() {
        let cases = [
            ("on nopass ~* &* +@all", "on nopass ~* &* +@all"),
            ("", "off resetchannels -@all"),
            ("+@all -get +get", "off resetchannels +@all"),
            ("+@all -@all +get", "off resetchannels -@all +get"),
            (
                "on >a %R~foo ~bar %W~baz &ch1 &ch2 +get (+set ~x &y) () (%R~q* +@read -get allchannels)",
                "on #ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb \
                 %R~foo ~bar %W~baz resetchannels &ch1 &ch2 -@all +get \
                 (~x resetchannels &y -@all +set) (resetchannels -@all) \
                 (%R~q* &* -@all +@read -get)",
            ),
            ("+select|0 +select|1", "off resetchannels -@all +select|0 +select|1"),
            ("+@all -select +select|0", "off resetchannels +@all -select +select|0"),
            ("+config -config|get", "off resetchannels -@all +config -config|get"),
            ("%RW~* %R", "off ~* %R~ resetchannels -@all"),
            ("skip-sanitize-payload", "off skip-sanitize-payload resetchannels -@all"),
        ];
        for (rules, want) in cases {
            assert_eq!(describe_user(&user(rules)), want, "rules {rules:?}");
        }
    }

    #[test]
    fn getuser_shapes() {
        assert_eq!(getuser_reply(None, false), b"$-1\r\n");
        assert_eq!(getuser_reply(None, true), b"_\r\n");
        let u = user("on nopass ~* &* +@all");
        let want = "*12\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$6\r\nnopass\r\n\
                    $9\r\npasswords\r\n*0\r\n$8\r\ncommands\r\n$5\r\n+@all\r\n\
                    $4\r\nkeys\r\n$2\r\n~*\r\n$8\r\nchannels\r\n$2\r\n&*\r\n\
                    $9\r\nselectors\r\n*0\r\n";
        assert_eq!(
            String::from_utf8_lossy(&getuser_reply(Some(&u), false)),
            want
        );
        let u = user("()");
        let r3 = String::from_utf8_lossy(&getuser_reply(Some(&u), true)).into_owned();
        assert!(
            r3.starts_with("%6\r\n$5\r\nflags\r\n~1\r\n$3\r\noff\r\n"),
            "{r3}"
        );
        assert!(r3.ends_with("*1\r\n%3\r\n$8\r\ncommands\r\n$5\r\n-@all\r\n$4\r\nkeys\r\n$0\r\n\r\n$8\r\nchannels\r\n$0\r\n\r\n"), "{r3}");
    }

    #[test]
    fn list_is_sorted_bytewise() {
        let mut a = User::new("b");
        a.enabled = true;
        let b = User::new("B");
        let c = User::new("ab");
        let out = String::from_utf8_lossy(&list_reply([&a, &b, &c])).into_owned();
        assert_eq!(
            out,
            "*3\r\n$30\r\nuser B off resetchannels -@all\r\n\
             $31\r\nuser ab off resetchannels -@all\r\n\
             $29\r\nuser b on resetchannels -@all\r\n"
        );
    }
}
