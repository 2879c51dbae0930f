//! Flags and keywords in SQL: STORE, and the keywords a mailbox knows.

use rusqlite::{params, Connection, OptionalExtension};

use super::messages::{allocate, index_from_row, no_such_mailbox, select_uids, UidSet};
use crate::Db;
use portcullis_store::*;
use portcullis_store::{encode_keywords, is_valid_keyword, sort_keywords};

/// The keywords in the spelling the mailbox first saw them in, sorted, each once; invalid
/// ones dropped. With `register`, new ones join the mailbox's list.
pub(super) fn canonical_keywords(
    conn: &Connection,
    mailbox: MailboxId,
    keywords: &[String],
    register: bool,
) -> Result<Vec<String>, StoreError> {
    if keywords.is_empty() {
        return Ok(Vec::new());
    }
    // `keyword` is a NOCASE column, so `=` matches any case.
    let mut known =
        conn.prepare_cached("SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ?1 AND keyword = ?2").db()?;
    let mut add = conn.prepare_cached("INSERT INTO mailbox_keywords(mailbox_id, keyword) VALUES (?1, ?2)").db()?;
    let mut out = Vec::with_capacity(keywords.len());
    for keyword in keywords.iter().filter(|k| is_valid_keyword(k)) {
        match known.query_row(params![mailbox, keyword], |r| r.get::<_, String>(0)).optional().db()? {
            Some(spelling) => out.push(spelling),
            None => {
                if register {
                    add.execute(params![mailbox, keyword]).db()?;
                }
                out.push(keyword.clone());
            }
        }
    }
    sort_keywords(&mut out);
    Ok(out)
}

pub(super) fn mailbox_keywords(conn: &Connection, mailbox: MailboxId) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ?1 ORDER BY keyword").db()?;
    let keywords = stmt.query_map(params![mailbox], |r| r.get(0)).db()?.collect::<Result<Vec<String>, _>>().db()?;
    Ok(keywords)
}

/// STORE: one new MODSEQ for all the messages this changes, allocated only if one changes.
pub(super) fn store_flags(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &UidSet,
    op: FlagOp,
    flags: &Flags,
    unchanged_since: Option<u64>,
) -> Result<(FlagsUpdate, Vec<MailboxChange>), StoreError> {
    let change = Flags {
        system: flags.system & Flags::ALL,
        keywords: canonical_keywords(conn, mailbox, &flags.keywords, op != FlagOp::Remove)?,
    };
    let current = select_uids(
        conn,
        "SELECT uid, flags, keywords, modseq, id FROM messages
          WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid",
        mailbox,
        uids,
        |r| Ok((index_from_row(r, 0)?, r.get::<_, i64>(4)?)),
    )?;
    let mut update =
        conn.prepare_cached("UPDATE messages SET flags = ?2, keywords = ?3, modseq = ?4 WHERE id = ?1").db()?;
    let mut result = FlagsUpdate::default();
    let mut allocated: Option<MailboxChange> = None;
    for (message, id) in current {
        if unchanged_since.is_some_and(|since| message.modseq > since) {
            result.modified.push(message.uid);
            continue;
        }
        let next = message.flags.apply(op, &change);
        if next == message.flags {
            continue;
        }
        let modseq = match allocated {
            Some(change) => change.modseq,
            None => {
                let at = allocate(conn, mailbox, 0)?.ok_or_else(|| no_such_mailbox(mailbox))?;
                allocated = Some(at.change);
                at.change.modseq
            }
        };
        update.execute(params![id, next.system, encode_keywords(&next.keywords), modseq as i64]).db()?;
        result.updated.push(MessageIndex { uid: message.uid, flags: next, modseq });
    }
    Ok((result, allocated.into_iter().collect()))
}
