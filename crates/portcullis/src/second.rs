//! `portcullis account app-password …` and `portcullis account totp …`: what opens an account
//! beyond its password. Like the other admin commands they work on the store directly; a
//! running server notices revoked app passwords within a second and closes their sessions.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_auth::{
    generate_app_password, generate_recovery_code, new_totp_secret, secret_digest, totp_step, totp_uri, AuthError,
    Authenticator, Lane, PasswordHasher,
};
use portcullis_config::Config;
use portcullis_store::{AppPassword, SqliteStore, Store, StoreError, SCOPE_IMAP, SCOPE_POP3, SCOPE_SMTP};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use zeroize::Zeroizing;

use crate::admin::{address, explain};
use crate::{AppPasswordAction, Failure, TotpAction};

/// Recovery codes issued when TOTP is turned on.
const RECOVERY_CODES: usize = 10;
/// Chances to type the confirming code at enrollment.
const CONFIRM_TRIES: usize = 3;
const SCOPES: [(&str, u8); 3] = [("imap", SCOPE_IMAP), ("pop3", SCOPE_POP3), ("smtp", SCOPE_SMTP)];

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn date(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64)).to_string()
}

pub async fn app_password(store: &SqliteStore, action: AppPasswordAction) -> Result<(), Failure> {
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
                    status(&a, now()),
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

fn status(a: &AppPassword, now: i64) -> &'static str {
    if a.revoked {
        "revoked"
    } else if a.expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
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
        let (_, bit) = SCOPES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            Failure(format!("--scope: \"{name}\" is not a protocol; use a comma-separated list of imap, pop3, smtp"))
        })?;
        scopes |= bit;
    }
    Ok(scopes)
}

fn scope_names(scopes: u8) -> String {
    SCOPES.iter().filter(|(_, bit)| scopes & bit != 0).map(|(n, _)| *n).collect::<Vec<_>>().join(",")
}

pub async fn totp(config: &Config, store: &Arc<SqliteStore>, action: TotpAction) -> Result<(), Failure> {
    match action {
        TotpAction::Enable { user } => enable(store, &address(&user)?).await,
        TotpAction::Disable { user } => {
            let address = address(&user)?;
            if !totp_enabled(store, &address).await? {
                return Err(Failure(format!("{address} does not have TOTP on")));
            }
            store.set_totp(&address, None, false, &[]).await.map_err(explain)?;
            println!(
                "Turned TOTP off for {address}: its password opens mail clients again; its recovery codes are void."
            );
            Ok(())
        }
        TotpAction::Check { user } => check(config, store, &address(&user)?).await,
    }
}

/// Whether the account has TOTP on; an error if there is no such account.
async fn totp_enabled(store: &SqliteStore, address: &str) -> Result<bool, Failure> {
    match store.credentials(address).await.map_err(explain)? {
        None => Err(explain(StoreError::NoSuchAccount(address.to_string()))),
        Some(c) => Ok(c.totp_enabled),
    }
}

/// A new secret, shown as a URI and a QR code; one valid code turns it on, and recovery codes
/// are printed once. Until confirmed the account is unchanged.
async fn enable(store: &SqliteStore, address: &str) -> Result<(), Failure> {
    if totp_enabled(store, address).await? {
        return Err(Failure(format!(
            "{address} already has TOTP on; turn it off first with `portcullis account totp disable {address}`"
        )));
    }
    let secret = Zeroizing::new(new_totp_secret());
    let uri = Zeroizing::new(totp_uri(&secret, address)?);
    let qr = QrCode::new(uri.as_bytes()).map_err(|e| Failure(format!("cannot draw the QR code: {e}")))?;
    println!("Scan this with an authenticator app, or enter the URI by hand:\n");
    println!("{}", qr.render::<Dense1x2>().quiet_zone(true).build());
    println!("{}\n", uri.as_str());
    std::io::stdout().flush()?;

    let mut stdin = std::io::stdin().lock();
    let mut confirmed = None;
    for _ in 0..CONFIRM_TRIES {
        eprint!("Code shown by the app: ");
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            break;
        }
        match totp_step(&secret, address, line.trim(), now() as u64) {
            Some(step) => {
                confirmed = Some(step);
                break;
            }
            None => eprintln!("That code is not valid now; check the app's clock and try again."),
        }
    }
    let Some(step) = confirmed else {
        return Err(Failure(format!("TOTP was not turned on for {address}: no valid code was entered")));
    };
    let codes: Vec<Zeroizing<String>> = (0..RECOVERY_CODES).map(|_| Zeroizing::new(generate_recovery_code())).collect();
    let digests: Vec<Vec<u8>> = codes.iter().map(|c| secret_digest(c.as_bytes()).to_vec()).collect();
    store.set_totp(address, Some(&secret), true, &digests).await.map_err(explain)?;
    let account = store.credentials(address).await.map_err(explain)?.map(|c| c.account);
    if let Some(account) = account {
        // The confirming code is spent: it cannot be replayed at the first sign-in.
        store.use_totp_step(account, step).await.map_err(explain)?;
    }
    println!("TOTP is on for {address}.");
    println!("Recovery codes, each good once, shown only now (keep them apart from the phone):");
    for code in &codes {
        println!("  {}", code.as_str());
    }
    println!("Mail clients cannot ask for a code, so the password no longer opens IMAP, POP3 or SMTP:");
    println!("give each client an app password: `portcullis account app-password add {address} --name LABEL`.");
    Ok(())
}

/// Reads the password and then a code (TOTP or recovery) from standard input, and says whether
/// they open the account, as the admin sign-in will. A TOTP code is spent by the check.
async fn check(config: &Config, store: &Arc<SqliteStore>, address: &str) -> Result<(), Failure> {
    let mut stdin = std::io::stdin().lock();
    let mut password = Zeroizing::new(String::new());
    stdin.read_line(&mut password)?;
    let mut code = Zeroizing::new(String::new());
    stdin.read_line(&mut code)?;
    let password = Zeroizing::new(password.trim_end_matches(['\r', '\n']).as_bytes().to_vec());

    let shared: Arc<dyn Store> = store.clone();
    let hasher = PasswordHasher::new(&config.passwords)?;
    let auth = Authenticator::new(shared, hasher, config.passwords.scram_iterations)?;
    match auth.verify_with_code(address, password, code.trim(), Lane::Priority).await {
        Ok(_) => {
            println!("The password and code open {address}.");
            Ok(())
        }
        Err(AuthError::Refused(why)) => Err(Failure(format!("refused: {}", why.reason().replace('_', " ")))),
        Err(AuthError::Unavailable) => Err(Failure("the store failed; try again".into())),
        Err(AuthError::Busy) => Err(Failure("too many logins are being checked; try again".into())),
    }
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
