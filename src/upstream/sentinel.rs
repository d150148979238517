//! Sentinel: which server is the master. One task per process asks the
//! sentinels in turn (`SENTINEL GET-MASTER-ADDR-BY-NAME`), confirms the answer
//! with `ROLE` on the server itself, and puts it in [`Endpoints`]; it stays
//! subscribed to `+switch-master` on one sentinel (another one when that
//! connection drops) so that a failover is followed at once, and asks again
//! when a connection finds the master unreachable or read-only, and every
//! [`RECHECK`] in any case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::connect::{
    connect_to, credentials_command, exchange, label, open_stream, UpstreamStream,
};
use super::endpoints::Endpoints;
use super::renames::Renames;
use super::{UpstreamError, UpstreamView};
use crate::config::{SentinelSettings, UpstreamAddr, UpstreamTarget};
use crate::logsafe::Escaped;
use crate::resp::reply::{ReplyScan, ReplyScanner};

/// The sentinels are asked again this often even without an event.
pub const RECHECK: Duration = Duration::from_secs(10);
/// While no master is known, the sentinels are asked this often.
const RETRY: Duration = Duration::from_millis(100);

/// Keeps `endpoints` on the master the sentinels name until `stop`.
/// `view` gives the configuration in force (a reload may change it).
pub async fn watch(
    endpoints: Arc<Endpoints>,
    view: impl Fn() -> UpstreamView + Send + Sync,
    stop: CancellationToken,
) {
    let mut subscribed: Option<UpstreamStream> = None;
    let mut next = 0;
    // The master a `+switch-master` just named, confirmed: the sentinels that
    // have not heard of the failover yet are not asked this turn.
    let mut switched = false;
    // The last "no master" WARN: one when it happens, then one a RECHECK.
    let mut warned: Option<Instant> = None;
    loop {
        let current = view();
        let UpstreamTarget::Sentinel(sentinel) = &current.settings.target else {
            return;
        };
        let known = if std::mem::take(&mut switched) {
            true
        } else {
            match discover(&current, sentinel, &endpoints).await {
                Ok(()) => {
                    warned = None;
                    true
                }
                Err(why) => {
                    if warned.is_none_or(|at| at.elapsed() >= RECHECK) {
                        warn!(reason = %Escaped(&why), "no upstream master known");
                        warned = Some(Instant::now());
                    }
                    false
                }
            }
        };
        if subscribed.is_none() {
            subscribed = subscribe(&current, sentinel, &mut next).await;
        }
        let pause = if known { RECHECK } else { RETRY };
        tokio::select! {
            () = stop.cancelled() => return,
            () = endpoints.discovery_requested() => {}
            () = tokio::time::sleep(pause) => {}
            event = switch_master(&mut subscribed, &sentinel.master) => {
                let Some(to) = event else {
                    subscribed = None;
                    continue;
                };
                info!(master = %Escaped(&sentinel.master), to = %Escaped(&to), "+switch-master");
                // Straight to the new master: the event names it before every
                // sentinel answers with it.
                let addr = UpstreamAddr::Tcp(to);
                let confirmed = connect_to(&addr, &current.settings, current.tls.as_ref(), &current.renames, true).await;
                if confirmed.is_ok() {
                    if endpoints.set_master(addr.clone()) {
                        warn!(master = %label(&addr), "upstream failover: new connections go to the new master");
                    }
                    switched = true;
                }
            }
        }
    }
}

/// Asks the sentinels in turn for the master, confirms it with `ROLE`, and
/// puts it in force; why none is known otherwise.
async fn discover(
    view: &UpstreamView,
    sentinel: &SentinelSettings,
    endpoints: &Endpoints,
) -> Result<(), String> {
    let mut why = String::from("no sentinel configured");
    for address in &sentinel.addresses {
        let addr = match ask(view, sentinel, address).await {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                why = format!("sentinel {address} knows no master {:?}", sentinel.master);
                continue;
            }
            Err(e) => {
                why = e.to_string();
                continue;
            }
        };
        match connect_to(
            &addr,
            &view.settings,
            view.tls.as_ref(),
            &view.renames,
            true,
        )
        .await
        {
            Ok(_) => {
                if endpoints.set_master(addr.clone()) {
                    warn!(master = %label(&addr), "upstream failover: new connections go to the new master");
                }
                return Ok(());
            }
            Err(e) => why = e.to_string(),
        }
    }
    // Nobody names a master that answers as one: keep the one in use only
    // while it still is one.
    if let Some(current) = endpoints.current() {
        let still = connect_to(
            &current.addr,
            &view.settings,
            view.tls.as_ref(),
            &view.renames,
            true,
        )
        .await;
        if still.is_ok() {
            return Ok(());
        }
        endpoints.forget_master();
    }
    Err(why)
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` on the sentinel at `address`.
async fn ask(
    view: &UpstreamView,
    sentinel: &SentinelSettings,
    address: &str,
) -> Result<Option<UpstreamAddr>, UpstreamError> {
    let (mut stream, mut commands) = sentinel_connection(view, sentinel, address).await?;
    commands.push(crate::resp::encode::command(&[
        b"SENTINEL",
        b"GET-MASTER-ADDR-BY-NAME",
        sentinel.master.as_bytes(),
    ]));
    let asked = exchange(&mut stream, &commands, address);
    let replies = tokio::time::timeout(view.settings.connect_timeout, asked)
        .await
        .map_err(|_| UpstreamError::Timeout(address.to_string()))??;
    check_auth(&commands, &replies, address)?;
    Ok(replies.last().and_then(|r| master_address(r)))
}

/// A connection to a sentinel (TLS when configured) and its AUTH, if any, to send first.
async fn sentinel_connection(
    view: &UpstreamView,
    sentinel: &SentinelSettings,
    address: &str,
) -> Result<(UpstreamStream, Vec<Vec<u8>>), UpstreamError> {
    let addr = UpstreamAddr::Tcp(address.to_string());
    let opened = tokio::time::timeout(
        view.settings.connect_timeout,
        open_stream(&addr, view.tls.as_ref()),
    );
    let stream = opened
        .await
        .map_err(|_| UpstreamError::Timeout(address.to_string()))??;
    let auth = credentials_command(
        sentinel.username.as_deref(),
        sentinel.password.as_deref(),
        &Renames::default(),
    );
    Ok((stream, auth.map(|a| a.to_vec()).into_iter().collect()))
}

/// An AUTH sent first must have been answered `+OK`.
fn check_auth(
    commands: &[Vec<u8>],
    replies: &[Vec<u8>],
    address: &str,
) -> Result<(), UpstreamError> {
    let sent_auth = commands.len() > 1;
    match replies.first() {
        Some(reply) if sent_auth && reply.as_slice() != b"+OK\r\n" => Err(UpstreamError::Auth {
            addr: address.to_string(),
            reply: String::from_utf8_lossy(reply).trim_end().to_string(),
        }),
        _ => Ok(()),
    }
}

/// `host:port` from a `GET-MASTER-ADDR-BY-NAME` reply (`*2` of two bulks);
/// `None` for a null or anything else.
fn master_address(reply: &[u8]) -> Option<UpstreamAddr> {
    let text = std::str::from_utf8(reply).ok()?;
    let mut lines = text.split("\r\n");
    if lines.next()? != "*2" {
        return None;
    }
    let (_, host, _, port) = (lines.next()?, lines.next()?, lines.next()?, lines.next()?);
    let port: u16 = port.parse().ok()?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(UpstreamAddr::Tcp(format!("{host}:{port}")))
}

/// A connection subscribed to `+switch-master`, on the first sentinel from
/// `next` on that accepts one.
async fn subscribe(
    view: &UpstreamView,
    sentinel: &SentinelSettings,
    next: &mut usize,
) -> Option<UpstreamStream> {
    for _ in 0..sentinel.addresses.len() {
        let address = &sentinel.addresses[*next % sentinel.addresses.len()];
        *next += 1;
        let Ok((mut stream, mut commands)) = sentinel_connection(view, sentinel, address).await
        else {
            continue;
        };
        commands.push(crate::resp::encode::command(&[
            b"SUBSCRIBE",
            b"+switch-master",
        ]));
        let asked = exchange(&mut stream, &commands, address);
        match tokio::time::timeout(view.settings.connect_timeout, asked).await {
            Ok(Ok(replies)) if check_auth(&commands, &replies, address).is_ok() => {
                return Some(stream)
            }
            _ => continue,
        }
    }
    None
}

/// Waits for a `+switch-master` of `master` on `subscribed`: its new address,
/// or `None` when the connection dropped (never completes without one).
async fn switch_master(subscribed: &mut Option<UpstreamStream>, master: &str) -> Option<String> {
    let stream = match subscribed {
        Some(s) => s,
        None => return std::future::pending().await,
    };
    let mut buf = Vec::new();
    let mut scanner = ReplyScanner::new();
    loop {
        match scanner.scan(&buf).ok()? {
            ReplyScan::Complete { len } => {
                let frame: Vec<u8> = buf.drain(..len).collect();
                // `*3 message +switch-master "<name> <old-ip> <old-port> <new-ip> <new-port>"`
                let text = String::from_utf8_lossy(&frame);
                let payload = text.rsplit("\r\n").nth(1).unwrap_or_default();
                let mut words = payload.split(' ');
                if words.next() == Some(master) {
                    let new: Vec<&str> = words.skip(2).collect();
                    return Some(new.join(":"));
                }
            }
            ReplyScan::Incomplete => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 || buf.len() > 1 << 20 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses() {
        assert_eq!(
            master_address(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"),
            Some(UpstreamAddr::Tcp("127.0.0.1:6380".into()))
        );
        assert_eq!(
            master_address(b"*2\r\n$3\r\n::1\r\n$4\r\n6380\r\n"),
            Some(UpstreamAddr::Tcp("[::1]:6380".into()))
        );
        assert_eq!(master_address(b"*-1\r\n"), None);
        assert_eq!(master_address(b"-ERR x\r\n"), None);
    }
}
