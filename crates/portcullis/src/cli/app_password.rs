//! `portcullis account app-password add|list|revoke`: one password per mail client, limited to
//! some protocols, revocable one by one. On the store directly; a running server notices a
//! revoked app password within a second and closes its sessions.

use clap::Subcommand;
use portcullis_auth::{generate_app_password, secret_digest};
use portcullis_store::{Store, StoreError, SCOPE_IMAP, SCOPE_NAMES, SCOPE_POP3, SCOPE_SMTP};
use zeroize::Zeroizing;

use crate::cli::store_access::{address, explain};
use crate::cli::units::{date, now};
use crate::cli::Failure;

#[derive(Subcommand)]
pub enum AppPasswordAction {
    /// Create one; prints the generated password once
    Add {
        user: String,
        /// What it is for, e.g. "phone" or "laptop mutt"
        #[arg(long)]
        name: String,
        /// The protocols it opens, comma-separated: imap, pop3, smtp [default: all three]
        #[arg(long, value_delimiter = ',', value_name = "PROTOCOLS")]
        scope: Vec<String>,
        /// How long it lasts, e.g. "90d" [default: until revoked]
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Show the account's app passwords: scope, status, created, expiry, last use and address
    List { user: String },
    /// Revoke one at once; sessions opened with it are closed
    Revoke { user: String, name: String },
}

pub async fn run(store: &dyn Store, action: AppPasswordAction) -> Result<(), Failure> {
    match action {
        AppPasswordAction::Add { user, name, scope, expires } => {
            let address = address(&user)?;
            check_name(&name)?;
            let scopes = parse_scopes(&scope)?;
            let expires = match expires {
                Some(text) => Some(
                    now()
                        + portcullis_config::parse_duration(&text)
                            .map_err(|e| Failure(format!("--expires: {e}")))?
                            .as_secs() as i64,
                ),
                None => None,
            };
            let secret = Zeroizing::new(generate_app_password());
            let added = store
                .add_app_password(&address, &name, &secret_digest(secret.as_bytes()), scopes, expires)
                .await
                .map_err(explain)?;
            println!("Added app password \"{name}\" for {address} ({}).", scope_names(added.scopes));
            if let Some(expires) = added.expires {
                println!("It expires at {}.", date(expires));
            }
            println!("App password (shown only this once): {}", secret.as_str());
            println!("Use it in place of the account's password in one mail client; revoke it with");
            println!("`portcullis account app-password revoke {address} {name}`.");
        }
        AppPasswordAction::List { user } => {
            let address = address(&user)?;
            if store.credentials(&address).await.map_err(explain)?.is_none() {
                return Err(explain(StoreError::NoSuchAccount(address)));
            }
            let list = store.app_passwords(&address).await.map_err(explain)?;
            println!(
                "{:<20} {:<15} {:<8} {:<20} {:<20} {:<20} last address",
                "name", "scope", "status", "created", "expires", "last used"
            );
            for a in list {
                println!(
                    "{:<20} {:<15} {:<8} {:<20} {:<20} {:<20} {}",
                    a.name,
                    scope_names(a.scopes),
                    a.state(now()).as_str(),
                    date(a.created),
                    a.expires.map(date).unwrap_or_else(|| "never".into()),
                    a.last_used.map(date).unwrap_or_else(|| "never".into()),
                    a.last_ip.as_deref().unwrap_or("-"),
                );
            }
        }
        AppPasswordAction::Revoke { user, name } => {
            let address = address(&user)?;
            if !store.revoke_app_password(&address, &name).await.map_err(explain)? {
                return Err(Failure(format!(
                    "{address} has no app password named \"{name}\" in use (see `portcullis account app-password list {address}`)"
                )));
            }
            println!(
                "Revoked app password \"{name}\" of {address}; a running server closes its sessions within a second."
            );
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_alphanumeric() || "-_.@ ".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Failure(format!(
            "--name \"{name}\": use up to 64 letters, digits, spaces and - _ . @, naming the device or client"
        )))
    }
}

fn parse_scopes(names: &[String]) -> Result<u8, Failure> {
    if names.is_empty() {
        return Ok(SCOPE_IMAP | SCOPE_POP3 | SCOPE_SMTP);
    }
    let mut scopes = 0;
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        let (_, bit) = SCOPE_NAMES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            Failure(format!("--scope: \"{name}\" is not a protocol; use a comma-separated list of imap, pop3, smtp"))
        })?;
        scopes |= bit;
    }
    Ok(scopes)
}

fn scope_names(scopes: u8) -> String {
    SCOPE_NAMES.iter().filter(|(_, bit)| scopes & bit != 0).map(|(n, _)| *n).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(parse_scopes(&[]).unwrap(), SCOPE_IMAP | SCOPE_POP3 | SCOPE_SMTP);
        assert_eq!(parse_scopes(&["IMAP".into(), " smtp".into()]).unwrap(), SCOPE_IMAP | SCOPE_SMTP);
        assert!(parse_scopes(&["jmap".into()]).is_err());
        assert_eq!(scope_names(SCOPE_IMAP | SCOPE_SMTP), "imap,smtp");
    }

    #[test]
    fn names_are_labels() {
        assert!(check_name("Alice's phone").is_err());
        assert!(check_name("phone").is_ok() && check_name("work laptop").is_ok());
        assert!(check_name("").is_err() && check_name(&"x".repeat(65)).is_err() && check_name("a\nb").is_err());
    }
}
