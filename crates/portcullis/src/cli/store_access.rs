//! The store for the commands that work on it directly (SQLite lets them run beside a live
//! server): opened as the service user when started as root, so that files it creates stay
//! the server's; its errors said the way an operator can act on; addresses as typed, checked.

use std::sync::Arc;

use portcullis_config::Config;
use portcullis_store::{normalize_address, Store, StoreError};
use portcullis_store_backends::migrate::{redact, Endpoint, MigrateReport, Progress};
use portcullis_store_backends::{CheckReport, Options};

use crate::cli::runtime::block_on;
use crate::cli::Failure;

/// Opens the store `store.url` names, as the service user, so that files it creates stay the
/// server's.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    as_service_user(config)?;
    block_on(portcullis_store_backends::open(&config.store, Options::default()))
        .map_err(|e| Failure(format!("cannot open the store {}: {e}", config.store.describe())))
}

/// `store check` on the store `store.url` names, as the service user (see [`open`]).
pub fn check(config: &Config, quick: bool) -> Result<CheckReport, Failure> {
    as_service_user(config)?;
    block_on(portcullis_store_backends::check(&config.store, quick)).map_err(explain)
}

/// What `store migrate` did: both ends for people (no password) and the report.
pub struct Migrated {
    pub from: String,
    pub to: String,
    pub report: MigrateReport,
}

/// `store migrate`: opens `from` (the configured store when `None`) and `to`, as the service
/// user (so that a SQLite destination belongs to the server), and copies one into the other.
pub fn migrate(
    config: &Config,
    from: Option<&str>,
    to: &str,
    quick: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Migrated, Failure> {
    as_service_user(config)?;
    let from_shown = from.map_or_else(|| config.store.describe(), redact);
    let to_shown = redact(to);
    if from.unwrap_or_default() == to || (from.is_none() && config.store.describe() == to_shown) {
        return Err(Failure(format!("--from and --to both name {to_shown}; copy into another, empty database")));
    }
    block_on(async {
        let source = match from {
            Some(url) => Endpoint::open(url, false).await,
            None => Endpoint::open_configured(&config.store).await,
        }
        .map_err(|e| Failure(format!("cannot open the source {from_shown}: {}", detail(e))))?;
        let destination = Endpoint::open(to, true)
            .await
            .map_err(|e| Failure(format!("cannot open the destination {to_shown}: {}", detail(e))))?;
        println!("Copying {from_shown} to {to_shown}, from one snapshot of the source (mail arriving after it is not copied).");
        let result = portcullis_store_backends::migrate::migrate(&source, &destination, quick, progress).await;
        source.close();
        destination.close();
        let report = result.map_err(|e| Failure(format!("cannot migrate: {}", detail(e))))?;
        Ok(Migrated { from: from_shown, to: to_shown, report })
    })
}

/// A store error's own words, without the "the store failed" of [`explain`].
fn detail(e: StoreError) -> String {
    match e {
        StoreError::Backend(detail) => detail,
        other => other.to_string(),
    }
}

/// Drops root for the configured service user when there is one on this machine.
fn as_service_user(config: &Config) -> Result<(), Failure> {
    let service_user_exists =
        config.process.user.as_deref().is_some_and(|u| nix::unistd::User::from_name(u).ok().flatten().is_some());
    if service_user_exists {
        portcullis_server::process::drop_privileges(config).map_err(Failure)?;
    }
    Ok(())
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
