//! Per-command decisions for one client: who it is, and what each command becomes
//! (answered here, forwarded as is, or forwarded in a rewritten form).
//!
//! Pure logic over a command's [`Args`]: no I/O, so it is tested without sockets.
//! The connection task applies each [`Decided`] in command order.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;

use super::acl_cmds;
use super::audit::Audit;
pub use super::decision::{Decided, Decision};
use super::listing::Listing;
use super::policy::{self, CommandCheck, Refusal};
use super::replies;
use super::slots::{Emit, LocalReply, SlotKind};
use crate::acl::check::CheckScratch;
use crate::acl::check::Denial;
use crate::acl::log::Reason;
use crate::acl::{User, Users};
use crate::command::{CommandSpec, Role};
use crate::limits::{Admission, UserSlot};
use crate::resp::encode::is_keyword;
use crate::resp::request::Args;
use crate::upstream::Renames;

/// `DISCARD`, sent instead of a dirty `EXEC`.
const DISCARD: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n";
/// `UNWATCH`, sent instead of a refused `EXEC` outside MULTI.
const UNWATCH: &[u8] = b"*1\r\n$7\r\nUNWATCH\r\n";

/// One client's state as the proxy tracks it.
#[derive(Debug)]
pub struct Session {
    cert_user: Option<Arc<User>>,
    user: Option<Arc<User>>,
    in_multi: bool,
    multi_dirty: bool,
    reply_off: bool,
    skip_next: bool,
    scratch: CheckScratch,
    audit: Audit,
    /// Set when a `HELLO 3` is sent (for `ACL LOG`'s map replies).
    resp3: bool,
    /// Open connections per user, for users' `max_clients`.
    admission: Arc<Admission>,
    /// This connection's place among its current user's connections.
    user_slot: Option<UserSlot>,
    events: Events,
    /// RESP2's pub/sub context holds (set by the connection before each decision).
    pubsub_context: bool,
    /// A client name a failed `HELLO` set (Redis sets each `SETNAME` as it
    /// reads it), still to be sent upstream before the next forwarded command.
    pending_name: Option<Bytes>,
    /// When the token the connection authenticated with expires (Unix
    /// seconds, leeway included); `None` after a password or certificate.
    token_expires: Option<u64>,
    /// The client's address, for users' `allow_from` (unspecified, `::`,
    /// until [`Session::with_peer`]: then no `allow_from` admits it).
    peer: IpAddr,
}

/// What a reload made of the connection's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebind {
    /// Still there and `on` (or never authenticated); `channels_changed` when the
    /// user's channel permissions differ, which matters to a subscribed connection.
    Kept {
        /// The user's channel rules changed.
        channels_changed: bool,
    },
    /// The user was removed or turned `off`: the connection must close.
    Gone(String),
}

/// What the last decisions did that the connection must act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Events {
    /// An `AUTH`/`HELLO AUTH` failed (for the per-IP failure throttle).
    pub auth_failed: bool,
    /// Authentication succeeded but this user's `max_clients` are open.
    pub user_cap: Option<String>,
    /// The ACL refused the command (command, key or channel).
    pub denied: Option<Reason>,
    /// `RESET` left this user (it ran as it, and is counted under it).
    pub reset_from: Option<Arc<User>>,
    /// Shadow mode: the ACL would have refused the command (forwarded anyway).
    pub shadow_denied: Option<Reason>,
}

fn local(b: &'static [u8]) -> Decision {
    Decision::Local(LocalReply::Static(b))
}

impl Session {
    /// A new connection; `cert_user` is the user its certificate names, if any (and `on`).
    pub fn new(cert_user: Option<Arc<User>>) -> Self {
        Session {
            user: cert_user.clone(),
            cert_user,
            in_multi: false,
            multi_dirty: false,
            reply_off: false,
            skip_next: false,
            scratch: CheckScratch::default(),
            audit: Audit::default(),
            resp3: false,
            admission: Arc::default(),
            user_slot: None,
            events: Events::default(),
            pubsub_context: false,
            pending_name: None,
            peer: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            token_expires: None,
        }
    }

    /// When the token the connection authenticated with expires (Unix
    /// seconds): then it is closed, unless a fresh `AUTH` came before.
    pub fn token_expires(&self) -> Option<u64> {
        self.token_expires
    }

    /// The client's address (the PROXY header's when there is one).
    pub fn with_peer(mut self, peer: IpAddr) -> Self {
        self.peer = peer;
        self
    }

    /// A command inside `MULTI` was refused by the proxy after the decision
    /// (cluster mode's `CROSSSLOT`): `EXEC` will answer `EXECABORT`.
    pub fn spoil_transaction(&mut self) {
        if self.in_multi {
            self.multi_dirty = true;
        }
    }

    /// True while a name waits to be sent ([`Session::take_pending_name`]).
    pub fn has_pending_name(&self) -> bool {
        self.pending_name.is_some()
    }

    /// A `CLIENT SETNAME` the upstream must run before the next forwarded
    /// command (its reply is dropped), if a failed `HELLO` set a name.
    pub fn take_pending_name(&mut self) -> Option<Bytes> {
        let name = self.pending_name.take()?;
        Some(Bytes::from(crate::resp::encode::command(&[
            b"CLIENT", b"SETNAME", &name,
        ])))
    }

    /// Whether the connection is in RESP2's pub/sub context now (subscribed,
    /// RESP2): the next decisions refuse what Redis refuses there.
    pub fn set_pubsub_context(&mut self, on: bool) {
        self.pubsub_context = on;
    }

    /// Counts users' connections in `admission`; `slot` is the place the
    /// connection already holds for the user it starts as.
    pub fn with_admission(mut self, admission: Arc<Admission>, slot: Option<UserSlot>) -> Self {
        self.admission = admission;
        self.user_slot = slot;
        self
    }

    /// What the decisions since the last call did that the connection acts on.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// A command refused before it was looked at (over the user's rate): it
    /// answers `reply` in its position (unless `CLIENT REPLY` hides it) and,
    /// inside MULTI, fails the transaction like any refused command.
    pub fn refuse(&mut self, reply: &'static [u8]) -> Decided {
        let suppress = std::mem::take(&mut self.skip_next) || self.reply_off;
        if self.in_multi {
            self.multi_dirty = true;
        }
        Decided {
            decision: local(reply),
            suppress,
        }
    }

    /// After `RESET`: hold a place for the user the connection is back to
    /// (it started as that user, so the place is not refused).
    fn reslot(&mut self, users: &Users) {
        let name = self.user(users).map(|u| u.name.clone());
        if self.user_slot.as_ref().map(|s| s.user()) != name.as_deref() {
            self.user_slot = name.and_then(|n| self.admission.admit_user(&n, None));
        }
    }

    /// Moves the session from `old` users to `new` ones after a reload, by name:
    /// the user commands run as (an implicit `default` included, which from now on
    /// is held explicitly, like a Redis connection authenticated as `default`
    /// stays so when `default` gets a password) and the certificate's user.
    /// An open MULTI whose user's rules changed is failed (EXEC gets EXECABORT):
    /// its queued commands were checked against the old rules.
    pub fn rebind(&mut self, old: &Users, new: &Users) -> Rebind {
        if let Some(c) = &self.cert_user {
            self.cert_user = new.get(&c.name).filter(|u| u.enabled).cloned();
        }
        let Some(current) = self.user(old).cloned() else {
            return Rebind::Kept {
                channels_changed: false,
            };
        };
        let Some(next) = new.get(&current.name).filter(|u| u.enabled).cloned() else {
            return Rebind::Gone(current.name.clone());
        };
        if *next != *current && self.in_multi {
            self.multi_dirty = true;
        }
        let channels_changed = next.selectors.len() != current.selectors.len()
            || next
                .selectors
                .iter()
                .zip(&current.selectors)
                .any(|(a, b)| a.all_channels != b.all_channels || a.channels != b.channels);
        self.user = Some(next);
        Rebind::Kept { channels_changed }
    }

    /// Who this connection is, for logs.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Reports denials and auth failures to `audit` (the shared ACL LOG).
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// The user commands run as: the authenticated one, else an `on nopass` `default`.
    pub fn user<'a>(&'a self, users: &'a Users) -> Option<&'a Arc<User>> {
        self.user
            .as_ref()
            .or_else(|| users.implicit_default(self.peer))
    }

    /// True when commands may run (Redis's `authRequired` is false).
    pub fn authenticated(&self, users: &Users) -> bool {
        self.user(users).is_some()
    }

    /// Decides what `args` becomes, updating the session; `renames` says which
    /// commands the upstream does not have.
    pub fn decide(&mut self, args: Args<'_>, users: &Users, renames: &Renames) -> Decided {
        let skip_this = std::mem::take(&mut self.skip_next);
        let mut suppress = skip_this || self.reply_off;
        let decision = self.decide_inner(args, users, renames, &mut suppress);
        Decided { decision, suppress }
    }

    fn decide_inner(
        &mut self,
        args: Args<'_>,
        users: &Users,
        renames: &Renames,
        suppress: &mut bool,
    ) -> Decision {
        if args.is_empty() {
            return Decision::Nothing;
        }
        let user = self
            .user
            .as_ref()
            .or_else(|| users.implicit_default(self.peer));
        let authed = user.is_some();
        let cmd = match policy::check_command(args, user.map(|u| &**u), renames, &mut self.scratch)
        {
            CommandCheck::Pass(cmd) => cmd,
            CommandCheck::ForwardUnknown => return Decision::Forward(SlotKind::Plain),
            CommandCheck::Refuse(Refusal::Denied(_, denial, full_name), Some(cmd))
                if user.is_some_and(|u| !u.enforce) =>
            {
                // Shadow mode: say what would have been refused, then go on.
                let reason = match denial {
                    Denial::Command => Reason::Command,
                    Denial::Key(_) => Reason::Key,
                    Denial::Channel(_) => Reason::Channel,
                };
                let name = user.map_or("", |u| u.name.as_str());
                self.audit.shadow_denied(reason, name, full_name);
                self.events.shadow_denied = Some(reason);
                cmd
            }
            CommandCheck::Refuse(refusal, cmd) => {
                if cmd.is_some_and(|c| Role::of(c) == Role::Exec) {
                    return self.exec_refused(refusal.reply(), authed);
                }
                if let (Refusal::Denied(_, denial, full_name), Some(u)) = (&refusal, user) {
                    let (reason, object) = match *denial {
                        Denial::Command => (Reason::Command, full_name.as_bytes()),
                        Denial::Key(i) => (Reason::Key, args.get(i).unwrap_or_default()),
                        Denial::Channel(i) => (Reason::Channel, args.get(i).unwrap_or_default()),
                    };
                    self.audit
                        .denied(reason, self.in_multi, object, &u.name, full_name);
                    self.events.denied = Some(reason);
                }
                if self.in_multi {
                    self.multi_dirty = true;
                }
                return Decision::Local(LocalReply::Owned(Bytes::from(refusal.reply().to_vec())));
            }
        };
        let role = Role::of(cmd);
        if self.pubsub_context && !role.allowed_in_pubsub_context() {
            let reply = format!(
                "-ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
                cmd.name
            );
            if role == Role::Exec {
                return self.exec_refused(reply.as_bytes(), authed);
            }
            if self.in_multi {
                self.multi_dirty = true;
            }
            return Decision::Local(LocalReply::Owned(Bytes::from(reply)));
        }
        if let Some(u) = user.filter(|u| u.filter_listings) {
            if let Some(listing) = Listing::of(cmd.name) {
                if self.in_multi {
                    // Its reply would be inside EXEC's: refused, EXEC aborts.
                    self.multi_dirty = true;
                    return local(replies::LISTING_IN_MULTI);
                }
                return Decision::ForwardFiltered(listing, Arc::clone(u));
            }
        }
        match role {
            Role::Quit => Decision::Quit,
            Role::Auth | Role::Hello | Role::Subscription(_) | Role::Monitor if self.in_multi => {
                // Answered (or tracked) by the proxy, so never queued upstream.
                self.multi_dirty = true;
                local(replies::NOT_IN_MULTI)
            }
            Role::Auth => self.auth(args, users),
            Role::Hello => self.hello(args, users),
            Role::Reset => self.reset(user.cloned(), users, suppress),
            Role::Acl => self.acl(cmd, args, users),
            Role::ClientReply => self
                .client_reply(args, suppress)
                .unwrap_or(Decision::Forward(SlotKind::Plain)),
            Role::ClientLines { own_line } => Decision::Forward(SlotKind::ClientLines { own_line }),
            Role::Multi => {
                self.in_multi = true;
                Decision::Forward(SlotKind::Plain)
            }
            Role::Exec | Role::Discard => {
                let dirty = self.in_multi && self.multi_dirty && role == Role::Exec;
                self.in_multi = false;
                self.multi_dirty = false;
                if dirty {
                    return Decision::ForwardInstead(
                        Bytes::from_static(DISCARD),
                        SlotKind::Plain,
                        Emit::Replace(Bytes::from_static(replies::EXECABORT)),
                    );
                }
                Decision::Forward(SlotKind::Plain)
            }
            Role::Monitor => Decision::Forward(SlotKind::Monitor),
            // Arity is already checked: only the UNSUBSCRIBE family can come bare.
            Role::Subscription(kind) => Decision::Forward(match u32::try_from(args.len() - 1) {
                Ok(0) => SlotKind::UnsubscribeAll(kind),
                frames => SlotKind::Subscription {
                    kind,
                    frames: frames.unwrap_or(u32::MAX),
                },
            }),
            Role::Plain | Role::Ping | Role::Client | Role::Sort => {
                Decision::Forward(SlotKind::Plain)
            }
        }
    }

    /// `RESET`: back to the connection's own identity and defaults, then
    /// forwarded (the upstream connection resets too) when authenticated.
    fn reset(&mut self, user: Option<Arc<User>>, users: &Users, suppress: &mut bool) -> Decision {
        let authed = user.is_some();
        // Redis's RESET ends CLIENT REPLY OFF before it answers, but a SKIP
        // that applies to RESET itself still hides its reply (SKIP is never
        // set under OFF, so a hidden reply without OFF is a SKIP).
        let skipped = *suppress && !self.reply_off;
        self.events.reset_from = user;
        self.pending_name = None;
        self.user = self.cert_user.clone();
        self.token_expires = None;
        self.in_multi = false;
        self.multi_dirty = false;
        self.reply_off = false;
        self.resp3 = false;
        *suppress = skipped;
        self.reslot(users);
        if authed {
            Decision::Forward(SlotKind::Reset)
        } else {
            local(replies::RESET)
        }
    }

    /// An `ACL` subcommand that passed the check: answered from the proxy's own
    /// users, except the forwarded ones (`ACL GENPASS`, `ACL HELP`).
    fn acl(&mut self, cmd: &CommandSpec, args: Args<'_>, users: &Users) -> Decision {
        let Some(user) = self.user(users).cloned() else {
            return Decision::Forward(SlotKind::Plain);
        };
        let ctx = acl_cmds::Ctx {
            users,
            log: &self.audit.log,
            resp3: self.resp3,
        };
        match acl_cmds::run(cmd, args, &user, &ctx, &mut self.scratch) {
            Some(_) if self.in_multi => {
                self.multi_dirty = true;
                local(replies::NOT_IN_MULTI)
            }
            Some(d) => d,
            None => Decision::Forward(SlotKind::Plain),
        }
    }

    /// A refused `EXEC` (Redis's `execCommandAbort`): `-EXECABORT Transaction
    /// discarded because of: <error>`, and the transaction (or, outside MULTI,
    /// the WATCHed keys) discarded upstream.
    fn exec_refused(&mut self, error: &[u8], authed: bool) -> Decision {
        // Errors Redis formats without a code lose the "ERR " the proxy added.
        let text = error
            .strip_prefix(b"-ERR ")
            .or_else(|| error.strip_prefix(b"-"))
            .unwrap_or(error);
        let mut reply = b"-EXECABORT Transaction discarded because of: ".to_vec();
        reply.extend_from_slice(text);
        let instead: &'static [u8] = if self.in_multi { DISCARD } else { UNWATCH };
        self.in_multi = false;
        self.multi_dirty = false;
        if !authed {
            // Never authenticated: nothing upstream to discard.
            return Decision::Local(LocalReply::Owned(Bytes::from(reply)));
        }
        Decision::ForwardInstead(
            Bytes::from_static(instead),
            SlotKind::Plain,
            Emit::Replace(Bytes::from(reply)),
        )
    }

    /// `CLIENT REPLY ON|OFF|SKIP` (arity already checked), handled here so local
    /// and upstream replies agree; other modes go upstream for its syntax error.
    fn client_reply(&mut self, args: Args<'_>, suppress: &mut bool) -> Option<Decision> {
        let mode = args.get(2)?;
        let mode = ["on", "off", "skip"]
            .into_iter()
            .find(|m| is_keyword(mode, m))?;
        if self.in_multi {
            self.multi_dirty = true;
            return Some(local(replies::NOT_IN_MULTI));
        }
        Some(match mode {
            "on" => {
                self.reply_off = false;
                *suppress = false;
                local(replies::OK)
            }
            "off" => {
                self.reply_off = true;
                Decision::Nothing
            }
            _ => {
                self.skip_next = !self.reply_off;
                Decision::Nothing
            }
        })
    }
}

/// True when deciding `args` depends on whether RESP2's pub/sub context holds
/// (any command but the ones always allowed there, including unknown ones).
pub fn depends_on_pubsub_context(args: Args<'_>) -> bool {
    !role_of(args).is_some_and(Role::allowed_in_pubsub_context)
}

/// True for a command its user's rate never refuses or holds ([`Role::rate_exempt`]).
pub fn rate_exempt(args: Args<'_>) -> bool {
    role_of(args).is_some_and(Role::rate_exempt)
}

/// The role of the command in `args`, when it is a known command.
fn role_of(args: Args<'_>) -> Option<Role> {
    match crate::command::resolve(args.get(0).unwrap_or_default(), args.get(1)) {
        crate::command::Resolved::Found(cmd) => Some(Role::of(cmd)),
        _ => None,
    }
}

mod auth;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
