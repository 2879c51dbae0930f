//! Aliases in SQL (see `crate::aliases`): a row per alias address (its domain and local
//! part, like an account's) naming its account; removing the account removes its aliases
//! (ON DELETE CASCADE), and a domain with aliases is not removed (`accounts::remove_domain`).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::accounts::{now, split};
use super::SqliteStore;
use crate::Db;
use portcullis_store::StoreError;
use portcullis_store::{Alias, AliasStore};

fn domain_id(conn: &Connection, domain: &str) -> Result<Option<i64>, StoreError> {
    conn.query_row("SELECT id FROM domains WHERE name = ?1", params![domain], |r| r.get(0)).optional().db()
}

fn add(
    conn: &Connection,
    (local, domain): (String, String),
    (a_local, a_domain): (String, String),
) -> Result<(), StoreError> {
    let address = format!("{local}@{domain}");
    let domain_id = domain_id(conn, &domain)?.ok_or(StoreError::NoSuchDomain(domain))?;
    let account: i64 = conn
        .query_row(
            "SELECT a.id FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?1 AND a.localpart = ?2",
            params![a_domain, a_local],
            |r| r.get(0),
        )
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NoSuchAccount(format!("{a_local}@{a_domain}")))?;
    let taken = conn
        .prepare_cached(
            "SELECT 1 FROM accounts WHERE domain_id = ?1 AND localpart = ?2
             UNION ALL SELECT 1 FROM aliases WHERE domain_id = ?1 AND localpart = ?2",
        )
        .db()?
        .exists(params![domain_id, local])
        .db()?;
    if taken {
        return Err(StoreError::AliasExists(address));
    }
    conn.execute(
        "INSERT INTO aliases(domain_id, localpart, account_id, created) VALUES (?1, ?2, ?3, ?4)",
        params![domain_id, local, account, now()],
    )
    .db()?;
    Ok(())
}

#[async_trait]
impl AliasStore for SqliteStore {
    async fn add_alias(&self, address: &str, account: &str) -> Result<(), StoreError> {
        let alias = split(address)?;
        let account = split(account)?;
        self.write(move |conn| add(conn, alias, account)).await
    }

    async fn remove_alias(&self, address: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        self.write(move |conn| {
            let removed = conn
                .execute(
                    "DELETE FROM aliases WHERE localpart = ?1 AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
                    params![local, domain],
                )
                .db()?;
            if removed == 0 {
                return Err(StoreError::NoSuchAlias(format!("{local}@{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn aliases(&self, account: Option<&str>) -> Result<Vec<Alias>, StoreError> {
        let account = match account {
            Some(a) => Some(split(a)?),
            None => None,
        };
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT l.localpart || '@' || ld.name, a.localpart || '@' || ad.name, l.created
                   FROM aliases l JOIN domains ld ON ld.id = l.domain_id
                   JOIN accounts a ON a.id = l.account_id JOIN domains ad ON ad.id = a.domain_id
                  WHERE ?1 IS NULL OR (a.localpart = ?1 AND ad.name = ?2)
                  ORDER BY 1",
                )
                .db()?;
            let (local, domain) = account.unzip();
            let rows = stmt
                .query_map(params![local, domain], |r| {
                    Ok(Alias { address: r.get(0)?, account: r.get(1)?, created: r.get(2)? })
                })
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            Ok(rows)
        })
        .await
    }

    async fn recipient(&self, address: &str) -> Result<Option<portcullis_store::Account>, StoreError> {
        // In process, two lookups cost no round trip.
        use portcullis_store::DirectoryStore;
        match self.alias_target(address).await? {
            Some(account) => self.account(&account).await,
            None => self.account(address).await,
        }
    }

    async fn alias_target(&self, address: &str) -> Result<Option<String>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT a.localpart || '@' || ad.name
                   FROM aliases l JOIN domains ld ON ld.id = l.domain_id
                   JOIN accounts a ON a.id = l.account_id JOIN domains ad ON ad.id = a.domain_id
                  WHERE ld.name = ?1 AND l.localpart = ?2",
                )
                .db()?;
            stmt.query_row(params![domain, local], |r| r.get(0)).optional().db()
        })
        .await
    }
}
