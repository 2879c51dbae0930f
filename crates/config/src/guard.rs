//! `[guard]`: how failed logins are punished (delays, bans that double with each offence),
//! how an attacked account is shielded, and the sending limits of an account. The guard crate
//! decides with these numbers; this file reads them.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

const BAN_AFTER_FAILURES: u32 = 10;
const BAN_WINDOW: &str = "10m";
const BAN_DURATION: &str = "1h";
const MAX_BAN_DURATION: &str = "30d";
const FAILURE_DELAY: &str = "500ms";
const MAX_FAILURE_DELAY: &str = "15s";
const ACCOUNT_ATTACK_FAILURES: u32 = 20;
const UNKNOWN_SOURCE_DELAY: &str = "3s";
const KNOWN_SOURCE_MEMORY: &str = "30d";
const MAX_MESSAGES_PER_HOUR: u32 = 500;
const MAX_RECIPIENTS_PER_HOUR: u32 = 2000;
const MAX_TRACKED: usize = 100_000;

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

impl RawGuard {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Guard, ConfigError> {
        let guard = Guard {
            ban_after_failures: c.positive("guard.ban_after_failures", self.ban_after_failures, BAN_AFTER_FAILURES)?,
            ban_window: c.duration("guard.ban_window", self.ban_window, BAN_WINDOW)?,
            ban_duration: c.duration("guard.ban_duration", self.ban_duration, BAN_DURATION)?,
            max_ban_duration: c.duration("guard.max_ban_duration", self.max_ban_duration, MAX_BAN_DURATION)?,
            failure_delay: c.duration("guard.failure_delay", self.failure_delay, FAILURE_DELAY)?,
            max_failure_delay: c.duration("guard.max_failure_delay", self.max_failure_delay, MAX_FAILURE_DELAY)?,
            account_attack_failures: c.positive(
                "guard.account_attack_failures",
                self.account_attack_failures,
                ACCOUNT_ATTACK_FAILURES,
            )?,
            unknown_source_delay: c.duration(
                "guard.unknown_source_delay",
                self.unknown_source_delay,
                UNKNOWN_SOURCE_DELAY,
            )?,
            known_source_memory: c.duration(
                "guard.known_source_memory",
                self.known_source_memory,
                KNOWN_SOURCE_MEMORY,
            )?,
            max_messages_per_hour: c.positive(
                "guard.max_messages_per_hour",
                self.max_messages_per_hour,
                MAX_MESSAGES_PER_HOUR,
            )?,
            max_recipients_per_hour: c.positive(
                "guard.max_recipients_per_hour",
                self.max_recipients_per_hour,
                MAX_RECIPIENTS_PER_HOUR,
            )?,
            max_tracked: c.positive("guard.max_tracked", self.max_tracked, MAX_TRACKED)?,
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
