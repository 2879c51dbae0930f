//! The store for the commands that work on it directly (SQLite lets them run beside a live
//! server): opened as the service user when started as root, so that files it creates stay
//! the server's; its errors said the way an operator can act on; addresses as typed, checked.

use portcullis_config::Config;
use portcullis_store::{normalize_address, SqliteStore, StoreError};

use crate::cli::Failure;

/// Opens the store as the service user, so that files it creates stay the server's.
pub fn open(config: &Config) -> Result<SqliteStore, Failure> {
    let service_user_exists =
        config.process.user.as_deref().is_some_and(|u| nix::unistd::User::from_name(u).ok().flatten().is_some());
    if service_user_exists {
        portcullis_server::process::drop_privileges(config).map_err(Failure)?;
    }
    SqliteStore::open(&config.store.sqlite_path, config.store.default_quota)
        .map_err(|e| Failure(format!("cannot open the store {}: {e}", config.store.sqlite_path.display())))
}

/// Store errors, said the way an operator can act on.
pub fn explain(e: StoreError) -> Failure {
    Failure(match e {
        StoreError::NoSuchDomain(d) => {
            format!("the domain {d} does not exist; add it first with `portcullis domain add {d}`")
        }
        StoreError::DomainExists(d) => format!("the domain {d} already exists"),
        StoreError::DomainInUse(d) => {
            format!(
                "the domain {d} still has accounts or aliases; remove them first (see `portcullis account list` and `portcullis account alias list`)"
            )
        }
        StoreError::NoSuchAccount(a) => format!("there is no account {a} (see `portcullis account list`)"),
        StoreError::AccountExists(a) => {
            format!("the account {a} already exists; use `portcullis account passwd {a}` to change its password")
        }
        StoreError::AliasExists(a) => {
            format!("{a} is already an account or an alias (see `portcullis account alias list`)")
        }
        StoreError::NoSuchAlias(a) => format!("there is no alias {a} (see `portcullis account alias list`)"),
        StoreError::AppPasswordExists(name) => {
            format!("an app password named \"{name}\" already exists for this account; pick another --name")
        }
        StoreError::InvalidAddress(a) => format!("\"{a}\" is not a valid address; use the form user@example.org"),
        StoreError::InvalidDomain(d) => format!("\"{d}\" is not a valid domain name"),
        StoreError::DkimSelectorExists(name) => {
            format!("a DKIM key {name} already exists; rotate again a minute later for new selector names")
        }
        StoreError::Backend(detail) => format!("the store failed: {detail}"),
    })
}

/// An account address as typed on the command line, normalized.
pub fn address(user: &str) -> Result<String, Failure> {
    normalize_address(user).ok_or_else(|| explain(StoreError::InvalidAddress(user.to_string())))
}
