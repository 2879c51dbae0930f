//! Mailboxes and subscriptions. Names arrive here normalized (`normalize_mailbox_name`).
//!
//! Names sort and compare bytewise (`COLLATE "C"`), as SQLite's BINARY collation does:
//! listings come in the same order on both backends, and a hierarchy's descendants are the
//! range `descendant_range` gives, whatever the database's default collation.

use deadpool_postgres::GenericClient;
use portcullis_store::*;
use portcullis_store::{descendant_range, is_inbox, parents};
use tokio_postgres::Row;

use super::copy::{insert_copies, remove, sources};
use super::locks::{lock_accounts, lock_mailboxes, no_such_mailbox};
use super::Uids;
use crate::{now, Db};

const MAILBOX_COLUMNS: &str = "id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from";

fn mailbox_from_row(row: &Row) -> Mailbox {
    Mailbox {
        id: row.get(0),
        name: row.get(1),
        special_use: row.get(2),
        uidvalidity: row.get::<_, i64>(3) as u32,
        uidnext: row.get::<_, i64>(4) as u32,
        highestmodseq: row.get::<_, i64>(5) as u64,
        recent_from: row.get::<_, i64>(6) as u32,
    }
}

pub(super) async fn find(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>, StoreError> {
    let stmt = db
        .prepare_cached(&format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 AND name = $2"))
        .await
        .db()?;
    Ok(db.query_opt(&stmt, &[&account, &name]).await.db()?.as_ref().map(mailbox_from_row))
}

pub(super) async fn list(db: &impl GenericClient, account: AccountId) -> Result<Vec<Mailbox>, StoreError> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 ORDER BY name COLLATE \"C\""
        ))
        .await
        .db()?;
    Ok(db.query(&stmt, &[&account]).await.db()?.iter().map(mailbox_from_row).collect())
}

/// The mailboxes below `name` (children, grandchildren…), as (id, name), in name order.
async fn descendants(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Vec<(MailboxId, String)>, StoreError> {
    let (lo, hi) = descendant_range(name);
    let stmt = db
        .prepare_cached(
            "SELECT id, name FROM mailboxes
              WHERE account_id = $1 AND name COLLATE \"C\" >= $2 AND name COLLATE \"C\" < $3
              ORDER BY name COLLATE \"C\"",
        )
        .await
        .db()?;
    Ok(db.query(&stmt, &[&account, &lo, &hi]).await.db()?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A fresh UIDVALIDITY: the current time, but always larger than any handed out before, so
/// that a mailbox deleted and re-created within a second still gets a new one (RFC 9051
/// §2.3.1.1). The counter's row lock lasts until commit, so two nodes never take the same.
pub(crate) async fn next_uidvalidity(db: &impl GenericClient) -> Result<u32, StoreError> {
    let stmt = db
        .prepare_cached(
            "UPDATE meta SET value = CASE WHEN greatest($1, value + 1) & 4294967295 = 0 THEN 1
                                          ELSE greatest($1, value + 1) & 4294967295 END
              WHERE key = 'uidvalidity' RETURNING value",
        )
        .await
        .db()?;
    let value: i64 = db
        .query_opt(&stmt, &[&now()])
        .await
        .db()?
        .ok_or_else(|| StoreError::Backend("the uidvalidity counter is missing from meta".into()))?
        .get(0);
    Ok(value as u32)
}

async fn insert(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxChange, StoreError> {
    let uidvalidity = i64::from(next_uidvalidity(db).await?);
    let stmt = db
        .prepare_cached(
            "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) VALUES ($1, $2, $3, $4)
             RETURNING id, highestmodseq",
        )
        .await
        .db()?;
    let row = db.query_one(&stmt, &[&account, &name, &special_use, &uidvalidity]).await.db()?;
    Ok(MailboxChange { account, mailbox: row.get(0), modseq: row.get::<_, i64>(1) as u64 })
}

/// The parents of `name` that do not exist yet, outermost first.
async fn missing_parents<'a>(
    db: &impl GenericClient,
    account: AccountId,
    name: &'a str,
) -> Result<Vec<&'a str>, StoreError> {
    let mut missing = Vec::new();
    for parent in parents(name) {
        if find(db, account, parent).await?.is_none() {
            missing.push(parent);
        }
    }
    Ok(missing)
}

async fn create_missing_parents(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Vec<MailboxChange>, StoreError> {
    let mut created = Vec::new();
    for parent in missing_parents(db, account, name).await? {
        created.push(insert(db, account, parent, None).await?);
    }
    Ok(created)
}

/// `TooManyMailboxes` unless `adding` more mailboxes fit under `limit`, counted under the
/// account's lock, so that two nodes creating at once cannot both take the last place.
async fn check_room(
    db: &impl GenericClient,
    account: AccountId,
    adding: usize,
    limit: Option<usize>,
) -> Result<(), MailboxError> {
    let Some(limit) = limit else { return Ok(()) };
    let stmt = db.prepare_cached("SELECT count(*) FROM mailboxes WHERE account_id = $1").await.db()?;
    let have: i64 = db.query_one(&stmt, &[&account]).await.db()?.get(0);
    if have.max(0) as usize + adding > limit {
        return Err(MailboxError::TooManyMailboxes(limit));
    }
    Ok(())
}

/// Locks the account's row (see `locks`); `false` if there is none.
async fn lock_account(db: &impl GenericClient, account: AccountId) -> Result<bool, StoreError> {
    Ok(!lock_accounts(db, &[account]).await?.is_empty())
}

/// [`lock_account`], with `NoSuchAccount` if there is none.
async fn require_account(db: &impl GenericClient, account: AccountId) -> Result<(), StoreError> {
    match lock_account(db, account).await? {
        true => Ok(()),
        false => Err(StoreError::NoSuchAccount(format!("#{account}"))),
    }
}

pub(super) async fn create(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
    limit: Option<usize>,
) -> Result<(MailboxId, Vec<MailboxChange>), MailboxError> {
    require_account(db, account).await?;
    if find(db, account, name).await?.is_some() {
        return Err(MailboxError::AlreadyExists);
    }
    check_room(db, account, 1 + missing_parents(db, account, name).await?.len(), limit).await?;
    let mut changes = create_missing_parents(db, account, name).await?;
    let created = insert(db, account, name, special_use).await?;
    changes.push(created);
    Ok((created.mailbox, changes))
}

pub(super) async fn delete(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Vec<MailboxChange>, MailboxError> {
    if is_inbox(name) {
        return Err(MailboxError::InboxCannotBeDeleted);
    }
    if !lock_account(db, account).await? {
        return Err(MailboxError::NoSuchMailbox);
    }
    let mailbox = find(db, account, name).await?.ok_or(MailboxError::NoSuchMailbox)?;
    if !descendants(db, account, name).await?.is_empty() {
        return Err(MailboxError::HasChildren);
    }
    // The messages first, while the mailbox row still exists: the trigger that gives their
    // bytes back to the account finds the account through it (in a cascade the mailbox row
    // would already be gone). Expunged UIDs and keywords go by cascade.
    let messages = db.prepare_cached("DELETE FROM messages WHERE mailbox_id = $1").await.db()?;
    db.execute(&messages, &[&mailbox.id]).await.db()?;
    let row = db.prepare_cached("DELETE FROM mailboxes WHERE id = $1").await.db()?;
    db.execute(&row, &[&mailbox.id]).await.db()?;
    Ok(vec![MailboxChange { account, mailbox: mailbox.id, modseq: mailbox.highestmodseq }])
}

pub(super) async fn rename(
    db: &impl GenericClient,
    account: AccountId,
    from: &str,
    to: &str,
    limit: Option<usize>,
) -> Result<Vec<MailboxChange>, MailboxError> {
    if !lock_account(db, account).await? {
        return Err(MailboxError::NoSuchMailbox);
    }
    let source = find(db, account, from).await?.ok_or(MailboxError::NoSuchMailbox)?;
    if is_inbox(to) || find(db, account, to).await?.is_some() {
        return Err(MailboxError::AlreadyExists);
    }
    // A rename adds the parents of `to` that are missing; renaming INBOX also adds `to`.
    let adding = missing_parents(db, account, to).await?.len() + usize::from(is_inbox(from));
    if adding > 0 {
        check_room(db, account, adding, limit).await?;
    }
    if is_inbox(from) {
        return rename_inbox(db, account, &source, to).await;
    }
    if to.starts_with(&format!("{from}/")) {
        // A mailbox cannot become its own descendant.
        return Err(MailboxError::InvalidName);
    }
    let mut renames = vec![(source.id, from.to_string(), to.to_string())];
    for (id, name) in descendants(db, account, from).await? {
        let new = format!("{to}{}", &name[from.len()..]);
        if new.len() > MAX_MAILBOX_NAME {
            return Err(MailboxError::InvalidName);
        }
        if find(db, account, &new).await?.is_some() {
            return Err(MailboxError::AlreadyExists);
        }
        renames.push((id, name, new));
    }
    let mut changes = create_missing_parents(db, account, to).await?;
    let rename =
        db.prepare_cached("UPDATE mailboxes SET name = $2 WHERE id = $1 RETURNING highestmodseq").await.db()?;
    // Subscriptions follow the mailbox, as users expect (RFC 9051 leaves it open).
    let follow = db
        .prepare_cached(
            "WITH gone AS (DELETE FROM subscriptions WHERE account_id = $1 AND name = $2 RETURNING 1)
             INSERT INTO subscriptions(account_id, name) SELECT $1, $3 WHERE EXISTS (SELECT 1 FROM gone)
             ON CONFLICT DO NOTHING",
        )
        .await
        .db()?;
    for (id, old, new) in &renames {
        let modseq: i64 = db.query_one(&rename, &[id, new]).await.db()?.get(0);
        changes.push(MailboxChange { account, mailbox: *id, modseq: modseq as u64 });
        db.execute(&follow, &[&account, old, new]).await.db()?;
    }
    Ok(changes)
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox and leaves INBOX, with
/// its children, in place and empty.
async fn rename_inbox(
    db: &impl GenericClient,
    account: AccountId,
    inbox: &Mailbox,
    to: &str,
) -> Result<Vec<MailboxChange>, MailboxError> {
    let mut changes = create_missing_parents(db, account, to).await?;
    let created = insert(db, account, to, None).await?;
    changes.push(created);
    lock_mailboxes(db, &[inbox.id]).await?;
    let messages = sources(db, inbox.id, &Uids::all()).await?;
    if !messages.is_empty() {
        let (pairs, target) = insert_copies(db, &messages, created.mailbox).await?;
        changes.push(target);
        let moved: Vec<u32> = pairs.iter().map(|(old, _)| *old).collect();
        changes.extend(remove(db, inbox.id, &moved).await?.map(|(_, change)| change));
    }
    Ok(changes)
}

pub(super) async fn subscriptions(db: &impl GenericClient, account: AccountId) -> Result<Vec<String>, StoreError> {
    let stmt = db
        .prepare_cached("SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name COLLATE \"C\"")
        .await
        .db()?;
    Ok(db.query(&stmt, &[&account]).await.db()?.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn set_subscribed(
    db: &impl GenericClient,
    account: AccountId,
    name: &str,
    subscribed: bool,
    limit: Option<usize>,
) -> Result<(), MailboxError> {
    require_account(db, account).await?;
    if let (true, Some(limit)) = (subscribed, limit) {
        // Subscriptions may name mailboxes that do not exist, so they are bounded on their
        // own, by as many as there may be mailboxes.
        let stmt = db
            .prepare_cached(
                "SELECT count(*), count(*) FILTER (WHERE name = $2) FROM subscriptions WHERE account_id = $1",
            )
            .await
            .db()?;
        let row = db.query_one(&stmt, &[&account, &name]).await.db()?;
        let (have, already): (i64, i64) = (row.get(0), row.get(1));
        if already == 0 && have.max(0) as usize >= limit {
            return Err(MailboxError::TooManySubscriptions(limit));
        }
    }
    let sql = if subscribed {
        "INSERT INTO subscriptions(account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2"
    };
    let stmt = db.prepare_cached(sql).await.db()?;
    db.execute(&stmt, &[&account, &name]).await.db()?;
    Ok(())
}

/// STATUS: the row and the counts in one statement, so one snapshot without a transaction.
/// The unseen and deleted counts are spelled as the partial indexes `messages_unseen` and
/// `messages_deleted`, so that they read only the (usually few) index entries of those messages.
pub(super) async fn status(db: &impl GenericClient, mailbox: MailboxId) -> Result<MailboxStatus, StoreError> {
    let stmt = db
        .prepare_cached(
            "SELECT mb.uidnext, mb.uidvalidity, mb.highestmodseq,
                    (SELECT count(*) FROM messages WHERE mailbox_id = $1),
                    (SELECT coalesce(sum(size), 0)::bigint FROM messages WHERE mailbox_id = $1),
                    (SELECT count(*) FROM messages WHERE mailbox_id = $1 AND (flags & 1) = 0),
                    (SELECT count(*) FROM messages WHERE mailbox_id = $1 AND (flags & 8) <> 0),
                    (SELECT count(*) FROM messages WHERE mailbox_id = $1 AND uid >= mb.recent_from)
               FROM mailboxes mb WHERE mb.id = $1",
        )
        .await
        .db()?;
    let row = db.query_opt(&stmt, &[&mailbox]).await.db()?.ok_or_else(|| no_such_mailbox(mailbox))?;
    let value = |i: usize| row.get::<_, i64>(i);
    Ok(MailboxStatus {
        messages: value(3) as u32,
        unseen: value(5) as u32,
        deleted: value(6) as u32,
        size: value(4).max(0) as u64,
        uidnext: value(0) as u32,
        uidvalidity: value(1) as u32,
        highestmodseq: value(2) as u64,
        recent: value(7) as u32,
    })
}

/// \Recent: moves `recent_from` up to UIDNEXT, returning what it passed over. One statement
/// on the locked row: of two nodes claiming at once, the second waits for the first's update
/// and then finds nothing left to claim.
pub(super) async fn claim_recent(
    db: &impl GenericClient,
    mailbox: MailboxId,
) -> Result<Option<(u32, u32)>, StoreError> {
    let stmt = db
        .prepare_cached(
            "WITH old AS (SELECT id, recent_from FROM mailboxes WHERE id = $1 FOR NO KEY UPDATE)
             UPDATE mailboxes m SET recent_from = m.uidnext FROM old
              WHERE m.id = old.id AND old.recent_from < m.uidnext
              RETURNING old.recent_from, m.uidnext",
        )
        .await
        .db()?;
    Ok(db.query_opt(&stmt, &[&mailbox]).await.db()?.map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32)))
}
