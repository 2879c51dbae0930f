//! Messages in SQL: storing, copying, moving, removing and reading them.
//!
//! MODSEQ: a write allocates one new MODSEQ per mailbox it changes (HIGHESTMODSEQ + 1), and
//! every message it adds or changes there gets that value; every UID it removes is recorded
//! in `expunged` with it. UIDs come from `uidnext`, which only grows, so they are never
//! reused.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::accounts::{check_room, quota_exceeded, usage};
use super::keywords::canonical_keywords;
use crate::Db;
use portcullis_store::*;
use portcullis_store::{decode_keywords, encode_keywords};

// The hot queries, named so that a test can check that they use their indexes.

/// SELECT's load: one pass over the (mailbox_id, uid) index in order.
pub(super) const MESSAGE_INDEX: &str =
    "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?1 ORDER BY uid";
/// No ORDER BY uid: that could tempt the planner into walking the whole mailbox in UID order
/// instead of the (mailbox_id, modseq) range; sorting the few changes is cheap.
pub(super) const CHANGED_SINCE: &str =
    "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?1 AND modseq > ?2";
pub(super) const EXPUNGED_SINCE: &str = "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2";
/// `(flags & 8) != 0` is spelled as in the partial index `messages_deleted`, so that EXPUNGE
/// reads only the deleted messages.
pub(super) const DELETED_IN_SPAN: &str = "SELECT uid FROM messages
      WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 AND (flags & 8) != 0 ORDER BY uid";

/// SEARCH on header fields: the header caches of a span of messages.
pub(super) const HEADER_CACHES: &str =
    "SELECT m.uid, h.data FROM messages m LEFT JOIN header_caches h ON h.blob_id = m.blob_id
      WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid";

/// A set of UIDs, read as a few UID ranges: neighbouring UIDs less than this far apart share
/// one range scan (the UIDs between them are filtered out in Rust), so that both "1:*" on a
/// mailbox with holes and a handful of scattered UIDs cost few queries.
const MAX_GAP: u32 = 256;

pub(super) struct UidSet {
    /// Sorted, no duplicates; `None` means every UID.
    uids: Option<Vec<u32>>,
    spans: Vec<(u32, u32)>,
}

impl UidSet {
    pub(super) fn new(uids: &[u32]) -> UidSet {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut spans: Vec<(u32, u32)> = Vec::new();
        for &uid in &sorted {
            match spans.last_mut() {
                Some((_, hi)) if uid - *hi <= MAX_GAP => *hi = uid,
                _ => spans.push((uid, uid)),
            }
        }
        UidSet { uids: Some(sorted), spans }
    }

    pub(super) fn all() -> UidSet {
        UidSet { uids: None, spans: vec![(1, u32::MAX)] }
    }

    fn contains(&self, uid: u32) -> bool {
        self.uids.as_ref().is_none_or(|uids| uids.binary_search(&uid).is_ok())
    }
}

/// Runs `sql`, which selects `uid` first and takes (mailbox, lowest UID, highest UID), once
/// per span of `uids`, and maps the rows whose UID is in the set, in UID order if `sql` has
/// `ORDER BY uid`.
pub(super) fn select_uids<T>(
    conn: &Connection,
    sql: &str,
    mailbox: MailboxId,
    uids: &UidSet,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut out = Vec::new();
    for &(lo, hi) in &uids.spans {
        let mut rows = stmt.query(params![mailbox, lo, hi]).db()?;
        while let Some(row) = rows.next().db()? {
            if uids.contains(row.get::<_, i64>(0).db()? as u32) {
                out.push(map(row).db()?);
            }
        }
    }
    Ok(out)
}

/// A `MessageIndex` from columns (uid, flags, keywords, modseq) starting at `at`.
pub(super) fn index_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<MessageIndex> {
    Ok(MessageIndex {
        uid: row.get::<_, i64>(at)? as u32,
        flags: Flags {
            system: row.get::<_, i64>(at + 1)? as u8,
            keywords: decode_keywords(row.get_ref(at + 2)?.as_str()?),
        },
        modseq: row.get::<_, i64>(at + 3)? as u64,
    })
}

/// A mailbox that a session had looked up was deleted since (by another session): rare, and
/// answered like any other failure.
pub(super) fn no_such_mailbox(mailbox: MailboxId) -> StoreError {
    StoreError::Backend(format!("mailbox #{mailbox} does not exist"))
}

/// The account owning a mailbox, or `None` if it does not exist.
pub(super) fn mailbox_account(conn: &Connection, mailbox: MailboxId) -> Result<Option<AccountId>, StoreError> {
    conn.prepare_cached("SELECT account_id FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row(params![mailbox], |r| r.get(0))
        .optional()
        .db()
}

/// What one write did to one mailbox: its first new UID and its new MODSEQ.
pub(super) struct Allocation {
    pub first_uid: u32,
    pub change: MailboxChange,
}

/// Takes `count` UIDs (possibly none) and one new MODSEQ in a mailbox; `None` if it does not
/// exist.
pub(super) fn allocate(conn: &Connection, mailbox: MailboxId, count: u32) -> Result<Option<Allocation>, StoreError> {
    let allocated = conn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + ?2, highestmodseq = highestmodseq + 1
              WHERE id = ?1
              RETURNING uidnext, highestmodseq, account_id",
        )
        .db()?
        .query_row(params![mailbox, count], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?)))
        .optional()
        .db()?;
    let Some((uidnext, modseq, account)) = allocated else { return Ok(None) };
    // UIDs are 32-bit and never reused: a mailbox that has used them all must be re-created
    // (new UIDVALIDITY). The failed job's savepoint undoes the update.
    if uidnext - 1 > i64::from(u32::MAX) {
        return Err(StoreError::Backend(format!("mailbox #{mailbox} has run out of UIDs")));
    }
    Ok(Some(Allocation {
        first_uid: (uidnext - i64::from(count)) as u32,
        change: MailboxChange { account, mailbox, modseq: modseq as u64 },
    }))
}

pub(super) fn insert_summary(
    conn: &Connection,
    blob: i64,
    summary: &portcullis_mime::Summary,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .db()?
    .execute(params![
        blob,
        summary.header_len as i64,
        summary.envelope,
        summary.bodystructure,
        summary.body,
        summary.sent_date
    ])
    .db()?;
    Ok(())
}

pub(super) fn insert_header_cache(conn: &Connection, blob: i64, cache: &[u8]) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO header_caches(blob_id, data) VALUES (?1, ?2)")
        .db()?
        .execute(params![blob, cache])
        .db()?;
    Ok(())
}

/// Stores a body with its summary; every body has one (`message_records` relies on it), and
/// a header cache (SEARCH does without).
fn insert_blob(conn: &Connection, raw: &[u8], summary: &portcullis_mime::Summary) -> Result<i64, StoreError> {
    conn.prepare_cached("INSERT INTO blobs(data) VALUES (?1)").db()?.execute(params![raw]).db()?;
    let blob = conn.last_insert_rowid();
    insert_summary(conn, blob, summary)?;
    insert_header_cache(conn, blob, &summary.header_cache)?;
    Ok(blob)
}

struct NewMessage<'a> {
    mailbox: MailboxId,
    uid: u32,
    blob: i64,
    size: i64,
    internal_date: i64,
    flags: u8,
    keywords: &'a str,
    modseq: u64,
}

fn insert_message(conn: &Connection, m: NewMessage<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute(params![m.mailbox, m.uid, m.blob, m.size, m.internal_date, m.flags, m.keywords, m.modseq as i64])
    .db()?;
    Ok(())
}

/// Stores one message in every recipient's INBOX, after checking every allowance.
pub(super) fn deliver(
    conn: &Connection,
    recipients: Vec<AccountId>,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    internal_date: i64,
    default_quota: Option<u64>,
) -> Result<Vec<MailboxChange>, DeliveryError> {
    let recipients = portcullis_store::delivery_recipients(recipients);
    if recipients.is_empty() {
        // A body no message refers to would never be removed (the triggers remove a body with
        // its last copy).
        return Ok(Vec::new());
    }
    // All or nothing: one recipient without room refuses the message for everyone.
    let allowance = |account| usage(conn, account, default_quota);
    if let Some(full) = portcullis_store::first_without_room(&recipients, raw.len() as u64, allowance)? {
        return Err(quota_exceeded(conn, full));
    }
    let blob = insert_blob(conn, raw, summary)?;
    let mut inbox = conn.prepare_cached("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = 'INBOX'").db()?;
    let mut changes = Vec::with_capacity(recipients.len());
    for account in recipients {
        let mailbox: i64 = inbox
            .query_row(params![account], |r| r.get(0))
            .map_err(|e| StoreError::Backend(format!("account #{account} has no INBOX: {e}")))?;
        let at = allocate(conn, mailbox, 1)?.ok_or_else(|| no_such_mailbox(mailbox))?;
        insert_message(
            conn,
            NewMessage {
                mailbox,
                uid: at.first_uid,
                blob,
                size: raw.len() as i64,
                internal_date,
                flags: 0,
                keywords: "",
                modseq: at.change.modseq,
            },
        )?;
        changes.push(at.change);
    }
    Ok(changes)
}

pub(super) fn append(
    conn: &Connection,
    mailbox: MailboxId,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    flags: &Flags,
    internal_date: i64,
    default_quota: Option<u64>,
) -> Result<(u32, MailboxChange), DeliveryError> {
    let account = mailbox_account(conn, mailbox)?.ok_or_else(|| no_such_mailbox(mailbox))?;
    check_room(conn, account, raw.len() as u64, default_quota)?;
    let blob = insert_blob(conn, raw, summary)?;
    let keywords = canonical_keywords(conn, mailbox, &flags.keywords, true)?;
    let at = allocate(conn, mailbox, 1)?.ok_or_else(|| no_such_mailbox(mailbox))?;
    insert_message(
        conn,
        NewMessage {
            mailbox,
            uid: at.first_uid,
            blob,
            size: raw.len() as i64,
            internal_date,
            flags: flags.system & Flags::ALL,
            keywords: &encode_keywords(&keywords),
            modseq: at.change.modseq,
        },
    )?;
    Ok((at.first_uid, at.change))
}

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

pub(super) fn sources(conn: &Connection, mailbox: MailboxId, uids: &UidSet) -> Result<Vec<Source>, StoreError> {
    select_uids(
        conn,
        "SELECT uid, blob_id, size, internal_date, flags, keywords FROM messages
          WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid",
        mailbox,
        uids,
        |r| {
            Ok(Source {
                uid: r.get::<_, i64>(0)? as u32,
                blob: r.get(1)?,
                size: r.get(2)?,
                internal_date: r.get(3)?,
                flags: r.get::<_, i64>(4)? as u8,
                keywords: r.get(5)?,
            })
        },
    )
}

pub(super) fn total_size(sources: &[Source]) -> u64 {
    sources.iter().map(|s| s.size.max(0) as u64).sum()
}

/// Adds copies of `sources` to mailbox `to` (sharing their bodies); returns (old UID, new
/// UID) pairs. The caller has checked that `to` exists and any quota.
pub(super) fn insert_copies(
    conn: &Connection,
    sources: &[Source],
    to: MailboxId,
) -> Result<(UidMap, MailboxChange), StoreError> {
    let at = allocate(conn, to, sources.len() as u32)?.ok_or_else(|| no_such_mailbox(to))?;
    let mut pairs = Vec::with_capacity(sources.len());
    for (source, uid) in sources.iter().zip(at.first_uid..) {
        // Keywords take the target mailbox's spelling and join its list.
        let keywords = if source.keywords.is_empty() {
            String::new()
        } else {
            encode_keywords(&canonical_keywords(conn, to, &decode_keywords(&source.keywords), true)?)
        };
        insert_message(
            conn,
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
        )?;
        pairs.push((source.uid, uid));
    }
    Ok((pairs, at.change))
}

pub(super) fn copy(
    conn: &Connection,
    from: MailboxId,
    uids: &UidSet,
    to: MailboxId,
    default_quota: Option<u64>,
) -> Result<(UidMap, Vec<MailboxChange>), DeliveryError> {
    let account = mailbox_account(conn, to)?.ok_or_else(|| no_such_mailbox(to))?;
    let sources = sources(conn, from, uids)?;
    if sources.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    check_room(conn, account, total_size(&sources), default_quota)?;
    let (pairs, change) = insert_copies(conn, &sources, to)?;
    Ok((pairs, vec![change]))
}

/// Copy and expunge in one transaction. No quota check: within an account the total stays
/// the same.
pub(super) fn move_messages(
    conn: &Connection,
    from: MailboxId,
    uids: &UidSet,
    to: MailboxId,
) -> Result<(UidMap, Vec<MailboxChange>), StoreError> {
    if mailbox_account(conn, to)?.is_none() {
        return Err(no_such_mailbox(to));
    }
    let sources = sources(conn, from, uids)?;
    if sources.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (pairs, target) = insert_copies(conn, &sources, to)?;
    let moved: Vec<u32> = sources.iter().map(|s| s.uid).collect();
    let mut changes = vec![target];
    changes.extend(remove(conn, from, &moved)?.map(|(_, change)| change));
    Ok((pairs, changes))
}

/// Removes these messages (ignoring missing UIDs), recording them in `expunged` under one
/// new MODSEQ. Returns the removed UIDs ascending, or `None` if nothing was removed.
pub(super) fn remove(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Option<(Vec<u32>, MailboxChange)>, StoreError> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut delete = conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2").db()?;
    let mut removed = Vec::with_capacity(sorted.len());
    for uid in sorted {
        if delete.execute(params![mailbox, uid]).db()? > 0 {
            removed.push(uid);
        }
    }
    if removed.is_empty() {
        return Ok(None);
    }
    let at = allocate(conn, mailbox, 0)?.ok_or_else(|| no_such_mailbox(mailbox))?;
    let mut record = conn.prepare_cached("INSERT INTO expunged(mailbox_id, modseq, uid) VALUES (?1, ?2, ?3)").db()?;
    for &uid in &removed {
        record.execute(params![mailbox, at.change.modseq as i64, uid]).db()?;
    }
    Ok(Some((removed, at.change)))
}

/// Removes the messages flagged \Deleted, among `uids` if given.
pub(super) fn expunge_deleted(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &UidSet,
) -> Result<(Vec<u32>, Vec<MailboxChange>), StoreError> {
    let deleted = select_uids(conn, DELETED_IN_SPAN, mailbox, uids, |r| Ok(r.get::<_, i64>(0)? as u32))?;
    Ok(match remove(conn, mailbox, &deleted)? {
        Some((removed, change)) => (removed, vec![change]),
        None => (Vec::new(), Vec::new()),
    })
}

pub(super) fn message_index(conn: &Connection, mailbox: MailboxId) -> Result<Vec<MessageIndex>, StoreError> {
    let mut stmt = conn.prepare_cached(MESSAGE_INDEX).db()?;
    let rows = stmt.query_map(params![mailbox], |r| index_from_row(r, 0)).db()?.collect::<Result<Vec<_>, _>>().db()?;
    Ok(rows)
}

pub(super) fn message_records(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &UidSet,
) -> Result<Vec<MessageRecord>, StoreError> {
    select_uids(
        conn,
        "SELECT m.uid, m.flags, m.keywords, m.modseq, m.size, m.internal_date,
                s.envelope, s.bodystructure, s.body, s.header_len, s.sent_date
           FROM messages m JOIN summaries s ON s.blob_id = m.blob_id
          WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
        mailbox,
        uids,
        |r| {
            let index = index_from_row(r, 0)?;
            Ok(MessageRecord {
                uid: index.uid,
                flags: index.flags,
                modseq: index.modseq,
                size: r.get::<_, i64>(4)? as u64,
                internal_date: r.get(5)?,
                envelope: r.get(6)?,
                bodystructure: r.get(7)?,
                body: r.get(8)?,
                header_len: r.get::<_, i64>(9)? as u64,
                sent_date: r.get(10)?,
            })
        },
    )
}

/// Each message's header cache (`None` where there is none), in UID order.
pub(super) fn header_caches(conn: &Connection, mailbox: MailboxId, uids: &UidSet) -> Result<HeaderCaches, StoreError> {
    select_uids(conn, HEADER_CACHES, mailbox, uids, |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))
}

/// Header sections (read through incremental blob I/O, so bodies stay on disk) or whole
/// messages, in one snapshot.
pub(super) fn message_contents(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[u32],
    header_only: bool,
) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    let mut find = tx
        .prepare_cached(
            "SELECT m.blob_id, s.header_len FROM messages m JOIN summaries s ON s.blob_id = m.blob_id
          WHERE m.mailbox_id = ?1 AND m.uid = ?2",
        )
        .db()?;
    let mut out = Vec::with_capacity(uids.len());
    for &uid in uids {
        let found: Option<(i64, i64)> =
            find.query_row(params![mailbox, uid], |r| Ok((r.get(0)?, r.get(1)?))).optional().db()?;
        let Some((blob, header_len)) = found else { continue };
        let data = tx.blob_open("main", "blobs", "data", blob, true).db()?;
        let len = if header_only { (header_len.max(0) as usize).min(data.len()) } else { data.len() };
        let mut content = vec![0; len];
        data.read_at_exact(&mut content, 0).db()?;
        out.push((uid, content));
    }
    Ok(out)
}

/// A piece of one message, through incremental blob I/O. The blob is found through the
/// message's (mailbox, UID) at each call, never kept by its id: a body removed meanwhile
/// could see its id taken by another account's message.
pub(super) fn message_bytes(
    conn: &Connection,
    mailbox: MailboxId,
    uid: u32,
    start: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    let blob: Option<i64> = tx
        .prepare_cached("SELECT blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
        .db()?
        .query_row(params![mailbox, uid], |r| r.get(0))
        .optional()
        .db()?;
    let Some(blob) = blob else { return Ok(None) };
    let data = tx.blob_open("main", "blobs", "data", blob, true).db()?;
    let size = data.len() as u64;
    let start = start.min(size);
    let len = (len as u64).min(size - start) as usize;
    let mut piece = vec![0; len];
    data.read_at_exact(&mut piece, start as usize).db()?;
    Ok(Some(piece))
}

pub(super) fn changes_since(conn: &Connection, mailbox: MailboxId, modseq: u64) -> Result<Changes, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    changes_since_in(&tx, mailbox, modseq)
}

/// [`changes_since`] inside the caller's transaction.
pub(super) fn changes_since_in(tx: &Connection, mailbox: MailboxId, modseq: u64) -> Result<Changes, StoreError> {
    let since = modseq.min(i64::MAX as u64) as i64;
    let mut changed = tx
        .prepare_cached(CHANGED_SINCE)
        .db()?
        .query_map(params![mailbox, since], |r| index_from_row(r, 0))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    changed.sort_unstable_by_key(|m| m.uid);
    let mut expunged = tx
        .prepare_cached(EXPUNGED_SINCE)
        .db()?
        .query_map(params![mailbox, since], |r| Ok(r.get::<_, i64>(0)? as u32))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    expunged.sort_unstable();
    let (highestmodseq, recent_from): (i64, i64) = tx
        .prepare_cached("SELECT highestmodseq, recent_from FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?
        .unwrap_or((0, 0));
    Ok(Changes { changed, expunged, highestmodseq: highestmodseq as u64, recent_from: recent_from as u32 })
}
