//! `portcullis account add|remove|list|passwd|quota`, on the store directly; `account
//! app-password …`, `account totp …` and `account alias …` are handed to their own files.

use std::io::BufRead;

use clap::Subcommand;
use portcullis_auth::{check_password, derive_secrets, generate_password, PasswordHasher};
use portcullis_config::{format_size, parse_size, Config};
use portcullis_store::{PasswordSecrets, Quota, StoreError};
use zeroize::Zeroizing;

use crate::cli::alias::{self, AliasAction};
use crate::cli::app_password::{self, AppPasswordAction};
use crate::cli::runtime::block_on;
use crate::cli::store_access::{address, explain, open};
use crate::cli::totp::{self, TotpAction};
use crate::cli::units::{date, human_size};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum AccountAction {
    /// Add an account (its domain must exist); prints a generated password unless one is given
    Add {
        /// The address, e.g. alice@example.org
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Storage allowance, e.g. "5GiB" or "unlimited" [default: store.default_quota]
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
    },
    /// Remove an account and all of its mail
    Remove { user: String },
    /// List the accounts
    List,
    /// Set a new password; prints a generated one unless one is given
    Passwd {
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's storage allowance: a size, "unlimited", or "default"
    Quota { user: String, size: String },
    /// App passwords: one per mail client, limited to some protocols, revocable one by one
    AppPassword {
        #[command(subcommand)]
        action: AppPasswordAction,
    },
    /// A second factor (TOTP): with it on, mail clients need app passwords
    Totp {
        #[command(subcommand)]
        action: TotpAction,
    },
    /// Aliases: more addresses for an account, to receive mail at and to send from
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
}

pub fn run(config: &Config, action: AccountAction) -> Result<(), Failure> {
    let store = open(config)?;
    let result = block_on(async {
        match action {
            AccountAction::AppPassword { action } => app_password::run(&*store, action).await?,
            AccountAction::Totp { action } => totp::run(config, &store, action).await?,
            AccountAction::Alias { action } => alias::run(&*store, action).await?,
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
                println!("A running server closes its open sessions within a second.");
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
                    let created = date(a.created);
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
                println!(
                    "A running server closes the sessions opened before, within a second (app passwords stay valid)."
                );
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
