//! Where the server acts on the guard's decisions: logins go through the guard (throttle,
//! delay, ban), bans are kept in the store and followed from it (so `portcullis ban` works
//! against a running server), sending limits are applied, and per-account alerts raised.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_auth::{AuthError, Lane, Principal, Refusal};
use portcullis_events::{AlertKind, BanOrigin, Event, Listener, Severity};
use portcullis_guard::{Ban, CheckLane, IpNet, Now, SendingLimit, Source, BUSY_DELAY};
use portcullis_sasl::{Attempt, ScramProof};
use portcullis_store::{normalize_address, StoredBan, SCOPE_IMAP, SCOPE_POP3, SCOPE_SMTP};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::conn::{Shared, Who};

/// The `reason` logged when a login is refused unchecked because too many password checks
/// from unknown addresses are waiting (see `portcullis_auth::Lane`).
const BUSY: &str = "server_busy";

/// How often the ban list is re-read from the store.
const BAN_SYNC_EVERY: Duration = Duration::from_secs(1);
/// Expired bans are kept this long as the offence history of their network.
const BAN_HISTORY: Duration = Duration::from_secs(30 * 86_400);

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

pub fn to_stored(ban: &Ban) -> StoredBan {
    StoredBan {
        network: ban.network.to_string(),
        until: ban.until.map(unix),
        reason: ban.reason.clone(),
        offence: ban.offence,
        manual: ban.manual,
        created: unix(SystemTime::now()),
    }
}

pub fn from_stored(ban: &StoredBan) -> Option<Ban> {
    Some(Ban {
        network: ban.network.parse::<IpNet>().ok()?,
        until: ban.until.map(from_unix),
        reason: ban.reason.clone(),
        offence: ban.offence,
        manual: ban.manual,
    })
}

pub fn alert(
    shared: &Shared,
    kind: AlertKind,
    severity: Severity,
    who: Option<Who>,
    account: Option<&str>,
    observed: f64,
    message: String,
) {
    shared.events.emit(Event::AlertRaised {
        kind,
        severity,
        listener: who.map(|w| w.listener),
        account: account.map(str::to_string),
        peer: who.map(|w| w.peer.ip()),
        observed,
        baseline: None,
        threshold: None,
        message,
    });
}

/// Which app-password scope a listener's protocol is.
fn scope(listener: Listener) -> u8 {
    match listener {
        Listener::Submissions | Listener::Submission => SCOPE_SMTP,
        Listener::Pop3s => SCOPE_POP3,
        Listener::Imaps => SCOPE_IMAP,
    }
}

/// A login attempt passing through the guard, the same way for every protocol, mechanism and
/// the admin sign-in:
/// 1. an address the account never logged in from waits while the account is under attack;
/// 2. a failure makes the client wait longer each time, and may ban its source;
/// 3. a success remembers the address as the account's, so its owner is never locked out.
struct Gate {
    ip: IpAddr,
    username: String,
    source: String,
    known: bool,
    /// Where the password check waits: ahead of everyone else for an address the account
    /// knows or a trusted network, so that a storm of guesses cannot starve the owner.
    lane: Lane,
}

impl Gate {
    /// Looks the source up and waits the throttle the guard imposes.
    async fn enter(shared: &Shared, ip: IpAddr, username: &str) -> Gate {
        let source = Source::of(ip).network().to_string();
        let since = unix(SystemTime::now() - shared.config.guard.known_source_memory);
        let known = shared.store.login_known(username, &source, since).await.unwrap_or(false);
        let throttle = shared.guard.auth_throttle(ip, username, known, Now::current());
        if !throttle.is_zero() {
            tokio::time::sleep(throttle).await;
        }
        let lane = match shared.guard.check_lane(ip, known) {
            CheckLane::Priority => Lane::Priority,
            CheckLane::Ordinary => Lane::Ordinary,
        };
        Gate { ip, username: username.to_string(), source, known, lane }
    }

    /// Alerts on a login after many failures or from a new address; remembers the address.
    async fn succeeded(self, shared: &Shared, who: Option<Who>, principal: &Principal) {
        let success = shared.guard.auth_succeeded(&self.username, Now::current());
        if success.after_attack {
            let message = format!(
                "{} logged in from {} after {} failed attempts",
                principal.address, self.ip, success.failures_before
            );
            let failures = success.failures_before as f64;
            let (kind, severity) = (AlertKind::LoginAfterFailures, Severity::Warning);
            alert(shared, kind, severity, who, Some(&principal.address), failures, message);
        }
        if !self.known {
            let message = format!(
                "{} logged in from {}, an address not seen for it in {}",
                principal.address,
                self.ip,
                humantime::format_duration(shared.config.guard.known_source_memory)
            );
            alert(shared, AlertKind::NewLoginAddress, Severity::Info, who, Some(&principal.address), 1.0, message);
        }
        if let Err(e) = shared.store.record_login(principal.account, &self.source, unix(SystemTime::now())).await {
            let what = format!("recording a login failed: {e}");
            shared.events.emit(Event::InternalError { conn: who.map(|w| w.conn), what });
        }
    }

    /// Counts the failure (perhaps banning the source) and makes the client wait.
    async fn failed(self, shared: &Shared) {
        let failure = shared.guard.auth_failed(self.ip, &self.username, self.known, Now::current());
        if let Some(ban) = failure.ban {
            record_ban(shared, &ban, BanOrigin::Auto).await;
        }
        tokio::time::sleep(failure.delay).await;
    }
}

/// Checks a mail client's login attempt through the guard and reports the outcome as one event
/// (never the secret). A session opened with an app password is closed (`close`) when the app
/// password is revoked.
pub async fn authenticate(
    shared: &Shared,
    who: Who,
    close: &CancellationToken,
    mechanism: &'static str,
    attempt: Attempt,
) -> Result<Principal, AuthError> {
    let username = attempt.username().to_string();
    let gate = Gate::enter(shared, who.peer.ip(), &username).await;
    let result = match attempt {
        Attempt::Password(c) => {
            shared.auth.verify(&c.authzid, &c.username, c.password, scope(who.listener), gate.lane).await
        }
        Attempt::Scram { authzid, username, proof: ScramProof::Valid } => {
            shared.auth.scram_principal(&authzid, &username).await
        }
        Attempt::Scram { username, proof, .. } => {
            Err(shared.auth.scram_refusal(&username, proof == ScramProof::BindingMismatch).await)
        }
    };
    let Who { listener, peer, conn } = who;
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
            if let Some((id, name)) = app_password {
                shared.app_sessions.opened(conn, id, name, &principal.address, close.clone());
                if let Err(e) =
                    shared.store.app_password_used(id, unix(SystemTime::now()), &peer.ip().to_string()).await
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
                alert(shared, kind, severity, Some(who), Some(&username), 1.0, message);
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
    let gate = Gate::enter(shared, peer.ip(), account).await;
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
            shared.events.emit(Event::AdminAuthFailed {
                peer,
                path: "/api/v1/signin".into(),
                account: Some(account.to_string()),
                reason: Some(refusal.reason()),
            });
            gate.failed(shared).await;
        }
        Err(AuthError::Unavailable) => {
            shared.events.emit(Event::InternalError { conn: None, what: "authentication backend unavailable".into() });
        }
        Err(AuthError::Busy) => {
            let (path, account) = ("/api/v1/signin".into(), Some(account.to_string()));
            shared.events.emit(Event::AdminAuthFailed { peer, path, account, reason: Some(BUSY) });
            tokio::time::sleep(BUSY_DELAY).await;
        }
    }
    result
}

/// A ban the guard put in force: into the store (it must survive a restart) and the log.
pub async fn record_ban(shared: &Shared, ban: &Ban, origin: BanOrigin) {
    if let Err(e) = shared.store.put_ban(to_stored(ban)).await {
        shared.events.emit(Event::InternalError { conn: None, what: format!("storing a ban failed: {e}") });
    }
    shared.events.emit(Event::BanAdded {
        network: ban.network.to_string(),
        until: ban.until.map(|u| unix(u) as u64),
        origin,
        reason: ban.reason.clone(),
    });
}

/// Whether `account` may send a message to `recipients` more; past its hourly limits the
/// answer is no, and the first refusal raises an alert (a compromised account, likely).
pub fn sending_allowed(shared: &Shared, who: Who, account_id: i64, account: &str, recipients: u32) -> bool {
    match shared.guard.message(account_id, recipients, Now::current()) {
        Ok(()) => true,
        Err(hit) => {
            if hit.first {
                let (what, limit) = match hit.limit {
                    SendingLimit::Messages(n) => ("messages", n),
                    SendingLimit::Recipients(n) => ("recipients", n),
                };
                let message =
                    format!("{account} reached its sending limit of {limit} {what} per hour (from {})", who.peer.ip());
                alert(
                    shared,
                    AlertKind::SendingLimit,
                    Severity::Critical,
                    Some(who),
                    Some(account),
                    limit as f64,
                    message,
                );
            }
            false
        }
    }
}

/// Loads the bans and their history from the store at start.
pub async fn load_bans(shared: &Shared) {
    match shared.store.bans().await {
        Ok(stored) => {
            let now = Now::current();
            let all: Vec<Ban> = stored.iter().filter_map(from_stored).collect();
            let offences: Vec<(IpNet, u32)> = all.iter().map(|b| (b.network, b.offence)).collect();
            shared.guard.set_offences(&offences, now);
            let active = all.into_iter().filter(|b| b.until.is_none_or(|u| u > now.wall)).collect();
            shared.guard.set_bans(active, now);
        }
        Err(e) => shared.events.emit(Event::InternalError { conn: None, what: format!("loading bans failed: {e}") }),
    }
}

/// Follows what the admin CLI writes into the store: the ban list (and expires bans, prunes
/// old history) and revoked app passwords (whose sessions it closes), until the server stops.
pub async fn follow_store(shared: std::sync::Arc<Shared>) {
    let mut tick = tokio::time::interval(BAN_SYNC_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.stop_accepting.cancelled() => return,
        }
        ticks += 1;
        let now = Now::current();
        for ban in shared.guard.expire_bans(now.wall) {
            shared.events.emit(Event::BanExpired { network: ban.network.to_string() });
        }
        if let Ok(stored) = shared.store.bans().await {
            let active: Vec<Ban> =
                stored.iter().filter_map(from_stored).filter(|b| b.until.is_none_or(|u| u > now.wall)).collect();
            let (gone, added) = shared.guard.set_bans(active, now);
            for network in gone {
                shared.events.emit(Event::BanRemoved { network: network.to_string(), origin: BanOrigin::Admin });
            }
            for ban in added.into_iter().filter(|b| b.manual) {
                shared.events.emit(Event::BanAdded {
                    network: ban.network.to_string(),
                    until: ban.until.map(|u| unix(u) as u64),
                    origin: BanOrigin::Admin,
                    reason: ban.reason,
                });
            }
        }
        close_app_sessions(&shared, unix(now.wall)).await;
        if ticks.is_multiple_of(3600) {
            shared.guard.forget_old(now);
            let logins_before = unix(now.wall - shared.config.guard.known_source_memory);
            let _ = shared.store.prune_guard_history(logins_before, unix(now.wall - BAN_HISTORY)).await;
        }
    }
}

/// Closes the sessions whose app password no longer opens anything.
async fn close_app_sessions(shared: &Shared, now: i64) {
    let in_use = shared.app_sessions.in_use();
    if in_use.is_empty() {
        return;
    }
    match shared.store.unusable_app_passwords(&in_use, now).await {
        Ok(unusable) if !unusable.is_empty() => {
            for closed in shared.app_sessions.close(&unusable) {
                shared.events.emit(Event::AppPasswordSessionClosed {
                    conn: closed.conn,
                    account: closed.account,
                    app_password: closed.app_password,
                });
            }
        }
        Ok(_) => {}
        Err(e) => {
            shared.events.emit(Event::InternalError { conn: None, what: format!("checking app passwords failed: {e}") })
        }
    }
}
