//! The owners' addresses as the guard knows them at the door: the sources (an IPv4 address or
//! an IPv6 /64) that any account logged in from successfully within
//! `guard.known_source_memory`, read from the store at start and learnt from every success
//! since. At accept the guard cannot tell which account a connection is for, so any account's
//! address will do: such a connection may take a slot kept for owners, and no ban is widened
//! over it. Bounded, like everything the guard remembers.

use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::bounded_map::BoundedMap;
use crate::source::Source;

pub struct KnownSources {
    /// Each source with when it last logged in.
    seen: BoundedMap<Source, Instant>,
}

impl KnownSources {
    pub fn new(capacity: usize) -> KnownSources {
        KnownSources { seen: BoundedMap::new(capacity) }
    }

    /// A successful login from `source` at `at`.
    pub fn learn(&mut self, source: Source, at: Instant) {
        let last = self.seen.touch(&source, at, || at);
        *last = (*last).max(at);
    }

    /// Whether `source` logged in within `memory` before `now`.
    pub fn knows(&self, source: Source, now: Instant, memory: Duration) -> bool {
        self.seen.get(&source).is_some_and(|at| now.saturating_duration_since(*at) < memory)
    }

    /// Whether any source inside `network` logged in within `memory` before `now`.
    pub fn any_inside(&self, network: &IpNet, now: Instant, memory: Duration) -> bool {
        self.seen
            .iter()
            .any(|(source, at)| now.saturating_duration_since(*at) < memory && network.contains(&source.network()))
    }

    pub fn forget_before(&mut self, cutoff: Instant) {
        self.seen.forget_before(cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_for_the_memory_then_not() {
        let now = Instant::now();
        let memory = Duration::from_secs(100);
        let mut known = KnownSources::new(10);
        let home = Source::of("2001:db8:1:2::7".parse().unwrap());
        known.learn(home, now);
        assert!(known.knows(Source::of("2001:db8:1:2::99".parse().unwrap()), now, memory), "the same /64");
        assert!(!known.knows(Source::of("2001:db8:1:3::7".parse().unwrap()), now, memory));
        assert!(known.any_inside(&"2001:db8:1::/48".parse().unwrap(), now, memory));
        assert!(!known.any_inside(&"2001:db8:2::/48".parse().unwrap(), now, memory));
        assert!(!known.knows(home, now + memory, memory), "forgotten after the memory");
        assert!(!known.any_inside(&"2001:db8:1::/48".parse().unwrap(), now + memory, memory));
    }
}
