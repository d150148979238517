//! GCRA rate gates built on `governor`: one per user with a `rate` (shared by
//! all of that user's connections), and per-IP gates for new connections and
//! failed authentications. Generic over governor's clock so tests drive them
//! with [`governor::clock::FakeRelativeClock`].

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{RateMode, RateSettings};

/// What to do with one command under a user's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the rate: go on.
    Go,
    /// Over the rate, `rate_mode = "reject"`: answer `-ERR rate limit exceeded`.
    Reject,
    /// Over the rate, `rate_mode = "delay"`: stop reading for this long, then ask again.
    Wait(Duration),
}

fn quota(s: RateSettings) -> Quota {
    let per_sec = NonZeroU32::new(s.ops_per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_sec).allow_burst(burst)
}

/// One shared GCRA bucket (a user's `rate`).
#[derive(Debug)]
pub struct RateBucket<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    settings: RateSettings,
    /// `rate_scope = "shared"`: this process's lease of the shared budget.
    lease: Lease,
}

/// Tokens of the shared budget leased to this process, spent without a lock.
#[derive(Debug, Default)]
pub struct Lease {
    tokens: AtomicU32,
    /// Spendable until this many nanoseconds after [`lease_epoch`].
    until: AtomicU64,
}

/// The instant lease deadlines count from.
fn lease_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn lease_now() -> u64 {
    u64::try_from(lease_epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Lease {
    /// Spends one leased token if one is left and the lease still holds.
    pub fn spend(&self) -> bool {
        if self.until.load(Ordering::Acquire) <= lease_now() {
            return false;
        }
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1))
            .is_ok()
    }

    /// A new lease: `tokens` to spend within `lasts`.
    pub fn renew(&self, tokens: u32, lasts: Duration) {
        let until = lease_now().saturating_add(u64::try_from(lasts.as_nanos()).unwrap_or(u64::MAX));
        self.tokens.store(tokens, Ordering::Release);
        self.until.store(until, Ordering::Release);
    }
}

impl RateBucket {
    /// A gate on the real clock.
    pub fn new(settings: RateSettings) -> Self {
        RateBucket::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateBucket<C> {
    /// A gate on `clock`.
    pub fn with_clock(settings: RateSettings, clock: C) -> Self {
        RateBucket {
            limiter: RateLimiter::direct_with_clock(quota(settings), clock.clone()),
            clock,
            settings,
            lease: Lease::default(),
        }
    }

    /// This process's lease of the user's shared budget (`rate_scope = "shared"`).
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The settings this gate was built from.
    pub fn settings(&self) -> RateSettings {
        self.settings
    }

    /// Takes a token, or says how long until one is due (nothing is taken then).
    pub fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// [`RateBucket::check`] turned into what a command gets under `mode`.
    pub fn verdict(&self, mode: RateMode) -> RateVerdict {
        match (self.check(), mode) {
            (Ok(()), _) => RateVerdict::Go,
            (Err(_), RateMode::Reject) => RateVerdict::Reject,
            // A zero wait would spin: always wait at least a millisecond.
            (Err(wait), RateMode::Delay) => RateVerdict::Wait(wait.max(Duration::from_millis(1))),
        }
    }
}

/// One GCRA bucket per key (per client IP address).
#[derive(Debug)]
pub struct KeyedRateBucket<K: Hash + Eq + Clone = IpAddr, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    checks: AtomicU32,
    settings: RateSettings,
}

/// Keys are forgotten once their bucket is full again; looked at every this many checks.
const HOUSEKEEPING_EVERY: u32 = 4096;

impl KeyedRateBucket {
    /// A per-IP gate on the real clock.
    pub fn new(settings: RateSettings) -> Self {
        KeyedRateBucket::with_clock(settings, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedRateBucket<K, C> {
    /// A keyed gate on `clock`.
    pub fn with_clock(settings: RateSettings, clock: C) -> Self {
        KeyedRateBucket {
            limiter: RateLimiter::dashmap_with_clock(quota(settings), clock.clone()),
            clock,
            checks: AtomicU32::new(0),
            settings,
        }
    }

    /// The rate and burst it was made with.
    pub fn settings(&self) -> RateSettings {
        self.settings
    }

    /// Takes a token for `key`, or says how long until one is due.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY
            == HOUSEKEEPING_EVERY - 1
        {
            // Memory follows active addresses, not every address ever seen.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every rate gate of one configuration.
#[derive(Debug, Default)]
pub struct Rates {
    users: std::collections::HashMap<String, Arc<RateBucket>>,
    conn_rate_per_ip: Option<Arc<KeyedRateBucket>>,
    auth_failures_per_ip: Option<Arc<KeyedRateBucket>>,
}

/// `previous` when it was made with `settings`, else a new gate from `make`.
fn keep_or_make<G>(
    settings: Option<RateSettings>,
    previous: Option<&Arc<G>>,
    same: impl Fn(&G) -> RateSettings,
    make: impl Fn(RateSettings) -> G,
) -> Option<Arc<G>> {
    let settings = settings?;
    Some(match previous {
        Some(old) if same(old) == settings => Arc::clone(old),
        _ => Arc::new(make(settings)),
    })
}

impl Rates {
    /// The gates `config` asks for: users' `rate`, `limits.conn_rate_per_ip`,
    /// `limits.auth_failures_per_ip`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Rates::from_config_keeping(config, &Rates::default())
    }

    /// Like [`Rates::from_config`] on a reload: every gate whose settings did not
    /// change is `previous`'s own, so its tokens (and a user's shared budget, and
    /// what each address has used) carry over; changed or new settings start full.
    pub fn from_config_keeping(config: &crate::config::Config, previous: &Rates) -> Self {
        Rates {
            users: config
                .users
                .iter()
                .filter_map(|u| {
                    let gate = keep_or_make(
                        u.rate,
                        previous.users.get(&u.name),
                        RateBucket::settings,
                        RateBucket::new,
                    )?;
                    Some((u.name.clone(), gate))
                })
                .collect(),
            conn_rate_per_ip: keep_or_make(
                config.limits.conn_rate_per_ip,
                previous.conn_rate_per_ip.as_ref(),
                KeyedRateBucket::settings,
                KeyedRateBucket::new,
            ),
            auth_failures_per_ip: keep_or_make(
                config.limits.auth_failures_per_ip,
                previous.auth_failures_per_ip.as_ref(),
                KeyedRateBucket::settings,
                KeyedRateBucket::new,
            ),
        }
    }

    /// The gate shared by `user`'s connections, if it has a `rate`.
    pub fn user(&self, user: &str) -> Option<&Arc<RateBucket>> {
        self.users.get(user)
    }

    /// A new connection from `ip`: `Err` when over `conn_rate_per_ip`.
    pub fn new_connection(&self, ip: IpAddr) -> Result<(), Duration> {
        self.conn_rate_per_ip
            .as_ref()
            .map_or(Ok(()), |g| g.check(&ip))
    }

    /// A failed authentication from `ip`: `Err(wait)` when over `auth_failures_per_ip`.
    pub fn auth_failure(&self, ip: IpAddr) -> Result<(), Duration> {
        self.auth_failures_per_ip
            .as_ref()
            .map_or(Ok(()), |g| g.check(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{FakeRelativeClock, Reference};

    fn config_with(rates: &str, conn_rate: &str) -> crate::config::Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n\
             [upstream]\naddress = \"127.0.0.1:1\"\n[limits]\n{conn_rate}\n\
             [[users]]\nname = \"a\"\nrules = \"on nopass\"\nrate = {rates}\n\
             [[users]]\nname = \"b\"\nrules = \"on nopass\"\nrate = {{ ops_per_sec = 5, burst = 1 }}\n"
        );
        crate::config::parse(&text, std::path::Path::new("/tmp/proxy.toml")).expect("config")
    }

    #[test]
    fn a_reload_keeps_the_gates_whose_settings_did_not_change() {
        let same = "{ ops_per_sec = 10, burst = 2 }";
        let old = Rates::from_config(&config_with(same, ""));
        // Use up user a's burst; the kept gate must remember it.
        assert!(old
            .user("a")
            .is_some_and(|g| g.check().is_ok() && g.check().is_ok()));
        let kept = Rates::from_config_keeping(&config_with(same, ""), &old);
        assert!(Arc::ptr_eq(&kept.users["a"], &old.users["a"]));
        assert!(Arc::ptr_eq(&kept.users["b"], &old.users["b"]));
        assert!(kept.user("a").is_some_and(|g| g.check().is_err()));
        assert!(Arc::ptr_eq(
            kept.conn_rate_per_ip.as_ref().expect("default on"),
            old.conn_rate_per_ip.as_ref().expect("default on")
        ));
        // A changed rate is a new, full gate; the unchanged one is still shared.
        let changed = Rates::from_config_keeping(
            &config_with(
                "{ ops_per_sec = 10, burst = 3 }",
                "conn_rate_per_ip = { ops_per_sec = 0, burst = 1 }",
            ),
            &kept,
        );
        assert!(!Arc::ptr_eq(&changed.users["a"], &old.users["a"]));
        assert!(changed.user("a").is_some_and(|g| g.check().is_ok()));
        assert!(Arc::ptr_eq(&changed.users["b"], &old.users["b"]));
        assert!(changed.conn_rate_per_ip.is_none());
    }

    fn settings(ops_per_sec: u32, burst: u32) -> RateSettings {
        RateSettings { ops_per_sec, burst }
    }

    /// Reject mode over `secs` seconds of commands every `step`: passes about
    /// rate x time + burst.
    #[test]
    fn reject_mode_passes_rate_times_time_plus_burst() {
        for (rate, burst, secs) in [(100, 10, 5), (1000, 500, 3), (7, 1, 20), (50, 50, 10)] {
            let clock = FakeRelativeClock::default();
            let gate = RateBucket::with_clock(settings(rate, burst), clock.clone());
            let step = Duration::from_micros(250);
            let steps = secs * 4000;
            let mut passed = 0u64;
            for _ in 0..steps {
                match gate.verdict(RateMode::Reject) {
                    RateVerdict::Go => passed += 1,
                    RateVerdict::Reject => {}
                    RateVerdict::Wait(_) => unreachable!(),
                }
                clock.advance(step);
            }
            let expected = u64::from(rate) * secs as u64 + u64::from(burst);
            assert!(
                passed.abs_diff(expected) <= 1,
                "rate {rate} burst {burst} over {secs}s: passed {passed}, expected {expected}"
            );
        }
    }

    /// Delay mode: a client that waits as told gets every command through, and
    /// the time it took is (n - burst) / rate.
    #[test]
    fn delay_mode_lets_everything_through_at_the_rate() {
        for (rate, burst, n) in [(100u32, 10u32, 1000u32), (3, 5, 50), (1000, 1, 5000)] {
            let clock = FakeRelativeClock::default();
            let gate = RateBucket::with_clock(settings(rate, burst), clock.clone());
            let start = clock.now();
            let mut waits = 0;
            let mut done = 0;
            while done < n {
                match gate.verdict(RateMode::Delay) {
                    RateVerdict::Go => done += 1,
                    RateVerdict::Wait(d) => {
                        waits += 1;
                        clock.advance(d);
                    }
                    RateVerdict::Reject => unreachable!(),
                }
            }
            let took: Duration = clock.now().duration_since(start).into();
            let ideal = Duration::from_secs_f64(f64::from(n - burst) / f64::from(rate));
            let slack = Duration::from_millis(2);
            assert!(
                took + slack >= ideal && took <= ideal + slack,
                "rate {rate} burst {burst} n {n}: took {took:?}, ideal {ideal:?}"
            );
            assert!(waits >= n - burst);
        }
    }

    #[test]
    fn a_wait_is_never_zero_and_a_refused_check_takes_nothing() {
        let clock = FakeRelativeClock::default();
        let gate = RateBucket::with_clock(settings(10, 2), clock.clone());
        assert!(gate.check().is_ok());
        assert!(gate.check().is_ok());
        let wait = gate.check().unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Asking again does not push the next token further away.
        assert_eq!(gate.check().unwrap_err(), wait);
        clock.advance(wait);
        assert!(gate.check().is_ok());
        assert!(
            matches!(gate.verdict(RateMode::Delay), RateVerdict::Wait(d) if d > Duration::ZERO)
        );
    }

    #[test]
    fn keyed_gates_keep_addresses_apart_and_forget_idle_ones() {
        let clock = FakeRelativeClock::default();
        let gate: KeyedRateBucket<IpAddr, _> =
            KeyedRateBucket::with_clock(settings(1, 3), clock.clone());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(gate.check(&a).is_ok());
        }
        assert_eq!(gate.check(&a).unwrap_err(), Duration::from_secs(1));
        assert!(gate.check(&b).is_ok(), "another address has its own bucket");
        clock.advance(Duration::from_secs(1));
        assert!(gate.check(&a).is_ok());
        assert!(gate.check(&a).is_err());
        // Once every bucket is full again, housekeeping forgets the keys.
        clock.advance(Duration::from_secs(10));
        for i in 0..HOUSEKEEPING_EVERY {
            let ip = IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            let _ = gate.check(&ip);
            clock.advance(Duration::from_secs(5));
        }
        assert!(gate.len() < 16, "{} keys remembered", gate.len());
    }
}
