//! Where a connection reports denials and authentication failures: the shared
//! `ACL LOG` and one WARN line each (never passwords, values or argument lists).

use std::sync::Arc;

use tracing::warn;

use crate::acl::log::{AclLog, Reason};
use crate::edge::AccessRule;
use crate::logsafe::Escaped;

/// One connection's handle on the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// The shared `ACL LOG`.
    pub log: Arc<AclLog>,
    /// `id=<n> addr=<peer> [cert=[...]]`: who this connection is, for `client-info`.
    pub client: String,
    /// The peer address, for log lines.
    pub peer: String,
    /// The client certificate's identity (CN and SANs), `""` without one.
    pub identity: String,
}

impl Audit {
    /// A refused command: `object` is the command's full name for a command
    /// denial, else the denied key or channel (which goes to `ACL LOG` only,
    /// never to the log line: key names can be data).
    pub fn denied(&self, reason: Reason, in_multi: bool, object: &[u8], user: &str, command: &str) {
        self.denied_line(reason, user, command, false);
        self.log.add(
            reason,
            in_multi,
            object,
            user.as_bytes(),
            self.info(user),
            None,
        );
    }

    /// A command the ACL would refuse, forwarded because its user is in
    /// shadow mode (`enforce = false`): a WARN line with `shadow=true`, no
    /// `ACL LOG` entry (that log holds what was refused).
    pub fn shadow_denied(&self, reason: Reason, user: &str, command: &str) {
        self.denied_line(reason, user, command, true);
    }

    fn denied_line(&self, reason: Reason, user: &str, command: &str, shadow: bool) {
        warn!(
            peer = %self.peer,
            identity = %self.identity,
            user,
            command,
            reason = reason.as_str(),
            shadow,
            "ACL denied"
        );
    }

    /// A failed `AUTH`/`HELLO AUTH`; `typed` is the command name as sent.
    /// `reason`: `auth` for a wrong password, else why a token was refused.
    pub fn auth_failed(&self, in_multi: bool, typed: &[u8], username: &[u8], reason: &str) {
        let user = String::from_utf8_lossy(username);
        warn!(
            peer = %self.peer,
            identity = %self.identity,
            user = %Escaped(&user),
            command = %Escaped(String::from_utf8_lossy(typed).to_ascii_lowercase()),
            reason,
            "authentication failed"
        );
        self.log.add(
            Reason::Auth,
            in_multi,
            typed,
            username,
            self.info(&user),
            None,
        );
    }

    /// A user `username` refused by its `allow_from` or `auth_methods` (`rule`)
    /// although the credentials were right; `typed` is the command name as
    /// sent (`AUTH`/`HELLO`), or `""` for a certificate. Logged like a failed
    /// `AUTH`, with the rule in the WARN line and in `ACL LOG`'s
    /// `client-info` (`refused-by=<rule>`).
    pub fn auth_refused(&self, in_multi: bool, typed: &[u8], username: &str, rule: AccessRule) {
        let command = if typed.is_empty() {
            "certificate".to_owned()
        } else {
            String::from_utf8_lossy(typed).to_ascii_lowercase()
        };
        warn!(
            peer = %self.peer,
            identity = %self.identity,
            user = %Escaped(username),
            command = %Escaped(&command),
            reason = rule.as_str(),
            "authentication refused"
        );
        let object = if typed.is_empty() { b"AUTH" } else { typed };
        self.log.add(
            Reason::Auth,
            in_multi,
            object,
            username.as_bytes(),
            self.info(username),
            Some(rule.as_str()),
        );
    }

    fn info(&self, user: &str) -> String {
        format!("{} user={user}", self.client)
    }
}
