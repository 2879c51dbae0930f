//! What a session loads and re-reads: SELECT's whole message list, and the changes since a
//! MODSEQ (CONDSTORE, QRESYNC, and every session catching up after an announcement). Callers
//! pass a REPEATABLE READ transaction, so everything returned is of one snapshot.

use deadpool_postgres::GenericClient;
use portcullis_store::index_cache::{bring_forward, IndexCache, Lookup};
use portcullis_store::*;

use super::flags::{index_from_row, mailbox_keywords};
use super::mailboxes;
use crate::Db;

/// SELECT: the mailbox, its keywords and its messages in UID order. The list comes from this
/// node's cache of recently selected mailboxes when it is current, brought forward with the
/// changes since (made by any node: every change has a MODSEQ in the database) when it is
/// behind, and from one pass over the `(mailbox_id, uid)` key otherwise.
pub(super) async fn select(
    db: &impl GenericClient,
    cache: &IndexCache,
    account: AccountId,
    name: &str,
) -> Result<Option<SelectedMailbox>, StoreError> {
    let Some(mailbox) = mailboxes::find(db, account, name).await? else { return Ok(None) };
    let keywords = mailbox_keywords(db, mailbox.id).await?;
    let messages = match cache.lookup(&mailbox) {
        Lookup::Current(list) => return Ok(Some(SelectedMailbox { mailbox, keywords, messages: list })),
        Lookup::Behind { list, since } => {
            match bring_forward(list, changes_since(db, mailbox.id, since).await?, &mailbox) {
                Some(list) => list,
                None => load(db, mailbox.id).await?,
            }
        }
        Lookup::Missing => load(db, mailbox.id).await?,
    };
    cache.put(&mailbox, messages.clone());
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
pub(super) async fn changes_since(
    db: &impl GenericClient,
    mailbox: MailboxId,
    modseq: u64,
) -> Result<Changes, StoreError> {
    let since = modseq.min(i64::MAX as u64) as i64;
    // No ORDER BY uid: that could tempt the planner into walking the whole mailbox in UID
    // order instead of the (mailbox_id, modseq) range; sorting the few changes is cheap.
    let changed_stmt = db
        .prepare_cached("SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = $1 AND modseq > $2")
        .await
        .db()?;
    let mut changed: Vec<MessageIndex> =
        db.query(&changed_stmt, &[&mailbox, &since]).await.db()?.iter().map(|r| index_from_row(r, 0)).collect();
    changed.sort_unstable_by_key(|m| m.uid);
    let expunged_stmt =
        db.prepare_cached("SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2").await.db()?;
    let mut expunged: Vec<u32> =
        db.query(&expunged_stmt, &[&mailbox, &since]).await.db()?.iter().map(|r| r.get::<_, i64>(0) as u32).collect();
    expunged.sort_unstable();
    let row_stmt = db.prepare_cached("SELECT highestmodseq, recent_from FROM mailboxes WHERE id = $1").await.db()?;
    let (highestmodseq, recent_from) = db
        .query_opt(&row_stmt, &[&mailbox])
        .await
        .db()?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
        .unwrap_or((0, 0));
    Ok(Changes { changed, expunged, highestmodseq: highestmodseq as u64, recent_from: recent_from as u32 })
}
