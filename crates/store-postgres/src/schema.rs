//! Versioned schema, like the SQLite backend's (`portcullis_store`'s `sqlite/schema.rs`): the
//! table `schema_migrations` lists the migrations that ran; each runs once, in its own
//! transaction, in order. Never edit a released migration: add one.
//!
//! Several nodes may start at once against one database: every migration transaction first
//! takes a transaction-scoped advisory lock, so one node migrates and the others, once they get
//! the lock, find the work done.
//!
//! Migration 1 is the SQLite schema after its 13 migrations, in PostgreSQL's terms: the same
//! tables with the same meaning, BIGINT ids from identity columns (a sequence never hands out
//! an id twice, which SQLite needed the `last_id.*` counters in `meta` for), BYTEA bodies
//! stored once in `blobs` and shared by every copy, BOOLEAN where SQLite kept 0/1, the same
//! indexes and triggers that do the same (quota usage counted once per statement rather than
//! per row, see `messages_count_in`). Two tables more hold what one SQLite process kept in memory
//! and several nodes must share: IMAP session slots and POP3 maildrop locks. The guard's counts
//! (`sent_counts`, `auth_failures`, `account_failures`, `auth_attempts`, `account_attempts`;
//! SQLite keeps them in memory) were added to migration 1 in place, as no PostgreSQL schema
//! had been released.

use tokio_postgres::Client;

use crate::{Db, StoreError};

/// The advisory lock key of migrations: "pcmigrat" in ASCII, so that it names itself in
/// `pg_locks` and clashes with no other lock of ours.
const MIGRATION_LOCK: i64 = 0x7063_6d69_6772_6174;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2];

const MIGRATION_1: &str = r#"
    -- Counters and generations: `uidvalidity` (the last UIDVALIDITY handed out), `ban_seq`
    -- (the last ban change number), `dkim_keys_generation`. A counter is bumped with an
    -- UPDATE whose row lock lasts until commit, so its numbers are handed out in commit order.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('uidvalidity', 0), ('ban_seq', 0), ('dkim_keys_generation', 0);

    CREATE TABLE domains (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        created BIGINT NOT NULL
    );

    -- quota: NULL = the configured default, -1 = unlimited, otherwise bytes.
    -- scram_*: NULL until the password is next set (SCRAM cannot work from an argon2 hash).
    -- totp_last_step: the last TOTP time step accepted (a code is never accepted twice).
    -- credentials_generation grows whenever what opened a session stops opening it.
    CREATE TABLE accounts (
        id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        domain_id              BIGINT NOT NULL REFERENCES domains(id),
        localpart              TEXT NOT NULL,
        password_hash          TEXT NOT NULL,
        quota                  BIGINT,
        used_bytes             BIGINT NOT NULL DEFAULT 0,
        created                BIGINT NOT NULL,
        scram_salt             BYTEA,
        scram_iterations       BIGINT,
        scram_stored_key       BYTEA,
        scram_server_key       BYTEA,
        totp_secret            BYTEA,
        totp_enabled           BOOLEAN NOT NULL DEFAULT false,
        totp_last_step         BIGINT NOT NULL DEFAULT 0,
        totp_failures          BIGINT NOT NULL DEFAULT 0,
        totp_locked            BOOLEAN NOT NULL DEFAULT false,
        credentials_generation BIGINT NOT NULL DEFAULT 1,
        UNIQUE (domain_id, localpart)
    );

    -- UIDs, UIDVALIDITY, UIDNEXT are 32-bit unsigned in IMAP: BIGINT holds them.
    -- recent_from: the first UID no session has been told of as \Recent (Store::claim_recent).
    CREATE TABLE mailboxes (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id    BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        special_use   TEXT,
        uidvalidity   BIGINT NOT NULL,
        uidnext       BIGINT NOT NULL DEFAULT 1,
        highestmodseq BIGINT NOT NULL DEFAULT 1,
        recent_from   BIGINT NOT NULL DEFAULT 1,
        UNIQUE (account_id, name)
    );

    -- Raw message bytes, shared by every mailbox entry of the same delivery (a message to 50
    -- local recipients is stored once). Apart from `messages`, so that scanning flags and UIDs
    -- never reads bodies (PostgreSQL would TOAST them anyway, but the summaries stay small).
    CREATE TABLE blobs (
        id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        data BYTEA NOT NULL
    );
    -- Bodies are mail, mostly compressed already (attachments in base64 compress, but slowly):
    -- stored out of line without PostgreSQL's compression attempt.
    ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;

    -- flags: bit set of \Seen 1, \Answered 2, \Flagged 4, \Deleted 8, \Draft 16;
    -- keywords: space-separated IMAP keywords.
    CREATE TABLE messages (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        mailbox_id    BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid           BIGINT NOT NULL,
        blob_id       BIGINT NOT NULL REFERENCES blobs(id),
        size          BIGINT NOT NULL,
        internal_date BIGINT NOT NULL,
        flags         INTEGER NOT NULL DEFAULT 0,
        keywords      TEXT NOT NULL DEFAULT '',
        modseq        BIGINT NOT NULL,
        UNIQUE (mailbox_id, uid)
    );
    CREATE INDEX messages_by_blob ON messages(blob_id);
    -- CONDSTORE/QRESYNC: "messages changed since M".
    CREATE INDEX messages_by_modseq ON messages(mailbox_id, modseq);
    -- The unseen and the \Deleted messages of a mailbox, usually few: STATUS and EXPUNGE read
    -- these instead of every message. Queries must spell the condition the same way.
    CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE (flags & 1) = 0;
    CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (flags & 8) <> 0;

    -- Quota usage and body lifetime follow the messages whatever removes them (expunge,
    -- mailbox or account deletion), so no code path can forget either. AFTER ROW triggers run
    -- at the end of their statement, so "no copy left" sees every row the statement removed.
    -- Usage is counted once per statement, per account, from the transition table: one
    -- UPDATE of an account row per inserted message would grow that row's version chain with
    -- every copy of a large COPY (tens of thousands of updates of one row in one transaction,
    -- each walking the chain: minutes).
    CREATE FUNCTION messages_count_in() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE accounts a SET used_bytes = a.used_bytes + n.bytes
          FROM (SELECT b.account_id, sum(m.size) AS bytes
                  FROM added m JOIN mailboxes b ON b.id = m.mailbox_id
                 GROUP BY b.account_id) n
         WHERE a.id = n.account_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_count_in AFTER INSERT ON messages
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION messages_count_in();
    -- The body's row is locked before "is this the last copy?" is asked: two transactions
    -- removing its last two copies at once (two nodes expunging one delivery's copies) would
    -- each still see the other's copy and neither remove the body. Locked, the second waits
    -- for the first to commit and then, in a statement of its own (a fresh snapshot in READ
    -- COMMITTED), sees that no copy is left.
    CREATE FUNCTION messages_release_body() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM blobs WHERE id = OLD.blob_id FOR UPDATE;
        DELETE FROM blobs WHERE id = OLD.blob_id
           AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = OLD.blob_id);
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_release_body AFTER DELETE ON messages
        FOR EACH ROW EXECUTE FUNCTION messages_release_body();
    -- Usage once per statement, as for inserts; the account is found through the mailbox
    -- row, as the row-level trigger before did.
    CREATE FUNCTION messages_count_out() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE accounts a SET used_bytes = a.used_bytes - n.bytes
          FROM (SELECT b.account_id, sum(m.size) AS bytes
                  FROM removed m JOIN mailboxes b ON b.id = m.mailbox_id
                 GROUP BY b.account_id) n
         WHERE a.id = n.account_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_count_out AFTER DELETE ON messages
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION messages_count_out();

    -- Per-content summaries (portcullis_mime::summarize), computed once when a body is stored
    -- and shared by its copies; removed with their body.
    CREATE TABLE summaries (
        blob_id       BIGINT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        header_len    BIGINT NOT NULL,
        envelope      BYTEA NOT NULL,
        bodystructure BYTEA NOT NULL,
        body          BYTEA NOT NULL,
        sent_date     BIGINT
    );

    -- SEARCH's header cache (portcullis_mime::header_cache), a few hundred bytes per body.
    CREATE TABLE header_caches (
        blob_id BIGINT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        data    BYTEA NOT NULL
    );

    -- Every removed UID with the MODSEQ of its removal, for QRESYNC's VANISHED; keyed by
    -- MODSEQ so that "expunged since M" is one range scan.
    CREATE TABLE expunged (
        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        modseq     BIGINT NOT NULL,
        uid        BIGINT NOT NULL,
        PRIMARY KEY (mailbox_id, modseq, uid)
    );

    -- Subscriptions are names: they may outlive the mailbox (RFC 9051 §6.3.9).
    CREATE TABLE subscriptions (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );

    -- The keywords ever used in a mailbox (FLAGS, PERMANENTFLAGS), in the spelling first used.
    -- Keywords compare case-insensitively (SQLite: COLLATE NOCASE): the key is on lower(),
    -- so an insert says ON CONFLICT (mailbox_id, lower(keyword)) DO NOTHING.
    CREATE TABLE mailbox_keywords (
        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        keyword    TEXT NOT NULL
    );
    CREATE UNIQUE INDEX mailbox_keywords_key ON mailbox_keywords(mailbox_id, lower(keyword));

    -- Bans, active and recently expired (the offence history). `until` NULL is permanent.
    -- seq: the change number (meta 'ban_seq') of the ban's last change, so that a server
    -- re-reads only what changed; a ban lifted by hand leaves its network in `lifted_bans`.
    CREATE TABLE bans (
        network TEXT PRIMARY KEY,
        until   BIGINT,
        reason  TEXT NOT NULL,
        offence BIGINT NOT NULL,
        manual  BOOLEAN NOT NULL,
        created BIGINT NOT NULL,
        seq     BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX bans_by_seq ON bans(seq);
    CREATE TABLE lifted_bans (
        network TEXT PRIMARY KEY,
        seq     BIGINT NOT NULL,
        lifted  BIGINT NOT NULL
    );
    CREATE INDEX lifted_bans_by_seq ON lifted_bans(seq);

    -- Where each account logged in from successfully (a /32 or /64).
    CREATE TABLE known_logins (
        account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        source       TEXT NOT NULL,
        last_success BIGINT NOT NULL,
        PRIMARY KEY (account_id, source)
    );

    -- The guard's counts every node shares (issue 17): messages and recipients each account
    -- sent, failed logins per source and per account, and login
    -- attempts from unknown addresses the same, a row per key and minute (an
    -- upsert per fact: concurrent nodes take turns on the minute's row, so none is lost).
    -- Rows older than any window are pruned with the rest of the guard's history.
    CREATE TABLE sent_counts (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        minute     BIGINT NOT NULL,
        messages   BIGINT NOT NULL,
        recipients BIGINT NOT NULL,
        PRIMARY KEY (account_id, minute)
    );
    CREATE TABLE auth_failures (
        source   TEXT NOT NULL,
        minute   BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        PRIMARY KEY (source, minute)
    );
    CREATE TABLE account_failures (
        account  TEXT NOT NULL,
        minute   BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        PRIMARY KEY (account, minute)
    );
    -- Login attempts from addresses the account does not know, per source and per account.
    CREATE TABLE auth_attempts (
        source   TEXT NOT NULL,
        minute   BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        PRIMARY KEY (source, minute)
    );
    CREATE TABLE account_attempts (
        account  TEXT NOT NULL,
        minute   BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        PRIMARY KEY (account, minute)
    );

    -- App passwords and recovery codes: high-entropy secrets kept as SHA-256 digests.
    -- scopes: bit set of IMAP 1, POP3 2, SMTP 4.
    CREATE TABLE app_passwords (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        digest     BYTEA NOT NULL UNIQUE,
        scopes     INTEGER NOT NULL,
        created    BIGINT NOT NULL,
        expires    BIGINT,
        last_used  BIGINT,
        last_ip    TEXT,
        revoked    BOOLEAN NOT NULL DEFAULT false,
        UNIQUE (account_id, name)
    );
    CREATE TABLE recovery_codes (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        digest     BYTEA NOT NULL,
        PRIMARY KEY (account_id, digest)
    );

    -- Random values the server creates once and every node reads (SCRAM's decoy salt secret).
    CREATE TABLE secrets (
        name  TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );

    -- The outbound queue (see portcullis_store::QueueStore): a message's bytes once, its
    -- envelope with the RFC 3461 parameters in their ESMTP text forms, its schedule and lease
    -- (next_attempt doubles as the lease's end while a runner holds it; lease_node/lease_run
    -- name the holder), REQUIRETLS (RFC 8689), and an operator's hold.
    CREATE TABLE queue (
        id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sender            TEXT NOT NULL,
        ret               TEXT,
        envid             TEXT,
        smtputf8          BOOLEAN NOT NULL,
        eight_bit         BOOLEAN NOT NULL,
        content           BYTEA NOT NULL,
        queued_at         BIGINT NOT NULL,
        next_attempt      BIGINT NOT NULL,
        attempts          BIGINT NOT NULL DEFAULT 0,
        delay_notice_sent BOOLEAN NOT NULL DEFAULT false,
        requiretls        BOOLEAN NOT NULL DEFAULT false,
        held              BOOLEAN NOT NULL DEFAULT false,
        lease_node        TEXT,
        lease_run         TEXT
    );
    CREATE INDEX queue_by_next_attempt ON queue(next_attempt);
    CREATE TABLE queue_recipients (
        queue_id   BIGINT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        position   BIGINT NOT NULL,
        address    TEXT NOT NULL,
        notify     TEXT,
        orcpt      TEXT,
        state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        last_reply TEXT,
        PRIMARY KEY (queue_id, position)
    );

    -- DKIM signing keys per domain (see portcullis_store::dkim). Every change bumps
    -- meta 'dkim_keys_generation'; the trigger does it for rows a domain's removal cascades.
    CREATE TABLE dkim_keys (
        domain_id     BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
        selector      TEXT NOT NULL,
        algorithm     TEXT NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),
        private_pkcs8 BYTEA NOT NULL,
        created       BIGINT NOT NULL,
        active_from   BIGINT NOT NULL,
        retire_at     BIGINT,
        PRIMARY KEY (domain_id, selector)
    );
    CREATE FUNCTION dkim_keys_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE meta SET value = value + 1 WHERE key = 'dkim_keys_generation';
        RETURN NULL;
    END $$;
    CREATE TRIGGER dkim_keys_removed AFTER DELETE ON dkim_keys
        FOR EACH STATEMENT EXECUTE FUNCTION dkim_keys_removed();

    -- Aliases: more addresses for an account, in its domains or others of ours.
    CREATE TABLE aliases (
        domain_id  BIGINT NOT NULL REFERENCES domains(id),
        localpart  TEXT NOT NULL,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        created    BIGINT NOT NULL,
        PRIMARY KEY (domain_id, localpart)
    );
    CREATE INDEX aliases_by_account ON aliases(account_id);

    -- Cross-node state SQLite keeps in one process's memory. Rows with an owner and an expiry
    -- rather than advisory locks: an advisory lock lives on one database connection, so each
    -- open POP3 or IMAP session would pin a pooled connection for its whole life (a few hundred
    -- idle sessions would exhaust the pool and the server's max_connections). A node renews
    -- its rows while the sessions live, deletes them when they end, and deletes all of its own
    -- at start; a crashed node's rows expire. `node` names the node, `expires` is Unix seconds.

    -- IMAP session slots: at most N rows per account whose `expires` is ahead.
    CREATE TABLE session_slots (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node       TEXT NOT NULL,
        expires    BIGINT NOT NULL
    );
    CREATE INDEX session_slots_by_account ON session_slots(account_id, expires);
    CREATE INDEX session_slots_by_node ON session_slots(node);

    -- POP3 maildrop locks (RFC 1939 §8): one row per locked account; a row whose `expires`
    -- has passed may be taken over.
    CREATE TABLE maildrop_locks (
        account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        node       TEXT NOT NULL,
        token      BIGINT NOT NULL,
        expires    BIGINT NOT NULL
    );
    CREATE INDEX maildrop_locks_by_node ON maildrop_locks(node);

    -- The nodes alive: a row per node from its start, renewed by its heartbeat, deleted when it
    -- stops, expired when it dies. Who should answer a question asked of every node.
    CREATE TABLE nodes (
        node    TEXT PRIMARY KEY,
        expires BIGINT NOT NULL
    );

    -- Signals too large for a NOTIFY payload (under 8000 bytes): the NOTIFY names the row and
    -- every node reads it; rows expire long after every node has.
    CREATE TABLE signal_bodies (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        body    TEXT NOT NULL,
        expires BIGINT NOT NULL
    );
"#;

/// Migration 2: STORE of system flags in one statement (issue 17). On PostgreSQL each statement
/// costs a round trip and its own parse, plan and executor start; an IMAP STORE was six (BEGIN,
/// the MODSEQ, the read, the UPDATE, the NOTIFY, COMMIT). `store_system_flags` does what
/// `mail::flags` does for a STORE that names no keyword, the common case, inside one call: see
/// `mail::flags::store_system_flags` for the guarantees it keeps and why they hold.
const MIGRATION_2: &str = r#"
    -- A message's system flags after STORE: `op` is 'add', 'remove' or 'replace' (anything
    -- else is refused by `store_system_flags`). Only the five system flags are kept, as
    -- `Flags::apply` keeps them. IMMUTABLE and one expression, so the planner inlines it.
    CREATE FUNCTION store_next_flags(op TEXT, flags INTEGER, change INTEGER) RETURNS INTEGER
        LANGUAGE sql IMMUTABLE AS $$
        SELECT (CASE op WHEN 'add' THEN flags | change
                        WHEN 'remove' THEN flags & ~change
                        ELSE change END) & 31
    $$;

    -- STORE naming no keyword on the listed UIDs of a mailbox, in one call (so one statement in
    -- an implicit transaction). The keywords stay as they are, except that 'replace' clears
    -- them. Messages whose modseq is above `unchanged_since` (NULL: no UNCHANGEDSINCE) are left
    -- alone and listed in `modified_uids` (RFC 7162 §3.1.3). The changed messages, with their
    -- new flags and keywords, are in `updated_*` (UID order), all with the one new MODSEQ
    -- `new_modseq` of the mailbox (of `owner`); when nothing changed, `owner`, `new_modseq` and
    -- `updated_*` are NULL, nothing was written and HIGHESTMODSEQ did not move. A change is
    -- announced on `channel` with the payload of `coordination::listen::payload` for `node`.
    --
    -- VOLATILE: in READ COMMITTED each statement of a volatile function takes a new snapshot,
    -- which the order of the statements below relies on. Generic plans: PL/pgSQL plans each
    -- statement for its first calls' values, and for these (a UID array, a maybe-NULL
    -- UNCHANGEDSINCE) it kept planning at every call: 0.44 ms a call against 0.13 for the
    -- statements' own run (pg_stat_statements, the IMAP benchmark), 0.33 with generic plans.
    -- On a large table the generic plan is the (mailbox_id, uid) index scan
    -- (`mail::flags`'s test `the_function_s_statements_use_the_uid_index`).
    CREATE FUNCTION store_system_flags(
        p_mailbox BIGINT, p_uids BIGINT[], p_op TEXT, p_change INTEGER, p_since BIGINT,
        p_channel TEXT, p_node TEXT,
        OUT owner BIGINT, OUT new_modseq BIGINT,
        OUT updated_uids BIGINT[], OUT updated_flags INTEGER[], OUT updated_keywords TEXT[],
        OUT modified_uids BIGINT[])
    LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
        would_change BOOLEAN;
    BEGIN
        IF p_op IS NULL OR p_op NOT IN ('add', 'remove', 'replace') THEN
            RAISE EXCEPTION 'store_system_flags: unknown operation %', p_op
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        -- 1. Without a lock: would any listed message change? If none would, the STORE takes
        -- effect at this statement's snapshot, where it changes nothing (the argument is in
        -- `mail::flags::store_system_flags`), and returns having written nothing: no MODSEQ
        -- taken, no row locked, no WAL to flush at commit.
        SELECT coalesce(bool_or(store_next_flags(p_op, m.flags, p_change) <> m.flags
                                OR (p_op = 'replace' AND m.keywords <> ''))
                            FILTER (WHERE p_since IS NULL OR m.modseq <= p_since), false),
               array_agg(m.uid ORDER BY m.uid) FILTER (WHERE m.modseq > p_since)
          INTO would_change, modified_uids
          FROM messages m
         WHERE m.mailbox_id = p_mailbox AND m.uid = ANY(p_uids);
        IF NOT would_change THEN
            RETURN;
        END IF;

        -- 2. The MODSEQ, whose row lock on the mailbox lasts until commit: the lock every write
        -- that reads messages and acts on them takes first (see the `mail` module). After
        -- waiting for it, the UPDATE works on the row as the previous holder committed it.
        UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = p_mailbox
        RETURNING account_id, highestmodseq INTO owner, new_modseq;
        IF NOT FOUND THEN
            -- Deleted since the check, with its messages: nothing to change or report.
            modified_uids := NULL;
            RETURN;
        END IF;

        -- 3. A later statement, so a snapshot taken under the lock: what another node's STORE
        -- committed before we got it is seen and built on, never overwritten with flags from
        -- before it. UNCHANGEDSINCE is decided here too, on the same snapshot. (The sub-SELECT
        -- sees the messages as they were before the UPDATE, as every part of one statement
        -- does; the ones it lists are not updated.)
        WITH changed AS (
            UPDATE messages m
               SET flags = store_next_flags(p_op, m.flags, p_change),
                   keywords = CASE p_op WHEN 'replace' THEN '' ELSE m.keywords END,
                   modseq = new_modseq
             WHERE m.mailbox_id = p_mailbox AND m.uid = ANY(p_uids)
               AND (p_since IS NULL OR m.modseq <= p_since)
               AND (store_next_flags(p_op, m.flags, p_change) <> m.flags
                    OR (p_op = 'replace' AND m.keywords <> ''))
            RETURNING m.uid, m.flags, m.keywords
        )
        SELECT c.uids, c.flags, c.keywords,
               (SELECT array_agg(m.uid ORDER BY m.uid) FROM messages m
                 WHERE m.mailbox_id = p_mailbox AND m.uid = ANY(p_uids) AND m.modseq > p_since)
          INTO updated_uids, updated_flags, updated_keywords, modified_uids
          FROM (SELECT array_agg(uid ORDER BY uid) AS uids, array_agg(flags ORDER BY uid) AS flags,
                       array_agg(keywords ORDER BY uid) AS keywords
                  FROM changed) c;

        IF updated_uids IS NULL THEN
            -- A race: what the check saw changing, another STORE changed first. Nobody saw the
            -- MODSEQ (the lock is still held): give it back so that HIGHESTMODSEQ does not move.
            UPDATE mailboxes SET highestmodseq = highestmodseq - 1 WHERE id = p_mailbox;
            owner := NULL;
            new_modseq := NULL;
            RETURN;
        END IF;

        -- Delivered by PostgreSQL at commit, and only if the transaction commits.
        PERFORM pg_notify(p_channel, format('%s %s %s %s', owner, p_mailbox, new_modseq, p_node));
    END
    $$;
"#;

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// Brings the database up to [`VERSION`]; refuses a database written by a newer build.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    migrate_to(client, VERSION).await
}

/// Runs the migrations up to `target` (tests use it to make an old database).
pub async fn migrate_to(client: &mut Client, target: usize) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target) {
        let version = (index + 1) as i64;
        let tx = client.transaction().await.db()?;
        // Held until this transaction ends: another node migrating waits here, then sees the
        // version recorded and skips it.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.db()?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                applied TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .db()?;
        let current: i64 =
            tx.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await.db()?.get(0);
        if current as usize > VERSION {
            return Err(StoreError::Backend(format!(
                "the database has schema version {current}, newer than this build's {VERSION}; upgrade Portcullis"
            )));
        }
        if current >= version {
            tx.commit().await.db()?;
            continue;
        }
        tx.batch_execute(sql).await.db()?;
        tx.execute("INSERT INTO schema_migrations(version) VALUES ($1)", &[&version]).await.db()?;
        tx.commit().await.db()?;
    }
    Ok(())
}

/// The versions recorded, ascending (for tests and `portcullis check`).
pub async fn applied(client: &Client) -> Result<Vec<i64>, StoreError> {
    let rows = client.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await.db()?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What PostgreSQL plans for `sql` (its `$n` parameters bound to `'1'`) as a generic plan,
    /// the one a prepared statement settles on, with sequential scans discouraged: on the
    /// empty tables of a test any scan is cheap, so only whether an index *can* serve the
    /// query is asked.
    async fn plan(client: &Client, sql: &str) -> String {
        let params = (1..=9).filter(|n| sql.contains(&format!("${n}"))).count();
        let args = vec!["'1'"; params].join(", ");
        let explain = if params == 0 { format!("EXPLAIN {sql}") } else { format!("EXPLAIN EXECUTE q({args})") };
        client.batch_execute("DEALLOCATE ALL").await.unwrap();
        if params > 0 {
            client.batch_execute(&format!("PREPARE q AS {sql}")).await.unwrap();
        }
        let mut lines = Vec::new();
        for message in client.simple_query(&explain).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                lines.push(row.get(0).unwrap_or_default().to_string());
            }
        }
        lines.join("\n")
    }

    #[tokio::test]
    async fn hot_queries_use_their_indexes() {
        let Some(cluster) = portcullis_testpg::PgCluster::start() else { return };
        let (mut client, connection) =
            tokio_postgres::connect(&cluster.fresh_database(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        migrate(&mut client).await.unwrap();
        client.batch_execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan").await.unwrap();
        for (sql, index) in [
            (crate::guard::BANS_CHANGED, "bans_by_seq"),
            (crate::guard::BANS_LIFTED, "lifted_bans_by_seq"),
            (crate::directory::ACCOUNT_BY_ADDRESS, "accounts_domain_id_localpart_key"),
            // The shapes the mail queries must keep for the indexes of migration 1 to serve them
            // (the partial indexes only match the condition spelled as in their definition).
            ("SELECT count(*) FROM messages WHERE mailbox_id = $1 AND (flags & 1) = 0", "messages_unseen"),
            ("SELECT uid FROM messages WHERE mailbox_id = $1 AND (flags & 8) != 0", "messages_deleted"),
            ("SELECT uid, modseq FROM messages WHERE mailbox_id = $1 AND modseq > $2", "messages_by_modseq"),
            ("SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2", "expunged_pkey"),
            (
                "SELECT 1 FROM mailbox_keywords WHERE mailbox_id = $1 AND lower(keyword) = lower($2)",
                "mailbox_keywords_key",
            ),
            ("SELECT count(*) FROM session_slots WHERE account_id = $1 AND expires > $2", "session_slots_by_account"),
            ("SELECT count(*) FROM messages WHERE blob_id = $1", "messages_by_blob"),
        ] {
            let plan = plan(&client, sql).await;
            assert!(plan.contains(index) && !plan.contains("Seq Scan"), "{sql}\n  → {plan}");
        }
    }
}
