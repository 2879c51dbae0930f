//! Mailboxes and subscriptions in SQL. Names arrive here normalized (`normalize_mailbox_name`).

use rusqlite::{params, Connection, OptionalExtension};

use super::accounts::{next_id, next_uidvalidity, Ids};
use super::messages::{insert_copies, no_such_mailbox, remove, sources, UidSet};
use crate::Db;
use portcullis_store::*;
use portcullis_store::{descendant_range, is_inbox, parents};

// Spelled as in the partial indexes `messages_unseen` and `messages_deleted`, so that these
// count only the index entries of the (usually few) unseen or deleted messages.
pub(super) const COUNT_UNSEEN: &str = "SELECT count(*) FROM messages WHERE mailbox_id = ?1 AND (flags & 1) = 0";
pub(super) const COUNT_DELETED: &str = "SELECT count(*) FROM messages WHERE mailbox_id = ?1 AND (flags & 8) != 0";
pub(super) const COUNT_RECENT: &str = "SELECT count(*) FROM messages WHERE mailbox_id = ?1 AND uid >= ?2";

fn mailbox_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    Ok(Mailbox {
        id: row.get(0)?,
        name: row.get(1)?,
        special_use: row.get(2)?,
        uidvalidity: row.get::<_, i64>(3)? as u32,
        uidnext: row.get::<_, i64>(4)? as u32,
        highestmodseq: row.get::<_, i64>(5)? as u64,
        recent_from: row.get::<_, i64>(6)? as u32,
    })
}

pub(super) fn find(conn: &Connection, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError> {
    conn.prepare_cached(
        "SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from
               FROM mailboxes WHERE account_id = ?1 AND name = ?2",
    )
    .db()?
    .query_row(params![account, name], mailbox_from_row)
    .optional()
    .db()
}

pub(super) fn list(conn: &Connection, account: AccountId) -> Result<Vec<Mailbox>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from
           FROM mailboxes WHERE account_id = ?1 ORDER BY name",
        )
        .db()?;
    let rows = stmt.query_map(params![account], mailbox_from_row).db()?.collect::<Result<Vec<_>, _>>().db()?;
    Ok(rows)
}

/// The mailboxes below `name` (children, grandchildren…), as (id, name).
fn descendants(conn: &Connection, account: AccountId, name: &str) -> Result<Vec<(MailboxId, String)>, StoreError> {
    let (lo, hi) = descendant_range(name);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name FROM mailboxes WHERE account_id = ?1 AND name >= ?2 AND name < ?3 ORDER BY name",
        )
        .db()?;
    let rows = stmt
        .query_map(params![account, lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?
        .collect::<Result<_, _>>()
        .db()?;
    Ok(rows)
}

fn insert(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxChange, StoreError> {
    let (mailbox, modseq): (i64, i64) = conn
        .prepare_cached(
            "INSERT INTO mailboxes(id, account_id, name, special_use, uidvalidity) VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id, highestmodseq",
        )
        .db()?
        .query_row(params![next_id(conn, Ids::Mailboxes)?, account, name, special_use, next_uidvalidity(conn)?], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .db()?;
    Ok(MailboxChange { account, mailbox, modseq: modseq as u64 })
}

fn create_missing_parents(conn: &Connection, account: AccountId, name: &str) -> Result<Vec<MailboxChange>, StoreError> {
    let mut created = Vec::new();
    for parent in parents(name) {
        if find(conn, account, parent)?.is_none() {
            created.push(insert(conn, account, parent, None)?);
        }
    }
    Ok(created)
}

/// `TooManyMailboxes` unless `adding` more mailboxes fit under `limit`, counted in the write
/// transaction, so that two sessions creating at once cannot both take the last place.
fn check_room(conn: &Connection, account: AccountId, adding: usize, limit: Option<usize>) -> Result<(), MailboxError> {
    let Some(limit) = limit else { return Ok(()) };
    let have: i64 = conn
        .prepare_cached("SELECT count(*) FROM mailboxes WHERE account_id = ?1")
        .db()?
        .query_row(params![account], |r| r.get(0))
        .db()?;
    if have.max(0) as usize + adding > limit {
        return Err(MailboxError::TooManyMailboxes(limit));
    }
    Ok(())
}

/// How many of `name`'s parents do not exist yet.
fn missing_parents(conn: &Connection, account: AccountId, name: &str) -> Result<usize, StoreError> {
    let mut missing = 0;
    for parent in parents(name) {
        if find(conn, account, parent)?.is_none() {
            missing += 1;
        }
    }
    Ok(missing)
}

fn require_account(conn: &Connection, account: AccountId) -> Result<(), StoreError> {
    match conn.query_row("SELECT 1 FROM accounts WHERE id = ?1", params![account], |_| Ok(())).optional().db()? {
        Some(()) => Ok(()),
        None => Err(StoreError::NoSuchAccount(format!("#{account}"))),
    }
}

pub(super) fn create(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<&str>,
    limit: Option<usize>,
) -> Result<(MailboxId, Vec<MailboxChange>), MailboxError> {
    require_account(conn, account)?;
    if find(conn, account, name)?.is_some() {
        return Err(MailboxError::AlreadyExists);
    }
    check_room(conn, account, 1 + missing_parents(conn, account, name)?, limit)?;
    let mut changes = create_missing_parents(conn, account, name)?;
    let created = insert(conn, account, name, special_use)?;
    changes.push(created);
    Ok((created.mailbox, changes))
}

pub(super) fn delete(conn: &Connection, account: AccountId, name: &str) -> Result<Vec<MailboxChange>, MailboxError> {
    if is_inbox(name) {
        return Err(MailboxError::InboxCannotBeDeleted);
    }
    let mailbox = find(conn, account, name)?.ok_or(MailboxError::NoSuchMailbox)?;
    if !descendants(conn, account, name)?.is_empty() {
        return Err(MailboxError::HasChildren);
    }
    // The messages first, while the mailbox row still exists: the trigger that gives their
    // bytes back to the account finds the account through it (a cascade would run the
    // trigger after the mailbox row is gone). Expunged UIDs and keywords go by cascade.
    conn.execute("DELETE FROM messages WHERE mailbox_id = ?1", params![mailbox.id]).db()?;
    conn.execute("DELETE FROM mailboxes WHERE id = ?1", params![mailbox.id]).db()?;
    Ok(vec![MailboxChange { account, mailbox: mailbox.id, modseq: mailbox.highestmodseq }])
}

pub(super) fn rename(
    conn: &Connection,
    account: AccountId,
    from: &str,
    to: &str,
    limit: Option<usize>,
) -> Result<Vec<MailboxChange>, MailboxError> {
    let source = find(conn, account, from)?.ok_or(MailboxError::NoSuchMailbox)?;
    if is_inbox(to) || find(conn, account, to)?.is_some() {
        return Err(MailboxError::AlreadyExists);
    }
    // A rename adds the parents of `to` that are missing; renaming INBOX also adds `to`.
    let adding = missing_parents(conn, account, to)? + usize::from(is_inbox(from));
    if adding > 0 {
        check_room(conn, account, adding, limit)?;
    }
    if is_inbox(from) {
        return rename_inbox(conn, account, &source, to);
    }
    if to.starts_with(&format!("{from}/")) {
        // A mailbox cannot become its own descendant.
        return Err(MailboxError::InvalidName);
    }
    let mut renames = vec![(source.id, from.to_string(), to.to_string())];
    for (id, name) in descendants(conn, account, from)? {
        let new = format!("{to}{}", &name[from.len()..]);
        if new.len() > MAX_MAILBOX_NAME {
            return Err(MailboxError::InvalidName);
        }
        if find(conn, account, &new)?.is_some() {
            return Err(MailboxError::AlreadyExists);
        }
        renames.push((id, name, new));
    }
    let mut changes = create_missing_parents(conn, account, to)?;
    let mut rename =
        conn.prepare_cached("UPDATE mailboxes SET name = ?2 WHERE id = ?1 RETURNING highestmodseq").db()?;
    for (id, old, new) in &renames {
        let modseq: i64 = rename.query_row(params![id, new], |r| r.get(0)).db()?;
        changes.push(MailboxChange { account, mailbox: *id, modseq: modseq as u64 });
        // Subscriptions follow the mailbox, as users expect (RFC 9051 leaves it open).
        if conn.execute("DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2", params![account, old]).db()?
            > 0
        {
            conn.execute(
                "INSERT INTO subscriptions(account_id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![account, new],
            )
            .db()?;
        }
    }
    Ok(changes)
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox and leaves INBOX, with
/// its children, in place and empty.
fn rename_inbox(
    conn: &Connection,
    account: AccountId,
    inbox: &Mailbox,
    to: &str,
) -> Result<Vec<MailboxChange>, MailboxError> {
    let mut changes = create_missing_parents(conn, account, to)?;
    let created = insert(conn, account, to, None)?;
    changes.push(created);
    let messages = sources(conn, inbox.id, &UidSet::all())?;
    if !messages.is_empty() {
        let (pairs, target) = insert_copies(conn, &messages, created.mailbox)?;
        changes.push(target);
        let moved: Vec<u32> = pairs.iter().map(|(old, _)| *old).collect();
        changes.extend(remove(conn, inbox.id, &moved)?.map(|(_, change)| change));
    }
    Ok(changes)
}

pub(super) fn subscriptions(conn: &Connection, account: AccountId) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name").db()?;
    let names = stmt.query_map(params![account], |r| r.get(0)).db()?.collect::<Result<Vec<String>, _>>().db()?;
    Ok(names)
}

pub(super) fn set_subscribed(
    conn: &Connection,
    account: AccountId,
    name: &str,
    subscribed: bool,
    limit: Option<usize>,
) -> Result<(), MailboxError> {
    require_account(conn, account)?;
    if let (true, Some(limit)) = (subscribed, limit) {
        // Subscriptions may name mailboxes that do not exist, so they are bounded on their
        // own, by as many as there may be mailboxes.
        let (have, already): (i64, i64) = conn
            .prepare_cached("SELECT count(*), coalesce(sum(name = ?2), 0) FROM subscriptions WHERE account_id = ?1")
            .db()?
            .query_row(params![account, name], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?;
        if already == 0 && have.max(0) as usize >= limit {
            return Err(MailboxError::TooManySubscriptions(limit));
        }
    }
    if subscribed {
        conn.execute(
            "INSERT INTO subscriptions(account_id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![account, name],
        )
        .db()?;
    } else {
        conn.execute("DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2", params![account, name]).db()?;
    }
    Ok(())
}

pub(super) fn status(conn: &Connection, mailbox: MailboxId) -> Result<MailboxStatus, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    let Some((uidnext, uidvalidity, highestmodseq, recent_from)) = tx
        .prepare_cached("SELECT uidnext, uidvalidity, highestmodseq, recent_from FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row(params![mailbox], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
        })
        .optional()
        .db()?
    else {
        return Err(no_such_mailbox(mailbox));
    };
    let (messages, size): (i64, i64) = tx
        .prepare_cached("SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?1")
        .db()?
        .query_row(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?;
    let unseen: i64 = tx.prepare_cached(COUNT_UNSEEN).db()?.query_row(params![mailbox], |r| r.get(0)).db()?;
    let deleted: i64 = tx.prepare_cached(COUNT_DELETED).db()?.query_row(params![mailbox], |r| r.get(0)).db()?;
    // Usually none: a range scan of the (mailbox_id, uid) index from `recent_from`.
    let recent: i64 =
        tx.prepare_cached(COUNT_RECENT).db()?.query_row(params![mailbox, recent_from], |r| r.get(0)).db()?;
    Ok(MailboxStatus {
        messages: messages as u32,
        unseen: unseen as u32,
        deleted: deleted as u32,
        size: size.max(0) as u64,
        uidnext: uidnext as u32,
        uidvalidity: uidvalidity as u32,
        highestmodseq: highestmodseq as u64,
        recent: recent as u32,
    })
}

/// \Recent: moves `recent_from` up to UIDNEXT, returning what it passed over. Runs on the
/// writer, inside its transaction, which holds SQLite's write lock: no other connection, in
/// this process or another, can claim the same UIDs.
pub(super) fn claim_recent(conn: &Connection, mailbox: MailboxId) -> Result<Option<(u32, u32)>, StoreError> {
    let Some((from, to)) = conn
        .prepare_cached("SELECT recent_from, uidnext FROM mailboxes WHERE id = ?1")
        .db()?
        .query_row(params![mailbox], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()
        .db()?
    else {
        return Ok(None);
    };
    if from >= to {
        return Ok(None);
    }
    conn.prepare_cached("UPDATE mailboxes SET recent_from = ?2 WHERE id = ?1")
        .db()?
        .execute(params![mailbox, to])
        .db()?;
    Ok(Some((from as u32, to as u32)))
}
