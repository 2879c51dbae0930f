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
