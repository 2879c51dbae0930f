//! Aliases ([`AliasStore`]): a row per alias address (its domain and local part, like an
//! account's) naming its account; removing the account removes its aliases (ON DELETE
//! CASCADE), and a domain with aliases is not removed. An alias and an account creation in
//! one domain take turns on the domain's row (`directory::lock_domain`), so two nodes never
//! make one address both.

use async_trait::async_trait;

use portcullis_store::*;

use crate::directory::{account_id, address_taken, lock_domain, split};
use crate::mail::effective_quota;
use crate::{now, unique_violation, Db, PgStore};

/// The account of an address or of the alias it is, one row at most (an address is never
/// both): the direct row says `false`, the alias's `true`.
const RECIPIENT: &str = "SELECT a.id, a.localpart || '@' || d.name, a.quota, a.used_bytes, false
       FROM accounts a JOIN domains d ON d.id = a.domain_id
      WHERE d.name = $1 AND a.localpart = $2
     UNION ALL
     SELECT a.id, a.localpart || '@' || ad.name, a.quota, a.used_bytes, true
       FROM aliases l JOIN domains ld ON ld.id = l.domain_id
       JOIN accounts a ON a.id = l.account_id JOIN domains ad ON ad.id = a.domain_id
      WHERE ld.name = $1 AND l.localpart = $2";

#[async_trait]
impl AliasStore for PgStore {
    async fn recipient(&self, address: &str) -> Result<Option<Account>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let statement = client.prepare_cached(RECIPIENT).await.db()?;
        let rows = client.query(&statement, &[&domain, &local]).await.db()?;
        Ok(rows.first().map(|r| Account {
            id: r.get(0),
            // The address as `account` gives it: the one asked for, unless it is an alias.
            address: if r.get(4) { r.get(1) } else { format!("{local}@{domain}") },
            quota: effective_quota(r.get(2), self.default_quota()),
            used: r.get::<_, i64>(3).max(0) as u64,
        }))
    }

    async fn add_alias(&self, address: &str, account: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let (a_local, a_domain) = split(account)?;
        let alias = format!("{local}@{domain}");
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let domain_id = lock_domain(&*tx, &domain).await?;
        let account = account_id(&*tx, &a_local, &a_domain)
            .await?
            .ok_or_else(|| StoreError::NoSuchAccount(format!("{a_local}@{a_domain}")))?;
        if address_taken(&*tx, domain_id, &local).await? {
            return Err(StoreError::AliasExists(alias));
        }
        tx.execute(
            "INSERT INTO aliases(domain_id, localpart, account_id, created) VALUES ($1, $2, $3, $4)",
            &[&domain_id, &local, &account, &now()],
        )
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::AliasExists(alias.clone()),
            None => crate::backend(&e),
        })?;
        tx.commit().await.db()
    }

    async fn remove_alias(&self, address: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM aliases WHERE localpart = $1 AND domain_id = (SELECT id FROM domains WHERE name = $2)",
                &[&local, &domain],
            )
            .await
            .db()?;
        if removed == 0 {
            return Err(StoreError::NoSuchAlias(format!("{local}@{domain}")));
        }
        Ok(())
    }

    async fn aliases(&self, account: Option<&str>) -> Result<Vec<Alias>, StoreError> {
        let (local, domain) = match account {
            Some(a) => split(a).map(|(l, d)| (Some(l), Some(d)))?,
            None => (None, None),
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT l.localpart || '@' || ld.name, a.localpart || '@' || ad.name, l.created
                   FROM aliases l JOIN domains ld ON ld.id = l.domain_id
                   JOIN accounts a ON a.id = l.account_id JOIN domains ad ON ad.id = a.domain_id
                  WHERE $1::text IS NULL OR (a.localpart = $1 AND ad.name = $2)
                  ORDER BY (l.localpart || '@' || ld.name) COLLATE \"C\"",
                &[&local, &domain],
            )
            .await
            .db()?;
        Ok(rows.iter().map(|r| Alias { address: r.get(0), account: r.get(1), created: r.get(2) }).collect())
    }

    async fn alias_target(&self, address: &str) -> Result<Option<String>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT a.localpart || '@' || ad.name
                   FROM aliases l JOIN domains ld ON ld.id = l.domain_id
                   JOIN accounts a ON a.id = l.account_id JOIN domains ad ON ad.id = a.domain_id
                  WHERE ld.name = $1 AND l.localpart = $2",
            )
            .await
            .db()?;
        Ok(client.query_opt(&statement, &[&domain, &local]).await.db()?.map(|r| r.get(0)))
    }
}
