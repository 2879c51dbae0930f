//! `[firewall]` and `[firewall.LISTENER]`: which networks may connect at all (checked at
//! accept, before any TLS work), globally and per listener (the admin listener included), and
//! the trusted networks that are never banned. The guard applies these; this file only reads
//! them.

use ipnet::IpNet;
use portcullis_listeners::{Listener, COUNT, NAMES};
use serde::de::{self, Deserializer, MapAccess, Visitor};
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
    /// Per listener, for those that have a `[firewall.NAME]` section.
    pub listeners: Vec<(Listener, NetRules)>,
    /// Never banned, however many failures (a monitoring host, the office).
    pub trusted: Vec<IpNet>,
}

impl Firewall {
    pub fn listener(&self, listener: Listener) -> Option<&NetRules> {
        self.listeners.iter().find(|(l, _)| *l == listener).map(|(_, r)| r)
    }
}

/// The keys of `[firewall]` itself, before the per-listener sections.
const OWN_KEYS: [&str; 3] = ["allow", "deny", "trusted_networks"];

/// Every key `[firewall]` takes: its own, then one section per listener (table order).
const KEYS: [&str; OWN_KEYS.len() + COUNT] = {
    let mut keys = [""; OWN_KEYS.len() + COUNT];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = if i < OWN_KEYS.len() { OWN_KEYS[i] } else { NAMES[i - OWN_KEYS.len()] };
        i += 1;
    }
    keys
};

/// The section as written. The per-listener sections are read as a struct whose fields are
/// the listener names (see the `Deserialize` impl), so that the listener table decides them.
#[derive(Default)]
pub(crate) struct RawFirewall {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    trusted_networks: Option<Vec<String>>,
    listeners: [Option<RawNetRules>; COUNT],
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetRules {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawFirewall {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawFirewall, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawFirewall;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the [firewall] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFirewall, A::Error> {
                let mut raw = RawFirewall::default();
                let duplicate = |key: &str| de::Error::custom(format!("duplicate key `{key}`"));
                while let Some(key) = map.next_key::<String>()? {
                    let list = match key.as_str() {
                        "allow" => &mut raw.allow,
                        "deny" => &mut raw.deny,
                        "trusted_networks" => &mut raw.trusted_networks,
                        name => {
                            let Some(listener) = Listener::named(name) else {
                                return Err(de::Error::unknown_field(name, &KEYS));
                            };
                            let slot = &mut raw.listeners[listener.index()];
                            if slot.is_some() {
                                return Err(duplicate(name));
                            }
                            *slot = Some(map.next_value()?);
                            continue;
                        }
                    };
                    if list.is_some() {
                        return Err(duplicate(&key));
                    }
                    *list = Some(map.next_value()?);
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_struct("RawFirewall", &KEYS, Fields)
    }
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
        for (listener, rules) in Listener::EVERY.into_iter().zip(self.listeners) {
            if let Some(rules) = rules {
                let spec = listener.spec();
                listeners.push((
                    listener,
                    NetRules {
                        allow: networks(c, spec.firewall_allow_key, rules.allow)?,
                        deny: networks(c, spec.firewall_deny_key, rules.deny)?,
                    },
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
