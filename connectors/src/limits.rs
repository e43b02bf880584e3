//! Connections open at once, in all and per peer address: what a listener (devices, HTTP)
//! checks right after accepting, so that one address cannot take every place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections, counted against both limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    /// (open in all, open per address; addresses with none are removed).
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            open: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, given back when dropped; `None` over a limit.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_address) = &mut *open;
        let here = per_address.get(&ip).copied().unwrap_or(0);
        if *total >= self.max_total || here >= self.max_per_address {
            return None;
        }
        *total += 1;
        per_address.insert(ip, here + 1);
        Some(ConnectionSlot { limits: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

/// One connection's place.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_address) = &mut *open;
        *total -= 1;
        if let Some(here) = per_address.get_mut(&self.ip) {
            *here -= 1;
            if *here == 0 {
                per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_in_all_and_per_address_and_come_back() {
        let limits = ConnectionLimits::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limits.take(a).unwrap();
        let _second = limits.take(a).unwrap();
        assert!(limits.take(a).is_none(), "per address");
        let _third = limits.take(b).unwrap();
        assert!(limits.take(b).is_none(), "in all");
        drop(first);
        assert_eq!(limits.open(), 2);
        assert!(limits.take(a).is_some());
    }
}
