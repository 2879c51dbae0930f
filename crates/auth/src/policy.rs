//! What a password must be: long enough and not guessable. Guessability is zxcvbn's estimate,
//! which knows the common-password lists, keyboard walks, dates and repeats.

use zxcvbn::zxcvbn;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the password is too short: use at least {0} characters")]
    TooShort(usize),
    #[error("the password is too easy to guess{0}")]
    TooWeak(String),
}

/// `user_inputs` (the address, its parts) count as known to an attacker.
pub fn check_password(
    password: &str,
    config: &portcullis_config::Passwords,
    user_inputs: &[&str],
) -> Result<(), PolicyError> {
    if password.chars().count() < config.min_length {
        return Err(PolicyError::TooShort(config.min_length));
    }
    let estimate = zxcvbn(password, user_inputs);
    if (estimate.score() as u8) < config.min_strength {
        let hint = estimate.feedback().and_then(|f| f.warning().map(|w| format!(": {w}"))).unwrap_or_default();
        return Err(PolicyError::TooWeak(hint));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> portcullis_config::Passwords {
        portcullis_config::Passwords {
            scram_iterations: 4096,
            min_length: 12,
            min_strength: 3,
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
        }
    }

    #[test]
    fn short_and_common_passwords_are_refused() {
        assert_eq!(check_password("Tr0ub4dor&3", &config(), &[]), Err(PolicyError::TooShort(12)));
        for common in ["password1234", "123456789012", "qwertyuiopasdf", "iloveyouiloveyou", "aaaaaaaaaaaaaaaa"] {
            assert!(matches!(check_password(common, &config(), &[]), Err(PolicyError::TooWeak(_))), "{common}");
        }
        assert!(check_password("alice@example.org1", &config(), &["alice@example.org", "alice"]).is_err());
    }

    #[test]
    fn strong_passwords_pass() {
        assert_eq!(check_password("plinth-orbit-cactus-9", &config(), &[]), Ok(()));
        assert_eq!(check_password(&crate::generate_password(), &config(), &[]), Ok(()));
    }
}
