//! Versioned schema. `PRAGMA user_version` records how many migrations have run; each migration
//! runs once, in its own transaction, in order. Never edit a released migration: add one.

use rusqlite::Connection;

use crate::StoreError;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: domains, accounts, mailboxes, messages and their bodies.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE domains (
        id      INTEGER PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL
    ) STRICT;

    -- quota: NULL = the configured default, -1 = unlimited, otherwise bytes.
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        domain_id     INTEGER NOT NULL REFERENCES domains(id),
        localpart     TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        quota         INTEGER,
        used_bytes    INTEGER NOT NULL DEFAULT 0,
        created       INTEGER NOT NULL,
        UNIQUE (domain_id, localpart)
    ) STRICT;

    CREATE TABLE mailboxes (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        special_use   TEXT,
        subscribed    INTEGER NOT NULL DEFAULT 1,
        uidvalidity   INTEGER NOT NULL,
        uidnext       INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        UNIQUE (account_id, name)
    ) STRICT;

    -- Raw message bytes, shared by every mailbox entry of the same delivery, so that a
    -- message to 50 local recipients is stored once. Kept apart from `messages` so that
    -- scanning flags and UIDs never reads message bodies.
    CREATE TABLE blobs (
        id   INTEGER PRIMARY KEY,
        data BLOB NOT NULL
    ) STRICT;

    -- flags: bit set of \Seen 1, \Answered 2, \Flagged 4, \Deleted 8, \Draft 16;
    -- keywords: space-separated IMAP keywords.
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid           INTEGER NOT NULL,
        blob_id       INTEGER NOT NULL REFERENCES blobs(id),
        size          INTEGER NOT NULL,
        internal_date INTEGER NOT NULL,
        flags         INTEGER NOT NULL DEFAULT 0,
        keywords      TEXT NOT NULL DEFAULT '',
        modseq        INTEGER NOT NULL,
        UNIQUE (mailbox_id, uid)
    ) STRICT;
    CREATE INDEX messages_by_blob ON messages(blob_id);

    -- Quota usage and body lifetime follow the messages whatever removes them (expunge,
    -- mailbox or account deletion), so no code path can forget either.
    CREATE TRIGGER messages_count_in AFTER INSERT ON messages BEGIN
        UPDATE accounts SET used_bytes = used_bytes + NEW.size
         WHERE id = (SELECT account_id FROM mailboxes WHERE id = NEW.mailbox_id);
    END;
    CREATE TRIGGER messages_count_out AFTER DELETE ON messages BEGIN
        UPDATE accounts SET used_bytes = used_bytes - OLD.size
         WHERE id = (SELECT account_id FROM mailboxes WHERE id = OLD.mailbox_id);
        DELETE FROM blobs WHERE id = OLD.blob_id
           AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = OLD.blob_id);
    END;
    "#,
];

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Brings the database up to [`VERSION`]; refuses a database written by a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this build's {VERSION}; upgrade Portcullis"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
