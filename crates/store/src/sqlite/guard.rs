//! The guard's memory: bans and the addresses accounts logged in from.

use rusqlite::{params, Connection, OptionalExtension};

use crate::{AccountId, StoreError, StoredBan};

pub(super) fn bans(conn: &Connection) -> Result<Vec<StoredBan>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT network, until, reason, offence, manual, created FROM bans ORDER BY network")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredBan {
                network: r.get(0)?,
                until: r.get(1)?,
                reason: r.get(2)?,
                offence: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                manual: r.get::<_, i64>(4)? != 0,
                created: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn put_ban(conn: &Connection, ban: &StoredBan) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO bans(network, until, reason, offence, manual, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(network) DO UPDATE SET until = excluded.until, reason = excluded.reason,
             offence = excluded.offence, manual = excluded.manual, created = excluded.created",
        params![ban.network, ban.until, ban.reason, ban.offence, ban.manual as i64, ban.created],
    )?;
    Ok(())
}

pub(super) fn delete_ban(conn: &Connection, network: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM bans WHERE network = ?1", params![network])? > 0)
}

pub(super) fn record_login(conn: &Connection, account: AccountId, source: &str, when: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO known_logins(account_id, source, last_success) VALUES (?1, ?2, ?3)
         ON CONFLICT(account_id, source) DO UPDATE SET last_success = max(last_success, excluded.last_success)",
        params![account, source, when],
    )?;
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
        )?
        .query_row(params![domain, local, source, since], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn prune(conn: &Connection, logins_before: i64, bans_before: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM known_logins WHERE last_success < ?1", params![logins_before])?;
    conn.execute("DELETE FROM bans WHERE until IS NOT NULL AND until < ?1", params![bans_before])?;
    Ok(())
}
