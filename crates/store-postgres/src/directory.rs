//! Domains, accounts and what opens them (passwords, SCRAM keys, app passwords, TOTP with its
//! lock, recovery codes, server secrets): [`DirectoryStore`] with the SQLite backend's
//! behaviour, made safe for several nodes writing at once. A check and the write it guards
//! run in one transaction under a row lock (or are one statement), so two nodes never both
//! pass a check that only one of them should.
//!
//! Listings sort with `COLLATE "C"` (byte order), as SQLite's do, whatever the database's
//! own collation is.

use async_trait::async_trait;
use tokio_postgres::GenericClient;

use portcullis_store::credential_rules::{
    app_password_state, totp_enabled, totp_failure_locked_it, totp_lock_threshold,
};
use portcullis_store::*;

use crate::coordination::notify_signal;
use crate::mail::{effective_quota, next_uidvalidity};
use crate::{now, unique_violation, Db, PgStore};

/// An address as (local part, domain), normalized; an error names what was given.
pub(crate) fn split(address: &str) -> Result<(String, String), StoreError> {
    let normalized = normalize_address(address).ok_or_else(|| StoreError::InvalidAddress(address.to_string()))?;
    let (local, domain) = normalized.rsplit_once('@').ok_or_else(|| StoreError::InvalidAddress(normalized.clone()))?;
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

/// The id of the account `local@domain`, if there is one.
pub(crate) async fn account_id(
    client: &impl GenericClient,
    local: &str,
    domain: &str,
) -> Result<Option<AccountId>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = $1 AND a.localpart = $2",
            &[&domain, &local],
        )
        .await
        .db()?
        .map(|r| r.get(0)))
}

async fn existing_account(client: &impl GenericClient, local: &str, domain: &str) -> Result<AccountId, StoreError> {
    account_id(client, local, domain).await?.ok_or_else(|| StoreError::NoSuchAccount(format!("{local}@{domain}")))
}

/// Locks the domain's row until the transaction ends, so that account and alias creations in
/// one domain take turns: an address is either an account or an alias, and that check must
/// not race with another node's insert. `NO KEY UPDATE` leaves inserts elsewhere that only
/// reference the domain (their foreign key check) unblocked.
pub(crate) async fn lock_domain(client: &impl GenericClient, domain: &str) -> Result<i64, StoreError> {
    client
        .query_opt("SELECT id FROM domains WHERE name = $1 FOR NO KEY UPDATE", &[&domain])
        .await
        .db()?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NoSuchDomain(domain.to_string()))
}

/// Whether `local` is taken in the domain, by an account or an alias.
pub(crate) async fn address_taken(
    client: &impl GenericClient,
    domain_id: i64,
    local: &str,
) -> Result<bool, StoreError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM accounts WHERE domain_id = $1 AND localpart = $2
             UNION ALL SELECT 1 FROM aliases WHERE domain_id = $1 AND localpart = $2",
            &[&domain_id, &local],
        )
        .await
        .db()?
        .is_some())
}

/// SCRAM keys always change with the password (stale keys would keep the old password alive).
const SET_PASSWORD: &str =
    "UPDATE accounts SET password_hash = $2, credentials_generation = credentials_generation + 1,
        scram_salt = $3, scram_iterations = $4, scram_stored_key = $5, scram_server_key = $6
  WHERE id = $1";

/// The SCRAM columns as parameters: salt, iterations, StoredKey, ServerKey (all NULL without).
type ScramParams<'a> = (Option<&'a [u8]>, Option<i64>, Option<&'a [u8]>, Option<&'a [u8]>);

fn scram_params(scram: Option<&StoredScram>) -> ScramParams<'_> {
    (
        scram.map(|k| k.salt.as_slice()),
        scram.map(|k| k.iterations as i64),
        scram.map(|k| k.stored_key.as_slice()),
        scram.map(|k| k.server_key.as_slice()),
    )
}

/// An account by address, for every login (schema test: it must use the unique indexes).
pub(crate) const ACCOUNT_BY_ADDRESS: &str =
    "SELECT a.id, a.password_hash, a.quota, a.used_bytes, a.totp_enabled, a.credentials_generation
       FROM accounts a JOIN domains d ON d.id = a.domain_id
      WHERE d.name = $1 AND a.localpart = $2";

const APP_PASSWORD_COLUMNS: &str =
    "p.id, p.account_id, p.name, p.scopes, p.created, p.expires, p.last_used, p.last_ip, p.revoked";

fn app_password(r: &tokio_postgres::Row) -> AppPassword {
    AppPassword {
        id: r.get(0),
        account: r.get(1),
        name: r.get(2),
        scopes: r.get::<_, i32>(3) as u8,
        created: r.get(4),
        expires: r.get(5),
        last_used: r.get(6),
        last_ip: r.get(7),
        revoked: r.get(8),
    }
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO domains(name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &now()],
            )
            .await
            .db()?;
        if inserted == 0 {
            return Err(StoreError::DomainExists(name));
        }
        Ok(())
    }

    async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // FOR UPDATE: a node adding an account or alias here waits (its foreign key check
        // needs the row), and then finds the domain gone.
        let id: i64 = tx
            .query_opt("SELECT id FROM domains WHERE name = $1 FOR UPDATE", &[&name])
            .await
            .db()?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NoSuchDomain(name.clone()))?;
        let users: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM accounts WHERE domain_id = $1) + (SELECT count(*) FROM aliases WHERE domain_id = $1)",
                &[&id],
            )
            .await
            .db()?
            .get(0);
        if users > 0 {
            return Err(StoreError::DomainInUse(name));
        }
        tx.execute("DELETE FROM domains WHERE id = $1", &[&id]).await.db()?;
        tx.commit().await.db()
    }

    async fn domains(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT name FROM domains ORDER BY name COLLATE \"C\"", &[]).await.db()?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError> {
        let Some(name) = normalize_domain(name) else { return Ok(false) };
        let client = self.client().await?;
        Ok(client.query_opt("SELECT 1 FROM domains WHERE name = $1", &[&name]).await.db()?.is_some())
    }

    async fn add_account(
        &self,
        address: &str,
        secrets: &PasswordSecrets,
        quota: Quota,
    ) -> Result<AccountId, StoreError> {
        let (local, domain) = split(address)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let domain_id = lock_domain(&*tx, &domain).await?;
        if account_id(&*tx, &local, &domain).await?.is_some() {
            return Err(StoreError::AccountExists(format!("{local}@{domain}")));
        }
        if address_taken(&*tx, domain_id, &local).await? {
            return Err(StoreError::AliasExists(format!("{local}@{domain}")));
        }
        let (salt, iterations, stored_key, server_key) = scram_params(secrets.scram.as_ref());
        let account: i64 = tx
            .query_one(
                "INSERT INTO accounts(domain_id, localpart, password_hash, quota, created,
                                      scram_salt, scram_iterations, scram_stored_key, scram_server_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &domain_id,
                    &local,
                    &secrets.hash,
                    &quota_to_sql(quota),
                    &now(),
                    &salt,
                    &iterations,
                    &stored_key,
                    &server_key,
                ],
            )
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => StoreError::AccountExists(format!("{local}@{domain}")),
                None => crate::backend(&e),
            })?
            .get(0);
        for (name, special_use) in DEFAULT_MAILBOXES {
            let uidvalidity = i64::from(next_uidvalidity(&tx).await?);
            tx.execute(
                "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) VALUES ($1, $2, $3, $4)",
                &[&account, name, special_use, &uidvalidity],
            )
            .await
            .db()?;
            tx.execute("INSERT INTO subscriptions(account_id, name) VALUES ($1, $2)", &[&account, name]).await.db()?;
        }
        tx.commit().await.db()?;
        Ok(account)
    }

    async fn remove_account(&self, address: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let removed = tx
            .execute(
                "DELETE FROM accounts WHERE localpart = $1 AND domain_id = (SELECT id FROM domains WHERE name = $2)",
                &[&local, &domain],
            )
            .await
            .db()?;
        if removed == 0 {
            return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
        }
        notify_signal(&tx, &NodeSignal::CredentialsChanged { account: format!("{local}@{domain}") }).await?;
        tx.commit().await.db()
    }

    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.localpart || '@' || d.name, a.quota, a.used_bytes, a.created,
                        (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                          WHERE b.account_id = a.id)
                   FROM accounts a JOIN domains d ON d.id = a.domain_id
                  ORDER BY d.name COLLATE \"C\", a.localpart COLLATE \"C\"",
                &[],
            )
            .await
            .db()?;
        Ok(rows
            .iter()
            .map(|r| AccountSummary {
                address: r.get(0),
                quota: quota_from_sql(r.get(1)),
                used: r.get::<_, i64>(2).max(0) as u64,
                created: r.get(3),
                messages: r.get::<_, i64>(4).max(0) as u64,
            })
            .collect())
    }

    async fn set_password(&self, address: &str, secrets: &PasswordSecrets) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let account = existing_account(&*tx, &local, &domain).await?;
        let (salt, iterations, stored_key, server_key) = scram_params(secrets.scram.as_ref());
        // A new generation: the sessions the old password opened are closed.
        let changed = tx
            .execute(SET_PASSWORD, &[&account, &secrets.hash, &salt, &iterations, &stored_key, &server_key])
            .await
            .db()?;
        if changed == 0 {
            return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
        }
        notify_signal(&tx, &NodeSignal::CredentialsChanged { account: format!("{local}@{domain}") }).await?;
        tx.commit().await.db()
    }

    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE accounts SET quota = $3 WHERE localpart = $1
                    AND domain_id = (SELECT id FROM domains WHERE name = $2)",
                &[&local, &domain, &quota_to_sql(quota)],
            )
            .await
            .db()?;
        if changed == 0 {
            return Err(StoreError::NoSuchAccount(format!("{local}@{domain}")));
        }
        Ok(())
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let statement = client.prepare_cached(ACCOUNT_BY_ADDRESS).await.db()?;
        let row = client.query_opt(&statement, &[&domain, &local]).await.db()?;
        Ok(row.map(|r| Credentials {
            account: r.get(0),
            address: format!("{local}@{domain}"),
            password_hash: r.get(1),
            totp_enabled: r.get(4),
            generation: r.get(5),
        }))
    }

    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let statement = client.prepare_cached(ACCOUNT_BY_ADDRESS).await.db()?;
        let row = client.query_opt(&statement, &[&domain, &local]).await.db()?;
        Ok(row.map(|r| Account {
            id: r.get(0),
            address: format!("{local}@{domain}"),
            quota: effective_quota(r.get(2), self.default_quota()),
            used: r.get::<_, i64>(3).max(0) as u64,
        }))
    }

    async fn scram_keys(&self, address: &str) -> Result<Option<ScramCredentials>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT a.id, a.scram_salt, a.scram_iterations, a.scram_stored_key, a.scram_server_key,
                        a.totp_enabled, a.credentials_generation
                   FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = $1 AND a.localpart = $2",
                &[&domain, &local],
            )
            .await
            .db()?;
        Ok(row.map(|r| {
            let scram = match (r.get(1), r.get::<_, Option<i64>>(2), r.get(3), r.get(4)) {
                (Some(salt), Some(iterations), Some(stored_key), Some(server_key)) => Some(StoredScram {
                    salt,
                    iterations: iterations.clamp(1, u32::MAX as i64) as u32,
                    stored_key,
                    server_key,
                }),
                _ => None,
            };
            ScramCredentials { account: r.get(0), scram, totp_enabled: r.get(5), generation: r.get(6) }
        }))
    }

    async fn credentials_generations(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, credentials_generation FROM accounts WHERE id = ANY($1)", &[&accounts])
            .await
            .db()?;
        let found: std::collections::HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // In the order asked, as the SQLite backend answers.
        Ok(accounts.iter().filter_map(|a| found.get(a).map(|g| (*a, *g))).collect())
    }

    async fn add_app_password(
        &self,
        address: &str,
        name: &str,
        digest: &[u8],
        scopes: u8,
        expires: Option<i64>,
    ) -> Result<AppPassword, StoreError> {
        let (local, domain) = split(address)?;
        let client = self.client().await?;
        let account = existing_account(&**client, &local, &domain).await?;
        let created = now();
        // A clash on the name (or, astronomically unlikely, the digest) adds nothing.
        let row = client
            .query_opt(
                "INSERT INTO app_passwords(account_id, name, digest, scopes, created, expires)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
                &[&account, &name, &digest, &(scopes as i32), &created, &expires],
            )
            .await
            .db()?;
        let id: i64 = row.ok_or_else(|| StoreError::AppPasswordExists(name.to_string()))?.get(0);
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

    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, StoreError> {
        let (local, domain) = split(address)?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {APP_PASSWORD_COLUMNS}
                       FROM app_passwords p JOIN accounts a ON a.id = p.account_id JOIN domains d ON d.id = a.domain_id
                      WHERE d.name = $1 AND a.localpart = $2
                      ORDER BY p.name COLLATE \"C\""
                ),
                &[&domain, &local],
            )
            .await
            .db()?;
        Ok(rows.iter().map(app_password).collect())
    }

    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<bool, StoreError> {
        let (local, domain) = split(address)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let account = existing_account(&*tx, &local, &domain).await?;
        let revoked = tx
            .execute(
                "UPDATE app_passwords SET revoked = true WHERE account_id = $1 AND name = $2 AND NOT revoked",
                &[&account, &name],
            )
            .await
            .db()?
            > 0;
        if revoked {
            notify_signal(&tx, &NodeSignal::AppPasswordRevoked { account: format!("{local}@{domain}") }).await?;
        }
        tx.commit().await.db()?;
        Ok(revoked)
    }

    async fn find_app_password(&self, address: &str, digest: &[u8]) -> Result<Option<AppPassword>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {APP_PASSWORD_COLUMNS}
                       FROM app_passwords p JOIN accounts a ON a.id = p.account_id JOIN domains d ON d.id = a.domain_id
                      WHERE d.name = $1 AND a.localpart = $2 AND p.digest = $3"
                ),
                &[&domain, &local, &digest],
            )
            .await
            .db()?;
        Ok(row.as_ref().map(app_password))
    }

    async fn app_password_used(&self, id: i64, when: i64, ip: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("UPDATE app_passwords SET last_used = $2, last_ip = $3 WHERE id = $1", &[&id, &when, &ip])
            .await
            .db()?;
        Ok(())
    }

    async fn unusable_app_passwords(&self, ids: &[i64], now: i64) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let rows =
            client.query("SELECT id, revoked, expires FROM app_passwords WHERE id = ANY($1)", &[&ids]).await.db()?;
        // An id missing from the answer is gone with its account.
        let usable: std::collections::HashSet<i64> = rows
            .iter()
            .filter(|r| app_password_state(r.get(1), r.get(2), now) == AppPasswordState::Active)
            .map(|r| r.get(0))
            .collect();
        Ok(ids.iter().copied().filter(|id| !usable.contains(id)).collect())
    }

    async fn totp(&self, address: &str) -> Result<Option<Totp>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT a.id, a.totp_secret, a.totp_enabled, a.totp_last_step, a.totp_failures, a.totp_locked
                   FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = $1 AND a.localpart = $2",
                &[&domain, &local],
            )
            .await
            .db()?;
        Ok(row.and_then(|r| {
            r.get::<_, Option<Vec<u8>>>(1).map(|secret| Totp {
                account: r.get(0),
                secret,
                enabled: r.get(2),
                last_step: r.get(3),
                failures: r.get::<_, i64>(4).clamp(0, u32::MAX as i64) as u32,
                locked: r.get(5),
            })
        }))
    }

    async fn set_totp(
        &self,
        address: &str,
        secret: Option<&[u8]>,
        enabled: bool,
        recovery: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let account = existing_account(&*tx, &local, &domain).await?;
        let enabled = totp_enabled(secret.is_some(), enabled);
        // Turning TOTP on is a new credentials generation: the password no longer opens mail
        // protocols, so the sessions it opened are closed. A clean slate of failures.
        tx.execute(
            "UPDATE accounts SET totp_secret = $2, totp_enabled = $3, totp_last_step = 0, totp_failures = 0,
                    totp_locked = false, credentials_generation = credentials_generation + $4
              WHERE id = $1",
            &[&account, &secret, &enabled, &(enabled as i64)],
        )
        .await
        .db()?;
        tx.execute("DELETE FROM recovery_codes WHERE account_id = $1", &[&account]).await.db()?;
        for digest in recovery {
            tx.execute(
                "INSERT INTO recovery_codes(account_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&account, digest],
            )
            .await
            .db()?;
        }
        notify_signal(&tx, &NodeSignal::CredentialsChanged { account: format!("{local}@{domain}") }).await?;
        tx.commit().await.db()
    }

    async fn use_totp_step(&self, account: AccountId, step: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // One statement: a node updating the row at the same moment holds its lock, and this
        // one re-checks `totp_last_step < $2` (credential_rules::totp_step_fresh) on the row as
        // that node left it. A code used on one node is refused on every other.
        Ok(client
            .execute(
                "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                &[&account, &step],
            )
            .await
            .db()?
            > 0)
    }

    async fn use_recovery_code(&self, account: AccountId, digest: &[u8]) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // A DELETE removes a row once: two nodes given the same code, one of them succeeds.
        Ok(client
            .execute("DELETE FROM recovery_codes WHERE account_id = $1 AND digest = $2", &[&account, &digest])
            .await
            .db()?
            > 0)
    }

    async fn totp_failed(&self, account: AccountId, lock_at: u32) -> Result<bool, StoreError> {
        let threshold = i64::from(totp_lock_threshold(lock_at));
        let client = self.client().await?;
        let failures: Option<i64> = client
            .query_opt(
                "UPDATE accounts SET totp_failures = totp_failures + 1,
                        totp_locked = (totp_locked OR totp_failures + 1 >= $2)
                  WHERE id = $1 RETURNING totp_failures",
                &[&account, &threshold],
            )
            .await
            .db()?
            .map(|r| r.get(0));
        Ok(failures.is_some_and(|f| totp_failure_locked_it(f, lock_at)))
    }

    async fn totp_unlock(&self, account: AccountId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        // The old value from a self-join on the row locked by the UPDATE.
        let was: Option<bool> = client
            .query_opt(
                "UPDATE accounts a SET totp_failures = 0, totp_locked = false
                   FROM (SELECT id, totp_locked FROM accounts WHERE id = $1 FOR UPDATE) old
                  WHERE a.id = old.id RETURNING old.totp_locked",
                &[&account],
            )
            .await
            .db()?
            .map(|r| r.get(0));
        Ok(was == Some(true))
    }

    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        // The first node's value wins; a node racing it waits on the key, inserts nothing,
        // and reads the winner's.
        client
            .execute("INSERT INTO secrets(name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &fresh])
            .await
            .db()?;
        Ok(client.query_one("SELECT value FROM secrets WHERE name = $1", &[&name]).await.db()?.get(0))
    }
}
