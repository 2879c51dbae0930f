//! Bans between the guard and the store. The guard decides and enforces bans in memory; the
//! store keeps them, so that they survive a restart, are shared by every node, and can be
//! written by the admin CLI while the server runs. Here: the conversions between the two
//! forms, recording a ban the guard made, loading the list at start, and re-reading it.

use std::time::SystemTime;

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

fn in_force(ban: &Ban, now: SystemTime) -> bool {
    ban.until.is_none_or(|until| until > now)
}

/// Loads the bans and their history from the store at start: the bans in force, and how often
/// each network was banned before (repeat offenders get longer bans).
pub(crate) async fn load(shared: &Shared) {
    match shared.store.bans().await {
        Ok(stored) => {
            let now = Now::current();
            let all: Vec<Ban> = stored.iter().filter_map(from_stored).collect();
            let offences: Vec<(IpNet, u32)> = all.iter().map(|b| (b.network, b.offence)).collect();
            shared.guard.set_offences(&offences, now);
            let active = all.into_iter().filter(|b| in_force(b, now.wall)).collect();
            shared.guard.set_bans(active, now);
        }
        Err(e) => shared.events.emit(Event::InternalError { conn: None, what: format!("loading bans failed: {e}") }),
    }
}

/// Brings the guard's bans up to date: forgets the expired ones, then takes the store's list,
/// announcing what an administrator added or lifted there (the CLI writes to the store).
pub(crate) async fn sync(shared: &Shared, now: Now) {
    for ban in shared.guard.expire_bans(now.wall) {
        shared.events.emit(Event::BanExpired { network: ban.network.to_string() });
    }
    let Ok(stored) = shared.store.bans().await else { return };
    let active: Vec<Ban> = stored.iter().filter_map(from_stored).filter(|b| in_force(b, now.wall)).collect();
    let (gone, added) = shared.guard.set_bans(active, now);
    for network in gone {
        shared.events.emit(Event::BanRemoved { network: network.to_string(), origin: BanOrigin::Admin });
    }
    // The guard's own bans were announced when it made them.
    for ban in added.iter().filter(|b| b.manual) {
        announce(shared, ban);
    }
}
