//! The bans the guard enforces: added (its own, and an administrator's), widened over a
//! customer's allocation when enough of it is banned (`escalation`), lifted, expired, and kept
//! in step with the store, which is the truth shared by every node and written by the admin
//! CLI. The store says only what changed since the last look ([`Guard::apply_ban_changes`]),
//! so keeping in step costs the changes, not the whole list, and the lock every accept reads
//! through is held only to apply them.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::ban::Ban;
use crate::ban_list::BanList;
use crate::escalation;
use crate::source::canonical;
use crate::{doubling, Guard, Now};

/// What a sync with the store changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanSync {
    /// Bans on networks that had none here (an administrator's, or another node's).
    pub added: Vec<Ban>,
    /// Networks whose ban was lifted in the store.
    pub lifted: Vec<IpNet>,
}

impl Guard {
    /// The ban covering `ip`, if any.
    pub fn banned(&self, ip: IpAddr, now: SystemTime) -> Option<Ban> {
        self.inner.bans.read().ok()?.find(canonical(ip), now).cloned()
    }

    /// Every ban in force (or not yet expired by [`Guard::expire_bans`]).
    pub fn bans(&self) -> Vec<Ban> {
        self.inner.bans.read().map(|b| b.iter().cloned().collect()).unwrap_or_default()
    }

    /// How many bans there are, without copying them.
    pub fn ban_count(&self) -> usize {
        self.inner.bans.read().map(|b| b.len()).unwrap_or(0)
    }

    /// Puts a ban in force at once: new connections are refused, and open ones from the
    /// banned network are revoked.
    pub fn add_ban(&self, ban: Ban, now: Now) {
        if let Ok(mut bans) = self.inner.bans.write() {
            bans.insert(ban.clone());
        }
        self.revoke_where(|live| ban.covers(live.ip, now.wall));
    }

    /// Lifts the ban on exactly `network`; whether there was one.
    pub fn remove_ban(&self, network: &IpNet) -> bool {
        self.inner.bans.write().is_ok_and(|mut bans| bans.remove(network).is_some())
    }

    /// Applies what changed in the store: `changed` bans (each as it is now) and `lifted`
    /// networks. A ban the guard already has (its own, written back) changes nothing visible.
    /// Open sessions from newly banned networks are revoked.
    pub fn apply_ban_changes(&self, changed: Vec<Ban>, lifted: &[IpNet], now: Now) -> BanSync {
        let mut sync = BanSync::default();
        {
            let Ok(mut bans) = self.inner.bans.write() else { return sync };
            for ban in changed {
                if !ban.in_force(now.wall) {
                    // Shortened into the past: gone, as if it had expired.
                    bans.remove(&ban.network);
                } else if bans.insert(ban.clone()).is_none() {
                    sync.added.push(ban);
                }
            }
            for network in lifted {
                if bans.remove(network).is_some() {
                    sync.lifted.push(*network);
                }
            }
        }
        if !sync.added.is_empty() {
            let mut added = BanList::default();
            for ban in &sync.added {
                added.insert(ban.clone());
            }
            self.revoke_where(|live| added.find(live.ip, now.wall).is_some());
        }
        sync
    }

    /// Forgets bans whose time is up; returns them.
    pub fn expire_bans(&self, now: SystemTime) -> Vec<Ban> {
        self.inner.bans.write().map(|mut bans| bans.expire(now)).unwrap_or_default()
    }

    /// Seeds how often each network was banned before (from the store's history), so that
    /// repeat offenders get longer bans across restarts.
    pub fn set_offences(&self, offences: &[(IpNet, u32)], now: Now) {
        let Ok(mut known) = self.inner.offences.lock() else { return };
        for (network, count) in offences {
            let seen = known.touch(network, now.mono, || 0);
            *seen = (*seen).max(*count);
        }
    }

    /// Whether an administrator may ban `network`: see [`crate::Policy::may_ban`].
    pub fn may_ban(&self, network: &IpNet) -> bool {
        self.policy().may_ban(network)
    }

    /// The offence a new ban on `network` is: one more than the last one remembered.
    pub(crate) fn offence(&self, network: IpNet, now: Now) -> u32 {
        match self.inner.offences.lock() {
            Ok(mut offences) => {
                let count = offences.touch(&network, now.mono, || 0);
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        }
    }

    /// Bans the wider networks that the ban on `banned` completes (see `escalation`); returns
    /// those bans. Each lasts as long as the longest ban inside it, or longer for a repeat
    /// offence.
    pub(crate) fn escalate(&self, banned: &IpNet, now: Now) -> Vec<Ban> {
        let policy = self.policy();
        let s = &policy.settings;
        let due = match self.inner.bans.read() {
            Ok(bans) => escalation::due(&bans, banned, s, now.wall, |network| {
                !policy.may_ban(network) || self.knows_inside(network, now)
            }),
            Err(_) => return Vec::new(),
        };
        let mut widened = Vec::new();
        for escalation::Due { network, reason } in due {
            let offence = self.offence(network, now);
            let longest_inside = self.inner.bans.read().ok().and_then(|bans| {
                (network.prefix_len()..=network.max_prefix_len())
                    .flat_map(|length| bans.inside(&network, length).map(|b| b.until).collect::<Vec<_>>())
                    .max()
                    .flatten()
            });
            let own = now.wall + doubling(s.ban_duration, offence, s.max_ban_duration);
            let until = Some(longest_inside.map_or(own, |inside| inside.max(own)));
            let ban = Ban { network, until, reason, offence, manual: false };
            self.add_ban(ban.clone(), now);
            widened.push(ban);
        }
        widened
    }
}
