//! `AUTH` and `HELLO`, answered by the session from the proxy's own users with
//! Redis 7.0's exact replies (never forwarded; `HELLO`'s protocol is).

use std::sync::Arc;

use bytes::Bytes;

use super::{local, Session};
use crate::acl::{User, Users};
use crate::conn::decision::Decision;
use crate::conn::replies;
use crate::conn::slots::{Emit, LocalReply, SlotKind};
use crate::edge::AuthMethod;
use crate::resp::encode::is_keyword;
use crate::resp::num::string2ll;
use crate::resp::request::Args;

impl Session {
    /// Switches to `user` if one of its places is free; else records the refusal.
    fn become_user(&mut self, user: &Arc<User>, users: &Users) -> bool {
        if self
            .user_slot
            .as_ref()
            .is_some_and(|s| s.user() == user.name)
        {
            self.user = Some(Arc::clone(user));
            return true;
        }
        let max = users.limits(&user.name).max_clients;
        match self.admission.admit_user(&user.name, max) {
            Some(slot) => {
                self.user_slot = Some(slot);
                self.user = Some(Arc::clone(user));
                true
            }
            None => {
                self.events.user_cap = Some(user.name.clone());
                false
            }
        }
    }

    /// `AUTH [user] password`, answered from the proxy's users.
    pub(super) fn auth(&mut self, args: Args<'_>, users: &Users) -> Decision {
        let (user, password) = match (args.len(), args.get(1), args.get(2)) {
            (2, Some(pw), _) => {
                if users.default_has_nopass() {
                    return local(replies::AUTH_NO_DEFAULT_PASSWORD);
                }
                (&b"default"[..], pw)
            }
            (3, Some(u), Some(pw)) => (u, pw),
            // One argument or none never gets here: the arity check answers it.
            _ => return local(replies::SYNTAX),
        };
        self.authenticate(args, users, user, password)
            .unwrap_or(local(replies::OK))
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`, like Redis 7.0: the
    /// options apply left to right and the first error stops the rest (an
    /// `AUTH` before it stays done); `HELLO [protover] [SETNAME name]` then
    /// goes upstream, with the last name given.
    pub(super) fn hello(&mut self, args: Args<'_>, users: &Users) -> Decision {
        let mut version = None;
        if let Some(v) = args.get(1) {
            match string2ll(v) {
                None => return local(replies::HELLO_BAD_VERSION),
                Some(v @ 2..=3) => version = Some(v as u8),
                Some(_) => return local(replies::NOPROTO),
            }
        }
        let mut setname = None;
        let mut j = 2;
        while let Some(opt) = args.get(j) {
            let more = args.len() - 1 - j;
            if is_keyword(opt, "auth") && more >= 2 {
                let (user, password) = (
                    args.get(j + 1).unwrap_or_default(),
                    args.get(j + 2).unwrap_or_default(),
                );
                if let Some(refused) = self.authenticate(args, users, user, password) {
                    return refused;
                }
                j += 3;
            } else if is_keyword(opt, "setname") && more >= 1 {
                let name = args.get(j + 1).unwrap_or_default();
                if !valid_client_name(name) {
                    return local(replies::BAD_CLIENT_NAME);
                }
                // Set at once, like Redis: it stays set if a later option fails.
                self.pending_name = Some(Bytes::copy_from_slice(name));
                setname = Some(name);
                j += 2;
            } else {
                let mut msg = b"-ERR Syntax error in HELLO option '".to_vec();
                crate::resp::encode::error_text(&mut msg, crate::resp::encode::c_str(opt));
                msg.extend_from_slice(b"'\r\n");
                return Decision::Local(LocalReply::Owned(Bytes::from(msg)));
            }
        }
        if !self.authenticated(users) {
            return local(replies::HELLO_NOAUTH);
        }
        if let Some(v) = version {
            self.resp3 = v == 3;
        }
        let v = version.map(|v| [b'0' + v]);
        let mut fwd: Vec<&[u8]> = vec![b"HELLO"];
        if let Some(v) = &v {
            fwd.push(v);
        }
        if let Some(name) = setname {
            // The forwarded HELLO sets it.
            self.pending_name = None;
            fwd.extend([&b"SETNAME"[..], name]);
        }
        Decision::ForwardInstead(
            Bytes::from(crate::resp::encode::command(&fwd)),
            SlotKind::Hello(version),
            Emit::Pass,
        )
    }

    /// One `AUTH`/`HELLO AUTH` attempt: `None` when the connection is now
    /// `user`, else the reply (`WRONGPASS`, or the user's connection cap).
    fn authenticate(
        &mut self,
        args: Args<'_>,
        users: &Users,
        user: &[u8],
        password: &[u8],
    ) -> Option<Decision> {
        let typed = args.get(0).unwrap_or_default();
        let checked = if users.is_token(password) {
            users
                .authenticate_token(user, password, unix_now())
                .map(|(u, expires)| (u, AuthMethod::Token, Some(expires)))
        } else {
            users
                .authenticate(user, password)
                .map(|u| (u, AuthMethod::Password, None))
                .ok_or("auth")
        };
        match checked {
            Ok((u, method, expires)) => {
                if let Some(rule) = u.access.refuses(self.peer, method) {
                    // Right credentials, wrong place or method: answered like a
                    // wrong password, logged with the rule.
                    self.audit.auth_refused(self.in_multi, typed, &u.name, rule);
                    self.events.auth_failed = true;
                    Some(local(replies::WRONGPASS))
                } else if self.become_user(&u, users) {
                    // A fresh AUTH replaces the token's deadline (a password has none).
                    self.token_expires = expires;
                    None
                } else {
                    Some(Decision::Refuse(replies::MAX_CLIENTS))
                }
            }
            Err(reason) => {
                self.audit.auth_failed(self.in_multi, typed, user, reason);
                self.events.auth_failed = true;
                Some(local(replies::WRONGPASS))
            }
        }
    }
}

/// Seconds since the Unix epoch (token `exp`/`nbf` are in these).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Redis's `validateClientName`: empty, or only the characters `!` to `~`.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}
