//! SELECT's message list on SQLite through the backend-free cache of recently selected
//! mailboxes (`portcullis_store::index_cache`, which says when a kept list is current, can be
//! brought forward with the changes since its MODSEQ, or must be read again): here, only the
//! reads that need SQLite.

use rusqlite::Connection;

use super::messages;
use portcullis_store::index_cache::{bring_forward, IndexCache, Lookup, Source};
use portcullis_store::{Mailbox, MailboxId, MessageList, StoreError};

/// The messages of `mailbox`, whose row `conn` has just read inside the transaction it is in:
/// the list matches that row.
pub(crate) fn messages(
    cache: &IndexCache,
    conn: &Connection,
    mailbox: &Mailbox,
) -> Result<(MessageList, Source), StoreError> {
    let (list, source) = match cache.lookup(mailbox) {
        Lookup::Current(list) => return Ok((list, Source::Cached)),
        Lookup::Behind { list, since } => {
            match bring_forward(list, messages::changes_since_in(conn, mailbox.id, since)?, mailbox) {
                Some(list) => (list, Source::BroughtForward),
                None => (load(conn, mailbox.id)?, Source::Loaded),
            }
        }
        Lookup::Missing => (load(conn, mailbox.id)?, Source::Loaded),
    };
    cache.put(mailbox, list.clone());
    Ok((list, source))
}

fn load(conn: &Connection, mailbox: MailboxId) -> Result<MessageList, StoreError> {
    Ok(MessageList::from_messages(messages::message_index(conn, mailbox)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{mailboxes, schema};
    use portcullis_store::{Flags, MessageIndex};
    use rusqlite::params;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'x', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 7);
             INSERT INTO blobs(id, data) VALUES (1, x'00');",
        )
        .unwrap();
        conn
    }

    /// What the writer does, in SQL: add a message with a new UID and MODSEQ.
    fn add(conn: &Connection, flags: u8) -> u32 {
        let (uid, modseq): (u32, i64) = conn
            .query_row(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = 1
                 RETURNING uidnext - 1, highestmodseq",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        conn.execute(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES (1, ?1, 1, 1, 0, ?2, '', ?3)",
            params![uid, flags, modseq],
        )
        .unwrap();
        uid
    }

    fn row(conn: &Connection) -> Mailbox {
        mailboxes::find(conn, 1, "INBOX").unwrap().unwrap()
    }

    fn fresh(conn: &Connection) -> Vec<MessageIndex> {
        messages::message_index(conn, 1).unwrap()
    }

    fn as_vec(list: &MessageList) -> Vec<MessageIndex> {
        list.iter().map(|m| m.to_index()).collect()
    }

    #[test]
    fn follows_every_kind_of_write() {
        let conn = db();
        let cache = IndexCache::default();
        for _ in 0..3000 {
            add(&conn, 0);
        }
        let (list, source) = messages(&cache, &conn, &row(&conn)).unwrap();
        assert_eq!((source, list.len()), (Source::Loaded, 3000));
        let (again, source) = messages(&cache, &conn, &row(&conn)).unwrap();
        assert_eq!(source, Source::Cached);
        assert_eq!(again, list);

        // New messages, flag changes, removals, as another process would make them.
        add(&conn, Flags::SEEN);
        let tx = conn.unchecked_transaction().unwrap();
        messages::remove(&tx, 1, &[5, 6, 2999]).unwrap();
        tx.commit().unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        crate::keywords::store_flags(
            &tx,
            1,
            &messages::UidSet::new(&[1, 7, 3001]),
            portcullis_store::FlagOp::Add,
            &Flags { system: Flags::FLAGGED, keywords: vec!["$Important".into()] },
            None,
        )
        .unwrap();
        tx.commit().unwrap();
        let (list, source) = messages(&cache, &conn, &row(&conn)).unwrap();
        assert_eq!(source, Source::BroughtForward);
        assert_eq!(as_vec(&list), fresh(&conn));
        assert_eq!(list.len(), 2998);
        assert_eq!(messages(&cache, &conn, &row(&conn)).unwrap().1, Source::Cached);
        // The list handed out earlier is what it was.
        assert_eq!(again.len(), 3000);

        // A mailbox deleted and created again under the same id: a new UIDVALIDITY.
        conn.execute_batch(
            "DELETE FROM messages WHERE mailbox_id = 1;
             UPDATE mailboxes SET uidvalidity = 8, uidnext = 1, highestmodseq = 1 WHERE id = 1;
             INSERT INTO blobs(id, data) VALUES (1, x'00');",
        )
        .unwrap();
        add(&conn, 0);
        let (list, source) = messages(&cache, &conn, &row(&conn)).unwrap();
        assert_eq!((source, as_vec(&list)), (Source::Loaded, fresh(&conn)));
        assert_eq!(cache.size(), (1, 1));
    }
}
