//! Domains, accounts and everything that opens them: passwords, SCRAM keys, app passwords, TOTP,
//! server secrets.

use async_trait::async_trait;

use crate::*;

/// Domains, accounts and their credentials.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError>;

    /// Refuses while the domain has accounts or aliases.
    async fn remove_domain(&self, name: &str) -> Result<(), StoreError>;

    async fn domains(&self) -> Result<Vec<String>, StoreError>;

    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError>;

    /// Creates the account with its default mailboxes, subscribed to them.
    async fn add_account(
        &self,
        address: &str,
        secrets: &PasswordSecrets,
        quota: Quota,
    ) -> Result<AccountId, StoreError>;

    /// Removes the account and all its mail.
    async fn remove_account(&self, address: &str) -> Result<(), StoreError>;

    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError>;

    /// Sets the argon2id hash and the SCRAM keys together.
    async fn set_password(&self, address: &str, secrets: &PasswordSecrets) -> Result<(), StoreError>;

    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError>;

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError>;

    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError>;

    /// What SCRAM needs about the account (its keys, if it has them yet); `None` without an
    /// account.
    async fn scram_keys(&self, address: &str) -> Result<Option<ScramCredentials>, StoreError>;

    /// The credentials generation of each of `accounts` that still exists (see
    /// [`Credentials::generation`]): an account missing from the answer is gone.
    async fn credentials_generations(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>, StoreError>;

    async fn add_app_password(
        &self,
        address: &str,
        name: &str,
        digest: &[u8],
        scopes: u8,
        expires: Option<i64>,
    ) -> Result<AppPassword, StoreError>;

    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, StoreError>;

    /// Revokes by name; whether there was one.
    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<bool, StoreError>;

    /// The app password of the account `address` with this digest, revoked or not.
    async fn find_app_password(&self, address: &str, digest: &[u8]) -> Result<Option<AppPassword>, StoreError>;

    async fn app_password_used(&self, id: i64, when: i64, ip: &str) -> Result<(), StoreError>;

    /// Which of `ids` no longer open anything at `now`: revoked, expired, or gone with their
    /// account (so that sessions opened with them can be closed).
    async fn unusable_app_passwords(&self, ids: &[i64], now: i64) -> Result<Vec<i64>, StoreError>;

    async fn totp(&self, address: &str) -> Result<Option<Totp>, StoreError>;

    /// Stores a secret (enabled or pending confirmation), or clears TOTP with `None`; also
    /// replaces the recovery codes (digests).
    async fn set_totp(
        &self,
        address: &str,
        secret: Option<&[u8]>,
        enabled: bool,
        recovery: &[Vec<u8>],
    ) -> Result<(), StoreError>;

    /// Accepts time step `step` once: false if a step at or after it was already used.
    async fn use_totp_step(&self, account: AccountId, step: i64) -> Result<bool, StoreError>;

    /// Uses up a recovery code; false if it is not one (or was used).
    async fn use_recovery_code(&self, account: AccountId, digest: &[u8]) -> Result<bool, StoreError>;

    /// Counts a wrong code; the account's TOTP locks when the count reaches `lock_at`.
    /// Whether this very failure locked it.
    async fn totp_failed(&self, account: AccountId, lock_at: u32) -> Result<bool, StoreError>;

    /// Clears the wrong codes and the lock (a right code, a recovery code, the operator);
    /// whether it was locked.
    async fn totp_unlock(&self, account: AccountId) -> Result<bool, StoreError>;

    /// The server's secret called `name`, created from `fresh` the first time it is asked
    /// for, and the same ever after (across restarts, and for every node of one store).
    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
}
