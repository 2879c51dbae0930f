//! `PgStore::check`: a sound store passes and is counted like SQLite's; each kind of damage,
//! made behind the store's back with plain SQL (triggers off, as a careless tool would leave
//! things), is found and named.

mod common;
mod seed;

use common::*;
use portcullis_store::*;
use portcullis_store_postgres::PgStore;

fn message(subject: &str) -> Vec<u8> {
    format!("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello.\r\n")
        .into_bytes()
}

/// Two accounts, one delivery to both (one shared body), two appends, a copy, an expunge.
async fn sound_store() -> Option<(String, PgStore)> {
    let url = fresh_url()?;
    let store = PgStore::connect(&url, None).await.unwrap();
    let alice = account(&store, "alice@example.org").await;
    let bob = account(&store, "bob@example.org").await;
    store
        .deliver(Delivery { recipients: vec![alice, bob], raw: message("shared"), internal_date: 1_700_000_000 })
        .await
        .unwrap();
    let inbox = store.mailbox(alice, "INBOX").await.unwrap().unwrap();
    let mut uids = Vec::new();
    for n in 0..2 {
        uids.push(store.append(inbox.id, message(&format!("m{n}")), Flags::default(), 1_700_000_000).await.unwrap());
    }
    let archive = store.mailbox(alice, "Archive").await.unwrap().unwrap();
    store.copy_messages(inbox.id, &uids[..1], archive.id).await.unwrap();
    store.expunge(inbox.id, &uids[1..2]).await.unwrap();
    Some((url, store))
}

async fn damaged(sql: &str) -> Option<CheckReport> {
    let (url, store) = sound_store().await?;
    let db = seed::connect(&url).await;
    db.batch_execute(&format!("SET session_replication_role = replica; {sql}")).await.unwrap();
    let report = store.check(false).await.unwrap();
    store.close();
    Some(report)
}

#[tokio::test]
async fn a_sound_store_passes_and_is_counted() {
    let Some((_url, store)) = sound_store().await else { return };
    let report = store.check(false).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.domains, report.accounts, report.mailboxes), (1, 2, 12));
    // shared (x2), m0 in INBOX and its copy in Archive: 4 messages, 2 bodies.
    assert_eq!((report.messages, report.bodies), (4, 2));
    assert!(report.body_bytes > 0);
    assert_eq!(report.bodies_without_header_cache, 0);
}

#[tokio::test]
async fn each_kind_of_damage_is_found_and_named() {
    for (sql, expected) in [
        (
            "UPDATE accounts SET used_bytes = used_bytes + 7 WHERE localpart = 'bob'",
            "account bob@example.org: its usage says",
        ),
        ("UPDATE mailboxes SET uidnext = 1 WHERE name = 'Archive'", "not below the mailbox's UIDNEXT"),
        ("UPDATE messages SET modseq = 1000 WHERE id = (SELECT min(id) FROM messages)", "is not within 1..="),
        ("UPDATE messages SET size = size + 1 WHERE id = (SELECT max(id) FROM messages)", "its size says"),
        ("INSERT INTO blobs(data) VALUES ('\\x00'::bytea)", "belongs to no message"),
        ("DELETE FROM summaries WHERE blob_id = (SELECT min(id) FROM blobs)", "has no summary"),
        (
            "UPDATE header_caches SET data = data || '\\x00'::bytea WHERE blob_id = (SELECT min(id) FROM blobs)",
            "header cache does not match",
        ),
        (
            "INSERT INTO expunged(mailbox_id, modseq, uid) SELECT mailbox_id, 1, uid FROM messages LIMIT 1",
            "recorded as expunged, but still there",
        ),
        (
            "UPDATE mailboxes SET name = 'Old' WHERE name = 'INBOX' AND account_id = (SELECT max(id) FROM accounts)",
            "account bob@example.org has no INBOX",
        ),
        ("UPDATE messages SET flags = 64 WHERE id = (SELECT min(id) FROM messages)", "unknown flag bits 64"),
        ("SELECT setval('accounts_id_seq', 1)", "the id sequence of accounts is at 1"),
    ] {
        let Some(report) = damaged(sql).await else { return };
        assert!(report.problems.iter().any(|p| p.contains(expected)), "{sql}\n  → {:?}", report.problems);
    }
}
