//! `portcullis store check`: is the database sound, and does it hold what Portcullis relies on?
//! SQLite's own checks (`integrity_check`, `foreign_key_check`), then the store's invariants:
//! every message has its body, of the size it says, and a summary; UIDs are unique and below
//! their mailbox's UIDNEXT, MODSEQs at most its HIGHESTMODSEQ, the first UID not yet claimed
//! as \Recent at most UIDNEXT; an expunged UID is gone; every
//! account has an INBOX and uses exactly the bytes of its messages; no body is left without a
//! message, and no summary or header cache without a body. A body's header cache (schema 5,
//! SEARCH) is compared with one computed afresh from its header: a stale or damaged cache would
//! make SEARCH miss or invent matches. A body without a cache is no problem (migration 5:
//! SEARCH then reads its header), nor is a cache of another format version (SEARCH ignores it
//! the same way); both are counted. All in one read transaction, so a running server does not
//! disturb it.

use rusqlite::{Connection, Row};

use super::SqliteStore;
use crate::Db;
use portcullis_store::StoreError;

/// Problems of one kind listed at most; the rest are counted.
const LIST_AT_MOST: usize = portcullis_store::CHECK_LIST_AT_MOST;

pub use portcullis_store::CheckReport;

impl SqliteStore {
    /// Checks the database and the store's invariants (see the module's documentation).
    /// `quick` runs SQLite's `quick_check` instead of the full `integrity_check`, which reads
    /// every page and index. A check that cannot read what it needs is a problem too; `Err`
    /// only when no read transaction can start at all.
    pub async fn check(&self, quick: bool) -> Result<CheckReport, StoreError> {
        self.read(move |conn| {
            conn.execute_batch("BEGIN").db()?;
            let report = check(conn, quick);
            let _ = conn.execute_batch("COMMIT");
            Ok(report)
        })
        .await
    }
}

fn check(conn: &Connection, quick: bool) -> CheckReport {
    let mut problems = Vec::new();
    let mut found = |kind: &str, sql: &str, describe: &dyn Fn(&Row<'_>) -> rusqlite::Result<String>| {
        if let Err(e) = list(conn, &mut problems, kind, sql, describe) {
            problems.push(format!("could not check the {kind}s: {e}"));
        }
    };

    // SQLite's own view first (pages, indexes, constraints, references): where the file is
    // damaged, the checks after it may fail to read, and this says why.
    let pragma = if quick { "PRAGMA quick_check" } else { "PRAGMA integrity_check" };
    found("database", pragma, &|r| {
        let line: String = r.get(0)?;
        Ok(if line == "ok" { String::new() } else { format!("SQLite: {line}") })
    });
    found("reference", "PRAGMA foreign_key_check", &|r| {
        let (table, row, parent): (String, Option<i64>, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let row = row.map(|n| format!(" row {n}")).unwrap_or_default();
        Ok(format!("{table}{row} refers to a {parent} row that does not exist"))
    });

    // Messages and their bodies. `WHERE` uses NOT INDEXED where a damaged index could hide
    // exactly what is looked for.
    const WHO: &str = "(SELECT a.localpart || '@' || d.name FROM accounts a JOIN domains d ON d.id = a.domain_id
                        WHERE a.id = x.account_id) AS account, x.name AS mailbox";
    let where_message = |r: &Row<'_>| -> rusqlite::Result<String> {
        let (account, mailbox, uid): (Option<String>, String, i64) =
            (r.get("account")?, r.get("mailbox")?, r.get("uid")?);
        Ok(format!("message UID {uid} in {mailbox} of {}", account.unwrap_or_else(|| "a missing account".into())))
    };
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, m.blob_id FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
              WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = m.blob_id) ORDER BY m.id"
        ),
        &|r| Ok(format!("{}: its body (#{}) is missing", where_message(r)?, r.get::<_, i64>("blob_id")?)),
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, m.size, length(b.data) AS actual FROM messages m
               JOIN mailboxes x ON x.id = m.mailbox_id JOIN blobs b ON b.id = m.blob_id
              WHERE m.size != length(b.data) ORDER BY m.id"
        ),
        &|r| {
            let (size, actual): (i64, i64) = (r.get("size")?, r.get("actual")?);
            Ok(format!("{}: its size says {size} bytes, its body has {actual}", where_message(r)?))
        },
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, x.uidnext FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
              WHERE m.uid < 1 OR m.uid >= x.uidnext ORDER BY m.id"
        ),
        &|r| {
            let next: i64 = r.get("uidnext")?;
            Ok(format!("{}: not below the mailbox's UIDNEXT {next}", where_message(r)?))
        },
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, count(*) AS copies FROM messages m NOT INDEXED
               JOIN mailboxes x ON x.id = m.mailbox_id
              GROUP BY m.mailbox_id, m.uid HAVING count(*) > 1 ORDER BY m.mailbox_id, m.uid"
        ),
        &|r| Ok(format!("{}: the UID is used {} times", where_message(r)?, r.get::<_, i64>("copies")?)),
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, m.modseq, x.highestmodseq FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
              WHERE m.modseq > x.highestmodseq OR m.modseq < 1 ORDER BY m.id"
        ),
        &|r| {
            let (modseq, highest): (i64, i64) = (r.get("modseq")?, r.get("highestmodseq")?);
            Ok(format!("{}: MODSEQ {modseq} is not within 1..={highest} (HIGHESTMODSEQ)", where_message(r)?))
        },
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, m.uid, m.flags FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
              WHERE m.flags < 0 OR m.flags > 31 ORDER BY m.id"
        ),
        &|r| Ok(format!("{}: unknown flag bits {}", where_message(r)?, r.get::<_, i64>("flags")?)),
    );
    found(
        "message",
        &format!(
            "SELECT {WHO}, e.uid FROM expunged e JOIN mailboxes x ON x.id = e.mailbox_id
              WHERE EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = e.mailbox_id AND m.uid = e.uid)
                 OR e.uid >= x.uidnext OR e.modseq > x.highestmodseq ORDER BY e.mailbox_id, e.uid"
        ),
        &|r| Ok(format!("{}: recorded as expunged, but still there or never given out", where_message(r)?)),
    );

    // Bodies.
    found(
        "body",
        "SELECT b.id, length(b.data) AS size FROM blobs b
          WHERE NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = b.id) ORDER BY b.id",
        &|r| Ok(format!("body #{} has no summary (ENVELOPE, BODYSTRUCTURE)", r.get::<_, i64>("id")?)),
    );
    found(
        "body",
        "SELECT b.id, length(b.data) AS size, s.header_len FROM blobs b JOIN summaries s ON s.blob_id = b.id
          WHERE s.header_len < 0 OR s.header_len > length(b.data) ORDER BY b.id",
        &|r| {
            let (id, size, header): (i64, i64, i64) = (r.get("id")?, r.get("size")?, r.get("header_len")?);
            Ok(format!("body #{id}: its summary's header length {header} does not fit its {size} bytes"))
        },
    );
    found(
        "body",
        "SELECT b.id, length(b.data) AS size FROM blobs b
          WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id) ORDER BY b.id",
        &|r| {
            let (id, size): (i64, i64) = (r.get("id")?, r.get("size")?);
            Ok(format!("body #{id} ({size} bytes) belongs to no message"))
        },
    );

    // What hangs off bodies. Foreign keys (ON DELETE CASCADE) remove these with their body,
    // but a database written with foreign keys off would keep them; `foreign_key_check` above
    // reports them too, in SQLite's words, these say what they are.
    found(
        "body",
        "SELECT s.blob_id FROM summaries s WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = s.blob_id)
          ORDER BY s.blob_id",
        &|r| Ok(format!("a summary is left for body #{}, which does not exist", r.get::<_, i64>(0)?)),
    );
    found(
        "body",
        "SELECT h.blob_id FROM header_caches h WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = h.blob_id)
          ORDER BY h.blob_id",
        &|r| Ok(format!("a header cache is left for body #{}, which does not exist", r.get::<_, i64>(0)?)),
    );
    // Each cache against its header, recomputed. Only the header's bytes are read (an
    // incremental blob read), so this costs about what the headers take, in quick mode too.
    found(
        "body",
        "SELECT h.blob_id, h.data, s.header_len FROM header_caches h
           JOIN blobs b ON b.id = h.blob_id JOIN summaries s ON s.blob_id = h.blob_id
          WHERE s.header_len BETWEEN 0 AND length(b.data) ORDER BY h.blob_id",
        &|r| {
            let (id, cache, header_len): (i64, Vec<u8>, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if portcullis_mime::HeaderCache::new(&cache).is_none() {
                // Another format version: SEARCH reads the header instead (counted below).
                return Ok(String::new());
            }
            let blob = conn.blob_open("main", "blobs", "data", id, true)?;
            let mut header = vec![0; header_len as usize];
            blob.read_at_exact(&mut header, 0)?;
            Ok(if portcullis_mime::header_cache(&header) == cache {
                String::new()
            } else {
                format!("body #{id}: its header cache does not match its header (SEARCH would go by the cache)")
            })
        },
    );

    // Accounts and mailboxes.
    const ACCOUNT: &str = "a.localpart || '@' || coalesce((SELECT name FROM domains WHERE id = a.domain_id), '?')";
    found(
        "account",
        &format!(
            "SELECT * FROM (SELECT a.id, {ACCOUNT} AS account, a.used_bytes,
                    (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                      WHERE x.account_id = a.id) AS actual FROM accounts a)
              WHERE used_bytes != actual ORDER BY id"
        ),
        &|r| {
            let (account, used, actual): (String, i64, i64) =
                (r.get("account")?, r.get("used_bytes")?, r.get("actual")?);
            Ok(format!("account {account}: its usage says {used} bytes, its messages take {actual}"))
        },
    );
    found(
        "account",
        &format!(
            "SELECT {ACCOUNT} AS account FROM accounts a
              WHERE NOT EXISTS (SELECT 1 FROM mailboxes x WHERE x.account_id = a.id AND x.name = 'INBOX') ORDER BY a.id"
        ),
        &|r| Ok(format!("account {} has no INBOX", r.get::<_, String>("account")?)),
    );
    found(
        "mailbox",
        &format!(
            "SELECT {WHO}, x.uidnext, x.uidvalidity, x.highestmodseq, x.recent_from FROM mailboxes x
              WHERE x.uidnext < 1 OR x.uidvalidity < 1 OR x.uidvalidity > 4294967295 OR x.uidnext > 4294967296
                 OR x.highestmodseq < 1 OR x.recent_from < 1 OR x.recent_from > x.uidnext ORDER BY x.id"
        ),
        &|r| {
            let (account, mailbox): (Option<String>, String) = (r.get("account")?, r.get("mailbox")?);
            let (next, validity, modseq, recent): (i64, i64, i64, i64) =
                (r.get("uidnext")?, r.get("uidvalidity")?, r.get("highestmodseq")?, r.get("recent_from")?);
            Ok(format!(
                "mailbox {mailbox} of {}: UIDNEXT {next}, UIDVALIDITY {validity}, HIGHESTMODSEQ {modseq}, \
                 first unclaimed \\Recent UID {recent} out of range",
                account.unwrap_or_else(|| "a missing account".into())
            ))
        },
    );

    let mut count = |what: &str, sql: &str| match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
        Ok(n) => n.max(0) as u64,
        Err(e) => {
            problems.push(format!("could not count the {what}: {e}"));
            0
        }
    };
    CheckReport {
        domains: count("domains", "SELECT count(*) FROM domains"),
        accounts: count("accounts", "SELECT count(*) FROM accounts"),
        mailboxes: count("mailboxes", "SELECT count(*) FROM mailboxes"),
        messages: count("messages", "SELECT count(*) FROM messages"),
        bodies: count("bodies", "SELECT count(*) FROM blobs"),
        body_bytes: count("bodies' bytes", "SELECT coalesce(sum(length(data)), 0) FROM blobs"),
        // The format version is the first byte of every cache, an empty header's included.
        bodies_without_header_cache: count(
            "bodies without a header cache",
            &format!(
                "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM header_caches h
                  WHERE h.blob_id = b.id AND substr(h.data, 1, 1) = x'{:02x}')",
                portcullis_mime::header_cache(b"")[0]
            ),
        ),
        problems,
    }
}

/// Runs `sql` and adds a problem for each row `describe` makes a sentence of (an empty one is
/// no problem), listing at most [`LIST_AT_MOST`] and counting the rest.
fn list(
    conn: &Connection,
    problems: &mut Vec<String>,
    kind: &str,
    sql: &str,
    describe: &dyn Fn(&Row<'_>) -> rusqlite::Result<String>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(sql).db()?;
    let mut rows = stmt.query([]).db()?;
    let mut more = 0usize;
    let mut listed = 0usize;
    while let Some(row) = rows.next().db()? {
        let sentence = describe(row).db()?;
        if sentence.is_empty() {
            continue;
        }
        if listed < LIST_AT_MOST {
            problems.push(sentence);
            listed += 1;
        } else {
            more += 1;
        }
    }
    if more > 0 {
        problems.push(format!("... and {more} more {kind} problems like the ones above"));
    }
    Ok(())
}
