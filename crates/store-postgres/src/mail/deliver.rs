//! New messages: SMTP delivery to local recipients and IMAP APPEND. A body is stored once in
//! `blobs` with its summary and header cache, computed once, and every recipient's copy
//! refers to it.

use deadpool_postgres::GenericClient;
use portcullis_store::encode_keywords;
use portcullis_store::*;

use super::flags::canonical_keywords;
use super::locks::{allocate, lock_accounts, lock_owner, no_such_mailbox};
use super::quota::check_room;
use crate::Db;

/// Summarizes a message on a blocking thread: parsing a large message must not stall the
/// runtime.
pub(crate) async fn summarize(raw: Vec<u8>) -> Result<(Vec<u8>, portcullis_mime::Summary), StoreError> {
    tokio::task::spawn_blocking(move || {
        let summary = portcullis_mime::summarize(&raw);
        (raw, summary)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("summarizing a message failed: {e}")))
}

/// Stores a body with its summary (every body has one: `message_records` relies on it) and
/// its header cache.
async fn insert_blob(
    db: &impl GenericClient,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
) -> Result<i64, StoreError> {
    let blob = db.prepare_cached("INSERT INTO blobs(data) VALUES ($1) RETURNING id").await.db()?;
    let id: i64 = db.query_one(&blob, &[&raw]).await.db()?.get(0);
    // Summary and header cache in one statement: one round trip.
    let rest = db
        .prepare_cached(
            "WITH s AS (
                INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
                VALUES ($1, $2, $3, $4, $5, $6)
             )
             INSERT INTO header_caches(blob_id, data) VALUES ($1, $7)",
        )
        .await
        .db()?;
    db.execute(
        &rest,
        &[
            &id,
            &(summary.header_len as i64),
            &summary.envelope,
            &summary.bodystructure,
            &summary.body,
            &summary.sent_date,
            &summary.header_cache,
        ],
    )
    .await
    .db()?;
    Ok(id)
}

/// A message row about to be inserted.
pub(super) struct NewMessage<'a> {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub blob: i64,
    pub size: i64,
    pub internal_date: i64,
    pub flags: u8,
    pub keywords: &'a str,
    pub modseq: u64,
}

pub(super) async fn insert_message(db: &impl GenericClient, m: NewMessage<'_>) -> Result<(), StoreError> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .db()?;
    db.execute(
        &stmt,
        &[
            &m.mailbox,
            &i64::from(m.uid),
            &m.blob,
            &m.size,
            &m.internal_date,
            &i32::from(m.flags),
            &m.keywords,
            &(m.modseq as i64),
        ],
    )
    .await
    .db()?;
    Ok(())
}

/// Stores one message in every recipient's INBOX, after checking every allowance: on
/// `QuotaExceeded` for anyone, nothing is stored for anyone. The queue calls it inside its own
/// transaction too (a submission's local copies stored with its queued message).
pub(crate) async fn deliver(
    db: &impl GenericClient,
    recipients: Vec<AccountId>,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    internal_date: i64,
    default_quota: Option<u64>,
) -> Result<Vec<MailboxChange>, DeliveryError> {
    let mut recipients = recipients;
    recipients.sort_unstable();
    recipients.dedup();
    if recipients.is_empty() {
        // A body nobody's message refers to would never be removed.
        return Ok(Vec::new());
    }
    lock_accounts(db, &recipients).await?;
    for &account in &recipients {
        check_room(db, account, raw.len() as u64, default_quota).await?;
    }
    let blob = insert_blob(db, raw, summary).await?;
    let inbox = db.prepare_cached("SELECT id FROM mailboxes WHERE account_id = $1 AND name = 'INBOX'").await.db()?;
    let mut changes = Vec::with_capacity(recipients.len());
    for account in recipients {
        let mailbox: MailboxId = db
            .query_opt(&inbox, &[&account])
            .await
            .db()?
            .ok_or_else(|| StoreError::Backend(format!("account #{account} has no INBOX")))?
            .get(0);
        let at = allocate(db, mailbox, 1).await?.ok_or_else(|| no_such_mailbox(mailbox))?;
        insert_message(
            db,
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
        )
        .await?;
        changes.push(at.change);
    }
    Ok(changes)
}

/// APPEND: one message into one mailbox under its account's allowance.
pub(super) async fn append(
    db: &impl GenericClient,
    mailbox: MailboxId,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    flags: &Flags,
    internal_date: i64,
    default_quota: Option<u64>,
) -> Result<(u32, MailboxChange), DeliveryError> {
    let account = lock_owner(db, mailbox).await?.ok_or_else(|| no_such_mailbox(mailbox))?;
    check_room(db, account, raw.len() as u64, default_quota).await?;
    let blob = insert_blob(db, raw, summary).await?;
    // The mailbox row (locked by the allocation) before its keyword list.
    let at = allocate(db, mailbox, 1).await?.ok_or_else(|| no_such_mailbox(mailbox))?;
    let keywords = canonical_keywords(db, mailbox, &flags.keywords, true).await?;
    insert_message(
        db,
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
    )
    .await?;
    Ok((at.first_uid, at.change))
}
