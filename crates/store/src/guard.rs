//! The guard's shared memory: bans (with change numbers so every node follows them), the sources
//! each account logged in from, and the counts every node must share (issue 17): each account's
//! sending over the hour, each source's failed logins and each source's and account's login
//! attempts from unknown addresses, in minute buckets (a row per key and
//! minute, however many facts: an upsert per fact keeps them few). A backend that one process
//! serves (SQLite) may keep the counts in that process's memory ([`crate::counts`]): they are
//! then forgotten on a restart, which the contracts below allow.

use async_trait::async_trait;

use crate::*;

/// The guard's state that outlives a process and is shared by every node (the counts: shared
/// by every node, and outliving a process where several nodes may serve the store).
#[async_trait]
pub trait GuardStore: Send + Sync + 'static {
    /// Every ban the store holds, active or expired (the offence history).
    async fn bans(&self) -> Result<Vec<StoredBan>, StoreError>;

    /// What a server following the bans needs: with `after` `None`, every ban (as
    /// [`GuardStore::bans`]); with `Some(n)`, only the bans added or changed and the networks lifted
    /// after change number `n`. Either way with the last change number, for the next call.
    async fn ban_changes(&self, after: Option<i64>) -> Result<BanChanges, StoreError>;

    /// Adds or replaces the ban on `ban.network` (a new change number).
    async fn put_ban(&self, ban: StoredBan) -> Result<(), StoreError>;

    /// Removes the ban on exactly `network` (a new change number); whether there was one.
    async fn delete_ban(&self, network: &str) -> Result<bool, StoreError>;

    /// Remembers that `account` logged in successfully from `source` at `when`.
    async fn record_login(&self, account: AccountId, source: &str, when: i64) -> Result<(), StoreError>;

    /// Whether the account with this address logged in successfully from `source` at or
    /// after `since` (false for unknown addresses).
    async fn login_known(&self, address: &str, source: &str, since: i64) -> Result<bool, StoreError>;

    /// The sources (as [`GuardStore::record_login`] took them) any account logged in from
    /// successfully at or after `since`, each with the latest such time.
    async fn known_sources(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Counts a message from `account`: adds `messages` and `recipients` to its bucket for the
    /// minute starting at `minute` (Unix seconds; negative numbers take back an addition to the
    /// same bucket), and returns what the account sent in the buckets from `since` on, this
    /// addition included. One step for every node: two nodes adding to one account at once are
    /// ordered, so each total includes every addition committed before it and its own (none is
    /// missed; a total may already include a message another node then takes back).
    async fn add_sent(
        &self,
        account: AccountId,
        minute: i64,
        messages: i64,
        recipients: i64,
        since: i64,
    ) -> Result<SentCounts, StoreError>;

    /// Counts a failed login from `source` (a /32 or /64, as [`GuardStore::record_login`] takes
    /// them), and against `account` (an address in its one spelling) when the name was one, in
    /// the bucket for the minute starting at `minute`; returns the source's failures in the
    /// buckets from `since` on, this one included, ordered as [`GuardStore::add_sent`]'s.
    async fn add_auth_failure(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        since: i64,
    ) -> Result<u32, StoreError>;

    /// Counts a login attempt from `source` (an address the account does not know), and
    /// against `account` (an address in its one spelling) when the name was one: adds `attempts`
    /// to both buckets for the minute starting at `minute` (-1 takes back an attempt counted in
    /// that bucket: it succeeded), and returns both totals in the buckets from `since` on, this
    /// addition included, ordered as [`GuardStore::add_sent`]'s (the account's is 0 without one).
    async fn add_auth_attempt(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        attempts: i64,
        since: i64,
    ) -> Result<AttemptCounts, StoreError>;

    /// Forgets every failure and attempt counted against `source` (it was just banned: its next
    /// counts start afresh; the attempts counted against accounts stay).
    async fn forget_auth_failures(&self, source: &str) -> Result<(), StoreError>;

    /// The failed logins counted against `account` (as [`GuardStore::add_auth_failure`] took
    /// it) and not yet pruned, forgotten in the same step (it logged in successfully).
    async fn take_account_failures(&self, account: &str) -> Result<u32, StoreError>;

    /// Forgets known logins older than `logins_before`, bans that ended (or were lifted)
    /// before `bans_before`, and the counts of buckets before `counts_before`.
    async fn prune_guard_history(
        &self,
        logins_before: i64,
        bans_before: i64,
        counts_before: i64,
    ) -> Result<(), StoreError>;
}

/// What an account sent in a window, as [`GuardStore::add_sent`] counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentCounts {
    pub messages: i64,
    pub recipients: i64,
}

/// Login attempts in a window, as [`GuardStore::add_auth_attempt`] counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    /// The source's attempts on accounts that do not know it.
    pub source: u32,
    /// The account's attempts from sources it does not know.
    pub account: u32,
}
