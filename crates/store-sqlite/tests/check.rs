//! `SqliteStore::check`: a sound store passes; each kind of damage, made behind the store's
//! back through a raw connection, is found and named.

mod common;

use common::*;
use portcullis_store::*;

async fn sound_store(dir: &tempfile::TempDir) -> SqliteStore {
    let store = open(dir, None);
    let alice = account(&store, "alice@example.org").await;
    let bob = account(&store, "bob@example.org").await;
    // One body shared by two recipients, one appended, one copied, one expunged.
    store
        .deliver(Delivery { recipients: vec![alice, bob], raw: message("shared"), internal_date: 1_700_000_000 })
        .await
        .unwrap();
    let inbox = mailbox(&store, alice, "INBOX").await;
    let uids = fill(&store, inbox.id, 3).await;
    let archive = mailbox(&store, alice, "Archive").await;
    store.copy_messages(inbox.id, &uids[..1], archive.id).await.unwrap();
    store.expunge(inbox.id, &uids[1..2]).await.unwrap();
    store
}

/// Runs `sql` on the database file through a connection of its own, foreign keys off (as a
/// careless tool or a damaged disk would leave things).
fn damage(dir: &tempfile::TempDir, sql: &str) {
    let conn = rusqlite::Connection::open(dir.path().join("mail.db")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn a_sound_store_passes_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = sound_store(&dir).await;
    let report = store.check(false).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.domains, report.accounts, report.mailboxes), (1, 2, 12));
    // shared (x2), m0, m2 in INBOX and the copy of m0 in Archive: 5 messages, 3 bodies.
    assert_eq!((report.messages, report.bodies), (5, 3));
    assert!(report.body_bytes > 0);
    assert_eq!(report.bodies_without_header_cache, 0, "every body stored now gets a header cache");
    assert!(store.check(true).await.unwrap().is_ok());
}

/// Migration 5: a body without a header cache, or with one of another format version, is
/// searched by reading its header. Counted, not a problem.
#[tokio::test]
async fn a_missing_or_other_version_header_cache_is_tolerated_and_counted() {
    for sql in [
        "DELETE FROM header_caches WHERE blob_id = (SELECT min(id) FROM blobs)",
        "UPDATE header_caches SET data = x'ff0000' WHERE blob_id = (SELECT min(id) FROM blobs)",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = sound_store(&dir).await;
        store.close();
        damage(&dir, sql);
        let store = open(&dir, None);
        for quick in [false, true] {
            let report = store.check(quick).await.unwrap();
            assert!(report.is_ok(), "after {sql:?}: {:?}", report.problems);
            assert_eq!(report.bodies_without_header_cache, 1, "after {sql:?}");
        }
        store.close();
    }
}

#[tokio::test]
async fn each_kind_of_damage_is_found() {
    for (sql, expected) in [
        ("UPDATE messages SET size = size + 1 WHERE uid = 2", "its size says"),
        ("UPDATE accounts SET used_bytes = used_bytes + 7 WHERE localpart = 'bob'", "account bob@example.org: its usage says"),
        ("UPDATE mailboxes SET uidnext = 2 WHERE name = 'INBOX'", "not below the mailbox's UIDNEXT 2"),
        ("UPDATE mailboxes SET highestmodseq = 1 WHERE name = 'INBOX'", "(HIGHESTMODSEQ)"),
        ("UPDATE mailboxes SET recent_from = uidnext + 1 WHERE name = 'INBOX'", "first unclaimed \\Recent UID"),
        ("DELETE FROM summaries WHERE blob_id = (SELECT min(id) FROM blobs)", "has no summary"),
        ("INSERT INTO blobs(data) VALUES (x'00')", "belongs to no message"),
        ("DELETE FROM blobs WHERE id = (SELECT max(blob_id) FROM messages)", "its body (#"),
        ("DELETE FROM mailboxes WHERE name = 'INBOX' AND account_id = (SELECT id FROM accounts WHERE localpart = 'bob')",
         "account bob@example.org has no INBOX"),
        ("UPDATE messages SET flags = 64 WHERE uid = 1", "unknown flag bits 64"),
        ("INSERT INTO expunged(mailbox_id, modseq, uid) SELECT mailbox_id, 1, uid FROM messages LIMIT 1",
         "recorded as expunged"),
        ("UPDATE summaries SET header_len = 1000000 WHERE blob_id = (SELECT min(id) FROM blobs)",
         "its summary's header length 1000000 does not fit"),
        ("INSERT INTO summaries(blob_id, header_len, envelope, bodystructure, body) VALUES (9999, 0, x'', x'', x'')",
         "a summary is left for body #9999"),
        ("INSERT INTO header_caches(blob_id, data) VALUES (9999, x'01')", "a header cache is left for body #9999"),
        // The current format version with no fields: SEARCH would believe the message has no
        // Subject, From, Message-ID...
        ("UPDATE header_caches SET data = substr(data, 1, 1) WHERE blob_id = (SELECT min(id) FROM blobs)",
         "its header cache does not match its header"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = sound_store(&dir).await;
        store.close();
        damage(&dir, sql);
        let store = open(&dir, None);
        let report = store.check(false).await.unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains(expected)),
            "after {sql:?} expected a problem with {expected:?}, found {:?}",
            report.problems
        );
        store.close();
    }
}

#[tokio::test]
async fn broken_references_and_pages_are_found_by_sqlite_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = sound_store(&dir).await;
    store.close();
    damage(&dir, "UPDATE messages SET mailbox_id = 9999 WHERE id = (SELECT min(id) FROM messages)");
    let store = open(&dir, None);
    let problems = store.check(true).await.unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("messages row") && p.contains("mailboxes row")), "{problems:?}");
    store.close();

    // A page of the file overwritten (the store closed, so everything is in the main file).
    let dir = tempfile::tempdir().unwrap();
    let store = sound_store(&dir).await;
    store.close();
    let path = dir.path().join("mail.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(bytes.len() > 8 * page);
    bytes[4 * page..5 * page].fill(0xa5);
    std::fs::write(&path, bytes).unwrap();
    let store = open(&dir, None);
    let problems = store.check(false).await.unwrap().problems;
    assert!(problems.iter().any(|p| p.starts_with("SQLite: ")), "{problems:?}");
    store.close();
}

#[tokio::test]
async fn many_problems_of_a_kind_are_listed_up_to_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, None);
    let alice = account(&store, "alice@example.org").await;
    let inbox = mailbox(&store, alice, "INBOX").await;
    fill(&store, inbox.id, 30).await;
    store.close();
    damage(&dir, "UPDATE messages SET size = size + 1");
    let store = open(&dir, None);
    let problems = store.check(true).await.unwrap().problems;
    // 20 listed, one line for the rest, and the account's usage no longer adds up.
    assert!(problems.iter().any(|p| p == "... and 10 more message problems like the ones above"), "{problems:?}");
    assert_eq!(problems.iter().filter(|p| p.contains("its size says")).count(), 20);
    store.close();
}
