//! App passwords: one per device, scoped to protocols, revocable one by one. Also the typed
//! codes they share with TOTP recovery codes: an alphabet without look-alikes, groups of four,
//! and the digest both are stored as.
//!
//! App passwords and recovery codes are random and long, so a SHA-256 digest protects them as
//! well as a slow hash would, and can be looked up directly instead of trying each one.

use sha2::{Digest, Sha256};

use crate::password::random_text;

/// Lower case without look-alikes (no l, o, 0, 1): easy to type on a phone. 32 symbols, so
/// 5 bits per character.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// An app password: 20 characters (100 bits), shown in groups of four.
pub fn generate_app_password() -> String {
    typed_code(20)
}

/// `length` random characters of [`ALPHABET`], shown in groups of four.
pub(crate) fn typed_code(length: usize) -> String {
    group(&random_text(ALPHABET, length))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::generate_recovery_code;

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
}
