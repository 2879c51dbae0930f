//! Login attempts, as the guard counts them. Whatever the protocol or mechanism, a login is
//! three facts: it starts ([`Guard::login_attempt`]: the guard says whether its credentials may
//! be checked, and in which lane), then it fails ([`Guard::auth_failed`]) or succeeds
//! ([`Guard::auth_succeeded`]).
//!
//! Counted, for attempts from addresses an account never logged in from (an owner's known
//! address and trusted networks are never counted, limited or banned):
//! - per source, every attempt as it starts, whether it is then checked or refused unchecked
//!   (the hashing queue full, the account's limit reached): `guard.ban_after_attempts` within
//!   the window ban the source, so a storm is banned in seconds even when few of its guesses
//!   can be checked; a success takes its attempt back;
//! - per source, the failures (checked, refused): each makes the client wait longer, and
//!   `guard.ban_after_failures` ban it;
//! - per account, the attempts within the window: beyond `guard.unknown_source_attempts` the
//!   next ones are refused unchecked, however many connections they come over (a delay per
//!   attempt, as before, let parallel connections through all the same).
//!
//! Accounts are counted by their address in its one spelling ([`account_key`]), the same the
//! store looks them up by.
//!
//! All three are also counted by the store for every node together (`shared_counts`): a brute
//! force spread by a balancer over three nodes is banned after `guard.ban_after_failures` (or
//! `guard.ban_after_attempts`) in all, not on each, and an account gets
//! `guard.unknown_source_attempts` attempts from unknown sources over all the nodes. The guard
//! is given the store's counts and decides by the larger of theirs and its own (its own are the
//! floor when the store cannot answer). The store counts an account's attempts refused by its
//! limit too (the guard does not): while attempts keep coming, the account stays limited.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use portcullis_config::{normalize_address, MAX_LOGIN_NAME};

use crate::ban::Ban;
use crate::policy::CheckLane;
use crate::shared_counts::Attempts;
use crate::source::{canonical, Source};
use crate::{doubling, humanize, prune, Guard, Now};

/// What the guard decided about a login attempt before its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Check the credentials, waiting in this lane.
    Check(CheckLane),
    /// Refused unchecked for now (a temporary failure): the account has had
    /// `guard.unknown_source_attempts` attempts from addresses it does not know within the
    /// window.
    AccountLimited,
    /// Refused unchecked: this attempt got its source banned (and perhaps a wider network):
    /// record the bans, tell the operator.
    Banned(Vec<Ban>),
}

/// What the guard decided about a failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before answering the client.
    pub delay: Duration,
    /// Bans just put in force: the source's, and any wider network's it completed.
    pub bans: Vec<Ban>,
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

#[derive(Default)]
pub(crate) struct SourceRecord {
    /// Checked failures within the window (for the delay and the failure ban).
    failures: VecDeque<Instant>,
    /// Attempts on accounts it does not know, within the window (for the attempt ban).
    attempts: VecDeque<Instant>,
}

#[derive(Default)]
pub(crate) struct AccountRecord {
    /// Attempts from addresses it does not know, within the window.
    unknown_attempts: VecDeque<Instant>,
    since_success: u32,
}

/// The name the guard counts an account by: its address in the one spelling the store looks
/// it up by (`Alice@Example.org.` is `alice@example.org`). Names that are no address, which
/// open no account, all count as one.
pub fn account_key(username: &str) -> String {
    if username.len() > MAX_LOGIN_NAME {
        return String::new();
    }
    normalize_address(username).unwrap_or_default()
}

impl Guard {
    /// Whether a login attempt from `ip` is counted at all: not from an owner's address (one
    /// the account knows, `known_source`, or a trusted network). The server asks the store to
    /// count only those, so an owner's logins cost no write.
    pub fn counts_attempt(&self, ip: IpAddr, known_source: bool) -> bool {
        !self.policy().is_owner(canonical(ip), known_source)
    }

    /// A login attempt from `ip` for `username` starts; `known_source`: the store says the
    /// account logged in from there before. Whether and how its credentials may be checked.
    /// `shared`: the attempts within the window on every node, this one included, as the store
    /// counted them when [`Guard::counts_attempt`] said so (`None`: it could not, or was not
    /// asked; this node's own counts decide alone).
    pub fn login_attempt(
        &self,
        ip: IpAddr,
        username: &str,
        known_source: bool,
        shared: Option<Attempts>,
        now: Now,
    ) -> Entry {
        let ip = canonical(ip);
        let policy = self.policy();
        if policy.check_lane(ip, known_source) == CheckLane::Priority {
            return Entry::Check(CheckLane::Priority);
        }
        let s = &policy.settings;
        let source = Source::of(ip);
        let shared = shared.unwrap_or_default();
        let banned = {
            let Ok(mut sources) = self.inner.sources.lock() else { return Entry::Check(CheckLane::Ordinary) };
            let record = sources.touch(&source, now.mono, SourceRecord::default);
            record.attempts.push_back(now.mono);
            prune(&mut record.attempts, now.mono, s.ban_window);
            let count = (record.attempts.len() as u32).max(shared.source);
            if count >= s.ban_after_attempts {
                record.attempts.clear();
                record.failures.clear();
                Some(count)
            } else {
                None
            }
        };
        if let Some(count) = banned {
            let reason = format!("{count} login attempts on unknown accounts within {}", humanize(s.ban_window));
            return Entry::Banned(self.ban_source(source, reason, now));
        }
        let Ok(mut accounts) = self.inner.accounts.lock() else { return Entry::Check(CheckLane::Ordinary) };
        let record = accounts.touch(&account_key(username), now.mono, AccountRecord::default);
        prune(&mut record.unknown_attempts, now.mono, s.ban_window);
        // The store's count includes this attempt; the limit is on those before it.
        let before = (record.unknown_attempts.len() as u32).max(shared.account.saturating_sub(1));
        if before >= s.unknown_source_attempts {
            return Entry::AccountLimited;
        }
        record.unknown_attempts.push_back(now.mono);
        Entry::Check(CheckLane::Ordinary)
    }

    /// A login failed: how long to make the client wait, and whether its source is now
    /// banned. An address the account knows (`known_source`) or a trusted network is never
    /// banned: the owner is never locked out. `shared`: the source's failures within the
    /// window on every node, this one included, as the store counted them (`None`: it could
    /// not; this node's own count decides alone).
    pub fn auth_failed(
        &self,
        ip: IpAddr,
        username: &str,
        known_source: bool,
        shared: Option<u32>,
        now: Now,
    ) -> Failure {
        let ip = canonical(ip);
        let policy = self.policy();
        let s = &policy.settings;
        let source = Source::of(ip);
        let owner = policy.is_owner(ip, known_source);

        if let Ok(mut accounts) = self.inner.accounts.lock() {
            let record = accounts.touch(&account_key(username), now.mono, AccountRecord::default);
            record.since_success = record.since_success.saturating_add(1);
        }

        let count = {
            let Ok(mut sources) = self.inner.sources.lock() else {
                return Failure { delay: s.failure_delay, bans: Vec::new() };
            };
            let record = sources.touch(&source, now.mono, SourceRecord::default);
            record.failures.push_back(now.mono);
            prune(&mut record.failures, now.mono, s.ban_window);
            while record.failures.len() > s.ban_after_failures as usize {
                record.failures.pop_front();
            }
            let count = (record.failures.len() as u32).max(shared.unwrap_or(0).min(s.ban_after_failures));
            if count >= s.ban_after_failures && !owner {
                record.failures.clear();
                record.attempts.clear();
            }
            count
        };
        let delay = doubling(s.failure_delay, count, s.max_failure_delay);
        if count < s.ban_after_failures || owner {
            return Failure { delay, bans: Vec::new() };
        }
        let reason = format!("{count} failed logins within {}", humanize(s.ban_window));
        Failure { delay, bans: self.ban_source(source, reason, now) }
    }

    /// A login succeeded: the account's failures so far are reported (and forgotten), the
    /// attempt no longer counts against its source or the account, and the source is known
    /// as an owner's from now on. `shared`: the account's failures since its last success on
    /// every node, as the store counted (and forgot) them (`None`: it could not).
    pub fn auth_succeeded(
        &self,
        ip: IpAddr,
        username: &str,
        known_source: bool,
        shared: Option<u32>,
        now: Now,
    ) -> Success {
        let ip = canonical(ip);
        let policy = self.policy();
        let source = Source::of(ip);
        let counted = !policy.is_owner(ip, known_source);
        let failures_before = match self.inner.accounts.lock() {
            Ok(mut accounts) => match accounts.get_mut(&account_key(username)) {
                Some(record) => {
                    if counted {
                        record.unknown_attempts.pop_back();
                    }
                    std::mem::take(&mut record.since_success)
                }
                None => 0,
            },
            Err(_) => 0,
        };
        if counted {
            if let Some(record) = self.inner.sources.lock().ok().as_mut().and_then(|s| s.get_mut(&source)) {
                record.attempts.pop_back();
            }
        }
        if let Ok(mut known) = self.inner.known.lock() {
            known.learn(source, now.mono);
        }
        let failures_before = failures_before.max(shared.unwrap_or(0));
        Success { failures_before, after_attack: policy.alarming_failures(failures_before) }
    }

    /// Seeds the owners' addresses from the store: each source (a /32 or /64 as the store
    /// keeps them) with its latest successful login.
    pub fn set_known_sources(&self, sources: &[(IpNet, SystemTime)], now: Now) {
        let Ok(mut known) = self.inner.known.lock() else { return };
        for (network, at) in sources {
            if let Some(source) = Source::exactly(network) {
                let ago = now.wall.duration_since(*at).unwrap_or_default();
                known.learn(source, now.mono.checked_sub(ago).unwrap_or(now.mono));
            }
        }
    }

    /// Whether an account logged in from `source` within `guard.known_source_memory`.
    pub(crate) fn knows(&self, source: Source, now: Now) -> bool {
        let memory = self.policy().settings.known_source_memory;
        self.inner.known.lock().is_ok_and(|k| k.knows(source, now.mono, memory))
    }

    /// Whether an owner's address lies inside `network`.
    pub(crate) fn knows_inside(&self, network: &IpNet, now: Now) -> bool {
        let memory = self.policy().settings.known_source_memory;
        self.inner.known.lock().is_ok_and(|k| k.any_inside(network, now.mono, memory))
    }

    /// Bans `source` for `reason` (longer for each repeat offence), and any wider network that
    /// completes; returns the bans.
    pub(crate) fn ban_source(&self, source: Source, reason: String, now: Now) -> Vec<Ban> {
        let s = &self.policy().settings;
        let network = source.network();
        let offence = self.offence(network, now);
        let length = doubling(s.ban_duration, offence, s.max_ban_duration);
        let ban = Ban { network, until: Some(now.wall + length), reason, offence, manual: false };
        self.add_ban(ban.clone(), now);
        let mut bans = vec![ban];
        bans.extend(self.escalate(&network, now));
        bans
    }
}
