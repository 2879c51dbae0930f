//! The task that follows what the admin CLI (and other nodes) write into the store while the
//! server runs, until the server stops: bans added or lifted (and expired ones), app passwords
//! revoked or expired, accounts removed or given new credentials (whose sessions it closes);
//! and, at start and hourly, the addresses accounts logged in from (the owners' addresses the
//! guard keeps slots for), and pruning the guard's history.
//!
//! It reads the store at once when the store signals a change (`NodeSignal`: every node's
//! writes reach every node within a second on PostgreSQL), and once a second anyway: signals
//! do not reach it from writers outside the store's notifications (the CLI process writing a
//! SQLite file) or while a PostgreSQL LISTEN connection is being re-established (once it is
//! back, the store delivers `NodeSignal::Resync` and everything is read at once). It also
//! carries out other nodes' session kills for this node (see `session_kill`) and answers their
//! requests for this node's sessions (see `session_list`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_events::Event;
use portcullis_guard::{IpNet, Now};
use portcullis_store::NodeSignal;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::bans;
use crate::session_kill;
use crate::session_list;
use crate::state::Shared;
use crate::unix_time;

/// How often the store is read.
const EVERY: Duration = Duration::from_secs(1);
/// Rounds between two prunings of old history (an hour).
const PRUNE_EVERY: u64 = 3600;
/// Expired bans are kept this long as the offence history of their network.
const BAN_HISTORY: Duration = Duration::from_secs(30 * 86_400);

/// Follows the store from ban change number `bans_seen` on (see [`bans::load`]).
pub async fn run(shared: Arc<Shared>, mut bans_seen: Option<i64>) {
    let mut tick = tokio::time::interval(EVERY);
    let mut rounds: u64 = 0;
    // `None` once the store closed its signals (it is closing): the poll goes on alone.
    let mut signals = Some(shared.store.signals());
    load_known_sources(&shared).await;
    loop {
        let polled = tokio::select! {
            _ = tick.tick() => true,
            woken = next_signal(&mut signals) => {
                // A burst (a flood of bans) is read as one: whatever is already queued is
                // taken now, and one sync answers all of it.
                let mut sync = handle_signal(&shared, woken).await;
                while let Some(receiver) = signals.as_mut() {
                    match receiver.try_recv() {
                        Ok(signal) => sync |= handle_signal(&shared, Ok(signal)).await,
                        Err(TryRecvError::Lagged(n)) => sync |= handle_signal(&shared, Err(RecvError::Lagged(n))).await,
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                if !sync {
                    continue;
                }
                false
            }
            _ = shared.stop_accepting.cancelled() => return,
        };
        let now = Now::current();
        bans_seen = bans::sync(&shared, bans_seen, now).await;
        close_revoked_app_password_sessions(&shared, unix_time::seconds(now.wall)).await;
        close_sessions_of_changed_accounts(&shared).await;
        if !polled {
            continue;
        }
        rounds += 1;
        if rounds.is_multiple_of(PRUNE_EVERY) {
            shared.guard.forget_old(now);
            let logins_before = unix_time::seconds(now.wall - shared.config.guard.known_source_memory);
            // The guard's counts: the buckets of no window any more (the guard says which).
            let (bans_before, counts_before) =
                (unix_time::seconds(now.wall - BAN_HISTORY), shared.guard.buckets(now).forget_before);
            let _ = shared.store.prune_guard_history(logins_before, bans_before, counts_before).await;
            // Other nodes' logins too.
            load_known_sources(&shared).await;
        }
    }
}

/// The next signal; never, once the store closed its signals.
async fn next_signal(signals: &mut Option<broadcast::Receiver<NodeSignal>>) -> Result<NodeSignal, RecvError> {
    let Some(receiver) = signals.as_mut() else { return std::future::pending().await };
    let next = receiver.recv().await;
    if matches!(next, Err(RecvError::Closed)) {
        *signals = None;
    }
    next
}

/// Acts on one signal; whether the store must be read now. A kill for this node, and another
/// node's request for every node's sessions, are answered here; kills for other nodes and
/// answers are not this task's business.
async fn handle_signal(shared: &Shared, signal: Result<NodeSignal, RecvError>) -> bool {
    match signal {
        Ok(
            NodeSignal::BansChanged
            | NodeSignal::CredentialsChanged { .. }
            | NodeSignal::AppPasswordRevoked { .. }
            | NodeSignal::Resync,
        ) => true,
        Ok(NodeSignal::KillSession { node, session, by }) => {
            if node == shared.store.node() {
                session_kill::answer(shared, session, by).await;
            }
            false
        }
        Ok(NodeSignal::ListSessions { request, by }) => {
            // The asker lists its own; answering it too would only be dropped.
            if by != shared.store.node() {
                session_list::answer(shared, request).await;
            }
            false
        }
        Ok(NodeSignal::SessionKillAnswered { .. } | NodeSignal::SessionsListed { .. }) | Err(RecvError::Closed) => {
            false
        }
        // Signals were missed: anything may have changed.
        Err(RecvError::Lagged(_)) => true,
    }
}

/// Tells the guard the addresses accounts logged in from within `guard.known_source_memory`.
async fn load_known_sources(shared: &Shared) {
    let now = Now::current();
    let since = unix_time::seconds(now.wall - shared.config.guard.known_source_memory);
    match shared.store.known_sources(since).await {
        Ok(known) => {
            let known: Vec<(IpNet, SystemTime)> = known
                .iter()
                .filter_map(|(source, at)| Some((source.parse().ok()?, unix_time::from_seconds(*at))))
                .collect();
            shared.guard.set_known_sources(&known, now);
        }
        Err(e) => shared
            .events
            .emit(Event::InternalError { conn: None, what: format!("reading known login addresses failed: {e}") }),
    }
}

/// Closes the sessions whose app password no longer opens anything (revoked, expired, or gone
/// with its account). Also called at once by the admin API after it revokes one.
pub async fn close_revoked_app_password_sessions(shared: &Shared, now: i64) {
    let in_use = shared.sessions.app_passwords_in_use();
    if in_use.is_empty() {
        return;
    }
    match shared.store.unusable_app_passwords(&in_use, now).await {
        Ok(unusable) if !unusable.is_empty() => {
            for closed in shared.sessions.close_app_password_sessions(&unusable) {
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

/// Closes the sessions whose account is gone or has new credentials (a new password, TOTP
/// turned on): the credentials generation they logged in under is not the account's any more.
/// Also called at once by the admin API after it changes an account.
pub async fn close_sessions_of_changed_accounts(shared: &Shared) {
    let in_use = shared.sessions.accounts_in_use();
    if in_use.is_empty() {
        return;
    }
    match shared.store.credentials_generations(&in_use).await {
        Ok(current) => {
            for closed in shared.sessions.close_sessions_of_changed_accounts(&in_use, &current) {
                shared.events.emit(Event::AccountSessionClosed {
                    conn: closed.conn,
                    account: closed.account,
                    reason: closed.reason,
                });
            }
        }
        Err(e) => shared
            .events
            .emit(Event::InternalError { conn: None, what: format!("checking accounts' credentials failed: {e}") }),
    }
}
