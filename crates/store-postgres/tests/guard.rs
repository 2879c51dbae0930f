//! The guard's memory on PostgreSQL with several nodes: a follower on one node reading the bans
//! other nodes write, none missed while they ban at once. What every backend must do alike is
//! the conformance suite's (crates/store-backends/tests).

mod common;

use common::*;
use portcullis_store::*;

fn ban(network: &str) -> StoredBan {
    StoredBan { network: network.into(), until: Some(2_000), reason: "r".into(), offence: 1, manual: false, created: 1 }
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

/// WAL flushes the cluster made so far, once every client backend has gone: a backend hands
/// its I/O statistics to the cluster's when it exits, so each store is dropped and its
/// connections waited out before the count is read.
async fn wal_syncs_after_clients_leave(url: &str) -> i64 {
    let others =
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    for _ in 0..200 {
        if count(url, others).await == 0 {
            return count(url, "SELECT wal_sync FROM pg_stat_wal").await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the store's connections did not close");
}

/// The guard's counts commit without waiting for the disk (see `commit_without_waiting!` in
/// the crate's guard module): 100 counted messages, failed logins and login attempts, one
/// after the other, would flush the WAL at each of their 300 commits; without waiting, the WAL
/// writer flushes a few times in all. A cluster of its own: `pg_stat_wal` is the cluster's.
#[tokio::test]
async fn the_guards_counts_commit_without_waiting_for_the_disk() {
    let Some(cluster) = portcullis_testpg::PgCluster::start() else { return };
    let url = cluster.fresh_database();
    let store = node(&url).await;
    let id = account(&store, "counted@example.org").await;
    drop(store);
    let before = wal_syncs_after_clients_leave(&url).await;
    let store = node(&url).await;
    for i in 1..=100 {
        let sent = store.add_sent(id, 1_000, 1, 2, 0).await.unwrap();
        assert_eq!((sent.messages, sent.recipients), (i, 2 * i));
        assert_eq!(store.add_auth_failure("192.0.2.7", Some("counted@example.org"), 1_000, 0).await.unwrap(), i as u32);
        let attempts = store.add_auth_attempt("192.0.2.8", Some("counted@example.org"), 1_000, 1, 0).await.unwrap();
        assert_eq!((attempts.source, attempts.account), (i as u32, i as u32));
    }
    drop(store);
    let flushes = wal_syncs_after_clients_leave(&url).await - before;
    assert!(flushes < 50, "{flushes} WAL flushes for 300 counts");
    // Not waiting is not losing: the counts are there for every connection.
    assert_eq!(count(&url, "SELECT sum(messages)::BIGINT FROM sent_counts").await, 100);
}
