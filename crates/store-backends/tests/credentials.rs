//! Domains, accounts and their credentials, and what lets the server check an open session's
//! credentials again: ids that are never reused, the credentials generation, app passwords,
//! the TOTP lock, and the server's persistent secrets.

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

conformance!(domains_and_accounts);
async fn domains_and_accounts(db: TestDb) {
    let store = open(&db, None).await;
    store.add_domain("Example.ORG").await.unwrap();
    assert!(matches!(store.add_domain("example.org").await, Err(StoreError::DomainExists(_))));
    assert!(matches!(store.add_domain("not a domain").await, Err(StoreError::InvalidDomain(_))));
    store.add_domain("b.test").await.unwrap();
    assert_eq!(store.domains().await.unwrap(), ["b.test", "example.org"]);
    assert!(store.is_local_domain("EXAMPLE.org").await.unwrap());
    assert!(!store.is_local_domain("elsewhere.test").await.unwrap());

    let scram = StoredScram { salt: vec![1; 16], iterations: 4096, stored_key: vec![2; 32], server_key: vec![3; 32] };
    let secrets = PasswordSecrets { hash: "$argon2id$alice".into(), scram: Some(scram.clone()) };
    let alice = store.add_account("Alice@Example.org", &secrets, Quota::Bytes(1000)).await.unwrap();
    assert!(matches!(
        store.add_account("alice@example.org", &secrets, Quota::Default).await,
        Err(StoreError::AccountExists(_))
    ));
    assert!(matches!(
        store.add_account("x@nowhere.test", &secrets, Quota::Default).await,
        Err(StoreError::NoSuchDomain(_))
    ));
    assert!(matches!(store.add_account("bad", &secrets, Quota::Default).await, Err(StoreError::InvalidAddress(_))));
    assert!(matches!(store.remove_domain("example.org").await, Err(StoreError::DomainInUse(_))));
    assert!(matches!(store.remove_domain("nowhere.test").await, Err(StoreError::NoSuchDomain(_))));

    let credentials = store.credentials("ALICE@example.org").await.unwrap().unwrap();
    assert_eq!((credentials.account, credentials.address.as_str()), (alice, "alice@example.org"));
    assert_eq!(
        (credentials.password_hash.as_str(), credentials.totp_enabled, credentials.generation),
        ("$argon2id$alice", false, 1)
    );
    assert_eq!(store.scram_keys("alice@example.org").await.unwrap().unwrap().scram, Some(scram));
    assert!(store.credentials("nobody@example.org").await.unwrap().is_none());
    assert!(store.credentials("not an address").await.unwrap().is_none());

    // Every new account gets the default mailboxes, subscribed.
    let mailboxes = count(&db, &format!("SELECT count(*) FROM mailboxes WHERE account_id = {alice}")).await;
    let subscribed = count(&db, &format!("SELECT count(*) FROM subscriptions WHERE account_id = {alice}")).await;
    assert_eq!((mailboxes, subscribed), (DEFAULT_MAILBOXES.len() as i64, DEFAULT_MAILBOXES.len() as i64));
    let distinct = count(&db, "SELECT count(DISTINCT uidvalidity) FROM mailboxes").await;
    assert_eq!(distinct, mailboxes, "every mailbox its own UIDVALIDITY");

    // Quotas: the account's own, the default, none.
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, Some(1000));
    store.set_quota("alice@example.org", Quota::Default).await.unwrap();
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, None);
    let with_default = open(&db, Some(500)).await;
    assert_eq!(with_default.account("alice@example.org").await.unwrap().unwrap().quota, Some(500));
    store.set_quota("alice@example.org", Quota::Unlimited).await.unwrap();
    assert_eq!(with_default.account("alice@example.org").await.unwrap().unwrap().quota, None);
    assert!(matches!(store.set_quota("nobody@example.org", Quota::Unlimited).await, Err(StoreError::NoSuchAccount(_))));
    let listed = store.accounts().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].address.as_str(), listed[0].quota, listed[0].used, listed[0].messages),
        ("alice@example.org", Quota::Unlimited, 0, 0)
    );

    // A new password drops the SCRAM keys it does not come with.
    store.set_password("alice@example.org", &hash("$argon2id$new")).await.unwrap();
    assert_eq!(store.credentials("alice@example.org").await.unwrap().unwrap().password_hash, "$argon2id$new");
    assert_eq!(store.scram_keys("alice@example.org").await.unwrap().unwrap().scram, None);
    assert!(matches!(store.set_password("nobody@example.org", &hash("h")).await, Err(StoreError::NoSuchAccount(_))));

    store.remove_account("alice@example.org").await.unwrap();
    assert!(matches!(store.remove_account("alice@example.org").await, Err(StoreError::NoSuchAccount(_))));
    assert_eq!(count(&db, "SELECT count(*) FROM mailboxes").await, 0, "its mailboxes went with it");
    store.remove_domain("example.org").await.unwrap();
    assert_eq!(store.domains().await.unwrap(), ["b.test"]);
}

conformance!(app_passwords_are_listed_found_revoked_and_expire);
async fn app_passwords_are_listed_found_revoked_and_expire(db: TestDb) {
    let store = open(&db, None).await;
    let alice = account(&store, "alice@example.org").await;
    let phone =
        store.add_app_password("alice@example.org", "phone", &[1; 32], SCOPE_IMAP | SCOPE_SMTP, None).await.unwrap();
    assert_eq!(
        (phone.account, phone.name.as_str(), phone.scopes, phone.revoked),
        (alice, "phone", SCOPE_IMAP | SCOPE_SMTP, false)
    );
    let laptop =
        store.add_app_password("alice@example.org", "laptop", &[2; 32], SCOPE_POP3, Some(1_000)).await.unwrap();
    assert!(matches!(
        store.add_app_password("alice@example.org", "phone", &[3; 32], SCOPE_IMAP, None).await,
        Err(StoreError::AppPasswordExists(name)) if name == "phone"
    ));
    assert!(matches!(
        store.add_app_password("nobody@example.org", "x", &[4; 32], SCOPE_IMAP, None).await,
        Err(StoreError::NoSuchAccount(_))
    ));
    let names: Vec<String> =
        store.app_passwords("alice@example.org").await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["laptop", "phone"]);
    assert_eq!(store.find_app_password("ALICE@example.org", &[1; 32]).await.unwrap(), Some(phone.clone()));
    assert_eq!(store.find_app_password("alice@example.org", &[9; 32]).await.unwrap(), None);
    assert_eq!(store.find_app_password("bad", &[1; 32]).await.unwrap(), None);

    store.app_password_used(phone.id, 500, "192.0.2.1").await.unwrap();
    let used = store.find_app_password("alice@example.org", &[1; 32]).await.unwrap().unwrap();
    assert_eq!((used.last_used, used.last_ip.as_deref()), (Some(500), Some("192.0.2.1")));

    assert_eq!(store.unusable_app_passwords(&[phone.id, laptop.id, 999_999], 999).await.unwrap(), [999_999]);
    assert_eq!(store.unusable_app_passwords(&[phone.id, laptop.id], 1_000).await.unwrap(), [laptop.id], "expired");
    assert!(store.revoke_app_password("alice@example.org", "phone").await.unwrap());
    assert!(!store.revoke_app_password("alice@example.org", "phone").await.unwrap(), "once");
    assert!(store.find_app_password("alice@example.org", &[1; 32]).await.unwrap().unwrap().revoked);
    assert_eq!(store.unusable_app_passwords(&[phone.id], 0).await.unwrap(), [phone.id]);
    store.remove_account("alice@example.org").await.unwrap();
    assert_eq!(store.unusable_app_passwords(&[laptop.id], 0).await.unwrap(), [laptop.id], "gone with the account");
}
