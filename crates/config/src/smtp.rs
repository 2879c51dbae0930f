//! `[smtp]`: the MX listener (`listen.smtp`, port 25), where other mail servers deliver without
//! logging in: how many connections it takes (at once and per minute, from everyone and from
//! one source), how many messages and recipients one source may send per minute, and the
//! greeting delay that catches early talkers. The guard enforces the limits; the SMTP driver
//! waits out the delay. Sources are counted as the guard counts them: an IPv4 address or an
//! IPv6 /64.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// Port 25 gets a quarter of `limits.max_connections` by default (500 of 2000), so that a flood
/// of deliveries cannot take the slots of the users' own clients.
const MAX_CONNECTIONS_DIVISOR: usize = 4;
/// A big sender opens a few connections at once; Postfix allows 50 per client by default,
/// which no one server needs against one domain.
const MAX_CONNECTIONS_PER_IP: usize = 10;
const CONNECTIONS_PER_MINUTE: u32 = 60;
const MESSAGES_PER_MINUTE: u32 = 120;
const RECIPIENTS_PER_MINUTE: u32 = 600;
/// Off by default: every legitimate server waits for the greeting anyway, and a delay costs
/// each of them as much; early talkers are refused either way (see `greeting_delay`).
const GREETING_DELAY: &str = "0s";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// Connections open at once on `listen.smtp`, from everyone.
    pub max_connections: usize,
    /// Connections open at once on `listen.smtp` from one source.
    pub max_connections_per_ip: usize,
    /// New connections on `listen.smtp` from one source within a minute; 0: no limit.
    pub connections_per_minute: u32,
    /// Messages (MAIL FROM) from one source within a minute; 0: no limit.
    pub messages_per_minute: u32,
    /// Recipients (RCPT TO, accepted or not) from one source within a minute; 0: no limit.
    pub recipients_per_minute: u32,
    /// How long to wait before the greeting; what the client sends meanwhile makes it an
    /// early talker. Zero: greet as soon as the client checks are done.
    pub greeting_delay: Duration,
}

impl Smtp {
    /// The defaults, under a server-wide limit of `max_connections`.
    pub fn defaults(max_connections: usize) -> Smtp {
        let max_connections = (max_connections / MAX_CONNECTIONS_DIVISOR).max(1);
        Smtp {
            max_connections,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP.min(max_connections),
            connections_per_minute: CONNECTIONS_PER_MINUTE,
            messages_per_minute: MESSAGES_PER_MINUTE,
            recipients_per_minute: RECIPIENTS_PER_MINUTE,
            greeting_delay: Duration::ZERO,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    connections_per_minute: Option<u32>,
    messages_per_minute: Option<u32>,
    recipients_per_minute: Option<u32>,
    greeting_delay: Option<String>,
}

/// The longest greeting delay: RFC 5321 §4.5.3.2.1 has clients wait 5 minutes for the greeting,
/// and a delay near that loses mail.
const MAX_GREETING_DELAY: Duration = Duration::from_secs(60);

impl RawSmtp {
    pub(crate) fn validate(self, c: &Check<'_>, max_connections: usize) -> Result<Smtp, ConfigError> {
        let defaults = Smtp::defaults(max_connections);
        let smtp = Smtp {
            max_connections: c.positive("smtp.max_connections", self.max_connections, defaults.max_connections)?,
            max_connections_per_ip: c.positive(
                "smtp.max_connections_per_ip",
                self.max_connections_per_ip,
                defaults.max_connections_per_ip.min(self.max_connections.unwrap_or(usize::MAX)),
            )?,
            connections_per_minute: self.connections_per_minute.unwrap_or(CONNECTIONS_PER_MINUTE),
            messages_per_minute: self.messages_per_minute.unwrap_or(MESSAGES_PER_MINUTE),
            recipients_per_minute: self.recipients_per_minute.unwrap_or(RECIPIENTS_PER_MINUTE),
            greeting_delay: c.duration_or_zero("smtp.greeting_delay", self.greeting_delay, GREETING_DELAY)?,
        };
        if smtp.max_connections > max_connections {
            return Err(c.invalid("smtp.max_connections", "cannot be larger than limits.max_connections"));
        }
        if smtp.max_connections_per_ip > smtp.max_connections {
            return Err(c.invalid("smtp.max_connections_per_ip", "cannot be larger than smtp.max_connections"));
        }
        if smtp.greeting_delay > MAX_GREETING_DELAY {
            return Err(c.invalid(
                "smtp.greeting_delay",
                "must be at most 1m: senders give up on a greeting that takes longer (RFC 5321 §4.5.3.2.1)",
            ));
        }
        Ok(smtp)
    }
}
