//! Authentication: argon2id password hashes and SCRAM keys, the password policy, app
//! passwords and TOTP, and the one place that decides whether presented credentials open an
//! account.
#![forbid(unsafe_code)]

mod app_passwords;
mod password;
mod policy;
mod pool;
mod totp;

pub use app_passwords::{generate_app_password, secret_digest};
pub use password::{generate_password, PasswordHasher};
pub use policy::{check_password, PolicyError};
pub use totp::{generate_recovery_code, new_totp_secret, totp_code, totp_step, totp_uri};

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pool::HashPool;
pub use pool::Lane;
use portcullis_sasl::ScramKeys;
use portcullis_store::credential_rules::totp_step_fresh;
use portcullis_store::{AccountId, AppPasswordState, PasswordSecrets, ScramCredentials, Store, StoredScram};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

/// Wrong TOTP codes (given with the right password) after which an account's TOTP locks: no
/// code is accepted until a recovery code is used or the operator runs `portcullis account
/// totp unlock`. A few typing mistakes pass; guessing 6 digits does not (5 tries at 3 valid
/// codes in a million).
pub const TOTP_LOCK_AT: u32 = 5;

/// The name of the secret, kept in the store, that SCRAM's decoy salts derive from.
const DECOY_SECRET: &str = "scram_decoy_salt";

/// Which secret opened the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The account's password (PLAIN, LOGIN).
    Password,
    /// The account's password, proven through SCRAM.
    Scram,
    /// An app password, by id and name.
    AppPassword { id: i64, name: String },
}

impl Credential {
    /// As events name it: "password", or "app_password".
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Password | Credential::Scram => "password",
            Credential::AppPassword { .. } => "app_password",
        }
    }

    pub fn app_password(&self) -> Option<(i64, &str)> {
        match self {
            Credential::AppPassword { id, name } => Some((*id, name)),
            _ => None,
        }
    }
}

/// Who authenticated, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    /// The account's address in its one normalised spelling.
    pub address: String,
    pub credential: Credential,
    /// The account's credentials generation when these credentials were checked: a session
    /// opened with them is closed once the account's generation moves past it.
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The credentials do not open the account. The client always hears one answer, so that
    /// it cannot tell why; the reason is for the log.
    Refused(Refusal),
    /// Our side failed (store unavailable); the client may retry later.
    Unavailable,
    /// Refused before any check, for now: too many password checks from addresses the account
    /// does not know are waiting (a storm of guesses), or the guard's limit of attempts on the
    /// account from such addresses is reached; the client may retry later.
    Busy,
}

/// Why credentials were refused (for the log, never for the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A login name over `portcullis_config::MAX_LOGIN_NAME` bytes: refused before anything
    /// looks it up or counts it.
    NameTooLong,
    UnknownAccount,
    WrongPassword,
    /// SCRAM-SHA-256-PLUS: the right password proven over another TLS connection, the mark of
    /// a man in the middle.
    ChannelBindingMismatch,
    /// The account's password on a mail protocol, with TOTP on: only app passwords open them.
    SecondFactorRequired,
    /// Acting as another user (a SASL authorisation identity) is not supported.
    AuthzidNotAllowed,
    WrongCode,
    /// A wrong code, the last one allowed: the account's TOTP is locked from now on.
    WrongCodeLocks,
    /// The account's TOTP is locked after too many wrong codes: no TOTP code was checked.
    TotpLocked,
    /// A TOTP code already used within its window.
    ReplayedCode,
    /// The admin sign-in, by an account not listed in `admin.accounts`.
    NotAdministrator,
    AppPasswordRevoked(String),
    AppPasswordExpired(String),
    /// A scoped app password on a protocol it is not for.
    AppPasswordOutOfScope(String),
}

impl Refusal {
    /// As events name it.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NameTooLong => "name_too_long",
            Refusal::UnknownAccount => "unknown_account",
            Refusal::WrongPassword => "wrong_password",
            Refusal::ChannelBindingMismatch => "channel_binding_mismatch",
            Refusal::SecondFactorRequired => "second_factor_required",
            Refusal::AuthzidNotAllowed => "authzid_not_allowed",
            Refusal::WrongCode => "wrong_code",
            Refusal::WrongCodeLocks => "wrong_code_locks",
            Refusal::TotpLocked => "totp_locked",
            Refusal::ReplayedCode => "replayed_code",
            Refusal::NotAdministrator => "not_administrator",
            Refusal::AppPasswordRevoked(_) => "app_password_revoked",
            Refusal::AppPasswordExpired(_) => "app_password_expired",
            Refusal::AppPasswordOutOfScope(_) => "app_password_out_of_scope",
        }
    }

    /// The app password presented, by name, when one was recognised.
    pub fn app_password(&self) -> Option<&str> {
        match self {
            Refusal::AppPasswordRevoked(name)
            | Refusal::AppPasswordExpired(name)
            | Refusal::AppPasswordOutOfScope(name) => Some(name),
            _ => None,
        }
    }
}

fn refused<T>(why: Refusal) -> Result<T, AuthError> {
    Err(AuthError::Refused(why))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Checks credentials against the store. Every password check costs one argon2id
/// verification, whether or not the account exists, so that unknown users and wrong
/// passwords take the same time.
pub struct Authenticator {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    /// A hash of a random password, verified when the account does not exist.
    decoy: Arc<str>,
    /// What the salts of SCRAM's decoy keys derive from: created once and kept in the store, so
    /// that a name's decoy salt is the same after a restart (and on every node), like a real
    /// account's salt. Read at the first SCRAM exchange.
    decoy_secret: OnceCell<[u8; 32]>,
    scram_iterations: u32,
    /// Where argon2 runs: one thread per CPU.
    pool: HashPool,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher, scram_iterations: u32) -> Result<Self, String> {
        let decoy = hasher.hash(generate_password().as_bytes())?;
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Authenticator {
            store,
            hasher: Arc::new(hasher),
            decoy: decoy.into(),
            decoy_secret: OnceCell::new(),
            scram_iterations,
            pool: HashPool::new(cpus),
        })
    }

    /// A password and its SCRAM keys, derived off the async threads.
    pub async fn secrets(&self, password: &str) -> Result<PasswordSecrets, String> {
        let hasher = self.hasher.clone();
        let (password, iterations) = (Zeroizing::new(password.to_string()), self.scram_iterations);
        // The operator setting a password: never refused for a storm of logins.
        let derive = move || derive_secrets(&hasher, &password, iterations);
        self.pool.run(Lane::Priority, derive).await.ok_or("the hashing pool is gone")?
    }

    /// Checks a password (PLAIN, LOGIN) for a protocol (`scope`: a `SCOPE_*` bit). App passwords
    /// are tried first (a digest lookup); then the account's password, which does not open
    /// mail protocols once TOTP is on. SASL semantics (RFC 4422): `authzid` may be empty or
    /// equal to `username`; acting as another user is not supported. `lane`: see [`Lane`]
    /// (the guard's call: whether the source is known to the account); a full ordinary lane
    /// answers [`AuthError::Busy`] without checking anything.
    pub async fn verify(
        &self,
        authzid: &str,
        username: &str,
        password: Zeroizing<Vec<u8>>,
        scope: u8,
        lane: Lane,
    ) -> Result<Principal, AuthError> {
        if !authzid_allowed(authzid, username) {
            return refused(Refusal::AuthzidNotAllowed);
        }
        if app_passwords::looks_like_app_password(&password) {
            let digest = secret_digest(&password);
            if let Some(app) =
                self.store.find_app_password(username, &digest).await.map_err(|_| AuthError::Unavailable)?
            {
                match app.state(now()) {
                    AppPasswordState::Revoked => return refused(Refusal::AppPasswordRevoked(app.name)),
                    AppPasswordState::Expired => return refused(Refusal::AppPasswordExpired(app.name)),
                    AppPasswordState::Active => {}
                }
                if app.scopes & scope == 0 {
                    return refused(Refusal::AppPasswordOutOfScope(app.name));
                }
                let account = self.store.credentials(username).await.map_err(|_| AuthError::Unavailable)?;
                let Some(account) = account.filter(|c| c.account == app.account) else {
                    return refused(Refusal::UnknownAccount);
                };
                return Ok(Principal {
                    account: app.account,
                    address: account.address,
                    credential: Credential::AppPassword { id: app.id, name: app.name },
                    generation: account.generation,
                });
            }
        }
        let (principal, totp) = self.check_password(username, password, lane).await?;
        if totp {
            return refused(Refusal::SecondFactorRequired);
        }
        Ok(principal)
    }

    /// The account password (argon2, or the decoy for unknown users): the principal and
    /// whether the account has TOTP on.
    async fn check_password(
        &self,
        username: &str,
        password: Zeroizing<Vec<u8>>,
        lane: Lane,
    ) -> Result<(Principal, bool), AuthError> {
        let credentials = self.store.credentials(username).await.map_err(|_| AuthError::Unavailable)?;
        let (hash, found) = match &credentials {
            Some(c) => (Arc::<str>::from(c.password_hash.as_str()), Some(c)),
            None => (self.decoy.clone(), None),
        };
        let hasher = self.hasher.clone();
        let matches = self.pool.run(lane, move || hasher.verify(&password, &hash)).await.ok_or(AuthError::Busy)?;
        let Some(c) = found else { return refused(Refusal::UnknownAccount) };
        if !matches {
            return refused(Refusal::WrongPassword);
        }
        Ok((
            Principal {
                account: c.account,
                address: c.address.clone(),
                credential: Credential::Password,
                generation: c.generation,
            },
            c.totp_enabled,
        ))
    }

    /// SCRAM keys for `username`: the account's, or keys that no proof will match, looking the
    /// same from outside, with the account's credentials generation when there is one.
    ///
    /// No proof matches for an unknown user, an account whose keys predate SCRAM, or an
    /// account with TOTP on: SCRAM proves the password, which does not open mail protocols
    /// for such an account, so it is refused before anything is proven (the server's
    /// signature would otherwise confirm a guessed password). What the client sees is what a
    /// wrong password gets: the account's own salt and iteration count where it has them (they
    /// do not change when TOTP is turned on), a salt derived from the name otherwise. If the
    /// store fails, decoy keys too: the exchange then ends in [`Authenticator::scram_refusal`],
    /// which reports the store as unavailable.
    pub async fn scram_keys(&self, username: &str) -> ScramLookup {
        // A name no account can have is not looked up; the exchange ends in the login
        // pipeline's refusal.
        if username.len() > portcullis_config::MAX_LOGIN_NAME {
            return ScramLookup { keys: self.decoy_keys(username).await, generation: None };
        }
        let found = self.store.scram_keys(username).await.ok().flatten();
        let generation = found.as_ref().map(|c| c.generation);
        let keys = match found {
            Some(ScramCredentials { scram: Some(scram), totp_enabled, .. }) => match real_keys(&scram) {
                Some(keys) if !totp_enabled => keys,
                // The account's salt and iterations, keys that match nothing.
                _ => ScramKeys { salt: scram.salt, iterations: scram.iterations, ..self.decoy_keys(username).await },
            },
            _ => self.decoy_keys(username).await,
        };
        ScramLookup { keys, generation }
    }

    /// Keys no password matches, with a salt that depends only on the name (in its one
    /// spelling, so that `ALICE@` and `alice@` of an unknown account get one salt, as they
    /// would for a real one) and on the store's decoy secret.
    async fn decoy_keys(&self, username: &str) -> ScramKeys {
        let name = portcullis_store::normalize_address(username).unwrap_or_else(|| username.to_string());
        let secret = self
            .decoy_secret
            .get_or_try_init(|| async {
                let fresh: [u8; 32] = rand::random();
                let stored = self.store.server_secret(DECOY_SECRET, &fresh).await?;
                stored.try_into().map_err(|_| portcullis_store::StoreError::Backend("bad decoy secret".into()))
            })
            .await;
        match secret {
            Ok(secret) => ScramKeys::decoy(&name, secret, self.scram_iterations),
            // The store failed: this exchange ends as unavailable anyway (see above).
            Err(_) => ScramKeys::decoy(&name, &rand::random::<[u8; 32]>(), self.scram_iterations),
        }
    }

    /// The account a SCRAM proof opened. SCRAM proves the account password, which no longer
    /// opens mail protocols once TOTP is on.
    pub async fn scram_principal(&self, authzid: &str, username: &str) -> Result<Principal, AuthError> {
        if !authzid_allowed(authzid, username) {
            return refused(Refusal::AuthzidNotAllowed);
        }
        let Some(c) = self.store.credentials(username).await.map_err(|_| AuthError::Unavailable)? else {
            return refused(Refusal::UnknownAccount);
        };
        if c.totp_enabled {
            return refused(Refusal::SecondFactorRequired);
        }
        Ok(Principal {
            account: c.account,
            address: c.address,
            credential: Credential::Scram,
            generation: c.generation,
        })
    }

    /// Why a SCRAM proof failed: an unknown account (its keys were a decoy), an account with
    /// TOTP on (its keys were a decoy too: see [`Authenticator::scram_keys`]), a wrong
    /// password, or a channel binding from another connection.
    pub async fn scram_refusal(&self, username: &str, binding_mismatch: bool) -> AuthError {
        match self.store.credentials(username).await {
            Err(_) => AuthError::Unavailable,
            Ok(None) => AuthError::Refused(Refusal::UnknownAccount),
            Ok(Some(c)) if c.totp_enabled => AuthError::Refused(Refusal::SecondFactorRequired),
            Ok(Some(_)) if binding_mismatch => AuthError::Refused(Refusal::ChannelBindingMismatch),
            Ok(Some(_)) => AuthError::Refused(Refusal::WrongPassword),
        }
    }

    /// The account password plus a second factor: a TOTP code (each accepted once) or a
    /// recovery code (each usable once). For the admin API and `account totp check`.
    ///
    /// Wrong codes given with the right password are counted in the store: at
    /// [`TOTP_LOCK_AT`] the account's TOTP locks, and then no TOTP code is even checked
    /// (there is no oracle left to guess against) until a recovery code is used, which also
    /// unlocks it, or the operator unlocks it. A right code clears the count.
    pub async fn verify_with_code(
        &self,
        username: &str,
        password: Zeroizing<Vec<u8>>,
        code: &str,
        lane: Lane,
    ) -> Result<Principal, AuthError> {
        let unavailable = |_| AuthError::Unavailable;
        let (principal, _) = self.check_password(username, password, lane).await?;
        let totp = self.store.totp(&principal.address).await.map_err(unavailable)?;
        let Some(totp) = totp.filter(|t| t.enabled) else { return refused(Refusal::WrongCode) };
        if !totp.locked {
            if let Some(step) = totp_step(&totp.secret, &principal.address, code, now() as u64) {
                // A step already used is a replay without asking the store to write; the store
                // re-checks the same rule atomically, for a code given to two nodes at once.
                if !totp_step_fresh(totp.last_step, step)
                    || !self.store.use_totp_step(totp.account, step).await.map_err(unavailable)?
                {
                    return refused(Refusal::ReplayedCode);
                }
                if totp.failures > 0 {
                    self.store.totp_unlock(totp.account).await.map_err(unavailable)?;
                }
                return Ok(principal);
            }
        }
        if self.store.use_recovery_code(totp.account, &secret_digest(code.as_bytes())).await.map_err(unavailable)? {
            self.store.totp_unlock(totp.account).await.map_err(unavailable)?;
            return Ok(principal);
        }
        if totp.locked {
            return refused(Refusal::TotpLocked);
        }
        match self.store.totp_failed(totp.account, TOTP_LOCK_AT).await.map_err(unavailable)? {
            true => refused(Refusal::WrongCodeLocks),
            false => refused(Refusal::WrongCode),
        }
    }
}

/// What [`Authenticator::scram_keys`] found: the keys to run the exchange with, and the
/// account's credentials generation if there is an account.
pub struct ScramLookup {
    pub keys: ScramKeys,
    pub generation: Option<i64>,
}

/// The stored keys in the form SCRAM uses; `None` if they are damaged.
fn real_keys(scram: &StoredScram) -> Option<ScramKeys> {
    Some(ScramKeys {
        salt: scram.salt.clone(),
        iterations: scram.iterations,
        stored_key: scram.stored_key.clone().try_into().ok()?,
        server_key: scram.server_key.clone().try_into().ok()?,
    })
}

fn authzid_allowed(authzid: &str, username: &str) -> bool {
    authzid.is_empty() || portcullis_store::normalize_address(authzid) == portcullis_store::normalize_address(username)
}

/// argon2id hash and SCRAM keys for a password (blocking).
pub fn derive_secrets(
    hasher: &PasswordHasher,
    password: &str,
    scram_iterations: u32,
) -> Result<PasswordSecrets, String> {
    let hash = hasher.hash(password.as_bytes())?;
    let keys = ScramKeys::derive(password, scram_iterations)
        .map_err(|_| "the password cannot be used with SCRAM (SASLprep refused it)")?;
    Ok(PasswordSecrets {
        hash,
        scram: Some(StoredScram {
            salt: keys.salt,
            iterations: keys.iterations,
            stored_key: keys.stored_key.to_vec(),
            server_key: keys.server_key.to_vec(),
        }),
    })
}
