//! Admission at accept, before any TLS work: the firewall rules, the bans, then the connection
//! limits: in total, from one source (an IPv4 address or an IPv6 /64), from one IPv6 /56 and
//! one /48 (so that one customer cannot take every slot a /64 at a time), and the last
//! `limits.reserved_for_owners` slots, which only owners may take (addresses an account logged
//! in from lately, trusted networks), so that a flood of connections cannot lock them out at
//! the door. A listener with limits of its own (port 25) is then held to them too: connections
//! on it at once, from everyone and from one source, and new connections per minute from one
//! source. An admitted connection holds an [`Admission`] until it closes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use portcullis_events::{Listener, RefuseReason};
use tokio_util::sync::CancellationToken;

use crate::listener_limits::Rate;
use crate::source::{canonical, Source};
use crate::{Guard, Inner, Now};

pub(crate) struct Live {
    pub(crate) ip: IpAddr,
    pub(crate) listener: Listener,
    revoke: CancellationToken,
}

#[derive(Default)]
pub(crate) struct Connections {
    total: usize,
    per_source: HashMap<Source, usize>,
    per_56: HashMap<u64, usize>,
    per_48: HashMap<u64, usize>,
    /// On listeners with limits of their own: connections on each, and per source on each.
    per_listener: HashMap<Listener, usize>,
    per_listener_source: HashMap<(Listener, Source), usize>,
    live: HashMap<u64, Live>,
}

/// A connection slot; dropping it gives the slot back.
pub struct Admission {
    inner: Arc<Inner>,
    id: u64,
    source: Source,
    /// Counted against its listener's own limits (see [`Connections::per_listener`]).
    listener: Option<Listener>,
    revoke: CancellationToken,
}

impl Admission {
    /// Cancelled when the guard withdraws the admission (the source got banned, or the
    /// firewall rules no longer admit it).
    pub fn revoked(&self) -> CancellationToken {
        self.revoke.clone()
    }
}

fn count_down<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut c) = self.inner.connections.lock() {
            c.total = c.total.saturating_sub(1);
            c.live.remove(&self.id);
            count_down(&mut c.per_source, &self.source);
            if let (Some(n56), Some(n48)) = (self.source.v6_56(), self.source.v6_48()) {
                count_down(&mut c.per_56, &n56);
                count_down(&mut c.per_48, &n48);
            }
            if let Some(listener) = self.listener {
                count_down(&mut c.per_listener, &listener);
                count_down(&mut c.per_listener_source, &(listener, self.source));
            }
        }
    }
}

impl Guard {
    /// Decides whether a new connection from `ip` may proceed on `listener`: firewall rules,
    /// bans, then connection limits. Called at accept, before any TLS work.
    pub fn admit(&self, ip: IpAddr, listener: Listener, now: Now) -> Result<Admission, RefuseReason> {
        let ip = canonical(ip);
        let policy = self.policy();
        if !policy.rules.admits(ip, listener) {
            return Err(RefuseReason::Firewall);
        }
        if self.banned(ip, now.wall).is_some() {
            return Err(RefuseReason::Banned);
        }
        let source = Source::of(ip);
        let owner = policy.rules.is_trusted(ip) || self.knows(source, now);
        let mut c = self.inner.connections.lock().map_err(|_| RefuseReason::TooManyConnections)?;
        if c.total >= policy.max_connections {
            return Err(RefuseReason::TooManyConnections);
        }
        if !owner && c.total >= policy.max_connections - policy.reserved_for_owners.min(policy.max_connections) {
            return Err(RefuseReason::TooManyConnections);
        }
        let from = |counts: &HashMap<u64, usize>, key: Option<u64>| key.and_then(|k| counts.get(&k).copied());
        let (n56, n48) = (source.v6_56(), source.v6_48());
        if c.per_source.get(&source).copied().unwrap_or(0) >= policy.max_connections_per_source
            || from(&c.per_56, n56).is_some_and(|n| n >= policy.max_connections_per_56)
            || from(&c.per_48, n48).is_some_and(|n| n >= policy.max_connections_per_48)
        {
            return Err(RefuseReason::TooManyConnectionsFromPeer);
        }
        // The listener's own limits, for all but trusted networks.
        let own_limits = policy.limits_of(listener).filter(|_| !policy.rules.is_trusted(ip)).copied();
        if let Some(limits) = own_limits {
            if c.per_listener.get(&listener).copied().unwrap_or(0) >= limits.max_connections {
                return Err(RefuseReason::TooManyConnections);
            }
            if c.per_listener_source.get(&(listener, source)).copied().unwrap_or(0) >= limits.max_connections_per_source
            {
                return Err(RefuseReason::TooManyConnectionsFromPeer);
            }
            // Counted last: only admitted connections use up the rate.
            if self.rate(listener, Rate::Connections, ip, 1, now).is_err() {
                return Err(RefuseReason::TooManyConnectionsPerMinute);
            }
            *c.per_listener.entry(listener).or_default() += 1;
            *c.per_listener_source.entry((listener, source)).or_default() += 1;
        }
        c.total += 1;
        *c.per_source.entry(source).or_default() += 1;
        if let (Some(n56), Some(n48)) = (n56, n48) {
            *c.per_56.entry(n56).or_default() += 1;
            *c.per_48.entry(n48).or_default() += 1;
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let revoke = CancellationToken::new();
        c.live.insert(id, Live { ip, listener, revoke: revoke.clone() });
        Ok(Admission { inner: self.inner.clone(), id, source, listener: own_limits.map(|_| listener), revoke })
    }

    /// Connections currently admitted.
    pub fn active(&self) -> usize {
        self.inner.connections.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Revokes the admissions of the live connections `doomed` picks; returns how many.
    pub(crate) fn revoke_where(&self, doomed: impl Fn(&Live) -> bool) -> usize {
        let Ok(c) = self.inner.connections.lock() else { return 0 };
        let mut revoked = 0;
        for live in c.live.values().filter(|l| doomed(l)) {
            live.revoke.cancel();
            revoked += 1;
        }
        revoked
    }
}
