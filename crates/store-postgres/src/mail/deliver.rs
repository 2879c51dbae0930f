//! New messages: SMTP delivery to local recipients and IMAP APPEND. A body is stored once in
//! `blobs` with its summary and header cache, computed once, and every recipient's copy
//! refers to it.
//!
//! A delivery is two statements inside its transaction: the recipients' account rows locked
//! with their quota, usage and INBOX read in the same round trip ([`lock_for_delivery`]), the
//! decision made in memory ([`plan_copies`]), then body, summary, header cache, UIDs and copies
//! in one statement ([`store_copies`]).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use portcullis_store::encode_keywords;
use portcullis_store::*;

use super::flags::canonical_keywords;
use super::locks::{allocate, lock_for_delivery, lock_owner, no_such_mailbox, LockedAccount};
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

/// The INBOXes one delivery's copies go to, decided under the recipients' row locks
/// (`accounts`, from [`lock_for_delivery`], with the usage of earlier deliveries of the same
/// transaction added by [`count_usage`]). `recipients` as [`delivery_recipients`] orders them.
/// All or nothing: one recipient without room refuses the message for everyone.
pub(super) fn plan_copies(
    accounts: &HashMap<AccountId, LockedAccount>,
    recipients: &[AccountId],
    size: u64,
) -> Result<Vec<MailboxId>, DeliveryError> {
    let locked =
        |account: AccountId| accounts.get(&account).ok_or_else(|| StoreError::NoSuchAccount(format!("#{account}")));
    let usage = |account| locked(account).map(|a| (a.used, a.limit));
    if let Some(full) = first_without_room(recipients, size, usage)? {
        return Err(DeliveryError::QuotaExceeded(locked(full)?.address.clone()));
    }
    let inbox = |&account: &AccountId| {
        locked(account)?.inbox.ok_or_else(|| StoreError::Backend(format!("account #{account} has no INBOX")))
    };
    Ok(recipients.iter().map(inbox).collect::<Result<_, _>>()?)
}

/// Adds a stored delivery's bytes to its recipients' usage, as the message triggers did in the
/// database: the next delivery of the same transaction checks its quota against it.
pub(super) fn count_usage(accounts: &mut HashMap<AccountId, LockedAccount>, recipients: &[AccountId], size: u64) {
    for account in recipients {
        if let Some(a) = accounts.get_mut(account) {
            a.used = a.used.saturating_add(size);
        }
    }
}

/// Stores one body (with its summary and header cache) and a copy of it in each of `inboxes`,
/// each with a new UID and MODSEQ, in ONE statement: one round trip per delivery whatever the
/// number of recipients. The INBOX rows are locked by the UPDATE until commit; the caller
/// holds their accounts' locks (taken first, ascending: the order of the `mail` module).
pub(super) async fn store_copies(
    db: &impl GenericClient,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    internal_date: i64,
    inboxes: &[MailboxId],
) -> Result<Vec<MailboxChange>, StoreError> {
    // Data-modifying CTEs run once each, whatever the outer query reads; the foreign keys of
    // the new rows are checked at the end of the statement, when the body exists.
    let stmt = db
        .prepare_cached(
            "WITH body AS (INSERT INTO blobs(data) VALUES ($1) RETURNING id),
                  summary AS (
                      INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
                      SELECT id, $2, $3, $4, $5, $6 FROM body),
                  header AS (INSERT INTO header_caches(blob_id, data) SELECT id, $7 FROM body),
                  slot AS (
                      UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                       WHERE id = ANY($8)
                       RETURNING id, account_id, uidnext - 1 AS uid, highestmodseq),
                  copy AS (
                      INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
                      SELECT slot.id, slot.uid, body.id, $9, $10, 0, '', slot.highestmodseq FROM slot, body)
             SELECT id, account_id, uid, highestmodseq FROM slot",
        )
        .await
        .db()?;
    let rows = db
        .query(
            &stmt,
            &[
                &raw,
                &(summary.header_len as i64),
                &summary.envelope,
                &summary.bodystructure,
                &summary.body,
                &summary.sent_date,
                &summary.header_cache,
                &inboxes,
                &(raw.len() as i64),
                &internal_date,
            ],
        )
        .await
        .db()?;
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        let (mailbox, uid): (MailboxId, i64) = (r.get(0), r.get(2));
        // UIDs are 32-bit and never reused: a mailbox that has used them all must be
        // re-created (new UIDVALIDITY). The caller rolls this delivery back.
        if uid > i64::from(u32::MAX) {
            return Err(StoreError::Backend(format!("mailbox #{mailbox} has run out of UIDs")));
        }
        changes.push(MailboxChange { account: r.get(1), mailbox, modseq: r.get::<_, i64>(3) as u64 });
    }
    if changes.len() != inboxes.len() {
        // An INBOX deleted since the lookup: impossible under the account lock, but a copy
        // missing silently would be a message lost.
        return Err(StoreError::Backend("a recipient's INBOX disappeared during delivery".into()));
    }
    Ok(changes)
}

/// Stores one message in every recipient's INBOX, after checking every allowance: on
/// `QuotaExceeded` for anyone, nothing is stored for anyone. The queue calls it inside its own
/// transaction (a submission's local copies stored with its queued message); `MailStore::deliver`
/// goes through the batcher (`batch`), which runs the same steps for many deliveries at once.
pub(crate) async fn deliver(
    db: &impl GenericClient,
    recipients: Vec<AccountId>,
    raw: &[u8],
    summary: &portcullis_mime::Summary,
    internal_date: i64,
    default_quota: Option<u64>,
) -> Result<Vec<MailboxChange>, DeliveryError> {
    let recipients = delivery_recipients(recipients);
    if recipients.is_empty() {
        // A body nobody's message refers to would never be removed.
        return Ok(Vec::new());
    }
    let accounts = lock_for_delivery(db, &recipients, default_quota).await?;
    let inboxes = plan_copies(&accounts, &recipients, raw.len() as u64)?;
    Ok(store_copies(db, raw, summary, internal_date, &inboxes).await?)
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
