//! Migrations on databases as earlier builds left them.

mod common;

use common::*;
use portcullis_store::*;
use rusqlite::params;

/// The schema version this build writes (the number of migrations in schema.rs).
const CURRENT: i64 = 13;

#[tokio::test]
async fn migration_2_summarizes_existing_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    SqliteStore::migrate_to(&path, 1).unwrap();
    let raw = message("from before");
    {
        // What migration 1's code wrote: an account, its mailboxes, one delivered message.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'h', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq)
                  VALUES (1, 1, 'INBOX', 7, 3, 5);
             INSERT INTO mailboxes(id, account_id, name, subscribed, uidvalidity) VALUES (2, 1, 'Old', 0, 8);",
        )
        .unwrap();
        conn.execute("INSERT INTO blobs(id, data) VALUES (1, ?1)", params![raw]).unwrap();
        conn.execute(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES (1, 2, 1, ?1, 1000, 1, '$Label1', 4)",
            params![raw.len() as i64],
        )
        .unwrap();
    }

    let store = open(&dir, None);
    let record = store.message_records(1, &[2]).await.unwrap().pop().unwrap();
    let header_len = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(record.header_len, header_len as u64, "the summary was computed");
    assert!(String::from_utf8_lossy(&record.envelope).contains("\"from before\""));
    assert!(!record.bodystructure.is_empty() && !record.body.is_empty());
    assert_eq!(record.sent_date, Some(1_700_000_000));
    assert_eq!(record.flags, flags(Flags::SEEN, &["$Label1"]));
    assert_eq!(store.message_headers(1, &[2]).await.unwrap().remove(0).1, raw[..header_len].to_vec());
    assert_eq!(mailbox_keywords(&store, 1, "INBOX").await, keywords(&["$Label1"]));
    assert_eq!(store.subscriptions(1).await.unwrap(), vec!["INBOX"], "subscriptions carried over");
    assert_eq!(store.append(1, message("after"), Flags::default(), 0).await.unwrap(), 3);
    store.close();
    assert_eq!(count(&dir, "PRAGMA user_version"), CURRENT, "and on to the current version");
    assert_eq!(count(&dir, "SELECT count(*) FROM blobs WHERE id NOT IN (SELECT blob_id FROM summaries)"), 0);
}

#[tokio::test]
async fn migration_5_caches_the_headers_of_existing_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    SqliteStore::migrate_to(&path, 4).unwrap();
    // More bodies than one batch of the migration, one of them with a long folded Subject
    // and an encoded word.
    let subject = format!("=?utf-8?q?Caf=C3=A9?=\r\n {}", "long ".repeat(100));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'h', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq)
                  VALUES (1, 1, 'INBOX', 7, 601, 2);",
        )
        .unwrap();
        for uid in 1..=600i64 {
            let raw = message(&if uid == 500 { subject.clone() } else { format!("m{uid}") });
            let summary = portcullis_mime::summarize(&raw);
            conn.execute("INSERT INTO blobs(id, data) VALUES (?1, ?2)", params![uid, raw]).unwrap();
            conn.execute(
                "INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    uid,
                    summary.header_len as i64,
                    summary.envelope,
                    summary.bodystructure,
                    summary.body,
                    summary.sent_date
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
                 VALUES (1, ?1, ?1, ?2, 1000, 0, '', 2)",
                params![uid, raw.len() as i64],
            )
            .unwrap();
        }
    }

    let store = open(&dir, None);
    let uids: Vec<u32> = (1..=600).collect();
    let caches = store.message_header_caches(1, &uids).await.unwrap();
    assert_eq!(caches.len(), 600);
    let headers = store.message_headers(1, &uids).await.unwrap();
    for ((uid, cache), (_, header)) in caches.iter().zip(&headers) {
        let cache = cache.as_deref().expect("a cache for every body");
        let cache = portcullis_mime::HeaderCache::new(cache).unwrap();
        for field in portcullis_mime::CACHED_FIELDS {
            if let Some(values) = cache.values(field) {
                assert_eq!(values, portcullis_mime::header_values(header, field), "{field} of {uid}");
            }
        }
    }
    let values = portcullis_mime::HeaderCache::new(caches[499].1.as_deref().unwrap()).unwrap().values("subject");
    assert!(values.unwrap()[0].starts_with("Café long long"));
    // New bodies get theirs when stored; bodies gone take theirs along.
    store.append(1, message("new"), Flags::default(), 0).await.unwrap();
    assert!(store.message_header_caches(1, &[601]).await.unwrap()[0].1.is_some());
    store.expunge(1, &[1, 2, 3]).await.unwrap();
    store.close();
    assert_eq!(count(&dir, "PRAGMA user_version"), CURRENT);
    assert_eq!(count(&dir, "SELECT count(*) FROM header_caches"), 598);
    assert_eq!(count(&dir, "SELECT count(*) FROM blobs WHERE id NOT IN (SELECT blob_id FROM header_caches)"), 0);
}

#[tokio::test]
async fn migration_6_starts_the_id_counters_above_the_ids_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    SqliteStore::migrate_to(&path, 5).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'h', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (7, 1, 'b', 'h', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity) VALUES (30, 7, 'INBOX', 7);",
        )
        .unwrap();
    }
    let store = open(&dir, None);
    let b = store.credentials("b@example.org").await.unwrap().unwrap();
    assert_eq!((b.account, b.generation), (7, 1), "existing accounts start at generation 1");
    store.remove_account("b@example.org").await.unwrap();
    let c = account(&store, "c@example.org").await;
    assert_eq!(c, 8, "not 7, the id of the account just removed");
    assert!(store.mailboxes(c).await.unwrap().iter().all(|m| m.id > 30));
    store.close();
    assert_eq!(count(&dir, "PRAGMA user_version"), CURRENT);
}

#[tokio::test]
async fn migration_7_recomputes_summaries_and_leaves_stored_mail_not_recent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    SqliteStore::migrate_to(&path, 6).unwrap();
    // A multipart whose parts' line counts, and a Date: whose own day, the builds before
    // schema 7 computed differently; its summary and cache are stored as they left them.
    let raw = b"Date: Sun, 25 Mar 2007 00:30:00 +0200\r\nFrom: a@example.org\r\nTo: g: b@x, c@y;\r\n\
                Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\ntwo\r\n--b--\r\n"
        .to_vec();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO domains(id, name, created) VALUES (1, 'example.org', 0);
             INSERT INTO accounts(id, domain_id, localpart, password_hash, created) VALUES (1, 1, 'a', 'h', 0);
             INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq)
                  VALUES (1, 1, 'INBOX', 7, 3, 2);",
        )
        .unwrap();
        conn.execute("INSERT INTO blobs(id, data) VALUES (1, ?1)", params![raw]).unwrap();
        conn.execute(
            "INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body, sent_date)
             VALUES (1, 3, x'6f6c64', x'6f6c64', x'6f6c64', 1)",
            [],
        )
        .unwrap();
        conn.execute("INSERT INTO header_caches(blob_id, data) VALUES (1, x'01')", []).unwrap();
        conn.execute(
            "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, flags, keywords, modseq)
             VALUES (1, 2, 1, ?1, 1000, 0, '', 2)",
            params![raw.len() as i64],
        )
        .unwrap();
    }

    let store = open(&dir, None);
    let record = store.message_records(1, &[2]).await.unwrap().pop().unwrap();
    let fresh = portcullis_mime::summarize(&raw);
    assert_eq!(
        (&record.envelope, &record.bodystructure, &record.body, record.header_len as usize, record.sent_date),
        (&fresh.envelope, &fresh.bodystructure, &fresh.body, fresh.header_len, fresh.sent_date),
        "the summary was computed again"
    );
    assert!(String::from_utf8_lossy(&record.bodystructure).contains("\"7BIT\" 8 1 "), "line ends counted");
    let cache = store.message_header_caches(1, &[2]).await.unwrap().pop().unwrap().1.unwrap();
    assert_eq!(cache, fresh.header_cache);
    assert_eq!(portcullis_mime::HeaderCache::new(&cache).unwrap().addresses("to"), Some(vec!["g: b@x, c@y;"]));
    // Mail stored before \Recent existed is recent for nobody; what arrives now is.
    let inbox = mailbox(&store, 1, "INBOX").await;
    assert_eq!((inbox.recent_from, inbox.uidnext), (3, 3));
    assert_eq!(store.mailbox_status(1).await.unwrap().recent, 0);
    assert_eq!(store.claim_recent(1).await.unwrap(), None);
    assert_eq!(store.append(1, message("new"), Flags::default(), 0).await.unwrap(), 3);
    assert_eq!(store.mailbox_status(1).await.unwrap().recent, 1);
    store.close();
    assert_eq!(count(&dir, "PRAGMA user_version"), CURRENT);
}
