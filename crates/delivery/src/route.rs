//! Where a domain's mail goes (RFC 5321 §5.1): its MX hosts by preference, hosts of equal
//! preference in random order; no MX means the domain's own address (the "implicit MX"); a
//! null MX (RFC 7505) means no mail at all. Each host's addresses in the configured family
//! order. With DANE on, the MX and address lookups report whether they were DNSSEC-validated
//! (RFC 7672 §2.2: only then may TLSA records count). The ordering is pure; `resolve` asks
//! the resolver.

use crate::settings::IpPreference;
use portcullis_dns::{Absence, DnsError, Mx, MxHost, Resolver};
use portcullis_smtp_client::EnhancedCode;
use std::fmt;
use std::net::IpAddr;

/// One exchanger to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Lower case, no trailing dot.
    pub host: String,
    pub preference: u16,
    pub addresses: Vec<IpAddr>,
    /// The MX RRset and the host's addresses were DNSSEC-validated: DANE may apply.
    pub secure: bool,
}

/// Why there is no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// RFC 7505: the domain accepts no mail.
    NullMx,
    /// The domain does not exist, or has neither MX nor address.
    NoSuchDomain,
    /// No exchanger has an address (in the families allowed).
    NoAddress,
    /// The DNS did not answer definitely; try later.
    Temporary(DnsError),
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, RouteError::NullMx | RouteError::NoSuchDomain)
    }

    pub fn status(&self) -> EnhancedCode {
        match self {
            RouteError::NullMx => EnhancedCode::new(5, 1, 10), // RFC 7505 §4.2
            RouteError::NoSuchDomain => EnhancedCode::new(5, 1, 2), // RFC 3463: bad destination system
            RouteError::NoAddress => EnhancedCode::new(4, 4, 4), // RFC 3463: unable to route
            RouteError::Temporary(_) => EnhancedCode::new(4, 4, 3), // RFC 3463: directory server failure
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NullMx => f.write_str("the domain accepts no mail (null MX)"),
            RouteError::NoSuchDomain => f.write_str("the domain has no mail exchanger and no address"),
            RouteError::NoAddress => f.write_str("no mail exchanger of the domain has a usable address"),
            RouteError::Temporary(e) => write!(f, "DNS lookup failed: {e}"),
        }
    }
}

/// Most preferred first; hosts of equal preference shuffled with `random(n)` (an index below
/// n), so load spreads over them (RFC 5321 §5.1). At most `limit` hosts.
pub fn order_hosts(mut hosts: Vec<MxHost>, limit: usize, mut random: impl FnMut(usize) -> usize) -> Vec<MxHost> {
    hosts.sort_by_key(|h| h.preference);
    let mut start = 0;
    while start < hosts.len() {
        let end = hosts[start..]
            .iter()
            .position(|h| h.preference != hosts[start].preference)
            .map_or(hosts.len(), |p| start + p);
        // Fisher-Yates over the group.
        for i in (start + 1..end).rev() {
            let j = start + random(i - start + 1).min(i - start);
            hosts.swap(i, j);
        }
        start = end;
    }
    hosts.truncate(limit);
    hosts
}

/// The addresses in the preferred family order; addresses of an excluded family dropped.
pub fn order_addresses(addresses: &[IpAddr], preference: IpPreference) -> Vec<IpAddr> {
    let v4 = addresses.iter().filter(|a| a.is_ipv4()).copied();
    let v6 = addresses.iter().filter(|a| a.is_ipv6()).copied();
    match preference {
        IpPreference::Ipv4Only => v4.collect(),
        IpPreference::Ipv6Only => v6.collect(),
        IpPreference::PreferIpv4 => v4.chain(v6).collect(),
        IpPreference::PreferIpv6 => v6.chain(v4).collect(),
    }
}

/// Resolves the route of `domain`.
pub async fn resolve(
    resolver: &Resolver,
    domain: &str,
    preference: IpPreference,
    max_hosts: usize,
    dane: bool,
) -> Result<Vec<Hop>, RouteError> {
    let (mx, mx_secure) = if dane {
        match resolver.authenticated().mx(domain).await {
            Ok(answer) => (Ok(answer.value), answer.authentic_data),
            Err(e) => (Err(e), false),
        }
    } else {
        (resolver.mx(domain).await, false)
    };
    let hosts = match mx {
        Ok(Mx::Null) => return Err(RouteError::NullMx),
        Ok(Mx::Hosts(hosts)) => order_hosts(hosts, max_hosts.max(1), |n| rand::random_range(0..n)),
        // RFC 5321 §5.1: no MX records: the domain itself is the exchanger, preference 0.
        Err(DnsError::NotFound(Absence::NoData)) => vec![MxHost { preference: 0, exchange: domain.to_string() }],
        Err(DnsError::NotFound(Absence::NxDomain)) => return Err(RouteError::NoSuchDomain),
        Err(e) if e.is_temporary() => return Err(RouteError::Temporary(e)),
        Err(_) => return Err(RouteError::NoSuchDomain),
    };
    // An implicit MX is as secure as the domain's own address records.
    let implicit = hosts.len() == 1 && hosts[0].exchange == domain;
    let mut hops = Vec::new();
    let mut temporary = None;
    let mut any_found = false;
    for host in hosts {
        let lookup = addresses(resolver, &host.exchange, dane && (mx_secure || implicit)).await;
        match lookup {
            Ok((found, secure)) => {
                any_found = true;
                let addresses = order_addresses(&found, preference);
                if !addresses.is_empty() {
                    let secure = secure && (mx_secure || implicit);
                    hops.push(Hop { host: host.exchange, preference: host.preference, addresses, secure });
                }
            }
            Err(e) if e.is_temporary() => temporary = Some(e),
            Err(_) => {}
        }
    }
    if !hops.is_empty() {
        return Ok(hops);
    }
    match temporary {
        Some(e) => Err(RouteError::Temporary(e)),
        None if implicit && !any_found => Err(RouteError::NoSuchDomain),
        None => Err(RouteError::NoAddress),
    }
}

/// A and AAAA of a host, and whether both answers that had records were validated.
async fn addresses(resolver: &Resolver, host: &str, with_ad: bool) -> Result<(Vec<IpAddr>, bool), DnsError> {
    if !with_ad {
        return resolver.ip_addrs(host).await.map(|a| (a, false));
    }
    let auth = resolver.authenticated();
    let (v4, v6) = tokio::join!(auth.ipv4(host), auth.ipv6(host));
    let mut found = Vec::new();
    let mut secure = true;
    let mut errors = Vec::new();
    match v4 {
        Ok(a) => {
            secure &= a.authentic_data;
            found.extend(a.value.into_iter().map(IpAddr::V4));
        }
        Err(e) => errors.push(e),
    }
    match v6 {
        Ok(a) => {
            secure &= a.authentic_data;
            found.extend(a.value.into_iter().map(IpAddr::V6));
        }
        Err(e) => errors.push(e),
    }
    if found.is_empty() {
        let temporary = errors.iter().find(|e| e.is_temporary()).cloned();
        return Err(temporary.or_else(|| errors.into_iter().next()).unwrap_or(DnsError::NotFound(Absence::NoData)));
    }
    Ok((found, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(preference: u16, name: &str) -> MxHost {
        MxHost { preference, exchange: name.into() }
    }

    #[test]
    fn preference_first_then_shuffled_within_a_preference() {
        let hosts = vec![mx(20, "c"), mx(10, "a"), mx(10, "b"), mx(30, "d")];
        let names = |h: Vec<MxHost>| h.into_iter().map(|h| h.exchange).collect::<Vec<_>>();
        assert_eq!(names(order_hosts(hosts.clone(), 10, |_| 0)), ["b", "a", "c", "d"]);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50u64 {
            let mut state = seed;
            let order = names(order_hosts(hosts.clone(), 10, |n| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as usize % n
            }));
            assert_eq!(&order[2..], ["c", "d"]);
            seen.insert(order);
        }
        assert_eq!(seen.len(), 2, "both orders of the equal pair occur");
        assert_eq!(order_hosts(hosts, 2, |_| 0).len(), 2);
    }

    #[test]
    fn families_in_the_preferred_order() {
        let a: Vec<IpAddr> = ["192.0.2.1", "2001:db8::1", "192.0.2.2"].iter().map(|s| s.parse().unwrap()).collect();
        let show = |v: Vec<IpAddr>| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(show(order_addresses(&a, IpPreference::PreferIpv4)), ["192.0.2.1", "192.0.2.2", "2001:db8::1"]);
        assert_eq!(show(order_addresses(&a, IpPreference::PreferIpv6)), ["2001:db8::1", "192.0.2.1", "192.0.2.2"]);
        assert_eq!(show(order_addresses(&a, IpPreference::Ipv6Only)), ["2001:db8::1"]);
        assert_eq!(order_addresses(&a, IpPreference::Ipv4Only).len(), 2);
    }
}
