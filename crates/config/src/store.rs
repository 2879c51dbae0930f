//! `[store]`: where mail is kept, named by `store.url` (`sqlite:PATH`, the default, or a
//! PostgreSQL URL), and the storage allowance of an account that has none of its own.
//!
//! The PostgreSQL URL is checked here (scheme, host, database name) so that a typo is a config
//! error that names the key, not a connection failure at start. Its password may sit in
//! `store.password_file` instead; whichever holds it, it is never shown: [`Store::describe`] and
//! the `Debug` of [`Postgres`] leave it out, and so do the errors below.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;
use crate::units::{parse_size, Size};

const DEFAULT_QUOTA: &str = "2GiB";
/// The database file in `data_dir` when `store.url` is not set.
const SQLITE_FILE: &str = "mail.db";

#[derive(Debug, Clone)]
pub struct Store {
    /// Which database, from `store.url`.
    pub backend: Backend,
    /// Storage per account unless the account has its own; `None` is unlimited.
    pub default_quota: Option<u64>,
}

/// The database `store.url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:PATH`: one file on this machine (relative paths are relative to the config file).
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: a database several nodes can share.
    Postgres(Postgres),
}

/// A PostgreSQL database as configured. The URL may carry a password; see [`Postgres::url`].
#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    url: String,
    /// `store.password_file`: the password, read when the store is opened.
    pub password_file: Option<PathBuf>,
}

impl Postgres {
    /// The URL as written, password included when it has one: only for connecting.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its password (`postgres://mail@db.example.org/mail`): for messages.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(None);
                }
                url.to_string()
            }
            // Never happens for a validated value; say nothing rather than risk the password.
            Err(_) => "a PostgreSQL database".into(),
        }
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres").field("url", &self.redacted()).field("password_file", &self.password_file).finish()
    }
}

impl Store {
    /// The SQLite database file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(path) => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// The store for people (logs, `init`, `store check`, errors): never a password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(pg) => pg.redacted(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    url: Option<String>,
    password_file: Option<String>,
    default_quota: Option<Size>,
}

impl RawStore {
    pub(crate) fn validate(self, c: &Check<'_>, data_dir: &Path) -> Result<Store, ConfigError> {
        let backend = match self.url {
            None => Backend::Sqlite(data_dir.join(SQLITE_FILE)),
            Some(url) => parse_url(c, &url)?,
        };
        let backend = match (backend, self.password_file) {
            (backend, None) => backend,
            (Backend::Postgres(pg), Some(file)) => {
                if has_password(&pg.url) {
                    return Err(c.invalid(
                        "store.password_file",
                        "store.url already holds a password; keep it in one place (the file)",
                    ));
                }
                Backend::Postgres(Postgres { password_file: Some(c.file(&file)), ..pg })
            }
            (Backend::Sqlite(_), Some(_)) => {
                return Err(c.invalid("store.password_file", "only a PostgreSQL store has a password"))
            }
        };
        let default_quota = match self.default_quota {
            Some(Size::Text(t)) if t.eq_ignore_ascii_case("unlimited") => None,
            other => Some(c.size("store.default_quota", other, parse_size(DEFAULT_QUOTA).unwrap_or(0))?),
        };
        Ok(Store { backend, default_quota })
    }
}

/// `sqlite:PATH`, `sqlite://PATH`, `postgres://…` or `postgresql://…`. Errors quote the URL
/// only when it cannot hold a password (anything that is not a PostgreSQL URL).
fn parse_url(c: &Check<'_>, url: &str) -> Result<Backend, ConfigError> {
    if let Some(file) = url.strip_prefix("sqlite:") {
        let file = file.trim_start_matches("//");
        if file.is_empty() {
            return Err(c.invalid("store.url", "\"sqlite:\" needs a path, e.g. \"sqlite:/var/lib/portcullis/mail.db\""));
        }
        return Ok(Backend::Sqlite(c.file(file)));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
        // No password can be in a URL this does not understand the shape of, so it is quoted
        // only up to its first ':' (the scheme), which is enough to recognise the mistake.
        let shown = url.split(':').next().unwrap_or_default();
        return Err(c.invalid(
            "store.url",
            format!("\"{shown}:…\" is not supported; use \"sqlite:PATH\" or \"postgres://USER@HOST/DATABASE\""),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| c.invalid("store.url", format!("is not a PostgreSQL URL that can be read: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(c.invalid("store.url", "the PostgreSQL URL names no host (postgres://USER@HOST/DATABASE)"));
    }
    let database = parsed.path().trim_start_matches('/');
    if database.is_empty() || database.contains('/') {
        return Err(c.invalid(
            "store.url",
            "the PostgreSQL URL names no database, or more than one path segment (postgres://USER@HOST/DATABASE)",
        ));
    }
    Ok(Backend::Postgres(Postgres { url: url.to_string(), password_file: None }))
}

fn has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}
