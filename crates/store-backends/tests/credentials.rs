//! What lets the server check an open session's credentials again: ids that are never reused,
//! the credentials generation, the TOTP lock, and the server's persistent secrets.

#[macro_use]
mod common;

use common::*;
use portcullis_store::*;

fn hash(h: &str) -> PasswordSecrets {
    PasswordSecrets::hash_only(h)
}

conformance!(ids_of_removed_rows_are_never_handed_out_again);
async fn ids_of_removed_rows_are_never_handed_out_again(db: TestDb) {
    let store = open(&db, None).await;
    let bob = account(&store, "bob@example.org").await;
    let bobs_inbox = mailbox(&store, bob, "INBOX").await.id;
    let bobs_last = store.create_mailbox(bob, "Last", None).await.unwrap();
    let bobs_phone = store.add_app_password("bob@example.org", "phone", &[1; 32], SCOPE_IMAP, None).await.unwrap().id;
    // The newest of everything goes: SQLite alone would hand these ids to the next rows.
    store.remove_account("bob@example.org").await.unwrap();
    let carol = account(&store, "carol@example.org").await;
    assert!(carol > bob, "account {carol} after {bob}");
    let carols = store.mailboxes(carol).await.unwrap();
    assert!(carols.iter().all(|m| m.id > bobs_last && m.id != bobs_inbox), "{carols:?}");
    let carols_phone = store.add_app_password("carol@example.org", "phone", &[2; 32], SCOPE_IMAP, None).await.unwrap();
    assert!(carols_phone.id > bobs_phone);
    // A mailbox deleted and another created: a new id too.
    let newest = store.create_mailbox(carol, "Newest", None).await.unwrap();
    store.delete_mailbox(carol, "Newest").await.unwrap();
    assert!(store.create_mailbox(carol, "Other", None).await.unwrap() > newest);
    // And across a reopen (the counters are in the database).
    store.close();
    let store = open(&db, None).await;
    store.remove_account("carol@example.org").await.unwrap();
    assert!(account(&store, "dave@example.org").await > carol);
    store.close();
}

conformance!(a_new_password_or_totp_turned_on_is_a_new_generation);
async fn a_new_password_or_totp_turned_on_is_a_new_generation(db: TestDb) {
    let store = open(&db, None).await;
    let alice = account(&store, "alice@example.org").await;
    let bob = account(&store, "bob@example.org").await;
    let generation = |address: &'static str| {
        let store = &store;
        async move { store.credentials(address).await.unwrap().unwrap().generation }
    };
    let first = generation("alice@example.org").await;
    assert_eq!(store.credentials_generations(&[alice, bob]).await.unwrap(), vec![(alice, first), (bob, first)]);
    store.set_password("alice@example.org", &hash("$argon2id$other")).await.unwrap();
    let second = generation("alice@example.org").await;
    assert!(second > first);
    store.set_totp("alice@example.org", Some(b"secret"), true, &[]).await.unwrap();
    let third = generation("alice@example.org").await;
    assert!(third > second, "TOTP on");
    store.set_totp("alice@example.org", None, false, &[]).await.unwrap();
    assert_eq!(generation("alice@example.org").await, third, "TOTP off opens more, closes nothing");
    store.set_quota("alice@example.org", Quota::Unlimited).await.unwrap();
    assert_eq!(generation("alice@example.org").await, third, "a quota is not a credential");
    let scram = store.scram_keys("alice@example.org").await.unwrap().unwrap();
    assert_eq!((scram.account, scram.generation, scram.scram), (alice, third, None));
    // A removed account is missing from the answer.
    store.remove_account("bob@example.org").await.unwrap();
    assert_eq!(store.credentials_generations(&[alice, bob]).await.unwrap(), vec![(alice, third)]);
    store.close();
}

conformance!(totp_locks_at_the_limit_and_unlocks);
async fn totp_locks_at_the_limit_and_unlocks(db: TestDb) {
    let store = open(&db, None).await;
    let alice = account(&store, "alice@example.org").await;
    store.set_totp("alice@example.org", Some(b"secret"), true, &[]).await.unwrap();
    let totp = || async { store.totp("alice@example.org").await.unwrap().unwrap() };
    assert_eq!((totp().await.failures, totp().await.locked), (0, false));
    assert!(!store.totp_failed(alice, 3).await.unwrap());
    assert!(!store.totp_failed(alice, 3).await.unwrap());
    assert!(store.totp_failed(alice, 3).await.unwrap(), "the third locks it");
    assert!(!store.totp_failed(alice, 3).await.unwrap(), "and only the third says so");
    assert_eq!((totp().await.failures, totp().await.locked), (4, true));
    // The lock is stored: a reopen keeps it.
    store.close();
    let store = open(&db, None).await;
    assert!(store.totp("alice@example.org").await.unwrap().unwrap().locked);
    assert!(store.totp_unlock(alice).await.unwrap(), "it was locked");
    let totp = store.totp("alice@example.org").await.unwrap().unwrap();
    assert_eq!((totp.failures, totp.locked), (0, false));
    assert!(!store.totp_unlock(alice).await.unwrap());
    // Enrolling again starts clean.
    store.totp_failed(alice, 1).await.unwrap();
    store.set_totp("alice@example.org", Some(b"another"), true, &[]).await.unwrap();
    assert!(!store.totp("alice@example.org").await.unwrap().unwrap().locked);
    store.close();
}

conformance!(server_secrets_are_made_once_and_kept);
async fn server_secrets_are_made_once_and_kept(db: TestDb) {
    let store = open(&db, None).await;
    assert_eq!(store.server_secret("decoy", &[1; 32]).await.unwrap(), vec![1; 32]);
    assert_eq!(store.server_secret("decoy", &[2; 32]).await.unwrap(), vec![1; 32], "the first one stays");
    assert_eq!(store.server_secret("other", &[3; 32]).await.unwrap(), vec![3; 32]);
    store.close();
    let store = open(&db, None).await;
    assert_eq!(store.server_secret("decoy", &[4; 32]).await.unwrap(), vec![1; 32], "across a reopen");
    store.close();
}
