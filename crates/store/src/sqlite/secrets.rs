//! Strong authentication's records: SCRAM keys, app passwords, TOTP and recovery codes.

use rusqlite::{params, Connection, OptionalExtension};

use super::accounts::now;
use crate::{AccountId, AppPassword, StoreError, StoredScram, Totp};

fn account_id(conn: &Connection, local: &str, domain: &str) -> Result<AccountId, StoreError> {
    conn.query_row(
        "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.localpart = ?1 AND d.name = ?2",
        params![local, domain],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NoSuchAccount(format!("{local}@{domain}")))
}

pub(super) fn scram_keys(
    conn: &Connection,
    local: &str,
    domain: &str,
) -> Result<Option<(AccountId, StoredScram, bool)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT a.id, a.scram_salt, a.scram_iterations, a.scram_stored_key, a.scram_server_key, a.totp_enabled
               FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?1 AND a.localpart = ?2",
        )?
        .query_row(params![domain, local], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, i64>(5)? != 0,
            ))
        })
        .optional()?;
    Ok(match row {
        Some((id, Some(salt), Some(iterations), Some(stored_key), Some(server_key), totp)) => Some((
            id,
            StoredScram { salt, iterations: iterations.clamp(1, u32::MAX as i64) as u32, stored_key, server_key },
            totp,
        )),
        _ => None,
    })
}

pub(super) fn add_app_password(
    conn: &Connection,
    local: &str,
    domain: &str,
    name: &str,
    digest: &[u8],
    scopes: u8,
    expires: Option<i64>,
) -> Result<AppPassword, StoreError> {
    let account = account_id(conn, local, domain)?;
    let created = now();
    let inserted = conn.execute(
        "INSERT INTO app_passwords(account_id, name, digest, scopes, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
        params![account, name, digest, scopes, created, expires],
    )?;
    if inserted == 0 {
        return Err(StoreError::AppPasswordExists(name.to_string()));
    }
    Ok(AppPassword {
        id: conn.last_insert_rowid(),
        account,
        name: name.to_string(),
        scopes,
        created,
        expires,
        last_used: None,
        last_ip: None,
        revoked: false,
    })
}

/// The account's app passwords, or just the one with `digest`.
pub(super) fn app_passwords(
    conn: &Connection,
    local: &str,
    domain: &str,
    digest: Option<&[u8]>,
) -> Result<Vec<AppPassword>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.account_id, p.name, p.scopes, p.created, p.expires, p.last_used, p.last_ip, p.revoked
           FROM app_passwords p JOIN accounts a ON a.id = p.account_id JOIN domains d ON d.id = a.domain_id
          WHERE d.name = ?1 AND a.localpart = ?2 AND (?3 IS NULL OR p.digest = ?3)
          ORDER BY p.name",
    )?;
    let rows = stmt
        .query_map(params![domain, local, digest], |r| {
            Ok(AppPassword {
                id: r.get(0)?,
                account: r.get(1)?,
                name: r.get(2)?,
                scopes: r.get::<_, i64>(3)? as u8,
                created: r.get(4)?,
                expires: r.get(5)?,
                last_used: r.get(6)?,
                last_ip: r.get(7)?,
                revoked: r.get::<_, i64>(8)? != 0,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn revoke_app_password(
    conn: &Connection,
    local: &str,
    domain: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let account = account_id(conn, local, domain)?;
    Ok(conn.execute(
        "UPDATE app_passwords SET revoked = 1 WHERE account_id = ?1 AND name = ?2 AND revoked = 0",
        params![account, name],
    )? > 0)
}

pub(super) fn totp(conn: &Connection, local: &str, domain: &str) -> Result<Option<Totp>, StoreError> {
    let row = conn
        .query_row(
            "SELECT a.id, a.totp_secret, a.totp_enabled, a.totp_last_step
               FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?1 AND a.localpart = ?2",
            params![domain, local],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, i64>(2)? != 0,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()?;
    Ok(row.and_then(|(account, secret, enabled, last_step)| {
        secret.map(|secret| Totp { account, secret, enabled, last_step })
    }))
}

pub(super) fn set_totp(
    conn: &Connection,
    local: &str,
    domain: &str,
    secret: Option<&[u8]>,
    enabled: bool,
    recovery: &[Vec<u8>],
) -> Result<(), StoreError> {
    let account = account_id(conn, local, domain)?;
    conn.execute(
        "UPDATE accounts SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = 0 WHERE id = ?1",
        params![account, secret, (enabled && secret.is_some()) as i64],
    )?;
    conn.execute("DELETE FROM recovery_codes WHERE account_id = ?1", params![account])?;
    let mut insert = conn.prepare_cached("INSERT OR IGNORE INTO recovery_codes(account_id, digest) VALUES (?1, ?2)")?;
    for digest in recovery {
        insert.execute(params![account, digest])?;
    }
    Ok(())
}
