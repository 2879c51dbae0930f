//! What lies beyond one password: app passwords (one per device, scoped to protocols,
//! revocable one by one) and TOTP (RFC 6238) with one-time recovery codes.
//!
//! App passwords and recovery codes are random and long, so a SHA-256 digest protects them as
//! well as a slow hash would, and can be looked up directly instead of trying each one.

use sha2::{Digest, Sha256};
use totp_rs::{Builder, Secret, Totp};

use crate::password::random_text;

/// Lower case without look-alikes (no l, o, 0, 1): easy to type on a phone. 32 symbols, so
/// 5 bits per character.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// An app password: 20 characters (100 bits), shown in groups of four.
pub fn generate_app_password() -> String {
    group(&random_text(ALPHABET, 20))
}

/// A recovery code: 16 characters (80 bits).
pub fn generate_recovery_code() -> String {
    group(&random_text(ALPHABET, 16))
}

fn group(text: &str) -> String {
    text.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// The digest stored for an app password or recovery code. Dashes, spaces and case do not
/// matter, as typed on a phone.
pub fn secret_digest(secret: &[u8]) -> [u8; 32] {
    let normalized: Vec<u8> = secret.iter().filter(|b| !matches!(b, b'-' | b' ')).map(u8::to_ascii_lowercase).collect();
    Sha256::digest(normalized).into()
}

/// Whether `password` looks like an app password (so the argon2 check can be skipped).
pub fn looks_like_app_password(password: &[u8]) -> bool {
    let normalized: Vec<u8> = password.iter().filter(|b| !matches!(b, b'-' | b' ')).copied().collect();
    normalized.len() == 20 && normalized.iter().all(|b| ALPHABET.contains(&b.to_ascii_lowercase()))
}

/// A fresh TOTP secret (160 bits, as RFC 4226 recommends).
pub fn new_totp_secret() -> Vec<u8> {
    let secret: [u8; 20] = rand::random();
    secret.to_vec()
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, String> {
    Builder::new()
        .with_secret(Secret::from(secret.to_vec()))
        .with_account_name(account)
        .with_issuer(Some("Portcullis"))
        .build()
        .map_err(|e| format!("TOTP setup failed: {e}"))
}

/// The otpauth:// URI an authenticator app scans.
pub fn totp_uri(secret: &[u8], account: &str) -> Result<String, String> {
    totp(secret, account)?.to_url().map_err(|e| format!("TOTP URI failed: {e}"))
}

/// The time step a code is valid for (one step of skew either way), if it is valid at `now`.
pub fn totp_step(secret: &[u8], account: &str, code: &str, now: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(secret, account).ok()?.check(&code, now).map(|step| step as i64)
}

/// The code for `now` (tests, and the enrollment message).
pub fn totp_code(secret: &[u8], account: &str, now: u64) -> Result<String, String> {
    Ok(totp(secret, account)?.generate(now).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_passwords_are_long_grouped_and_normalized() {
        let p = generate_app_password();
        assert_eq!(p.len(), 24);
        assert!(looks_like_app_password(p.as_bytes()));
        assert_eq!(secret_digest(p.as_bytes()), secret_digest(p.replace('-', "").to_uppercase().as_bytes()));
        assert!(!looks_like_app_password(b"plinth-orbit-cactus-9"));
        assert_ne!(generate_app_password(), p);
        assert_eq!(generate_recovery_code().len(), 19);
    }

    #[test]
    fn totp_codes_are_valid_for_their_step_and_a_neighbour() {
        let secret = new_totp_secret();
        let now = 1_800_000_000;
        let code = totp_code(&secret, "a@x.test", now).unwrap();
        assert_eq!(totp_step(&secret, "a@x.test", &code, now), Some((now / 30) as i64));
        assert_eq!(totp_step(&secret, "a@x.test", &code, now + 30), Some((now / 30) as i64), "one step of skew");
        assert_eq!(totp_step(&secret, "a@x.test", &code, now + 300), None);
        assert_eq!(totp_step(&secret, "a@x.test", "000000", now).filter(|_| code != "000000"), None);
        assert!(totp_uri(&secret, "a@x.test").unwrap().starts_with("otpauth://totp/Portcullis:a%40x.test?"));
    }
}
