//! The guard's shared memory: bans (with change numbers so every node follows them) and the sources
//! each account logged in from.

use async_trait::async_trait;

use crate::*;

/// The guard's state that outlives a process and is shared by every node.
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

    /// Forgets known logins older than `logins_before` and bans that ended (or were lifted)
    /// before `bans_before`.
    async fn prune_guard_history(&self, logins_before: i64, bans_before: i64) -> Result<(), StoreError>;
}
