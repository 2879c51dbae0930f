//! Strong authentication's records: SCRAM keys, app passwords, TOTP (with its lock after wrong
//! codes) and recovery codes, and the server's own persistent secrets.

use rusqlite::{params, Connection, OptionalExtension};

use super::accounts::{next_id, now, Ids};
use crate::Db;
use portcullis_store::credential_rules::{totp_enabled, totp_failure_locked_it, totp_lock_threshold};
use portcullis_store::{AccountId, AppPassword, ScramCredentials, StoreError, StoredScram, Totp};

fn account_id(conn: &Connection, local: &str, domain: &str) -> Result<AccountId, StoreError> {
    conn.query_row(
        "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.localpart = ?1 AND d.name = ?2",
        params![local, domain],
        |r| r.get(0),
    )
    .optional()
    .db()?
    .ok_or_else(|| StoreError::NoSuchAccount(format!("{local}@{domain}")))
}

pub(super) fn scram_keys(conn: &Connection, local: &str, domain: &str) -> Result<Option<ScramCredentials>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT a.id, a.scram_salt, a.scram_iterations, a.scram_stored_key, a.scram_server_key, a.totp_enabled,
                    a.credentials_generation
               FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?1 AND a.localpart = ?2",
        )
        .db()?
        .query_row(params![domain, local], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, i64>(5)? != 0,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()
        .db()?;
    Ok(row.map(|(account, salt, iterations, stored_key, server_key, totp_enabled, generation)| {
        let scram = match (salt, iterations, stored_key, server_key) {
            (Some(salt), Some(iterations), Some(stored_key), Some(server_key)) => Some(StoredScram {
                salt,
                iterations: iterations.clamp(1, u32::MAX as i64) as u32,
                stored_key,
                server_key,
            }),
            _ => None,
        };
        ScramCredentials { account, scram, totp_enabled, generation }
    }))
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
    let id = next_id(conn, Ids::AppPasswords)?;
    let inserted = conn
        .execute(
            "INSERT INTO app_passwords(id, account_id, name, digest, scopes, created, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![id, account, name, digest, scopes, created, expires],
        )
        .db()?;
    if inserted == 0 {
        return Err(StoreError::AppPasswordExists(name.to_string()));
    }
    Ok(AppPassword {
        id,
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
    let mut stmt = conn
        .prepare_cached(
            "SELECT p.id, p.account_id, p.name, p.scopes, p.created, p.expires, p.last_used, p.last_ip, p.revoked
           FROM app_passwords p JOIN accounts a ON a.id = p.account_id JOIN domains d ON d.id = a.domain_id
          WHERE d.name = ?1 AND a.localpart = ?2 AND (?3 IS NULL OR p.digest = ?3)
          ORDER BY p.name",
        )
        .db()?;
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
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    Ok(rows)
}

pub(super) fn revoke_app_password(
    conn: &Connection,
    local: &str,
    domain: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let account = account_id(conn, local, domain)?;
    Ok(conn
        .execute(
            "UPDATE app_passwords SET revoked = 1 WHERE account_id = ?1 AND name = ?2 AND revoked = 0",
            params![account, name],
        )
        .db()?
        > 0)
}

pub(super) fn totp(conn: &Connection, local: &str, domain: &str) -> Result<Option<Totp>, StoreError> {
    let row = conn
        .query_row(
            "SELECT a.id, a.totp_secret, a.totp_enabled, a.totp_last_step, a.totp_failures, a.totp_locked
               FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?1 AND a.localpart = ?2",
            params![domain, local],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, i64>(2)? != 0,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)? != 0,
                ))
            },
        )
        .optional()
        .db()?;
    Ok(row.and_then(|(account, secret, enabled, last_step, failures, locked)| {
        secret.map(|secret| Totp {
            account,
            secret,
            enabled,
            last_step,
            failures: failures.clamp(0, u32::MAX as i64) as u32,
            locked,
        })
    }))
}

/// Stores a secret (or clears it), with a clean slate of failures and new recovery codes.
/// Turning TOTP on is a new credentials generation: the password no longer opens mail
/// protocols, so the sessions it opened are closed.
pub(super) fn set_totp(
    conn: &Connection,
    local: &str,
    domain: &str,
    secret: Option<&[u8]>,
    enabled: bool,
    recovery: &[Vec<u8>],
) -> Result<(), StoreError> {
    let account = account_id(conn, local, domain)?;
    let enabled = totp_enabled(secret.is_some(), enabled);
    conn.execute(
        "UPDATE accounts SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = 0, totp_failures = 0,
                totp_locked = 0, credentials_generation = credentials_generation + ?4
          WHERE id = ?1",
        params![account, secret, enabled as i64, enabled as i64],
    )
    .db()?;
    conn.execute("DELETE FROM recovery_codes WHERE account_id = ?1", params![account]).db()?;
    let mut insert =
        conn.prepare_cached("INSERT OR IGNORE INTO recovery_codes(account_id, digest) VALUES (?1, ?2)").db()?;
    for digest in recovery {
        insert.execute(params![account, digest]).db()?;
    }
    Ok(())
}

/// One more wrong code; the account's TOTP locks at `lock_at`. Whether this one locked it.
pub(super) fn totp_failed(conn: &Connection, account: AccountId, lock_at: u32) -> Result<bool, StoreError> {
    let failures: Option<i64> = conn
        .prepare_cached(
            "UPDATE accounts SET totp_failures = totp_failures + 1,
                    totp_locked = CASE WHEN totp_failures + 1 >= ?2 THEN 1 ELSE totp_locked END
              WHERE id = ?1 RETURNING totp_failures",
        )
        .db()?
        .query_row(params![account, totp_lock_threshold(lock_at)], |r| r.get(0))
        .optional()
        .db()?;
    Ok(failures.is_some_and(|f| totp_failure_locked_it(f, lock_at)))
}

/// A right code (or a recovery code, or the operator): no failures, not locked. Whether it was
/// locked.
pub(super) fn totp_unlock(conn: &Connection, account: AccountId) -> Result<bool, StoreError> {
    let was: Option<i64> = conn
        .query_row("SELECT totp_locked FROM accounts WHERE id = ?1", params![account], |r| r.get(0))
        .optional()
        .db()?;
    conn.execute("UPDATE accounts SET totp_failures = 0, totp_locked = 0 WHERE id = ?1", params![account]).db()?;
    Ok(was == Some(1))
}

/// The secret called `name`; `fresh` becomes it if there is none yet (the first caller wins,
/// and every later one, on any node, reads the same).
pub(super) fn server_secret(conn: &Connection, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
    conn.execute("INSERT INTO secrets(name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING", params![name, fresh])
        .db()?;
    conn.query_row("SELECT value FROM secrets WHERE name = ?1", params![name], |r| r.get(0)).db()
}
