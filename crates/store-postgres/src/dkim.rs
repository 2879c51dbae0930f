//! DKIM keys ([`DkimKeyStore`]): each change bumps `dkim_keys_generation` in `meta` in the
//! same transaction (a statement trigger does it for the rows a domain's removal cascades
//! away), so a signer on any node notices a rotation by polling one number.

use async_trait::async_trait;

use portcullis_store::*;

use crate::{now, Db, PgStore};

#[async_trait]
impl DkimKeyStore for PgStore {
    async fn add_dkim_keys(
        &self,
        domain: &str,
        keys: Vec<NewDkimKey>,
        retire_current_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let domain = normalize_domain(domain).ok_or_else(|| StoreError::InvalidDomain(domain.to_string()))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // The domain's row locked: two rotations of one domain at once take turns, and the
        // second retires the keys the first added, as one after the other would.
        let domain_id: i64 = tx
            .query_opt("SELECT id FROM domains WHERE name = $1 FOR NO KEY UPDATE", &[&domain])
            .await
            .db()?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NoSuchDomain(domain.clone()))?;
        if let Some(at) = retire_current_at {
            tx.execute(
                "UPDATE dkim_keys SET retire_at = $2 WHERE domain_id = $1 AND retire_at IS NULL",
                &[&domain_id, &at],
            )
            .await
            .db()?;
        }
        let created = now();
        for key in keys {
            let added = tx
                .execute(
                    "INSERT INTO dkim_keys(domain_id, selector, algorithm, private_pkcs8, created, active_from)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain_id, selector) DO NOTHING",
                    &[
                        &domain_id,
                        &key.selector,
                        &key.algorithm.as_str(),
                        &key.private_pkcs8,
                        &created,
                        &key.active_from,
                    ],
                )
                .await
                .db()?;
            if added == 0 {
                // Dropping the transaction rolls back the retirement and the keys added before.
                return Err(StoreError::DkimSelectorExists(format!("{}._domainkey.{domain}", key.selector)));
            }
        }
        tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'dkim_keys_generation'", &[]).await.db()?;
        tx.commit().await.db()
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>, StoreError> {
        let domain = match domain {
            Some(d) => Some(normalize_domain(d).ok_or_else(|| StoreError::InvalidDomain(d.to_string()))?),
            None => None,
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.name, k.selector, k.algorithm, k.private_pkcs8, k.created, k.active_from, k.retire_at
                   FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
                  WHERE $1::text IS NULL OR d.name = $1
                  ORDER BY d.name COLLATE \"C\", k.active_from, k.created, k.selector COLLATE \"C\"",
                &[&domain],
            )
            .await
            .db()?;
        rows.iter()
            .map(|r| {
                let (domain, selector, algorithm): (String, String, String) = (r.get(0), r.get(1), r.get(2));
                let algorithm = DkimAlgorithm::parse(&algorithm).ok_or_else(|| {
                    StoreError::Backend(format!("DKIM key {selector} of {domain}: unknown algorithm {algorithm:?}"))
                })?;
                Ok(DkimKey {
                    domain,
                    selector,
                    algorithm,
                    private_pkcs8: r.get(3),
                    created: r.get(4),
                    active_from: r.get(5),
                    retire_at: r.get(6),
                })
            })
            .collect()
    }

    async fn dkim_keys_generation(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT value FROM meta WHERE key = 'dkim_keys_generation'", &[])
            .await
            .db()?
            .map_or(0, |r| r.get(0)))
    }
}
