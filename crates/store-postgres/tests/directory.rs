//! Domains, accounts and credentials on PostgreSQL: the checks of the store's own
//! tests/credentials.rs against a PgStore (a "reopen" is a new store on the same database),
//! and what only a shared database can get wrong: two nodes racing for one TOTP code, one
//! recovery code, one address, one server secret.

mod common;

use common::*;
use portcullis_store::*;
use portcullis_store_postgres::PgStore;

fn hash(h: &str) -> PasswordSecrets {
    PasswordSecrets::hash_only(h)
}

#[tokio::test]
async fn domains_and_accounts_as_on_sqlite() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
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
    let mailboxes = count(&url, &format!("SELECT count(*) FROM mailboxes WHERE account_id = {alice}")).await;
    let subscribed = count(&url, &format!("SELECT count(*) FROM subscriptions WHERE account_id = {alice}")).await;
    assert_eq!((mailboxes, subscribed), (DEFAULT_MAILBOXES.len() as i64, DEFAULT_MAILBOXES.len() as i64));
    let distinct = count(&url, "SELECT count(DISTINCT uidvalidity) FROM mailboxes").await;
    assert_eq!(distinct, mailboxes, "every mailbox its own UIDVALIDITY");

    // Quotas: the account's own, the default, none.
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, Some(1000));
    store.set_quota("alice@example.org", Quota::Default).await.unwrap();
    assert_eq!(store.account("alice@example.org").await.unwrap().unwrap().quota, None);
    let with_default = PgStore::connect(&url, Some(500)).await.unwrap();
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
    assert_eq!(count(&url, "SELECT count(*) FROM mailboxes").await, 0, "its mailboxes went with it");
    store.remove_domain("example.org").await.unwrap();
    assert_eq!(store.domains().await.unwrap(), ["b.test"]);
}

#[tokio::test]
async fn ids_of_removed_rows_are_never_handed_out_again() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let bob = account(&store, "bob@example.org").await;
    let bobs_last_mailbox = count(&url, "SELECT max(id) FROM mailboxes").await;
    let bobs_phone = store.add_app_password("bob@example.org", "phone", &[1; 32], SCOPE_IMAP, None).await.unwrap().id;
    store.remove_account("bob@example.org").await.unwrap();
    let carol = account(&store, "carol@example.org").await;
    assert!(carol > bob, "account {carol} after {bob}");
    assert!(count(&url, "SELECT min(id) FROM mailboxes").await > bobs_last_mailbox);
    let carols_phone = store.add_app_password("carol@example.org", "phone", &[2; 32], SCOPE_IMAP, None).await.unwrap();
    assert!(carols_phone.id > bobs_phone);
    // And from another node, after the first is gone.
    store.close();
    let other = node(&url).await;
    other.remove_account("carol@example.org").await.unwrap();
    assert!(account(&other, "dave@example.org").await > carol);
}

#[tokio::test]
async fn a_new_password_or_totp_turned_on_is_a_new_generation() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let alice = account(&store, "alice@example.org").await;
    let bob = account(&store, "bob@example.org").await;
    let generation = |address: &'static str| {
        let store = &store;
        async move { store.credentials(address).await.unwrap().unwrap().generation }
    };
    let first = generation("alice@example.org").await;
    assert_eq!(store.credentials_generations(&[alice, bob]).await.unwrap(), vec![(alice, first), (bob, first)]);
    assert_eq!(store.credentials_generations(&[bob, alice]).await.unwrap(), vec![(bob, first), (alice, first)]);
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
    store.remove_account("bob@example.org").await.unwrap();
    assert_eq!(store.credentials_generations(&[alice, bob]).await.unwrap(), vec![(alice, third)]);
    assert!(store.credentials_generations(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn app_passwords_are_listed_found_revoked_and_expire() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
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

#[tokio::test]
async fn totp_locks_at_the_limit_and_unlocks() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let alice = account(&store, "alice@example.org").await;
    assert_eq!(store.totp("alice@example.org").await.unwrap(), None, "no secret, no TOTP");
    store.set_totp("alice@example.org", Some(b"secret"), true, &[]).await.unwrap();
    let totp = || async { store.totp("alice@example.org").await.unwrap().unwrap() };
    assert_eq!((totp().await.secret, totp().await.enabled), (b"secret".to_vec(), true));
    assert_eq!((totp().await.failures, totp().await.locked), (0, false));
    assert!(!store.totp_failed(alice, 3).await.unwrap());
    assert!(!store.totp_failed(alice, 3).await.unwrap());
    assert!(store.totp_failed(alice, 3).await.unwrap(), "the third locks it");
    assert!(!store.totp_failed(alice, 3).await.unwrap(), "and only the third says so");
    assert_eq!((totp().await.failures, totp().await.locked), (4, true));
    // The lock is in the database: another node sees it.
    let other = node(&url).await;
    assert!(other.totp("alice@example.org").await.unwrap().unwrap().locked);
    assert!(other.totp_unlock(alice).await.unwrap(), "it was locked");
    let unlocked = store.totp("alice@example.org").await.unwrap().unwrap();
    assert_eq!((unlocked.failures, unlocked.locked), (0, false));
    assert!(!store.totp_unlock(alice).await.unwrap());
    // Enrolling again starts clean.
    store.totp_failed(alice, 1).await.unwrap();
    store.set_totp("alice@example.org", Some(b"another"), true, &[]).await.unwrap();
    assert!(!store.totp("alice@example.org").await.unwrap().unwrap().locked);
    // A pending secret is not enabled; none without a secret.
    store.set_totp("alice@example.org", Some(b"pending"), false, &[]).await.unwrap();
    assert!(!totp().await.enabled);
    store.set_totp("alice@example.org", None, true, &[]).await.unwrap();
    assert_eq!(store.totp("alice@example.org").await.unwrap(), None);
    assert!(matches!(store.set_totp("nobody@example.org", None, false, &[]).await, Err(StoreError::NoSuchAccount(_))));
}

#[tokio::test]
async fn a_totp_step_and_a_recovery_code_are_used_once_across_nodes() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let alice = account(&store, "alice@example.org").await;
    let codes = vec![vec![7u8; 32], vec![8u8; 32]];
    store.set_totp("alice@example.org", Some(b"secret"), true, &codes).await.unwrap();
    let nodes = [store, node(&url).await, node(&url).await];

    // The same step offered 30 times at once through three nodes: accepted exactly once.
    let mut tries = Vec::new();
    for i in 0..30 {
        let node = &nodes[i % nodes.len()];
        tries.push(async move { node.use_totp_step(alice, 1_000).await.unwrap() });
    }
    let accepted = futures_count(tries).await;
    assert_eq!(accepted, 1, "a code used on one node is refused on every other");
    assert!(!nodes[1].use_totp_step(alice, 999).await.unwrap(), "an older step too");
    assert!(nodes[2].use_totp_step(alice, 1_001).await.unwrap(), "a newer one is fine");
    assert_eq!(nodes[0].totp("alice@example.org").await.unwrap().unwrap().last_step, 1_001);

    let mut tries = Vec::new();
    for i in 0..30 {
        let node = &nodes[i % nodes.len()];
        tries.push(async move { node.use_recovery_code(alice, &[7; 32]).await.unwrap() });
    }
    assert_eq!(futures_count(tries).await, 1, "a recovery code works once");
    assert!(!nodes[0].use_recovery_code(alice, &[9; 32]).await.unwrap(), "not a code");
    assert!(nodes[0].use_recovery_code(alice, &[8; 32]).await.unwrap());
    // New codes replace the old ones.
    nodes[0].set_totp("alice@example.org", Some(b"secret"), true, &[vec![1; 32]]).await.unwrap();
    assert!(!nodes[1].use_recovery_code(alice, &[8; 32]).await.unwrap());
    assert!(nodes[1].use_recovery_code(alice, &[1; 32]).await.unwrap());
}

#[tokio::test]
async fn two_nodes_adding_one_address_make_one_account() {
    let Some(url) = common::fresh_url() else { return };
    let a = node(&url).await;
    let b = node(&url).await;
    a.add_domain("example.org").await.unwrap();
    account(&a, "alice@example.org").await;
    for round in 0..10 {
        let address = format!("user{round}@example.org");
        let secrets = hash("h");
        let (x, y) =
            tokio::join!(a.add_account(&address, &secrets, Quota::Default), b.add_alias(&address, "alice@example.org"));
        assert!(x.is_ok() != y.is_ok(), "round {round}: exactly one of account and alias: {x:?} {y:?}");
        let twice = format!("twice{round}@example.org");
        let (x, y) = tokio::join!(
            a.add_account(&twice, &secrets, Quota::Default),
            b.add_account(&twice, &secrets, Quota::Default)
        );
        assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} {y:?}");
        assert!(matches!(x.err().or(y.err()), Some(StoreError::AccountExists(_))));
    }
}

#[tokio::test]
async fn server_secrets_are_made_once_and_every_node_reads_the_same() {
    let Some(url) = common::fresh_url() else { return };
    let a = node(&url).await;
    let b = node(&url).await;
    let (x, y) = tokio::join!(a.server_secret("decoy", &[1; 32]), b.server_secret("decoy", &[2; 32]));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x, y, "both nodes hold the first one's secret");
    assert!(x == vec![1; 32] || x == vec![2; 32]);
    assert_eq!(a.server_secret("decoy", &[3; 32]).await.unwrap(), x, "the first one stays");
    assert_eq!(b.server_secret("other", &[4; 32]).await.unwrap(), vec![4; 32]);
    a.close();
    assert_eq!(node(&url).await.server_secret("decoy", &[5; 32]).await.unwrap(), x, "across a restart");
}

/// Runs the futures concurrently (all polled together); how many said true.
async fn futures_count<F: std::future::Future<Output = bool>>(futures: Vec<F>) -> usize {
    join_all(futures.into_iter().map(Box::pin).collect()).await.into_iter().filter(|&b| b).count()
}

async fn join_all<F: std::future::Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in futures.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match std::pin::Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(out) => {
                        *result = Some(out);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future finished")).collect()
}
