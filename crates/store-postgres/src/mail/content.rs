//! Reading messages: their metadata and summaries (FETCH without the body), header sections
//! and header caches (SEARCH), and pieces of bodies; whole bodies are `bodies`'s. Bodies are
//! stored out of line without compression (`blobs.data` is `STORAGE EXTERNAL`), so `substring`
//! reads only the TOAST chunks it needs: a header section or a piece costs its own size, not
//! the body's.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use portcullis_store::*;

use super::flags::index_from_row;
use super::Uids;
use crate::Db;

/// The messages of a mailbox in UID order (POP3's maildrop).
pub(super) async fn messages(db: &impl GenericClient, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
    let stmt = db
        .prepare_cached("SELECT uid, size, internal_date FROM messages WHERE mailbox_id = $1 ORDER BY uid")
        .await
        .db()?;
    Ok(db
        .query(&stmt, &[&mailbox])
        .await
        .db()?
        .iter()
        .map(|r| MessageMeta {
            uid: r.get::<_, i64>(0) as u32,
            size: r.get::<_, i64>(1) as u64,
            internal_date: r.get(2),
        })
        .collect())
}

/// Messages with their summaries, in UID order.
pub(super) async fn message_records(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &Uids,
) -> Result<Vec<MessageRecord>, StoreError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, params) = uids.query(
        "SELECT m.uid, m.flags, m.keywords, m.modseq, m.size, m.internal_date,
                s.envelope, s.bodystructure, s.body, s.header_len, s.sent_date
           FROM messages m JOIN summaries s ON s.blob_id = m.blob_id
          WHERE m.mailbox_id = $1 AND m.{uids} ORDER BY m.uid",
        &mailbox,
    );
    let stmt = db.prepare_cached(&sql).await.db()?;
    Ok(db
        .query(&stmt, &params)
        .await
        .db()?
        .iter()
        .map(|r| {
            let index = index_from_row(r, 0);
            MessageRecord {
                uid: index.uid,
                flags: index.flags,
                modseq: index.modseq,
                size: r.get::<_, i64>(4) as u64,
                internal_date: r.get(5),
                envelope: r.get(6),
                bodystructure: r.get(7),
                body: r.get(8),
                header_len: r.get::<_, i64>(9) as u64,
                sent_date: r.get(10),
            }
        })
        .collect())
}

/// Each message's header cache (`None` where there is none), in UID order.
pub(super) async fn header_caches(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &Uids,
) -> Result<HeaderCaches, StoreError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, params) = uids.query(
        "SELECT m.uid, h.data FROM messages m LEFT JOIN header_caches h ON h.blob_id = m.blob_id
          WHERE m.mailbox_id = $1 AND m.{uids} ORDER BY m.uid",
        &mailbox,
    );
    let stmt = db.prepare_cached(&sql).await.db()?;
    Ok(db.query(&stmt, &params).await.db()?.iter().map(|r| (r.get::<_, i64>(0) as u32, r.get(1))).collect())
}

/// Header sections (the first `header_len` bytes, read without the rest), in the order asked,
/// missing UIDs omitted; one statement, so one snapshot. Whole messages are `bodies`'s.
pub(super) async fn message_headers(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let stmt = db
        .prepare_cached(
            "SELECT m.uid, substring(b.data FROM 1 FOR least(s.header_len, 2147483647)::integer)
               FROM messages m JOIN summaries s ON s.blob_id = m.blob_id JOIN blobs b ON b.id = m.blob_id
              WHERE m.mailbox_id = $1 AND m.uid = ANY($2)",
        )
        .await
        .db()?;
    let mut found: HashMap<u32, Vec<u8>> = db
        .query(&stmt, &[&mailbox, &wanted])
        .await
        .db()?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get(1)))
        .collect();
    let mut out = Vec::with_capacity(uids.len());
    for (i, &uid) in uids.iter().enumerate() {
        // A UID asked for twice is answered twice, as SQLite's backend does.
        let again = uids[i + 1..].contains(&uid);
        let content = if again { found.get(&uid).cloned() } else { found.remove(&uid) };
        if let Some(content) = content {
            out.push((uid, content));
        }
    }
    Ok(out)
}

/// Up to `len` bytes of one message from offset `start`, read without reading the rest.
/// Found through (mailbox, UID) at each call, never by a kept blob id.
pub(super) async fn message_bytes(
    db: &impl GenericClient,
    mailbox: MailboxId,
    uid: u32,
    start: u64,
    len: usize,
) -> Result<Option<Vec<u8>>, StoreError> {
    // bytea is at most 1 GB: offsets and lengths beyond i32 read nothing more.
    let from = i32::try_from(start.saturating_add(1)).unwrap_or(i32::MAX);
    let count = i32::try_from(len).unwrap_or(i32::MAX);
    let stmt = db
        .prepare_cached(
            "SELECT substring(b.data FROM $3 FOR $4) FROM messages m JOIN blobs b ON b.id = m.blob_id
              WHERE m.mailbox_id = $1 AND m.uid = $2",
        )
        .await
        .db()?;
    Ok(db.query_opt(&stmt, &[&mailbox, &i64::from(uid), &from, &count]).await.db()?.map(|r| r.get(0)))
}
