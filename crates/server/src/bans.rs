//! Bans between the guard and the store. The guard decides and enforces bans in memory; the
//! store keeps them, so that they survive a restart, are shared by every node, and can be
//! written by the admin CLI while the server runs. Here: the conversions between the two
//! forms, recording a ban the guard made, loading the list at start, and following what
//! changes in it since (by the store's change numbers: only the changes are read and applied).

use portcullis_events::{BanOrigin, Event};
use portcullis_guard::{Ban, IpNet, Now};
use portcullis_store::StoredBan;

use crate::state::Shared;
use crate::unix_time;

/// A ban as the store keeps it, created now.
pub fn to_stored(ban: &Ban) -> StoredBan {
    StoredBan {
        network: ban.network.to_string(),
        until: ban.until.map(unix_time::seconds),
        reason: ban.reason.clone(),
        offence: ban.offence,
        manual: ban.manual,
        created: unix_time::now_seconds(),
    }
}

/// The ban a stored one stands for; `None` if its network does not parse.
fn from_stored(ban: &StoredBan) -> Option<Ban> {
    Some(Ban {
        network: ban.network.parse::<IpNet>().ok()?,
        until: ban.until.map(unix_time::from_seconds),
        reason: ban.reason.clone(),
        offence: ban.offence,
        manual: ban.manual,
    })
}

/// Announces a ban now in force (`ban_added`): an administrator's, or the guard's own.
pub(crate) fn announce(shared: &Shared, ban: &Ban) {
    shared.events.emit(Event::BanAdded {
        network: ban.network.to_string(),
        until: ban.until.map(|u| unix_time::seconds(u) as u64),
        origin: if ban.manual { BanOrigin::Admin } else { BanOrigin::Auto },
        reason: ban.reason.clone(),
    });
}

/// A ban the guard put in force: into the store (it must survive a restart) and the log.
pub(crate) async fn record(shared: &Shared, ban: &Ban) {
    if let Err(e) = shared.store.put_ban(to_stored(ban)).await {
        shared.events.emit(Event::InternalError { conn: None, what: format!("storing a ban failed: {e}") });
    }
    announce(shared, ban);
}

/// Loads the bans and their history from the store at start: the bans in force, and how often
/// each network was banned before (repeat offenders get longer bans). Returns the store's last
/// change number, from which [`sync`] goes on; `None` if the store could not be read (then
/// the first sync reads everything).
pub(crate) async fn load(shared: &Shared) -> Option<i64> {
    match shared.store.ban_changes(None).await {
        Ok(changes) => {
            let now = Now::current();
            let all: Vec<Ban> = changes.bans.iter().filter_map(from_stored).collect();
            let offences: Vec<(IpNet, u32)> = all.iter().map(|b| (b.network, b.offence)).collect();
            shared.guard.set_offences(&offences, now);
            let active: Vec<Ban> = all.into_iter().filter(|b| b.in_force(now.wall)).collect();
            shared.guard.apply_ban_changes(active, &[], now);
            Some(changes.seq)
        }
        Err(e) => {
            shared.events.emit(Event::InternalError { conn: None, what: format!("loading bans failed: {e}") });
            None
        }
    }
}

/// Brings the guard's bans up to date: forgets the expired ones, then applies what changed in
/// the store after change number `after` (all of it when `None`), announcing what an
/// administrator added or lifted there (the CLI writes to the store). Returns the change number
/// to go on from.
pub(crate) async fn sync(shared: &Shared, after: Option<i64>, now: Now) -> Option<i64> {
    for ban in shared.guard.expire_bans(now.wall) {
        shared.events.emit(Event::BanExpired { network: ban.network.to_string() });
    }
    let changes = match shared.store.ban_changes(after).await {
        Ok(changes) => changes,
        Err(_) => return after,
    };
    let changed: Vec<Ban> = changes.bans.iter().filter_map(from_stored).collect();
    let lifted: Vec<IpNet> = changes.lifted.iter().filter_map(|n| n.parse().ok()).collect();
    let sync = shared.guard.apply_ban_changes(changed, &lifted, now);
    for network in sync.lifted {
        shared.events.emit(Event::BanRemoved { network: network.to_string(), origin: BanOrigin::Admin });
    }
    // The guard's own bans were announced when it made them (on this node or another).
    for ban in sync.added.iter().filter(|b| b.manual) {
        announce(shared, ban);
    }
    Some(changes.seq)
}
