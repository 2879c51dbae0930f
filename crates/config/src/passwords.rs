//! `[passwords]`: what a new password must be (length, zxcvbn strength) and how it is stored
//! (argon2id cost, PBKDF2 rounds of the SCRAM-SHA-256 keys).

use serde::Deserialize;

use crate::check::Check;
use crate::error::ConfigError;

/// RFC 7677 §4 asks for at least 4096; more makes a stolen SCRAM key slower to attack.
const SCRAM_ITERATIONS: u32 = 10_000;
const MIN_PASSWORD_LENGTH: usize = 12;
const MIN_PASSWORD_STRENGTH: u8 = 3;
/// OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_PARALLELISM: u32 = 1;

#[derive(Debug, Clone)]
pub struct Passwords {
    /// PBKDF2 rounds for SCRAM-SHA-256 keys (RFC 7677 asks for at least 4096).
    pub scram_iterations: u32,
    pub min_length: usize,
    /// Least zxcvbn score (0-4) a new password must reach; 3 refuses common and guessable ones.
    pub min_strength: u8,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPasswords {
    scram_iterations: Option<u32>,
    min_length: Option<usize>,
    min_strength: Option<u8>,
    argon2_memory_kib: Option<u32>,
    argon2_iterations: Option<u32>,
    argon2_parallelism: Option<u32>,
}

impl RawPasswords {
    pub(crate) fn validate(self, c: &Check<'_>) -> Result<Passwords, ConfigError> {
        let passwords = Passwords {
            scram_iterations: self.scram_iterations.unwrap_or(SCRAM_ITERATIONS),
            min_length: self.min_length.unwrap_or(MIN_PASSWORD_LENGTH),
            min_strength: self.min_strength.unwrap_or(MIN_PASSWORD_STRENGTH),
            argon2_memory_kib: self.argon2_memory_kib.unwrap_or(ARGON2_MEMORY_KIB),
            argon2_iterations: self.argon2_iterations.unwrap_or(ARGON2_ITERATIONS),
            argon2_parallelism: self.argon2_parallelism.unwrap_or(ARGON2_PARALLELISM),
        };
        if passwords.min_length < 8 {
            return Err(c.invalid("passwords.min_length", "must be at least 8"));
        }
        if passwords.argon2_memory_kib < 8 * passwords.argon2_parallelism.max(1)
            || passwords.argon2_memory_kib > 4 * 1024 * 1024
        {
            return Err(
                c.invalid("passwords.argon2_memory_kib", "must be between 8 x argon2_parallelism and 4194304 (4 GiB)")
            );
        }
        if passwords.scram_iterations < 4096 {
            return Err(c.invalid("passwords.scram_iterations", "must be at least 4096 (RFC 7677)"));
        }
        if passwords.min_strength > 4 {
            return Err(c.invalid("passwords.min_strength", "must be between 0 and 4 (zxcvbn scores)"));
        }
        if !(1..=64).contains(&passwords.argon2_iterations) {
            return Err(c.invalid("passwords.argon2_iterations", "must be between 1 and 64"));
        }
        if !(1..=16).contains(&passwords.argon2_parallelism) {
            return Err(c.invalid("passwords.argon2_parallelism", "must be between 1 and 16"));
        }
        Ok(passwords)
    }
}
