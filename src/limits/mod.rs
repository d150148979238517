//! Abuse limits shared by every connection: connection caps ([`Admission`]),
//! rate gates ([`rate`]), and the one place limit hits are counted and logged
//! ([`report`]).
//!
//! Caps are counted, not polled: a connection holds a [`ConnSlot`] from TCP
//! accept until it closes, and a [`UserSlot`] while it runs as a user; dropping
//! a slot gives it back. The counters outlive configuration reloads.

pub mod rate;
pub mod report;
pub mod shared_rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Limits;

/// Why a connection was refused a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapRefusal {
    /// `limits.max_clients` connections are open.
    MaxClients,
    /// `limits.max_clients_per_ip` connections are open from this address.
    MaxClientsPerIp,
}

/// Open connections: in total, per IP address and per user.
#[derive(Debug, Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<Arc<str>, usize>,
}

impl Admission {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A panic while holding the lock cannot leave the counts half-updated
        // (each update is one statement), so a poisoned lock is still usable.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a new connection from `ip`, or says which cap is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<ConnSlot, CapRefusal> {
        let mut c = self.counts();
        if c.total >= limits.max_clients {
            return Err(CapRefusal::MaxClients);
        }
        let from_ip = c.per_ip.entry(ip).or_insert(0);
        if *from_ip >= limits.max_clients_per_ip {
            return Err(CapRefusal::MaxClientsPerIp);
        }
        *from_ip += 1;
        c.total += 1;
        Ok(ConnSlot {
            admission: Arc::clone(self),
            ip,
        })
    }

    /// Takes a place among `user`'s connections; `None` when `max` of them are open.
    /// With `max = None` the place is always given (and still counted).
    pub fn admit_user(self: &Arc<Self>, user: &str, max: Option<u32>) -> Option<UserSlot> {
        let mut c = self.counts();
        let user: Arc<str> = match c.per_user.get_key_value(user) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(user),
        };
        let n = c.per_user.entry(Arc::clone(&user)).or_insert(0);
        if max.is_some_and(|max| *n >= max as usize) {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            admission: Arc::clone(self),
            user,
        })
    }

    /// Open connections in total.
    pub fn total(&self) -> usize {
        self.counts().total
    }

    /// Open connections from `ip`.
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.counts().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Open connections running as `user`.
    pub fn of_user(&self, user: &str) -> usize {
        self.counts().per_user.get(user).copied().unwrap_or(0)
    }
}

/// One open connection's place; given back on drop.
#[derive(Debug)]
pub struct ConnSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// One connection's place among its user's connections; given back on drop.
#[derive(Debug)]
pub struct UserSlot {
    admission: Arc<Admission>,
    user: Arc<str>,
}

impl UserSlot {
    /// The user this place is held for.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        if let Some(n) = c.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> Limits {
        Limits {
            max_clients: total,
            max_clients_per_ip: per_ip,
            ..Limits::default()
        }
    }

    #[test]
    fn caps_count_open_connections_and_give_places_back() {
        let adm = Arc::new(Admission::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let l = limits(3, 2);
        let a1 = adm.admit(a, &l).unwrap();
        let _a2 = adm.admit(a, &l).unwrap();
        assert_eq!(adm.admit(a, &l).unwrap_err(), CapRefusal::MaxClientsPerIp);
        let _b1 = adm.admit(b, &l).unwrap();
        assert_eq!(adm.admit(b, &l).unwrap_err(), CapRefusal::MaxClients);
        assert_eq!((adm.total(), adm.from_ip(a), adm.from_ip(b)), (3, 2, 1));
        drop(a1);
        assert_eq!((adm.total(), adm.from_ip(a)), (2, 1));
        let _a3 = adm.admit(a, &l).unwrap();
        // A refusal takes nothing.
        assert_eq!(adm.admit(b, &l).unwrap_err(), CapRefusal::MaxClients);
        assert_eq!(adm.total(), 3);
    }

    #[test]
    fn user_places_respect_the_users_cap_and_uncapped_users_are_counted() {
        let adm = Arc::new(Admission::default());
        let u1 = adm.admit_user("app", Some(2)).unwrap();
        let u2 = adm.admit_user("app", Some(2)).unwrap();
        assert!(adm.admit_user("app", Some(2)).is_none());
        assert_eq!(adm.of_user("app"), 2);
        drop(u1);
        let _u3 = adm.admit_user("app", Some(2)).unwrap();
        let free: Vec<_> = (0..5).map(|_| adm.admit_user("free", None)).collect();
        assert!(free.iter().all(Option::is_some));
        assert_eq!(adm.of_user("free"), 5);
        drop(free);
        drop(u2);
        assert_eq!((adm.of_user("free"), adm.of_user("app")), (0, 1));
        // Lowered cap (a reload): existing places stay, new ones are refused.
        assert!(adm.admit_user("app", Some(1)).is_none());
    }
}
