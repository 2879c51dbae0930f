//! The guard (docs/architecture.md §5): every admission and punishment decision for every listener is made
//! here. Protocols report facts (a connection, a login attempt and how it ended, a message
//! sent); the guard decides (refuse, limit, delay, ban, allow) and says what it decided, so that
//! the server can record it (the store, events). Pure code: it is given the time and does no
//! I/O.
//!
//! Where each part lives: `admission` (connections: firewall, bans, limits per source and per
//! wider network, slots kept for owners, a listener's own limits), `logins` (attempts, failures
//! and successes: the per-account limit, delays, bans), `banning` (the ban list: added, widened,
//! lifted, synced from the store, expired), `sending` (hourly sending limits), `shared_counts`
//! (the minute buckets the store counts sending and failures in for every node), `listener_limits`
//! (a listener's own limits and per-minute rates per source: port 25's), `delivery_offences`
//! (port 25: directory harvests, early talkers), `bounces` (an account's outbound mail failing
//! en masse); `ban_list`, `escalation`, `known_sources`,
//! `source`, `bounded_map` are the leaves they share, `policy` and `firewall` what they decide
//! by.
//!
//! Everything it remembers is bounded: attempts and failures per source and per account, and
//! the owners' addresses, live in [`BoundedMap`]s; bans come from the store, which keeps them
//! across restarts, and are widened rather than multiplied. Sending and failures are also
//! counted by the store for every node together: the guard is given those counts and decides
//! by them and its own.
#![forbid(unsafe_code)]

pub mod anomaly;

mod admission;
mod ban;
mod ban_list;
mod banning;
mod bounces;
mod bounded_map;
mod delivery_offences;
mod escalation;
mod firewall;
mod known_sources;
mod listener_limits;
mod logins;
mod policy;
mod sending;
mod shared_counts;
mod source;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet as Network;

pub use admission::Admission;
pub use ban::{Ban, MANUAL_BAN_REASON};
pub use banning::BanSync;
pub use bounces::BounceStorm;
pub use bounded_map::BoundedMap;
pub use firewall::Rules;
pub use ipnet::IpNet;
pub use listener_limits::{ListenerLimits, Rate, RateHit};
pub use logins::{account_key, Entry, Failure, Success};
pub use policy::{CheckLane, Policy, BUSY_DELAY, MAX_ERRORS};
pub use sending::{LimitHit, SendingLimit};
pub use shared_counts::{Attempts, Buckets, Sent};
pub use source::{canonical, Source};

/// The time, both kinds: intervals use the monotonic clock, bans the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn current() -> Now {
        Now { mono: Instant::now(), wall: SystemTime::now() }
    }
}

struct Inner {
    policy: RwLock<Arc<Policy>>,
    connections: Mutex<admission::Connections>,
    sources: Mutex<BoundedMap<Source, logins::SourceRecord>>,
    accounts: Mutex<BoundedMap<String, logins::AccountRecord>>,
    /// How often each network was banned (automatically) lately: repeat bans are longer.
    offences: Mutex<BoundedMap<Network, u32>>,
    /// The owners' addresses, for the door (slots kept for owners) and for escalation.
    known: Mutex<known_sources::KnownSources>,
    bans: RwLock<ban_list::BanList>,
    sending: Mutex<HashMap<i64, sending::SendingWindow>>,
    /// Per-minute rates per listener, source and what is counted (port 25).
    rates: Mutex<BoundedMap<(portcullis_events::Listener, Source, Rate), listener_limits::MinuteRate>>,
    /// Unknown recipients and early talk per source (port 25).
    offenders: Mutex<BoundedMap<Source, delivery_offences::OffenceRecord>>,
    /// Permanent failures of each account's outbound mail (`bounces`).
    bounces: Mutex<BoundedMap<String, bounces::BounceRecord>>,
    next_id: AtomicU64,
}

/// Cheap to clone; all clones are the same guard.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

/// How long offence counts are kept in memory: repeat bans within a day double.
const OFFENCE_MEMORY: Duration = Duration::from_secs(86_400);

/// A delay that doubles with each step: base, 2 x base, 4 x base... capped.
fn doubling(base: Duration, step: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << step.saturating_sub(1).min(20)).min(cap)
}

impl Guard {
    pub fn new(policy: Policy) -> Guard {
        let tracked = policy.settings.max_tracked;
        Guard {
            inner: Arc::new(Inner {
                policy: RwLock::new(Arc::new(policy)),
                connections: Mutex::default(),
                sources: Mutex::new(BoundedMap::new(tracked)),
                accounts: Mutex::new(BoundedMap::new(tracked)),
                offences: Mutex::new(BoundedMap::new(tracked)),
                known: Mutex::new(known_sources::KnownSources::new(tracked)),
                bans: RwLock::default(),
                sending: Mutex::default(),
                rates: Mutex::new(BoundedMap::new(tracked)),
                offenders: Mutex::new(BoundedMap::new(tracked)),
                bounces: Mutex::new(BoundedMap::new(tracked)),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    fn policy(&self) -> Arc<Policy> {
        match self.inner.policy.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// New rules (SIGHUP): established sessions that the new rules would refuse are revoked;
    /// returns how many.
    pub fn reload(&self, policy: Policy) -> usize {
        let rules = policy.rules.clone();
        match self.inner.policy.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(p) => *p.into_inner() = Arc::new(policy),
        }
        self.revoke_where(|live| !rules.admits(live.ip, live.listener))
    }

    /// Drops what is older than it matters (call now and then): attempts and failures older
    /// than the ban window, offence counts older than a day, permanent failures older than
    /// `guard.bounce_window`, owners' addresses older than `guard.known_source_memory`.
    pub fn forget_old(&self, now: Now) {
        let settings = &self.policy().settings;
        if let Some(cutoff) = now.mono.checked_sub(settings.ban_window) {
            if let Ok(mut a) = self.inner.accounts.lock() {
                a.forget_before(cutoff);
            }
            if let Ok(mut s) = self.inner.sources.lock() {
                s.forget_before(cutoff);
            }
            if let Ok(mut o) = self.inner.offenders.lock() {
                o.forget_before(cutoff);
            }
        }
        if let Some(cutoff) = now.mono.checked_sub(settings.bounce_window + Duration::from_secs(60)) {
            if let Ok(mut b) = self.inner.bounces.lock() {
                b.forget_before(cutoff);
            }
        }
        // A rate forgets everything two minutes back.
        if let Some(cutoff) = now.mono.checked_sub(Duration::from_secs(120)) {
            if let Ok(mut r) = self.inner.rates.lock() {
                r.forget_before(cutoff);
            }
        }
        if let Some(cutoff) = now.mono.checked_sub(OFFENCE_MEMORY) {
            if let Ok(mut o) = self.inner.offences.lock() {
                o.forget_before(cutoff);
            }
        }
        if let Some(cutoff) = now.mono.checked_sub(settings.known_source_memory) {
            if let Ok(mut k) = self.inner.known.lock() {
                k.forget_before(cutoff);
            }
        }
    }
}

/// Drops the times older than `window` from the front of `times`.
fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

fn humanize(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests;
