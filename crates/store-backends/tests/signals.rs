//! Signals between nodes: the store publishes one for each write other nodes must follow at
//! once (bans, app password revocations, credential changes), after it commits, and delivers
//! what callers publish (session kills) to every node, the publishing one included. Only what
//! changed is signalled: a write that changes nothing (a ban lifted twice, an unknown app
//! password revoked) is silent.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use portcullis_store::*;
use tokio::sync::broadcast;

/// The next signal, within a second (PostgreSQL delivers through the server).
async fn next(signals: &mut broadcast::Receiver<NodeSignal>) -> NodeSignal {
    tokio::time::timeout(Duration::from_secs(1), signals.recv()).await.expect("a signal within a second").unwrap()
}

/// Nothing more arrives for a while.
async fn quiet(signals: &mut broadcast::Receiver<NodeSignal>) {
    let more = tokio::time::timeout(Duration::from_millis(200), signals.recv()).await;
    assert!(more.is_err(), "unexpected {more:?}");
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    writes_other_nodes_follow_are_signalled_after_they_commit
);
async fn writes_other_nodes_follow_are_signalled_after_they_commit(db: TestDb) {
    let store = open(&db, None).await;
    account(&store, "alice@example.org").await;
    store.add_app_password("alice@example.org", "phone", &[1; 32], SCOPE_IMAP, None).await.unwrap();
    let mut signals = store.signals();
    let alice = || "alice@example.org".to_string();

    let ban = StoredBan {
        network: "192.0.2.7/32".into(),
        until: None,
        reason: "test".into(),
        offence: 1,
        manual: true,
        created: 1_000,
    };
    store.put_ban(ban).await.unwrap();
    assert_eq!(next(&mut signals).await, NodeSignal::BansChanged);
    // Readable when it is heard.
    assert_eq!(store.ban_changes(None).await.unwrap().bans.len(), 1);
    assert!(store.delete_ban("192.0.2.7/32").await.unwrap());
    assert_eq!(next(&mut signals).await, NodeSignal::BansChanged);
    assert!(!store.delete_ban("192.0.2.7/32").await.unwrap());

    assert!(store.revoke_app_password("Alice@Example.org", "phone").await.unwrap());
    assert_eq!(next(&mut signals).await, NodeSignal::AppPasswordRevoked { account: alice() });
    assert!(!store.revoke_app_password("alice@example.org", "phone").await.unwrap());

    store.set_password("alice@example.org", &PasswordSecrets::hash_only("$argon2id$new")).await.unwrap();
    assert_eq!(next(&mut signals).await, NodeSignal::CredentialsChanged { account: alice() });
    store.set_totp("alice@example.org", Some(b"secret"), true, &[]).await.unwrap();
    assert_eq!(next(&mut signals).await, NodeSignal::CredentialsChanged { account: alice() });
    store.remove_account("alice@example.org").await.unwrap();
    assert_eq!(next(&mut signals).await, NodeSignal::CredentialsChanged { account: alice() });
    // Failed writes are silent too.
    assert!(store.remove_account("alice@example.org").await.is_err());
    quiet(&mut signals).await;
}

conformance!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_published_signal_reaches_every_subscriber_including_the_publisher
);
async fn a_published_signal_reaches_every_subscriber_including_the_publisher(db: TestDb) {
    let store = open(&db, None).await;
    assert!(!store.node().is_empty() && !store.node().contains(' '));
    let (mut one, mut two) = (store.signals(), store.signals());
    let kill = NodeSignal::KillSession { node: store.node().to_string(), session: 42, by: "elsewhere:1:1".into() };
    store.publish(kill.clone()).await.unwrap();
    assert_eq!(next(&mut one).await, kill);
    assert_eq!(next(&mut two).await, kill);
    quiet(&mut one).await;
}
