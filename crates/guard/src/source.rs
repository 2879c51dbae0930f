//! Where a connection comes from, as the guard counts it: an IPv4 address, or an IPv6 /64
//! (one host usually owns a whole /64, so counting addresses would let it rotate freely); and
//! the wider networks a source lies in, which one customer often holds whole: the IPv6 /56 (a
//! household's or small office's allocation) and /48 (a site's, RFC 6177), and the IPv4 /24.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// The source a network stands for, if it is exactly one (an IPv4 /32 or an IPv6 /64).
    pub fn exactly(network: &IpNet) -> Option<Source> {
        let source = Source::of(network.addr());
        (source.network() == *network).then_some(source)
    }

    /// The network a ban on this source covers.
    pub fn network(self) -> IpNet {
        match self {
            Source::V4(v4) => IpNet::from(IpAddr::V4(Ipv4Addr::from(v4))),
            Source::V6(prefix) => v6_network(u128::from(prefix) << 64, 64),
        }
    }

    /// The IPv6 /56 holding this source (its top 56 bits); `None` for IPv4.
    pub fn v6_56(self) -> Option<u64> {
        match self {
            Source::V6(prefix) => Some(prefix >> 8),
            Source::V4(_) => None,
        }
    }

    /// The IPv6 /48 holding this source (its top 48 bits); `None` for IPv4.
    pub fn v6_48(self) -> Option<u64> {
        match self {
            Source::V6(prefix) => Some(prefix >> 16),
            Source::V4(_) => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::V4(v4) => write!(f, "{}", Ipv4Addr::from(*v4)),
            Source::V6(prefix) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64)),
        }
    }
}

fn v6_network(bits: u128, length: u8) -> IpNet {
    IpNet::new(IpAddr::V6(Ipv6Addr::from(bits)), length).expect("a valid IPv6 prefix length").trunc()
}

/// The network of `length` bits holding `network` (which must be at least that long).
pub fn supernet(network: &IpNet, length: u8) -> IpNet {
    IpNet::new(network.addr(), length).map(|n| n.trunc()).unwrap_or(*network)
}

/// The address as the guard compares it with networks: IPv4-mapped IPv6 as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_and_the_networks_around_them() {
        let s = Source::of(ip("2001:db8:aa:bbcc:1:2:3:4"));
        assert_eq!(s.network(), "2001:db8:aa:bbcc::/64".parse::<IpNet>().unwrap());
        assert_eq!(s.v6_56(), Source::of(ip("2001:db8:aa:bb00::1")).v6_56(), "the same /56");
        assert_ne!(s.v6_56(), Source::of(ip("2001:db8:aa:bd00::1")).v6_56());
        assert_eq!(s.v6_48(), Source::of(ip("2001:db8:aa:ffff::1")).v6_48(), "the same /48");
        assert_ne!(s.v6_48(), Source::of(ip("2001:db8:ab::1")).v6_48());
        assert_eq!(Source::of(ip("::ffff:192.0.2.7")), Source::of(ip("192.0.2.7")), "IPv4-mapped");
        assert_eq!(Source::of(ip("192.0.2.7")).v6_56(), None);
        assert_eq!(supernet(&s.network(), 56), "2001:db8:aa:bb00::/56".parse::<IpNet>().unwrap());
        assert_eq!(supernet(&s.network(), 48), "2001:db8:aa::/48".parse::<IpNet>().unwrap());
        assert_eq!(supernet(&"192.0.2.7/32".parse().unwrap(), 24), "192.0.2.0/24".parse::<IpNet>().unwrap());
        assert_eq!(Source::exactly(&"2001:db8:aa:bbcc::/64".parse().unwrap()), Some(s));
        assert_eq!(Source::exactly(&"2001:db8:aa:bb00::/56".parse().unwrap()), None);
        assert_eq!(Source::exactly(&"192.0.2.7/32".parse().unwrap()), Some(Source::V4(0xc000_0207)));
    }
}
