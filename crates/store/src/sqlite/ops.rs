//! The [`Store`] operations in SQL.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::address::{normalize_address, normalize_domain};
use crate::*;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn split(address: &str) -> Result<(String, String), StoreError> {
    let address = normalize_address(address).ok_or_else(|| StoreError::InvalidAddress(address.to_string()))?;
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| StoreError::InvalidAddress(address.clone()))?;
    Ok((local.to_string(), domain.to_string()))
}

fn quota_to_sql(quota: Quota) -> Option<i64> {
    match quota {
        Quota::Default => None,
        Quota::Unlimited => Some(-1),
        Quota::Bytes(n) => Some(n.min(i64::MAX as u64) as i64),
    }
}

fn quota_from_sql(value: Option<i64>) -> Quota {
    match value {
        None => Quota::Default,
        Some(n) if n < 0 => Quota::Unlimited,
        Some(n) => Quota::Bytes(n as u64),
    }
}

/// A fresh UIDVALIDITY: the current time, but always larger than any handed out before, so
/// that a mailbox deleted and re-created within a second still gets a new one (RFC 9051 §2.3.1.1).
fn next_uidvalidity(conn: &Connection) -> Result<u32, StoreError> {
    let last: i64 =
        conn.query_row("SELECT value FROM meta WHERE key = 'uidvalidity'", [], |r| r.get(0)).optional()?.unwrap_or(0);
    let next = now().max(last + 1) & 0xffff_ffff;
    let next = if next == 0 { 1 } else { next };
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![next],
    )?;
    Ok(next as u32)
}

const ACCOUNT_BY_ADDRESS: &str = "SELECT a.id, a.password_hash, a.quota, a.used_bytes
       FROM accounts a JOIN domains d ON d.id = a.domain_id
      WHERE d.name = ?1 AND a.localpart = ?2";

fn mailbox_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    Ok(Mailbox {
        id: row.get(0)?,
        name: row.get(1)?,
        special_use: row.get(2)?,
        uidvalidity: row.get::<_, i64>(3)? as u32,
        uidnext: row.get::<_, i64>(4)? as u32,
        highestmodseq: row.get::<_, i64>(5)? as u64,
    })
}

impl SqliteStore {
    fn effective_quota(&self, stored: Option<i64>) -> Option<u64> {
        match quota_from_sql(stored) {
            Quota::Default => self.default_quota,
            Quota::Unlimited => None,
            Quota::Bytes(n) => Some(n),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        self.write(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO domains(name, created) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
                params![name, now()],
            )?;
            if inserted == 0 {
                return Err(StoreError::DomainExists(name));
            }
            Ok(())
        })
        .await
    }

    async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        self.write(move |conn| {
            let id: Option<i64> =
                conn.query_row("SELECT id FROM domains WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
            let id = id.ok_or_else(|| StoreError::NoSuchDomain(name.clone()))?;
            let accounts: i64 =
                conn.query_row("SELECT count(*) FROM accounts WHERE domain_id = ?1", params![id], |r| r.get(0))?;
            if accounts > 0 {
                return Err(StoreError::DomainInUse(name));
            }
            conn.execute("DELETE FROM domains WHERE id = ?1", params![id])?;
            Ok(())
        })
        .await
    }

    async fn domains(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM domains ORDER BY name")?;
            let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError> {
        let Some(name) = normalize_domain(name) else { return Ok(false) };
        self.read(move |conn| {
            Ok(conn.query_row("SELECT 1 FROM domains WHERE name = ?1", params![name], |_| Ok(())).optional()?.is_some())
        })
        .await
    }

    async fn add_account(&self, address: &str, password_hash: &str, quota: Quota) -> Result<AccountId, StoreError> {
        let (local, domain) = split(address)?;
        let password_hash = password_hash.to_string();
        self.write(move |conn| {
            let domain_id: i64 = conn
                .query_row("SELECT id FROM domains WHERE name = ?1", params![domain], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NoSuchDomain(domain.clone()))?;
            let inserted = conn.execute(
                "INSERT INTO accounts(domain_id, localpart, password_hash, quota, created)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![domain_id, local, password_hash, quota_to_sql(quota), now()],
            )?;
            if inserted == 0 {
                return Err(StoreError::AccountExists(format!("{local}@{domain}")));
            }
            let account = conn.last_insert_rowid();
            for (name, special_use) in DEFAULT_MAILBOXES {
                conn.execute(
                    "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) VALUES (?1, ?2, ?3, ?4)",
                    params![account, name, special_use, next_uidvalidity(conn)?],
                )?;
            }
            Ok(account)
        })
        .await
    }

    async fn remove_account(&self, address: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        self.write(move |conn| {
            let removed = conn.execute(
                "DELETE FROM accounts WHERE localpart = ?1
                    AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
                params![local, domain],
            )?;
            if removed == 0 {
                return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT a.localpart || '@' || d.name, a.quota, a.used_bytes, a.created,
                        (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                          WHERE b.account_id = a.id)
                   FROM accounts a JOIN domains d ON d.id = a.domain_id
                  ORDER BY d.name, a.localpart",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AccountSummary {
                        address: r.get(0)?,
                        quota: quota_from_sql(r.get(1)?),
                        used: r.get::<_, i64>(2)? as u64,
                        created: r.get(3)?,
                        messages: r.get::<_, i64>(4)? as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let password_hash = password_hash.to_string();
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE accounts SET password_hash = ?3 WHERE localpart = ?1
                    AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
                params![local, domain, password_hash],
            )?;
            if changed == 0 {
                return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE accounts SET quota = ?3 WHERE localpart = ?1
                    AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
                params![local, domain, quota_to_sql(quota)],
            )?;
            if changed == 0 {
                return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        self.read(move |conn| {
            Ok(conn
                .query_row(ACCOUNT_BY_ADDRESS, params![domain, local], |r| {
                    Ok(Credentials {
                        account: r.get(0)?,
                        address: format!("{local}@{domain}"),
                        password_hash: r.get(1)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let row = self
            .read(move |conn| {
                Ok(conn
                    .query_row(ACCOUNT_BY_ADDRESS, params![domain, local], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(2)?, r.get::<_, i64>(3)?))
                    })
                    .optional()?
                    .map(|row| (row, format!("{local}@{domain}"))))
            })
            .await?;
        Ok(row.map(|((id, quota, used), address)| Account {
            id,
            address,
            quota: self.effective_quota(quota),
            used: used.max(0) as u64,
        }))
    }

    async fn deliver(&self, delivery: Delivery) -> Result<(), DeliveryError> {
        let default_quota = self.default_quota;
        self.write(move |conn| {
            let size = delivery.raw.len() as i64;
            let mut recipients = delivery.recipients;
            recipients.sort_unstable();
            recipients.dedup();
            // Check every allowance before writing anything.
            for &account in &recipients {
                let (address, quota, used): (String, Option<i64>, i64) = conn
                    .query_row(
                        "SELECT a.localpart || '@' || d.name, a.quota, a.used_bytes
                           FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE a.id = ?1",
                        params![account],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?
                    .ok_or_else(|| StoreError::NoSuchAccount(format!("#{account}")))?;
                let limit = match quota_from_sql(quota) {
                    Quota::Default => default_quota,
                    Quota::Unlimited => None,
                    Quota::Bytes(n) => Some(n),
                };
                if limit.is_some_and(|limit| used.max(0) as u64 + size as u64 > limit) {
                    return Err(DeliveryError::QuotaExceeded(address));
                }
            }
            conn.execute("INSERT INTO blobs(data) VALUES (?1)", params![delivery.raw])?;
            let blob = conn.last_insert_rowid();
            let mut next_uid = conn.prepare_cached(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                  WHERE account_id = ?1 AND name = 'INBOX'
                  RETURNING id, uidnext - 1, highestmodseq",
            )?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO messages(mailbox_id, uid, blob_id, size, internal_date, modseq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for &account in &recipients {
                let (mailbox, uid, modseq): (i64, i64, i64) = next_uid
                    .query_row(params![account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(|e| StoreError::Backend(format!("account #{account} has no INBOX: {e}")))?;
                insert.execute(params![mailbox, uid, blob, size, delivery.internal_date, modseq])?;
            }
            Ok(())
        })
        .await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq
                       FROM mailboxes WHERE account_id = ?1 AND name = ?2",
                    params![account, name],
                    mailbox_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq
                   FROM mailboxes WHERE account_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![account], mailbox_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT uid, size, internal_date FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
            let rows = stmt
                .query_map(params![mailbox], |r| {
                    Ok(MessageMeta {
                        uid: r.get::<_, i64>(0)? as u32,
                        size: r.get::<_, i64>(1)? as u64,
                        internal_date: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
                      WHERE m.mailbox_id = ?1 AND m.uid = ?2",
                    params![mailbox, uid],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<(), StoreError> {
        if uids.is_empty() {
            return Ok(());
        }
        let uids = uids.to_vec();
        self.write(move |conn| {
            let mut delete = conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
            let mut removed = 0;
            for uid in uids {
                removed += delete.execute(params![mailbox, uid])?;
            }
            if removed > 0 {
                conn.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1", params![mailbox])?;
            }
            Ok(())
        })
        .await
    }

    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError> {
        struct Release(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>, i64);
        impl Drop for Release {
            fn drop(&mut self) {
                if let Ok(mut held) = self.0.lock() {
                    held.remove(&self.1);
                }
            }
        }
        let mut held = self.maildrops.lock().map_err(|_| StoreError::Backend("maildrop lock poisoned".into()))?;
        if !held.insert(account) {
            return Ok(None);
        }
        Ok(Some(MaildropLock::new(Box::new(Release(self.maildrops.clone(), account)))))
    }

    fn close(&self) {
        self.stop_writer();
    }
}
