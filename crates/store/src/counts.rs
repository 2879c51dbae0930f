//! The guard's counts held in memory, for a backend whose one process is the only one that
//! counts (SQLite: one node). The same contracts as [`GuardStore`](crate::GuardStore)'s
//! `add_sent`, `add_auth_failure`, `add_auth_attempt`, `forget_auth_failures`, `take_account_failures` and the
//! counts' cutoff of `prune_guard_history`, without a write per fact: a count kept in the
//! database's one writer waited for that writer's sync, which cost SQLite up to half its
//! submission rate (docs/architecture.md §6.5). A restart forgets them.
//!
//! Memory is bounded twice: buckets older than the prune cutoff go, and each map (accounts
//! sending, sources failing, accounts failing, sources attempting, accounts attempted) tracks at most `max_keys` keys. At the cap the
//! tenth counted longest ago is forgotten at once (amortised: one selection per tenth of the
//! cap inserted), before the new key goes in: the key being counted is never the one
//! forgotten, so its answer is never short; a forgotten key starts afresh if it comes back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use crate::{AccountId, AttemptCounts, SentCounts};

/// One key's buckets, ascending by minute (a window is at most an hour: a few dozen).
#[derive(Debug, Default)]
struct Buckets<T> {
    minutes: Vec<(i64, T)>,
    /// When it was last counted (an operation number), for the cap's choice.
    touched: u64,
}

impl<T: Copy + Default> Buckets<T> {
    /// The bucket for `minute`, made if absent, kept in order.
    fn bucket(&mut self, minute: i64) -> &mut T {
        let at = match self.minutes.binary_search_by_key(&minute, |(m, _)| *m) {
            Ok(at) => at,
            Err(at) => {
                self.minutes.insert(at, (minute, T::default()));
                at
            }
        };
        &mut self.minutes[at].1
    }

    fn from(&self, since: i64) -> impl Iterator<Item = &T> {
        self.minutes.iter().filter(move |(m, _)| *m >= since).map(|(_, v)| v)
    }
}

/// A map of keys to buckets that tracks at most `cap` keys (see the module's documentation).
#[derive(Debug)]
struct Tracked<K, T> {
    keys: HashMap<K, Buckets<T>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, T: Copy + Default> Tracked<K, T> {
    fn new(cap: usize) -> Self {
        Tracked { keys: HashMap::new(), cap: cap.max(1) }
    }

    /// `key`'s buckets, made if absent (after making room), marked counted at `tick`.
    fn touch(&mut self, key: &K, tick: u64) -> &mut Buckets<T> {
        if !self.keys.contains_key(key) && self.keys.len() >= self.cap {
            self.forget_least_recent();
        }
        let buckets = self.keys.entry(key.clone()).or_insert_with(|| Buckets { minutes: Vec::new(), touched: tick });
        buckets.touched = tick;
        buckets
    }

    /// Forgets the tenth of the keys counted longest ago (at least one).
    fn forget_least_recent(&mut self) {
        let mut times: Vec<u64> = self.keys.values().map(|b| b.touched).collect();
        if times.is_empty() {
            return;
        }
        let drop = (self.cap / 10).clamp(1, times.len());
        let (_, cutoff, _) = times.select_nth_unstable(drop - 1);
        // Operation numbers are unique per key, so exactly `drop` keys are at or below it.
        let cutoff = *cutoff;
        self.keys.retain(|_, b| b.touched > cutoff);
    }

    fn prune(&mut self, before: i64) {
        self.keys.retain(|_, b| {
            b.minutes.retain(|(m, _)| *m >= before);
            !b.minutes.is_empty()
        });
    }
}

/// The guard's counts of one process; see the module's documentation.
#[derive(Debug)]
pub struct MemoryCounts {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Operation number, the order in which keys were last counted.
    tick: u64,
    sent: Tracked<AccountId, (i64, i64)>,
    source_failures: Tracked<String, i64>,
    account_failures: Tracked<String, i64>,
    source_attempts: Tracked<String, i64>,
    account_attempts: Tracked<String, i64>,
}

impl MemoryCounts {
    /// Counts that track at most `max_keys` accounts sending, as many sources failing and as
    /// many accounts failing.
    pub fn new(max_keys: usize) -> Self {
        MemoryCounts {
            inner: Mutex::new(Inner {
                tick: 0,
                sent: Tracked::new(max_keys),
                source_failures: Tracked::new(max_keys),
                account_failures: Tracked::new(max_keys),
                source_attempts: Tracked::new(max_keys),
                account_attempts: Tracked::new(max_keys),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain numbers, each update one statement: a panic elsewhere leaves nothing half-made.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tick += 1;
        inner
    }

    /// As [`GuardStore::add_sent`](crate::GuardStore::add_sent).
    pub fn add_sent(&self, account: AccountId, minute: i64, messages: i64, recipients: i64, since: i64) -> SentCounts {
        let mut inner = self.lock();
        let tick = inner.tick;
        let buckets = inner.sent.touch(&account, tick);
        let bucket = buckets.bucket(minute);
        bucket.0 = bucket.0.saturating_add(messages);
        bucket.1 = bucket.1.saturating_add(recipients);
        buckets.from(since).fold(SentCounts::default(), |total, (m, r)| SentCounts {
            messages: total.messages.saturating_add(*m),
            recipients: total.recipients.saturating_add(*r),
        })
    }

    /// As [`GuardStore::add_auth_failure`](crate::GuardStore::add_auth_failure).
    pub fn add_auth_failure(&self, source: &str, account: Option<&str>, minute: i64, since: i64) -> u32 {
        let mut inner = self.lock();
        let tick = inner.tick;
        if let Some(account) = account {
            let failures = inner.account_failures.touch(&account.to_string(), tick).bucket(minute);
            *failures = failures.saturating_add(1);
        }
        let buckets = inner.source_failures.touch(&source.to_string(), tick);
        let failures = buckets.bucket(minute);
        *failures = failures.saturating_add(1);
        let total = buckets.from(since).fold(0i64, |total, n| total.saturating_add(*n));
        total.clamp(0, u32::MAX as i64) as u32
    }

    /// As [`GuardStore::add_auth_attempt`](crate::GuardStore::add_auth_attempt).
    pub fn add_auth_attempt(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        attempts: i64,
        since: i64,
    ) -> AttemptCounts {
        let mut inner = self.lock();
        let tick = inner.tick;
        let add = |tracked: &mut Tracked<String, i64>, key: &str| {
            let buckets = tracked.touch(&key.to_string(), tick);
            let bucket = buckets.bucket(minute);
            *bucket = bucket.saturating_add(attempts);
            let total = buckets.from(since).fold(0i64, |total, n| total.saturating_add(*n));
            total.clamp(0, u32::MAX as i64) as u32
        };
        let source = add(&mut inner.source_attempts, source);
        let account = account.map_or(0, |account| add(&mut inner.account_attempts, account));
        AttemptCounts { source, account }
    }

    /// As [`GuardStore::forget_auth_failures`](crate::GuardStore::forget_auth_failures).
    pub fn forget_auth_failures(&self, source: &str) {
        let mut inner = self.lock();
        inner.source_failures.keys.remove(source);
        inner.source_attempts.keys.remove(source);
    }

    /// As [`GuardStore::take_account_failures`](crate::GuardStore::take_account_failures).
    pub fn take_account_failures(&self, account: &str) -> u32 {
        let taken = self.lock().account_failures.keys.remove(account);
        let total = taken.map_or(0, |b| b.minutes.iter().fold(0i64, |total, (_, n)| total.saturating_add(*n)));
        total.clamp(0, u32::MAX as i64) as u32
    }

    /// Forgets every bucket before the minute `before` (the counts' cutoff of
    /// [`GuardStore::prune_guard_history`](crate::GuardStore::prune_guard_history)).
    pub fn prune(&self, before: i64) {
        let mut inner = self.lock();
        inner.sent.prune(before);
        inner.source_failures.prune(before);
        inner.account_failures.prune(before);
        inner.source_attempts.prune(before);
        inner.account_attempts.prune(before);
    }

    /// How many keys are tracked: accounts sending, sources failing, accounts failing (the
    /// attempts' maps are bounded the same way).
    pub fn tracked(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.sent.keys.len(), inner.source_failures.keys.len(), inner.account_failures.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(messages: i64, recipients: i64) -> SentCounts {
        SentCounts { messages, recipients }
    }

    #[test]
    fn sending_adds_up_per_account_over_the_buckets_asked_for() {
        let counts = MemoryCounts::new(100);
        assert_eq!(counts.add_sent(1, 6_000, 1, 3, 2_400), sent(1, 3));
        assert_eq!(counts.add_sent(1, 6_000, 1, 2, 2_400), sent(2, 5), "the same bucket adds up");
        assert_eq!(counts.add_sent(1, 6_060, 1, 1, 2_460), sent(3, 6), "and over buckets");
        assert_eq!(counts.add_sent(2, 6_060, 1, 1, 2_460), sent(1, 1), "per account");
        assert_eq!(counts.add_sent(1, 6_060, -1, -1, 2_460), sent(2, 5), "taken back");
        assert_eq!(counts.add_sent(1, 9_660, 1, 1, 6_060), sent(1, 1), "older buckets are not asked for");
        // A bucket older than the newest (a late take-back) goes in its place, not at the end.
        assert_eq!(counts.add_sent(1, 6_030, 1, 1, 0), sent(4, 7));
        assert_eq!(counts.add_sent(1, 9_660, 0, 0, 6_031), sent(1, 1), "6,060 (taken back) and 9,660 only");
    }

    #[test]
    fn failures_are_counted_per_source_taken_per_account_and_forgotten_on_a_ban() {
        let counts = MemoryCounts::new(100);
        let source = "192.0.2.7/32";
        assert_eq!(counts.add_auth_failure(source, Some("alice@example.org"), 6_000, 5_400), 1);
        assert_eq!(counts.add_auth_failure(source, Some("alice@example.org"), 6_000, 5_400), 2);
        assert_eq!(counts.add_auth_failure(source, None, 6_060, 5_460), 3);
        assert_eq!(counts.add_auth_failure(source, None, 6_660, 6_060), 2, "the bucket of 6,000 is out");
        assert_eq!(counts.take_account_failures("alice@example.org"), 2);
        assert_eq!(counts.take_account_failures("alice@example.org"), 0, "taken once");
        counts.forget_auth_failures(source);
        assert_eq!(counts.add_auth_failure(source, None, 6_660, 0), 1, "a ban starts afresh");
    }

    #[test]
    fn attempts_are_counted_per_source_and_account_taken_back_and_forgotten_on_a_ban() {
        let counts = MemoryCounts::new(100);
        let (a, b) = ("192.0.2.7/32", "2001:db8::/64");
        let both = |source, account| AttemptCounts { source, account };
        assert_eq!(counts.add_auth_attempt(a, Some("alice@example.org"), 6_000, 1, 5_400), both(1, 1));
        assert_eq!(counts.add_auth_attempt(b, Some("alice@example.org"), 6_060, 1, 5_460), both(1, 2));
        assert_eq!(counts.add_auth_attempt(a, None, 6_060, 1, 5_460), both(2, 0), "a name that is no address");
        assert_eq!(counts.add_auth_attempt(b, Some("alice@example.org"), 6_060, -1, 5_460), both(0, 1), "taken back");
        assert_eq!(counts.add_auth_attempt(a, Some("alice@example.org"), 6_660, 1, 6_060), both(2, 1), "6,000 is out");
        counts.forget_auth_failures(a);
        assert_eq!(counts.add_auth_attempt(a, Some("alice@example.org"), 6_660, 1, 0), both(1, 3), "the source's only");
        counts.prune(6_660);
        assert_eq!(counts.add_auth_attempt(b, Some("alice@example.org"), 6_660, 0, 0), both(0, 2));
    }

    #[test]
    fn pruning_drops_old_buckets_and_the_keys_left_empty() {
        let counts = MemoryCounts::new(100);
        counts.add_sent(1, 6_000, 1, 1, 0);
        counts.add_sent(2, 6_000, 1, 1, 0);
        counts.add_sent(2, 6_060, 1, 1, 0);
        counts.add_auth_failure("192.0.2.7/32", Some("carol@example.org"), 6_000, 0);
        counts.prune(6_060);
        assert_eq!(counts.tracked(), (1, 0, 0));
        assert_eq!(counts.add_sent(2, 6_060, 0, 0, 0), sent(1, 1));
        assert_eq!(counts.take_account_failures("carol@example.org"), 0);
    }

    #[test]
    fn at_the_cap_the_keys_counted_longest_ago_go_never_the_one_being_counted() {
        let counts = MemoryCounts::new(20);
        // The source under check fails early, then a botnet of others fills the map.
        assert_eq!(counts.add_auth_failure("203.0.113.1/32", None, 6_000, 0), 1);
        for n in 0..19 {
            counts.add_auth_failure(&format!("198.51.100.{n}/32"), None, 6_000, 0);
        }
        assert_eq!(counts.tracked().1, 20);
        // It keeps failing: counted each time, so it stays among the most recent.
        assert_eq!(counts.add_auth_failure("203.0.113.1/32", None, 6_000, 0), 2);
        for n in 0..1_000 {
            counts.add_auth_failure(&format!("2001:db8:{n:x}::/64"), None, 6_000, 0);
            if n % 5 == 0 {
                assert_eq!(counts.add_auth_failure("203.0.113.1/32", None, 6_000, 0), 3 + n / 5);
            }
            assert!(counts.tracked().1 <= 20, "never more than the cap");
        }
        // A new key at the cap is counted in full: its own answer is never short.
        assert_eq!(counts.add_auth_failure("192.0.2.99/32", None, 6_000, 0), 1);
        assert_eq!(counts.add_auth_failure("192.0.2.99/32", None, 6_000, 0), 2);
        // The first of the botnet was forgotten (it starts afresh if it comes back).
        assert_eq!(counts.add_auth_failure("198.51.100.0/32", None, 6_000, 0), 1);
    }

    #[test]
    fn sending_and_accounts_are_capped_too() {
        let counts = MemoryCounts::new(10);
        for account in 0..100 {
            counts.add_sent(account, 6_000, 1, 1, 0);
            counts.add_auth_failure("192.0.2.7/32", Some(&format!("u{account}@example.org")), 6_000, 0);
        }
        let (sending, sources, accounts) = counts.tracked();
        assert!(sending <= 10 && accounts <= 10, "{sending} {accounts}");
        assert_eq!(sources, 1);
        assert_eq!(counts.add_auth_failure("192.0.2.7/32", None, 6_000, 0), 101, "the one source keeps its count");
    }
}
