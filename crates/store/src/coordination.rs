//! What several sessions (and, on a shared database, several nodes) coordinate through: change
//! announcements for IDLE, signals between nodes, IMAP session slots, POP3 maildrop locks.

use async_trait::async_trait;

use crate::*;

/// Coordination between sessions and nodes.
#[async_trait]
pub trait CoordinationStore: Send + Sync + 'static {
    /// Changes to the account's mailboxes, announced after they commit. A receiver that
    /// lags gets `RecvError::Lagged`, which means "something changed": writers never wait.
    fn watch(&self, account: AccountId) -> tokio::sync::broadcast::Receiver<MailboxChange>;

    /// This handle's node id (see [`crate::new_node_id`]): what [`NodeSignal::KillSession`]
    /// names, and what a PostgreSQL node's slot and lock rows name.
    fn node(&self) -> &str;

    /// Sends `signal` to every node sharing the store, this one included, once it is
    /// published (PostgreSQL: NOTIFY, delivered at commit). The store publishes the signals of
    /// its own writes itself (bans, app password revocations, credential changes), so callers
    /// publish only what is not a write: [`NodeSignal::KillSession`] and its answer.
    async fn publish(&self, signal: NodeSignal) -> Result<(), StoreError>;

    /// Every signal delivered from now on. `RecvError::Lagged` means "anything may have
    /// changed". Signals reach only the processes that share the store's notifications (for
    /// SQLite, the one process; the CLI writing the same file is not heard), so a follower keeps
    /// polling as well.
    fn signals(&self) -> tokio::sync::broadcast::Receiver<NodeSignal>;

    /// The ids of the nodes sharing the store that are alive and listen to [`Self::signals`]
    /// (this one, once it does): who should answer a question asked of every node. A store
    /// that only one process serves (SQLite) has this node alone.
    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![self.node().to_string()])
    }

    /// A slot among at most `max` concurrent IMAP sessions of the account; `None` when all
    /// are taken.
    async fn acquire_session(&self, account: AccountId, max: usize) -> Result<Option<SessionSlot>, StoreError>;

    /// Exclusive access to an account's maildrop for a POP3 session (RFC 1939 §8);
    /// `None` when another session holds it.
    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError>;

    /// Finishes every queued write and releases the database; later calls fail.
    fn close(&self);
}
