//! What the nodes sharing one database coordinate through (see
//! `portcullis_store::CoordinationStore`): mailbox change announcements for IDLE across nodes
//! and signals between nodes (LISTEN/NOTIFY, in `listen`), IMAP session slots and POP3
//! maildrop locks counted across nodes (rows with an owner and an expiry, in `slots`), and
//! which nodes are alive and signals too large for a NOTIFY (in `nodes`).
//!
//! Each [`PgStore`] is one node: it gets a node id when it connects (host name, process id and
//! a per-process counter, so two handles in one process are two nodes, as tests need), keeps
//! one LISTEN connection of its own (not from the pool: LISTEN belongs to one database session,
//! and a pooled connection goes back to the pool) and a heartbeat task renewing its rows (its
//! slots and locks, and, once something on the node listens to signals, its row among the live
//! nodes). Both tasks stop with [`CoordinationStore::close`] or when the store is dropped, and
//! the node's row goes.

pub(crate) mod listen;
mod nodes;
mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use portcullis_store::{
    AccountId, CoordinationStore, MailboxChange, MaildropLock, NodeSignal, SessionSlot, Signals, StoreError, Watchers,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::tls::RustlsConnector;
use crate::{Db, PgStore};

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
    /// Whether something on this node listens to signals (a server's store follower does, the
    /// CLI does not): only then is the node listed among the live nodes, expected to answer.
    answering: Arc<AtomicBool>,
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
            answering: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Opens the LISTEN connection (so that a change committed once this returns is never
    /// missed) and starts the tasks that keep it and the heartbeat going.
    pub(crate) async fn start(&self, pool: &Pool) -> Result<(), StoreError> {
        let listener = listen::Listener::new(
            self.node.clone(),
            self.config.clone(),
            self.tls.clone(),
            self.watchers.clone(),
            self.signals.clone(),
            pool.clone(),
        );
        let first = listener.connect().await?;
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(listener.run(first)));
        tasks.push(tokio::spawn(slots::heartbeat(
            pool.clone(),
            self.node.clone(),
            self.live.clone(),
            self.answering.clone(),
        )));
        Ok(())
    }

    /// Stops both tasks (the LISTEN connection closes with its task) and deletes the node's
    /// row among the live nodes, if it has one.
    pub(crate) fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.is_empty() {
            return; // Never started, or stopped already.
        }
        for task in tasks.drain(..) {
            task.abort();
        }
        if self.answering.load(Ordering::Relaxed) {
            nodes::forget(self.config.clone(), self.tls.clone(), self.node.clone());
        }
    }

    /// This node's id, as its slot and lock rows name it.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Queues the announcement of `changes` to the other nodes in `tx` (see
    /// [`Announcer::notify_in`]).
    pub(crate) async fn notify_in(&self, tx: &Transaction<'_>, changes: &[MailboxChange]) -> Result<(), StoreError> {
        self.announcer().notify_in(tx, changes).await
    }

    /// Commits `tx`, whose writes made `changes` (queued with [`Coordinator::notify_in`] here),
    /// and announces them to this node's sessions before returning: the caller's `Ok` means
    /// durable, and a session of this node that looks right after hears of it.
    pub(crate) async fn commit_announcing(
        &self,
        tx: Transaction<'_>,
        changes: &[MailboxChange],
    ) -> Result<(), StoreError> {
        self.notify_in(&tx, changes).await?;
        tx.commit().await.db()?;
        self.watchers.announce(changes);
        Ok(())
    }

    /// The channel and node id a NOTIFY sent from SQL must carry for the other nodes to hear it
    /// (see `listen`; `mail::flags::store_system_flags` builds the payload in SQL).
    pub(crate) fn notify_target(&self) -> (&'static str, &str) {
        (listen::CHANNEL, &self.node)
    }

    /// Tells this node's sessions of `changes` once their transaction has committed, when its
    /// NOTIFY was sent from SQL rather than through [`Coordinator::commit_announcing`].
    pub(crate) fn announce_committed(&self, changes: &[MailboxChange]) {
        self.watchers.announce(changes);
    }

    /// What a task of its own (the delivery batcher) needs to announce changes as this node.
    pub(crate) fn announcer(&self) -> Announcer {
        Announcer { node: self.node.clone(), watchers: self.watchers.clone() }
    }
}

/// Every change of a transaction announced in one statement.
const NOTIFY_CHANGES: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p";

/// The announcing half of a [`Coordinator`], owned by a task that outlives a borrow of the store.
#[derive(Clone)]
pub(crate) struct Announcer {
    node: String,
    watchers: Arc<Watchers>,
}

impl Announcer {
    /// Queues the announcement of `changes` to the other nodes in `tx` (one round trip for
    /// all of them): PostgreSQL sends a NOTIFY when its transaction commits, never for one
    /// rolled back, so no node hears of a change it cannot read yet.
    pub(crate) async fn notify_in(&self, tx: &impl GenericClient, changes: &[MailboxChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let payloads: Vec<String> = changes.iter().map(|c| listen::payload(c, &self.node)).collect();
        let notify = tx.prepare_cached(NOTIFY_CHANGES).await.db()?;
        tx.execute(&notify, &[&listen::CHANNEL, &payloads]).await.db()?;
        Ok(())
    }

    /// Prepares [`Announcer::notify_in`]'s statement on `client` ahead of time, for a caller
    /// that pipelines the NOTIFY with the COMMIT behind it: a statement still to prepare would
    /// send its Parse first and run only after the COMMIT, outside the transaction.
    pub(crate) async fn prepare(&self, client: &impl GenericClient) -> Result<(), StoreError> {
        client.prepare_cached(NOTIFY_CHANGES).await.db()?;
        Ok(())
    }

    /// Tells this node's sessions of `changes`, once their transaction has committed.
    pub(crate) fn announce_committed(&self, changes: &[MailboxChange]) {
        self.watchers.announce(changes);
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` to every node when `tx` commits: for every write other nodes must follow at
/// once (bans, app password revocations, credential changes).
pub(crate) async fn notify_signal(tx: &Transaction<'_>, signal: &NodeSignal) -> Result<(), StoreError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&listen::SIGNAL_CHANNEL, &signal.payload()]).await.db()?;
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
        nodes::publish(&self.pool, &signal).await
    }

    fn signals(&self) -> broadcast::Receiver<NodeSignal> {
        let receiver = self.coordination.signals.subscribe();
        // From the first subscriber on, the node hears questions and is listed as alive (at
        // once here, then by its heartbeat). Subscribed first, so it hears any question asked
        // once it is listed.
        if !self.coordination.answering.swap(true, Ordering::Relaxed) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (pool, node) = (self.pool.clone(), self.coordination.node.clone());
                runtime.spawn(async move { nodes::renew(&pool, &node).await });
            }
        }
        receiver
    }

    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        nodes::live(&self.pool).await
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
