//! A ban: a network refused at accept until a time, or for good. The guard makes automatic
//! ones after repeated failed logins or attempts (and widens them, see `escalation`);
//! [`Ban::manual`] is the one way to make an administrator's, whether it comes through the
//! admin API or the CLI.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::source::canonical;

/// The reason recorded for an administrator's ban that gives none.
pub const MANUAL_BAN_REASON: &str = "banned by an administrator";

/// A ban: `network` is refused at accept until `until` (forever when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub network: IpNet,
    pub until: Option<SystemTime>,
    pub reason: String,
    /// 1 for a first ban of this network, 2 for the next...: lengths double with it.
    pub offence: u32,
    /// Set by an administrator rather than by the guard.
    pub manual: bool,
}

impl Ban {
    /// An administrator's ban on `network` until `until` (`None`: permanent), for `reason`, or
    /// [`MANUAL_BAN_REASON`] when that is blank. Always a first offence: doubling is for the
    /// guard's own bans. Whether `network` may be banned at all is
    /// [`crate::Policy::may_ban`]'s to say.
    pub fn manual(network: IpNet, until: Option<SystemTime>, reason: &str) -> Ban {
        let reason = if reason.trim().is_empty() { MANUAL_BAN_REASON } else { reason };
        Ban { network, until, reason: reason.to_string(), offence: 1, manual: true }
    }

    pub fn covers(&self, ip: IpAddr, now: SystemTime) -> bool {
        self.network.contains(&canonical(ip)) && self.in_force(now)
    }

    /// Whether its time is not up at `now`.
    pub fn in_force(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}
