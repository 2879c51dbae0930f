//! Copying, moving and removing messages. Copies share their bodies; every removed UID is
//! recorded in `expunged` with the MODSEQ of its removal (QRESYNC's VANISHED, RFC 7162 §3.2.10).

use deadpool_postgres::GenericClient;
use portcullis_store::{decode_keywords, encode_keywords};
use portcullis_store::*;

use super::deliver::{insert_message, NewMessage};
use super::flags::canonical_keywords;
use super::locks::{allocate, lock_mailboxes, lock_owner, lock_owners, no_such_mailbox};
use super::quota::check_room;
use super::Uids;
use crate::Db;

/// (source UID, new UID) pairs, as COPYUID reports them.
pub(super) type UidMap = Vec<(u32, u32)>;

/// A message about to be copied.
pub(super) struct Source {
    uid: u32,
    blob: i64,
    size: i64,
    internal_date: i64,
    flags: u8,
    keywords: String,
}

pub(super) async fn sources(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &Uids,
) -> Result<Vec<Source>, StoreError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, params) = uids.query(
        "SELECT uid, blob_id, size, internal_date, flags, keywords FROM messages
          WHERE mailbox_id = $1 AND {uids} ORDER BY uid",
        &mailbox,
    );
    let stmt = db.prepare_cached(&sql).await.db()?;
    Ok(db
        .query(&stmt, &params)
        .await
        .db()?
        .iter()
        .map(|r| Source {
            uid: r.get::<_, i64>(0) as u32,
            blob: r.get(1),
            size: r.get(2),
            internal_date: r.get(3),
            flags: r.get::<_, i32>(4) as u8,
            keywords: r.get(5),
        })
        .collect())
}

fn total_size(sources: &[Source]) -> u64 {
    sources.iter().map(|s| s.size.max(0) as u64).sum()
}

/// Adds copies of `sources` to mailbox `to` (sharing their bodies); returns (old UID, new
/// UID) pairs. The caller holds the account locks and has checked any quota.
pub(super) async fn insert_copies(
    db: &impl GenericClient,
    sources: &[Source],
    to: MailboxId,
) -> Result<(UidMap, MailboxChange), StoreError> {
    // The allocation locks the target mailbox before its keyword list is touched.
    let at = allocate(db, to, sources.len() as u32).await?.ok_or_else(|| no_such_mailbox(to))?;
    let mut pairs = Vec::with_capacity(sources.len());
    for (source, uid) in sources.iter().zip(at.first_uid..) {
        // Keywords take the target mailbox's spelling and join its list.
        let keywords = if source.keywords.is_empty() {
            String::new()
        } else {
            encode_keywords(&canonical_keywords(db, to, &decode_keywords(&source.keywords), true).await?)
        };
        insert_message(
            db,
            NewMessage {
                mailbox: to,
                uid,
                blob: source.blob,
                size: source.size,
                internal_date: source.internal_date,
                flags: source.flags,
                keywords: &keywords,
                modseq: at.change.modseq,
            },
        )
        .await?;
        pairs.push((source.uid, uid));
    }
    Ok((pairs, at.change))
}

/// COPY under the target account's allowance.
pub(super) async fn copy(
    db: &impl GenericClient,
    from: MailboxId,
    uids: &Uids,
    to: MailboxId,
    default_quota: Option<u64>,
) -> Result<(UidMap, Vec<MailboxChange>), DeliveryError> {
    let owners = lock_owners(db, &[from, to]).await?;
    let account = owners[1].ok_or_else(|| no_such_mailbox(to))?;
    lock_mailboxes(db, &[from, to]).await?;
    let sources = sources(db, from, uids).await?;
    if sources.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    check_room(db, account, total_size(&sources), default_quota).await?;
    let (pairs, change) = insert_copies(db, &sources, to).await?;
    Ok((pairs, vec![change]))
}

/// MOVE (RFC 6851): copy and expunge in one transaction. No quota check: within an account
/// the total stays the same.
pub(super) async fn move_messages(
    db: &impl GenericClient,
    from: MailboxId,
    uids: &Uids,
    to: MailboxId,
) -> Result<(UidMap, Vec<MailboxChange>), StoreError> {
    let owners = lock_owners(db, &[from, to]).await?;
    if owners[1].is_none() {
        return Err(no_such_mailbox(to));
    }
    // The source's lock too: the copies must carry the flags of the messages removed.
    lock_mailboxes(db, &[from, to]).await?;
    let sources = sources(db, from, uids).await?;
    if sources.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (pairs, target) = insert_copies(db, &sources, to).await?;
    let moved: Vec<u32> = sources.iter().map(|s| s.uid).collect();
    let mut changes = vec![target];
    changes.extend(remove(db, from, &moved).await?.map(|(_, change)| change));
    Ok((pairs, changes))
}

/// Removes these messages (ignoring missing UIDs), recording them in `expunged` under one
/// new MODSEQ. Returns the removed UIDs ascending, or `None` if nothing was removed. The
/// caller holds the lock of the mailbox's account (the triggers update its usage).
pub(super) async fn remove(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Option<(Vec<u32>, MailboxChange)>, StoreError> {
    let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let delete =
        db.prepare_cached("DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) RETURNING uid").await.db()?;
    let mut removed: Vec<i64> = db.query(&delete, &[&mailbox, &wanted]).await.db()?.iter().map(|r| r.get(0)).collect();
    if removed.is_empty() {
        return Ok(None);
    }
    removed.sort_unstable();
    let at = allocate(db, mailbox, 0).await?.ok_or_else(|| no_such_mailbox(mailbox))?;
    let record = db
        .prepare_cached("INSERT INTO expunged(mailbox_id, modseq, uid) SELECT $1, $2, unnest($3::bigint[])")
        .await
        .db()?;
    db.execute(&record, &[&mailbox, &(at.change.modseq as i64), &removed]).await.db()?;
    Ok(Some((removed.into_iter().map(|u| u as u32).collect(), at.change)))
}

/// POP3's deletion: these messages, whatever their flags.
pub(super) async fn expunge(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<MailboxChange>, StoreError> {
    if lock_owner(db, mailbox).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(remove(db, mailbox, uids).await?.map(|(_, change)| change).into_iter().collect())
}

/// EXPUNGE: the messages flagged \Deleted, among `uids` if given.
pub(super) async fn expunge_deleted(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &Uids,
) -> Result<(Vec<u32>, Vec<MailboxChange>), StoreError> {
    if uids.is_empty() || lock_owner(db, mailbox).await?.is_none() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Under the mailbox's lock, a concurrent STORE -FLAGS \Deleted cannot commit between
    // reading which messages are deleted and removing them.
    lock_mailboxes(db, &[mailbox]).await?;
    // `(flags & 8) <> 0` is spelled as in the partial index `messages_deleted`, so that this
    // reads only the deleted messages.
    let (sql, params) =
        uids.query("SELECT uid FROM messages WHERE mailbox_id = $1 AND (flags & 8) <> 0 AND {uids}", &mailbox);
    let stmt = db.prepare_cached(&sql).await.db()?;
    let deleted: Vec<u32> = db.query(&stmt, &params).await.db()?.iter().map(|r| r.get::<_, i64>(0) as u32).collect();
    Ok(match remove(db, mailbox, &deleted).await? {
        Some((removed, change)) => (removed, vec![change]),
        None => (Vec::new(), Vec::new()),
    })
}
