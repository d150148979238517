//! Pure policy: may this user run this command with these arguments?
//! Redis 7.0's `ACLCheckAllUserCommandPerm`: the root selector, then each
//! `(...)` selector; allowed when one selector allows the command and all of
//! its keys and channels. No I/O, no clock, no allocation once warmed up.

use crate::command::keys::{
    acl_keys, command_channels, command_keys, needs_read, needs_write, ArgList, ChannelRef, KeyRef,
};
use crate::command::{flags, CommandSpec};

use super::glob;
use super::selector::{Selector, PERM_READ, PERM_WRITE};
use super::user::User;
use crate::resp::encode::{c_str, error_text};

/// Why a command was refused; the index is the offending argument's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No selector allows the command.
    Command,
    /// A key no selector allows (argument index).
    Key(usize),
    /// A channel no selector allows (argument index).
    Channel(usize),
}

impl Denial {
    /// Redis's ranking when selectors disagree: channel > key > command.
    fn rank(self) -> (u8, usize) {
        match self {
            Denial::Command => (1, 0),
            Denial::Key(i) => (2, i),
            Denial::Channel(i) => (4, i),
        }
    }
}

/// Reusable buffers for [`check`], so a check does not allocate.
#[derive(Debug, Default)]
pub struct CheckScratch {
    keys: Vec<KeyRef>,
    channels: Vec<ChannelRef>,
    /// Check only the keys Redis 7.0 itself finds (for differential tests
    /// against Redis); otherwise the proxy's stricter [`acl_keys`].
    redis_keys_only: bool,
}

impl CheckScratch {
    /// Scratch for checking exactly as Redis 7.0 does: its own key extraction,
    /// without the keys the proxy adds (`acl_keys`). For tests against Redis.
    pub fn redis_exact() -> Self {
        CheckScratch {
            redis_keys_only: true,
            ..Self::default()
        }
    }
}

/// Decides whether `user` may run `cmd` (already resolved, arity checked) with `args`.
pub fn check(
    user: &User,
    cmd: &CommandSpec,
    args: &impl ArgList,
    scratch: &mut CheckScratch,
) -> Result<(), Denial> {
    if user.restrict_scripts && runs_code(cmd) && !user.allows_everything() {
        return Err(Denial::Command);
    }
    let mut keys_ready = false;
    let mut channels_ready = false;
    let mut worst = Denial::Command;
    for sel in &user.selectors {
        let result = check_selector(
            sel,
            cmd,
            args,
            scratch,
            &mut keys_ready,
            &mut channels_ready,
        );
        let Err(denial) = result else {
            return Ok(());
        };
        let (rank, idx) = denial.rank();
        let (worst_rank, worst_idx) = worst.rank();
        if rank > worst_rank || (rank == worst_rank && idx > worst_idx) {
            worst = denial;
        }
    }
    Err(worst)
}

/// True when `ACL DRYRUN <user> GET <key>` would say `OK`: some selector
/// allows `GET` and reading `key` (what `filter_listings` keeps).
pub fn may_read(user: &User, key: &[u8], scratch: &mut CheckScratch) -> bool {
    let Some(get) = crate::command::by_name(b"get") else {
        return false;
    };
    check(user, get, &[b"GET".as_slice(), key], scratch).is_ok()
}

/// Commands that run a script or load code whose inner calls the proxy cannot
/// check (`auth.scripts`).
pub fn runs_code(cmd: &CommandSpec) -> bool {
    matches!(
        cmd.name,
        "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
            | "fcall"
            | "fcall_ro"
            | "script|load"
            | "function|load"
            | "function|restore"
    )
}

/// True when the one selector `sel` allows the command with its keys and channels.
pub fn selector_allows(
    sel: &Selector,
    cmd: &CommandSpec,
    args: &impl ArgList,
    scratch: &mut CheckScratch,
) -> bool {
    let (mut keys_ready, mut channels_ready) = (false, false);
    check_selector(
        sel,
        cmd,
        args,
        scratch,
        &mut keys_ready,
        &mut channels_ready,
    )
    .is_ok()
}

fn check_selector(
    sel: &Selector,
    cmd: &CommandSpec,
    args: &impl ArgList,
    scratch: &mut CheckScratch,
    keys_ready: &mut bool,
    channels_ready: &mut bool,
) -> Result<(), Denial> {
    if !sel.all_commands && !cmd.has_flag(flags::NO_AUTH) && !sel.allows_id(cmd.id) {
        let first = args.arg(if cmd.parent.is_some() { 2 } else { 1 });
        let listed = sel.first_args.iter().find(|(id, _)| *id == cmd.id);
        let allowed = match (first, listed) {
            (Some(a), Some((_, list))) if args.argc() >= 2 => {
                list.iter().any(|f| f.eq_ignore_ascii_case(c_str(a)))
            }
            _ => false,
        };
        if !allowed {
            return Err(Denial::Command);
        }
    }
    if !sel.all_keys {
        if !*keys_ready {
            if scratch.redis_keys_only {
                command_keys(cmd, args, &mut scratch.keys);
            } else {
                acl_keys(cmd, args, &mut scratch.keys);
            }
            *keys_ready = true;
        }
        for k in &scratch.keys {
            let key = args.arg(k.index).unwrap_or_default();
            let mut need = 0;
            if needs_read(k.flags) {
                need |= PERM_READ;
            }
            if needs_write(k.flags) {
                need |= PERM_WRITE;
            }
            let ok = sel
                .keys
                .iter()
                .any(|p| p.perms & need == need && glob::matches(&p.pattern, key));
            if !ok {
                return Err(Denial::Key(k.index));
            }
        }
    }
    if !sel.all_channels {
        if !*channels_ready {
            command_channels(cmd, args, &mut scratch.channels);
            *channels_ready = true;
        }
        for c in &scratch.channels {
            let channel = args.arg(c.index).unwrap_or_default();
            let ok = sel.channels.iter().any(|p| {
                if c.pattern {
                    // PSUBSCRIBE patterns compare literally, as C strings (strcmp).
                    let until_nul = c_str(channel);
                    p.as_slice() == until_nul
                } else {
                    glob::matches(p, channel)
                }
            });
            if !ok {
                return Err(Denial::Channel(c.index));
            }
        }
    }
    Ok(())
}

/// Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess`: some selector allows the
/// command and has `allkeys` or a `*` pattern with read permission.
pub fn unrestricted_key_access(
    user: &User,
    cmd: &CommandSpec,
    args: &impl ArgList,
    scratch: &mut CheckScratch,
) -> bool {
    user.selectors.iter().any(|sel| {
        let unrestricted = sel.all_keys
            || sel
                .keys
                .iter()
                .any(|k| k.perms & PERM_READ != 0 && k.pattern == b"*");
        unrestricted && selector_allows(sel, cmd, args, scratch)
    })
}

/// `ACL DRYRUN`'s denial text (a bulk string in Redis 7.0).
pub fn dryrun_text(denial: Denial, cmd: &CommandSpec, args: &impl ArgList) -> Vec<u8> {
    let mut out = Vec::new();
    match denial {
        Denial::Command => {
            out.extend_from_slice(b"This user has no permissions to run the '");
            out.extend_from_slice(cmd.name.as_bytes());
            out.extend_from_slice(b"' command");
        }
        Denial::Key(i) | Denial::Channel(i) => {
            out.extend_from_slice(b"This user has no permissions to access the '");
            out.extend_from_slice(c_str(args.arg(i).unwrap_or_default()));
            out.extend_from_slice(if matches!(denial, Denial::Key(_)) {
                b"' key"
            } else {
                b"' channel"
            });
        }
    }
    out
}

/// The `-NOPERM ...` error reply for a refused command.
pub fn noperm_reply(denial: Denial, cmd: &CommandSpec) -> Vec<u8> {
    match denial {
        Denial::Command => format!("-NOPERM this user has no permissions to run the '{}' command\r\n", cmd.name).into_bytes(),
        Denial::Key(_) => b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n".to_vec(),
        Denial::Channel(_) => {
            b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n".to_vec()
        }
    }
}

/// The whole `ACL DRYRUN <user> <args...>` reply (RESP bytes) for an existing
/// user: `+OK`, a bulk-string denial, or Redis's error for an unknown command
/// or a wrong argument count. Like Redis, ignores `on`/`off` and passwords.
pub fn dryrun_reply(user: &User, args: &impl ArgList, scratch: &mut CheckScratch) -> Vec<u8> {
    use crate::command::{resolve, Resolved};
    let name = args.arg(0).unwrap_or_default();
    let cmd = match resolve(name, args.arg(1)) {
        Resolved::Found(cmd) => cmd,
        Resolved::UnknownCommand | Resolved::UnknownSubcommand(_) => {
            let mut out = b"-ERR Command '".to_vec();
            error_text(&mut out, c_str(name));
            out.extend_from_slice(b"' not found\r\n");
            return out;
        }
    };
    if !cmd.arity_ok(args.argc()) {
        return format!(
            "-ERR wrong number of arguments for '{}' command\r\n",
            cmd.name
        )
        .into_bytes();
    }
    match check(user, cmd, args, scratch) {
        Ok(()) => b"+OK\r\n".to_vec(),
        Err(denial) => {
            let text = dryrun_text(denial, cmd, args);
            let mut out = format!("${}\r\n", text.len()).into_bytes();
            out.extend_from_slice(&text);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}
