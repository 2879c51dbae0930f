//! The server's one DNS resolver (issue 14): every MX, SPF, DKIM, DMARC, PTR, DNSBL, MTA-STS
//! and TLSA question goes through one [`Resolver`], so one cache, one timeout and one list of
//! upstream servers apply to all of them, and tests point it at a DNS server on loopback.
//!
//! It wraps hickory-resolver (0.26), whose resolver mail-auth also takes
//! (`MessageAuthenticator(resolver.hickory().clone())`), and answers in plain Rust types
//! ([`Mx`], addresses, names, TXT bytes, [`Tlsa`]) with one typed error, [`DnsError`]:
//! `NotFound` (NXDOMAIN / NODATA: a caller may answer 550), `Temporary` (timeout, SERVFAIL:
//! 451), `Malformed` (a name that is no domain name is permanent; a garbled answer is
//! temporary). The AD bit DANE needs comes from [`Resolver::authenticated`].
//!
//! Configuration (the config crate maps these keys onto [`DnsSettings`]):
//!
//! ```toml
//! [dns]
//! servers = ["127.0.0.1:53"]   # or ["system"] / absent: /etc/resolv.conf; "IP" or "IP:port"
//! timeout = "5s"               # one query to one server
//! attempts = 2                 # tries before a lookup is a temporary failure
//! cache_size = 4096            # answers kept (each for its TTL)
//! ```
//!
//! For DANE, `servers` must be a validating resolver reached over a trusted path (loopback):
//! the AD bit is believed as it comes.
#![forbid(unsafe_code)]

mod authenticated;
mod error;
mod records;
mod settings;

pub use authenticated::{Authenticated, AuthenticatedLookups};
pub use error::{Absence, DnsError, MalformedPart, TemporaryCause};
pub use records::{Mx, MxHost, Tlsa};
pub use settings::{DnsSettings, Servers, DNS_PORT};

/// The hickory types a caller may need to hand the resolver to another library (mail-auth).
pub use hickory_resolver::TokioResolver;

use authenticated::DirectServers;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RecordType};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The resolver: cheap to clone (clones share the cache and the connections).
#[derive(Clone)]
pub struct Resolver {
    hickory: TokioResolver,
    direct: Arc<DirectServers>,
}

/// The resolver could not be built (the system configuration is unreadable, or no server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub String);

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot set up the DNS resolver: {}", self.0)
    }
}

impl std::error::Error for SetupError {}

impl Resolver {
    /// Builds the resolver. Reads `/etc/resolv.conf` once when the servers are the system's.
    pub fn new(settings: &DnsSettings) -> Result<Resolver, SetupError> {
        let servers = match &settings.servers {
            Servers::Listed(servers) => servers.clone(),
            Servers::System => system_servers()?,
        };
        if servers.is_empty() {
            return Err(SetupError("no DNS server is configured ([dns] servers)".into()));
        }
        let config = ResolverConfig::from_name_servers(servers.iter().map(|&addr| name_server(addr)).collect());
        let mut options = ResolverOpts::default();
        options.timeout = settings.timeout;
        // hickory counts retries after the first try; ours counts tries.
        options.attempts = settings.attempts.max(1) - 1;
        options.cache_size = settings.cache_size;
        // Mail routing and sender checks come from the DNS only, never from /etc/hosts.
        options.use_hosts_file = ResolveHosts::Never;
        // Every name asked is absolute: no search list is ever appended (RFC 1535).
        options.ndots = 0;
        let hickory = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        let direct = DirectServers { servers, timeout: settings.timeout, attempts: settings.attempts.max(1) };
        Ok(Resolver { hickory, direct: Arc::new(direct) })
    }

    /// The hickory resolver underneath, to hand to mail-auth (`MessageAuthenticator`), so
    /// SPF, DKIM and DMARC share this cache and these servers.
    pub fn hickory(&self) -> &TokioResolver {
        &self.hickory
    }

    /// Lookups that report the AD bit (DANE); uncached, see [`AuthenticatedLookups`].
    pub fn authenticated(&self) -> AuthenticatedLookups<'_> {
        AuthenticatedLookups { resolver: self }
    }

    /// The domain's mail exchangers, or [`Mx::Null`] (RFC 7505). A domain without MX
    /// records is `NotFound`: the caller then falls back to its address (RFC 5321 §5.1).
    pub async fn mx(&self, domain: &str) -> Result<Mx, DnsError> {
        let lookup = self.hickory.lookup(fqdn(domain)?, RecordType::MX).await?;
        records::mx_from(lookup.answers()).ok_or(DnsError::NotFound(Absence::NoData))
    }

    pub async fn ipv4(&self, host: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let lookup = self.hickory.lookup(fqdn(host)?, RecordType::A).await?;
        non_empty(records::ipv4_from(lookup.answers()))
    }

    pub async fn ipv6(&self, host: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        let lookup = self.hickory.lookup(fqdn(host)?, RecordType::AAAA).await?;
        non_empty(records::ipv6_from(lookup.answers()))
    }

    /// A and AAAA together (asked at once). `NotFound` only when both are; a temporary
    /// failure of one family is returned only when the other found nothing.
    pub async fn ip_addrs(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let (v4, v6) = tokio::join!(self.ipv4(host), self.ipv6(host));
        let mut addrs: Vec<IpAddr> = Vec::new();
        addrs.extend(v4.as_deref().unwrap_or_default().iter().map(|&ip| IpAddr::V4(ip)));
        addrs.extend(v6.as_deref().unwrap_or_default().iter().map(|&ip| IpAddr::V6(ip)));
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        match (v4, v6) {
            (Err(a), Err(b)) if a.is_not_found() && b.is_not_found() => {
                // NXDOMAIN from either means the name does not exist at all.
                let nx = a == DnsError::NotFound(Absence::NxDomain) || b == DnsError::NotFound(Absence::NxDomain);
                Err(DnsError::NotFound(if nx { Absence::NxDomain } else { Absence::NoData }))
            }
            (Err(a), Err(b)) => Err(if a.is_not_found() { b } else { a }),
            _ => Err(DnsError::NotFound(Absence::NoData)),
        }
    }

    /// The names an address points back to (PTR, RFC 1035 §3.5), lower case.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = Name::from(ip); // the in-addr.arpa / ip6.arpa name
        let lookup = self.hickory.lookup(name, RecordType::PTR).await?;
        non_empty(records::ptr_from(lookup.answers()))
    }

    /// TXT records, one entry each, its strings joined (RFC 7208 §3.3).
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        let lookup = self.hickory.lookup(fqdn(name)?, RecordType::TXT).await?;
        non_empty(records::txt_from(lookup.answers()))
    }
}

fn non_empty<T>(values: Vec<T>) -> Result<Vec<T>, DnsError> {
    if values.is_empty() {
        return Err(DnsError::NotFound(Absence::NoData));
    }
    Ok(values)
}

/// An absolute name from what a caller or a client gave: IDNA to A-labels (RFC 5890), a
/// trailing dot so no search domain is ever appended.
pub(crate) fn fqdn(name: &str) -> Result<Name, DnsError> {
    let trimmed = name.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(DnsError::invalid_name(name, "empty"));
    }
    if trimmed.starts_with('.') || trimmed.contains("..") {
        return Err(DnsError::invalid_name(name, "empty label"));
    }
    let mut parsed = Name::from_utf8(trimmed).map_err(|e| DnsError::invalid_name(name, e))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut server.connections {
        connection.port = addr.port();
    }
    server
}

fn system_servers() -> Result<Vec<SocketAddr>, SetupError> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| SetupError(format!("reading the system's resolver configuration: {e}")))?;
    let mut servers: Vec<SocketAddr> = Vec::new();
    for server in config.name_servers() {
        let port = server.connections.first().map_or(DNS_PORT, |c| c.port);
        let addr = SocketAddr::new(server.ip, port);
        if !servers.contains(&addr) {
            servers.push(addr);
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_absolute_lower_case_and_idna_encoded() {
        assert_eq!(fqdn("Example.ORG").unwrap().to_ascii(), "example.org.");
        assert_eq!(fqdn("example.org.").unwrap().to_ascii(), "example.org.");
        assert_eq!(fqdn("bücher.example").unwrap().to_ascii(), "xn--bcher-kva.example.");
    }

    #[test]
    fn names_that_are_no_domain_names_are_malformed_not_temporary() {
        for bad in ["", ".", "a..b", ".example.org", &format!("{}.org", "x".repeat(64))] {
            let err = fqdn(bad).unwrap_err();
            assert!(matches!(err, DnsError::Malformed(MalformedPart::Name(_))), "{bad:?}: {err:?}");
            assert!(!err.is_temporary());
        }
    }

    #[test]
    fn an_empty_server_list_is_refused() {
        let err = Resolver::new(&DnsSettings::with_servers(vec![])).err().unwrap();
        assert!(err.to_string().contains("no DNS server"), "{err}");
    }
}
