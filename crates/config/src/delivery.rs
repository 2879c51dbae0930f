//! `[delivery]`: how this server connects to other servers to hand on mail (issue 15): which
//! address family first, which source address, the exchangers' port, extra trust anchors (a
//! private CA), and how long a reply and a whole attempt may take. The server maps this onto
//! `portcullis_delivery::DeliverySettings`; the config crate stays free of the delivery crate
//! (and its TLS and HTTP stack).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// Which address families to use, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpPreference {
    Ipv4Only,
    Ipv6Only,
    PreferIpv4,
    PreferIpv6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub ip_preference: IpPreference,
    /// Source addresses of outbound connections (`None`: the system chooses).
    pub source_ipv4: Option<Ipv4Addr>,
    pub source_ipv6: Option<Ipv6Addr>,
    /// The SMTP port of the exchangers: 25 (RFC 5321 §4.5.4); another only for tests.
    pub port: u16,
    /// A PEM file of extra trust anchors beside the Web PKI roots (a private CA of a smart
    /// host or of a partner; tests). Read when the server starts.
    pub trust_roots: Option<PathBuf>,
    /// The longest any one reply may take (`None`: the waits of RFC 5321 §4.5.3.2, up to
    /// 10 minutes); it also bounds the connection and the TLS handshake.
    pub reply_timeout: Option<Duration>,
    /// The longest one attempt to one destination may take, over all its exchangers.
    pub attempt_timeout: Duration,
}

/// `delivery.attempt_timeout` by default: room for the RFC 5321 waits of one slow session,
/// not for a server that answers each command just before its wait runs out, forever.
const ATTEMPT_TIMEOUT: &str = "30m";

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            ip_preference: IpPreference::PreferIpv4,
            source_ipv4: None,
            source_ipv6: None,
            port: 25,
            trust_roots: None,
            reply_timeout: None,
            attempt_timeout: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelivery {
    ip_preference: Option<String>,
    source_ipv4: Option<String>,
    source_ipv6: Option<String>,
    port: Option<u16>,
    trust_roots: Option<String>,
    reply_timeout: Option<String>,
    attempt_timeout: Option<String>,
}

impl RawDelivery {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Delivery, ConfigError> {
        let ip_preference = match self.ip_preference.as_deref().unwrap_or("prefer-ipv4") {
            "ipv4-only" => IpPreference::Ipv4Only,
            "ipv6-only" => IpPreference::Ipv6Only,
            "prefer-ipv4" => IpPreference::PreferIpv4,
            "prefer-ipv6" => IpPreference::PreferIpv6,
            other => {
                return Err(c.invalid(
                    "delivery.ip_preference",
                    format!("\"{other}\" is not one of \"ipv4-only\", \"ipv6-only\", \"prefer-ipv4\", \"prefer-ipv6\""),
                ))
            }
        };
        let source_ipv4 = match self.source_ipv4 {
            Some(text) => Some(
                text.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|_| c.invalid("delivery.source_ipv4", format!("\"{text}\" is not an IPv4 address")))?,
            ),
            None => None,
        };
        let source_ipv6 = match self.source_ipv6 {
            Some(text) => Some(
                text.trim()
                    .parse::<Ipv6Addr>()
                    .map_err(|_| c.invalid("delivery.source_ipv6", format!("\"{text}\" is not an IPv6 address")))?,
            ),
            None => None,
        };
        if ip_preference == IpPreference::Ipv4Only && source_ipv6.is_some() {
            return Err(c.invalid("delivery.source_ipv6", "is never used with ip_preference = \"ipv4-only\""));
        }
        if ip_preference == IpPreference::Ipv6Only && source_ipv4.is_some() {
            return Err(c.invalid("delivery.source_ipv4", "is never used with ip_preference = \"ipv6-only\""));
        }
        let port = self.port.unwrap_or(25);
        if port == 0 {
            return Err(c.invalid("delivery.port", "must be a port number (1-65535)"));
        }
        let trust_roots = match self.trust_roots {
            Some(path) if path.trim().is_empty() => {
                return Err(c.invalid("delivery.trust_roots", "must name a PEM file of CA certificates"))
            }
            Some(path) => Some(c.file(&path)),
            None => None,
        };
        let reply_timeout = match self.reply_timeout {
            Some(text) => Some(c.duration("delivery.reply_timeout", Some(text), "")?),
            None => None,
        };
        let attempt_timeout = c.duration("delivery.attempt_timeout", self.attempt_timeout, ATTEMPT_TIMEOUT)?;
        if reply_timeout.is_some_and(|r| r > attempt_timeout) {
            return Err(c.invalid("delivery.reply_timeout", "must not be longer than delivery.attempt_timeout"));
        }
        Ok(Delivery { ip_preference, source_ipv4, source_ipv6, port, trust_roots, reply_timeout, attempt_timeout })
    }
}

#[cfg(test)]
mod tests {
    use super::IpPreference;
    use crate::Config;
    use std::path::Path;

    const BASE: &str = "hostname = \"mail.example.org\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/p.toml"), &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn addresses_and_preferences() {
        let d = parse("[delivery]\nip_preference = \"prefer-ipv6\"\nsource_ipv4 = \"192.0.2.10\"\nsource_ipv6 = \"2001:db8::10\"\nport = 2525\ntrust_roots = \"ca.pem\"\nreply_timeout = \"2s\"\nattempt_timeout = \"10s\"\n")
            .unwrap()
            .delivery;
        assert_eq!(d.trust_roots.as_deref(), Some(Path::new("/etc/ca.pem")), "relative to the file");
        assert_eq!(d.reply_timeout, Some(std::time::Duration::from_secs(2)));
        assert_eq!(d.attempt_timeout, std::time::Duration::from_secs(10));
        assert_eq!(d.ip_preference, IpPreference::PreferIpv6);
        assert_eq!(d.source_ipv4, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(d.source_ipv6, Some("2001:db8::10".parse().unwrap()));
        assert_eq!(d.port, 2525);
        assert_eq!(parse("").unwrap().delivery, super::Delivery::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(parse("[delivery]\nip_preference = \"both\"\n").unwrap_err().contains("delivery.ip_preference"));
        assert!(parse("[delivery]\nsource_ipv4 = \"2001:db8::1\"\n").unwrap_err().contains("delivery.source_ipv4"));
        let e = parse("[delivery]\nip_preference = \"ipv4-only\"\nsource_ipv6 = \"2001:db8::1\"\n").unwrap_err();
        assert!(e.contains("delivery.source_ipv6"), "{e}");
        assert!(parse("[delivery]\nreply_timeout = \"0s\"\n").unwrap_err().contains("delivery.reply_timeout"));
        let e = parse("[delivery]\nreply_timeout = \"1h\"\nattempt_timeout = \"1m\"\n").unwrap_err();
        assert!(e.contains("delivery.reply_timeout"), "{e}");
        assert!(parse("[delivery]\ntrust_roots = \"\"\n").unwrap_err().contains("delivery.trust_roots"));
    }
}
