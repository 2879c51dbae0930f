//! The schema on a real PostgreSQL: migrations run once, even when several nodes start at
//! the same moment, and a database from a newer build is refused.

mod common;

use portcullis_store_postgres::{schema, PgStore};

#[tokio::test]
async fn connecting_migrates_once_and_again_changes_nothing() {
    let Some(url) = common::fresh_url() else { return };
    let store = PgStore::connect(&url, None).await.unwrap();
    assert_eq!(store.schema_versions().await.unwrap(), (1..=schema::VERSION as i64).collect::<Vec<_>>());
    store.close();
    let again = PgStore::connect(&url, None).await.unwrap();
    assert_eq!(again.schema_versions().await.unwrap().len(), schema::VERSION);
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let Some(url) = common::fresh_url() else { return };
    // Eight nodes at once: without the advisory lock, all but one would fail creating tables
    // that already exist (or record the version twice).
    let nodes = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::connect(&url, None).await.map(|s| s.close()) })
    });
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    let store = PgStore::connect(&url, None).await.unwrap();
    assert_eq!(store.schema_versions().await.unwrap(), (1..=schema::VERSION as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let Some(url) = common::fresh_url() else { return };
    PgStore::connect(&url, None).await.unwrap().close();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.execute("INSERT INTO schema_migrations(version) VALUES (999)", &[]).await.unwrap();
    let err = PgStore::connect(&url, None).await.err().expect("a newer schema is refused");
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let Some(cluster) = common::cluster() else { return };
    // A database that does not exist on a server that does.
    let err = PgStore::connect(&cluster.url("no_such_database"), None).await.err().expect("refused");
    assert!(err.to_string().contains("no_such_database"), "{err}");
}

#[tokio::test]
async fn the_last_two_copies_removed_at_once_take_the_body_with_them() {
    let Some(url) = common::fresh_url() else { return };
    PgStore::connect(&url, None).await.unwrap().close();
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    };
    let (mut first, mut second) = (connect().await, connect().await);
    // One body, two copies in two accounts' mailboxes (a delivery to two recipients).
    first
        .batch_execute(
            "INSERT INTO domains(name, created) VALUES ('example.org', 0);
             INSERT INTO accounts(domain_id, localpart, password_hash, created)
                  SELECT id, u, 'h', 0 FROM domains, (VALUES ('a'), ('b')) AS users(u);
             INSERT INTO mailboxes(account_id, name, uidvalidity) SELECT id, 'INBOX', 1 FROM accounts;
             INSERT INTO blobs(data) VALUES ('body');
             INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, modseq)
                  SELECT m.id, 1, b.id, 4, 0, 1 FROM mailboxes m, blobs b;",
        )
        .await
        .unwrap();
    let a = first.transaction().await.unwrap();
    a.execute("DELETE FROM messages WHERE mailbox_id = (SELECT min(id) FROM mailboxes)", &[]).await.unwrap();
    // The second removal starts before the first commits; it waits on the body's row.
    let b = second.transaction().await.unwrap();
    let removal = b.execute("DELETE FROM messages WHERE mailbox_id = (SELECT max(id) FROM mailboxes)", &[]);
    let (removed, committed) = tokio::join!(removal, async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        a.commit().await
    });
    committed.unwrap();
    assert_eq!(removed.unwrap(), 1);
    b.commit().await.unwrap();
    assert_eq!(common::count(&url, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(common::count(&url, "SELECT count(*) FROM blobs").await, 0, "no copy left, no body left");
    assert_eq!(common::count(&url, "SELECT sum(used_bytes)::bigint FROM accounts").await, 0);
}
