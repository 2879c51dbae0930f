//! What several sessions (and, on a shared database, several nodes) coordinate through: change
//! announcements for IDLE, IMAP session slots, POP3 maildrop locks.

use async_trait::async_trait;

use crate::*;

/// Coordination between sessions and nodes.
#[async_trait]
pub trait CoordinationStore: Send + Sync + 'static {
    /// Changes to the account's mailboxes, announced after they commit. A receiver that
    /// lags gets `RecvError::Lagged`, which means "something changed": writers never wait.
    fn watch(&self, account: AccountId) -> tokio::sync::broadcast::Receiver<MailboxChange>;

    /// A slot among at most `max` concurrent IMAP sessions of the account; `None` when all
    /// are taken.
    async fn acquire_session(&self, account: AccountId, max: usize) -> Result<Option<SessionSlot>, StoreError>;

    /// Exclusive access to an account's maildrop for a POP3 session (RFC 1939 §8);
    /// `None` when another session holds it.
    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError>;

    /// Finishes every queued write and releases the database; later calls fail.
    fn close(&self);
}
