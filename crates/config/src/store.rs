//! `[store]`: where mail is kept (SQLite now; the URL leaves room for PostgreSQL) and the
//! storage allowance of an account that has none of its own.

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
    /// The SQLite database file (from `url = "sqlite:PATH"`).
    pub sqlite_path: PathBuf,
    /// Storage per account unless the account has its own; `None` is unlimited.
    pub default_quota: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    url: Option<String>,
    default_quota: Option<Size>,
}

impl RawStore {
    pub(crate) fn validate(self, c: &Check<'_>, data_dir: &Path) -> Result<Store, ConfigError> {
        let sqlite_path = match self.url {
            None => data_dir.join(SQLITE_FILE),
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(file) if !file.is_empty() => c.file(file.trim_start_matches("//")),
                _ => {
                    return Err(c.invalid(
                        "store.url",
                        format!("\"{url}\" is not supported; use \"sqlite:PATH\" (PostgreSQL comes later)"),
                    ))
                }
            },
        };
        let default_quota = match self.default_quota {
            Some(Size::Text(t)) if t.eq_ignore_ascii_case("unlimited") => None,
            other => Some(c.size("store.default_quota", other, parse_size(DEFAULT_QUOTA).unwrap_or(0))?),
        };
        Ok(Store { sqlite_path, default_quota })
    }
}
