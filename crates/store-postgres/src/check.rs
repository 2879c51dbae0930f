//! `portcullis store check` on PostgreSQL: the store's invariants, the same ones SQLite's check
//! examines (`portcullis-store-sqlite`'s `check.rs`), as SQL on this schema, into the same
//! [`CheckReport`]: every message has its body, of the size it says, and a summary; UIDs are
//! unique and below their mailbox's UIDNEXT, MODSEQs at most its HIGHESTMODSEQ, the first UID
//! not yet claimed as \Recent at most UIDNEXT; an expunged UID is gone; every account has an
//! INBOX and uses exactly the bytes of its messages; no body is left without a message; each
//! header cache matches its header. One more, PostgreSQL's own: every identity sequence is past
//! the largest id of its table (a copy that forgot to move one would hand out ids twice).
//!
//! SQLite's `integrity_check` and `foreign_key_check` have no counterpart to run here:
//! PostgreSQL enforces references itself, and checking its pages and indexes is amcheck's work
//! (an extension the operator installs), so `quick` changes nothing on this backend. Everything
//! runs in one read-only REPEATABLE READ transaction: one snapshot, beside a running server.

use tokio_postgres::{IsolationLevel, Row, Transaction};

use portcullis_store::transfer::TABLES;
use portcullis_store::{CheckReport, StoreError, CHECK_LIST_AT_MOST};

use crate::{Db, PgStore};

/// Rows fetched at a time.
const PAGE: i32 = 1000;

/// The account and mailbox of a row joined as `x` (mailboxes), for messages.
const WHO: &str = "(SELECT a.localpart || '@' || d.name FROM accounts a JOIN domains d ON d.id = a.domain_id
                    WHERE a.id = x.account_id) AS account, x.name AS mailbox";
const ACCOUNT: &str = "a.localpart || '@' || coalesce((SELECT name FROM domains WHERE id = a.domain_id), '?')";

impl PgStore {
    /// Checks the store's invariants (see the module's documentation). A check that cannot
    /// read what it needs is a problem too; `Err` only when no transaction can start at all.
    pub async fn check(&self, _quick: bool) -> Result<CheckReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let report = check(&tx).await;
        let _ = tx.commit().await;
        Ok(report)
    }
}

type Describe = fn(&Row) -> Result<String, tokio_postgres::Error>;

fn where_message(r: &Row) -> Result<String, tokio_postgres::Error> {
    let (account, mailbox, uid): (Option<String>, String, i64) =
        (r.try_get("account")?, r.try_get("mailbox")?, r.try_get("uid")?);
    Ok(format!("message UID {uid} in {mailbox} of {}", account.unwrap_or_else(|| "a missing account".into())))
}

async fn check(tx: &Transaction<'_>) -> CheckReport {
    let mut problems = Vec::new();
    let checks: Vec<(&str, String, Describe)> = vec![
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, m.blob_id FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                  WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = m.blob_id) ORDER BY m.id"
            ),
            |r| Ok(format!("{}: its body (#{}) is missing", where_message(r)?, r.try_get::<_, i64>("blob_id")?)),
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, m.size, octet_length(b.data)::bigint AS actual FROM messages m
                   JOIN mailboxes x ON x.id = m.mailbox_id JOIN blobs b ON b.id = m.blob_id
                  WHERE m.size <> octet_length(b.data) ORDER BY m.id"
            ),
            |r| {
                let (size, actual): (i64, i64) = (r.try_get("size")?, r.try_get("actual")?);
                Ok(format!("{}: its size says {size} bytes, its body has {actual}", where_message(r)?))
            },
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, x.uidnext FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                  WHERE m.uid < 1 OR m.uid >= x.uidnext ORDER BY m.id"
            ),
            |r| {
                let next: i64 = r.try_get("uidnext")?;
                Ok(format!("{}: not below the mailbox's UIDNEXT {next}", where_message(r)?))
            },
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, count(*) AS copies FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                  GROUP BY m.mailbox_id, m.uid, x.account_id, x.name HAVING count(*) > 1 ORDER BY m.mailbox_id, m.uid"
            ),
            |r| Ok(format!("{}: the UID is used {} times", where_message(r)?, r.try_get::<_, i64>("copies")?)),
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, m.modseq, x.highestmodseq FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                  WHERE m.modseq > x.highestmodseq OR m.modseq < 1 ORDER BY m.id"
            ),
            |r| {
                let (modseq, highest): (i64, i64) = (r.try_get("modseq")?, r.try_get("highestmodseq")?);
                Ok(format!("{}: MODSEQ {modseq} is not within 1..={highest} (HIGHESTMODSEQ)", where_message(r)?))
            },
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, m.uid, m.flags::bigint AS flags FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                  WHERE m.flags < 0 OR m.flags > 31 ORDER BY m.id"
            ),
            |r| Ok(format!("{}: unknown flag bits {}", where_message(r)?, r.try_get::<_, i64>("flags")?)),
        ),
        (
            "message",
            format!(
                "SELECT {WHO}, e.uid FROM expunged e JOIN mailboxes x ON x.id = e.mailbox_id
                  WHERE EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = e.mailbox_id AND m.uid = e.uid)
                     OR e.uid >= x.uidnext OR e.modseq > x.highestmodseq ORDER BY e.mailbox_id, e.uid"
            ),
            |r| Ok(format!("{}: recorded as expunged, but still there or never given out", where_message(r)?)),
        ),
        (
            "body",
            "SELECT b.id FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM summaries s WHERE s.blob_id = b.id)
              ORDER BY b.id"
                .into(),
            |r| Ok(format!("body #{} has no summary (ENVELOPE, BODYSTRUCTURE)", r.try_get::<_, i64>("id")?)),
        ),
        (
            "body",
            "SELECT b.id, octet_length(b.data)::bigint AS size, s.header_len FROM blobs b
               JOIN summaries s ON s.blob_id = b.id
              WHERE s.header_len < 0 OR s.header_len > octet_length(b.data) ORDER BY b.id"
                .into(),
            |r| {
                let (id, size, header): (i64, i64, i64) =
                    (r.try_get("id")?, r.try_get("size")?, r.try_get("header_len")?);
                Ok(format!("body #{id}: its summary's header length {header} does not fit its {size} bytes"))
            },
        ),
        (
            "body",
            "SELECT b.id, octet_length(b.data)::bigint AS size FROM blobs b
              WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = b.id) ORDER BY b.id"
                .into(),
            |r| {
                let (id, size): (i64, i64) = (r.try_get("id")?, r.try_get("size")?);
                Ok(format!("body #{id} ({size} bytes) belongs to no message"))
            },
        ),
        // Each cache against its header, recomputed; only the header's bytes leave the server.
        (
            "body",
            "SELECT h.blob_id, h.data, substring(b.data FROM 1 FOR s.header_len::integer) AS header
               FROM header_caches h JOIN blobs b ON b.id = h.blob_id JOIN summaries s ON s.blob_id = h.blob_id
              WHERE s.header_len BETWEEN 0 AND octet_length(b.data) ORDER BY h.blob_id"
                .into(),
            |r| {
                let (id, cache, header): (i64, Vec<u8>, Vec<u8>) =
                    (r.try_get("blob_id")?, r.try_get("data")?, r.try_get("header")?);
                // Another format version: SEARCH reads the header instead (counted below).
                if portcullis_mime::HeaderCache::new(&cache).is_none()
                    || portcullis_mime::header_cache(&header) == cache
                {
                    return Ok(String::new());
                }
                Ok(format!("body #{id}: its header cache does not match its header (SEARCH would go by the cache)"))
            },
        ),
        (
            "account",
            format!(
                "SELECT * FROM (SELECT a.id, {ACCOUNT} AS account, a.used_bytes,
                        (SELECT coalesce(sum(m.size), 0)::bigint FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id
                          WHERE x.account_id = a.id) AS actual FROM accounts a) usage
                  WHERE used_bytes <> actual ORDER BY id"
            ),
            |r| {
                let (account, used, actual): (String, i64, i64) =
                    (r.try_get("account")?, r.try_get("used_bytes")?, r.try_get("actual")?);
                Ok(format!("account {account}: its usage says {used} bytes, its messages take {actual}"))
            },
        ),
        (
            "account",
            format!(
                "SELECT {ACCOUNT} AS account FROM accounts a
                  WHERE NOT EXISTS (SELECT 1 FROM mailboxes x WHERE x.account_id = a.id AND x.name = 'INBOX')
                  ORDER BY a.id"
            ),
            |r| Ok(format!("account {} has no INBOX", r.try_get::<_, String>("account")?)),
        ),
        (
            "mailbox",
            format!(
                "SELECT {WHO}, x.uidnext, x.uidvalidity, x.highestmodseq, x.recent_from FROM mailboxes x
                  WHERE x.uidnext < 1 OR x.uidvalidity < 1 OR x.uidvalidity > 4294967295 OR x.uidnext > 4294967296
                     OR x.highestmodseq < 1 OR x.recent_from < 1 OR x.recent_from > x.uidnext ORDER BY x.id"
            ),
            |r| {
                let (account, mailbox): (Option<String>, String) = (r.try_get("account")?, r.try_get("mailbox")?);
                let (next, validity, modseq, recent): (i64, i64, i64, i64) = (
                    r.try_get("uidnext")?,
                    r.try_get("uidvalidity")?,
                    r.try_get("highestmodseq")?,
                    r.try_get("recent_from")?,
                );
                Ok(format!(
                    "mailbox {mailbox} of {}: UIDNEXT {next}, UIDVALIDITY {validity}, HIGHESTMODSEQ {modseq}, \
                     first unclaimed \\Recent UID {recent} out of range",
                    account.unwrap_or_else(|| "a missing account".into())
                ))
            },
        ),
    ];
    for (kind, sql, describe) in &checks {
        if let Err(e) = list(tx, &mut problems, kind, sql, *describe).await {
            problems.push(format!("could not check the {kind}s: {e}"));
        }
    }
    if let Err(e) = check_sequences(tx, &mut problems).await {
        problems.push(format!("could not check the id sequences: {e}"));
    }

    let mut counts = Vec::new();
    for (what, sql) in [
        ("domains", "SELECT count(*) FROM domains".to_string()),
        ("accounts", "SELECT count(*) FROM accounts".into()),
        ("mailboxes", "SELECT count(*) FROM mailboxes".into()),
        ("messages", "SELECT count(*) FROM messages".into()),
        ("bodies", "SELECT count(*) FROM blobs".into()),
        ("bodies' bytes", "SELECT coalesce(sum(octet_length(data)), 0)::bigint FROM blobs".into()),
        // The format version is the first byte of every cache, an empty header's included.
        (
            "bodies without a header cache",
            format!(
                "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM header_caches h
                  WHERE h.blob_id = b.id AND substring(h.data FROM 1 FOR 1) = '\\x{:02x}'::bytea)",
                portcullis_mime::header_cache(b"")[0]
            ),
        ),
    ] {
        counts.push(match tx.query_one(&sql, &[]).await.and_then(|r| r.try_get::<_, i64>(0)) {
            Ok(n) => n.max(0) as u64,
            Err(e) => {
                problems.push(format!("could not count the {what}: {}", crate::backend(&e)));
                0
            }
        });
    }
    CheckReport {
        domains: counts[0],
        accounts: counts[1],
        mailboxes: counts[2],
        messages: counts[3],
        bodies: counts[4],
        body_bytes: counts[5],
        bodies_without_header_cache: counts[6],
        problems,
    }
}

/// Every identity sequence past its table's largest id: otherwise the next insert would fail
/// on a taken id (or, had the row been removed, hand an id out twice).
async fn check_sequences(tx: &Transaction<'_>, problems: &mut Vec<String>) -> Result<(), StoreError> {
    for table in TABLES.iter().filter(|t| t.identity) {
        let sql = format!(
            "SELECT coalesce(max(id), 0), (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
                                            FROM {table}_id_seq s)
               FROM {table}",
            table = table.name
        );
        let row = tx.query_one(&sql, &[]).await.db()?;
        let (largest, last): (i64, i64) = (row.try_get(0).db()?, row.try_get(1).db()?);
        if last < largest {
            problems.push(format!(
                "the id sequence of {} is at {last}, behind its largest id {largest}: new rows would fail",
                table.name
            ));
        }
    }
    Ok(())
}

/// Runs `sql` and adds a problem for each row `describe` makes a sentence of (an empty one is
/// no problem), listing at most [`CHECK_LIST_AT_MOST`] and counting the rest.
async fn list(
    tx: &Transaction<'_>,
    problems: &mut Vec<String>,
    kind: &str,
    sql: &str,
    describe: Describe,
) -> Result<(), StoreError> {
    // A portal, read a page at a time: the header-cache check reads every header.
    let portal = tx.bind(sql, &[]).await.db()?;
    let (mut listed, mut more) = (0usize, 0usize);
    loop {
        let rows = tx.query_portal(&portal, PAGE).await.db()?;
        for row in &rows {
            let sentence = describe(row).db()?;
            if sentence.is_empty() {
                continue;
            }
            if listed < CHECK_LIST_AT_MOST {
                problems.push(sentence);
                listed += 1;
            } else {
                more += 1;
            }
        }
        if rows.len() < PAGE as usize {
            break;
        }
    }
    if more > 0 {
        problems.push(format!("... and {more} more {kind} problems like the ones above"));
    }
    Ok(())
}
