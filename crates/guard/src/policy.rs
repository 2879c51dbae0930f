//! What the guard decides by, replaced as a whole on reload, and the decisions that follow from
//! it alone, with no memory of past events: who may be banned, whose password check goes ahead
//! of the queue, how many refused commands a connection may make, how long a refusal takes.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use portcullis_events::Listener;

use crate::firewall::Rules;
use crate::listener_limits::ListenerLimits;
use crate::source::canonical;

/// Refused commands tolerated per connection, whatever the protocol: a client that keeps
/// sending what the server refuses is probing or broken, and is disconnected.
pub const MAX_ERRORS: u32 = 20;

/// How long a login takes that was refused unchecked: too many password checks from unknown
/// addresses were waiting, or the account's limit of attempts from unknown addresses was
/// reached. Its attempt counts against the source all the same (see `logins`), and the
/// refusal is not instant: one that costs nothing would invite a tight retry loop.
pub const BUSY_DELAY: Duration = Duration::from_secs(1);

/// Where a password check waits for the hashing pool (the server maps it onto
/// `portcullis_auth::Lane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLane {
    /// Ahead of everyone else: a storm of guesses from elsewhere cannot starve the owner.
    Priority,
    /// In a bounded queue; refused unchecked when it is full.
    Ordinary,
}

/// Everything the guard decides by, replaced as a whole on reload.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Rules,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub max_connections_per_56: usize,
    pub max_connections_per_48: usize,
    /// Of `max_connections`, the slots only owners may take.
    pub reserved_for_owners: usize,
    /// Limits of listeners that have their own (port 25's `[smtp]`).
    pub listener_limits: Vec<(Listener, ListenerLimits)>,
    pub settings: portcullis_config::Guard,
}

impl Policy {
    pub fn from_config(config: &portcullis_config::Config) -> Policy {
        Policy {
            rules: Rules::new(config.firewall.clone()),
            max_connections: config.limits.max_connections,
            max_connections_per_source: config.limits.max_connections_per_ip,
            max_connections_per_56: config.limits.max_connections_per_56,
            max_connections_per_48: config.limits.max_connections_per_48,
            reserved_for_owners: config.limits.reserved_for_owners,
            listener_limits: vec![(Listener::Smtp, ListenerLimits::from_smtp(&config.smtp))],
            settings: config.guard.clone(),
        }
    }

    /// The limits of its own `listener` has, if any.
    pub fn limits_of(&self, listener: Listener) -> Option<&ListenerLimits> {
        self.listener_limits.iter().find(|(l, _)| *l == listener).map(|(_, limits)| limits)
    }

    /// Whether an administrator may ban `network`: not when it touches a trusted network, which
    /// is never banned.
    pub fn may_ban(&self, network: &IpNet) -> bool {
        !self.rules.overlaps_trusted(network)
    }

    /// Whether a login from `ip` is, as far as the guard can tell, the account's owner: an
    /// address the account logged in from before (`known_source`, from the store), or a trusted
    /// network. Such a login is never counted or limited, never gets its source banned, and
    /// has its password checked ahead of the queue.
    pub fn is_owner(&self, ip: IpAddr, known_source: bool) -> bool {
        known_source || self.rules.is_trusted(canonical(ip))
    }

    /// Where the password check of a login from `ip` waits.
    pub fn check_lane(&self, ip: IpAddr, known_source: bool) -> CheckLane {
        if self.is_owner(ip, known_source) {
            CheckLane::Priority
        } else {
            CheckLane::Ordinary
        }
    }

    /// Whether `failures_before` failed logins on an account before a success are worth an
    /// alert: as many as make the guard consider the account under attack, so the password may
    /// have been guessed.
    pub fn alarming_failures(&self, failures_before: u32) -> bool {
        failures_before >= self.settings.account_attack_failures
    }
}
