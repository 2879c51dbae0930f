//! Authentication: argon2id password hashes, the password policy, SASL message decoding, and
//! the one place that decides whether a username and password open an account.
#![forbid(unsafe_code)]

mod password;
mod policy;
mod pool;

pub use password::{generate_password, PasswordHasher};
pub use policy::{check_password, PolicyError};

use std::sync::Arc;

use pool::HashPool;
use portcullis_store::{AccountId, Store};
use zeroize::Zeroizing;

/// Who authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    /// The account's address in its one normalised spelling.
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user, wrong password, or a forbidden authorisation identity: deliberately one
    /// answer, so that a client cannot tell which (no user enumeration).
    InvalidCredentials,
    /// Our side failed (store unavailable); the client may retry later.
    Unavailable,
}

/// Checks credentials against the store. Every check costs one argon2id verification, whether
/// or not the account exists, so that unknown users and wrong passwords take the same time.
pub struct Authenticator {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    /// A hash of a random password, verified when the account does not exist.
    decoy: Arc<str>,
    /// Where argon2 runs: one thread per CPU.
    pool: HashPool,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher) -> Result<Self, String> {
        let decoy = hasher.hash(generate_password().as_bytes())?;
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Authenticator { store, hasher: Arc::new(hasher), decoy: decoy.into(), pool: HashPool::new(cpus) })
    }

    /// SASL semantics (RFC 4422): `authzid` may be empty or equal to `username`; acting as
    /// another user is not supported.
    pub async fn verify(
        &self,
        authzid: &str,
        username: &str,
        password: Zeroizing<Vec<u8>>,
    ) -> Result<Principal, AuthError> {
        let credentials = self.store.credentials(username).await.map_err(|_| AuthError::Unavailable)?;
        let (hash, principal) = match &credentials {
            Some(c) => (
                Arc::<str>::from(c.password_hash.as_str()),
                Some(Principal { account: c.account, address: c.address.clone() }),
            ),
            None => (self.decoy.clone(), None),
        };
        let hasher = self.hasher.clone();
        let matches = self.pool.run(move || hasher.verify(&password, &hash)).await.ok_or(AuthError::Unavailable)?;
        let principal = principal.filter(|_| matches).ok_or(AuthError::InvalidCredentials)?;
        let authzid_ok = authzid.is_empty()
            || portcullis_store::normalize_address(authzid).as_deref() == Some(principal.address.as_str());
        if !authzid_ok {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(principal)
    }
}
