//! `[firewall]` and `[firewall.LISTENER]`: which networks may connect at all (checked at
//! accept, before any TLS work), globally and per listener (the admin listener included), and
//! the trusted networks that are never banned. The guard applies these; this file only reads
//! them.

use ipnet::IpNet;
use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetRules {
    /// When non-empty, only these networks are admitted.
    pub allow: Vec<IpNet>,
    /// Never admitted (deny wins over allow).
    pub deny: Vec<IpNet>,
}

#[derive(Debug, Clone, Default)]
pub struct Firewall {
    /// For every listener.
    pub global: NetRules,
    /// Per listener, by name ("submissions", "submission", "imaps", "pop3s", "admin").
    pub listeners: Vec<(&'static str, NetRules)>,
    /// Never banned, however many failures (a monitoring host, the office).
    pub trusted: Vec<IpNet>,
}

impl Firewall {
    pub fn listener(&self, name: &str) -> Option<&NetRules> {
        self.listeners.iter().find(|(n, _)| *n == name).map(|(_, r)| r)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirewall {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    trusted_networks: Option<Vec<String>>,
    submissions: Option<RawNetRules>,
    submission: Option<RawNetRules>,
    imaps: Option<RawNetRules>,
    pop3s: Option<RawNetRules>,
    admin: Option<RawNetRules>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetRules {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

/// "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128).
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("\"{text}\" is not a network (try \"192.0.2.0/24\" or \"2001:db8::/48\")"))
}

fn networks(c: &Check<'_>, key: &'static str, values: Option<Vec<String>>) -> Result<Vec<IpNet>, ConfigError> {
    values.unwrap_or_default().iter().map(|v| parse_network(v).map_err(|m| c.invalid(key, m))).collect()
}

impl RawFirewall {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Firewall, ConfigError> {
        let mut listeners = Vec::new();
        for (name, allow_key, deny_key, rules) in [
            ("submissions", "firewall.submissions.allow", "firewall.submissions.deny", self.submissions),
            ("submission", "firewall.submission.allow", "firewall.submission.deny", self.submission),
            ("imaps", "firewall.imaps.allow", "firewall.imaps.deny", self.imaps),
            ("pop3s", "firewall.pop3s.allow", "firewall.pop3s.deny", self.pop3s),
            ("admin", "firewall.admin.allow", "firewall.admin.deny", self.admin),
        ] {
            if let Some(rules) = rules {
                listeners.push((
                    name,
                    NetRules { allow: networks(c, allow_key, rules.allow)?, deny: networks(c, deny_key, rules.deny)? },
                ));
            }
        }
        Ok(Firewall {
            global: NetRules {
                allow: networks(c, "firewall.allow", self.allow)?,
                deny: networks(c, "firewall.deny", self.deny)?,
            },
            listeners,
            trusted: networks(c, "firewall.trusted_networks", self.trusted_networks)?,
        })
    }
}
