//! `[dns]`: the server's one DNS resolver, asked for every MX, SPF, DKIM, DMARC, PTR and DNSBL
//! question (issue 14): which servers, how long one query may take, how often it is tried, how
//! many answers are kept. The server builds `portcullis_dns::DnsSettings` from this, for
//! port 25's checks and for outbound delivery (issue 15).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// The port a DNS server listens on when an entry names none (RFC 1035 §4.2).
const DNS_PORT: u16 = 53;
const TIMEOUT: &str = "5s";
const ATTEMPTS: usize = 2;
const CACHE_SIZE: u64 = 4096;

/// Which recursive servers answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsServers {
    /// The system's (`/etc/resolv.conf`), read once when the server starts.
    System,
    /// These, in this order.
    Listed(Vec<SocketAddr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub servers: DnsServers,
    /// How long one query to one server may take.
    pub timeout: Duration,
    /// Tries of each query before it is a temporary failure.
    pub attempts: usize,
    /// Answers kept, each for its TTL.
    pub cache_size: u64,
}

impl Default for Dns {
    fn default() -> Dns {
        Dns { servers: DnsServers::System, timeout: Duration::from_secs(5), attempts: ATTEMPTS, cache_size: CACHE_SIZE }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    servers: Option<Vec<String>>,
    timeout: Option<String>,
    attempts: Option<usize>,
    cache_size: Option<u64>,
}

impl RawDns {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Dns, ConfigError> {
        let attempts = c.positive("dns.attempts", self.attempts, ATTEMPTS)?;
        if attempts > 5 {
            return Err(c.invalid("dns.attempts", "must be at most 5 (each try waits dns.timeout)"));
        }
        Ok(Dns {
            servers: servers(self.servers.unwrap_or_default()).map_err(|m| c.invalid("dns.servers", m))?,
            timeout: c.duration("dns.timeout", self.timeout, TIMEOUT)?,
            attempts,
            cache_size: self.cache_size.unwrap_or(CACHE_SIZE),
        })
    }
}

/// `["system"]` or nothing: the system's servers; otherwise addresses with an optional port
/// ("192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:53").
fn servers(entries: Vec<String>) -> Result<DnsServers, String> {
    if entries.is_empty() || (entries.len() == 1 && entries[0].trim() == "system") {
        return Ok(DnsServers::System);
    }
    let mut listed = Vec::with_capacity(entries.len());
    for entry in &entries {
        let entry = entry.trim();
        if entry == "system" {
            return Err("\"system\" cannot be combined with listed servers".into());
        }
        let addr = entry.parse::<SocketAddr>().or_else(|_| entry.parse::<IpAddr>().map(|ip| (ip, DNS_PORT).into()));
        match addr {
            Ok(addr) => listed.push(addr),
            Err(_) => {
                return Err(format!("\"{entry}\" is not a DNS server address (an IP address, with an optional port)"))
            }
        }
    }
    Ok(DnsServers::Listed(listed))
}
