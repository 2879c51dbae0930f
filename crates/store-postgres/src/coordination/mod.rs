//! What the nodes sharing one database coordinate through (see
//! `portcullis_store::CoordinationStore`): mailbox change announcements for IDLE across nodes
//! and signals between nodes (LISTEN/NOTIFY, in `listen`), and IMAP session slots and POP3 maildrop locks counted across
//! nodes (rows with an owner and an expiry, in `slots`).
//!
//! Each [`PgStore`] is one node: it gets a node id when it connects (host name, process id and
//! a per-process counter, so two handles in one process are two nodes, as tests need), keeps
//! one LISTEN connection of its own (not from the pool: LISTEN belongs to one database session,
//! and a pooled connection goes back to the pool) and a heartbeat task renewing its rows. Both
//! tasks stop with [`CoordinationStore::close`] or when the store is dropped.

mod listen;
mod slots;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use portcullis_store::{
    AccountId, CoordinationStore, MailboxChange, MaildropLock, NodeSignal, SessionSlot, Signals, StoreError, Watchers,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::tls::RustlsConnector;
use crate::{Db, PgStore};

pub(crate) use listen::{CHANNEL, SIGNAL_CHANNEL};

/// One node's coordination state, owned by its [`PgStore`].
pub(crate) struct Coordinator {
    node: String,
    /// The in-process hub the LISTEN connection feeds (the same as SQLite's).
    watchers: Arc<Watchers>,
    /// The in-process end of the signals the LISTEN connection hears.
    signals: Arc<Signals>,
    /// What the heartbeat renews: this node's live slots and locks.
    live: Arc<slots::Live>,
    /// How the LISTEN connection reaches the database (the pool's own settings).
    config: tokio_postgres::Config,
    tls: RustlsConnector,
    /// The LISTEN and heartbeat tasks, once started.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Coordinator {
    pub(crate) fn new(config: tokio_postgres::Config, tls: RustlsConnector) -> Coordinator {
        Coordinator {
            node: portcullis_store::new_node_id(),
            watchers: Arc::new(Watchers::default()),
            signals: Arc::new(Signals::default()),
            live: Arc::new(slots::Live::default()),
            config,
            tls,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Opens the LISTEN connection (so that a change committed once this returns is never
    /// missed) and starts the tasks that keep it and the heartbeat going.
    pub(crate) async fn start(&self, pool: &Pool) -> Result<(), StoreError> {
        let listener = listen::Listener::new(
            self.config.clone(),
            self.tls.clone(),
            self.watchers.clone(),
            self.signals.clone(),
            pool.clone(),
        );
        let first = listener.connect().await?;
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(listener.run(first)));
        tasks.push(tokio::spawn(slots::heartbeat(pool.clone(), self.node.clone(), self.live.clone())));
        Ok(())
    }

    /// Stops both tasks (the LISTEN connection closes with its task).
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// This node's id, as its slot and lock rows name it.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Announces `change` to every node's watchers when `tx` commits (PostgreSQL sends NOTIFY at
/// commit, never for a rolled-back transaction): for every write that changes a mailbox.
pub(crate) async fn notify_change(tx: &Transaction<'_>, change: &MailboxChange) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &listen::payload(change)]).await.db()?;
    Ok(())
}

/// Sends `signal` to every node when `tx` commits: for every write other nodes must follow at
/// once (bans, app password revocations, credential changes).
pub(crate) async fn notify_signal(tx: &Transaction<'_>, signal: &NodeSignal) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&SIGNAL_CHANNEL, &signal.payload()]).await.db()?;
    Ok(())
}

#[async_trait]
impl CoordinationStore for PgStore {
    fn watch(&self, account: AccountId) -> broadcast::Receiver<MailboxChange> {
        self.coordination.watchers.subscribe(account)
    }

    fn node(&self) -> &str {
        self.coordination.node()
    }

    async fn publish(&self, signal: NodeSignal) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("SELECT pg_notify($1, $2)", &[&SIGNAL_CHANNEL, &signal.payload()]).await.db()?;
        Ok(())
    }

    fn signals(&self) -> broadcast::Receiver<NodeSignal> {
        self.coordination.signals.subscribe()
    }

    async fn acquire_session(&self, account: AccountId, max: usize) -> Result<Option<SessionSlot>, StoreError> {
        slots::acquire_session(&self.pool, &self.coordination, account, max).await
    }

    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError> {
        slots::lock_maildrop(&self.pool, &self.coordination, account).await
    }

    fn close(&self) {
        PgStore::close(self);
    }
}
