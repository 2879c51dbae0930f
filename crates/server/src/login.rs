//! The login pipeline, the same for every protocol, mechanism and the admin sign-in: a name
//! over 255 bytes is refused before anything else; the guard counts the attempt and says
//! whether (and in which lane) its credentials may be checked; the authenticator checks them;
//! the guard counts the outcome (perhaps banning the source); and the outcome is reported as
//! one event (never the secret, and never more than 255 bytes of the name), with an alert when
//! the guard finds it worth one. Failures are counted by the store too, for every node at once
//! (issue 17): the guard decides from the store's count of the source's failures, so a brute
//! force spread over the nodes by a balancer is banned at `guard.ban_after_failures` in all.
//! So are the attempts from addresses the account does not know (per source and per account:
//! `guard.ban_after_attempts`, `guard.unknown_source_attempts` in all); an owner's attempts are
//! not counted, and cost no store write.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use portcullis_auth::{AuthError, Lane, Principal, Refusal};
use portcullis_config::MAX_LOGIN_NAME;
use portcullis_events::{AlertKind, Event, Listener, Protocol, Severity};
use portcullis_guard::{account_key, Attempts, Ban, CheckLane, Entry, Now, Source, BUSY_DELAY};
use portcullis_sasl::{Attempt, ScramKeys, ScramProof};
use portcullis_store::{normalize_address, SCOPE_IMAP, SCOPE_POP3, SCOPE_SMTP};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::bans;
use crate::sessions::{Abandoned, ScramExchange, Who};
use crate::state::Shared;
use crate::unix_time;

/// The `reason` logged when a login is refused unchecked because too many password checks
/// from unknown addresses are waiting (see `portcullis_auth::Lane`).
const BUSY: &str = "server_busy";
/// ... because the account has had as many attempts from unknown addresses as the guard allows
/// in its window (`guard.unknown_source_attempts`).
const ACCOUNT_LIMITED: &str = "account_limited";
/// ... because this very attempt got its source banned (`guard.ban_after_attempts`).
const SOURCE_BANNED: &str = "source_banned";

/// The `reason` and `mechanism` logged for a SCRAM exchange that ended without a proof.
const ABANDONED: &str = "abandoned";
const ABANDONED_MECHANISM: &str = "SCRAM";

/// The admin sign-in's path, as its failure events name it.
const SIGN_IN_PATH: &str = "/api/v1/signin";

/// How much of an over-long name an event keeps.
const LOGGED_PREFIX: usize = 64;

/// Which app-password scope a listener's protocol is.
fn scope(listener: Listener) -> u8 {
    match listener.spec().protocol {
        Protocol::Smtp => SCOPE_SMTP,
        Protocol::Pop3 => SCOPE_POP3,
        Protocol::Imap => SCOPE_IMAP,
        // No app password opens the admin listener.
        Protocol::Http => 0,
    }
}

/// A login name as events carry it: whole up to the bound, else its start and its length.
fn loggable(name: &str) -> String {
    if name.len() <= MAX_LOGIN_NAME {
        return name.to_string();
    }
    let mut end = LOGGED_PREFIX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &name[..end], name.len())
}

/// A login attempt passing through the guard:
/// 1. the guard counts it (unless the address is the account's) and may refuse it unchecked;
/// 2. a failure makes the client wait longer each time, and may ban its source;
/// 3. a success remembers the address as the account's, so its owner is never locked out.
struct Gate {
    ip: IpAddr,
    /// At most [`MAX_LOGIN_NAME`] bytes; empty for a name over it.
    username: String,
    source: String,
    known: bool,
    /// The minute bucket the store counted this attempt in (`None`: not counted there), so a
    /// success takes it back where it was counted.
    counted_in: Option<i64>,
    /// Where the password check waits (the guard's choice: see `portcullis_guard::CheckLane`).
    lane: Lane,
}

/// Why a login was refused before its credentials were checked.
enum Unchecked {
    NameTooLong,
    /// A temporary refusal, with the reason to log.
    Later(&'static str),
}

impl Gate {
    /// Counts the attempt with the guard (a name over the bound as no account's, without
    /// looking it up), which may refuse it unchecked.
    async fn enter(shared: &Shared, ip: IpAddr, username: &str) -> (Gate, Result<(), Unchecked>) {
        let source = Source::of(ip).network().to_string();
        let too_long = username.len() > MAX_LOGIN_NAME;
        let username = if too_long { String::new() } else { username.to_string() };
        let known = if too_long {
            false
        } else {
            let since = unix_time::seconds(SystemTime::now() - shared.config.guard.known_source_memory);
            shared.store.login_known(&username, &source, since).await.unwrap_or(false)
        };
        let now = Now::current();
        let (counted, counted_in) = if shared.guard.counts_attempt(ip, known) {
            let buckets = shared.guard.buckets(now);
            let counted = count_attempt(shared, &source, &username, buckets.minute, 1, buckets.failures_since).await;
            (counted, counted.map(|_| buckets.minute))
        } else {
            (None, None)
        };
        let entry = shared.guard.login_attempt(ip, &username, known, counted, now);
        let mut gate = Gate { ip, username, source, known, counted_in, lane: Lane::Ordinary };
        let verdict = match entry {
            _ if too_long => {
                if let Entry::Banned(bans) = &entry {
                    record(shared, bans).await;
                }
                Err(Unchecked::NameTooLong)
            }
            Entry::Check(CheckLane::Priority) => {
                gate.lane = Lane::Priority;
                Ok(())
            }
            Entry::Check(CheckLane::Ordinary) => Ok(()),
            Entry::AccountLimited => Err(Unchecked::Later(ACCOUNT_LIMITED)),
            Entry::Banned(bans) => {
                record(shared, &bans).await;
                forget_failures(shared, &gate.source).await;
                Err(Unchecked::Later(SOURCE_BANNED))
            }
        };
        (gate, verdict)
    }

    /// Alerts on a login after an attack or from a new address; remembers the address.
    async fn succeeded(self, shared: &Shared, who: Option<Who>, principal: &Principal) {
        // The failures every node counted against the account since its last success.
        let account = account_key(&self.username);
        let counted = match shared.store.take_account_failures(&account).await {
            Ok(failures) => Some(failures),
            Err(e) => {
                let what = format!("reading an account's failed logins failed: {e}");
                shared.events.emit(Event::InternalError { conn: who.map(|w| w.conn), what });
                None
            }
        };
        let now = Now::current();
        if let Some(minute) = self.counted_in {
            // The attempt no longer counts, on any node (as the guard takes back its own).
            let since = shared.guard.buckets(now).failures_since;
            count_attempt(shared, &self.source, &self.username, minute, -1, since).await;
        }
        let success = shared.guard.auth_succeeded(self.ip, &self.username, self.known, counted, now);
        if success.after_attack {
            let message = format!(
                "{} logged in from {} after {} failed attempts",
                principal.address, self.ip, success.failures_before
            );
            let failures = success.failures_before as f64;
            let (kind, severity) = (AlertKind::LoginAfterFailures, Severity::Warning);
            shared.alert(kind, severity, who, Some(&principal.address), failures, message);
        }
        if !self.known {
            let message = format!(
                "{} logged in from {}, an address not seen for it in {}",
                principal.address,
                self.ip,
                humantime::format_duration(shared.config.guard.known_source_memory)
            );
            shared.alert(AlertKind::NewLoginAddress, Severity::Info, who, Some(&principal.address), 1.0, message);
        }
        if let Err(e) = shared.store.record_login(principal.account, &self.source, unix_time::now_seconds()).await {
            let what = format!("recording a login failed: {e}");
            shared.events.emit(Event::InternalError { conn: who.map(|w| w.conn), what });
        }
    }

    /// Counts the failure (perhaps banning the source) and makes the client wait.
    async fn failed(self, shared: &Shared) {
        let delay = count_failure(shared, self.ip, &self.source, &self.username, self.known).await;
        tokio::time::sleep(delay).await;
    }

    /// A login refused before its check: a name over the bound fails like a wrong password
    /// (counted, delayed); a temporary refusal waits [`BUSY_DELAY`] (the account's limit) or
    /// not at all (the source is banned: its connection is being cut).
    async fn unchecked(self, shared: &Shared, why: &Unchecked) -> AuthError {
        match why {
            Unchecked::NameTooLong => {
                self.failed(shared).await;
                AuthError::Refused(Refusal::NameTooLong)
            }
            Unchecked::Later(reason) => {
                if *reason != SOURCE_BANNED {
                    tokio::time::sleep(BUSY_DELAY).await;
                }
                AuthError::Busy
            }
        }
    }
}

/// Counts a failed login from `ip` (whose source is `source`) for `username`, in the store for
/// every node and then by the guard, which decides from the store's count; records the bans it
/// decides on. How long the client is to wait.
async fn count_failure(shared: &Shared, ip: IpAddr, source: &str, username: &str, known: bool) -> Duration {
    let now = Now::current();
    let buckets = shared.guard.buckets(now);
    let account = account_key(username);
    let account = (!account.is_empty()).then_some(account.as_str());
    let counted = match shared.store.add_auth_failure(source, account, buckets.minute, buckets.failures_since).await {
        Ok(count) => Some(count),
        Err(e) => {
            // The guard's own count decides alone (docs/architecture.md §6.5).
            let what = format!("counting a failed login failed: {e}");
            shared.events.emit(Event::InternalError { conn: None, what });
            None
        }
    };
    let failure = shared.guard.auth_failed(ip, username, known, counted, now);
    if !failure.bans.is_empty() {
        record(shared, &failure.bans).await;
        forget_failures(shared, source).await;
    }
    failure.delay
}

/// Counts `attempts` (1, or -1 to take one back) from `source` on `username`'s account in the
/// store's bucket `minute`, for every node; the totals from `since` on, or `None` if the store
/// could not count (the guard's own counts then decide alone: docs/architecture.md §6.5).
async fn count_attempt(
    shared: &Shared,
    source: &str,
    username: &str,
    minute: i64,
    attempts: i64,
    since: i64,
) -> Option<Attempts> {
    let account = account_key(username);
    let account = (!account.is_empty()).then_some(account.as_str());
    match shared.store.add_auth_attempt(source, account, minute, attempts, since).await {
        Ok(counts) => Some(Attempts { source: counts.source, account: counts.account }),
        Err(e) => {
            let what = format!("counting a login attempt failed: {e}");
            shared.events.emit(Event::InternalError { conn: None, what });
            None
        }
    }
}

/// A source was banned: its failures and attempts start afresh, on every node, as in the
/// guard.
async fn forget_failures(shared: &Shared, source: &str) {
    if let Err(e) = shared.store.forget_auth_failures(source).await {
        shared.events.emit(Event::InternalError { conn: None, what: format!("forgetting failed logins failed: {e}") });
    }
}

/// Bans the guard just put in force: into the store (they must survive a restart) and the log.
async fn record(shared: &Shared, bans: &[Ban]) {
    for ban in bans {
        bans::record(shared, ban).await;
    }
}

/// The reason an unchecked refusal is logged with.
fn reason(why: &Unchecked) -> &'static str {
    match why {
        Unchecked::NameTooLong => Refusal::NameTooLong.reason(),
        Unchecked::Later(reason) => reason,
    }
}

/// The SCRAM keys for a mail client's exchange (see `Authenticator::scram_keys`). The
/// exchange is remembered with the session until its proof comes to [`authenticate`]; if it
/// never does, it counts as a failed login (see [`count_abandoned`]).
pub async fn scram_keys(shared: &Shared, who: Who, username: &str) -> ScramKeys {
    let lookup = shared.auth.scram_keys(username).await;
    let exchange = ScramExchange { username: username.to_string(), generation: lookup.generation };
    shared.sessions.scram_started(who, exchange);
    lookup.keys
}

/// Checks a mail client's login attempt through the guard and reports the outcome as one
/// event. The session is registered with the credentials it logged in with, so that revoking
/// its app password, or a change to its account, closes it.
pub async fn authenticate(
    shared: &Shared,
    who: Who,
    mechanism: &'static str,
    attempt: Attempt,
) -> Result<Principal, AuthError> {
    let exchange = shared.sessions.scram_finished(who, matches!(attempt, Attempt::Scram { .. }));
    let Who { listener, peer, conn } = who;
    let (gate, verdict) = Gate::enter(shared, peer.ip(), attempt.username()).await;
    if let Err(why) = verdict {
        let username = loggable(attempt.username());
        let reason = reason(&why);
        shared.events.emit(Event::AuthFailed { conn, listener, peer, username, mechanism, reason, app_password: None });
        return Err(gate.unchecked(shared, &why).await);
    }
    let username = gate.username.clone();
    let result = match attempt {
        Attempt::Password(c) => {
            shared.auth.verify(&c.authzid, &c.username, c.password, scope(who.listener), gate.lane).await
        }
        Attempt::Scram { authzid, username, proof: ScramProof::Valid } => {
            shared.auth.scram_principal(&authzid, &username).await.map(|mut principal| {
                // The keys proven were read at the lookup: if the password changed since, the
                // session belongs to the older generation (and is closed for it).
                if let Some(generation) = exchange.and_then(|e| e.generation) {
                    principal.generation = principal.generation.min(generation);
                }
                principal
            })
        }
        Attempt::Scram { username, proof, .. } => {
            Err(shared.auth.scram_refusal(&username, proof == ScramProof::BindingMismatch).await)
        }
    };
    match &result {
        Ok(principal) => {
            let app_password = principal.credential.app_password();
            shared.events.emit(Event::AuthSucceeded {
                conn,
                listener,
                peer,
                account: principal.address.clone(),
                mechanism,
                credential: principal.credential.kind(),
                app_password: app_password.map(|(_, name)| name.to_string()),
            });
            shared.sessions.logged_in(conn, principal);
            if let Some((id, _)) = app_password {
                if let Err(e) =
                    shared.store.app_password_used(id, unix_time::now_seconds(), &peer.ip().to_string()).await
                {
                    let what = format!("recording an app password's use failed: {e}");
                    shared.events.emit(Event::InternalError { conn: Some(conn), what });
                }
            }
            gate.succeeded(shared, Some(who), principal).await;
        }
        Err(AuthError::Refused(refusal)) => {
            shared.events.emit(Event::AuthFailed {
                conn,
                listener,
                peer,
                username: username.clone(),
                mechanism,
                reason: refusal.reason(),
                app_password: refusal.app_password().map(str::to_string),
            });
            if *refusal == Refusal::ChannelBindingMismatch {
                let message = format!(
                    "{username}'s password was proven from {} over another TLS connection: a man in the middle \
                     holding a certificate the client accepted is likely; change the password",
                    peer.ip()
                );
                let (kind, severity) = (AlertKind::ChannelBindingMismatch, Severity::Critical);
                shared.alert(kind, severity, Some(who), Some(&username), 1.0, message);
            }
            gate.failed(shared).await;
        }
        Err(AuthError::Unavailable) => {
            shared
                .events
                .emit(Event::InternalError { conn: Some(conn), what: "authentication backend unavailable".into() });
        }
        Err(AuthError::Busy) => {
            shared.events.emit(Event::AuthFailed {
                conn,
                listener,
                peer,
                username,
                mechanism,
                reason: BUSY,
                app_password: None,
            });
            tokio::time::sleep(BUSY_DELAY).await;
        }
    }
    result
}

/// The admin sign-in: an account listed in `admin.accounts`, its password and a TOTP code (or
/// a recovery code), through the guard like any login. A refusal is reported as an
/// `admin_auth_failed` event with its reason.
pub async fn admin_sign_in(
    shared: &Shared,
    peer: SocketAddr,
    account: &str,
    password: Zeroizing<Vec<u8>>,
    code: &str,
) -> Result<Principal, AuthError> {
    let refused = |reason| Event::AdminAuthFailed {
        peer,
        path: SIGN_IN_PATH.into(),
        account: Some(loggable(account)),
        reason: Some(reason),
    };
    let (gate, verdict) = Gate::enter(shared, peer.ip(), account).await;
    if let Err(why) = verdict {
        shared.events.emit(refused(reason(&why)));
        return Err(gate.unchecked(shared, &why).await);
    }
    let administrator = normalize_address(account).is_some_and(|a| shared.config.admin.accounts.contains(&a));
    let result = if administrator {
        shared.auth.verify_with_code(account, password, code, gate.lane).await
    } else {
        // The same work (an argon2 check against the decoy), then no: the answer and its
        // timing do not tell who is an administrator.
        let _ = shared.auth.verify_with_code("", password, code, gate.lane).await;
        Err(AuthError::Refused(Refusal::NotAdministrator))
    };
    match &result {
        Ok(principal) => gate.succeeded(shared, None, principal).await,
        Err(AuthError::Refused(refusal)) => {
            shared.events.emit(refused(refusal.reason()));
            if *refusal == Refusal::WrongCodeLocks {
                let message = format!(
                    "{account}: {} wrong TOTP codes given with the right password, the last from {}; its TOTP is \
                     locked until a recovery code is used or `portcullis account totp unlock {account}`. Someone \
                     knows its password: change it",
                    portcullis_auth::TOTP_LOCK_AT,
                    peer.ip()
                );
                let (kind, severity) = (AlertKind::TotpLocked, Severity::Critical);
                shared.alert(kind, severity, None, Some(account), portcullis_auth::TOTP_LOCK_AT as f64, message);
            }
            gate.failed(shared).await;
        }
        Err(AuthError::Unavailable) => {
            shared.events.emit(Event::InternalError { conn: None, what: "authentication backend unavailable".into() });
        }
        Err(AuthError::Busy) => {
            shared.events.emit(refused(BUSY));
            tokio::time::sleep(BUSY_DELAY).await;
        }
    }
    result
}

/// Counts SCRAM exchanges that ended without a proof as failed logins, as they come, until
/// the server stops. Such an exchange showed the client a salt (and perhaps, when cancelled
/// after the server's signature, that a password was right) without leaving a trace: now it
/// leaves an `auth_failed` event (reason "abandoned", mechanism "SCRAM": the family, since
/// the lookup does not say whether -PLUS was asked for) and counts against its source and
/// account like any failure. No delay: the client is gone or has moved on.
pub async fn count_abandoned(shared: &Shared, mut abandoned: mpsc::UnboundedReceiver<Abandoned>) {
    while let Some(Abandoned { who, username }) = abandoned.recv().await {
        let ip = who.peer.ip();
        // Whether the account knows the source, as `Gate::enter` asks: its owner is never banned.
        let source = Source::of(ip).network().to_string();
        let since = unix_time::seconds(SystemTime::now() - shared.config.guard.known_source_memory);
        let known = shared.store.login_known(&username, &source, since).await.unwrap_or(false);
        shared.events.emit(Event::AuthFailed {
            conn: who.conn,
            listener: who.listener,
            peer: who.peer,
            username: loggable(&username),
            mechanism: ABANDONED_MECHANISM,
            reason: ABANDONED,
            app_password: None,
        });
        count_failure(shared, ip, &source, &username, known).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_at_most_the_bound_of_a_name() {
        assert_eq!(loggable("alice@example.org"), "alice@example.org");
        let bound = "a".repeat(MAX_LOGIN_NAME);
        assert_eq!(loggable(&bound), bound);
        let long = "é".repeat(1 << 20);
        let logged = loggable(&long);
        assert!(logged.len() < 100, "{logged}");
        assert!(logged.ends_with("... (2097152 bytes)"), "{logged}");
    }
}
