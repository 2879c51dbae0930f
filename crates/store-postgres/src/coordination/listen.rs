//! Mailbox changes from every node (docs/architecture.md §6.3): each writing transaction sends
//! `pg_notify('portcullis_mailbox', '{account} {mailbox} {modseq} {node}')` (the one definition
//! of the channel and its payload is here), PostgreSQL delivers it at commit to every session
//! that LISTENs, and each node's one LISTEN connection feeds what it hears from the *other*
//! nodes into the in-process hub (`Watchers`) its IMAP sessions subscribe to. A node announces
//! its own changes itself, right after its commit returns and before its caller is answered
//! (as SQLite's backend does), so its own notifications, heard later, are dropped.
//! Signals between nodes (`NodeSignal`: bans, revoked app passwords, changed credentials,
//! session kills, session lists) come the same way on a channel of their own,
//! [`SIGNAL_CHANNEL`], into the node's `Signals` (a node's own signals included: it acts on
//! them as any other node does); one too large for a NOTIFY comes as the name of its row
//! (see `nodes`), read from the pool.
//!
//! The connection is the node's own, outside the pool, kept for the store's life. If it drops
//! (the server restarted, a network cut, a failover), notifications sent meanwhile are lost
//! for good: so after every reconnect, once LISTEN is back, every mailbox of every watched
//! account is announced with its current HIGHESTMODSEQ, and the sessions re-read (a session
//! with nothing new finds nothing). Signals lost in a gap cannot be replayed, so the node is
//! then given `NodeSignal::Resync`, on which it reads bans, app passwords and credentials at
//! once as if each kind had been signalled (its follower would otherwise find them at its next
//! poll, within a second); a kill nobody answered is reported as only signalled.
//! A silent cut is found by a ping every [`PING_EVERY`].

use std::time::Duration;

use deadpool_postgres::Pool;
use portcullis_store::{AccountId, MailboxChange, NodeSignal, Signals, StoreError, Watchers};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};

use super::nodes;
use crate::tls::RustlsConnector;
use crate::{backend, Db};

/// The channel every node LISTENs on.
pub(crate) const CHANNEL: &str = "portcullis_mailbox";
/// The channel signals between nodes travel on (payloads: `NodeSignal::payload`).
pub(crate) const SIGNAL_CHANNEL: &str = "portcullis_signal";

/// How often the connection is checked, and how long the check may take.
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection backoff: doubling from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// The NOTIFY payload of a change made by `node` (a node id has no spaces: see `node_id`).
pub(crate) fn payload(change: &MailboxChange, node: &str) -> String {
    format!("{} {} {} {node}", change.account, change.mailbox, change.modseq)
}

/// A payload back into a change and the node that made it; `None` for anything else (anyone
/// with access to the database may NOTIFY on the channel: a malformed payload is dropped, not
/// trusted).
pub(crate) fn parse_payload(text: &str) -> Option<(MailboxChange, &str)> {
    let mut parts = text.split(' ');
    let change = MailboxChange {
        account: parts.next()?.parse().ok()?,
        mailbox: parts.next()?.parse().ok()?,
        modseq: parts.next()?.parse().ok()?,
    };
    let node = parts.next().filter(|n| !n.is_empty())?;
    parts.next().is_none().then_some((change, node))
}

/// What keeps a node's LISTEN connection.
pub(crate) struct Listener {
    /// This node's id: its own notifications are not announced again.
    node: String,
    config: tokio_postgres::Config,
    tls: RustlsConnector,
    watchers: Arc<Watchers>,
    signals: Arc<Signals>,
    /// For the re-announcement after a reconnect (any connection will do for that read).
    pool: Pool,
}

/// A LISTENing connection: the client (dropping it closes the connection) and the task
/// that reads the connection and announces what it hears; the task ends when it closes.
pub(crate) struct Listening {
    client: Client,
    reader: JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Listener {
    pub(crate) fn new(
        node: String,
        mut config: tokio_postgres::Config,
        tls: RustlsConnector,
        watchers: Arc<Watchers>,
        signals: Arc<Signals>,
        pool: Pool,
    ) -> Listener {
        // Named apart from the pool's connections in pg_stat_activity.
        config.application_name("portcullis-listen");
        Listener { node, config, tls, watchers, signals, pool }
    }

    /// Opens the connection and LISTENs.
    pub(crate) async fn connect(&self) -> Result<Listening, StoreError> {
        let (client, mut connection) = self.config.connect(self.tls.clone()).await.db()?;
        let watchers = self.watchers.clone();
        let node = self.node.clone();
        let signals = self.signals.clone();
        let pool = self.pool.clone();
        // Reading the connection also drives the client's queries (LISTEN, the pings).
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if let AsyncMessage::Notification(n) = message {
                    if n.channel() == CHANNEL {
                        match parse_payload(n.payload()) {
                            Some((change, from)) if from != node => watchers.announce(&[change]),
                            _ => {}
                        }
                    } else if n.channel() == SIGNAL_CHANNEL {
                        if let Some(id) = nodes::stored_id(n.payload()) {
                            // Too large for a NOTIFY: read from its row, off this task so
                            // that the notifications behind it are not held up.
                            let (pool, signals) = (pool.clone(), signals.clone());
                            tokio::spawn(async move {
                                if let Some(signal) = nodes::stored(&pool, id).await {
                                    signals.deliver(signal);
                                }
                            });
                        } else if let Some(signal) = NodeSignal::parse(n.payload()) {
                            // Malformed payloads (anyone may NOTIFY) are dropped.
                            signals.deliver(signal);
                        }
                    }
                }
            }
        });
        let listening = Listening { client, reader };
        listening.client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {SIGNAL_CHANNEL}")).await.db()?;
        Ok(listening)
    }

    /// Keeps the connection for the store's life: waits for it to fail, then reconnects with
    /// backoff and re-announces (see the module comment).
    pub(crate) async fn run(self, first: Listening) {
        let mut current = first;
        loop {
            self.until_lost(&mut current).await;
            drop(current);
            let mut wait = FIRST_RETRY;
            current = loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LAST_RETRY);
                let Ok(listening) = self.connect().await else { continue };
                // LISTEN is back: what changed while it was not is announced now. If that
                // read fails, start over rather than go on with changes unannounced.
                if self.announce_watched().await.is_ok() {
                    // And the signals sent meanwhile: everything is to be read again.
                    self.signals.deliver(NodeSignal::Resync);
                    break listening;
                }
            };
        }
    }

    /// Returns when the connection closed or stopped answering.
    async fn until_lost(&self, listening: &mut Listening) {
        loop {
            tokio::select! {
                _ = &mut listening.reader => return,
                _ = tokio::time::sleep(PING_EVERY) => {
                    let ping = tokio::time::timeout(PING_TIMEOUT, listening.client.simple_query(""));
                    if !matches!(ping.await, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// Announces every mailbox of every watched account at its current HIGHESTMODSEQ.
    async fn announce_watched(&self) -> Result<(), StoreError> {
        let accounts: Vec<AccountId> = self.watchers.watched();
        if accounts.is_empty() {
            return Ok(());
        }
        let client =
            self.pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
        let rows = client
            .query("SELECT account_id, id, highestmodseq FROM mailboxes WHERE account_id = ANY($1)", &[&accounts])
            .await
            .map_err(|e| backend(&e))?;
        let changes: Vec<MailboxChange> = rows
            .iter()
            .map(|r| MailboxChange { account: r.get(0), mailbox: r.get(1), modseq: r.get::<_, i64>(2) as u64 })
            .collect();
        self.watchers.announce(&changes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_anything_else_is_dropped() {
        let change = MailboxChange { account: 7, mailbox: 42, modseq: 1 << 40 };
        assert_eq!(payload(&change, "mx1:12:3"), "7 42 1099511627776 mx1:12:3");
        assert_eq!(parse_payload(&payload(&change, "mx1:12:3")), Some((change, "mx1:12:3")));
        for bad in [
            "",
            "7",
            "7 42",
            "7 42 1",
            "7 42 1 ",
            "7 42 x n",
            "7 42 1 n 9",
            "7  42 1 n",
            " 7 42 1 n",
            "7 42 -1 n",
            "a b c n",
        ] {
            assert_eq!(parse_payload(bad), None, "{bad:?}");
        }
    }
}
