//! What the proxy itself does with a command, resolved once per command id:
//! the session, the large-request streamer, the rate limiter and the pub/sub
//! context all match on a [`Role`] instead of comparing names.

use std::sync::LazyLock;

use super::table::COMMANDS;
use super::types::CommandSpec;
use crate::resp::reply::PubSubKind;

/// The part the proxy plays in a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Forwarded as it is; the proxy only routes its reply.
    Plain,
    /// `PING`: one of the commands RESP2's pub/sub context allows.
    Ping,
    /// `QUIT`: answered `+OK`, then the connection closes.
    Quit,
    /// `AUTH`: answered from the proxy's users.
    Auth,
    /// `HELLO`: options checked and AUTH done here, the protocol forwarded.
    Hello,
    /// `RESET`: forwarded; the proxy's session resets too.
    Reset,
    /// An `ACL` subcommand (most answered from the proxy's own users).
    Acl,
    /// `CLIENT REPLY`: handled here so local replies are hidden alike.
    ClientReply,
    /// `CLIENT INFO` (`own_line`) / `CLIENT LIST`: rewritten to describe the proxy's clients.
    ClientLines { own_line: bool },
    /// Another `CLIENT` subcommand.
    Client,
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// A `(P|S)SUBSCRIBE` or `(P|S)UNSUBSCRIBE`: replies are confirmations of this kind.
    Subscription(PubSubKind),
    /// `MONITOR`.
    Monitor,
    /// `SORT` / `SORT_RO`: `BY`/`GET` need unrestricted key access.
    Sort,
}

impl Role {
    /// The role of `cmd`.
    pub fn of(cmd: &CommandSpec) -> Role {
        ROLES
            .get(usize::from(cmd.id))
            .copied()
            .unwrap_or(Role::Plain)
    }

    /// True for commands whose every argument the session reads: never
    /// decided before the whole command arrived (large values stream only
    /// for commands the proxy forwards without looking inside).
    pub fn needs_whole_command(self) -> bool {
        matches!(
            self,
            Role::Quit
                | Role::Auth
                | Role::Hello
                | Role::Reset
                | Role::Acl
                | Role::ClientReply
                | Role::ClientLines { .. }
                | Role::Client
                | Role::Exec
                | Role::Sort
        )
    }

    /// True for commands a user's rate never refuses or holds: they end a
    /// transaction or the connection, and refusing them would leave the client
    /// in a state it did not ask for (a MULTI still open after a rejected EXEC).
    pub fn rate_exempt(self) -> bool {
        matches!(self, Role::Exec | Role::Discard | Role::Quit | Role::Reset)
    }

    /// True for the commands Redis runs in RESP2's pub/sub context: the
    /// (un)subscribe family, `PING`, `QUIT` and `RESET`.
    pub fn allowed_in_pubsub_context(self) -> bool {
        matches!(
            self,
            Role::Ping | Role::Subscription(_) | Role::Quit | Role::Reset
        )
    }
}

/// Roles by command id.
static ROLES: LazyLock<Vec<Role>> = LazyLock::new(|| COMMANDS.iter().map(role_by_name).collect());

fn role_by_name(cmd: &CommandSpec) -> Role {
    use PubSubKind::*;
    match cmd.name {
        "ping" => Role::Ping,
        "quit" => Role::Quit,
        "auth" => Role::Auth,
        "hello" => Role::Hello,
        "reset" => Role::Reset,
        "client|reply" => Role::ClientReply,
        "client|info" => Role::ClientLines { own_line: true },
        "client|list" => Role::ClientLines { own_line: false },
        "multi" => Role::Multi,
        "exec" => Role::Exec,
        "discard" => Role::Discard,
        "subscribe" => Role::Subscription(Subscribe),
        "psubscribe" => Role::Subscription(PSubscribe),
        "ssubscribe" => Role::Subscription(SSubscribe),
        "unsubscribe" => Role::Subscription(Unsubscribe),
        "punsubscribe" => Role::Subscription(PUnsubscribe),
        "sunsubscribe" => Role::Subscription(SUnsubscribe),
        "monitor" => Role::Monitor,
        "sort" | "sort_ro" => Role::Sort,
        name if name.starts_with("acl|") => Role::Acl,
        name if name.starts_with("client|") => Role::Client,
        _ => Role::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::by_name;

    fn role(name: &str) -> Role {
        Role::of(by_name(name.as_bytes()).expect(name))
    }

    #[test]
    fn roles_by_name() {
        assert_eq!(role("GET"), Role::Plain);
        assert_eq!(role("acl|whoami"), Role::Acl);
        assert_eq!(role("client|setname"), Role::Client);
        assert_eq!(role("client|list"), Role::ClientLines { own_line: false });
        assert_eq!(
            role("punsubscribe"),
            Role::Subscription(PubSubKind::PUnsubscribe)
        );
        assert!(role("exec").rate_exempt() && !role("multi").rate_exempt());
        assert!(role("ping").allowed_in_pubsub_context());
        assert!(!role("get").allowed_in_pubsub_context());
        assert!(role("sort_ro").needs_whole_command());
        assert!(!role("set").needs_whole_command());
        // Every container (`acl`, `client`) is Plain: only its subcommands have roles.
        assert_eq!(role("client"), Role::Plain);
        assert_eq!(ROLES.len(), COMMANDS.len());
    }
}
