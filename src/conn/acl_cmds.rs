//! `ACL` subcommands answered by the proxy from its own users (never forwarded,
//! so the upstream's own ACL, if any, is never shown to clients).

use bytes::Bytes;

use super::decision::Decision;
use super::slots::LocalReply;
use crate::acl::check::{dryrun_reply, CheckScratch};
use crate::acl::describe;
use crate::acl::log::AclLog;
use crate::acl::{User, Users};
use crate::command::{category_index, ArgList, CommandSpec, CATEGORIES, COMMANDS};
use crate::resp::encode;
use crate::resp::request::Args;

/// The arguments after the first `skip` ones (for `ACL DRYRUN user <cmd...>`).
struct Tail<'a> {
    args: Args<'a>,
    skip: usize,
}

impl ArgList for Tail<'_> {
    fn argc(&self) -> usize {
        self.args.len().saturating_sub(self.skip)
    }

    fn arg(&self, i: usize) -> Option<&[u8]> {
        self.args.get(i + self.skip)
    }
}

fn owned(bytes: Vec<u8>) -> Decision {
    Decision::Local(LocalReply::Owned(Bytes::from(bytes)))
}

/// What the ACL subcommands read besides the command itself.
pub struct Ctx<'a> {
    /// The users.
    pub users: &'a Users,
    /// The shared ACL LOG.
    pub log: &'a AclLog,
    /// The connection speaks RESP3 (maps instead of flat arrays).
    pub resp3: bool,
}

/// Answers `cmd` (an `acl|...` subcommand that passed the ACL check) for `user`;
/// `None` for the subcommands that are forwarded (`ACL GENPASS`, `ACL HELP`).
pub fn run(
    cmd: &CommandSpec,
    args: Args<'_>,
    user: &User,
    ctx: &Ctx<'_>,
    scratch: &mut CheckScratch,
) -> Option<Decision> {
    let users = ctx.users;
    let sub = cmd.name.strip_prefix("acl|")?;
    Some(match sub {
        "whoami" => {
            let mut out = Vec::new();
            encode::bulk(&mut out, user.name.as_bytes());
            owned(out)
        }
        "users" => {
            let mut names: Vec<&str> = users.names().collect();
            names.sort_unstable();
            owned(encode::bulk_array(names.iter().map(|n| n.as_bytes())))
        }
        "cat" => match args.get(2) {
            None => owned(encode::bulk_array(CATEGORIES.iter().map(|c| c.as_bytes()))),
            Some(_) if args.len() > 3 => owned(
                b"-ERR unknown subcommand or wrong number of arguments for 'cat'. Try ACL HELP.\r\n".to_vec(),
            ),
            Some(name) => match std::str::from_utf8(encode::c_str(name))
                .ok()
                .and_then(category_index)
            {
                Some(i) => {
                    let names: Vec<&[u8]> = COMMANDS
                        .iter()
                        .filter(|c| c.in_category(i))
                        .map(|c| c.name.as_bytes())
                        .collect();
                    owned(encode::bulk_array(names.into_iter()))
                }
                None => {
                    let mut out = b"-ERR Unknown category '".to_vec();
                    let shown = encode::c_str(name);
                    encode::error_text(&mut out, &shown[..shown.len().min(128)]);
                    out.extend_from_slice(b"'\r\n");
                    owned(out)
                }
            },
        },
        "dryrun" => {
            let name = args.get(2).unwrap_or_default();
            match std::str::from_utf8(name).ok().and_then(|n| users.get(n)) {
                Some(target) => owned(dryrun_reply(target, &Tail { args, skip: 3 }, scratch)),
                None => {
                    let mut out = b"-ERR User '".to_vec();
                    encode::error_text(&mut out, encode::c_str(name));
                    out.extend_from_slice(b"' not found\r\n");
                    owned(out)
                }
            }
        }
        "setuser" | "deluser" | "load" | "save" => owned(
            format!(
                "-ERR ACL {} is not available: users are managed by the portcullis configuration (proxy.toml and its acl_file); edit it and reload\r\n",
                sub.to_ascii_uppercase()
            )
            .into_bytes(),
        ),
        "log" => log(args, ctx),
        "list" => owned(describe::list_reply(
            users.names().filter_map(|n| users.get(n)).map(|u| &**u),
        )),
        "getuser" => {
            let target = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| users.get(n));
            owned(describe::getuser_reply(target.map(|u| &**u), ctx.resp3))
        }
        _ => return None,
    })
}

/// `ACL LOG [count|RESET]`.
fn log(args: Args<'_>, ctx: &Ctx<'_>) -> Decision {
    if args.len() > 3 {
        return owned(
            b"-ERR unknown subcommand or wrong number of arguments for 'log'. Try ACL HELP.\r\n"
                .to_vec(),
        );
    }
    let count = match args.get(2) {
        None => 10,
        Some(a) if encode::is_keyword(a, "reset") => {
            ctx.log.reset();
            return owned(b"+OK\r\n".to_vec());
        }
        Some(a) => match crate::resp::num::string2ll(a) {
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => return owned(b"-ERR value is out of range, must be positive\r\n".to_vec()),
            None => return owned(b"-ERR value is not an integer or out of range\r\n".to_vec()),
        },
    };
    owned(ctx.log.reply(count, ctx.resp3))
}
