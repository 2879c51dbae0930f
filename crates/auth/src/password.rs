//! argon2id password hashes in PHC string form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).

use argon2::password_hash::{phc::PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Argon2, Params};
use rand::Rng;

pub struct PasswordHasher {
    params: Params,
}

impl PasswordHasher {
    pub fn new(config: &portcullis_config::Passwords) -> Result<Self, String> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(PasswordHasher { params })
    }

    /// A fresh salt and the configured cost. CPU- and memory-heavy: call it off async threads.
    pub fn hash(&self, password: &[u8]) -> Result<String, String> {
        Argon2::from(&self.params)
            .hash_password(password)
            .map(|h| h.to_string())
            .map_err(|e| format!("hashing failed: {e}"))
    }

    /// Whether `password` matches `hash`, at the cost recorded in `hash` (so hashes made
    /// under older settings keep working). A malformed hash matches nothing.
    pub fn verify(&self, password: &[u8], hash: &str) -> bool {
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::from(&self.params).verify_password(password, &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

/// A random password for a new account: 20 characters from a 56-symbol alphabet without
/// look-alikes (about 116 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(&portcullis_config::Passwords {
            min_length: 12,
            min_strength: 3,
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let h = cheap();
        let a = h.hash(b"correct horse battery staple").unwrap();
        let b = h.hash(b"correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(h.verify(b"correct horse battery staple", &a));
        assert!(!h.verify(b"correct horse battery stapler", &a));
        assert!(!h.verify(b"anything", "not a hash"));
        assert!(!h.verify(b"", ""));
    }

    #[test]
    fn generated_passwords_differ() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate_password());
    }
}
