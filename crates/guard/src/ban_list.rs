//! The bans in force, kept for the question every accept asks: is this address banned? One
//! sorted table per prefix length in use (IPv4 and IPv6 apart), so that the answer costs one
//! lookup per length in use (a handful: /32, /64, /56, /48 and an administrator's odd ones)
//! whatever the number of bans, where a list cost one comparison per ban; sorted, so that the
//! bans inside a wider network can be counted (escalation); and an index by end time, so that
//! dropping the bans whose time is up touches only those.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::ban::Ban;
use crate::source::canonical;

/// Which table a network belongs in: IPv6 or not, and its prefix length.
type Shape = (bool, u8);

#[derive(Default)]
pub struct BanList {
    /// Per shape: the network's address bits (an IPv4 address in the low 32) to its ban.
    tables: BTreeMap<Shape, BTreeMap<u128, Ban>>,
    /// Every ban with an end, by end.
    ends: BTreeSet<(SystemTime, IpNet)>,
    len: usize,
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match canonical(ip) {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// The first `length` bits of an address of `width` bits.
fn masked(bits: u128, width: u8, length: u8) -> u128 {
    if length == 0 {
        return 0;
    }
    let keep = u128::MAX << (128 - u32::from(length.min(width)));
    let aligned = bits << (128 - u32::from(width));
    (aligned & keep) >> (128 - u32::from(width))
}

fn width(v6: bool) -> u8 {
    if v6 {
        128
    } else {
        32
    }
}

/// Where a network's ban lives: its shape and its (truncated) address bits.
fn place(network: &IpNet) -> (Shape, u128) {
    let (v6, bits) = bits(network.addr());
    let length = network.prefix_len();
    ((v6, length), masked(bits, width(v6), length))
}

impl BanList {
    pub fn len(&self) -> usize {
        self.len
    }

    /// A ban in force at `now` covering `ip`.
    pub fn find(&self, ip: IpAddr, now: SystemTime) -> Option<&Ban> {
        let (v6, bits) = bits(ip);
        self.tables
            .range((v6, 0)..=(v6, u8::MAX))
            .filter_map(|((_, length), table)| table.get(&masked(bits, width(v6), *length)))
            .find(|ban| ban.in_force(now))
    }

    /// A ban in force at `now` covering all of `network` (on it, or on a wider network).
    pub fn covering(&self, network: &IpNet, now: SystemTime) -> Option<&Ban> {
        let ((v6, length), bits) = place(network);
        self.tables
            .range((v6, 0)..=(v6, length))
            .filter_map(|((_, l), table)| table.get(&masked(bits, width(v6), *l)))
            .find(|ban| ban.in_force(now))
    }

    /// The ban on exactly `network`.
    pub fn get(&self, network: &IpNet) -> Option<&Ban> {
        let (shape, bits) = place(network);
        self.tables.get(&shape)?.get(&bits)
    }

    /// The bans on networks of `length` bits inside `wider`.
    pub fn inside(&self, wider: &IpNet, length: u8) -> impl Iterator<Item = &Ban> {
        let ((v6, wide), first) = place(wider);
        let span = width(v6) - wide.min(width(v6));
        let last = if span >= 128 { u128::MAX } else { first | ((1u128 << span) - 1) };
        self.tables.get(&(v6, length)).into_iter().flat_map(move |table| table.range(first..=last).map(|(_, b)| b))
    }

    /// Puts `ban` in, replacing the one on the same network; returns that one.
    pub fn insert(&mut self, ban: Ban) -> Option<Ban> {
        let (shape, bits) = place(&ban.network);
        if let Some(until) = ban.until {
            self.ends.insert((until, ban.network));
        }
        let previous = self.tables.entry(shape).or_default().insert(bits, ban);
        match &previous {
            Some(old) => self.forget_end(old),
            None => self.len += 1,
        }
        previous
    }

    /// Takes out the ban on exactly `network`.
    pub fn remove(&mut self, network: &IpNet) -> Option<Ban> {
        let (shape, bits) = place(network);
        let table = self.tables.get_mut(&shape)?;
        let removed = table.remove(&bits)?;
        if table.is_empty() {
            self.tables.remove(&shape);
        }
        self.len -= 1;
        self.forget_end(&removed);
        Some(removed)
    }

    fn forget_end(&mut self, ban: &Ban) {
        if let Some(until) = ban.until {
            self.ends.remove(&(until, ban.network));
        }
    }

    /// Takes out the bans whose time is up at `now`; returns them.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Ban> {
        let mut expired = Vec::new();
        while let Some(&(until, network)) = self.ends.first() {
            if until > now {
                break;
            }
            self.ends.pop_first();
            // The same network may have been banned again since, for longer: only a ban that
            // ends now goes.
            if self.get(&network).is_some_and(|b| b.until == Some(until)) {
                expired.extend(self.remove(&network));
            }
        }
        expired
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.tables.values().flat_map(|table| table.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ban(network: &str, until: Option<SystemTime>) -> Ban {
        Ban { network: network.parse().unwrap(), until, reason: "test".into(), offence: 1, manual: false }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn finds_the_ban_covering_an_address_at_any_prefix_length() {
        let now = SystemTime::now();
        let mut list = BanList::default();
        for network in ["192.0.2.7/32", "198.51.100.0/24", "2001:db8:1:2::/64", "2001:db8:9::/48", "10.0.0.0/8"] {
            assert!(list.insert(ban(network, None)).is_none());
        }
        assert_eq!(list.len(), 5);
        for (address, network) in [
            ("192.0.2.7", Some("192.0.2.7/32")),
            ("::ffff:192.0.2.7", Some("192.0.2.7/32")),
            ("192.0.2.8", None),
            ("198.51.100.255", Some("198.51.100.0/24")),
            ("10.200.3.4", Some("10.0.0.0/8")),
            ("2001:db8:1:2:ffff::1", Some("2001:db8:1:2::/64")),
            ("2001:db8:1:3::1", None),
            ("2001:db8:9:abcd::1", Some("2001:db8:9::/48")),
            ("2001:db8:a::1", None),
        ] {
            let found = list.find(ip(address), now).map(|b| b.network.to_string());
            assert_eq!(found.as_deref(), network, "{address}");
        }
        assert!(list.covering(&"2001:db8:9:ab00::/56".parse().unwrap(), now).is_some(), "inside the /48");
        assert!(list.covering(&"2001:db8:1::/48".parse().unwrap(), now).is_none(), "only a /64 of it");
        let all = ban("0.0.0.0/0", None);
        list.insert(all);
        assert!(list.find(ip("203.0.113.1"), now).is_some(), "/0 covers everything");
        assert!(list.find(ip("2001:db8::1"), now).is_none(), "an IPv4 /0 is not IPv6");
    }

    #[test]
    fn replaces_removes_and_expires_by_end() {
        let now = SystemTime::now();
        let soon = now + Duration::from_secs(10);
        let later = now + Duration::from_secs(100);
        let mut list = BanList::default();
        list.insert(ban("192.0.2.1/32", Some(soon)));
        list.insert(ban("192.0.2.2/32", Some(later)));
        list.insert(ban("192.0.2.3/32", None));
        // Banned again, for longer: the earlier end no longer applies.
        assert!(list.insert(ban("192.0.2.1/32", Some(later))).is_some());
        assert_eq!(list.len(), 3);
        assert!(list.expire(soon).is_empty());
        assert!(list.find(ip("192.0.2.2"), later).is_none(), "not in force at its end");
        let expired: Vec<String> = list.expire(later).iter().map(|b| b.network.to_string()).collect();
        assert_eq!(expired, ["192.0.2.1/32", "192.0.2.2/32"]);
        assert_eq!(list.len(), 1);
        assert!(list.remove(&"192.0.2.3/32".parse().unwrap()).is_some());
        assert!(list.remove(&"192.0.2.3/32".parse().unwrap()).is_none());
        assert!(list.len() == 0 && list.tables.is_empty() && list.ends.is_empty());
    }

    #[test]
    fn counts_the_bans_inside_a_wider_network() {
        let mut list = BanList::default();
        for network in ["2001:db8:1:100::/64", "2001:db8:1:1ff::/64", "2001:db8:1:200::/64", "2001:db8:1:300::/56"] {
            list.insert(ban(network, None));
        }
        let wider: IpNet = "2001:db8:1:100::/56".parse().unwrap();
        assert_eq!(list.inside(&wider, 64).count(), 2);
        assert_eq!(list.inside(&"2001:db8:1::/48".parse().unwrap(), 64).count(), 3);
        assert_eq!(list.inside(&"2001:db8:1::/48".parse().unwrap(), 56).count(), 1);
        assert_eq!(list.inside(&"::/0".parse().unwrap(), 64).count(), 3);
        list.insert(ban("192.0.2.1/32", None));
        list.insert(ban("192.0.3.1/32", None));
        assert_eq!(list.inside(&"192.0.2.0/24".parse().unwrap(), 32).count(), 1);
    }

    #[test]
    fn sixty_thousand_bans_are_found_as_fast_as_ten() {
        let now = SystemTime::now();
        let mut list = BanList::default();
        for n in 0..60_000u128 {
            let network = IpNet::new(IpAddr::V6((0x2001_0db8_0077_0000u128 << 64 | n << 64).into()), 64).unwrap();
            list.insert(Ban { network, until: None, reason: String::new(), offence: 1, manual: false });
        }
        assert_eq!(list.tables.len(), 1, "one table for the /64s");
        assert!(list.find(ip("2001:db8:77:1234::1"), now).is_some());
        assert!(list.find(ip("2001:db8:78::1"), now).is_none());
    }
}
