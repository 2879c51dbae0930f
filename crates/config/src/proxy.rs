//! `[proxy]`: Portcullis behind a TCP load balancer. The listeners named here expect every
//! connection to open with a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy-v2`
//! writes it), and take it only from `trusted_proxies`: the header names the real client, so
//! that the guard, the logs and SPF see the client rather than the balancer (without it, one ban
//! would lock out everyone behind the balancer). Anyone else could forge a header, so a
//! connection to such a listener from any other address is refused.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use portcullis_listeners::Listener;
use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::firewall::parse_network;

/// How long a trusted proxy may take to send its header, by default. The balancer sends it at
/// once, before any byte of the client's; a slow one is a broken one.
const HEADER_TIMEOUT: &str = "5s";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// The listeners that expect a PROXY header (mail listeners only), in table order.
    pub listeners: Vec<Listener>,
    /// The networks the balancers connect from: the only ones whose headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long the header may take to arrive.
    pub header_timeout: Duration,
}

impl Proxy {
    /// Whether connections on `listener` must open with a PROXY header.
    pub fn expects_header(&self, listener: Listener) -> bool {
        self.listeners.contains(&listener)
    }

    /// Whether `ip` is one of the balancers, whose headers are believed.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    listeners: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    header_timeout: Option<String>,
}

impl RawProxy {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Proxy, ConfigError> {
        let mut listeners = Vec::new();
        for name in self.listeners.unwrap_or_default() {
            let listener = Listener::named(&name).ok_or_else(|| {
                c.invalid("proxy.listeners", format!("\"{name}\" is not a listener (one of the keys of [listen])"))
            })?;
            if !listener.is_mail() {
                return Err(c.invalid(
                    "proxy.listeners",
                    format!(
                        "\"{name}\" cannot take a PROXY header: only the mail listeners can (smtp, submissions, submission, imaps, pop3s)"
                    ),
                ));
            }
            if listeners.contains(&listener) {
                return Err(c.invalid("proxy.listeners", format!("\"{name}\" is listed twice")));
            }
            listeners.push(listener);
        }
        listeners.sort();
        let trusted_proxies = self
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|n| parse_network(n).map_err(|m| c.invalid("proxy.trusted_proxies", m)))
            .collect::<Result<Vec<_>, _>>()?;
        if !listeners.is_empty() && trusted_proxies.is_empty() {
            return Err(c.invalid(
                "proxy.trusted_proxies",
                "is required when proxy.listeners is set: name the networks the load balancers connect from, e.g. [\"10.0.0.5/32\"]",
            ));
        }
        let header_timeout = c.duration("proxy.header_timeout", self.header_timeout, HEADER_TIMEOUT)?;
        Ok(Proxy { listeners, trusted_proxies, header_timeout })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Config;

    const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    fn parse(proxy: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/portcullis/portcullis.toml"), &format!("{BASE}[proxy]\n{proxy}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default() {
        let c = Config::parse(Path::new("/p.toml"), BASE).unwrap();
        assert_eq!(c.proxy.listeners, []);
        assert!(!c.proxy.expects_header(Listener::Submissions));
        assert!(!c.proxy.is_trusted("127.0.0.1".parse().unwrap()));
        assert_eq!(c.proxy.header_timeout, Duration::from_secs(5));
    }

    #[test]
    fn listeners_and_trusted_proxies_are_read() {
        let c = parse(
            "listeners = [\"imaps\", \"submissions\"]\ntrusted_proxies = [\"10.0.0.0/24\", \"192.0.2.7\"]\nheader_timeout = \"2s\"",
        )
        .unwrap();
        assert_eq!(c.proxy.listeners, [Listener::Submissions, Listener::Imaps]);
        assert!(c.proxy.expects_header(Listener::Imaps));
        assert!(!c.proxy.expects_header(Listener::Pop3s));
        assert!(c.proxy.is_trusted("10.0.0.200".parse().unwrap()));
        assert!(c.proxy.is_trusted("192.0.2.7".parse().unwrap()));
        assert!(!c.proxy.is_trusted("192.0.2.8".parse().unwrap()));
        assert!(!c.proxy.is_trusted("10.0.1.1".parse().unwrap()));
        assert_eq!(c.proxy.header_timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_listener_with_a_header_needs_trusted_proxies() {
        let e = parse("listeners = [\"imaps\"]").unwrap_err();
        assert!(e.contains("proxy.trusted_proxies") && e.contains("required"), "{e}");
        let e = parse("listeners = [\"imaps\"]\ntrusted_proxies = []").unwrap_err();
        assert!(e.contains("proxy.trusted_proxies"), "{e}");
        // Trusted proxies alone change nothing, and are allowed (a balancer being set up).
        assert!(parse("trusted_proxies = [\"10.0.0.1\"]").is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = parse("listeners = [\"lmtp\"]\ntrusted_proxies = [\"10.0.0.1\"]").unwrap_err();
        assert!(e.contains("proxy.listeners") && e.contains("lmtp"), "{e}");
        let e = parse("listeners = [\"admin\"]\ntrusted_proxies = [\"10.0.0.1\"]").unwrap_err();
        assert!(e.contains("proxy.listeners") && e.contains("only the mail listeners"), "{e}");
        let e = parse("listeners = [\"imaps\", \"imaps\"]\ntrusted_proxies = [\"10.0.0.1\"]").unwrap_err();
        assert!(e.contains("proxy.listeners") && e.contains("twice"), "{e}");
        let e = parse("listeners = [\"imaps\"]\ntrusted_proxies = [\"10.0.0.300/8\"]").unwrap_err();
        assert!(e.contains("proxy.trusted_proxies"), "{e}");
        let e = parse("header_timeout = \"0s\"").unwrap_err();
        assert!(e.contains("proxy.header_timeout"), "{e}");
        let e = parse("trusted = [\"10.0.0.1\"]").unwrap_err();
        assert!(e.contains("trusted"), "{e}");
    }
}
