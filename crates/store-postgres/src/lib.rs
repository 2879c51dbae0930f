//! The PostgreSQL store: the store traits of `portcullis-store` over one database that several
//! Portcullis nodes share (docs/architecture.md §6). SQLite stays the default for one machine.
//!
//! [`PgStore`] holds a deadpool pool of tokio-postgres connections, TLS to the database as
//! the URL's `sslmode` asks (see [`tls`]), and brings the schema up to date when it connects
//! (see [`schema`]). Every write is one transaction, and a call returns `Ok` only after its
//! COMMIT returned: PostgreSQL's commit is durable (synchronous_commit on) before it answers.
//!
//! One file per concern: `directory` (domains, accounts, credentials), `guard`, `aliases`,
//! `dkim`; mail, queue and cross-node coordination live beside them. Errors of PostgreSQL
//! become [`StoreError`] here (the `Db` helper): the store crate never learns about PostgreSQL.
#![forbid(unsafe_code)]

mod aliases;
mod check;
mod coordination;
mod directory;
mod dkim;
mod guard;
mod mail;
mod queue;
pub mod schema;
pub mod tls;
mod transfer;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

pub use portcullis_store::StoreError;

/// Connections kept by one node's pool.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free pooled connection, and for a new one to open.
const POOL_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The store on a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    /// The allowance of accounts without their own (`None`: unlimited).
    default_quota: Option<u64>,
    /// This node's LISTEN connection, heartbeat and slots (see `coordination`).
    coordination: coordination::Coordinator,
    /// Mailboxes (and subscriptions) one account may have; `None`: no limit (see
    /// `PgStore::with_max_mailboxes` in `mail`).
    max_mailboxes: Option<usize>,
    /// The message lists of recently selected mailboxes (see `mail::changes::select`).
    index: portcullis_store::index_cache::IndexCache,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db?sslmode=…`,
    /// also `sslrootcert=FILE`), and brings its schema up to date. `default_quota` applies to
    /// accounts without their own (`None`: unlimited).
    pub async fn connect(url: &str, default_quota: Option<u64>) -> Result<PgStore, StoreError> {
        let store = Self::connect_unmigrated(url, default_quota)?;
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        drop(client);
        store.coordination.start(&store.pool).await?;
        Ok(store)
    }

    /// The pool alone, without touching the schema (tests of migrations), and without the
    /// LISTEN connection and heartbeat that `connect` starts.
    #[doc(hidden)]
    pub fn connect_unmigrated(url: &str, default_quota: Option<u64>) -> Result<PgStore, StoreError> {
        let (config, mode, root_cert) = parse_url(url)?;
        let tls = tls::RustlsConnector::new(mode, root_cert)?;
        let coordination = coordination::Coordinator::new(config.clone(), tls.clone());
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the database pool: {e}")))?;
        Ok(PgStore { pool, default_quota, max_mailboxes: None, coordination, index: Default::default() })
    }

    /// A pooled connection; back to the pool when dropped.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            // The server's own words ("database \"mail\" does not exist", "password
            // authentication failed"), not only deadpool's "error creating a new object".
            deadpool_postgres::PoolError::Backend(e) => {
                StoreError::Backend(format!("cannot reach the database: {}", describe(&e)))
            }
            e => StoreError::Backend(format!("cannot reach the database: {e}")),
        })
    }

    /// The allowance of accounts without their own (`None`: unlimited).
    pub fn default_quota(&self) -> Option<u64> {
        self.default_quota
    }

    /// Stops the LISTEN connection and the heartbeat, and closes every pooled connection;
    /// later calls fail.
    pub fn close(&self) {
        self.coordination.stop();
        self.pool.close();
    }

    /// Whether a pooled connection to the database runs over TLS (as the server sees it).
    pub async fn connection_uses_tls(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.db()?;
        Ok(row.get(0))
    }

    /// The schema versions recorded in the database, ascending.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        schema::applied(&client).await
    }
}

/// Splits the TLS settings off the URL (tokio-postgres knows neither `verify-full` nor
/// `sslrootcert`) and parses the rest.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, tls::SslMode, Option<PathBuf>), StoreError> {
    let invalid = |e: &dyn std::fmt::Display| StoreError::Backend(format!("invalid database URL: {e}"));
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = tls::SslMode::Prefer;
    let mut root_cert = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = tls::SslMode::parse(&percent_decode(value).map_err(|e| invalid(&e))?)?,
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value).map_err(|e| invalid(&e))?)),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| invalid(&e))?;
    config.ssl_mode(mode.negotiation());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("portcullis");
    }
    Ok((config, mode, root_cert))
}

/// `%XX` escapes of a URL query value (a certificate path may hold any byte).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in {text:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {text:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

/// PostgreSQL's errors as [`StoreError::Backend`], with what went wrong and where.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| backend(&e))
    }
}

pub(crate) fn backend(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Backend(describe(e))
}

/// The server's message and SQLSTATE when it sent one; tokio-postgres's own text (which for
/// a server error is only "db error") otherwise, with its cause (an I/O or TLS error).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// The constraint a unique violation broke, if `e` is one: the caller turns it into the same
/// error SQLite's backend gives (`AccountExists`, `AppPasswordExists`, …) when another node
/// won a race between its check and its insert.
pub(crate) fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_leave_the_url_and_the_rest_stays() {
        let (config, mode, root) = parse_url(
            "postgres://u@db.example:5433/mail?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(mode, tls::SslMode::VerifyFull);
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(config.get_ports(), [5433]);
        assert_eq!(config.get_dbname(), Some("mail"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let (config, mode, root) = parse_url("postgres://u@h/d").unwrap();
        assert_eq!((mode, root), (tls::SslMode::Prefer, None));
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        assert_eq!(parse_url("postgres://u@h/d?sslmode=disable").unwrap().1, tls::SslMode::Disable);
        assert!(parse_url("postgres://u@h/d?sslmode=sometimes").is_err());
        assert!(parse_url("postgres://u@h/d?sslrootcert=%zz").is_err());
    }
}
