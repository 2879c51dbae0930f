//! What the resolver is built from: which servers to ask, how long to wait, how often to try,
//! how much to remember. A struct of its own so that this crate needs no config crate; the
//! config crate maps the `[dns]` table onto it (keys listed in the crate documentation).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The port a DNS server listens on when an address names none (RFC 1035 §4.2).
pub const DNS_PORT: u16 = 53;

/// Which recursive servers answer the queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Servers {
    /// The system's (`/etc/resolv.conf`), read once when the resolver is built.
    System,
    /// These, in this order. Tests point this at a server on loopback.
    Listed(Vec<SocketAddr>),
}

/// Everything the resolver is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub servers: Servers,
    /// How long one query to one server may take before the next try.
    pub timeout: Duration,
    /// How many times each query is tried before the answer is "temporary failure".
    pub attempts: usize,
    /// How many answers (positive and negative) are kept, each for its TTL.
    pub cache_size: u64,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings { servers: Servers::System, timeout: Duration::from_secs(5), attempts: 2, cache_size: 4096 }
    }
}

impl DnsSettings {
    /// Settings that ask only `servers`, with the default timeout, attempts and cache.
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        DnsSettings { servers: Servers::Listed(servers), ..DnsSettings::default() }
    }

    /// The longest a single lookup can take before it fails as temporary: every attempt
    /// timing out. Callers that chain lookups use it to size their own deadlines.
    pub fn worst_case(&self) -> Duration {
        self.timeout.saturating_mul(self.attempts.max(1) as u32)
    }
}

impl Servers {
    /// Parses the `[dns] servers` value: `["system"]` (or an empty list) means the system's;
    /// otherwise each entry is an address with an optional port ("192.0.2.1", "192.0.2.1:5353",
    /// "2001:db8::1", `"[2001:db8::1]:53"`). The error names the entry that is wrong.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Servers, String> {
        if entries.is_empty() || (entries.len() == 1 && entries[0].as_ref().trim() == "system") {
            return Ok(Servers::System);
        }
        let mut addrs = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "system" {
                return Err("\"system\" cannot be combined with listed servers".to_string());
            }
            addrs.push(parse_server(entry)?);
        }
        Ok(Servers::Listed(addrs))
    }
}

fn parse_server(entry: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DNS_PORT));
    }
    Err(format!("{entry:?} is not a DNS server address (an IP address, with an optional port)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_addresses_with_and_without_ports() {
        let parsed = Servers::parse(&["192.0.2.1", "192.0.2.2:5353", "2001:db8::1", "[2001:db8::2]:54"]).unwrap();
        assert_eq!(
            parsed,
            Servers::Listed(vec![
                "192.0.2.1:53".parse().unwrap(),
                "192.0.2.2:5353".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
                "[2001:db8::2]:54".parse().unwrap(),
            ])
        );
    }

    #[test]
    fn system_is_the_default_and_cannot_be_mixed() {
        assert_eq!(Servers::parse::<&str>(&[]).unwrap(), Servers::System);
        assert_eq!(Servers::parse(&["system"]).unwrap(), Servers::System);
        assert!(Servers::parse(&["system", "192.0.2.1"]).unwrap_err().contains("system"));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = Servers::parse(&["192.0.2.1", "dns.example"]).unwrap_err();
        assert!(err.contains("dns.example"), "{err}");
    }

    #[test]
    fn worst_case_is_every_attempt_timing_out() {
        let settings = DnsSettings { timeout: Duration::from_millis(300), attempts: 3, ..DnsSettings::default() };
        assert_eq!(settings.worst_case(), Duration::from_millis(900));
    }
}
