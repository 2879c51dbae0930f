//! The conformance harness: every test in this directory runs once per backend the machine
//! offers, through the same `portcullis_store_backends::open` the server uses.
//!
//! A case is an ordinary `async fn name(db: TestDb)`, announced by `conformance!(name);` (or
//! `conformance!(#[tokio::test(flavor = "multi_thread")] name);`) just above it. The macro makes
//! `mod name { async fn sqlite() … }`, one test function per backend, so a failure names the
//! case and the backend (`messages::uids_are_never_reused::sqlite`). `db` is a fresh, empty
//! database; [`open`] gives a handle on it and may be called again for a second handle on the
//! same data (a restart, a second process). Adding a backend is one line in the macro and one
//! arm in [`TestDb`]'s matches.
//!
//! PostgreSQL runs in one private cluster per test binary (portcullis-testpg: started on first
//! use, stopped when the binary ends) with a fresh database per case; without PostgreSQL
//! installed its half of every case says SKIPPED (and fails under PORTCULLIS_REQUIRE_ALL=1).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use portcullis_store::*;
use portcullis_store_backends::Options;

/// One test function per backend for the case `$name`; see the module's documentation. The
/// backends are the `@one` lines of the second rule.
macro_rules! conformance {
    ($name:ident) => {
        conformance!(#[tokio::test] $name);
    };
    (#[$test:meta] $name:ident) => {
        mod $name {
            conformance!(@one sqlite #[$test] $name);
            conformance!(@one postgres #[$test] $name);
        }
    };
    (@one $backend:ident #[$test:meta] $name:ident) => {
        #[$test]
        async fn $backend() {
            // A backend this machine cannot run (no PostgreSQL installed) is skipped, and says so.
            match super::common::TestDb::$backend() {
                Some(db) => super::$name(db).await,
                None => eprintln!("{}: {} is not available here, skipped", stringify!($name), stringify!($backend)),
            }
        }
    };
}

/// A fresh, empty database of one backend, removed when dropped.
pub struct TestDb {
    kind: Kind,
}

enum Kind {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    /// A database of its own in the binary's cluster (left there: the cluster goes at exit).
    Postgres {
        url: String,
    },
}

impl TestDb {
    /// A SQLite file in a temp dir: always available.
    pub fn sqlite() -> Option<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.db");
        Some(TestDb { kind: Kind::Sqlite { _dir: dir, path } })
    }

    /// A new empty database in the binary's PostgreSQL cluster; `None` when PostgreSQL is not
    /// installed.
    pub fn postgres() -> Option<TestDb> {
        static CLUSTER: OnceLock<Option<portcullis_testpg::PgCluster>> = OnceLock::new();
        let cluster = CLUSTER.get_or_init(portcullis_testpg::PgCluster::start).as_ref()?;
        Some(TestDb { kind: Kind::Postgres { url: cluster.fresh_database() } })
    }

    fn config(&self, default_quota: Option<u64>) -> portcullis_config::Store {
        let backend = match &self.kind {
            Kind::Sqlite { path, .. } => portcullis_config::Backend::Sqlite(path.clone()),
            Kind::Postgres { url } => postgres_backend(url),
        };
        portcullis_config::Store { backend, default_quota }
    }
}

/// `store.url = URL` as the server reads it: the config crate is the only maker of a
/// PostgreSQL backend (its URL field is private, checked on the way in).
fn postgres_backend(url: &str) -> portcullis_config::Backend {
    let file = std::env::temp_dir().join("portcullis.toml");
    let toml = format!("hostname = \"mail.example.org\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[store]\nurl = \"{url}\"\n");
    portcullis_config::Config::parse(&file, &toml).unwrap().store.backend
}

/// A client of its own on a PostgreSQL test database, behind the store's back.
async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A handle on `db` with this default quota; call again for a second handle on the same data.
pub async fn open(db: &TestDb, default_quota: Option<u64>) -> Arc<dyn Store> {
    open_with(db, default_quota, Options::default()).await
}

pub async fn open_with(db: &TestDb, default_quota: Option<u64>, options: Options) -> Arc<dyn Store> {
    portcullis_store_backends::open(&db.config(default_quota), options).await.unwrap()
}

/// The one number `sql` selects, read behind the store's back: what is in the database. Tests
/// use it for what the traits do not show (bodies shared between messages, rows left behind);
/// the table names are the SQLite schema's, which PostgreSQL's mirrors. A PostgreSQL BOOLEAN
/// (where SQLite keeps 0/1) reads as 0 or 1, and any integer width as an `i64`.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    match &db.kind {
        Kind::Sqlite { path, .. } => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        Kind::Postgres { url } => {
            use tokio_postgres::types::Type;
            let row = pg_client(url).await.query_one(sql, &[]).await.unwrap();
            match row.columns()[0].type_() {
                &Type::BOOL => i64::from(row.get::<_, bool>(0)),
                &Type::INT2 => i64::from(row.get::<_, i16>(0)),
                &Type::INT4 => i64::from(row.get::<_, i32>(0)),
                &Type::INT8 => row.get(0),
                other => panic!("count({sql}): a {other} is not a number"),
            }
        }
    }
}

/// Runs `sql` behind the store's back: to make a state no client could (a mailbox at the end of
/// the UID space).
pub async fn execute(db: &TestDb, sql: &str) {
    match &db.kind {
        Kind::Sqlite { path, .. } => {
            rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
        }
        Kind::Postgres { url } => pg_client(url).await.batch_execute(sql).await.unwrap(),
    }
}

pub async fn account(store: &Arc<dyn Store>, address: &str) -> AccountId {
    let domain = address.rsplit_once('@').unwrap().1;
    match store.add_domain(domain).await {
        Ok(()) | Err(StoreError::DomainExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    store.add_account(address, &PasswordSecrets::hash_only("$argon2id$fake"), Quota::Default).await.unwrap()
}

pub async fn mailbox(store: &Arc<dyn Store>, account: AccountId, name: &str) -> Mailbox {
    store.mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}"))
}

/// A small message whose Date: is 1,700,000,000 seconds after the epoch.
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\nHello, {subject}.\r\n"
    )
    .into_bytes()
}

pub fn keywords(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

pub fn flags(system: u8, list: &[&str]) -> Flags {
    Flags { system, keywords: keywords(list) }
}

/// Appends `n` messages with no flags; returns their UIDs.
pub async fn fill(store: &Arc<dyn Store>, mailbox: MailboxId, n: usize) -> Vec<u32> {
    let mut uids = Vec::new();
    for i in 0..n {
        uids.push(
            store.append(mailbox, message(&format!("m{i}")), Flags::default(), 1_700_000_000 + i as i64).await.unwrap(),
        );
    }
    uids
}

/// Every message of a mailbox in UID order, as the database has it now: everything changed
/// since MODSEQ 0 (every message has a MODSEQ of at least 1), read without SELECT's shared list.
pub async fn message_index(store: &Arc<dyn Store>, mailbox: MailboxId) -> Vec<MessageIndex> {
    store.changes_since(mailbox, 0).await.unwrap().changed
}

/// The keywords SELECT announces for a mailbox (every keyword ever used in it).
pub async fn mailbox_keywords(store: &Arc<dyn Store>, account: AccountId, name: &str) -> Vec<String> {
    store.select_mailbox(account, name).await.unwrap().unwrap_or_else(|| panic!("no mailbox {name}")).keywords
}

pub fn uids(index: &[MessageIndex]) -> Vec<u32> {
    index.iter().map(|m| m.uid).collect()
}

/// PostgreSQL only: a connection of its own holding `account`'s row lock in an open
/// transaction, so that the store's writes to that account wait (deliveries then queue up
/// into one batch behind the one waiting); `ROLLBACK` on it, or dropping it, lets them go.
/// `None` on a backend without row locks.
pub async fn hold_account_lock(db: &TestDb, account: AccountId) -> Option<tokio_postgres::Client> {
    let Kind::Postgres { url } = &db.kind else { return None };
    let client = pg_client(url).await;
    client.batch_execute(&format!("BEGIN; SELECT 1 FROM accounts WHERE id = {account} FOR UPDATE")).await.unwrap();
    Some(client)
}

/// PostgreSQL only: how many of the store's connections to this database wait for a lock.
pub async fn lock_waiters(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    .await
}

/// PostgreSQL only: waits (up to 10 s) until at least one of the store's connections waits for
/// a lock.
pub async fn until_waiting_for_a_lock(db: &TestDb) {
    for _ in 0..1000 {
        if lock_waiters(db).await > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no connection of the store ever waited for the lock");
}

/// PostgreSQL only: ends the server processes of the store's connections that wait for a lock
/// (`pg_terminate_backend`, as a crash of that backend or a cut connection would); returns how
/// many.
pub async fn terminate_lock_waiters(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()) t",
    )
    .await
}

/// Whether `db` is a PostgreSQL database (cases that need its row locks or its backends).
pub fn is_postgres(db: &TestDb) -> bool {
    matches!(db.kind, Kind::Postgres { .. })
}
