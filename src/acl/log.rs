//! `ACL LOG`: the proxy's own denials and authentication failures, kept like
//! Redis 7.0 keeps them (7 fields, merged within 60 s among the 10 newest
//! entries, at most 128 entries), shared by every connection.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::resp::encode::bulk;

/// Entries with the same reason, context, object and user this close merge.
const GROUPING: Duration = Duration::from_secs(60);
/// Only this many of the newest entries are considered for a merge.
const MERGE_WINDOW: usize = 10;
/// Redis's default `acllog-max-len`.
pub const MAX_LEN: usize = 128;

/// Why an entry was logged (Redis's `reason` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The command was denied.
    Command,
    /// A key was denied.
    Key,
    /// A channel was denied.
    Channel,
    /// AUTH / HELLO AUTH failed.
    Auth,
}

impl Reason {
    /// `ACL LOG`'s `reason` field, also the audit lines' `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    count: u64,
    reason: Reason,
    /// `toplevel` or `multi`.
    context: &'static str,
    object: Vec<u8>,
    username: Vec<u8>,
    at: Instant,
    client_info: String,
    /// The access rule (`allow_from`, `auth_methods`) that refused a user
    /// whose credentials were right; part of the merge key, so such an entry
    /// never merges with a wrong password's.
    refused_by: Option<&'static str>,
}

/// The shared log.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: Mutex<VecDeque<Entry>>,
}

impl AclLog {
    /// Adds (or merges) an entry. `refused_by`: the access rule that refused
    /// a user whose credentials were right (`client-info` then ends with
    /// `refused-by=<rule>`).
    pub fn add(
        &self,
        reason: Reason,
        in_multi: bool,
        object: &[u8],
        username: &[u8],
        client_info: String,
        refused_by: Option<&'static str>,
    ) {
        let client_info = match refused_by {
            Some(rule) => format!("{client_info} refused-by={rule}"),
            None => client_info,
        };
        let context = if in_multi { "multi" } else { "toplevel" };
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let found = entries.iter().take(MERGE_WINDOW).position(|e| {
            e.reason == reason
                && e.context == context
                && now.duration_since(e.at) <= GROUPING
                && e.object == object
                && e.username == username
                && e.refused_by == refused_by
        });
        if let Some(i) = found {
            // Redis 7.0 moves the entry to the front and takes the newest
            // client's info and time.
            if let Some(mut e) = entries.remove(i) {
                e.count += 1;
                e.at = now;
                e.client_info = client_info;
                entries.push_front(e);
            }
            return;
        }
        entries.push_front(Entry {
            count: 1,
            reason,
            context,
            object: object.to_vec(),
            username: username.to_vec(),
            at: now,
            client_info,
            refused_by,
        });
        entries.truncate(MAX_LEN);
    }

    /// Empties the log (`ACL LOG RESET`).
    pub fn reset(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }

    /// The newest `count` entries for the operator's status page, as JSON:
    /// a key or channel name is never shown (`object` only for command and
    /// authentication entries, where it is a command name).
    pub fn newest_json(&self, count: usize) -> Vec<serde_json::Value> {
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        entries
            .iter()
            .take(count)
            .map(|e| {
                let object = match e.reason {
                    Reason::Command | Reason::Auth => {
                        String::from_utf8_lossy(&e.object).into_owned()
                    }
                    Reason::Key | Reason::Channel => String::new(),
                };
                serde_json::json!({
                    "count": e.count,
                    "reason": e.reason.as_str(),
                    "context": e.context,
                    "object": object,
                    "username": String::from_utf8_lossy(&e.username),
                    "age_seconds": now.duration_since(e.at).as_secs(),
                    "client_info": e.client_info,
                })
            })
            .collect()
    }

    /// The `ACL LOG [count]` reply, newest first, as a RESP2 array of flat
    /// field/value arrays or (RESP3) an array of maps.
    pub fn reply(&self, count: usize, resp3: bool) -> Vec<u8> {
        let Ok(entries) = self.entries.lock() else {
            return b"*0\r\n".to_vec();
        };
        let now = Instant::now();
        let shown: Vec<&Entry> = entries.iter().take(count).collect();
        let mut out = format!("*{}\r\n", shown.len()).into_bytes();
        for e in shown {
            out.extend_from_slice(if resp3 { b"%7\r\n" } else { b"*14\r\n" });
            bulk(&mut out, b"count");
            out.extend_from_slice(format!(":{}\r\n", e.count).as_bytes());
            bulk(&mut out, b"reason");
            bulk(&mut out, e.reason.as_str().as_bytes());
            bulk(&mut out, b"context");
            bulk(&mut out, e.context.as_bytes());
            bulk(&mut out, b"object");
            bulk(&mut out, &e.object);
            bulk(&mut out, b"username");
            bulk(&mut out, &e.username);
            bulk(&mut out, b"age-seconds");
            let age = format_g17(now.duration_since(e.at).as_millis() as f64 / 1000.0);
            if resp3 {
                out.extend_from_slice(format!(",{age}\r\n").as_bytes());
            } else {
                bulk(&mut out, age.as_bytes());
            }
            bulk(&mut out, b"client-info");
            bulk(&mut out, e.client_info.as_bytes());
        }
        out
    }
}

/// C's `%.17g`, as Redis prints doubles.
pub fn format_g17(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let sci = format!("{:.16e}", v);
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..17).contains(&exp) {
        let (mantissa, _) = sci.split_once('e').unwrap_or((&sci, ""));
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa.to_string()), exp.abs());
    }
    let decimals = usize::try_from(16 - exp).unwrap_or(0);
    trim(format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_like_c() {
        assert_eq!(format_g17(0.0), "0");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(0.001), "0.001");
        assert_eq!(format_g17(12.0), "12");
        assert_eq!(format_g17(1.2345), "1.2344999999999999");
        assert_eq!(format_g17(1e20), "1e+20");
    }

    #[test]
    fn merges_within_window_and_caps() {
        let log = AclLog::default();
        log.add(Reason::Key, false, b"k", b"u", "id=1".into(), None);
        log.add(Reason::Key, false, b"k", b"u", "id=1".into(), None);
        log.add(Reason::Key, true, b"k", b"u", "id=1".into(), None);
        let reply = String::from_utf8(log.reply(10, false)).unwrap();
        assert!(
            reply.starts_with("*2\r\n*14\r\n$5\r\ncount\r\n:1\r\n"),
            "{reply}"
        );
        assert!(reply.contains(":2\r\n"));
        log.add(Reason::Key, false, b"k", b"u", "id=7".into(), None);
        let reply = String::from_utf8(log.reply(1, false)).unwrap();
        assert!(reply.contains(":3\r\n"), "{reply}");
        assert!(
            reply.contains("$4\r\nid=7\r\n"),
            "newest client-info: {reply}"
        );
        for i in 0..200 {
            log.add(
                Reason::Command,
                false,
                format!("c{i}").as_bytes(),
                b"u",
                String::new(),
                None,
            );
        }
        assert!(String::from_utf8(log.reply(1000, false))
            .unwrap()
            .starts_with("*128\r\n"));
        log.reset();
        assert_eq!(log.reply(10, false), b"*0\r\n");
    }
}
