//! Password guessing is slowed down: after a few wrong passwords from one address for one
//! user, or many from one address for any users, that address waits before its next
//! password is even checked (429 with `Retry-After`), the wait doubling with each further
//! failure up to a quarter of an hour. A right password clears the address's record for that
//! user. Counting per address (not per user alone) means a guesser cannot lock the real
//! user out from elsewhere. Tokens are not throttled: they are random and 256 bits long.
//!
//! Memory is bounded: at most [`MAX_ENTRIES`] records; when full, the stalest goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords for one user from one address before waits begin.
pub const FREE_PER_USER: u32 = 5;
/// Wrong passwords from one address, for any users, before waits begin.
pub const FREE_PER_ADDRESS: u32 = 20;
/// The longest wait, and how long a record is kept after its last failure.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Records kept at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    until: Instant,
}

impl Failures {
    fn failed(&mut self, free: u32, now: Instant) {
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count >= free {
            let doublings = (self.count - free).min(10);
            self.until = now + Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
        }
    }
}

/// The key of a record: an address, and the user name (`None`: all names from the address).
type Key = (IpAddr, Option<String>);

#[derive(Default)]
pub struct LoginThrottle {
    records: Mutex<HashMap<Key, Failures>>,
}

impl LoginThrottle {
    /// How long `address` must still wait before a password for `user` is checked, if at all.
    pub fn wait(&self, address: IpAddr, user: &str, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        [(address, Some(user.to_owned())), (address, None)]
            .iter()
            .filter_map(|key| records.get(key))
            .filter(|f| f.until > now)
            .map(|f| f.until - now)
            .max()
    }

    /// A wrong password (or an unknown user) from `address`.
    pub fn failed(&self, address: IpAddr, user: &str, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for (key, free) in [((address, Some(user.to_owned())), FREE_PER_USER), ((address, None), FREE_PER_ADDRESS)] {
            if !records.contains_key(&key) {
                make_room(&mut records, now);
            }
            let fresh = Failures { count: 0, last: now, until: now };
            let entry = records.entry(key).or_insert(fresh);
            if now.duration_since(entry.last) > MAX_WAIT {
                *entry = fresh;
            }
            entry.failed(free, now);
        }
    }

    /// The right password: `address` may try `user` afresh. (Its failures for other names
    /// still count against the address.)
    pub fn succeeded(&self, address: IpAddr, user: &str) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).remove(&(address, Some(user.to_owned())));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Forgets records older than [`MAX_WAIT`]; if that is not enough, the stalest tenth (at
/// once, so that a flood of new addresses costs one scan per thousand, not one each).
fn make_room(records: &mut HashMap<Key, Failures>, now: Instant) {
    if records.len() < MAX_ENTRIES {
        return;
    }
    records.retain(|_, f| now.duration_since(f.last) <= MAX_WAIT);
    if records.len() >= MAX_ENTRIES {
        let mut lasts: Vec<Instant> = records.values().map(|f| f.last).collect();
        let (_, cutoff, _) = lasts.select_nth_unstable(MAX_ENTRIES / 10);
        let cutoff = *cutoff;
        records.retain(|_, f| f.last > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn waits_begin_after_the_free_failures_and_double() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_PER_USER - 1 {
            t.failed(ip(1), "admin", now);
            assert_eq!(t.wait(ip(1), "admin", now), None);
        }
        t.failed(ip(1), "admin", now);
        assert_eq!(t.wait(ip(1), "admin", now), Some(Duration::from_secs(1)));
        t.failed(ip(1), "admin", now);
        assert_eq!(t.wait(ip(1), "admin", now), Some(Duration::from_secs(2)));
        // Another address, or another user from the same address, is not held up (yet).
        assert_eq!(t.wait(ip(2), "admin", now), None);
        assert_eq!(t.wait(ip(1), "duty", now), None);
        for _ in 0..20 {
            t.failed(ip(1), "admin", now);
        }
        assert_eq!(t.wait(ip(1), "admin", now), Some(MAX_WAIT), "at most a quarter of an hour");
        // 26 failures from the address: its other names wait too.
        assert!(t.wait(ip(1), "duty", now).is_some());
        // After the wait and a right password, the address starts afresh for that user.
        t.succeeded(ip(1), "admin");
        assert_eq!(t.wait(ip(1), "admin", now + MAX_WAIT + Duration::from_secs(1)), None);
    }

    #[test]
    fn spraying_many_names_from_one_address_is_held_up_too() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(t.wait(ip(3), &format!("user{i}"), now), None);
            t.failed(ip(3), &format!("user{i}"), now);
        }
        assert!(t.wait(ip(3), "someone-new", now).is_some());
        assert_eq!(t.wait(ip(4), "someone-new", now), None);
    }

    #[test]
    fn old_failures_are_forgotten_and_memory_is_bounded() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_PER_USER {
            t.failed(ip(5), "admin", now);
        }
        let later = now + MAX_WAIT + Duration::from_secs(1);
        t.failed(ip(5), "admin", later);
        assert_eq!(t.wait(ip(5), "admin", later), None, "counting starts again after a quiet quarter hour");
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            t.failed(IpAddr::from(i.to_be_bytes()), "x", later);
        }
        assert!(t.len() <= MAX_ENTRIES, "{}", t.len());
    }
}
