//! Firewall rules: global and per-listener allow and deny lists, and the trusted networks that
//! are never banned. A deny entry wins over an allow entry; an empty allow list allows all.

use std::net::IpAddr;

use ipnet::IpNet;
use portcullis_config::{Firewall, NetRules};
use portcullis_events::Listener;

#[derive(Debug, Clone, Default)]
pub struct Rules {
    firewall: Firewall,
}

fn admits(rules: &NetRules, ip: IpAddr) -> bool {
    let allowed = rules.allow.is_empty() || rules.allow.iter().any(|n| n.contains(&ip));
    allowed && !rules.deny.iter().any(|n| n.contains(&ip))
}

impl Rules {
    pub fn new(firewall: Firewall) -> Rules {
        Rules { firewall }
    }

    /// Whether `ip` may connect to `listener` at all.
    pub fn admits(&self, ip: IpAddr, listener: Listener) -> bool {
        admits(&self.firewall.global, ip) && self.firewall.listener(listener).is_none_or(|r| admits(r, ip))
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.firewall.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Whether a ban on `network` would touch a trusted network.
    pub fn overlaps_trusted(&self, network: &IpNet) -> bool {
        self.firewall.trusted.iter().any(|t| t.contains(network) || network.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn global_and_per_listener_rules() {
        let rules = Rules::new(Firewall {
            global: NetRules { allow: vec![], deny: vec![net("192.0.2.0/24")] },
            listeners: vec![(
                Listener::Imaps,
                NetRules { allow: vec![net("10.0.0.0/8")], deny: vec![net("10.9.0.0/16")] },
            )],
            trusted: vec![net("198.51.100.7/32")],
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(rules.admits(ip("203.0.113.5"), Listener::Submissions));
        assert!(!rules.admits(ip("192.0.2.9"), Listener::Submissions), "global deny");
        assert!(!rules.admits(ip("203.0.113.5"), Listener::Imaps), "imaps only from the office");
        assert!(rules.admits(ip("10.1.2.3"), Listener::Imaps));
        assert!(!rules.admits(ip("10.9.1.1"), Listener::Imaps), "deny wins");
        assert!(rules.is_trusted(ip("198.51.100.7")));
        assert!(rules.overlaps_trusted(&net("198.51.100.0/24")));
        assert!(!rules.overlaps_trusted(&net("203.0.113.0/24")));
    }
}
