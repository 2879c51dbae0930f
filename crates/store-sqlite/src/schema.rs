//! Versioned schema. `PRAGMA user_version` records how many migrations have run; each migration
//! runs once, in its own transaction, in order: its SQL, then its Rust step if it has one (for
//! what SQL cannot compute, like message summaries). Never edit a released migration: add one.

use rusqlite::{params, Connection, Transaction};

use crate::Db;
use portcullis_store::StoreError;

/// What a migration computes in Rust after its SQL, in the same transaction.
type RustStep = fn(&Transaction<'_>) -> Result<(), StoreError>;

struct Migration {
    sql: &'static str,
    then: Option<RustStep>,
}

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[Migration] = &[
    Migration { sql: MIGRATION_1, then: None },
    Migration { sql: MIGRATION_2, then: Some(summarize_existing_blobs) },
    Migration { sql: MIGRATION_3, then: None },
    Migration { sql: MIGRATION_4, then: None },
    Migration { sql: MIGRATION_5, then: Some(cache_existing_headers) },
    Migration { sql: MIGRATION_6, then: None },
    Migration { sql: MIGRATION_7, then: Some(resummarize_all) },
    Migration { sql: MIGRATION_8, then: None },
    Migration { sql: MIGRATION_9, then: None },
    Migration { sql: MIGRATION_10, then: None },
    Migration { sql: MIGRATION_11, then: None },
    Migration { sql: MIGRATION_12, then: None },
    Migration { sql: MIGRATION_13, then: None },
];

// 1: domains, accounts, mailboxes, messages and their bodies.
const MIGRATION_1: &str = r#"
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
    "#;

// 2: what IMAP needs beyond migration 1.
const MIGRATION_2: &str = r#"
    -- Per-content summaries (portcullis_mime::summarize), computed once when a body is
    -- stored and shared by every copy of it. A table of their own rather than columns of
    -- `blobs`: SQLite reaches a column stored after a large BLOB only by walking that BLOB's
    -- overflow pages, so FETCH ENVELOPE of a 20 MB message would read 20 MB; ALTER TABLE can
    -- only add columns after `data`. Rows whose blob is removed go with it (ON DELETE CASCADE).
    CREATE TABLE summaries (
        blob_id       INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        header_len    INTEGER NOT NULL,
        envelope      BLOB NOT NULL,
        bodystructure BLOB NOT NULL,
        body          BLOB NOT NULL,
        sent_date     INTEGER
    ) STRICT;

    -- Every removed UID with the MODSEQ of its removal, for QRESYNC's VANISHED. Keyed by
    -- MODSEQ so that "expunged since M" is one range scan.
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        modseq     INTEGER NOT NULL,
        uid        INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, modseq, uid)
    ) STRICT, WITHOUT ROWID;

    -- Subscriptions are names: they may outlive the mailbox (RFC 9051 §6.3.9), so they live
    -- apart from `mailboxes`. Its `subscribed` column is carried over here and then unused.
    CREATE TABLE subscriptions (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO subscriptions(account_id, name)
        SELECT account_id, name FROM mailboxes WHERE subscribed = 1;

    -- The keywords ever used in a mailbox (FLAGS, PERMANENTFLAGS), in the spelling first
    -- used; NOCASE because keywords compare case-insensitively.
    CREATE TABLE mailbox_keywords (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        keyword    TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (mailbox_id, keyword)
    ) STRICT, WITHOUT ROWID;

    -- CONDSTORE/QRESYNC: "messages changed since M".
    CREATE INDEX messages_by_modseq ON messages(mailbox_id, modseq);
    -- The unseen and the \Deleted messages of a mailbox, usually few: STATUS and EXPUNGE
    -- read these instead of every message. Queries must spell the condition the same way.
    CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE (flags & 1) = 0;
    CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (flags & 8) != 0;
    "#;

// 3: what the guard must remember across restarts (and, later, share between nodes).
const MIGRATION_3: &str = r#"
    -- Bans, active and recently expired: the expired ones are the offence history that makes
    -- a repeat offender's next ban longer. `until` NULL is permanent.
    CREATE TABLE bans (
        network TEXT PRIMARY KEY,
        until   INTEGER,
        reason  TEXT NOT NULL,
        offence INTEGER NOT NULL,
        manual  INTEGER NOT NULL,
        created INTEGER NOT NULL
    ) STRICT;

    -- Where each account logged in from successfully (a /32 or /64): those addresses are
    -- never slowed down or banned for that account, so its owner is never locked out.
    CREATE TABLE known_logins (
        account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        source       TEXT NOT NULL,
        last_success INTEGER NOT NULL,
        PRIMARY KEY (account_id, source)
    ) STRICT, WITHOUT ROWID;
    "#;

// 4: strong authentication. SCRAM keys beside the argon2id hash (NULL until the password is
// next set: SCRAM cannot work from an argon2 hash); TOTP; app passwords and recovery codes,
// both high-entropy secrets kept as SHA-256 digests (a slow hash adds nothing to 128 random
// bits, and a digest can be looked up directly).
const MIGRATION_4: &str = r#"
    ALTER TABLE accounts ADD COLUMN scram_salt BLOB;
    ALTER TABLE accounts ADD COLUMN scram_iterations INTEGER;
    ALTER TABLE accounts ADD COLUMN scram_stored_key BLOB;
    ALTER TABLE accounts ADD COLUMN scram_server_key BLOB;
    ALTER TABLE accounts ADD COLUMN totp_secret BLOB;
    ALTER TABLE accounts ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
    -- The last TOTP time step accepted: a code is never accepted twice.
    ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

    -- scopes: bit set of IMAP 1, POP3 2, SMTP 4.
    CREATE TABLE app_passwords (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        digest     BLOB NOT NULL UNIQUE,
        scopes     INTEGER NOT NULL,
        created    INTEGER NOT NULL,
        expires    INTEGER,
        last_used  INTEGER,
        last_ip    TEXT,
        revoked    INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account_id, name)
    ) STRICT;

    CREATE TABLE recovery_codes (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        digest     BLOB NOT NULL,
        PRIMARY KEY (account_id, digest)
    ) STRICT, WITHOUT ROWID;
    "#;

// 5: SEARCH's header cache (portcullis_mime::header_cache): the decoded values of the header
// fields searched most (Message-ID, Subject, From, To, Cc, Bcc, In-Reply-To, References), a few
// hundred bytes per body, computed once when a body is stored and shared by its copies. A table
// of its own, like `summaries`, so that a search reads only these rows. The Rust step fills it
// for the bodies already stored; a body without a row is searched by reading its header.
const MIGRATION_5: &str = r#"
    CREATE TABLE header_caches (
        blob_id INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        data    BLOB NOT NULL
    ) STRICT;
    "#;

// 6: what makes a session's credentials checkable, and a second factor that cannot be guessed.
// - Ids are never reused. SQLite gives a new row the largest id + 1, so removing the newest
//   account (or mailbox, or app password) handed its id to the next one, and a session still
//   holding the old id read the new owner's mail. `meta` now keeps the largest id ever handed out
//   per table (`last_id.<table>`), and new rows get ids above it (see `accounts::next_id`).
// - `credentials_generation` grows whenever what opened a session stops opening it (a new
//   password, TOTP turned on): the server compares it with the one each session logged in
//   under, and closes the sessions left behind, whoever made the change.
// - `totp_failures` counts wrong codes given with the right password since the last right
//   one; at a few, `totp_locked` refuses every TOTP code until a recovery code or
//   `portcullis account totp unlock`.
// - `secrets`: random values the server creates once and keeps (the salt secret of SCRAM's
//   decoys, which must not change with a restart or differ between nodes).
const MIGRATION_6: &str = r#"
    INSERT INTO meta(key, value) SELECT 'last_id.accounts', coalesce(max(id), 0) FROM accounts;
    INSERT INTO meta(key, value) SELECT 'last_id.mailboxes', coalesce(max(id), 0) FROM mailboxes;
    INSERT INTO meta(key, value) SELECT 'last_id.app_passwords', coalesce(max(id), 0) FROM app_passwords;

    ALTER TABLE accounts ADD COLUMN credentials_generation INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN totp_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN totp_locked INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    "#;

// 7: IMAP4rev1 \Recent, and summaries computed again. `recent_from` is the first UID no
// session has been told of as \Recent (see `Store::claim_recent`); mail already stored is not
// new to anyone, so it starts at UIDNEXT. The Rust step recomputes every summary and header
// cache: this build computes ENVELOPE (groups, source routes, comments), BODYSTRUCTURE (line
// counts, 8-bit header text), the sent date (the Date: header's own day) and the address
// values SEARCH matches differently from the builds before.
const MIGRATION_7: &str = r#"
    ALTER TABLE mailboxes ADD COLUMN recent_from INTEGER NOT NULL DEFAULT 1;
    UPDATE mailboxes SET recent_from = uidnext;
    "#;

// 8: bans numbered in the order they change, so that a running server re-reads only the bans
// changed since its last look (a ban list of tens of thousands was re-read and compared whole
// every second). `seq` comes from the `ban_seq` counter in `meta`; rows written before this
// migration keep 0 and are read at start with every other ban. A ban lifted by hand leaves its
// network in `lifted_bans`, with its own number, so that the others learn of it.
const MIGRATION_8: &str = r#"
    ALTER TABLE bans ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX bans_by_seq ON bans(seq);
    CREATE TABLE lifted_bans (
        network TEXT PRIMARY KEY,
        seq     INTEGER NOT NULL,
        lifted  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX lifted_bans_by_seq ON lifted_bans(seq);
    "#;

// 9: the outbound queue (issue 15). A queued message keeps its bytes once (`content`), its
// envelope with the RFC 3461 parameters in their ESMTP text forms, when it was queued, the
// attempts made, when the next is due (also the lease of a runner working on it: see
// `QueueStore::claim_due`) and whether its sender was told it is late. Each recipient has a
// state (pending, delivered, failed) and the last answer about it; the message leaves the
// queue when none is pending.
const MIGRATION_9: &str = r#"
    CREATE TABLE queue (
        id                INTEGER PRIMARY KEY,
        sender            TEXT NOT NULL,
        ret               TEXT,
        envid             TEXT,
        smtputf8          INTEGER NOT NULL,
        eight_bit         INTEGER NOT NULL,
        content           BLOB NOT NULL,
        queued_at         INTEGER NOT NULL,
        next_attempt      INTEGER NOT NULL,
        attempts          INTEGER NOT NULL DEFAULT 0,
        delay_notice_sent INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX queue_by_next_attempt ON queue(next_attempt);
    CREATE TABLE queue_recipients (
        queue_id   INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        address    TEXT NOT NULL,
        notify     TEXT,
        orcpt      TEXT,
        state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        last_reply TEXT,
        PRIMARY KEY (queue_id, position)
    ) STRICT;
    "#;

// 10: DKIM signing keys per domain (issue 18; see `crate::dkim`). A key signs from
// `active_from` until a newer key of its algorithm starts, and is published until `retire_at`
// (NULL until a rotation replaces it). Removing a domain removes its keys. Every change bumps
// `dkim_keys_generation` in `meta`, which the signer polls instead of re-reading the keys.
const MIGRATION_10: &str = r#"
    CREATE TABLE dkim_keys (
        domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
        selector      TEXT NOT NULL,
        algorithm     TEXT NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
        private_pkcs8 BLOB NOT NULL,
        created       INTEGER NOT NULL,
        active_from   INTEGER NOT NULL,
        retire_at     INTEGER,
        PRIMARY KEY (domain_id, selector)
    ) STRICT;
    INSERT INTO meta(key, value) VALUES ('dkim_keys_generation', 0) ON CONFLICT(key) DO NOTHING;
    CREATE TRIGGER dkim_keys_removed AFTER DELETE ON dkim_keys BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'dkim_keys_generation';
    END;
"#;

// 11: what submission
// checks and records (issue 15). Aliases: more addresses for an account, in its domains or
// others of ours; mail to one is delivered to the account, which may send from it. A queued
// message remembers REQUIRETLS (RFC 8689), so the runner hands it on only as its sender asked.
const MIGRATION_11: &str = r#"
    CREATE TABLE aliases (
        domain_id  INTEGER NOT NULL REFERENCES domains(id),
        localpart  TEXT NOT NULL,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        created    INTEGER NOT NULL,
        PRIMARY KEY (domain_id, localpart)
    ) STRICT;
    CREATE INDEX aliases_by_account ON aliases(account_id);
    ALTER TABLE queue ADD COLUMN requiretls INTEGER NOT NULL DEFAULT 0;
"#;

// 12: an operator may hold a queued message (`portcullis queue hold`, the admin API): the
// runner never claims it until it is released (`QueueStore::claim_due` skips it). Messages
// queued before keep running.
const MIGRATION_12: &str = r#"
    ALTER TABLE queue ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
"#;

// 13: who holds a claimed message's lease, the node and the run of the runner on it
// (`QueueStore::claim_due`), so a restarted runner takes back at once what its killed
// predecessor on the same node held, instead of waiting for the lease to run out. NULL: not
// claimed (or claimed before this migration: such a lease runs out as before).
const MIGRATION_13: &str = r#"
    ALTER TABLE queue ADD COLUMN lease_node TEXT;
    ALTER TABLE queue ADD COLUMN lease_run TEXT;
    "#;

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Brings the database up to [`VERSION`]; refuses a database written by a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, VERSION)
}

/// Runs the migrations up to `target` (tests use it to make an old database).
pub fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).db()? as usize;
    if current > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this build's {VERSION}; upgrade Portcullis"
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().take(target).skip(current) {
        let tx = conn.transaction().db()?;
        tx.execute_batch(migration.sql).db()?;
        if let Some(step) = migration.then {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", (index + 1) as i64).db()?;
        tx.commit().db()?;
    }
    Ok(())
}

/// Migration 2's Rust step: summaries for the bodies stored before there were any, and the
/// keywords already on messages (none were written before migration 2, but nothing relies
/// on that).
fn summarize_existing_blobs(tx: &Transaction<'_>) -> Result<(), StoreError> {
    // Ids first, then one body at a time: never all bodies in memory, and no statement
    // reading `blobs` while rows are added to `summaries`.
    let ids = tx
        .prepare("SELECT id FROM blobs WHERE id NOT IN (SELECT blob_id FROM summaries) ORDER BY id")
        .db()?
        .query_map([], |r| r.get::<_, i64>(0))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    for id in ids {
        let raw: Vec<u8> = tx.query_row("SELECT data FROM blobs WHERE id = ?1", params![id], |r| r.get(0)).db()?;
        super::messages::insert_summary(tx, id, &portcullis_mime::summarize(&raw))?;
    }
    let tagged = tx
        .prepare("SELECT DISTINCT mailbox_id, keywords FROM messages WHERE keywords != ''")
        .db()?
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    for (mailbox, keywords) in tagged {
        for keyword in portcullis_store::decode_keywords(&keywords) {
            tx.execute(
                "INSERT INTO mailbox_keywords(mailbox_id, keyword) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![mailbox, keyword],
            )
            .db()?;
        }
    }
    Ok(())
}

/// Migration 5's Rust step: header caches for the bodies stored before, computed from their
/// header sections (read without their bodies), a batch of bodies at a time.
fn cache_existing_headers(tx: &Transaction<'_>) -> Result<(), StoreError> {
    const BATCH: i64 = 500;
    let mut after = 0i64;
    loop {
        let batch = tx
            .prepare_cached(
                "SELECT blob_id, header_len FROM summaries
                  WHERE blob_id > ?1 AND blob_id NOT IN (SELECT blob_id FROM header_caches)
                  ORDER BY blob_id LIMIT ?2",
            )
            .db()?
            .query_map(params![after, BATCH], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()?;
        let Some(&(last, _)) = batch.last() else { return Ok(()) };
        for (blob, header_len) in batch {
            let data = tx.blob_open("main", "blobs", "data", blob, true).db()?;
            let mut header = vec![0; (header_len.max(0) as usize).min(data.len())];
            data.read_at_exact(&mut header, 0).db()?;
            drop(data);
            super::messages::insert_header_cache(tx, blob, &portcullis_mime::header_cache(&header))?;
        }
        after = last;
    }
}

/// Migration 6's Rust step: every summary and header cache computed again from its body, a
/// batch of bodies at a time (never all of them in memory).
fn resummarize_all(tx: &Transaction<'_>) -> Result<(), StoreError> {
    const BATCH: i64 = 100;
    let mut after = 0i64;
    loop {
        let ids = tx
            .prepare_cached("SELECT id FROM blobs WHERE id > ?1 ORDER BY id LIMIT ?2")
            .db()?
            .query_map(params![after, BATCH], |r| r.get::<_, i64>(0))
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()?;
        let Some(&last) = ids.last() else { return Ok(()) };
        for id in ids {
            let raw: Vec<u8> = tx.query_row("SELECT data FROM blobs WHERE id = ?1", params![id], |r| r.get(0)).db()?;
            let summary = portcullis_mime::summarize(&raw);
            tx.execute("DELETE FROM summaries WHERE blob_id = ?1", params![id]).db()?;
            tx.execute("DELETE FROM header_caches WHERE blob_id = ?1", params![id]).db()?;
            super::messages::insert_summary(tx, id, &summary)?;
            super::messages::insert_header_cache(tx, id, &summary.header_cache)?;
        }
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{guard, mailboxes, messages};

    /// What SQLite will do for `sql`, as EXPLAIN QUERY PLAN says it.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        for i in 1..=stmt.parameter_count() {
            stmt.raw_bind_parameter(i, 1).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    #[test]
    fn hot_queries_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for (sql, index) in [
            (messages::MESSAGE_INDEX, "sqlite_autoindex_messages_1"),
            (messages::CHANGED_SINCE, "messages_by_modseq (mailbox_id=? AND modseq>?)"),
            (messages::EXPUNGED_SINCE, "PRIMARY KEY (mailbox_id=? AND modseq>?)"),
            (messages::DELETED_IN_SPAN, "messages_deleted (mailbox_id=? AND uid>? AND uid<?)"),
            (messages::HEADER_CACHES, "sqlite_autoindex_messages_1 (mailbox_id=? AND uid>? AND uid<?)"),
            (mailboxes::COUNT_UNSEEN, "messages_unseen (mailbox_id=?)"),
            (mailboxes::COUNT_DELETED, "messages_deleted (mailbox_id=?)"),
            (guard::BANS_CHANGED, "bans_by_seq (seq>?)"),
            (guard::BANS_LIFTED, "lifted_bans_by_seq (seq>?)"),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(index) && !plan.contains("TEMP B-TREE"), "{sql}\n  → {plan}");
        }
    }
}
