//! The guard's memory: bans, numbered in the order they change (so that a server re-reads only
//! what changed), and the addresses accounts logged in from. (The guard's sending,
//! failed-login and login-attempt counts are in memory: `portcullis_store::counts`.)

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::Db;
use portcullis_store::{AccountId, BanChanges, StoreError, StoredBan};

const BAN_COLUMNS: &str = "network, until, reason, offence, manual, created";
/// The bans changed after a number (schema test: it must use `bans_by_seq`).
pub(super) const BANS_CHANGED: &str =
    "SELECT network, until, reason, offence, manual, created FROM bans WHERE seq > ?1 ORDER BY seq";
/// The bans lifted after a number (schema test: it must use `lifted_bans_by_seq`).
pub(super) const BANS_LIFTED: &str = "SELECT network FROM lifted_bans WHERE seq > ?1 ORDER BY seq";

fn ban(r: &Row<'_>) -> rusqlite::Result<StoredBan> {
    Ok(StoredBan {
        network: r.get(0)?,
        until: r.get(1)?,
        reason: r.get(2)?,
        offence: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
        manual: r.get::<_, i64>(4)? != 0,
        created: r.get(5)?,
    })
}

pub(super) fn bans(conn: &Connection) -> Result<Vec<StoredBan>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {BAN_COLUMNS} FROM bans ORDER BY network")).db()?;
    let rows = stmt.query_map([], ban).db()?.collect::<Result<Vec<_>, _>>().db()?;
    Ok(rows)
}

/// The last number handed to a ban change (0 before any).
fn ban_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = 'ban_seq'", [], |r| r.get(0)).optional().db()?.unwrap_or(0))
}

/// The next number for a ban change. Writes are serialised (one writer), so numbers are
/// handed out in commit order and a reader never sees a number before a smaller one.
fn next_ban_seq(conn: &Connection) -> Result<i64, StoreError> {
    let next = ban_seq(conn)? + 1;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('ban_seq', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![next],
    )
    .db()?;
    Ok(next)
}

/// Every ban (`after` `None`: the offence history too), or only those changed and lifted after
/// change number `after`; with the last change number, read in the same snapshot.
pub(super) fn ban_changes(conn: &Connection, after: Option<i64>) -> Result<BanChanges, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    let seq = ban_seq(&tx)?;
    let (bans, lifted) = match after {
        None => (bans(&tx)?, Vec::new()),
        Some(after) => {
            let bans = tx
                .prepare_cached(BANS_CHANGED)
                .db()?
                .query_map([after], ban)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            let lifted = tx
                .prepare_cached(BANS_LIFTED)
                .db()?
                .query_map([after], |r| r.get(0))
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            (bans, lifted)
        }
    };
    tx.finish().db()?;
    Ok(BanChanges { bans, lifted, seq })
}

pub(super) fn put_ban(conn: &Connection, ban: &StoredBan) -> Result<(), StoreError> {
    let seq = next_ban_seq(conn)?;
    conn.execute(
        "INSERT INTO bans(network, until, reason, offence, manual, created, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(network) DO UPDATE SET until = excluded.until, reason = excluded.reason,
             offence = excluded.offence, manual = excluded.manual, created = excluded.created, seq = excluded.seq",
        params![ban.network, ban.until, ban.reason, ban.offence, ban.manual as i64, ban.created, seq],
    )
    .db()?;
    conn.execute("DELETE FROM lifted_bans WHERE network = ?1", params![ban.network]).db()?;
    Ok(())
}

pub(super) fn delete_ban(conn: &Connection, network: &str) -> Result<bool, StoreError> {
    if conn.execute("DELETE FROM bans WHERE network = ?1", params![network]).db()? == 0 {
        return Ok(false);
    }
    let seq = next_ban_seq(conn)?;
    conn.execute(
        "INSERT INTO lifted_bans(network, seq, lifted) VALUES (?1, ?2, ?3)
         ON CONFLICT(network) DO UPDATE SET seq = excluded.seq, lifted = excluded.lifted",
        params![network, seq, super::accounts::now()],
    )
    .db()?;
    Ok(true)
}

/// The sources accounts logged in from successfully at or after `since`, each with its latest
/// such login.
pub(super) fn known_sources(conn: &Connection, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT source, max(last_success) FROM known_logins WHERE last_success >= ?1 GROUP BY source")
        .db()?;
    let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?))).db()?.collect::<Result<Vec<_>, _>>().db()?;
    Ok(rows)
}

pub(super) fn record_login(conn: &Connection, account: AccountId, source: &str, when: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO known_logins(account_id, source, last_success) VALUES (?1, ?2, ?3)
         ON CONFLICT(account_id, source) DO UPDATE SET last_success = max(last_success, excluded.last_success)",
        params![account, source, when],
    )
    .db()?;
    Ok(())
}

pub(super) fn login_known(
    conn: &Connection,
    local: &str,
    domain: &str,
    source: &str,
    since: i64,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM known_logins k JOIN accounts a ON a.id = k.account_id JOIN domains d ON d.id = a.domain_id
              WHERE d.name = ?1 AND a.localpart = ?2 AND k.source = ?3 AND k.last_success >= ?4",
        )
        .db()?
        .query_row(params![domain, local, source, since], |_| Ok(()))
        .optional()
        .db()?
        .is_some())
}

pub(super) fn prune(conn: &Connection, logins_before: i64, bans_before: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM known_logins WHERE last_success < ?1", params![logins_before]).db()?;
    conn.execute("DELETE FROM bans WHERE until IS NOT NULL AND until < ?1", params![bans_before]).db()?;
    conn.execute("DELETE FROM lifted_bans WHERE lifted < ?1", params![bans_before]).db()?;
    Ok(())
}
