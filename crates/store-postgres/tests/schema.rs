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
