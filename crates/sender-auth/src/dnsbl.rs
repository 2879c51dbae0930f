//! DNS blocklists (RFC 5782), asked about the client's address at connect. Off unless zones
//! are configured. A zone that cannot be asked counts as "not listed" (recorded as failed):
//! a list's outage must not stop all mail.

use portcullis_dns::Resolver;
use serde::Serialize;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// What one zone said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DnsblResult {
    /// The address is listed; the return codes say why (list-specific, RFC 5782 §2.1).
    Listed {
        codes: Vec<Ipv4Addr>,
    },
    NotListed,
    /// No usable answer: the zone did not answer, or answered outside 127.0.0.0/8, or with
    /// 127.255.255.x, which lists use to refuse the query (e.g. too many queries).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsblCheck {
    pub zone: String,
    #[serde(flatten)]
    pub result: DnsblResult,
}

/// The name to ask (RFC 5782 §2.1, §2.4): the address's octets (IPv4) or nibbles (IPv6)
/// reversed, then the zone.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let mut name = String::with_capacity(80);
    match ip {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let _ = write!(name, "{octet}.");
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
        }
    }
    name.push_str(zone.trim_matches('.'));
    name
}

/// Reads an answer: listed if it holds a 127.0.0.0/8 address other than the 127.255.255.x
/// error codes; anything else is no usable answer.
pub fn classify(answers: &[Ipv4Addr]) -> DnsblResult {
    let codes: Vec<Ipv4Addr> =
        answers.iter().copied().filter(|a| a.octets()[0] == 127 && a.octets()[1..3] != [255, 255]).collect();
    if !codes.is_empty() {
        return DnsblResult::Listed { codes };
    }
    DnsblResult::Failed(format!("answer outside the listing range: {answers:?}"))
}

/// Asks every zone about `ip`, all at once; the checks come back in the zones' order.
pub async fn check_dnsbl(resolver: &Resolver, ip: IpAddr, zones: &[String]) -> Vec<DnsblCheck> {
    let mut asks = tokio::task::JoinSet::new();
    for (index, zone) in zones.iter().enumerate() {
        let (resolver, zone) = (resolver.clone(), zone.clone());
        asks.spawn(async move {
            let result = match resolver.ipv4(&query_name(ip, &zone)).await {
                Ok(answers) => classify(&answers),
                Err(err) if err.is_not_found() => DnsblResult::NotListed,
                Err(err) => DnsblResult::Failed(err.to_string()),
            };
            (index, DnsblCheck { zone, result })
        });
    }
    let mut checks: Vec<(usize, DnsblCheck)> = Vec::with_capacity(zones.len());
    while let Some(joined) = asks.join_next().await {
        if let Ok(check) = joined {
            checks.push(check);
        }
    }
    // A lookup task cannot panic short of a bug; should one, its zone reads as failed.
    for (index, zone) in zones.iter().enumerate() {
        if !checks.iter().any(|(i, _)| *i == index) {
            checks.push((
                index,
                DnsblCheck { zone: zone.clone(), result: DnsblResult::Failed("lookup task failed".into()) },
            ));
        }
    }
    checks.sort_by_key(|(index, _)| *index);
    checks.into_iter().map(|(_, check)| check).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_query_names_reverse_the_octets() {
        // RFC 5782 §2.1's example.
        assert_eq!(query_name("192.0.2.99".parse().unwrap(), "bad.example.com"), "99.2.0.192.bad.example.com");
    }

    #[test]
    fn ipv6_query_names_reverse_the_nibbles() {
        // RFC 5782 §2.4's example.
        let name = query_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "ugly.example.com.");
        assert_eq!(name, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
    }

    #[test]
    fn only_loopback_codes_list_and_the_error_range_does_not() {
        assert_eq!(
            classify(&["127.0.0.2".parse().unwrap()]),
            DnsblResult::Listed { codes: vec!["127.0.0.2".parse().unwrap()] }
        );
        assert!(matches!(classify(&["127.255.255.254".parse().unwrap()]), DnsblResult::Failed(_)));
        assert!(matches!(classify(&["192.0.2.1".parse().unwrap()]), DnsblResult::Failed(_)));
    }
}
