//! `portcullis domain …` and `portcullis account …`: work on the store directly (SQLite lets
//! them run beside a live server), as the service user when started as root.

use std::io::BufRead;
use std::sync::Arc;

use portcullis_auth::{check_password, derive_secrets, generate_password, PasswordHasher};
use portcullis_config::{format_size, parse_size, Config};
use portcullis_store::{normalize_address, PasswordSecrets, Quota, SqliteStore, Store, StoreError};
use zeroize::Zeroizing;

use crate::{AccountAction, BanAction, DomainAction, Failure, StoreAction};

pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime")
        .block_on(future)
}

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
            format!("the domain {d} still has accounts; remove them first (see `portcullis account list`)")
        }
        StoreError::NoSuchAccount(a) => format!("there is no account {a} (see `portcullis account list`)"),
        StoreError::AccountExists(a) => {
            format!("the account {a} already exists; use `portcullis account passwd {a}` to change its password")
        }
        StoreError::AppPasswordExists(name) => {
            format!("an app password named \"{name}\" already exists for this account; pick another --name")
        }
        StoreError::InvalidAddress(a) => format!("\"{a}\" is not a valid address; use the form user@example.org"),
        StoreError::InvalidDomain(d) => format!("\"{d}\" is not a valid domain name"),
        StoreError::Backend(detail) => format!("the store failed: {detail}"),
    })
}

pub fn domain(config: &Config, action: DomainAction) -> Result<(), Failure> {
    let store = open(config)?;
    block_on(async {
        match action {
            DomainAction::Add { domain } => {
                store.add_domain(&domain).await.map_err(explain)?;
                println!("Added domain {}.", domain.to_ascii_lowercase());
            }
            DomainAction::Remove { domain } => {
                store.remove_domain(&domain).await.map_err(explain)?;
                println!("Removed domain {}.", domain.to_ascii_lowercase());
            }
            DomainAction::List => {
                for domain in store.domains().await.map_err(explain)? {
                    println!("{domain}");
                }
            }
        }
        store.close();
        Ok(())
    })
}

pub fn store(config: &Config, action: StoreAction) -> Result<(), Failure> {
    let StoreAction::Check { quick } = action;
    let store = open(config)?;
    let report = block_on(store.check(quick));
    store.close();
    let report = report.map_err(explain)?;
    let counted = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "Checked {}: {}, {}, {}, {} in {} ({}).",
        config.store.sqlite_path.display(),
        counted(report.domains, "domain", "domains"),
        counted(report.accounts, "account", "accounts"),
        counted(report.mailboxes, "mailbox", "mailboxes"),
        counted(report.messages, "message", "messages"),
        counted(report.bodies, "body", "bodies"),
        human_size(report.body_bytes)
    );
    if report.bodies_without_header_cache > 0 {
        // Tolerated by design (schema migration 5), so said, not counted as a problem.
        println!(
            "{} without a usable header cache: SEARCH reads their headers instead (slower, not a problem).",
            counted(report.bodies_without_header_cache, "body", "bodies")
        );
    }
    if report.is_ok() {
        println!("No problems found.");
        return Ok(());
    }
    let n = report.problems.len();
    let problems = if n == 1 { "problem" } else { "problems" };
    println!("{n} {problems}:");
    for problem in &report.problems {
        println!("  {problem}");
    }
    Err(Failure(format!(
        "the store has {n} {problems} (listed above); copy the data directory before changing anything, and restore the store from a backup if messages are damaged"
    )))
}

pub fn account(config: &Config, action: AccountAction) -> Result<(), Failure> {
    let store = Arc::new(open(config)?);
    let result = block_on(async {
        match action {
            AccountAction::AppPassword { action } => crate::second::app_password(&store, action).await?,
            AccountAction::Totp { action } => crate::second::totp(config, &store, action).await?,
            AccountAction::Add { user, password_stdin, quota } => {
                let address = address(&user)?;
                let quota = match quota {
                    Some(q) => parse_quota(&q)?,
                    None => Quota::Default,
                };
                let (password, generated) = new_password(config, &address, password_stdin)?;
                store.add_account(&address, &secrets(config, &password)?, quota).await.map_err(explain)?;
                println!("Added account {address}.");
                if generated {
                    println!("Password (shown only this once): {}", password.as_str());
                }
            }
            AccountAction::Remove { user } => {
                let address = address(&user)?;
                store.remove_account(&address).await.map_err(explain)?;
                println!("Removed account {address} and all of its mail.");
            }
            AccountAction::List => {
                let accounts = store.accounts().await.map_err(explain)?;
                println!("{:<40} {:>10} {:>20} {:>9}  created", "account", "used", "quota", "messages");
                for a in accounts {
                    let quota = match a.quota {
                        Quota::Default => match config.store.default_quota {
                            Some(q) => format!("{} (default)", format_size(q)),
                            None => "unlimited (default)".into(),
                        },
                        Quota::Unlimited => "unlimited".into(),
                        Quota::Bytes(q) => format_size(q),
                    };
                    let created = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(a.created.max(0) as u64),
                    );
                    println!("{:<40} {:>10} {:>20} {:>9}  {created}", a.address, human_size(a.used), quota, a.messages);
                }
            }
            AccountAction::Passwd { user, password_stdin } => {
                let address = address(&user)?;
                if store.credentials(&address).await.map_err(explain)?.is_none() {
                    return Err(explain(StoreError::NoSuchAccount(address)));
                }
                let (password, generated) = new_password(config, &address, password_stdin)?;
                store.set_password(&address, &secrets(config, &password)?).await.map_err(explain)?;
                println!("Changed the password of {address}.");
                if generated {
                    println!("Password (shown only this once): {}", password.as_str());
                }
            }
            AccountAction::Quota { user, size } => {
                let address = address(&user)?;
                let quota = match size.as_str() {
                    "default" => Quota::Default,
                    other => parse_quota(other)?,
                };
                store.set_quota(&address, quota).await.map_err(explain)?;
                println!("Set the quota of {address}.");
            }
        }
        Ok(())
    });
    store.close();
    result
}

/// 1536 -> "1.5KiB": sizes an operator reads at a glance.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Through the running server's admin API when there is one; otherwise on the store.
pub fn ban(config: &Config, action: BanAction) -> Result<(), Failure> {
    let action = match crate::remote::ban(config, action)? {
        None => return Ok(()),
        Some(action) => action,
    };
    let store = open(config)?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    block_on(async {
        match action {
            BanAction::List { all } => {
                let bans = store.bans().await.map_err(explain)?;
                print_bans(bans.iter().filter(|b| all || b.until.is_none_or(|u| u > now)).map(|b| BanLine {
                    network: &b.network,
                    until: b.until,
                    by: if b.manual { "admin" } else { "auto" },
                    offence: b.offence,
                    reason: &b.reason,
                }));
            }
            BanAction::Add { network, duration, reason } => {
                let net = portcullis_config::parse_network(&network).map_err(Failure)?;
                if config.firewall.trusted.iter().any(|t| t.contains(&net) || net.contains(t)) {
                    return Err(Failure(format!(
                        "{net} overlaps firewall.trusted_networks, which are never banned; remove it from there first"
                    )));
                }
                let until = match duration {
                    Some(d) => Some(
                        now + portcullis_config::parse_duration(&d)
                            .map_err(|e| Failure(format!("--for: {e}")))?
                            .as_secs() as i64,
                    ),
                    None => None,
                };
                store
                    .put_ban(portcullis_store::StoredBan {
                        network: net.to_string(),
                        until,
                        reason,
                        offence: 1,
                        manual: true,
                        created: now,
                    })
                    .await
                    .map_err(explain)?;
                println!("Banned {net}{}.", if until.is_some() { "" } else { " permanently" });
            }
            BanAction::Remove { network } => {
                let net = portcullis_config::parse_network(&network).map_err(Failure)?;
                if !store.delete_ban(&net.to_string()).await.map_err(explain)? {
                    return Err(Failure(format!("there is no ban on exactly {net} (see `portcullis ban list`)")));
                }
                println!("Lifted the ban on {net}.");
            }
        }
        store.close();
        Ok(())
    })
}

pub struct BanLine<'a> {
    pub network: &'a str,
    pub until: Option<i64>,
    pub by: &'a str,
    pub offence: u32,
    pub reason: &'a str,
}

pub fn print_bans<'a>(bans: impl Iterator<Item = BanLine<'a>>) {
    println!("{:<32} {:<22} {:<6} {:>7}  reason", "network", "until", "by", "offence");
    for b in bans {
        let until = match b.until {
            None => "permanent".to_string(),
            Some(u) => humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(u.max(0) as u64),
            )
            .to_string(),
        };
        println!("{:<32} {:<22} {:<6} {:>7}  {}", b.network, until, b.by, b.offence, b.reason);
    }
}

pub fn address(user: &str) -> Result<String, Failure> {
    normalize_address(user).ok_or_else(|| explain(StoreError::InvalidAddress(user.to_string())))
}

fn parse_quota(text: &str) -> Result<Quota, Failure> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Quota::Unlimited);
    }
    parse_size(text).map(Quota::Bytes).map_err(|e| Failure(format!("--quota: {e}")))
}

/// The password from stdin (checked against the policy), or a generated one.
fn new_password(config: &Config, address: &str, from_stdin: bool) -> Result<(Zeroizing<String>, bool), Failure> {
    if !from_stdin {
        return Ok((Zeroizing::new(generate_password()), true));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    let local = address.split('@').next().unwrap_or("");
    check_password(&password, &config.passwords, &[address, local])
        .map_err(|e| Failure(format!("{e}; choose another")))?;
    Ok((password, false))
}

/// The argon2id hash and SCRAM keys stored for a password.
fn secrets(config: &Config, password: &str) -> Result<PasswordSecrets, Failure> {
    let hasher = PasswordHasher::new(&config.passwords)?;
    Ok(derive_secrets(&hasher, password, config.passwords.scram_iterations)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(0), "0B");
        assert_eq!(super::human_size(1023), "1023B");
        assert_eq!(super::human_size(1536), "1.5KiB");
        assert_eq!(super::human_size(3 << 30), "3.0GiB");
    }
}
