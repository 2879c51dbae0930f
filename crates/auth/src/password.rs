//! argon2id password hashes in PHC string form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).

use std::cell::RefCell;

use argon2::password_hash::{phc::PasswordHash, PasswordHasher as _};
use argon2::{Algorithm, Argon2, Block, Params, Version};

thread_local! {
    /// argon2's working memory (19 MiB by default), kept by each hashing thread and reused.
    /// Allocated afresh per verification, it piled up in the allocator's arenas: 300-400 MB
    /// resident after 60 logins on two threads, instead of two times the configured cost.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

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
        verify_phc(password, hash).unwrap_or(false)
    }
}

/// What `Argon2::verify_password` does, but in this thread's reused memory.
fn verify_phc(password: &[u8], hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let mut output = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, &salt, &mut output, &mut memory[..blocks]).ok()
    })?;
    // Output compares in constant time.
    Some(argon2::password_hash::phc::Output::new(&output).ok()? == expected)
}

/// A random password for a new account: 20 characters from a 56-symbol alphabet without
/// look-alikes (about 116 bits).
pub fn generate_password() -> String {
    random_text(b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", 20)
}

/// `length` characters drawn uniformly from `alphabet`.
pub fn random_text(alphabet: &[u8], length: usize) -> String {
    (0..length).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(&portcullis_config::Passwords {
            scram_iterations: 4096,
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
    fn reused_memory_serves_hashes_of_any_cost() {
        use argon2::password_hash::PasswordVerifier as _;
        let small = cheap();
        let big = PasswordHasher { params: Params::new(256, 2, 2, None).unwrap() };
        // Bigger, smaller, bigger again: the thread's memory grows once and is reused.
        for (hasher, password) in [(&big, "one"), (&small, "two"), (&big, "three"), (&small, "four")] {
            let hash = hasher.hash(password.as_bytes()).unwrap();
            assert!(hasher.verify(password.as_bytes(), &hash));
            assert!(!hasher.verify(b"wrong", &hash));
            let parsed = PasswordHash::new(&hash).unwrap();
            assert!(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(), "the crate agrees");
        }
        // The RFC 9106 reference hash of "password", salt "somesalt", argon2i v=19 (m=65536,
        // t=2, p=1), as the reference implementation prints it: other algorithms verify too.
        let reference = "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
        assert!(small.verify(b"password", reference));
        assert!(!small.verify(b"Password", reference));
    }

    #[test]
    fn generated_passwords_differ() {
        let a = generate_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, generate_password());
    }
}
