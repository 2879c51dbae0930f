//! The SQLite backend on a real file: accounts and deliveries that survive a reopen, group
//! commit under concurrent deliveries, quotas and expunge as the database sees them, maildrop
//! locks, and a schema newer than this build refused.

use portcullis_store::*;
use portcullis_store_sqlite::SqliteStore;
use std::sync::Arc;

fn open(dir: &tempfile::TempDir, quota: Option<u64>) -> SqliteStore {
    SqliteStore::open(&dir.path().join("mail.db"), quota).unwrap()
}

async fn with_account(store: &SqliteStore, address: &str) -> AccountId {
    let domain = address.rsplit_once('@').unwrap().1;
    match store.add_domain(domain).await {
        Ok(()) | Err(StoreError::DomainExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    store.add_account(address, &PasswordSecrets::hash_only("$argon2id$fake"), Quota::Default).await.unwrap()
}

#[tokio::test]
async fn domains_and_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, Some(1000));
    store.add_domain("Example.ORG").await.unwrap();
    assert!(matches!(store.add_domain("example.org").await, Err(StoreError::DomainExists(_))));
    assert!(matches!(store.add_domain("not a domain").await, Err(StoreError::InvalidDomain(_))));
    assert_eq!(store.domains().await.unwrap(), vec!["example.org"]);
    assert!(store.is_local_domain("EXAMPLE.org").await.unwrap());
    assert!(!store.is_local_domain("elsewhere.net").await.unwrap());

    assert!(matches!(
        store.add_account("bob@nowhere.net", &PasswordSecrets::hash_only("h"), Quota::Default).await,
        Err(StoreError::NoSuchDomain(d)) if d == "nowhere.net"
    ));
    let id =
        store.add_account("Alice@Example.org", &PasswordSecrets::hash_only("hash1"), Quota::Default).await.unwrap();
    assert!(matches!(
        store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await,
        Err(StoreError::AccountExists(_))
    ));
    let creds = store.credentials("ALICE@example.org").await.unwrap().unwrap();
    assert_eq!(
        (creds.account, creds.address.as_str(), creds.password_hash.as_str()),
        (id, "alice@example.org", "hash1")
    );
    store.set_password("alice@example.org", &PasswordSecrets::hash_only("hash2")).await.unwrap();
    assert_eq!(store.credentials("alice@example.org").await.unwrap().unwrap().password_hash, "hash2");
    assert!(store.credentials("nobody@example.org").await.unwrap().is_none());
    assert!(store.credentials("garbage").await.unwrap().is_none());

    let account = store.account("alice@example.org").await.unwrap().unwrap();
    assert_eq!(account.quota, Some(1000), "the configured default applies");
    store.set_quota("alice@example.org", Quota::Bytes(5)).await.unwrap();
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, Some(5));
    store.set_quota("alice@example.org", Quota::Unlimited).await.unwrap();
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, None);

    let names: Vec<_> = store.mailboxes(id).await.unwrap().into_iter().map(|m| (m.name, m.special_use)).collect();
    for (name, role) in DEFAULT_MAILBOXES {
        assert!(names.contains(&(name.to_string(), role.map(String::from))), "{name}");
    }

    assert!(matches!(store.remove_domain("example.org").await, Err(StoreError::DomainInUse(_))));
    store.remove_account("alice@example.org").await.unwrap();
    assert!(matches!(store.remove_account("alice@example.org").await, Err(StoreError::NoSuchAccount(_))));
    store.remove_domain("example.org").await.unwrap();
    assert!(store.domains().await.unwrap().is_empty());
}

#[tokio::test]
async fn delivery_assigns_uids_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let store = open(&dir, None);
        a = with_account(&store, "a@example.org").await;
        b = with_account(&store, "b@example.org").await;
        let before = store.mailbox(a, "INBOX").await.unwrap().unwrap();
        for i in 0..3 {
            store
                .deliver(Delivery {
                    recipients: vec![a, b, a],
                    raw: format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes(),
                    internal_date: 1_700_000_000 + i,
                })
                .await
                .unwrap();
        }
        let after = store.mailbox(a, "INBOX").await.unwrap().unwrap();
        assert_eq!(after.uidvalidity, before.uidvalidity);
        assert_eq!(after.uidnext, 4);
        assert!(after.highestmodseq > before.highestmodseq);
        store.close();
        assert!(store.add_domain("late.example").await.is_err(), "a closed store refuses writes");
    }
    let store = open(&dir, None);
    let inbox = store.mailbox(a, "INBOX").await.unwrap().unwrap();
    let messages = store.messages(inbox.id).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(messages[0].internal_date, 1_700_000_000);
    assert_eq!(store.message_raw(inbox.id, 2).await.unwrap().unwrap(), b"Subject: 1\r\n\r\nbody\r\n");
    assert_eq!(store.message_raw(inbox.id, 9).await.unwrap(), None);
    let b_inbox = store.mailbox(b, "INBOX").await.unwrap().unwrap();
    assert_eq!(store.messages(b_inbox.id).await.unwrap().len(), 3);
    let accounts = store.accounts().await.unwrap();
    assert_eq!(accounts[0].messages, 3, "a duplicate recipient gets one copy");
}

#[tokio::test]
async fn quota_is_enforced_for_every_recipient_or_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, Some(100));
    let a = with_account(&store, "a@example.org").await;
    let b = with_account(&store, "b@example.org").await;
    store.set_quota("b@example.org", Quota::Bytes(60)).await.unwrap();
    let message = vec![b'x'; 50];
    store.deliver(Delivery { recipients: vec![a, b], raw: message.clone(), internal_date: 0 }).await.unwrap();
    // b has 10 bytes left, a has 50: the second delivery must store nothing at all.
    match store.deliver(Delivery { recipients: vec![a, b], raw: message.clone(), internal_date: 0 }).await {
        Err(DeliveryError::QuotaExceeded(who)) => assert_eq!(who, "b@example.org"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.account("a@example.org").await.unwrap().unwrap().used, 50);
    store.deliver(Delivery { recipients: vec![a], raw: message, internal_date: 0 }).await.unwrap();
    assert_eq!(store.account("a@example.org").await.unwrap().unwrap().used, 100);
    assert!(!store.account("a@example.org").await.unwrap().unwrap().has_room_for(1));
}

#[tokio::test]
async fn expunge_frees_space_and_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, None);
    let a = with_account(&store, "a@example.org").await;
    let b = with_account(&store, "b@example.org").await;
    store.deliver(Delivery { recipients: vec![a, b], raw: vec![b'y'; 40], internal_date: 0 }).await.unwrap();
    let inbox_a = store.mailbox(a, "INBOX").await.unwrap().unwrap();
    let inbox_b = store.mailbox(b, "INBOX").await.unwrap().unwrap();
    store.expunge(inbox_a.id, &[1, 99]).await.unwrap();
    assert_eq!(store.account("a@example.org").await.unwrap().unwrap().used, 0);
    assert!(store.messages(inbox_a.id).await.unwrap().is_empty());
    assert_eq!(store.message_raw(inbox_b.id, 1).await.unwrap().unwrap().len(), 40, "the shared body stays for b");
    store.remove_account("b@example.org").await.unwrap();
    store.close();
    let conn = rusqlite_count(&dir);
    assert_eq!(conn, 0, "no body outlives its last message");
}

fn rusqlite_count(dir: &tempfile::TempDir) -> i64 {
    // Read through a second, independent connection: what is on disk, not what a cache says.
    let conn = rusqlite::Connection::open(dir.path().join("mail.db")).unwrap();
    conn.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_all_land_with_distinct_uids() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir, None));
    let a = with_account(&store, "a@example.org").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .deliver(Delivery { recipients: vec![a], raw: format!("m{i}").into_bytes(), internal_date: 0 })
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let inbox = store.mailbox(a, "INBOX").await.unwrap().unwrap();
    let uids: Vec<u32> = store.messages(inbox.id).await.unwrap().iter().map(|m| m.uid).collect();
    assert_eq!(uids, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn one_pop3_session_per_maildrop() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, None);
    let a = with_account(&store, "a@example.org").await;
    let lock = store.lock_maildrop(a).await.unwrap();
    assert!(lock.is_some());
    assert!(store.lock_maildrop(a).await.unwrap().is_none());
    drop(lock);
    assert!(store.lock_maildrop(a).await.unwrap().is_some());
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(&dir, None).close();
    let conn = rusqlite::Connection::open(dir.path().join("mail.db")).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = SqliteStore::open(&dir.path().join("mail.db"), None).err().unwrap().to_string();
    assert!(err.contains("newer"), "{err}");
}
