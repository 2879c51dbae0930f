//! The guard's memory on PostgreSQL: the checks of the store's own tests/guard.rs against a
//! PgStore, and a follower on one node reading the bans another node writes, none missed
//! while several nodes ban at once.

mod common;

use common::*;
use portcullis_store::*;

fn ban(network: &str) -> StoredBan {
    StoredBan { network: network.into(), until: Some(2_000), reason: "r".into(), offence: 1, manual: false, created: 1 }
}

#[tokio::test]
async fn bans_and_known_logins_persist() {
    let Some(url) = common::fresh_url() else { return };
    {
        let store = node(&url).await;
        let alice = account(&store, "alice@example.org").await;
        let ban = StoredBan {
            network: "192.0.2.7/32".into(),
            until: Some(2_000),
            reason: "10 failed logins".into(),
            offence: 1,
            manual: false,
            created: 1_000,
        };
        store.put_ban(ban.clone()).await.unwrap();
        store.put_ban(StoredBan { until: None, manual: true, ..ban.clone() }).await.unwrap();
        store.put_ban(StoredBan { network: "2001:db8::/64".into(), ..ban }).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 5_000).await.unwrap();
        store.record_login(alice, "198.51.100.4/32", 4_000).await.unwrap();
        store.close();
    }
    let store = node(&url).await;
    let bans = store.bans().await.unwrap();
    assert_eq!(bans.len(), 2);
    assert_eq!(bans[0].network, "192.0.2.7/32");
    assert_eq!((bans[0].until, bans[0].manual), (None, true), "the second put replaced the first");
    assert_eq!((bans[1].reason.as_str(), bans[1].offence, bans[1].created), ("10 failed logins", 1, 1_000));
    assert!(store.login_known("Alice@example.org", "198.51.100.4/32", 5_000).await.unwrap());
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 5_001).await.unwrap(), "older than asked");
    assert!(!store.login_known("alice@example.org", "198.51.100.5/32", 0).await.unwrap());
    assert!(!store.login_known("nobody@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert!(!store.login_known("not an address", "x", 0).await.unwrap());
    assert!(store.delete_ban("2001:db8::/64").await.unwrap());
    assert!(!store.delete_ban("2001:db8::/64").await.unwrap());
    store.prune_guard_history(6_000, 0).await.unwrap();
    assert!(!store.login_known("alice@example.org", "198.51.100.4/32", 0).await.unwrap());
    assert_eq!(store.bans().await.unwrap().len(), 1, "a permanent ban is never pruned");
    store.put_ban(ban("192.0.2.9/32")).await.unwrap();
    // Lifts are stamped with the real time: pruning up to the end of time forgets them.
    store.prune_guard_history(0, i64::MAX).await.unwrap();
    assert_eq!(store.bans().await.unwrap().len(), 1, "an ended ban is pruned, a permanent one stays");
    assert_eq!(count(&url, "SELECT count(*) FROM lifted_bans").await, 0, "and so are old lifts");
}

#[tokio::test]
async fn a_follower_reads_only_the_bans_changed_since_its_last_look() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let start = store.ban_changes(None).await.unwrap();
    assert_eq!(start, BanChanges::default());
    store.put_ban(ban("192.0.2.1/32")).await.unwrap();
    store.put_ban(ban("192.0.2.2/32")).await.unwrap();
    let first = store.ban_changes(Some(start.seq)).await.unwrap();
    assert_eq!(first.bans.iter().map(|b| b.network.as_str()).collect::<Vec<_>>(), ["192.0.2.1/32", "192.0.2.2/32"]);
    assert!(first.lifted.is_empty());
    assert_eq!(store.ban_changes(Some(first.seq)).await.unwrap(), BanChanges { seq: first.seq, ..Default::default() });

    store.put_ban(StoredBan { until: None, ..ban("192.0.2.1/32") }).await.unwrap();
    assert!(store.delete_ban("192.0.2.2/32").await.unwrap());
    assert!(!store.delete_ban("192.0.2.3/32").await.unwrap(), "no ban, no change");
    let second = store.ban_changes(Some(first.seq)).await.unwrap();
    assert_eq!(second.bans.len(), 1);
    assert_eq!((second.bans[0].network.as_str(), second.bans[0].until), ("192.0.2.1/32", None));
    assert_eq!(second.lifted, ["192.0.2.2/32"]);
    assert_eq!(second.seq, first.seq + 2);
    store.put_ban(ban("192.0.2.2/32")).await.unwrap();
    let third = store.ban_changes(Some(second.seq)).await.unwrap();
    assert_eq!((third.bans.len(), third.lifted.len()), (1, 0));
    assert!(store.ban_changes(Some(first.seq)).await.unwrap().lifted.is_empty());
    assert_eq!(store.ban_changes(None).await.unwrap().bans.len(), 2);
}

#[tokio::test]
async fn a_follower_on_one_node_misses_none_of_the_bans_other_nodes_write_at_once() {
    let Some(url) = common::fresh_url() else { return };
    let writers = [node(&url).await, node(&url).await, node(&url).await];
    let follower = node(&url).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut seq = follower.ban_changes(None).await.unwrap().seq;
    let done = std::sync::atomic::AtomicBool::new(false);
    let write_from = |w: usize| {
        let store = &writers[w];
        async move {
            for i in 0..40 {
                store.put_ban(ban(&format!("10.{w}.{i}.0/24"))).await.unwrap();
            }
        }
    };
    let write = async {
        // The three writers interleave on the database, each in its own pool.
        tokio::join!(write_from(0), write_from(1), write_from(2));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let follow = async {
        // Follow while they write, as a node's guard does every second.
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let changes = follower.ban_changes(Some(seq)).await.unwrap();
            seen.extend(changes.bans.into_iter().map(|b| b.network));
            seq = changes.seq;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::join!(write, follow);
    let changes = follower.ban_changes(Some(seq)).await.unwrap();
    seen.extend(changes.bans.into_iter().map(|b| b.network));
    assert_eq!(seen.len(), 120, "every ban seen by the follower");
}

#[tokio::test]
async fn known_sources_are_every_account_s_recent_login_addresses() {
    let Some(url) = common::fresh_url() else { return };
    let store = node(&url).await;
    let alice = account(&store, "alice@example.org").await;
    let bob = account(&store, "bob@example.org").await;
    store.record_login(alice, "198.51.100.4/32", 5_000).await.unwrap();
    store.record_login(bob, "198.51.100.4/32", 6_000).await.unwrap();
    store.record_login(bob, "2001:db8:1:2::/64", 1_000).await.unwrap();
    let mut known = store.known_sources(2_000).await.unwrap();
    known.sort();
    assert_eq!(known, [("198.51.100.4/32".to_string(), 6_000)]);
    assert_eq!(store.known_sources(0).await.unwrap().len(), 2);
    // Removing the account forgets where it logged in from.
    store.remove_account("bob@example.org").await.unwrap();
    assert_eq!(store.known_sources(0).await.unwrap(), [("198.51.100.4/32".to_string(), 5_000)]);
}

#[tokio::test]
async fn a_ban_and_a_lift_of_one_network_at_once_both_go_through() {
    let Some(url) = common::fresh_url() else { return };
    let (a, b) = (node(&url).await, node(&url).await);
    let follower = node(&url).await;
    let start = follower.ban_changes(None).await.unwrap().seq;
    for _ in 0..30 {
        a.put_ban(ban("192.0.2.1/32")).await.unwrap();
        // Both lock the change counter and the ban's row: in opposite orders they deadlock.
        let (put, lifted) = tokio::join!(a.put_ban(ban("192.0.2.1/32")), b.delete_ban("192.0.2.1/32"));
        put.unwrap();
        lifted.unwrap();
    }
    let changes = follower.ban_changes(Some(start)).await.unwrap();
    let banned = a.bans().await.unwrap().len();
    // Whichever came last, the follower's view matches the table.
    assert_eq!((changes.bans.len(), changes.lifted.len()), (banned, 1 - banned), "{changes:?}");
}
