//! `[firewall]`, `[guard]` and `[alerts]`: who may connect, how failures are punished, and when
//! an operator is told. Defaults are the safe ones for a server on the open internet.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::raw::Check;

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
    /// Per listener, by name ("submissions", "submission", "imaps", "pop3s").
    pub listeners: Vec<(&'static str, NetRules)>,
    /// Never banned, however many failures (a monitoring host, the office).
    pub trusted: Vec<IpNet>,
}

impl Firewall {
    pub fn listener(&self, name: &str) -> Option<&NetRules> {
        self.listeners.iter().find(|(n, _)| *n == name).map(|(_, r)| r)
    }
}

#[derive(Debug, Clone)]
pub struct Guard {
    /// Failures from one source within `ban_window` that get it banned.
    pub ban_after_failures: u32,
    pub ban_window: Duration,
    /// The first ban's length; each repeat offence doubles it, up to `max_ban_duration`.
    pub ban_duration: Duration,
    pub max_ban_duration: Duration,
    /// Delay before answering a failed login; doubles with each recent failure of the source.
    pub failure_delay: Duration,
    pub max_failure_delay: Duration,
    /// Failures on one account from addresses it never logged in from, within `ban_window`,
    /// after which such addresses are slowed down for that account.
    pub account_attack_failures: u32,
    pub unknown_source_delay: Duration,
    /// How long a successful login makes its address known for the account.
    pub known_source_memory: Duration,
    /// Sending limits per account (a compromised account is used to spam).
    pub max_messages_per_hour: u32,
    pub max_recipients_per_hour: u32,
    /// Sources and accounts whose failures are remembered, at most (memory bound).
    pub max_tracked: usize,
}

#[derive(Debug, Clone)]
pub struct Alerts {
    /// POST each alert as JSON here.
    pub webhook: Option<String>,
    /// Deliver each alert as a message to this local mailbox.
    pub mail_to: Option<String>,
    /// Alerts below this severity are only logged, not sent ("info", "warning", "critical").
    pub notify: NotifySeverity,
    /// Length of the counting bucket of the anomaly detector.
    pub bucket: Duration,
    pub baseline_half_life: Duration,
    /// An anomaly is this many standard deviations above the baseline...
    pub deviations: f64,
    /// ...and above this many events per bucket.
    pub floor: f64,
    pub warmup_buckets: u32,
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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetRules {
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    ban_after_failures: Option<u32>,
    ban_window: Option<String>,
    ban_duration: Option<String>,
    max_ban_duration: Option<String>,
    failure_delay: Option<String>,
    max_failure_delay: Option<String>,
    account_attack_failures: Option<u32>,
    unknown_source_delay: Option<String>,
    known_source_memory: Option<String>,
    max_messages_per_hour: Option<u32>,
    max_recipients_per_hour: Option<u32>,
    max_tracked: Option<usize>,
}

/// The least severe alert that is sent to the webhook and the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotifySeverity {
    Info,
    Warning,
    Critical,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    webhook: Option<String>,
    mail_to: Option<String>,
    notify: Option<String>,
    bucket: Option<String>,
    baseline_half_life: Option<String>,
    deviations: Option<f64>,
    floor: Option<f64>,
    warmup_buckets: Option<u32>,
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

fn networks(c: &Check<'_>, key: &'static str, values: Option<Vec<String>>) -> Result<Vec<IpNet>, crate::ConfigError> {
    values.unwrap_or_default().iter().map(|v| parse_network(v).map_err(|m| c.invalid(key, m))).collect()
}

impl RawFirewall {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Firewall, crate::ConfigError> {
        let mut listeners = Vec::new();
        for (name, allow_key, deny_key, rules) in [
            ("submissions", "firewall.submissions.allow", "firewall.submissions.deny", self.submissions),
            ("submission", "firewall.submission.allow", "firewall.submission.deny", self.submission),
            ("imaps", "firewall.imaps.allow", "firewall.imaps.deny", self.imaps),
            ("pop3s", "firewall.pop3s.allow", "firewall.pop3s.deny", self.pop3s),
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

impl RawGuard {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Guard, crate::ConfigError> {
        let guard = Guard {
            ban_after_failures: c.positive("guard.ban_after_failures", self.ban_after_failures, 10)?,
            ban_window: c.duration("guard.ban_window", self.ban_window, "10m")?,
            ban_duration: c.duration("guard.ban_duration", self.ban_duration, "1h")?,
            max_ban_duration: c.duration("guard.max_ban_duration", self.max_ban_duration, "30d")?,
            failure_delay: c.duration("guard.failure_delay", self.failure_delay, "500ms")?,
            max_failure_delay: c.duration("guard.max_failure_delay", self.max_failure_delay, "15s")?,
            account_attack_failures: c.positive("guard.account_attack_failures", self.account_attack_failures, 20)?,
            unknown_source_delay: c.duration("guard.unknown_source_delay", self.unknown_source_delay, "3s")?,
            known_source_memory: c.duration("guard.known_source_memory", self.known_source_memory, "30d")?,
            max_messages_per_hour: c.positive("guard.max_messages_per_hour", self.max_messages_per_hour, 500)?,
            max_recipients_per_hour: c.positive("guard.max_recipients_per_hour", self.max_recipients_per_hour, 2000)?,
            max_tracked: c.positive("guard.max_tracked", self.max_tracked, 100_000)?,
        };
        if guard.max_ban_duration < guard.ban_duration {
            return Err(c.invalid("guard.max_ban_duration", "cannot be shorter than guard.ban_duration"));
        }
        if guard.max_failure_delay < guard.failure_delay {
            return Err(c.invalid("guard.max_failure_delay", "cannot be shorter than guard.failure_delay"));
        }
        Ok(guard)
    }
}

impl RawAlerts {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Alerts, crate::ConfigError> {
        if let Some(url) = &self.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(c.invalid("alerts.webhook", format!("\"{url}\" is not an http:// or https:// URL")));
            }
        }
        let deviations = self.deviations.unwrap_or(4.0);
        if !(deviations.is_finite() && deviations > 0.0) {
            return Err(c.invalid("alerts.deviations", "must be a positive number"));
        }
        let floor = self.floor.unwrap_or(20.0);
        if !(floor.is_finite() && floor >= 0.0) {
            return Err(c.invalid("alerts.floor", "must be zero or more"));
        }
        let notify = match self.notify.as_deref().unwrap_or("warning") {
            "info" => NotifySeverity::Info,
            "warning" => NotifySeverity::Warning,
            "critical" => NotifySeverity::Critical,
            other => {
                return Err(c.invalid(
                    "alerts.notify",
                    format!("must be \"info\", \"warning\" or \"critical\", not \"{other}\""),
                ))
            }
        };
        Ok(Alerts {
            webhook: self.webhook,
            mail_to: self.mail_to,
            notify,
            bucket: c.duration("alerts.bucket", self.bucket, "10s")?,
            baseline_half_life: c.duration("alerts.baseline_half_life", self.baseline_half_life, "1h")?,
            deviations,
            floor,
            warmup_buckets: self.warmup_buckets.unwrap_or(6),
        })
    }
}
