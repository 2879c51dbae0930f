//! Domains, accounts and credentials on PostgreSQL, what only a shared database can get wrong:
//! two nodes racing for one TOTP code, one recovery code, one address, one server secret.
//! What every backend must do alike is the conformance suite's (crates/store-backends/tests).

mod common;

use common::*;
use portcullis_store::*;

fn hash(h: &str) -> PasswordSecrets {
    PasswordSecrets::hash_only(h)
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
