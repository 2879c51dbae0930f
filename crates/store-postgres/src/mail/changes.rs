//! What a session loads and re-reads: SELECT's whole message list, and the changes since a
//! MODSEQ (CONDSTORE, QRESYNC, and every session catching up after an announcement).
//!
//! Round trips are what a PostgreSQL node pays per command (docs/benchmarks.md, "Where the time
//! goes"), so the common cases are one statement each: a statement reads one snapshot even in
//! READ COMMITTED, which spares the BEGIN and ROLLBACK a multi-statement snapshot costs.
//! - [`changes_since`]: the mailbox row, the changed messages and the expunged UIDs together;
//! - [`select`] of a mailbox this node selected before: the row, its keywords and the changes
//!   since the kept list's MODSEQ together, then the list from the cache (the id and that MODSEQ
//!   guessed by `IndexCache::guess`, and checked).
//!
//! A first SELECT (or one whose kept list is of no use) reads the row and the whole list in
//! one REPEATABLE READ snapshot instead.

use deadpool_postgres::GenericClient;
use portcullis_store::index_cache::{bring_forward, IndexCache, Lookup};
use portcullis_store::*;
use tokio_postgres::Row;

use super::flags::{index_from_row, mailbox_keywords};
use super::mailboxes;
use crate::Db;

/// SELECT: the mailbox, its keywords and its messages in UID order. The list comes from this
/// node's cache of recently selected mailboxes when it is current, brought forward with the
/// changes since (made by any node: every change has a MODSEQ in the database) when it is
/// behind, and from one pass over the `(mailbox_id, uid)` key otherwise.
pub(super) async fn select(
    db: &mut deadpool_postgres::Client,
    cache: &IndexCache,
    account: AccountId,
    name: &str,
) -> Result<Option<SelectedMailbox>, StoreError> {
    if let Some((id, since)) = cache.guess(account, name) {
        if let Some(found) = select_known(&*db, cache, account, name, id, since).await? {
            return Ok(found);
        }
    }
    let tx = super::PgStore::snapshot(db).await?;
    select_in_snapshot(&tx, cache, account, name).await
}

/// The one-statement SELECT of a mailbox whose list is kept as of MODSEQ `since` under id
/// `guess`: `Some` with the answer, or `None` when the kept list cannot be used (the caller then
/// reads the list in full).
async fn select_known(
    db: &impl GenericClient,
    cache: &IndexCache,
    account: AccountId,
    name: &str,
    guess: MailboxId,
    since: u64,
) -> Result<Option<Option<SelectedMailbox>>, StoreError> {
    // Kind 0: the row, with its keywords in the order `mailbox_keywords` gives; kind 1: a
    // message changed after `since`; kind 2: a UID expunged after it. The changes are those
    // of the guessed id only, and only if the name still leads to it.
    let stmt = db
        .prepare_cached(
            "WITH mb AS (SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from
                           FROM mailboxes WHERE account_id = $1 AND name = $2)
             SELECT 0, id, uidvalidity, uidnext, highestmodseq, recent_from, name, special_use,
                    ARRAY(SELECT keyword FROM mailbox_keywords WHERE mailbox_id = mb.id
                           ORDER BY lower(keyword) COLLATE \"C\")
               FROM mb
             UNION ALL
             SELECT 1, uid, flags::bigint, modseq, NULL, NULL, keywords, NULL, NULL
               FROM messages WHERE mailbox_id = $3 AND modseq > $4 AND EXISTS (SELECT 1 FROM mb WHERE id = $3)
             UNION ALL
             SELECT 2, uid, NULL, NULL, NULL, NULL, NULL, NULL, NULL
               FROM expunged WHERE mailbox_id = $3 AND modseq > $4 AND EXISTS (SELECT 1 FROM mb WHERE id = $3)",
        )
        .await
        .db()?;
    let since_param = since.min(i64::MAX as u64) as i64;
    let rows = db.query(&stmt, &[&account, &name, &guess, &since_param]).await.db()?;
    let Some(head) = rows.iter().find(|r| r.get::<_, i32>(0) == 0) else { return Ok(Some(None)) };
    let mailbox = Mailbox {
        id: head.get(1),
        uidvalidity: head.get::<_, i64>(2) as u32,
        uidnext: head.get::<_, i64>(3) as u32,
        highestmodseq: head.get::<_, i64>(4) as u64,
        recent_from: head.get::<_, i64>(5) as u32,
        name: head.get(6),
        special_use: head.get(7),
    };
    let keywords: Vec<String> = head.get(8);
    let messages = match cache.lookup(&mailbox) {
        Lookup::Current(list) => list,
        Lookup::Behind { list, since: kept } if kept == since && mailbox.id == guess => {
            let changes = changes_from_rows(&rows, 6, mailbox.highestmodseq, mailbox.recent_from);
            match bring_forward(list, changes, &mailbox) {
                Some(list) => list,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    cache.put_named(account, &mailbox, messages.clone());
    Ok(Some(Some(SelectedMailbox { mailbox, keywords, messages })))
}

/// SELECT in the caller's REPEATABLE READ snapshot: the row, the keywords, and the list kept,
/// brought forward, or read in full.
async fn select_in_snapshot(
    db: &impl GenericClient,
    cache: &IndexCache,
    account: AccountId,
    name: &str,
) -> Result<Option<SelectedMailbox>, StoreError> {
    let Some(mailbox) = mailboxes::find(db, account, name).await? else { return Ok(None) };
    let keywords = mailbox_keywords(db, mailbox.id).await?;
    let messages = match cache.lookup(&mailbox) {
        Lookup::Current(list) => list,
        Lookup::Behind { list, since } => {
            match bring_forward(list, changes_since(db, mailbox.id, since).await?, &mailbox) {
                Some(list) => list,
                None => load(db, mailbox.id).await?,
            }
        }
        Lookup::Missing => load(db, mailbox.id).await?,
    };
    cache.put_named(account, &mailbox, messages.clone());
    Ok(Some(SelectedMailbox { mailbox, keywords, messages }))
}

/// Every message of `mailbox` in UID order.
async fn load(db: &impl GenericClient, mailbox: MailboxId) -> Result<MessageList, StoreError> {
    let stmt = db
        .prepare_cached("SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = $1 ORDER BY uid")
        .await
        .db()?;
    let rows = db.query(&stmt, &[&mailbox]).await.db()?;
    Ok(MessageList::from_messages(rows.iter().map(|r| index_from_row(r, 0))))
}

/// Messages changed and UIDs expunged after `modseq`, with the mailbox's HIGHESTMODSEQ and
/// `recent_from` (0 and 0 for a mailbox that no longer exists, as SQLite's backend answers).
/// One statement, so one snapshot, without a transaction around it.
pub(super) async fn changes_since(
    db: &impl GenericClient,
    mailbox: MailboxId,
    modseq: u64,
) -> Result<Changes, StoreError> {
    let since = modseq.min(i64::MAX as u64) as i64;
    // Kind 0: the row; 1: a changed message; 2: an expunged UID. No ORDER BY uid: that could
    // tempt the planner into walking the whole mailbox in UID order instead of the
    // (mailbox_id, modseq) range; sorting the few changes is cheap.
    let stmt = db
        .prepare_cached(
            "SELECT 0, highestmodseq, recent_from, NULL::bigint, NULL::text FROM mailboxes WHERE id = $1
             UNION ALL
             SELECT 1, uid, flags::bigint, modseq, keywords FROM messages WHERE mailbox_id = $1 AND modseq > $2
             UNION ALL
             SELECT 2, uid, NULL, NULL, NULL FROM expunged WHERE mailbox_id = $1 AND modseq > $2",
        )
        .await
        .db()?;
    let rows = db.query(&stmt, &[&mailbox, &since]).await.db()?;
    let (highestmodseq, recent_from) = rows
        .iter()
        .find(|r| r.get::<_, i32>(0) == 0)
        .map(|r| (r.get::<_, i64>(1) as u64, r.get::<_, i64>(2) as u32))
        .unwrap_or((0, 0));
    Ok(changes_from_rows(&rows, 4, highestmodseq, recent_from))
}

/// The changes among rows of kind 1 (uid, flags, modseq in columns 1-3, the stored keywords
/// in column `keywords_at`) and kind 2 (uid in column 1), sorted by UID, as [`changes_since`]
/// and [`select_known`] read them.
fn changes_from_rows(rows: &[Row], keywords_at: usize, highestmodseq: u64, recent_from: u32) -> Changes {
    let mut changed: Vec<MessageIndex> = rows
        .iter()
        .filter(|r| r.get::<_, i32>(0) == 1)
        .map(|r| MessageIndex {
            uid: r.get::<_, i64>(1) as u32,
            flags: Flags { system: r.get::<_, i64>(2) as u8, keywords: decode_keywords(r.get(keywords_at)) },
            modseq: r.get::<_, i64>(3) as u64,
        })
        .collect();
    changed.sort_unstable_by_key(|m| m.uid);
    let mut expunged: Vec<u32> =
        rows.iter().filter(|r| r.get::<_, i32>(0) == 2).map(|r| r.get::<_, i64>(1) as u32).collect();
    expunged.sort_unstable();
    Changes { changed, expunged, highestmodseq, recent_from }
}
