//! What every PostgreSQL store test needs: one private cluster per test binary (started on
//! first use, stopped when the binary ends) and a fresh database per test, so tests run in
//! parallel without seeing each other's rows. Without PostgreSQL the tests say SKIPPED and
//! pass having tested nothing (they fail under PORTCULLIS_REQUIRE_ALL=1): see portcullis-testpg.
#![allow(dead_code)]

use std::sync::OnceLock;

use portcullis_store_postgres::PgStore;
use portcullis_testpg::PgCluster;

/// The binary's cluster, `None` when PostgreSQL is missing.
pub fn cluster() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start).as_ref()
}

/// The URL of a new empty database.
pub fn fresh_url() -> Option<String> {
    cluster().map(PgCluster::fresh_database)
}

/// A store on a new empty database (migrated), `None` without PostgreSQL.
pub async fn store(default_quota: Option<u64>) -> Option<PgStore> {
    let url = fresh_url()?;
    Some(PgStore::connect(&url, default_quota).await.expect("connect to the test database"))
}

use portcullis_store::*;

/// Two nodes (two stores, each with its own pool and LISTEN connection) on one fresh database,
/// and its URL; `None` without PostgreSQL.
pub async fn two_nodes() -> Option<(String, PgStore, PgStore)> {
    let url = fresh_url()?;
    Some((url.clone(), node(&url).await, node(&url).await))
}

/// Another node: a second store (its own pool) on the same database.
pub async fn node(url: &str) -> PgStore {
    PgStore::connect(url, None).await.expect("connect to the test database")
}

/// The account `address` (its domain made if needed).
pub async fn account(store: &PgStore, address: &str) -> AccountId {
    let domain = address.rsplit_once('@').unwrap().1;
    match store.add_domain(domain).await {
        Ok(()) | Err(StoreError::DomainExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    store.add_account(address, &PasswordSecrets::hash_only("$argon2id$fake"), Quota::Default).await.unwrap()
}

/// One number from the database behind the store, read with a client of its own.
pub async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}
