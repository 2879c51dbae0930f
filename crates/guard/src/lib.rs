//! The guard (DESIGN §2): every admission and punishment decision for every listener is made
//! here. Protocols report facts (a connection, a failed or successful login, a message sent);
//! the guard decides (refuse, delay, ban, allow) and says what it decided, so that the server
//! can record it (the store, events). Pure code: it is given the time and does no I/O.
//!
//! Everything it remembers is bounded: failures per source and per account live in
//! [`BoundedMap`]s; bans are few and come from the store, which keeps them across restarts.
#![forbid(unsafe_code)]

pub mod anomaly;

mod ban;
mod bounded_map;
mod firewall;
mod policy;
mod source;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use portcullis_events::{Listener, RefuseReason};
use tokio_util::sync::CancellationToken;

pub use ban::{Ban, MANUAL_BAN_REASON};
pub use bounded_map::BoundedMap;
pub use firewall::Rules;
pub use ipnet::IpNet;
pub use policy::{CheckLane, Policy, BUSY_DELAY, MAX_ERRORS};
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

/// What the guard decided about a failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before answering the client.
    pub delay: Duration,
    /// The source has just been banned (record it, tell the operator).
    pub ban: Option<Ban>,
}

/// What the guard noticed about a successful login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Success {
    /// Failed logins on this account since its last success.
    pub failures_before: u32,
    /// Those failures were enough to call the account attacked: tell the operator, the
    /// password may have been guessed.
    pub after_attack: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendingLimit {
    Messages(u32),
    Recipients(u32),
}

/// A message refused by the sending limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    pub limit: SendingLimit,
    /// The first refusal since the account was last under its limits (alert once).
    pub first: bool,
}

struct SourceRecord {
    failures: VecDeque<Instant>,
    /// Bans so far, for doubling the next one.
    offences: u32,
}

struct AccountRecord {
    /// Failures from addresses the account never logged in from.
    unknown_failures: VecDeque<Instant>,
    since_success: u32,
}

/// Messages sent by an account in the last hour, counted per minute, and whether it is being
/// refused now. Per minute, not per message: at most 61 entries per account whatever the
/// limits (a list per message held 24 bytes for every message of the hour).
#[derive(Default)]
struct SendingWindow {
    minutes: VecDeque<SentInMinute>,
    limited: bool,
}

/// What an account sent in the minute from `start`.
struct SentInMinute {
    start: Instant,
    messages: u32,
    recipients: u32,
}

/// The granularity of the sending window: a minute's messages count until the whole minute is
/// an hour old (so a limit is never lifted early, and at most a minute late).
const SENDING_BUCKET: Duration = Duration::from_secs(60);

struct Live {
    ip: IpAddr,
    listener: Listener,
    revoke: CancellationToken,
}

#[derive(Default)]
struct Connections {
    total: usize,
    per_source: HashMap<Source, usize>,
    live: HashMap<u64, Live>,
}

struct Inner {
    policy: RwLock<Arc<Policy>>,
    connections: Mutex<Connections>,
    sources: Mutex<BoundedMap<Source, SourceRecord>>,
    accounts: Mutex<BoundedMap<String, AccountRecord>>,
    bans: RwLock<Vec<Ban>>,
    /// When each recent ban was added here, so that a store refresh racing the ban's write
    /// does not drop it.
    fresh: Mutex<HashMap<IpNet, Instant>>,
    sending: Mutex<HashMap<i64, SendingWindow>>,
    next_id: AtomicU64,
}

/// Cheap to clone; all clones are the same guard.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

/// A connection slot; dropping it gives the slot back.
pub struct Admission {
    inner: Arc<Inner>,
    id: u64,
    source: Source,
    revoke: CancellationToken,
}

impl Admission {
    /// Cancelled when the guard withdraws the admission (the source got banned, or the
    /// firewall rules no longer admit it).
    pub fn revoked(&self) -> CancellationToken {
        self.revoke.clone()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut c) = self.inner.connections.lock() {
            c.total = c.total.saturating_sub(1);
            c.live.remove(&self.id);
            if let Some(n) = c.per_source.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    c.per_source.remove(&self.source);
                }
            }
        }
    }
}

/// A delay that doubles with each step: base, 2 x base, 4 x base... capped.
fn doubling(base: Duration, step: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << step.saturating_sub(1).min(20)).min(cap)
}

fn account_key(username: &str) -> String {
    username.trim().to_lowercase()
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
                bans: RwLock::default(),
                fresh: Mutex::default(),
                sending: Mutex::default(),
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
        let mut c = self.inner.connections.lock().map_err(|_| RefuseReason::TooManyConnections)?;
        if c.total >= policy.max_connections {
            return Err(RefuseReason::TooManyConnections);
        }
        let from_source = c.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= policy.max_connections_per_source {
            return Err(RefuseReason::TooManyConnectionsFromPeer);
        }
        c.total += 1;
        c.per_source.insert(source, from_source + 1);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let revoke = CancellationToken::new();
        c.live.insert(id, Live { ip, listener, revoke: revoke.clone() });
        Ok(Admission { inner: self.inner.clone(), id, source, revoke })
    }

    /// Connections currently admitted.
    pub fn active(&self) -> usize {
        self.inner.connections.lock().map(|c| c.total).unwrap_or(0)
    }

    /// The ban covering `ip`, if any.
    pub fn banned(&self, ip: IpAddr, now: SystemTime) -> Option<Ban> {
        let bans = self.inner.bans.read().ok()?;
        bans.iter().find(|b| b.covers(ip, now)).cloned()
    }

    /// Where the password check of a login from `ip` waits: see [`Policy::check_lane`].
    pub fn check_lane(&self, ip: IpAddr, known_source: bool) -> CheckLane {
        self.policy().check_lane(ip, known_source)
    }

    /// How long to hold a login attempt before checking it: addresses an account never
    /// logged in from are slowed down while that account is under attack; known ones never.
    pub fn auth_throttle(&self, ip: IpAddr, username: &str, known_source: bool, now: Now) -> Duration {
        let policy = self.policy();
        if policy.is_owner(ip, known_source) {
            return Duration::ZERO;
        }
        let window = policy.settings.ban_window;
        let mut accounts = match self.inner.accounts.lock() {
            Ok(a) => a,
            Err(_) => return Duration::ZERO,
        };
        match accounts.get_mut(&account_key(username)) {
            Some(record) => {
                prune(&mut record.unknown_failures, now.mono, window);
                if record.unknown_failures.len() as u32 >= policy.settings.account_attack_failures {
                    policy.settings.unknown_source_delay
                } else {
                    Duration::ZERO
                }
            }
            None => Duration::ZERO,
        }
    }

    /// A login failed: how long to make the client wait, and whether its source is now
    /// banned. An address the account knows (`known_source`) or a trusted network is never
    /// banned: the owner is never locked out.
    pub fn auth_failed(&self, ip: IpAddr, username: &str, known_source: bool, now: Now) -> Failure {
        let ip = canonical(ip);
        let policy = self.policy();
        let s = &policy.settings;
        let source = Source::of(ip);
        let owner = policy.is_owner(ip, known_source);

        if let Ok(mut accounts) = self.inner.accounts.lock() {
            let record = accounts.touch(&account_key(username), now.mono, || AccountRecord {
                unknown_failures: VecDeque::new(),
                since_success: 0,
            });
            record.since_success = record.since_success.saturating_add(1);
            if !known_source {
                record.unknown_failures.push_back(now.mono);
                prune(&mut record.unknown_failures, now.mono, s.ban_window);
                while record.unknown_failures.len() > s.account_attack_failures as usize + 1 {
                    record.unknown_failures.pop_front();
                }
            }
        }

        let Ok(mut sources) = self.inner.sources.lock() else {
            return Failure { delay: s.failure_delay, ban: None };
        };
        let record = sources.touch(&source, now.mono, || SourceRecord { failures: VecDeque::new(), offences: 0 });
        record.failures.push_back(now.mono);
        prune(&mut record.failures, now.mono, s.ban_window);
        while record.failures.len() > s.ban_after_failures as usize {
            record.failures.pop_front();
        }
        let count = record.failures.len() as u32;
        let delay = doubling(s.failure_delay, count, s.max_failure_delay);
        if count < s.ban_after_failures || owner {
            return Failure { delay, ban: None };
        }
        record.offences += 1;
        record.failures.clear();
        let length = doubling(s.ban_duration, record.offences, s.max_ban_duration);
        let ban = Ban {
            network: source.network(),
            until: Some(now.wall + length),
            reason: format!("{count} failed logins within {}", humanize(s.ban_window)),
            offence: record.offences,
            manual: false,
        };
        drop(sources);
        self.add_ban(ban.clone(), now);
        Failure { delay, ban: Some(ban) }
    }

    /// A login succeeded.
    pub fn auth_succeeded(&self, username: &str, now: Now) -> Success {
        let failures_before = match self.inner.accounts.lock() {
            Ok(mut accounts) => match accounts.get_mut(&account_key(username)) {
                Some(record) => std::mem::take(&mut record.since_success),
                None => 0,
            },
            Err(_) => 0,
        };
        let _ = now;
        Success { failures_before, after_attack: self.policy().alarming_failures(failures_before) }
    }

    /// Puts a ban in force at once: new connections are refused, and open ones from the
    /// banned network are revoked.
    pub fn add_ban(&self, ban: Ban, now: Now) {
        let network = ban.network;
        if let Ok(mut bans) = self.inner.bans.write() {
            bans.retain(|b| b.network != network);
            bans.push(ban.clone());
        }
        if let Ok(mut fresh) = self.inner.fresh.lock() {
            fresh.insert(network, now.mono);
        }
        self.revoke_where(|live| ban.covers(live.ip, now.wall));
    }

    /// Lifts the ban on exactly `network`; whether there was one.
    pub fn remove_ban(&self, network: &IpNet) -> bool {
        if let Ok(mut fresh) = self.inner.fresh.lock() {
            fresh.remove(network);
        }
        match self.inner.bans.write() {
            Ok(mut bans) => {
                let before = bans.len();
                bans.retain(|b| b.network != *network);
                bans.len() != before
            }
            Err(_) => false,
        }
    }

    /// Replaces the bans with the store's list (the store is the truth, and the admin CLI
    /// writes there). Bans the guard added in the last seconds are kept even if the list
    /// predates them. Returns the networks whose ban disappeared, and the ones that are new.
    pub fn set_bans(&self, bans: Vec<Ban>, now: Now) -> (Vec<IpNet>, Vec<Ban>) {
        const GRACE: Duration = Duration::from_secs(5);
        let fresh: Vec<IpNet> = match self.inner.fresh.lock() {
            Ok(mut fresh) => {
                fresh.retain(|_, added| now.mono.duration_since(*added) < GRACE);
                fresh.keys().copied().collect()
            }
            Err(_) => Vec::new(),
        };
        let Ok(mut current) = self.inner.bans.write() else { return (Vec::new(), Vec::new()) };
        let mut next: Vec<Ban> = bans;
        for kept in current.iter().filter(|b| fresh.contains(&b.network)) {
            if !next.iter().any(|b| b.network == kept.network) {
                next.push(kept.clone());
            }
        }
        let gone: Vec<IpNet> =
            current.iter().map(|b| b.network).filter(|n| !next.iter().any(|b| b.network == *n)).collect();
        let added: Vec<Ban> =
            next.iter().filter(|b| !current.iter().any(|c| c.network == b.network)).cloned().collect();
        *current = next;
        drop(current);
        if !added.is_empty() {
            self.revoke_where(|live| added.iter().any(|b| b.covers(live.ip, now.wall)));
        }
        (gone, added)
    }

    /// Forgets bans whose time is up; returns them.
    pub fn expire_bans(&self, now: SystemTime) -> Vec<Ban> {
        let Ok(mut bans) = self.inner.bans.write() else { return Vec::new() };
        let (expired, active): (Vec<Ban>, Vec<Ban>) = bans.drain(..).partition(|b| b.until.is_some_and(|u| u <= now));
        *bans = active;
        expired
    }

    pub fn bans(&self) -> Vec<Ban> {
        self.inner.bans.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Seeds how often each source was banned before (from the store's history), so that
    /// repeat offenders get longer bans across restarts.
    pub fn set_offences(&self, offences: &[(IpNet, u32)], now: Now) {
        let Ok(mut sources) = self.inner.sources.lock() else { return };
        for (network, count) in offences {
            let source = Source::of(network.addr());
            if source.network() == *network {
                let record =
                    sources.touch(&source, now.mono, || SourceRecord { failures: VecDeque::new(), offences: 0 });
                record.offences = record.offences.max(*count);
            }
        }
    }

    /// Whether an administrator may ban `network`: see [`Policy::may_ban`].
    pub fn may_ban(&self, network: &IpNet) -> bool {
        self.policy().may_ban(network)
    }

    /// A message is about to be accepted from `account` for `recipients` recipients.
    pub fn message(&self, account: i64, recipients: u32, now: Now) -> Result<(), LimitHit> {
        let policy = self.policy();
        let s = &policy.settings;
        let hour = Duration::from_secs(3600);
        let Ok(mut sending) = self.inner.sending.lock() else { return Ok(()) };
        let expired = |m: &SentInMinute| now.mono.duration_since(m.start) >= hour + SENDING_BUCKET;
        if sending.len() > s.max_tracked {
            sending.retain(|_, w| w.minutes.back().is_some_and(|m| !expired(m)));
        }
        let window = sending.entry(account).or_default();
        while window.minutes.front().is_some_and(expired) {
            window.minutes.pop_front();
        }
        let messages: u32 = window.minutes.iter().map(|m| m.messages).sum();
        let sent: u32 = window.minutes.iter().map(|m| m.recipients).sum();
        let limit = if messages >= s.max_messages_per_hour {
            Some(SendingLimit::Messages(s.max_messages_per_hour))
        } else if sent.saturating_add(recipients) > s.max_recipients_per_hour {
            Some(SendingLimit::Recipients(s.max_recipients_per_hour))
        } else {
            None
        };
        match limit {
            Some(limit) => {
                let first = !std::mem::replace(&mut window.limited, true);
                Err(LimitHit { limit, first })
            }
            None => {
                window.limited = false;
                match window.minutes.back_mut() {
                    Some(m) if now.mono.duration_since(m.start) < SENDING_BUCKET => {
                        m.messages += 1;
                        m.recipients = m.recipients.saturating_add(recipients);
                    }
                    _ => window.minutes.push_back(SentInMinute { start: now.mono, messages: 1, recipients }),
                }
                Ok(())
            }
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

    fn revoke_where(&self, doomed: impl Fn(&Live) -> bool) -> usize {
        let Ok(c) = self.inner.connections.lock() else { return 0 };
        let mut revoked = 0;
        for live in c.live.values().filter(|l| doomed(l)) {
            live.revoke.cancel();
            revoked += 1;
        }
        revoked
    }

    /// Drops failure records older than the ban window (call now and then).
    pub fn forget_old(&self, now: Now) {
        let window = self.policy().settings.ban_window;
        if let Some(cutoff) = now.mono.checked_sub(window) {
            if let Ok(mut a) = self.inner.accounts.lock() {
                a.forget_before(cutoff);
            }
        }
        // Sources keep their offence count longer: a day, to double repeat bans.
        if let Some(cutoff) = now.mono.checked_sub(Duration::from_secs(86_400)) {
            if let Ok(mut s) = self.inner.sources.lock() {
                s.forget_before(cutoff);
            }
        }
    }
}

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
