//! The `[dns]` section as the resolver's settings: one mapping for every part that asks DNS
//! questions (the MX listener's sender checks and outbound delivery, which share one resolver
//! and its cache; the DNS checklist of the admin API; `portcullis dns check`), so that they all
//! ask the servers the operator named.

use portcullis_config::{Config, Dns, DnsServers};
use portcullis_dns::{DnsSettings, Resolver, Servers};

/// The server's one resolver: port 25's checks and outbound delivery share it and its cache.
pub fn build(config: &Config) -> Result<Resolver, String> {
    Resolver::new(&settings(&config.dns)).map_err(|e| format!("dns.servers: {e}"))
}

/// The resolver settings for the configured `[dns]` section.
pub fn settings(dns: &Dns) -> DnsSettings {
    DnsSettings {
        servers: match &dns.servers {
            DnsServers::System => Servers::System,
            DnsServers::Listed(servers) => Servers::Listed(servers.clone()),
        },
        timeout: dns.timeout,
        attempts: dns.attempts,
        cache_size: dns.cache_size,
    }
}
