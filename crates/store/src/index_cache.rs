//! The message lists of recently selected mailboxes, kept in memory and shared with the
//! sessions that select them (see [`crate::MessageList`]), so that SELECT does not read every
//! message row. Backend-free: each backend reads the mailbox row and, when asked, the changes
//! since a MODSEQ or the whole list, in one read transaction; this file decides which of those
//! a SELECT needs and keeps the lists (one implementation for SQLite and PostgreSQL).
//!
//! Freshness: a list is kept with the mailbox's (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) as of
//! when it was read. Every write that adds, changes or removes messages allocates a new MODSEQ
//! in that mailbox, whichever process or node makes it, and every removal is recorded in
//! `expunged` with it. So each use compares the mailbox row, read in the same transaction as
//! everything the SELECT returns, with what the list was kept with ([`IndexCache::lookup`]):
//! - the same three values: the list is current;
//! - the same UIDVALIDITY and a higher HIGHESTMODSEQ: the list is brought forward with the
//!   messages changed and the UIDs expunged since ([`bring_forward`]), which the
//!   `(mailbox_id, modseq)` indexes find without reading the rest (O(changes));
//! - anything else (a new UIDVALIDITY, a lower MODSEQ after a restore from backup): the list
//!   is read again in full.
//!
//! Memory: about 13 bytes per message (1.3 MB for 100,000), shared with every session that
//! has the mailbox selected. Lists not used for `IDLE_FOR` and no longer shared with a
//! session are dropped, and the least recently used go first when the lists together hold
//! more than `MAX_MESSAGES` messages. The (account, name) -> id guesses are forgotten all at
//! once beyond `MAX_NAMES`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{AccountId, Changes, Mailbox, MailboxId, MessageList};

/// Lists unused for this long, and not shared with a session, are dropped.
const IDLE_FOR: Duration = Duration::from_secs(300);
/// How often idle lists are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Messages kept in all lists together (about 13 bytes each): beyond, the least recently used
/// lists go, shared or not.
const MAX_MESSAGES: usize = 4_000_000;

/// What the cache holds for a mailbox row just read.
pub enum Lookup {
    /// The list of exactly that state.
    Current(MessageList),
    /// A list of an earlier state of the same mailbox: bring it forward with the changes after
    /// `since` ([`bring_forward`]), or read the list again if that fails.
    Behind { list: MessageList, since: u64 },
    /// Nothing usable: read the whole list.
    Missing,
}

/// How a list was obtained (for tests and for the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    BroughtForward,
    Loaded,
}

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

/// Names remembered for [`IndexCache::guess`] beyond this many are all forgotten at once: a
/// guess missing costs one slower SELECT, never a wrong answer.
const MAX_NAMES: usize = 100_000;

/// One store handle's lists (shared by every session of that handle).
pub struct IndexCache {
    entries: Mutex<Entries>,
    /// The id each (account, name) had when last selected by name (see [`IndexCache::guess`]).
    ids: Mutex<HashMap<(AccountId, String), MailboxId>>,
}

impl Default for IndexCache {
    fn default() -> Self {
        IndexCache {
            entries: Mutex::new(Entries { map: HashMap::new(), total: 0, swept: Instant::now() }),
            ids: Mutex::new(HashMap::new()),
        }
    }
}

impl IndexCache {
    /// What is kept for `mailbox`, whose row the caller has just read inside the transaction
    /// it reads everything else in.
    pub fn lookup(&self, mailbox: &Mailbox) -> Lookup {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.sweep(now);
        let Some(e) = entries.map.get_mut(&mailbox.id) else { return Lookup::Missing };
        e.used = now;
        if e.uidvalidity != mailbox.uidvalidity {
            Lookup::Missing
        } else if e.uidnext == mailbox.uidnext && e.highestmodseq == mailbox.highestmodseq {
            Lookup::Current(e.messages.clone())
        } else if e.uidnext <= mailbox.uidnext && e.highestmodseq < mailbox.highestmodseq {
            Lookup::Behind { list: e.messages.clone(), since: e.highestmodseq }
        } else {
            Lookup::Missing
        }
    }

    /// (id, HIGHESTMODSEQ of the kept list) of the mailbox `account` last selected under
    /// `name` ([`IndexCache::put_named`]), if its list is still kept: for a backend that reads
    /// the mailbox row and the changes since in one statement, which needs both before it runs.
    /// A guess: the name may lead elsewhere by now, so the backend checks the row it reads
    /// (then [`IndexCache::lookup`] with it) and reads the whole list when the guess was wrong.
    pub fn guess(&self, account: AccountId, name: &str) -> Option<(MailboxId, u64)> {
        let id = *self.lock_ids().get(&(account, name.to_string()))?;
        Some((id, self.lock().map.get(&id)?.highestmodseq))
    }

    /// [`IndexCache::put`], remembering that `account` selected the mailbox by its name (for
    /// [`IndexCache::guess`]).
    pub fn put_named(&self, account: AccountId, mailbox: &Mailbox, messages: MessageList) {
        {
            let mut ids = self.lock_ids();
            if ids.len() >= MAX_NAMES {
                ids.clear();
            }
            ids.insert((account, mailbox.name.clone()), mailbox.id);
        }
        self.put(mailbox, messages);
    }

    /// Keeps `messages` as the list of `mailbox` (the row it was read or brought forward
    /// with) unless a newer one is already kept (another session may have read a later state
    /// meanwhile).
    pub fn put(&self, mailbox: &Mailbox, messages: MessageList) {
        self.lock().put(mailbox, messages, Instant::now());
    }

    /// (lists, messages in them): for tests.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.total)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, HashMap<(AccountId, String), MailboxId>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `list` with `changes` applied, when they bring it to `mailbox`'s HIGHESTMODSEQ (read in the
/// same snapshot); `None` when they do not (the caller then reads the whole list).
pub fn bring_forward(mut list: MessageList, changes: Changes, mailbox: &Mailbox) -> Option<MessageList> {
    if changes.highestmodseq != mailbox.highestmodseq {
        return None;
    }
    for message in &changes.changed {
        list.upsert(message);
    }
    let mut expunged = changes.expunged;
    expunged.dedup();
    list.remove_uids(&expunged);
    Some(list)
}

impl Entries {
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
    use crate::{Flags, MessageIndex};

    fn mailbox(id: MailboxId, uidvalidity: u32, uidnext: u32, highestmodseq: u64) -> Mailbox {
        Mailbox { id, name: String::new(), special_use: None, uidvalidity, uidnext, highestmodseq, recent_from: 1 }
    }

    fn list(uids: impl IntoIterator<Item = u32>) -> MessageList {
        MessageList::from_messages(uids.into_iter().map(|uid| MessageIndex { uid, flags: Flags::default(), modseq: 1 }))
    }

    #[test]
    fn a_list_is_current_behind_or_of_no_use() {
        let cache = IndexCache::default();
        assert!(matches!(cache.lookup(&mailbox(1, 7, 3, 2)), Lookup::Missing));
        assert_eq!(cache.guess(5, ""), None);
        cache.put(&mailbox(1, 7, 3, 2), list([1, 2]));
        assert_eq!(cache.guess(5, ""), None, "kept, but not selected by name");
        cache.put_named(5, &mailbox(1, 7, 3, 2), list([1, 2]));
        assert_eq!(cache.guess(5, ""), Some((1, 2)));
        assert_eq!(cache.guess(6, ""), None, "another account's name");
        assert!(matches!(cache.lookup(&mailbox(1, 7, 3, 2)), Lookup::Current(l) if l.len() == 2));
        assert!(matches!(cache.lookup(&mailbox(1, 7, 4, 3)), Lookup::Behind { since: 2, .. }));
        assert!(matches!(cache.lookup(&mailbox(1, 8, 3, 2)), Lookup::Missing), "a new UIDVALIDITY");
        assert!(matches!(cache.lookup(&mailbox(1, 7, 3, 1)), Lookup::Missing), "a MODSEQ gone back");
        // An older state read meanwhile does not replace a newer list.
        cache.put(&mailbox(1, 7, 4, 3), list([1, 2, 3]));
        cache.put(&mailbox(1, 7, 3, 2), list([1, 2]));
        assert!(matches!(cache.lookup(&mailbox(1, 7, 4, 3)), Lookup::Current(l) if l.len() == 3));
        assert_eq!(cache.size(), (1, 3));
    }

    #[test]
    fn changes_bring_a_list_forward_only_to_the_row_s_modseq() {
        let row = mailbox(1, 7, 5, 9);
        let changes = Changes {
            changed: vec![
                MessageIndex { uid: 2, flags: Flags::system(Flags::SEEN), modseq: 8 },
                MessageIndex { uid: 4, flags: Flags::default(), modseq: 9 },
            ],
            expunged: vec![1, 1],
            highestmodseq: 9,
            recent_from: 1,
        };
        let forward = bring_forward(list([1, 2, 3]), changes.clone(), &row).unwrap();
        let got: Vec<(u32, u64)> = forward.iter().map(|m| (m.to_index().uid, m.to_index().modseq)).collect();
        assert_eq!(got, vec![(2, 8), (3, 1), (4, 9)]);
        assert!(bring_forward(list([1]), Changes { highestmodseq: 10, ..changes }, &row).is_none());
    }

    #[test]
    fn idle_lists_are_dropped_and_the_total_is_bounded() {
        let cache = IndexCache::default();
        let row = mailbox(1, 7, 2, 1);
        cache.put(&row, list([1]));
        let Lookup::Current(kept) = cache.lookup(&row) else { panic!("kept") };
        let later = Instant::now() + IDLE_FOR + SWEEP_EVERY;
        cache.lock().sweep(later);
        assert_eq!(cache.size(), (1, 1), "kept while a session shares it");
        drop(kept);
        {
            let mut entries = cache.lock();
            entries.swept = later - SWEEP_EVERY;
            entries.sweep(later);
        }
        assert_eq!(cache.size(), (0, 0));

        let big = list(1..=(MAX_MESSAGES as u32 / 2 + 1));
        let mut entries = cache.lock();
        for id in 1..=3 {
            entries.put(&mailbox(id, 1, 1, 1), big.clone(), Instant::now());
        }
        assert_eq!(entries.map.len(), 1);
        assert!(entries.map.contains_key(&3));
        assert_eq!(entries.total, big.len());
    }
}
