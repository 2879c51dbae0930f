//! TOTP (RFC 6238), the second factor: a secret per account shown as an otpauth:// URI, codes
//! checked with one step of clock skew either way, and the one-time recovery codes issued when
//! it is turned on (typed like app passwords and stored as the same kind of digest).

use totp_rs::{Builder, Secret, Totp};

use crate::app_passwords::typed_code;

/// A recovery code: 16 characters (80 bits).
pub fn generate_recovery_code() -> String {
    typed_code(16)
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
    use crate::app_passwords::secret_digest;

    #[test]
    fn recovery_codes_are_grouped_and_normalized() {
        let c = generate_recovery_code();
        assert_eq!(c.len(), 19);
        assert_eq!(secret_digest(c.as_bytes()), secret_digest(c.replace('-', "").to_uppercase().as_bytes()));
        assert_ne!(generate_recovery_code(), c);
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
