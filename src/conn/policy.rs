//! The checks every command passes before the session acts on it, in Redis
//! 7.0's `processCommand` order: unknown command, arity, NOAUTH, ACL (and
//! SORT's BY/GET rule). Pure: the verdict is applied by the session.

use crate::acl::check::{check, noperm_reply, unrestricted_key_access, CheckScratch};
use crate::acl::User;
use crate::command::{flags, resolve, CommandSpec, Resolved, Role};
use crate::resp::encode::{c_str, error_byte, is_keyword};
use crate::resp::num::string2ll;
use crate::resp::request::Args;
use crate::upstream::Renames;

/// Why a command is answered by the proxy instead of being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown command or subcommand, wrong arity, NOAUTH: the RESP error.
    Error(Vec<u8>),
    /// An ACL denial: the RESP error, the reason, and the command's full name.
    Denied(Vec<u8>, crate::acl::check::Denial, &'static str),
}

impl Refusal {
    /// The reply bytes.
    pub fn reply(&self) -> &[u8] {
        match self {
            Refusal::Error(r) | Refusal::Denied(r, _, _) => r,
        }
    }
}

/// The verdict on one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCheck {
    /// Known, well-formed, allowed.
    Pass(&'static CommandSpec),
    /// Not in the proxy's table, and the user may run anything: forward it.
    ForwardUnknown,
    /// Answer with an error (Redis flags an open transaction as failed); the
    /// command when it was resolved.
    Refuse(Refusal, Option<&'static CommandSpec>),
}

/// Checks `args` for `user` (`None` = unauthenticated); a command the upstream
/// does not have (`rename_commands` to `""`) is an unknown command.
pub fn check_command(
    args: Args<'_>,
    user: Option<&User>,
    renames: &Renames,
    scratch: &mut CheckScratch,
) -> CommandCheck {
    let name = args.get(0).unwrap_or_default();
    let cmd = match resolve(name, args.get(1)) {
        Resolved::Found(cmd) if renames.missing(cmd) => {
            let reply = unknown_reply(&Resolved::UnknownCommand, args);
            return CommandCheck::Refuse(Refusal::Error(reply), None);
        }
        Resolved::Found(cmd) => cmd,
        other => {
            if user.is_some_and(User::allows_unknown_commands) {
                return CommandCheck::ForwardUnknown;
            }
            return CommandCheck::Refuse(Refusal::Error(unknown_reply(&other, args)), None);
        }
    };
    if !cmd.arity_ok(args.len()) {
        let msg = format!(
            "-ERR wrong number of arguments for '{}' command\r\n",
            cmd.name
        );
        return CommandCheck::Refuse(Refusal::Error(msg.into_bytes()), Some(cmd));
    }
    let Some(user) = user else {
        if cmd.has_flag(flags::NO_AUTH) {
            return CommandCheck::Pass(cmd);
        }
        return CommandCheck::Refuse(Refusal::Error(super::replies::NOAUTH.to_vec()), Some(cmd));
    };
    if let Err(denial) = check(user, cmd, &args, scratch) {
        return CommandCheck::Refuse(
            Refusal::Denied(noperm_reply(denial, cmd), denial, cmd.name),
            Some(cmd),
        );
    }
    if Role::of(cmd) == Role::Sort {
        if let Some(option) = sort_needs_full_access(cmd, args) {
            if !unrestricted_key_access(user, cmd, &args, scratch) {
                let msg = format!(
                    "-ERR {option} option of SORT denied due to insufficient ACL permissions.\r\n"
                );
                return CommandCheck::Refuse(Refusal::Error(msg.into_bytes()), Some(cmd));
            }
        }
    }
    CommandCheck::Pass(cmd)
}

/// Redis's unknown command / unknown subcommand errors.
fn unknown_reply(resolved: &Resolved, args: Args<'_>) -> Vec<u8> {
    let trunc = |s: &[u8], n: usize| -> Vec<u8> { s[..s.len().min(n)].to_vec() };
    let name = args.get(0).unwrap_or_default();
    let mut msg = Vec::new();
    if let Resolved::UnknownSubcommand(_) = resolved {
        msg.extend_from_slice(b"-ERR unknown subcommand '");
        msg.extend(trunc(c_str(args.get(1).unwrap_or_default()), 128));
        msg.extend_from_slice(b"'. Try ");
        msg.extend(c_str(name).to_ascii_uppercase());
        msg.extend_from_slice(b" HELP.");
    } else {
        msg.extend_from_slice(b"-ERR unknown command '");
        msg.extend(trunc(c_str(name), 128));
        msg.extend_from_slice(b"', with args beginning with: ");
        let mut listed = Vec::new();
        for arg in args.iter().skip(1) {
            if listed.len() >= 128 {
                break;
            }
            let room = 128 - listed.len();
            listed.push(b'\'');
            listed.extend(trunc(c_str(arg), room));
            listed.extend_from_slice(b"' ");
        }
        msg.extend(listed);
    }
    for b in &mut msg[1..] {
        *b = error_byte(*b);
    }
    msg.extend_from_slice(b"\r\n");
    msg
}

/// Runs SORT's option loop like Redis; `Some("BY"|"GET")` when it reaches a BY
/// with a `*` pattern or a GET before any syntax error (which the upstream reports).
fn sort_needs_full_access(cmd: &CommandSpec, args: Args<'_>) -> Option<&'static str> {
    let readonly = cmd.name == "sort_ro";
    let argc = args.len();
    let mut j = 2;
    while j < argc {
        let left = argc - j - 1;
        let opt = args.get(j)?;
        let is = |s: &str| is_keyword(opt, s);
        if is("asc") || is("desc") || is("alpha") {
        } else if is("limit") && left >= 2 {
            string2ll(args.get(j + 1)?)?;
            string2ll(args.get(j + 2)?)?;
            j += 2;
        } else if !readonly && is("store") && left >= 1 {
            j += 1;
        } else if is("by") && left >= 1 {
            let pattern = args.get(j + 1)?;
            let until_nul = pattern.split(|&b| b == 0).next().unwrap_or_default();
            if until_nul.contains(&b'*') {
                return Some("BY");
            }
            j += 1;
        } else if is("get") && left >= 1 {
            return Some("GET");
        } else {
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rules::apply_rules;
    use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};

    fn check_for(rules: Option<&str>, line: &str) -> CommandCheck {
        let user = rules.map(|r| {
            let mut u = User::new("u");
            apply_rules(&mut u, r).unwrap();
            u
        });
        let buf = format!("{line}\r\n");
        let mut s = RequestScanner::new(ScanLimits::default());
        assert!(matches!(
            s.scan(buf.as_bytes(), false),
            Ok(RequestScan::Complete(_))
        ));
        check_command(
            s.args(buf.as_bytes()),
            user.as_ref(),
            &Renames::default(),
            &mut CheckScratch::default(),
        )
    }

    fn refused(g: CommandCheck) -> String {
        match g {
            CommandCheck::Refuse(r, _) => String::from_utf8_lossy(r.reply()).trim_end().to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn redis_order_and_texts() {
        assert_eq!(
            refused(check_for(None, "nosuch a b")),
            "-ERR unknown command 'nosuch', with args beginning with: 'a' 'b'"
        );
        assert_eq!(
            refused(check_for(None, "nosuch")),
            "-ERR unknown command 'nosuch', with args beginning with:"
        );
        assert_eq!(
            refused(check_for(None, "config nosuch")),
            "-ERR unknown subcommand 'nosuch'. Try CONFIG HELP."
        );
        assert_eq!(
            refused(check_for(None, "get")),
            "-ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            refused(check_for(None, "config get")),
            "-ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            refused(check_for(None, "get k")),
            "-NOAUTH Authentication required."
        );
        assert!(matches!(check_for(None, "auth a b"), CommandCheck::Pass(_)));
        assert_eq!(
            refused(check_for(Some("+get ~a*"), "set a 1")),
            "-NOPERM this user has no permissions to run the 'set' command"
        );
        assert_eq!(
            refused(check_for(Some("+get ~a*"), "get b")),
            "-NOPERM this user has no permissions to access one of the keys used as arguments"
        );
        assert_eq!(
            refused(check_for(Some("+@all ~*"), "publish ch m")),
            "-NOPERM this user has no permissions to access one of the channels used as arguments"
        );
        assert!(matches!(
            check_for(Some("+@all ~* &*"), "module.cmd x"),
            CommandCheck::ForwardUnknown
        ));
        assert!(matches!(
            check_for(Some("+@all ~a &*"), "module.cmd x"),
            CommandCheck::Refuse(..)
        ));
    }

    #[test]
    fn sort_by_and_get_need_full_key_access() {
        let denied = "-ERR BY option of SORT denied due to insufficient ACL permissions.";
        assert_eq!(refused(check_for(Some("+@all ~l"), "sort l BY w*")), denied);
        assert_eq!(
            refused(check_for(Some("+@all %W~* ~l"), "sort l GET x")),
            "-ERR GET option of SORT denied due to insufficient ACL permissions."
        );
        assert!(matches!(
            check_for(Some("+@all %R~*"), "sort l BY w* GET x"),
            CommandCheck::Pass(_)
        ));
        assert!(matches!(
            check_for(Some("+@all ~l"), "sort l BY nostar"),
            CommandCheck::Pass(_)
        ));
        assert!(matches!(
            check_for(Some("+@all ~l"), "sort l LIMIT x 1 BY w*"),
            CommandCheck::Pass(_)
        ));
        assert!(matches!(
            check_for(Some("+@all ~l"), "sort l foo BY w*"),
            CommandCheck::Pass(_)
        ));
        assert!(matches!(
            check_for(Some("+@all ~l (%R~* +sort)"), "sort l BY w*"),
            CommandCheck::Pass(_)
        ));
        assert_eq!(
            refused(check_for(Some("+@all ~l (%R~* -sort)"), "sort l BY w*")),
            denied
        );
    }
}
