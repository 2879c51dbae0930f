//! A node's store across a database crash: the server is killed (SIGKILL, as a crash) and
//! restarted; what was committed before is there after crash recovery, and the pool drops
//! its dead connections and opens new ones, so the node goes on without a restart of its
//! own. A cluster of its own: killing the shared one would break the other tests.

use portcullis_store::*;
use portcullis_store_postgres::PgStore;
use portcullis_testpg::PgCluster;

// A runtime like the server's: the pool's connection tasks run on other threads and see their
// sockets close while the caller waits (on a single thread, nothing would notice until the
// next query was already sent down a dead connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outlives_a_database_crash_and_keeps_what_was_committed() {
    let Some(cluster) = PgCluster::start() else { return };
    let cluster = std::sync::Arc::new(cluster);
    let url = cluster.fresh_database();
    let store = PgStore::connect(&url, None).await.unwrap();
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", &PasswordSecrets::hash_only("h"), Quota::Default).await.unwrap();
    store
        .put_ban(StoredBan {
            network: "192.0.2.1/32".into(),
            until: None,
            reason: "r".into(),
            offence: 1,
            manual: true,
            created: 1,
        })
        .await
        .unwrap();
    // Several pooled connections open when the server dies.
    let (a, b, c) = tokio::join!(store.domains(), store.bans(), store.accounts());
    assert_eq!((a.unwrap().len(), b.unwrap().len(), c.unwrap().len()), (1, 1, 1));

    let crash = cluster.clone();
    tokio::task::spawn_blocking(move || crash.kill()).await.unwrap();
    let down = store.domains().await;
    assert!(down.is_err(), "no database, no answer: {down:?}");
    let recover = cluster.clone();
    tokio::task::spawn_blocking(move || recover.restart()).await.unwrap();

    // Acknowledged before the crash, so there after it; and the same store works again.
    let credentials = store.credentials("alice@example.org").await.unwrap().expect("alice survived the crash");
    assert_eq!(credentials.account, alice);
    assert_eq!(store.bans().await.unwrap().len(), 1);
    let (a, b, c) = tokio::join!(store.domains(), store.bans(), store.accounts());
    assert_eq!((a.unwrap().len(), b.unwrap().len(), c.unwrap().len()), (1, 1, 1));
    store.add_domain("example.net").await.unwrap();
}
