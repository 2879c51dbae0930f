//! A local delivery inside a caller's transaction: what the queue needs of the mail store when
//! a submission's local copies are stored with its queued message (`QueueStore::enqueue`), and
//! when an attempt's notice to the sender is stored with the attempt's record
//! (`QueueStore::record_attempt`), each as ONE transaction, as SQLite's backend does.
//!
//! Written beside the queue because the MailStore's `src/mail/` was not on this branch; it does
//! what SQLite's `messages::deliver` does, in PostgreSQL's terms. To reconcile with `src/mail/`
//! once both are merged: make `mail::deliver::deliver` and `mail::announce` `pub(crate)`, and
//! let [`deliver_in`]'s body be those two calls (`deliver(tx, recipients, &raw, &summary,
//! internal_date, default_quota)`, then `announce(tx, &changes)`): they take the same
//! `deadpool_postgres::Transaction` and send the same NOTIFY payload, and this file's other
//! helpers go.
//!
//! Concurrency: several nodes deliver at once. Each recipient's account row is locked (in
//! account order, so two deliveries never wait on each other in a circle) before its quota is
//! checked, so two deliveries cannot both pass the check on the same last bytes; a mailbox's
//! UID and MODSEQ come from one `UPDATE … RETURNING`, whose row lock lasts until commit, so they
//! are handed out in commit order. Every change is announced with `pg_notify`, which
//! PostgreSQL sends at commit and never for a rolled-back transaction.

use deadpool_postgres::Transaction;
use portcullis_store::{AccountId, Delivery, DeliveryError, MailboxChange, StoreError};

use crate::coordination::notify_change;
use crate::Db;

/// A delivery whose summary (ENVELOPE, BODYSTRUCTURE, header cache) was computed before the
/// transaction began: parsing a large message must not hold row locks.
pub(crate) struct PreparedDelivery {
    recipients: Vec<AccountId>,
    raw: Vec<u8>,
    summary: portcullis_mime::Summary,
    internal_date: i64,
}

/// Summarises the message off the async threads (a large message takes a while to parse).
pub(crate) async fn prepare(delivery: Option<Delivery>) -> Result<Option<PreparedDelivery>, StoreError> {
    let Some(delivery) = delivery else { return Ok(None) };
    let Delivery { recipients, raw, internal_date } = delivery;
    let (raw, summary) = tokio::task::spawn_blocking(move || {
        let summary = portcullis_mime::summarize(&raw);
        (raw, summary)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("summarizing a message failed: {e}")))?;
    Ok(Some(PreparedDelivery { recipients, raw, summary, internal_date }))
}

/// Stores the message once and a copy in each recipient's INBOX, inside `tx`; the changes it
/// made (one per INBOX), already announced to commit with `tx`. On `QuotaExceeded` the caller
/// rolls back: nothing is stored for anyone.
pub(crate) async fn deliver_in(
    tx: &Transaction<'_>,
    delivery: &PreparedDelivery,
    default_quota: Option<u64>,
) -> Result<Vec<MailboxChange>, DeliveryError> {
    let mut recipients = delivery.recipients.clone();
    recipients.sort_unstable();
    recipients.dedup();
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    let size = delivery.raw.len() as i64;
    for &account in &recipients {
        check_room(tx, account, size as u64, default_quota).await?;
    }
    let blob = insert_blob(tx, &delivery.raw, &delivery.summary).await?;
    let mut changes = Vec::with_capacity(recipients.len());
    for account in recipients {
        let inbox = tx
            .query_opt("SELECT id FROM mailboxes WHERE account_id = $1 AND name = 'INBOX'", &[&account])
            .await
            .db()?
            .ok_or_else(|| StoreError::Backend(format!("account #{account} has no INBOX")))?;
        let mailbox: i64 = inbox.get(0);
        let row = tx
            .query_one(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                  WHERE id = $1 RETURNING uidnext, highestmodseq",
                &[&mailbox],
            )
            .await
            .db()?;
        let (uidnext, modseq): (i64, i64) = (row.get(0), row.get(1));
        // UIDs are 32-bit and never reused (RFC 9051 §2.3.1.1): a mailbox that used them all
        // must be re-created with a new UIDVALIDITY. The caller's rollback undoes the update.
        if uidnext - 1 > i64::from(u32::MAX) {
            return Err(StoreError::Backend(format!("mailbox #{mailbox} has run out of UIDs")).into());
        }
        tx.execute(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES ($1, $2, $3, $4, $5, 0, '', $6)",
            &[&mailbox, &(uidnext - 1), &blob, &size, &delivery.internal_date, &modseq],
        )
        .await
        .db()?;
        let change = MailboxChange { account, mailbox, modseq: modseq as u64 };
        notify_change(tx, &change).await?;
        changes.push(change);
    }
    Ok(changes)
}

/// `QuotaExceeded` unless `size` more bytes fit in the account's allowance. Locks the account
/// row until the caller's transaction ends (see the module comment).
async fn check_room(
    tx: &Transaction<'_>,
    account: AccountId,
    size: u64,
    default_quota: Option<u64>,
) -> Result<(), DeliveryError> {
    let row = tx
        .query_opt(
            "SELECT a.quota, a.used_bytes, a.localpart || '@' || d.name
               FROM accounts a JOIN domains d ON d.id = a.domain_id
              WHERE a.id = $1 FOR NO KEY UPDATE OF a",
            &[&account],
        )
        .await
        .db()?
        .ok_or_else(|| StoreError::NoSuchAccount(format!("#{account}")))?;
    let (quota, used, address): (Option<i64>, i64, String) = (row.get(0), row.get(1), row.get(2));
    // NULL: the configured default; negative: unlimited (as SQLite's backend stores it).
    let limit = match quota {
        None => default_quota,
        Some(n) if n < 0 => None,
        Some(n) => Some(n as u64),
    };
    if limit.is_some_and(|limit| (used.max(0) as u64).saturating_add(size) > limit) {
        return Err(DeliveryError::QuotaExceeded(address));
    }
    Ok(())
}

/// Stores a body with its summary and header cache (every body has both, as in SQLite).
async fn insert_blob(tx: &Transaction<'_>, raw: &[u8], summary: &portcullis_mime::Summary) -> Result<i64, StoreError> {
    let blob: i64 = tx.query_one("INSERT INTO blobs(data) VALUES ($1) RETURNING id", &[&raw]).await.db()?.get(0);
    tx.execute(
        "INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &blob,
            &(summary.header_len as i64),
            &summary.envelope,
            &summary.bodystructure,
            &summary.body,
            &summary.sent_date,
        ],
    )
    .await
    .db()?;
    tx.execute("INSERT INTO header_caches(blob_id, data) VALUES ($1, $2)", &[&blob, &summary.header_cache])
        .await
        .db()?;
    Ok(blob)
}
