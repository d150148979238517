//! `limits.rate_scope = "shared"`: every user's GCRA state lives in the
//! upstream Redis (key `portcullis:{rate}:<user>`: one hash tag for every
//! user, so in a cluster all of them sit on the master of one slot and the
//! process's one store connection reaches them all), kept by a Lua script that reads
//! Redis's own clock, so all proxy processes in front of it share one budget.
//!
//! Not a round trip per command: a process takes a *lease* of up to
//! [`lease_size`] tokens at once and spends them locally; a lease not spent
//! within the time it represents (its tokens at the user's rate) is dropped.
//! The store charges a lease when it grants it, so across all processes the
//! tokens admitted in any window of `W` seconds are at most `rate × W +
//! burst + lease` — the lease size is the whole error (over-admission), and
//! unspent, dropped leases only ever admit less.
//!
//! When the store cannot be reached (or answers an error), the user's local
//! bucket decides, a WARN line says so once, `portcullis_rate_store_fallbacks_total`
//! counts each such decision, and the store is tried again after a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{RateSettings, UpstreamSettings, UpstreamTarget};
use crate::limits::rate::RateBucket;
use crate::resp::value::Value;
use crate::tls::UpstreamTls;
use crate::upstream::cluster::slot::key_slot;
use crate::upstream::cluster::Topology;
use crate::upstream::{connect_to, exchange, Endpoints, Renames, UpstreamStream};

/// The GCRA with leases. `KEYS[1]`: the user's key; `ARGV`: microseconds per
/// token, burst, tokens wanted. Returns `{granted, wait_us}`.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local granted = math.floor((burst * interval - (tat - now)) / interval)
if granted > want then granted = want end
if granted < 1 then
  return {0, math.ceil(tat + interval - burst * interval - now)}
end
tat = math.floor(tat + granted * interval)
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {granted, 0}
";

/// Longest wait for the store before the local bucket decides.
const STORE_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, the store is left alone this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Tokens one lease asks for: 20 ms worth (a fiftieth of a second's budget,
/// which bounds the error), at most a quarter of the burst, 1 to 10 000.
pub fn lease_size(rate: RateSettings) -> u32 {
    (rate.ops_per_sec / 50).min(rate.burst / 4).clamp(1, 10_000)
}

/// What the store says for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedVerdict {
    /// Run it.
    Go,
    /// The shared budget is spent: the next token is due after this long.
    Wait(Duration),
}

/// Where the store is, for one call.
pub struct StoreTarget<'a> {
    /// The upstream settings (address or cluster seeds, credentials, timeout).
    pub settings: &'a UpstreamSettings,
    /// Upstream TLS.
    pub tls: Option<&'a UpstreamTls>,
    /// Renamed commands (`EVAL` may be renamed).
    pub renames: &'a Renames,
    /// The Sentinel master.
    pub endpoints: &'a Endpoints,
    /// Cluster mode: the slot map.
    pub topology: Option<&'a Topology>,
}

/// The process's side of the shared budgets.
#[derive(Debug, Default)]
pub struct RateStore {
    /// One store connection, one request at a time.
    conn: tokio::sync::Mutex<Option<UpstreamStream>>,
    /// Not before this instant after a failure.
    down_until: Mutex<Option<Instant>>,
    /// A fallback was logged and not yet the recovery.
    warned: AtomicBool,
}

impl RateStore {
    /// Takes one token of `user`'s shared budget: from this process's lease
    /// (kept in the user's `bucket`, spent without a lock), or a new lease
    /// from the store. `Err` when the store cannot say (the caller uses the
    /// local bucket).
    pub async fn take(
        &self,
        user: &str,
        bucket: &RateBucket,
        target: &StoreTarget<'_>,
    ) -> Result<SharedVerdict, ()> {
        let rate = bucket.settings();
        if bucket.lease().spend() {
            return Ok(SharedVerdict::Go);
        }
        if self
            .down_until
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(());
        }
        let mut conn = self.conn.lock().await;
        // Another task may have brought a lease meanwhile.
        if bucket.lease().spend() {
            return Ok(SharedVerdict::Go);
        }
        let want = lease_size(rate);
        match tokio::time::timeout(STORE_TIMEOUT, lease(&mut conn, user, rate, want, target)).await
        {
            Ok(Ok((granted, wait_us))) => {
                self.recovered();
                if granted == 0 {
                    return Ok(SharedVerdict::Wait(Duration::from_micros(wait_us.max(1))));
                }
                let lasts = Duration::from_secs_f64(
                    f64::from(granted) / f64::from(rate.ops_per_sec.max(1)),
                );
                let lasts = lasts.clamp(Duration::from_millis(20), Duration::from_secs(1));
                bucket.lease().renew(granted - 1, lasts);
                Ok(SharedVerdict::Go)
            }
            outcome => {
                *conn = None;
                let why = match outcome {
                    Ok(Err(e)) => e,
                    _ => "no answer in time".to_owned(),
                };
                if let Ok(mut d) = self.down_until.lock() {
                    *d = Some(Instant::now() + RETRY_AFTER);
                }
                if !self.warned.swap(true, Ordering::Relaxed) {
                    warn!(reason = %why, "rate store unreachable; using local rate limits");
                }
                Err(())
            }
        }
    }

    fn recovered(&self) {
        if self.warned.swap(false, Ordering::Relaxed) {
            info!("rate store reachable again; shared rate limits in force");
        }
    }
}

/// The store key of `user`. The hash tag is the same for every user: one
/// slot, one master, so one connection serves every user's lease.
fn key_of(user: &str) -> String {
    format!("portcullis:{{rate}}:{user}")
}

/// One lease request: `(granted, wait_us)`.
async fn lease(
    conn: &mut Option<UpstreamStream>,
    user: &str,
    rate: RateSettings,
    want: u32,
    target: &StoreTarget<'_>,
) -> Result<(u32, u64), String> {
    let key = key_of(user);
    if conn.is_none() {
        *conn = Some(open(&key, target).await?);
    }
    let Some(stream) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let interval = format!("{:.3}", 1e6 / f64::from(rate.ops_per_sec.max(1)));
    let (burst, want) = (rate.burst.to_string(), want.to_string());
    let eval = target
        .renames
        .command(&[
            b"EVAL",
            SCRIPT.as_bytes(),
            b"1",
            key.as_bytes(),
            interval.as_bytes(),
            burst.as_bytes(),
            want.as_bytes(),
        ])
        .ok_or("EVAL is renamed away upstream")?;
    let replies = exchange(stream, &[eval], "rate store")
        .await
        .map_err(|e| e.to_string())?;
    let reply = replies.first().ok_or("no reply")?;
    let parsed = Value::of(reply).ok_or("unparsable reply")?;
    let items = parsed.items().ok_or_else(|| {
        format!(
            "store answered {}",
            String::from_utf8_lossy(reply).trim_end()
        )
    })?;
    let number = |i: usize| items.get(i).and_then(Value::int).unwrap_or(0);
    Ok((
        u32::try_from(number(0)).unwrap_or(0),
        u64::try_from(number(1)).unwrap_or(0),
    ))
}

/// A connection to where `key` lives: the standalone server, the Sentinel
/// master, or the cluster master of the key's slot.
async fn open(key: &str, t: &StoreTarget<'_>) -> Result<UpstreamStream, String> {
    let addr = match (&t.settings.target, t.topology) {
        (UpstreamTarget::Cluster(c), Some(topology)) => {
            let map = topology.map();
            map.owner(key_slot(key.as_bytes()))
                .map(|m| m.addr.clone())
                .or_else(|| c.seeds.first().cloned())
                .ok_or("no cluster node known")?
        }
        (UpstreamTarget::Address(a), _) => a.clone(),
        (UpstreamTarget::Sentinel(_), _) => t
            .endpoints
            .current()
            .map(|e| e.addr)
            .ok_or("no master known")?,
        (UpstreamTarget::Cluster(c), None) => c.seeds.first().cloned().ok_or("no seed")?,
    };
    let must_be_master = matches!(t.settings.target, UpstreamTarget::Sentinel(_));
    connect_to(&addr, t.settings, t.tls, t.renames, must_be_master)
        .await
        .map(|c| c.stream)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_sizes_stay_small() {
        let r = |ops_per_sec, burst| RateSettings { ops_per_sec, burst };
        assert_eq!(lease_size(r(100, 20)), 2);
        assert_eq!(lease_size(r(1, 1)), 1);
        assert_eq!(lease_size(r(100_000, 100_000)), 2000);
        assert_eq!(lease_size(r(10_000_000, 10_000_000)), 10_000);
        assert_eq!(lease_size(r(1000, 8)), 2);
        assert_eq!(key_of("app"), "portcullis:{rate}:app");
        assert_eq!(
            key_slot(key_of("a").as_bytes()),
            key_slot(key_of("b").as_bytes())
        );
    }
}
