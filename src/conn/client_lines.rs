//! `CLIENT INFO` / `CLIENT LIST` replies, rewritten on their way to the client
//! so that they describe the proxy's clients and never the upstream.
//!
//! Redis describes each of its connections with `addr=` (the connecting side),
//! `laddr=` (its own, i.e. the upstream's, address) and `user=` (for the
//! proxy's connections, the proxy's upstream user). Every upstream connection
//! the proxy opens is listed in the [`ClientDirectory`] under the Redis client
//! id the upstream gave it, with a [`ClientCard`] for the client behind it: its
//! address, the proxy address it connected to, and the user it runs as now.
//! Lines of those connections get the card's values. On other lines (clients
//! of the upstream that are not this proxy's, or a connection whose id is not
//! known), `laddr=` is hidden, and so is `user=` when it is the proxy's
//! upstream user and `addr=` when it is the upstream's unix socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What a reply shows for a value it must not show.
pub const HIDDEN: &str = "?";

/// One client of the proxy, as `CLIENT LIST` shows it.
#[derive(Debug)]
pub struct ClientCard {
    /// The client's address.
    pub peer: SocketAddr,
    /// The proxy address the client connected to.
    pub local: SocketAddr,
    user: Mutex<String>,
}

impl ClientCard {
    /// A card for a client at `peer` connected to `local`, running as `user` (`""` = none).
    pub fn new(peer: SocketAddr, local: SocketAddr, user: &str) -> Self {
        ClientCard {
            peer,
            local,
            user: Mutex::new(user.to_string()),
        }
    }

    /// The client now runs as `user` (`""` before authentication).
    pub fn set_user(&self, user: &str) {
        if let Ok(mut u) = self.user.lock() {
            if *u != user {
                user.clone_into(&mut u);
            }
        }
    }

    fn user(&self) -> String {
        self.user.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

/// The proxy's upstream connections by Redis client id, with their clients.
#[derive(Debug, Default)]
pub struct ClientDirectory {
    by_id: Mutex<HashMap<u64, Arc<ClientCard>>>,
}

/// An upstream connection's place in the [`ClientDirectory`]; removed on drop.
#[derive(Debug)]
pub struct Listed {
    directory: Arc<ClientDirectory>,
    id: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        if let Ok(mut map) = self.directory.by_id.lock() {
            map.remove(&self.id);
        }
    }
}

impl ClientDirectory {
    /// Lists upstream client `id` as serving `card` until the result is dropped.
    pub fn list(self: &Arc<Self>, id: u64, card: Arc<ClientCard>) -> Listed {
        if let Ok(mut map) = self.by_id.lock() {
            map.insert(id, card);
        }
        Listed {
            directory: Arc::clone(self),
            id,
        }
    }

    fn card(&self, id: u64) -> Option<Arc<ClientCard>> {
        self.by_id.lock().ok()?.get(&id).cloned()
    }
}

/// What the rewriting needs to know about the connection and the upstream.
#[derive(Debug)]
pub struct ClientLines {
    /// The client this connection serves.
    pub own: Arc<ClientCard>,
    /// Every upstream connection of the proxy.
    pub directory: Arc<ClientDirectory>,
    /// `user=` values that are the proxy's own upstream user.
    pub upstream_users: Vec<String>,
    /// `addr=` value of every unix-socket connection to the upstream, if it is one.
    pub upstream_socket: Option<String>,
}

impl ClientLines {
    /// The reply `frame` (`$` bulk or RESP3 `=` verbatim string) of `CLIENT INFO`
    /// (`own_line`: its one line is this connection's) or `CLIENT LIST`,
    /// rewritten; any other frame (an error) unchanged.
    pub fn rewrite(&self, frame: &[u8], own_line: bool) -> Vec<u8> {
        let Some((prefix, text)) = bulk_text(frame) else {
            return frame.to_vec();
        };
        let mut body = prefix.to_vec();
        for line in text.split_inclusive(|&b| b == b'\n') {
            let (content, newline) = match line.strip_suffix(b"\n") {
                Some(c) => (c, &b"\n"[..]),
                None => (line, &b""[..]),
            };
            let card = if own_line {
                Some(Arc::clone(&self.own))
            } else {
                field(content, b"id=")
                    .and_then(|id| std::str::from_utf8(id).ok()?.parse().ok())
                    .and_then(|id| self.directory.card(id))
            };
            self.rewrite_line(content, card.as_deref(), &mut body);
            body.extend_from_slice(newline);
        }
        let ty = frame[0];
        let mut out = format!("{}{}\r\n", char::from(ty), body.len()).into_bytes();
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn rewrite_line(&self, line: &[u8], card: Option<&ClientCard>, out: &mut Vec<u8>) {
        for (i, token) in line.split(|&b| b == b' ').enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let Some(eq) = token.iter().position(|&b| b == b'=') else {
                out.extend_from_slice(token);
                continue;
            };
            let (name, value) = (&token[..=eq], &token[eq + 1..]);
            let replaced = match (name, card) {
                (b"addr=", Some(c)) => Some(c.peer.to_string()),
                (b"laddr=", Some(c)) => Some(c.local.to_string()),
                (b"user=", Some(c)) => Some(c.user()),
                (b"laddr=", None) => Some(HIDDEN.to_string()),
                (b"addr=", None)
                    if self.upstream_socket.as_deref().map(str::as_bytes) == Some(value) =>
                {
                    Some(HIDDEN.to_string())
                }
                (b"user=", None) if self.upstream_users.iter().any(|u| u.as_bytes() == value) => {
                    Some(HIDDEN.to_string())
                }
                _ => None,
            };
            out.extend_from_slice(name);
            match replaced {
                Some(v) => out.extend_from_slice(v.as_bytes()),
                None => out.extend_from_slice(value),
            }
        }
    }
}

/// Splits a `$` bulk or `=` verbatim frame into the verbatim format prefix
/// (`txt:`, or nothing) and its text.
fn bulk_text(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let ty = *frame.first()?;
    if ty != b'$' && ty != b'=' {
        return None;
    }
    let header_end = memchr::memchr(b'\n', frame)? + 1;
    let payload = frame.get(header_end..frame.len().checked_sub(2)?)?;
    if ty == b'=' {
        Some((payload.get(..4)?, payload.get(4..)?))
    } else {
        Some((&[][..], payload))
    }
}

/// The value of the first `name` field of a line.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    line.split(|&b| b == b' ')
        .find_map(|token| token.strip_prefix(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Vec<u8> {
        format!("${}\r\n{text}\r\n", text.len()).into_bytes()
    }

    fn lines() -> (ClientLines, Listed, Listed) {
        let own = Arc::new(ClientCard::new(
            "10.0.0.5:40000".parse().unwrap(),
            "127.0.0.1:6380".parse().unwrap(),
            "alice",
        ));
        let other = Arc::new(ClientCard::new(
            "10.0.0.6:40001".parse().unwrap(),
            "127.0.0.1:6380".parse().unwrap(),
            "",
        ));
        other.set_user("bob");
        let directory = Arc::new(ClientDirectory::default());
        let a = directory.list(31, Arc::clone(&own));
        let b = directory.list(32, other);
        let lines = ClientLines {
            own,
            directory,
            upstream_users: vec!["proxy".into()],
            upstream_socket: None,
        };
        (lines, a, b)
    }

    #[test]
    fn info_shows_the_client_never_the_upstream() {
        let (lines, _a, _b) = lines();
        let info = "id=31 addr=127.0.0.1:37552 laddr=127.0.0.1:7111 fd=8 name=x cmd=client|info user=proxy redir=-1 resp=2\n";
        let out = lines.rewrite(&bulk(info), true);
        let want = "id=31 addr=10.0.0.5:40000 laddr=127.0.0.1:6380 fd=8 name=x cmd=client|info user=alice redir=-1 resp=2\n";
        assert_eq!(out, bulk(want));
        // RESP3 verbatim string.
        let verbatim = format!("={}\r\ntxt:{info}\r\n", info.len() + 4);
        let out = lines.rewrite(verbatim.as_bytes(), true);
        assert_eq!(
            out,
            format!("={}\r\ntxt:{want}\r\n", want.len() + 4).into_bytes()
        );
        // Errors pass unchanged.
        assert_eq!(lines.rewrite(b"-ERR x\r\n", true), b"-ERR x\r\n");
    }

    #[test]
    fn list_shows_each_proxy_client_and_hides_the_rest() {
        let (lines, _a, b) = lines();
        let list = "id=31 addr=127.0.0.1:1 laddr=127.0.0.1:7111 user=proxy\n\
                    id=32 addr=127.0.0.1:2 laddr=127.0.0.1:7111 user=proxy\n\
                    id=40 addr=10.9.9.9:3 laddr=127.0.0.1:7111 user=proxy\n\
                    id=41 addr=10.9.9.9:4 laddr=127.0.0.1:7111 user=ops\n";
        let out = String::from_utf8(lines.rewrite(&bulk(list), false)).unwrap();
        assert!(out.contains("id=31 addr=10.0.0.5:40000 laddr=127.0.0.1:6380 user=alice\n"));
        assert!(out.contains("id=32 addr=10.0.0.6:40001 laddr=127.0.0.1:6380 user=bob\n"));
        assert!(out.contains("id=40 addr=10.9.9.9:3 laddr=? user=?\n"));
        assert!(out.contains("id=41 addr=10.9.9.9:4 laddr=? user=ops\n"));
        assert!(!out.contains("7111") && !out.contains("proxy"), "{out}");
        drop(b);
        let out = String::from_utf8(lines.rewrite(&bulk(list), false)).unwrap();
        assert!(
            out.contains("id=32 addr=127.0.0.1:2 laddr=? user=?\n"),
            "{out}"
        );
    }

    #[test]
    fn a_unix_socket_address_is_hidden() {
        let (mut lines, _a, _b) = lines();
        lines.upstream_socket = Some("/run/redis.sock:0".into());
        let list = "id=50 addr=/run/redis.sock:0 laddr=/run/redis.sock:0 user=default\n";
        let out = String::from_utf8(lines.rewrite(&bulk(list), false)).unwrap();
        assert_eq!(out.as_bytes(), bulk("id=50 addr=? laddr=? user=default\n"));
    }
}
