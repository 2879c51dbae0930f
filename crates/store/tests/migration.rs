//! Migrations on databases as earlier builds left them.

mod common;

use common::*;
use portcullis_store::*;
use rusqlite::params;

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
    assert_eq!(count(&dir, "PRAGMA user_version"), 6, "and on to the current version");
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
    assert_eq!(count(&dir, "PRAGMA user_version"), 6);
    assert_eq!(count(&dir, "SELECT count(*) FROM header_caches"), 598);
    assert_eq!(count(&dir, "SELECT count(*) FROM blobs WHERE id NOT IN (SELECT blob_id FROM header_caches)"), 0);
}
