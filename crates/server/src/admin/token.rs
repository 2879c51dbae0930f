//! Who may use the admin listener: whoever presents the admin bearer token (from the config,
//! or from a token file generated at the first start, mode 0600), compared in constant time;
//! or a session token minted by an account sign-in (see [`AccountSignIn`]), which lasts only
//! as long as the credentials that signed in.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use portcullis_config::{AdminToken, MIN_TOKEN_LENGTH};
use portcullis_store::AccountId;
use subtle::ConstantTimeEq;

/// How long a session minted by an account sign-in lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest goes first).
const MAX_SESSIONS: usize = 1000;

/// Who signed in: the account and its credentials generation then. The session ends when the
/// account's generation moves on (a new password, TOTP enrolled again) or the account goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn {
    pub account: AccountId,
    pub generation: i64,
}

/// Signing in with an administrator account instead of the admin token: `POST /api/v1/signin`
/// trades `{account, password, totp}` for a session token that the API accepts like the admin
/// token. Without one (no `admin.accounts`) that endpoint answers 501.
#[async_trait::async_trait]
pub trait AccountSignIn: Send + Sync {
    async fn verify(&self, account: &str, password: &str, totp: &str, peer: SocketAddr) -> Option<SignedIn>;
}

/// The sign-in of the accounts in `admin.accounts`: password plus TOTP or recovery code,
/// through the guard like any login (failures delayed, counted, banned).
pub struct TotpSignIn(pub Arc<crate::state::Shared>);

#[async_trait::async_trait]
impl AccountSignIn for TotpSignIn {
    async fn verify(&self, account: &str, password: &str, totp: &str, peer: SocketAddr) -> Option<SignedIn> {
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let principal = crate::login::admin_sign_in(&self.0, peer, account, password, totp).await.ok()?;
        Some(SignedIn { account: principal.account, generation: principal.generation })
    }
}

/// Who a presented bearer token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token itself.
    Operator,
    /// A session minted by an account sign-in.
    Account(SignedIn),
}

struct Session {
    expires: Instant,
    signed_in: SignedIn,
}

pub struct AdminAuth {
    token: String,
    sessions: Mutex<HashMap<String, Session>>,
    account_sign_in: Option<Arc<dyn AccountSignIn>>,
}

/// Where the token came from, for the `admin_token` event.
pub struct TokenSource {
    pub path: PathBuf,
    pub created: bool,
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Reads the token file, creating it (random, mode 0600) if it does not exist.
fn token_file(path: &Path) -> Result<(String, bool), String> {
    let key = "admin.token_file";
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{key}: {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ));
            }
            let token = text.trim().to_string();
            if token.len() < MIN_TOKEN_LENGTH || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{key}: {} must hold one token of at least {MIN_TOKEN_LENGTH} printable characters; delete it to have a new one generated",
                    path.display()
                ));
            }
            Ok((token, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("{key}: cannot create {}: {e}", dir.display()))?;
            }
            let token = random_token();
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{key}: cannot create {}: {e}", path.display()))?;
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| format!("{key}: cannot write {}: {e}", path.display()))?;
            Ok((token, true))
        }
        Err(e) => Err(format!("{key}: cannot read {}: {e}", path.display())),
    }
}

/// The token as the CLI reads it (no generation: only the server creates the file).
pub fn read_token(config: &AdminToken) -> Result<String, String> {
    match config {
        AdminToken::Inline(token) => Ok(token.clone()),
        AdminToken::File(path) => std::fs::read_to_string(path).map(|t| t.trim().to_string()).map_err(|e| {
            format!(
                "cannot read the admin token {}: {e}; run this as the server's user (or root), on the server's machine",
                path.display()
            )
        }),
    }
}

impl AdminAuth {
    /// The configured token, generating the token file if needed.
    pub fn load(config: &AdminToken) -> Result<(AdminAuth, Option<TokenSource>), String> {
        let (token, source) = match config {
            AdminToken::Inline(token) => (token.clone(), None),
            AdminToken::File(path) => {
                let (token, created) = token_file(path)?;
                (token, Some(TokenSource { path: path.clone(), created }))
            }
        };
        Ok((AdminAuth::new(token), source))
    }

    pub fn new(token: String) -> AdminAuth {
        AdminAuth { token, sessions: Mutex::default(), account_sign_in: None }
    }

    pub fn with_account_sign_in(mut self, sign_in: Arc<dyn AccountSignIn>) -> AdminAuth {
        self.account_sign_in = Some(sign_in);
        self
    }

    pub fn account_sign_in(&self) -> Option<Arc<dyn AccountSignIn>> {
        self.account_sign_in.clone()
    }

    /// Whom `presented` stands for: the admin token, or a live session token; constant time in
    /// the token's content.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        let operator = presented.as_bytes().ct_eq(self.token.as_bytes());
        let mut account = None;
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            for (token, session) in sessions.iter() {
                if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                    account = Some(session.signed_in);
                }
            }
        }
        match (bool::from(operator), account) {
            (true, _) => Some(Caller::Operator),
            (false, Some(signed_in)) => Some(Caller::Account(signed_in)),
            (false, None) => None,
        }
    }

    /// A new session token for an account that signed in; with its lifetime.
    pub fn mint_session(&self, signed_in: SignedIn) -> (String, Duration) {
        let token = random_token();
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= MAX_SESSIONS {
                if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(t, _)| t.clone()) {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(token.clone(), Session { expires: Instant::now() + SESSION_LIFETIME, signed_in });
        }
        (token, SESSION_LIFETIME)
    }

    /// Ends every session of `account` (its credentials changed, or it is gone).
    pub fn end_sessions(&self, account: AccountId) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| s.signed_in.account != account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_generated_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("portcullis-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/admin.token");
        let (first, source) = AdminAuth::load(&AdminToken::File(path.clone())).unwrap();
        assert!(source.unwrap().created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(token.len(), 43);
        assert_eq!(first.caller(&token), Some(Caller::Operator));
        assert_eq!(first.caller(&token[..42]), None);
        assert_eq!(first.caller(""), None);
        let (again, source) = AdminAuth::load(&AdminToken::File(path.clone())).unwrap();
        assert!(!source.unwrap().created);
        assert_eq!(again.caller(&token), Some(Caller::Operator));
        assert_eq!(read_token(&AdminToken::File(path.clone())).unwrap(), token);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AdminAuth::load(&AdminToken::File(path.clone())).err().unwrap();
        assert!(e.contains("admin.token_file") && e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn minted_sessions_are_accepted_until_their_account_ends_them() {
        let auth = AdminAuth::new("a-configured-token-of-some-length".into());
        let admin = SignedIn { account: 3, generation: 1 };
        let other = SignedIn { account: 4, generation: 7 };
        let (session, lifetime) = auth.mint_session(admin);
        let (other_session, _) = auth.mint_session(other);
        assert!(lifetime > Duration::from_secs(3600));
        assert_eq!(auth.caller(&session), Some(Caller::Account(admin)));
        assert_eq!(auth.caller(&other_session), Some(Caller::Account(other)));
        assert_eq!(auth.caller("a-configured-token-of-some-length"), Some(Caller::Operator));
        assert_eq!(auth.caller("a-configured-token-of-some-lengtH"), None);
        auth.end_sessions(3);
        assert_eq!(auth.caller(&session), None);
        assert_eq!(auth.caller(&other_session), Some(Caller::Account(other)));
    }
}
