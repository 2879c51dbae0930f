//! Domains, accounts and quotas in SQL.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::Db;
use portcullis_store::normalize_address;
use portcullis_store::*;
use portcullis_store::{PasswordSecrets, StoredScram};

pub(super) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(super) fn split(address: &str) -> Result<(String, String), StoreError> {
    let address = normalize_address(address).ok_or_else(|| StoreError::InvalidAddress(address.to_string()))?;
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| StoreError::InvalidAddress(address.clone()))?;
    Ok((local.to_string(), domain.to_string()))
}

pub(super) fn quota_to_sql(quota: Quota) -> Option<i64> {
    match quota {
        Quota::Default => None,
        Quota::Unlimited => Some(-1),
        Quota::Bytes(n) => Some(n.min(i64::MAX as u64) as i64),
    }
}

pub(super) fn quota_from_sql(value: Option<i64>) -> Quota {
    match value {
        None => Quota::Default,
        Some(n) if n < 0 => Quota::Unlimited,
        Some(n) => Quota::Bytes(n as u64),
    }
}

/// The allowance in effect: the account's own, or the configured default.
pub(super) fn effective_quota(stored: Option<i64>, default_quota: Option<u64>) -> Option<u64> {
    match quota_from_sql(stored) {
        Quota::Default => default_quota,
        Quota::Unlimited => None,
        Quota::Bytes(n) => Some(n),
    }
}

/// A fresh UIDVALIDITY: the current time, but always larger than any handed out before, so
/// that a mailbox deleted and re-created within a second still gets a new one (RFC 9051 §2.3.1.1).
pub(super) fn next_uidvalidity(conn: &Connection) -> Result<u32, StoreError> {
    let last: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'uidvalidity'", [], |r| r.get(0))
        .optional()
        .db()?
        .unwrap_or(0);
    let next = now().max(last + 1) & 0xffff_ffff;
    let next = if next == 0 { 1 } else { next };
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![next],
    )
    .db()?;
    Ok(next as u32)
}

/// The tables whose ids name something outside the database (a session's account, its
/// selected mailbox, the app password it logged in with), and so must never be reused.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ids {
    Accounts,
    Mailboxes,
    AppPasswords,
}

impl Ids {
    fn table(self) -> &'static str {
        match self {
            Ids::Accounts => "accounts",
            Ids::Mailboxes => "mailboxes",
            Ids::AppPasswords => "app_passwords",
        }
    }
}

/// A fresh id for a new row of `ids`' table: above every id the table ever had. SQLite alone
/// would give the largest id in use + 1, which is the id of the newest row if it was removed;
/// a session still holding that id would then reach the new row (schema migration 6).
pub(super) fn next_id(conn: &Connection, ids: Ids) -> Result<i64, StoreError> {
    let table = ids.table();
    let key = format!("last_id.{table}");
    let last: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
        .optional()
        .db()?
        .unwrap_or(0);
    let largest: i64 = conn.query_row(&format!("SELECT coalesce(max(id), 0) FROM {table}"), [], |r| r.get(0)).db()?;
    let next = last.max(largest) + 1;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, next],
    )
    .db()?;
    Ok(next)
}

pub(super) const ACCOUNT_BY_ADDRESS: &str =
    "SELECT a.id, a.password_hash, a.quota, a.used_bytes, a.totp_enabled, a.credentials_generation
       FROM accounts a JOIN domains d ON d.id = a.domain_id
      WHERE d.name = ?1 AND a.localpart = ?2";

/// (bytes used, allowance in effect).
pub(super) fn usage(
    conn: &Connection,
    account: AccountId,
    default_quota: Option<u64>,
) -> Result<(u64, Option<u64>), StoreError> {
    let (quota, used): (Option<i64>, i64) = conn
        .query_row("SELECT quota, used_bytes FROM accounts WHERE id = ?1", params![account], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NoSuchAccount(format!("#{account}")))?;
    Ok((used.max(0) as u64, effective_quota(quota, default_quota)))
}

/// `QuotaExceeded` unless `size` more bytes fit in the account's allowance.
pub(super) fn check_room(
    conn: &Connection,
    account: AccountId,
    size: u64,
    default_quota: Option<u64>,
) -> Result<(), DeliveryError> {
    let (used, limit) = usage(conn, account, default_quota)?;
    if !portcullis_store::has_room(used, limit, size) {
        return Err(quota_exceeded(conn, account));
    }
    Ok(())
}

/// The refusal of a message that does not fit in `account`'s allowance, naming the account.
pub(super) fn quota_exceeded(conn: &Connection, account: AccountId) -> DeliveryError {
    let address = conn.query_row(
        "SELECT a.localpart || '@' || d.name FROM accounts a JOIN domains d ON d.id = a.domain_id
          WHERE a.id = ?1",
        params![account],
        |r| r.get(0),
    );
    match address.db() {
        Ok(address) => DeliveryError::QuotaExceeded(address),
        Err(e) => e.into(),
    }
}

pub(super) fn add_domain(conn: &Connection, name: String) -> Result<(), StoreError> {
    let inserted = conn
        .execute(
            "INSERT INTO domains(name, created) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, now()],
        )
        .db()?;
    if inserted == 0 {
        return Err(StoreError::DomainExists(name));
    }
    Ok(())
}

pub(super) fn remove_domain(conn: &Connection, name: String) -> Result<(), StoreError> {
    let id: Option<i64> =
        conn.query_row("SELECT id FROM domains WHERE name = ?1", params![name], |r| r.get(0)).optional().db()?;
    let id = id.ok_or_else(|| StoreError::NoSuchDomain(name.clone()))?;
    let accounts: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM accounts WHERE domain_id = ?1) + (SELECT count(*) FROM aliases WHERE domain_id = ?1)",
        params![id],
        |r| r.get(0),
    ).db()?;
    if accounts > 0 {
        return Err(StoreError::DomainInUse(name));
    }
    conn.execute("DELETE FROM domains WHERE id = ?1", params![id]).db()?;
    Ok(())
}

/// Creates the account with its default mailboxes, subscribed to them.
pub(super) fn add_account(
    conn: &Connection,
    local: String,
    domain: String,
    secrets: PasswordSecrets,
    quota: Quota,
) -> Result<AccountId, StoreError> {
    let domain_id: i64 = conn
        .query_row("SELECT id FROM domains WHERE name = ?1", params![domain], |r| r.get(0))
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NoSuchDomain(domain.clone()))?;
    let exists: bool = conn
        .prepare_cached("SELECT 1 FROM accounts WHERE domain_id = ?1 AND localpart = ?2")
        .db()?
        .exists(params![domain_id, local])
        .db()?;
    if exists {
        return Err(StoreError::AccountExists(format!("{local}@{domain}")));
    }
    let alias: bool = conn
        .prepare_cached("SELECT 1 FROM aliases WHERE domain_id = ?1 AND localpart = ?2")
        .db()?
        .exists(params![domain_id, local])
        .db()?;
    if alias {
        return Err(StoreError::AliasExists(format!("{local}@{domain}")));
    }
    let account = next_id(conn, Ids::Accounts)?;
    conn.execute(
        "INSERT INTO accounts(id, domain_id, localpart, password_hash, quota, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![account, domain_id, local, secrets.hash, quota_to_sql(quota), now()],
    )
    .db()?;
    store_scram(conn, account, secrets.scram.as_ref())?;
    for (name, special_use) in DEFAULT_MAILBOXES {
        conn.execute(
            "INSERT INTO mailboxes(id, account_id, name, special_use, uidvalidity) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![next_id(conn, Ids::Mailboxes)?, account, name, special_use, next_uidvalidity(conn)?],
        )
        .db()?;
        conn.execute("INSERT INTO subscriptions(account_id, name) VALUES (?1, ?2)", params![account, name]).db()?;
    }
    Ok(account)
}

pub(super) fn remove_account(conn: &Connection, local: String, domain: String) -> Result<(), StoreError> {
    let removed = conn
        .execute(
            "DELETE FROM accounts WHERE localpart = ?1
            AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
            params![local, domain],
        )
        .db()?;
    if removed == 0 {
        return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
    }
    Ok(())
}

pub(super) fn accounts(conn: &Connection) -> Result<Vec<AccountSummary>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT a.localpart || '@' || d.name, a.quota, a.used_bytes, a.created,
                (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                  WHERE b.account_id = a.id)
           FROM accounts a JOIN domains d ON d.id = a.domain_id
          ORDER BY d.name, a.localpart",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AccountSummary {
                address: r.get(0)?,
                quota: quota_from_sql(r.get(1)?),
                used: r.get::<_, i64>(2)? as u64,
                created: r.get(3)?,
                messages: r.get::<_, i64>(4)? as u64,
            })
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    Ok(rows)
}

pub(super) fn set_password(
    conn: &Connection,
    local: String,
    domain: String,
    secrets: PasswordSecrets,
) -> Result<(), StoreError> {
    let account: Option<i64> = conn
        .query_row(
            "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.localpart = ?1 AND d.name = ?2",
            params![local, domain],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    let account = account.ok_or_else(|| StoreError::NoSuchAccount(format!("{local}@{domain}")))?;
    // A new generation: the sessions the old password opened are closed.
    conn.execute(
        "UPDATE accounts SET password_hash = ?2, credentials_generation = credentials_generation + 1 WHERE id = ?1",
        params![account, secrets.hash],
    )
    .db()?;
    store_scram(conn, account, secrets.scram.as_ref())
}

/// SCRAM keys always change with the password (stale keys would keep the old password alive).
fn store_scram(conn: &Connection, account: AccountId, scram: Option<&StoredScram>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE accounts SET scram_salt = ?2, scram_iterations = ?3, scram_stored_key = ?4, scram_server_key = ?5 WHERE id = ?1",
        params![
            account,
            scram.map(|k| k.salt.clone()),
            scram.map(|k| k.iterations as i64),
            scram.map(|k| k.stored_key.clone()),
            scram.map(|k| k.server_key.clone())
        ],
    ).db()?;
    Ok(())
}

pub(super) fn set_quota(conn: &Connection, local: String, domain: String, quota: Quota) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE accounts SET quota = ?3 WHERE localpart = ?1
            AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
            params![local, domain, quota_to_sql(quota)],
        )
        .db()?;
    if changed == 0 {
        return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
    }
    Ok(())
}
