//! Signals between nodes on a real PostgreSQL (issue 17), two store handles on one database
//! standing for two nodes: a signal published on one reaches the other (and itself) within a
//! second, measured; a write other nodes must follow (a ban, a revoked app password, a new
//! password) is signalled from inside its transaction, so it is heard at commit and never for
//! a write that rolled back; a malformed NOTIFY on the channel is dropped.

mod common;
mod seed;

use std::time::{Duration, Instant};

use portcullis_store::*;
use portcullis_store_postgres::PgStore;
use tokio::sync::broadcast;

/// The next signal `receiver` hears, and how long it took from `since`; fails after a second.
async fn heard_within_a_second(receiver: &mut broadcast::Receiver<NodeSignal>, since: Instant) -> NodeSignal {
    let signal = tokio::time::timeout(Duration::from_secs(1), receiver.recv())
        .await
        .expect("the signal arrived within 1 s")
        .unwrap();
    let elapsed = since.elapsed();
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    signal
}

async fn nothing_more(receiver: &mut broadcast::Receiver<NodeSignal>) {
    let more = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await;
    assert!(more.is_err(), "unexpected {more:?}");
}

async fn two_nodes() -> Option<(String, PgStore, PgStore)> {
    let url = common::fresh_url()?;
    Some((url.clone(), common::node(&url).await, common::node(&url).await))
}

#[tokio::test]
async fn a_signal_published_on_one_node_reaches_every_node_within_a_second() {
    let Some((_url, a, b)) = two_nodes().await else { return };
    assert_ne!(a.node(), b.node(), "two handles are two nodes");
    let (mut on_a, mut on_b) = (a.signals(), b.signals());
    for session in 1..=3 {
        let kill = NodeSignal::KillSession { node: b.node().to_string(), session, by: a.node().to_string() };
        let started = Instant::now();
        a.publish(kill.clone()).await.unwrap();
        assert_eq!(heard_within_a_second(&mut on_b, started).await, kill);
        assert_eq!(heard_within_a_second(&mut on_a, started).await, kill, "the publisher hears it too");
        // And the answer comes back the same way.
        let answer = NodeSignal::SessionKillAnswered { node: b.node().to_string(), session, killed: true };
        let started = Instant::now();
        b.publish(answer.clone()).await.unwrap();
        assert_eq!(heard_within_a_second(&mut on_a, started).await, answer);
        assert_eq!(heard_within_a_second(&mut on_b, started).await, answer);
    }
    nothing_more(&mut on_b).await;
}

#[tokio::test]
async fn writes_on_one_node_are_signalled_to_the_other_at_commit_and_only_then() {
    let Some((_url, a, b)) = two_nodes().await else { return };
    common::account(&a, "alice@example.org").await;
    a.add_app_password("alice@example.org", "phone", &[1; 32], SCOPE_IMAP, None).await.unwrap();
    let mut on_b = b.signals();
    let alice = || "alice@example.org".to_string();

    let started = Instant::now();
    let ban = StoredBan {
        network: "192.0.2.7/32".into(),
        until: None,
        reason: "test".into(),
        offence: 1,
        manual: true,
        created: 1_000,
    };
    a.put_ban(ban).await.unwrap();
    assert_eq!(heard_within_a_second(&mut on_b, started).await, NodeSignal::BansChanged);
    // Committed when heard: node B reads it.
    assert_eq!(b.ban_changes(None).await.unwrap().bans.len(), 1);
    let started = Instant::now();
    assert!(a.delete_ban("192.0.2.7/32").await.unwrap());
    assert_eq!(heard_within_a_second(&mut on_b, started).await, NodeSignal::BansChanged);

    let started = Instant::now();
    assert!(a.revoke_app_password("alice@example.org", "phone").await.unwrap());
    let revoked = heard_within_a_second(&mut on_b, started).await;
    assert_eq!(revoked, NodeSignal::AppPasswordRevoked { account: alice() });
    let started = Instant::now();
    a.set_password("alice@example.org", &PasswordSecrets::hash_only("$argon2id$new")).await.unwrap();
    let changed = heard_within_a_second(&mut on_b, started).await;
    assert_eq!(changed, NodeSignal::CredentialsChanged { account: alice() });

    // A write that changes nothing, or fails and rolls back, is not signalled.
    assert!(!a.revoke_app_password("alice@example.org", "phone").await.unwrap());
    assert!(!a.delete_ban("192.0.2.7/32").await.unwrap());
    assert!(a.remove_account("nobody@example.org").await.is_err());
    nothing_more(&mut on_b).await;
    let started = Instant::now();
    a.remove_account("alice@example.org").await.unwrap();
    let removed = heard_within_a_second(&mut on_b, started).await;
    assert_eq!(removed, NodeSignal::CredentialsChanged { account: alice() });
}

#[tokio::test]
async fn a_malformed_notify_on_the_signal_channel_is_dropped() {
    let Some((url, a, _b)) = two_nodes().await else { return };
    let db = seed::connect(&url).await;
    let mut on_a = a.signals();
    for bad in ["", "bans please", "kill x", "killed n 1 perhaps", "credentials  x"] {
        db.execute("SELECT pg_notify('portcullis_signal', $1)", &[&bad]).await.unwrap();
    }
    let started = Instant::now();
    db.execute("SELECT pg_notify('portcullis_signal', 'bans')", &[]).await.unwrap();
    assert_eq!(heard_within_a_second(&mut on_a, started).await, NodeSignal::BansChanged, "only the good one");
    nothing_more(&mut on_a).await;
}
