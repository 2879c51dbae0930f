//! `[delivery]`: how this server connects to other servers to hand on mail (issue 15): which
//! address family first, which source address, and the exchangers' port. The server maps
//! this onto `portcullis_delivery::DeliverySettings`; the config crate stays free of the
//! delivery crate (and its TLS and HTTP stack).

use std::net::{Ipv4Addr, Ipv6Addr};

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
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery { ip_preference: IpPreference::PreferIpv4, source_ipv4: None, source_ipv6: None, port: 25 }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelivery {
    ip_preference: Option<String>,
    source_ipv4: Option<String>,
    source_ipv6: Option<String>,
    port: Option<u16>,
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
        Ok(Delivery { ip_preference, source_ipv4, source_ipv6, port })
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
        let d = parse("[delivery]\nip_preference = \"prefer-ipv6\"\nsource_ipv4 = \"192.0.2.10\"\nsource_ipv6 = \"2001:db8::10\"\nport = 2525\n")
            .unwrap()
            .delivery;
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
    }
}
