//! The row locks of mail writes, and the UIDs and MODSEQs they hand out.
//!
//! The order (see the `mail` module): account rows first, ascending, then mailbox rows.
//! An account row is locked `FOR NO KEY UPDATE`, the strength of the `used_bytes` update the
//! message triggers make anyway, so the foreign key checks of other tables (`KEY SHARE`) never
//! wait for it. Holding it serializes the writes that add or remove an account's messages or
//! mailboxes: quota checks and mailbox counts are then exact across nodes, as SQLite's single
//! writer made them.

use deadpool_postgres::GenericClient;
use portcullis_store::{AccountId, MailboxChange, MailboxId, StoreError};

use crate::Db;

/// A mailbox that a session had looked up was deleted since (by another session or node):
/// rare, and answered like any other failure (the same words as SQLite's backend).
pub(super) fn no_such_mailbox(mailbox: MailboxId) -> StoreError {
    StoreError::Backend(format!("mailbox #{mailbox} does not exist"))
}

/// Locks the rows of these accounts (any order, repeats allowed) in ascending id order;
/// returns the ids that exist.
pub(super) async fn lock_accounts(
    db: &impl GenericClient,
    accounts: &[AccountId],
) -> Result<Vec<AccountId>, StoreError> {
    let mut ids = accounts.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // With ORDER BY, rows are locked as the sort returns them (PostgreSQL's SELECT manual,
    // "The Locking Clause").
    let stmt =
        db.prepare_cached("SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE").await.db()?;
    let rows = db.query(&stmt, &[&ids]).await.db()?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Locks the row of the account that owns `mailbox`; `None` if the mailbox does not exist.
pub(super) async fn lock_owner(db: &impl GenericClient, mailbox: MailboxId) -> Result<Option<AccountId>, StoreError> {
    let stmt = db
        .prepare_cached(
            "SELECT a.id FROM mailboxes m JOIN accounts a ON a.id = m.account_id
              WHERE m.id = $1 FOR NO KEY UPDATE OF a",
        )
        .await
        .db()?;
    Ok(db.query_opt(&stmt, &[&mailbox]).await.db()?.map(|r| r.get(0)))
}

/// Locks the rows of the accounts owning these mailboxes (in account order); returns each
/// mailbox's owner in the order given, `None` for one that does not exist.
pub(super) async fn lock_owners(
    db: &impl GenericClient,
    mailboxes: &[MailboxId],
) -> Result<Vec<Option<AccountId>>, StoreError> {
    let stmt = db.prepare_cached("SELECT id, account_id FROM mailboxes WHERE id = ANY($1)").await.db()?;
    let rows = db.query(&stmt, &[&mailboxes]).await.db()?;
    let owner =
        |mailbox: MailboxId| rows.iter().find(|r| r.get::<_, i64>(0) == mailbox).map(|r| r.get::<_, AccountId>(1));
    let owners: Vec<Option<AccountId>> = mailboxes.iter().map(|&m| owner(m)).collect();
    lock_accounts(db, &owners.iter().flatten().copied().collect::<Vec<_>>()).await?;
    Ok(owners)
}

/// Locks these mailbox rows in ascending id order (missing ones are skipped): a write that
/// reads messages and then changes them on the strength of what it read (MOVE, EXPUNGE)
/// holds the lock that STORE takes first, so no flag change commits in between unseen.
pub(super) async fn lock_mailboxes(db: &impl GenericClient, mailboxes: &[MailboxId]) -> Result<(), StoreError> {
    let mut ids = mailboxes.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let stmt =
        db.prepare_cached("SELECT id FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE").await.db()?;
    db.query(&stmt, &[&ids]).await.db()?;
    Ok(())
}

/// What one write did to one mailbox: its first new UID and its new MODSEQ.
pub(super) struct Allocation {
    pub first_uid: u32,
    pub change: MailboxChange,
}

/// Takes `count` UIDs (possibly none) and one new MODSEQ in a mailbox; `None` if it does not
/// exist. The row lock this takes lasts until commit: another node allocating in the same
/// mailbox waits, then reads the values this transaction committed.
pub(super) async fn allocate(
    db: &impl GenericClient,
    mailbox: MailboxId,
    count: u32,
) -> Result<Option<Allocation>, StoreError> {
    let stmt = db
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + 1
              WHERE id = $1
              RETURNING uidnext, highestmodseq, account_id",
        )
        .await
        .db()?;
    let Some(row) = db.query_opt(&stmt, &[&mailbox, &i64::from(count)]).await.db()? else { return Ok(None) };
    let (uidnext, modseq, account): (i64, i64, AccountId) = (row.get(0), row.get(1), row.get(2));
    // UIDs are 32-bit and never reused: a mailbox that has used them all must be re-created
    // (new UIDVALIDITY). The error rolls the transaction back, update included.
    if uidnext - 1 > i64::from(u32::MAX) {
        return Err(StoreError::Backend(format!("mailbox #{mailbox} has run out of UIDs")));
    }
    Ok(Some(Allocation {
        first_uid: (uidnext - i64::from(count)) as u32,
        change: MailboxChange { account, mailbox, modseq: modseq as u64 },
    }))
}

/// A delivery's view of one recipient account, read under its row lock: what its quota check
/// and its INBOX allocation need, so that a delivery costs no further lookups.
pub(super) struct LockedAccount {
    /// "localpart@domain", for a refusal that names the account.
    pub address: String,
    /// Bytes used (kept by the message triggers), as of the lock.
    pub used: u64,
    /// The allowance in effect (`None`: unlimited).
    pub limit: Option<u64>,
    /// `None` for an account without INBOX (damage: every account is made with one).
    pub inbox: Option<MailboxId>,
}

/// Locks the rows of these accounts (any order, repeats allowed) in ascending id order, as
/// [`lock_accounts`] does, and returns what a delivery needs of each in the same round trip;
/// an account that does not exist is missing from the map.
pub(super) async fn lock_for_delivery(
    db: &impl GenericClient,
    accounts: &[AccountId],
    default_quota: Option<u64>,
) -> Result<std::collections::HashMap<AccountId, LockedAccount>, StoreError> {
    let mut ids = accounts.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // ORDER BY: rows are locked as the sort returns them. After waiting for a lock, READ
    // COMMITTED re-reads the locked row, so `used_bytes` is the committed value.
    let stmt = db
        .prepare_cached(
            "SELECT a.id, a.localpart || '@' || d.name, a.quota, a.used_bytes,
                    (SELECT m.id FROM mailboxes m WHERE m.account_id = a.id AND m.name = 'INBOX')
               FROM accounts a JOIN domains d ON d.id = a.domain_id
              WHERE a.id = ANY($1) ORDER BY a.id FOR NO KEY UPDATE OF a",
        )
        .await
        .db()?;
    let rows = db.query(&stmt, &[&ids]).await.db()?;
    Ok(rows
        .iter()
        .map(|r| {
            let account = LockedAccount {
                address: r.get(1),
                limit: super::quota::effective_quota(r.get(2), default_quota),
                used: r.get::<_, i64>(3).max(0) as u64,
                inbox: r.get(4),
            };
            (r.get(0), account)
        })
        .collect())
}
