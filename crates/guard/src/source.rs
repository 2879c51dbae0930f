//! Where a connection comes from, as the guard counts it: an IPv4 address, or an IPv6 /64
//! (one host usually owns a whole /64, so counting addresses would let it rotate freely).

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

    /// The network a ban on this source covers.
    pub fn network(self) -> IpNet {
        match self {
            Source::V4(v4) => IpNet::from(IpAddr::V4(Ipv4Addr::from(v4))),
            Source::V6(prefix) => {
                IpNet::new(IpAddr::V6(Ipv6Addr::from(u128::from(prefix) << 64)), 64).expect("/64 is valid")
            }
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

/// The address as the guard compares it with networks: IPv4-mapped IPv6 as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
