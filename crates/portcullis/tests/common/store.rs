//! Which store a test server keeps its mail in. SQLite in the server's data dir unless
//! `PORTCULLIS_TEST_STORE=postgres` says otherwise: then every [`super::TestServer`] gets a fresh
//! database on one private PostgreSQL cluster (crates/testpg) started lazily for the whole test
//! process, so that the same suite runs against both backends (docs/testing.md). Tests of
//! several nodes ask for a shared database themselves, with [`shared_database`], whatever the
//! variable says.

use std::sync::OnceLock;

use portcullis_testpg::PgCluster;

/// Set to `postgres` to run the suite's servers on PostgreSQL; unset or `sqlite` for SQLite.
pub const TEST_STORE: &str = "PORTCULLIS_TEST_STORE";

/// Whether the servers of this test process keep their mail in PostgreSQL.
pub fn postgres_mode() -> bool {
    match std::env::var(TEST_STORE).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{TEST_STORE}={other}: expected `sqlite` or `postgres`"),
    }
}

/// The process's cluster, started on first use; `None` (after a SKIPPED notice, or a failure
/// under PORTCULLIS_REQUIRE_ALL=1) when PostgreSQL is not installed. Kept in a static: the
/// testpg reaper stops it and removes its files when the test process ends.
fn cluster() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start).as_ref()
}

/// The `url = …` line for a new server's `[store]`: `None` for the SQLite default.
pub fn default_store_line() -> Option<String> {
    if !postgres_mode() {
        return None;
    }
    let Some(cluster) = cluster() else {
        panic!("{TEST_STORE}=postgres, but PostgreSQL is not installed: apt-get install postgresql")
    };
    Some(url_line(&cluster.fresh_database()))
}

/// A fresh database for several nodes to share (its URL), or `None` after a SKIPPED notice
/// when PostgreSQL is not installed (the caller returns: its test tested nothing).
pub fn shared_database() -> Option<String> {
    let Some(cluster) = cluster() else {
        // testpg says so once, for the first test; each test that tested nothing says so too.
        super::outside::skip("PostgreSQL is not installed", "apt-get install postgresql");
        return None;
    };
    Some(cluster.fresh_database())
}

/// The `[store]` line that names `url`.
pub fn url_line(url: &str) -> String {
    format!("url = \"{url}\"")
}
