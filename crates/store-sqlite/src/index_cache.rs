//! The message lists of recently selected mailboxes, kept in memory and shared with the
//! sessions that select them (see [`crate::index`]), so that SELECT does not read every
//! message row.
//!
//! Freshness: a list is kept with the mailbox's (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) as of
//! when it was read. Every write that adds, changes or removes messages allocates a new MODSEQ
//! in that mailbox (see `messages.rs`), whichever process makes it (the server or the admin
//! CLI on the same file), and every removal is recorded in `expunged` with it. So each use
//! reads the mailbox row, in the same read transaction as everything it returns, and:
//! - the same three values: the list is current;
//! - the same UIDVALIDITY and a higher HIGHESTMODSEQ: the list is brought forward with the
//!   messages changed and the UIDs expunged since, which the `(mailbox_id, modseq)` indexes
//!   find without reading the rest (O(changes));
//! - anything else (a new UIDVALIDITY, a lower MODSEQ after a restore from backup): the list
//!   is read again in full.
//!
//! Memory: about 13 bytes per message (1.3 MB for 100,000), shared with every session that
//! has the mailbox selected. Lists not used for [`IDLE_FOR`] and no longer shared with a
//! session are dropped, and the least recently used go first when the lists together hold
//! more than [`MAX_MESSAGES`] messages.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::messages;
use portcullis_store::{Mailbox, MailboxId, MessageList, StoreError};

/// Lists unused for this long, and not shared with a session, are dropped.
const IDLE_FOR: Duration = Duration::from_secs(300);
/// How often idle lists are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Messages kept in all lists together (about 13 bytes each): beyond, the least recently used
/// lists go, shared or not.
const MAX_MESSAGES: usize = 4_000_000;

struct Entry {
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: u64,
    messages: MessageList,
    used: Instant,
}

struct Entries {
    map: HashMap<MailboxId, Entry>,
    /// Messages in all lists.
    total: usize,
    swept: Instant,
}

pub(crate) struct IndexCache {
    entries: Mutex<Entries>,
}

/// How a list was obtained (for tests and for the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cached,
    BroughtForward,
    Loaded,
}

impl Default for IndexCache {
    fn default() -> Self {
        IndexCache { entries: Mutex::new(Entries { map: HashMap::new(), total: 0, swept: Instant::now() }) }
    }
}

impl IndexCache {
    /// The messages of `mailbox`, whose row `conn` has just read inside the transaction it is
    /// in: the list matches that row.
    pub(crate) fn messages(&self, conn: &Connection, mailbox: &Mailbox) -> Result<(MessageList, Source), StoreError> {
        let now = Instant::now();
        let cached = {
            let mut entries = self.lock();
            entries.sweep(now);
            entries.map.get_mut(&mailbox.id).map(|e| {
                e.used = now;
                (e.uidvalidity, e.uidnext, e.highestmodseq, e.messages.clone())
            })
        };
        let (list, source) = match cached {
            Some((uidvalidity, uidnext, modseq, list))
                if uidvalidity == mailbox.uidvalidity
                    && uidnext == mailbox.uidnext
                    && modseq == mailbox.highestmodseq =>
            {
                return Ok((list, Source::Cached));
            }
            Some((uidvalidity, uidnext, modseq, mut list))
                if uidvalidity == mailbox.uidvalidity
                    && uidnext <= mailbox.uidnext
                    && modseq < mailbox.highestmodseq =>
            {
                let changes = messages::changes_since_in(conn, mailbox.id, modseq)?;
                if changes.highestmodseq == mailbox.highestmodseq {
                    for message in &changes.changed {
                        list.upsert(message);
                    }
                    let mut expunged = changes.expunged;
                    expunged.dedup();
                    list.remove_uids(&expunged);
                    (list, Source::BroughtForward)
                } else {
                    (load(conn, mailbox.id)?, Source::Loaded)
                }
            }
            _ => (load(conn, mailbox.id)?, Source::Loaded),
        };
        self.lock().put(mailbox, list.clone(), now);
        Ok((list, source))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (lists, messages in them), for tests.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.total)
    }
}

fn load(conn: &Connection, mailbox: MailboxId) -> Result<MessageList, StoreError> {
    Ok(MessageList::from_messages(messages::message_index(conn, mailbox)?))
}

impl Entries {
    /// Keeps `messages` as the list of `mailbox` unless a newer one is already kept (another
    /// session may have read a later state meanwhile).
    fn put(&mut self, mailbox: &Mailbox, messages: MessageList, now: Instant) {
        if let Some(old) = self.map.get(&mailbox.id) {
            if old.uidvalidity == mailbox.uidvalidity && old.highestmodseq > mailbox.highestmodseq {
                return;
            }
        }
        self.total += messages.len();
        let entry = Entry {
            uidvalidity: mailbox.uidvalidity,
            uidnext: mailbox.uidnext,
            highestmodseq: mailbox.highestmodseq,
            messages,
            used: now,
        };
        if let Some(old) = self.map.insert(mailbox.id, entry) {
            self.total -= old.messages.len();
        }
        while self.total > MAX_MESSAGES && self.map.len() > 1 {
            let Some((&oldest, _)) = self.map.iter().filter(|(&id, _)| id != mailbox.id).min_by_key(|(_, e)| e.used)
            else {
                break;
            };
            self.remove(oldest);
        }
    }

    fn remove(&mut self, mailbox: MailboxId) {
        if let Some(old) = self.map.remove(&mailbox) {
            self.total -= old.messages.len();
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < SWEEP_EVERY {
            return;
        }
        self.swept = now;
        let idle: Vec<MailboxId> = self
            .map
            .iter()
            .filter(|(_, e)| now.duration_since(e.used) >= IDLE_FOR && !e.messages.is_shared())
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{mailboxes, schema};
    use portcullis_store::{Flags, MessageIndex};
    use rusqlite::params;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'x', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 7);
             INSERT INTO blobs(id, data) VALUES (1, x'00');",
        )
        .unwrap();
        conn
    }

    /// What the writer does, in SQL: add a message with a new UID and MODSEQ.
    fn add(conn: &Connection, flags: u8) -> u32 {
        let (uid, modseq): (u32, i64) = conn
            .query_row(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = 1
                 RETURNING uidnext - 1, highestmodseq",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        conn.execute(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES (1, ?1, 1, 1, 0, ?2, '', ?3)",
            params![uid, flags, modseq],
        )
        .unwrap();
        uid
    }

    fn row(conn: &Connection) -> Mailbox {
        mailboxes::find(conn, 1, "INBOX").unwrap().unwrap()
    }

    fn fresh(conn: &Connection) -> Vec<MessageIndex> {
        messages::message_index(conn, 1).unwrap()
    }

    fn as_vec(list: &MessageList) -> Vec<MessageIndex> {
        list.iter().map(|m| m.to_index()).collect()
    }

    #[test]
    fn follows_every_kind_of_write() {
        let conn = db();
        let cache = IndexCache::default();
        for _ in 0..3000 {
            add(&conn, 0);
        }
        let (list, source) = cache.messages(&conn, &row(&conn)).unwrap();
        assert_eq!((source, list.len()), (Source::Loaded, 3000));
        let (again, source) = cache.messages(&conn, &row(&conn)).unwrap();
        assert_eq!(source, Source::Cached);
        assert_eq!(again, list);

        // New messages, flag changes, removals, as another process would make them.
        add(&conn, Flags::SEEN);
        let tx = conn.unchecked_transaction().unwrap();
        messages::remove(&tx, 1, &[5, 6, 2999]).unwrap();
        tx.commit().unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        crate::keywords::store_flags(
            &tx,
            1,
            &messages::UidSet::new(&[1, 7, 3001]),
            portcullis_store::FlagOp::Add,
            &Flags { system: Flags::FLAGGED, keywords: vec!["$Important".into()] },
            None,
        )
        .unwrap();
        tx.commit().unwrap();
        let (list, source) = cache.messages(&conn, &row(&conn)).unwrap();
        assert_eq!(source, Source::BroughtForward);
        assert_eq!(as_vec(&list), fresh(&conn));
        assert_eq!(list.len(), 2998);
        assert_eq!(cache.messages(&conn, &row(&conn)).unwrap().1, Source::Cached);
        // The list handed out earlier is what it was.
        assert_eq!(again.len(), 3000);

        // A mailbox deleted and created again under the same id: a new UIDVALIDITY.
        conn.execute_batch(
            "DELETE FROM messages WHERE mailbox_id = 1;
             UPDATE mailboxes SET uidvalidity = 8, uidnext = 1, highestmodseq = 1 WHERE id = 1;
             INSERT INTO blobs(id, data) VALUES (1, x'00');",
        )
        .unwrap();
        add(&conn, 0);
        let (list, source) = cache.messages(&conn, &row(&conn)).unwrap();
        assert_eq!((source, as_vec(&list)), (Source::Loaded, fresh(&conn)));
        assert_eq!(cache.size(), (1, 1));
    }

    #[test]
    fn idle_lists_are_dropped_and_the_total_is_bounded() {
        let conn = db();
        let cache = IndexCache::default();
        add(&conn, 0);
        let (list, _) = cache.messages(&conn, &row(&conn)).unwrap();
        let later = Instant::now() + IDLE_FOR + SWEEP_EVERY;
        {
            let mut entries = cache.lock();
            entries.sweep(later);
        }
        assert_eq!(cache.size(), (1, 1), "kept while a session shares it");
        drop(list);
        {
            let mut entries = cache.lock();
            entries.swept = later - SWEEP_EVERY;
            entries.sweep(later);
        }
        assert_eq!(cache.size(), (0, 0));

        let big = MessageList::from_messages((1..=(MAX_MESSAGES as u32 / 2 + 1)).map(|uid| MessageIndex {
            uid,
            flags: Flags::default(),
            modseq: 1,
        }));
        let mut entries = cache.lock();
        for id in 1..=3 {
            let mailbox = Mailbox {
                id,
                name: String::new(),
                special_use: None,
                uidvalidity: 1,
                uidnext: 1,
                highestmodseq: 1,
                recent_from: 1,
            };
            entries.put(&mailbox, big.clone(), Instant::now());
        }
        assert_eq!(entries.map.len(), 1);
        assert!(entries.map.contains_key(&3));
        assert_eq!(entries.total, big.len());
    }
}
