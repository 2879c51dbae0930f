//! The notification hook (docs/architecture.md §6.3): mailbox changes are announced to the sessions of the
//! account they belong to, after the change committed. In-process broadcast channels now; a
//! PostgreSQL backend will feed the same hub from LISTEN/NOTIFY.
//!
//! One channel per watched account rather than one for everybody: with 10,000 idle sessions,
//! a single channel would wake all of them for every delivery.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::{AccountId, MailboxChange};

/// Changes a session may fall behind by before it sees `Lagged` (and re-reads everything).
const CAPACITY: usize = 64;

/// The hub a backend announces committed changes to and serves `CoordinationStore::watch` from.
/// Public because backends live in crates of their own (SQLite's writer thread feeds it after
/// each commit; PostgreSQL's from LISTEN/NOTIFY).
#[derive(Default)]
pub struct Watchers {
    channels: Mutex<HashMap<AccountId, broadcast::Sender<MailboxChange>>>,
    /// Size of `channels` after the last sweep of channels nobody listens to any more.
    swept: Mutex<usize>,
}

impl Watchers {
    /// A receiver of the account's changes from now on.
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<MailboxChange> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Accounts whose sessions all ended leave a channel behind; sweep them whenever the
        // map has doubled, so the cost stays proportional to the subscriptions made.
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if channels.len() >= 2 * (*swept).max(32) {
            channels.retain(|_, tx| tx.receiver_count() > 0);
            *swept = channels.len();
        }
        channels.entry(account).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// The accounts somebody watches now: after a gap in the announcements (a PostgreSQL
    /// LISTEN connection that dropped), their sessions are told to re-read.
    pub fn watched(&self) -> Vec<AccountId> {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.iter().filter(|(_, tx)| tx.receiver_count() > 0).map(|(account, _)| *account).collect()
    }

    /// Never blocks: a full channel drops its oldest change for the slow receiver.
    pub fn announce(&self, changes: &[MailboxChange]) {
        if changes.is_empty() {
            return;
        }
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            if let Some(tx) = channels.get(&change.account) {
                if tx.send(*change).is_err() {
                    // Nobody listens any more.
                    channels.remove(&change.account);
                }
            }
        }
    }
}
