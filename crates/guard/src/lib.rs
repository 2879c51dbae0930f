//! The guard (DESIGN §2): every admission decision for every listener is made here, before any
//! TLS work. Protocols report facts; the guard decides.
//!
//! This first version bounds connections in total and per source. Sources are grouped the way
//! attackers are: an IPv4 address, or an IPv6 /64 (one host usually owns a whole /64).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use portcullis_events::RefuseReason;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_source: usize,
}

/// Where a connection comes from, as the guard counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    /// The /64 prefix.
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(*v4)),
            Source::V6(prefix) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64)),
        }
    }
}

struct Counts {
    total: usize,
    per_source: HashMap<Source, usize>,
}

#[derive(Clone)]
pub struct Guard {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// A connection slot; dropping it gives the slot back.
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    source: Source,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_source.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    c.per_source.remove(&self.source);
                }
            }
        }
    }
}

impl Guard {
    pub fn new(limits: Limits) -> Guard {
        Guard { limits, counts: Arc::new(Mutex::new(Counts { total: 0, per_source: HashMap::new() })) }
    }

    /// Decides whether a new connection from `ip` may proceed.
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, RefuseReason> {
        let source = Source::of(ip);
        let mut c = self.counts.lock().map_err(|_| RefuseReason::TooManyConnections)?;
        if c.total >= self.limits.max_connections {
            return Err(RefuseReason::TooManyConnections);
        }
        let from_source = c.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.limits.max_connections_per_source {
            return Err(RefuseReason::TooManyConnectionsFromPeer);
        }
        c.total += 1;
        c.per_source.insert(source, from_source + 1);
        Ok(Admission { counts: self.counts.clone(), source })
    }

    /// Connections currently admitted.
    pub fn active(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_per_source_and_in_total() {
        let guard = Guard::new(Limits { max_connections: 3, max_connections_per_source: 2 });
        let a1 = guard.admit(ip("127.0.0.2")).unwrap();
        let _a2 = guard.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(guard.admit(ip("127.0.0.2")).err(), Some(RefuseReason::TooManyConnectionsFromPeer));
        let _b = guard.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(guard.admit(ip("127.0.0.4")).err(), Some(RefuseReason::TooManyConnections));
        drop(a1);
        assert_eq!(guard.active(), 2);
        assert!(guard.admit(ip("127.0.0.2")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let guard = Guard::new(Limits { max_connections: 10, max_connections_per_source: 1 });
        let _a = guard.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(guard.admit(ip("2001:db8:1:2:ffff::9")).is_err(), "same /64");
        assert!(guard.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = guard.admit(ip("192.0.2.1")).unwrap();
        assert!(guard.admit(ip("::ffff:192.0.2.1")).is_err());
        assert_eq!(Source::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }
}
