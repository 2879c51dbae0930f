//! `portcullis account totp enable|disable|check|unlock`: the second factor (TOTP, RFC 6238)
//! with one-time recovery codes. With it on, mail clients need app passwords. After a few wrong
//! codes given with the right password it locks (see `portcullis_auth::TOTP_LOCK_AT`), and
//! `unlock` is the operator's way out (a recovery code is the owner's). On the store directly:
//! the running server reads the lock from there at the next sign-in, and closes the sessions
//! the password opened once TOTP is on (it follows the store's credentials generation).

use std::io::{BufRead, Write};
use std::sync::Arc;

use clap::Subcommand;
use portcullis_auth::{
    generate_recovery_code, new_totp_secret, secret_digest, totp_step, totp_uri, AuthError, Authenticator, Lane,
    PasswordHasher,
};
use portcullis_config::Config;
use portcullis_store::{Store, StoreError};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use zeroize::Zeroizing;

use crate::cli::store_access::{address, explain};
use crate::cli::units::now;
use crate::cli::Failure;

/// Recovery codes issued when TOTP is turned on.
const RECOVERY_CODES: usize = 10;
/// Chances to type the confirming code at enrollment.
const CONFIRM_TRIES: usize = 3;

#[derive(Subcommand)]
pub enum TotpAction {
    /// Show a QR code to scan, confirm with one code, and print recovery codes
    Enable { user: String },
    /// Turn TOTP off (the password opens mail clients again)
    Disable { user: String },
    /// Read the password and a code (or a recovery code) from standard input, one per line,
    /// and say whether they open the account
    Check { user: String },
    /// Accept TOTP codes again after too many wrong ones locked them
    Unlock { user: String },
}

pub async fn run(config: &Config, store: &Arc<dyn Store>, action: TotpAction) -> Result<(), Failure> {
    match action {
        TotpAction::Enable { user } => enable(&**store, &address(&user)?).await,
        TotpAction::Disable { user } => {
            let address = address(&user)?;
            if !totp_enabled(&**store, &address).await? {
                return Err(Failure(format!("{address} does not have TOTP on")));
            }
            store.set_totp(&address, None, false, &[]).await.map_err(explain)?;
            println!(
                "Turned TOTP off for {address}: its password opens mail clients again; its recovery codes are void."
            );
            Ok(())
        }
        TotpAction::Check { user } => check(config, store, &address(&user)?).await,
        TotpAction::Unlock { user } => unlock(&**store, &address(&user)?).await,
    }
}

/// Clears the wrong codes and the lock. Said so when there was no lock to lift.
async fn unlock(store: &dyn Store, address: &str) -> Result<(), Failure> {
    if !totp_enabled(store, address).await? {
        return Err(Failure(format!("{address} does not have TOTP on")));
    }
    let Some(totp) = store.totp(address).await.map_err(explain)? else {
        return Err(Failure(format!("{address} does not have TOTP on")));
    };
    if store.totp_unlock(totp.account).await.map_err(explain)? {
        println!("Unlocked TOTP for {address}: its codes are accepted again.");
        println!("It was locked by wrong codes given with its password: consider changing the password.");
    } else {
        println!("TOTP for {address} was not locked ({} wrong codes since the last right one).", totp.failures);
    }
    Ok(())
}

/// Whether the account has TOTP on; an error if there is no such account.
async fn totp_enabled(store: &dyn Store, address: &str) -> Result<bool, Failure> {
    match store.credentials(address).await.map_err(explain)? {
        None => Err(explain(StoreError::NoSuchAccount(address.to_string()))),
        Some(c) => Ok(c.totp_enabled),
    }
}

/// A new secret, shown as a URI and a QR code; one valid code turns it on, and recovery codes
/// are printed once. Until confirmed the account is unchanged.
async fn enable(store: &dyn Store, address: &str) -> Result<(), Failure> {
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
    println!("TOTP is on for {address}; a running server closes its open sessions within a second.");
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
async fn check(config: &Config, store: &Arc<dyn Store>, address: &str) -> Result<(), Failure> {
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
