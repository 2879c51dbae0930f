//! `[guard]`: how failed logins are punished (delays, bans that double with each offence and
//! widen from an IPv6 /64 to its /56 and /48), how an attacked account is shielded, and the
//! sending limits of an account, and when its outbound mail bounces so much that it is likely
//! compromised. The guard crate decides with these numbers; this file reads them.

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
const BAN_AFTER_ATTEMPTS: u32 = 20;
const ACCOUNT_ATTACK_FAILURES: u32 = 20;
const UNKNOWN_SOURCE_ATTEMPTS: u32 = 20;
const ESCALATE_AFTER: u32 = 4;
/// IPv4 bans are not widened unless asked: a /24 is often many unrelated customers (an ISP's
/// pool, a carrier's NAT), and an attacker cannot mint IPv4 addresses the way it mints /64s.
const ESCALATE_IPV4_AFTER: u32 = 0;
const KNOWN_SOURCE_MEMORY: &str = "30d";
const MAX_MESSAGES_PER_HOUR: u32 = 500;
const MAX_RECIPIENTS_PER_HOUR: u32 = 2000;
const MAX_TRACKED: usize = 100_000;
/// A server that mistypes a few addresses is normal; twenty unknown recipients from one source
/// within the window is someone trying names (a directory harvest).
const BAN_AFTER_UNKNOWN_RECIPIENTS: u32 = 20;
/// Postfix's postscreen refuses an early talker each time; three in the window is ratware.
const BAN_AFTER_EARLY_TALK: u32 = 3;
/// A person's mail meets a few dead addresses an hour at most; a spam run from a stolen
/// account meets hundreds (guessed and stale lists, receivers refusing spam).
const BOUNCE_ALERT_AFTER: u32 = 50;
const BOUNCE_WINDOW: &str = "1h";

#[derive(Debug, Clone)]
pub struct Guard {
    /// Failures from one source within `ban_window` that get it banned.
    pub ban_after_failures: u32,
    /// Login attempts from one source within `ban_window`, on accounts it never logged in
    /// from and not followed by a success, that get it banned: counted when the attempt
    /// starts, whether its password is then checked or it is refused unchecked.
    pub ban_after_attempts: u32,
    pub ban_window: Duration,
    /// The first ban's length; each repeat offence doubles it, up to `max_ban_duration`.
    pub ban_duration: Duration,
    pub max_ban_duration: Duration,
    /// Delay before answering a failed login; doubles with each recent failure of the source.
    pub failure_delay: Duration,
    pub max_failure_delay: Duration,
    /// Failures on one account before a success that make the success worth an alert (the
    /// password may have been guessed).
    pub account_attack_failures: u32,
    /// Login attempts on one account from addresses it never logged in from, within
    /// `ban_window`; beyond it such attempts are refused unchecked (a temporary failure).
    pub unknown_source_attempts: u32,
    /// Banned IPv6 /64s inside one /56, or /56s holding a ban inside one /48, that get the
    /// wider network banned too; 0: never.
    pub escalate_after: u32,
    /// Banned IPv4 addresses inside one /24 that get the /24 banned; 0: never.
    pub escalate_ipv4_after: u32,
    /// How long a successful login makes its address known for the account.
    pub known_source_memory: Duration,
    /// Sending limits per account (a compromised account is used to spam).
    pub max_messages_per_hour: u32,
    pub max_recipients_per_hour: u32,
    /// Sources and accounts whose failures are remembered, at most (memory bound).
    pub max_tracked: usize,
    /// Unknown local recipients (RCPT TO on port 25) from one source within `ban_window` that
    /// get it banned: a directory harvest. Each one also delays the reply, doubling from
    /// `failure_delay` up to `max_failure_delay`.
    pub ban_after_unknown_recipients: u32,
    /// Connections on port 25 from one source within `ban_window` that spoke before the
    /// greeting or pipelined before PIPELINING was offered, that get it banned.
    pub ban_after_early_talk: u32,
    /// Recipients of one account's outbound mail that failed for good (refused with 5xx, no
    /// such domain, given up) within `bounce_window` that raise an `outbound_bounces` alert:
    /// the account is likely sending spam. 0: never.
    pub bounce_alert_after: u32,
    pub bounce_window: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuard {
    ban_after_failures: Option<u32>,
    ban_after_attempts: Option<u32>,
    ban_window: Option<String>,
    ban_duration: Option<String>,
    max_ban_duration: Option<String>,
    failure_delay: Option<String>,
    max_failure_delay: Option<String>,
    account_attack_failures: Option<u32>,
    unknown_source_attempts: Option<u32>,
    escalate_after: Option<u32>,
    escalate_ipv4_after: Option<u32>,
    known_source_memory: Option<String>,
    max_messages_per_hour: Option<u32>,
    max_recipients_per_hour: Option<u32>,
    max_tracked: Option<usize>,
    ban_after_unknown_recipients: Option<u32>,
    ban_after_early_talk: Option<u32>,
    bounce_alert_after: Option<u32>,
    bounce_window: Option<String>,
}

impl RawGuard {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Guard, ConfigError> {
        let guard = Guard {
            ban_after_failures: c.positive("guard.ban_after_failures", self.ban_after_failures, BAN_AFTER_FAILURES)?,
            ban_after_attempts: c.positive("guard.ban_after_attempts", self.ban_after_attempts, BAN_AFTER_ATTEMPTS)?,
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
            unknown_source_attempts: c.positive(
                "guard.unknown_source_attempts",
                self.unknown_source_attempts,
                UNKNOWN_SOURCE_ATTEMPTS,
            )?,
            escalate_after: c.never_or_at_least(2, "guard.escalate_after", self.escalate_after, ESCALATE_AFTER)?,
            escalate_ipv4_after: c.never_or_at_least(
                2,
                "guard.escalate_ipv4_after",
                self.escalate_ipv4_after,
                ESCALATE_IPV4_AFTER,
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
            ban_after_unknown_recipients: c.positive(
                "guard.ban_after_unknown_recipients",
                self.ban_after_unknown_recipients,
                BAN_AFTER_UNKNOWN_RECIPIENTS,
            )?,
            ban_after_early_talk: c.positive(
                "guard.ban_after_early_talk",
                self.ban_after_early_talk,
                BAN_AFTER_EARLY_TALK,
            )?,
            // Any count: 0 turns the alert off.
            bounce_alert_after: self.bounce_alert_after.unwrap_or(BOUNCE_ALERT_AFTER),
            bounce_window: c.duration("guard.bounce_window", self.bounce_window, BOUNCE_WINDOW)?,
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
