//! `[admin]`: how the admin listener (admin API, `/metrics`, dashboard) authenticates its
//! callers and whether it speaks TLS. The listener itself is `listen.admin`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// Shortest bearer token accepted in the config file.
pub const MIN_TOKEN_LENGTH: usize = 20;
/// The generated token file, in `data_dir`, when neither `token` nor `token_file` is set.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Written in the config (`admin.token`).
    Inline(String),
    /// Read from this file; generated (mode 0600) at the first start if it does not exist.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub token: AdminToken,
    /// Serve the admin listener over TLS with the `[tls]` certificate; required off loopback.
    pub tls: bool,
    /// Accounts that may sign in to the admin API and dashboard with their password and a TOTP
    /// code (so they need TOTP on), lower-cased.
    pub accounts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    token: Option<String>,
    token_file: Option<String>,
    tls: Option<bool>,
    accounts: Option<Vec<String>>,
}

impl RawAdmin {
    pub(crate) fn validate(self, c: &Check<'_>, data_dir: &Path, listen: &[SocketAddr]) -> Result<Admin, ConfigError> {
        let token = match (self.token, self.token_file) {
            (Some(_), Some(_)) => {
                return Err(c.invalid("admin.token", "set admin.token or admin.token_file, not both"));
            }
            (Some(token), None) => {
                if token.len() < MIN_TOKEN_LENGTH {
                    return Err(c.invalid(
                        "admin.token",
                        format!(
                            "must be at least {MIN_TOKEN_LENGTH} characters (or leave it out: a random one is generated in {})",
                            data_dir.join(DEFAULT_TOKEN_FILE).display()
                        ),
                    ));
                }
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(c.invalid("admin.token", "must be printable ASCII without spaces"));
                }
                AdminToken::Inline(token)
            }
            (None, Some(file)) if file.trim().is_empty() => {
                return Err(c.invalid("admin.token_file", "must name a file"));
            }
            (None, Some(file)) => AdminToken::File(c.file(&file)),
            (None, None) => AdminToken::File(data_dir.join(DEFAULT_TOKEN_FILE)),
        };
        let tls = self.tls.unwrap_or(false);
        if let Some(open) = listen.iter().find(|a| !a.ip().is_loopback()) {
            if !tls {
                return Err(c.invalid(
                    "admin.tls",
                    format!(
                        "must be true when listen.admin has a non-loopback address ({open}): the admin token would cross the network in clear text"
                    ),
                ));
            }
        }
        let mut accounts = Vec::new();
        for account in self.accounts.unwrap_or_default() {
            let well_formed = account
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
            if !well_formed {
                return Err(c.invalid(
                    "admin.accounts",
                    format!("\"{account}\" is not an address like postmaster@example.org"),
                ));
            }
            accounts.push(account.to_lowercase());
        }
        Ok(Admin { token, tls, accounts })
    }
}
