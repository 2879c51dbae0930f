//! The one place that turns `store.url` into a store: [`open`] picks the backend from the URL's
//! scheme (`sqlite:PATH`, `postgres://…`) and hands back the `portcullis-store` traits, so
//! nothing outside the store crates names a backend. The server and the CLI open their store
//! here; so do the conformance tests in `tests/`, which run every case against every backend
//! the machine offers.

use std::path::Path;
use std::sync::Arc;

use portcullis_config::{Backend, Postgres};
use portcullis_store::{Store, StoreError};
use portcullis_store_postgres::PgStore;
use portcullis_store_sqlite::SqliteStore;

pub mod migrate;

pub use portcullis_store::CheckReport;

/// What the server sets on its store beyond `[store]` itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Mailboxes (and as many subscriptions) one account may have (`limits.max_mailboxes_per_account`);
    /// `None`: no limit (the CLI, which never creates mailboxes on a client's behalf).
    pub max_mailboxes: Option<usize>,
}

/// Opens the store `store.url` names (`config.backend`), creating an empty SQLite database if there is none, and
/// brings its schema up to date. Async because a database server is reached over the network.
pub async fn open(config: &portcullis_config::Store, options: Options) -> Result<Arc<dyn Store>, StoreError> {
    match &config.backend {
        Backend::Sqlite(path) => {
            let store = SqliteStore::open(path, config.default_quota)?;
            Ok(Arc::new(match options.max_mailboxes {
                Some(max) => store.with_max_mailboxes(max),
                None => store,
            }))
        }
        Backend::Postgres(pg) => connect_postgres(&connection_url(pg)?, config.default_quota, options).await,
    }
}

/// A store kept in `dir` (made if missing), for tests and fuzzing: the embedded backend, with
/// nothing to set up. Called again with the same `dir`, it opens a second handle on the same data
/// (another process, a restart). `default_quota` as `store.default_quota`.
pub fn temporary(dir: &Path, default_quota: Option<u64>) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(&dir.join("mail.db"), default_quota)?))
}

/// PostgreSQL: migrated to this build's schema, the LISTEN connection and heartbeat started on
/// the runtime this runs on (which must outlive the store).
async fn connect_postgres(
    url: &str,
    default_quota: Option<u64>,
    options: Options,
) -> Result<Arc<dyn Store>, StoreError> {
    let mut store = PgStore::connect(url, default_quota).await?;
    if let Some(max) = options.max_mailboxes {
        store = store.with_max_mailboxes(max);
    }
    Ok(Arc::new(store))
}

/// `portcullis store check`: the database's own checks and the store's invariants, on the store
/// `store.url` names. Opens its own handle and closes it, so it runs beside a live server.
pub async fn check(config: &portcullis_config::Store, quick: bool) -> Result<CheckReport, StoreError> {
    match &config.backend {
        Backend::Sqlite(path) => {
            let store = SqliteStore::open(path, config.default_quota)?;
            let report = store.check(quick).await;
            portcullis_store::CoordinationStore::close(&store);
            report
        }
        Backend::Postgres(pg) => {
            let store = PgStore::connect(&connection_url(pg)?, config.default_quota).await?;
            let report = store.check(quick).await;
            store.close();
            report
        }
    }
}

/// The URL to connect with: `store.url`, with the password from `store.password_file` when
/// there is one (its first line; the file must not be empty). Errors name the file, never the
/// password.
fn connection_url(pg: &Postgres) -> Result<String, StoreError> {
    let Some(file) = &pg.password_file else { return Ok(pg.url().to_string()) };
    let text = std::fs::read_to_string(file)
        .map_err(|e| StoreError::Backend(format!("store.password_file: cannot read {}: {e}", file.display())))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        return Err(StoreError::Backend(format!("store.password_file: {} holds no password", file.display())));
    }
    let mut url = url::Url::parse(pg.url()).map_err(|e| StoreError::Backend(format!("store.url: {e}")))?;
    // set_password percent-encodes whatever the password holds (':', '@', '/').
    url.set_password(Some(password)).map_err(|()| StoreError::Backend("store.url cannot carry a password".into()))?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(text: &str) -> portcullis_config::Store {
        let dir = std::env::temp_dir();
        let file = format!("{}/portcullis.toml", dir.display());
        let toml = format!("hostname = \"mail.example.org\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n[store]\n{text}");
        portcullis_config::Config::parse(std::path::Path::new(&file), &toml).unwrap().store
    }

    fn pg(store: &portcullis_config::Store) -> &Postgres {
        match &store.backend {
            Backend::Postgres(pg) => pg,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_password_file_fills_in_the_password_encoded_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3:cr@t/x\n").unwrap();
        let store = postgres(&format!(
            "url = \"postgres://mail@db.example.org/mail?sslmode=require\"\npassword_file = \"{}\"\n",
            file.display()
        ));
        let url = connection_url(pg(&store)).unwrap();
        assert_eq!(url, "postgres://mail:s3%3Acr%40t%2Fx@db.example.org/mail?sslmode=require");

        std::fs::write(&file, "\n").unwrap();
        let e = connection_url(pg(&store)).unwrap_err().to_string();
        assert!(e.contains("holds no password"), "{e}");
        std::fs::remove_file(&file).unwrap();
        let e = connection_url(pg(&store)).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("pw"), "{e}");
    }

    #[test]
    fn without_a_password_file_the_url_is_as_written() {
        let store = postgres("url = \"postgresql://mail:pw@db.example.org:5433/mail\"\n");
        assert_eq!(connection_url(pg(&store)).unwrap(), "postgresql://mail:pw@db.example.org:5433/mail");
    }

    #[tokio::test]
    async fn the_scheme_picks_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/mail.db");
        let config = portcullis_config::Store { backend: Backend::Sqlite(path.clone()), default_quota: None };
        let store = open(&config, Options { max_mailboxes: Some(7) }).await.unwrap();
        store.add_domain("example.org").await.unwrap();
        store.close();
        assert!(path.exists(), "a SQLite file was made");
        let report = check(&config, true).await.unwrap();
        assert_eq!((report.domains, report.is_ok()), (1, true));
    }
}
