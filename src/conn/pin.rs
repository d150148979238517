//! Pooled mode: which commands must run on an upstream connection of the
//! client's own (it is then *pinned*), and the server-side state a pinned
//! client holds there, followed from the commands it sends.
//!
//! A shared connection must stay as every client expects a fresh one: RESP2,
//! database 0, no transaction, no watched keys, no name, no subscriptions,
//! nothing blocked. So the commands that change that run on the client's own
//! connection. A pinned client goes back to the pool once the state is
//! provably gone (see [`Held::holds`]); some state is not followed back and
//! keeps the client pinned for life (see [`Effect::ForLife`]).

use crate::command::{flags, resolve, Resolved, Role};
use crate::resp::encode::is_keyword;
use crate::resp::request::Args;

/// What a command does to the state of the connection it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing: it may run on a shared connection.
    Free,
    /// `MULTI`.
    Multi,
    /// `EXEC` or `DISCARD`: ends a transaction and its watched keys.
    EndMulti,
    /// `WATCH`.
    Watch,
    /// `UNWATCH`.
    Unwatch,
    /// `SELECT`: of database 0 (`zero`) or another.
    Select {
        /// The database is 0.
        zero: bool,
    },
    /// A command that may block the connection until its reply (`@blocking`,
    /// `XREAD`/`XREADGROUP` with `BLOCK`, `WAIT`).
    Blocking,
    /// `(P|S)SUBSCRIBE`, `(P|S)UNSUBSCRIBE` (the reply slots follow the
    /// subscriptions).
    Subscription,
    /// `RESET`: every state above gone.
    Reset,
    /// State not followed back: `CLIENT SETNAME` / `TRACKING` / `CACHING` /
    /// `NO-EVICT`, `HELLO 3` or `HELLO ... SETNAME`, `MONITOR`, `READONLY`,
    /// `READWRITE`, `ASKING`, replication commands.
    ForLife,
}

impl Effect {
    /// The effect of the command `args` (an unknown command has none).
    pub fn of(args: Args<'_>) -> Effect {
        let Some(name) = args.get(0) else {
            return Effect::Free;
        };
        let cmd = match resolve(name, args.get(1)) {
            Resolved::Found(cmd) => cmd,
            _ => return Effect::Free,
        };
        match Role::of(cmd) {
            Role::Multi => return Effect::Multi,
            Role::Exec | Role::Discard => return Effect::EndMulti,
            Role::Subscription(_) => return Effect::Subscription,
            Role::Reset => return Effect::Reset,
            Role::Monitor => return Effect::ForLife,
            Role::Hello => return hello(args),
            _ => {}
        }
        match cmd.name {
            "watch" => Effect::Watch,
            "unwatch" => Effect::Unwatch,
            "select" => Effect::Select {
                zero: args.get(1) == Some(b"0"),
            },
            "wait" => Effect::Blocking,
            "xread" | "xreadgroup" => {
                if args.iter().skip(1).any(|a| is_keyword(a, "block")) {
                    Effect::Blocking
                } else {
                    Effect::Free
                }
            }
            "client|setname" | "client|tracking" | "client|caching" | "client|no-evict"
            | "readonly" | "readwrite" | "asking" | "sync" | "psync" | "replconf" => {
                Effect::ForLife
            }
            _ if cmd.has_flag(flags::BLOCKING) => Effect::Blocking,
            _ => Effect::Free,
        }
    }

    /// True when the command must not run on a shared connection.
    pub fn needs_own(self) -> bool {
        !matches!(
            self,
            Effect::Free
                | Effect::EndMulti
                | Effect::Unwatch
                | Effect::Select { zero: true }
                | Effect::Reset
        )
    }
}

/// `HELLO`: protocol 3 or a connection name is state for life; anything else
/// (`HELLO`, `HELLO 2`, `AUTH`) is not.
fn hello(args: Args<'_>) -> Effect {
    let resp3 = args.get(1) == Some(b"3");
    let named = args.iter().skip(2).any(|a| is_keyword(a, "setname"));
    if resp3 || named {
        Effect::ForLife
    } else {
        Effect::Free
    }
}

/// The state a pinned client's own connection holds, from what was sent on
/// it. Errs only towards holding: a command that fails upstream may leave
/// the state thought held, never the other way.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    multi: bool,
    watch: bool,
    /// A database other than 0 may be selected.
    db: bool,
    for_life: bool,
}

impl Held {
    /// Follows a command sent on the client's own connection.
    pub fn sent(&mut self, effect: Effect) {
        match effect {
            Effect::Multi => self.multi = true,
            // Without MULTI, Redis's EXEC/DISCARD fail and keep watched keys.
            Effect::EndMulti if self.multi => {
                self.multi = false;
                self.watch = false;
            }
            // WATCH inside MULTI is refused.
            Effect::Watch if !self.multi => self.watch = true,
            // Queued in MULTI, it runs with EXEC, which forgets the keys anyway.
            Effect::Unwatch if !self.multi => self.watch = false,
            // Queued in MULTI it may be discarded: only a move away from 0 counts.
            Effect::Select { zero } if self.multi => self.db |= !zero,
            Effect::Select { zero } => self.db = !zero,
            Effect::Reset => *self = Held::default(),
            Effect::ForLife => self.for_life = true,
            _ => {}
        }
    }

    /// True while the connection holds state a shared one must not have.
    /// (Blocking commands and subscriptions are followed by the reply slots.)
    pub fn holds(&self) -> bool {
        self.multi || self.watch || self.db || self.for_life
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::request::{RequestScan, RequestScanner, ScanLimits};

    fn effect(line: &str) -> Effect {
        let wire = format!("{line}\r\n");
        let mut scanner = RequestScanner::new(ScanLimits::default());
        match scanner.scan(wire.as_bytes(), false) {
            Ok(RequestScan::Complete(_)) => Effect::of(scanner.args(wire.as_bytes())),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn effects_by_command() {
        for (line, want) in [
            ("GET k", Effect::Free),
            ("multi", Effect::Multi),
            ("EXEC", Effect::EndMulti),
            ("discard", Effect::EndMulti),
            ("WATCH a b", Effect::Watch),
            ("UNWATCH", Effect::Unwatch),
            ("SELECT 0", Effect::Select { zero: true }),
            ("SELECT 1", Effect::Select { zero: false }),
            ("SELECT 00", Effect::Select { zero: false }),
            ("BLPOP l 0", Effect::Blocking),
            ("bzpopmin z 1", Effect::Blocking),
            ("BLMOVE a b LEFT RIGHT 0", Effect::Blocking),
            ("WAIT 1 0", Effect::Blocking),
            ("XREAD COUNT 1 STREAMS s 0", Effect::Free),
            ("XREAD block 0 STREAMS s $", Effect::Blocking),
            (
                "XREADGROUP GROUP g c BLOCK 10 STREAMS s >",
                Effect::Blocking,
            ),
            ("SUBSCRIBE c", Effect::Subscription),
            ("punsubscribe", Effect::Subscription),
            ("SSUBSCRIBE c", Effect::Subscription),
            ("RESET", Effect::Reset),
            ("MONITOR", Effect::ForLife),
            ("CLIENT SETNAME n", Effect::ForLife),
            ("client tracking on", Effect::ForLife),
            ("CLIENT CACHING yes", Effect::ForLife),
            ("CLIENT NO-EVICT on", Effect::ForLife),
            ("CLIENT GETNAME", Effect::Free),
            ("CLIENT ID", Effect::Free),
            ("HELLO 3", Effect::ForLife),
            ("HELLO 2", Effect::Free),
            ("HELLO", Effect::Free),
            ("HELLO 2 SETNAME n", Effect::ForLife),
            ("HELLO 2 AUTH u p", Effect::Free),
            ("READONLY", Effect::ForLife),
            ("NOSUCHCOMMAND x", Effect::Free),
        ] {
            assert_eq!(effect(line), want, "{line}");
        }
    }

    #[test]
    fn what_needs_an_own_connection() {
        for line in [
            "MULTI",
            "WATCH k",
            "SELECT 2",
            "BLPOP l 1",
            "SUBSCRIBE c",
            "HELLO 3",
        ] {
            assert!(effect(line).needs_own(), "{line}");
        }
        for line in ["GET k", "EXEC", "UNWATCH", "SELECT 0", "RESET", "HELLO 2"] {
            assert!(!effect(line).needs_own(), "{line}");
        }
    }

    #[test]
    fn held_state_follows_commands_and_errs_towards_holding() {
        let run = |lines: &[&str]| {
            let mut held = Held::default();
            for line in lines {
                held.sent(effect(line));
            }
            held.holds()
        };
        assert!(!run(&["MULTI", "SET a 1", "EXEC"]));
        assert!(
            run(&["WATCH a", "EXEC"]),
            "EXEC without MULTI keeps the keys"
        );
        assert!(!run(&["WATCH a", "MULTI", "EXEC"]));
        assert!(!run(&["WATCH a", "UNWATCH"]));
        assert!(run(&["MULTI", "WATCH a", "SELECT 3"]));
        assert!(!run(&["MULTI", "WATCH a", "DISCARD"]));
        assert!(run(&["SELECT 1", "MULTI", "SELECT 0", "DISCARD"]));
        assert!(!run(&["SELECT 1", "SELECT 0"]));
        assert!(run(&["CLIENT SETNAME x", "SELECT 0"]));
        assert!(!run(&["CLIENT SETNAME x", "MULTI", "RESET"]));
        assert!(!run(&["BLPOP l 0"]));
    }
}
