//! DKIM keys in SQLite (see `crate::dkim`): written through the writer thread, each change
//! bumping the `dkim_keys_generation` counter in `meta` in the same transaction (a trigger does
//! it for the rows a domain's removal cascades away).

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::accounts::now;
use super::SqliteStore;
use crate::Db;
use portcullis_store::{normalize_domain, StoreError};
use portcullis_store::{DkimAlgorithm, DkimKey, DkimKeyStore, NewDkimKey};

fn bump_generation(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'dkim_keys_generation'", []).db()?;
    Ok(())
}

fn add(conn: &Connection, domain: String, keys: Vec<NewDkimKey>, retire_at: Option<i64>) -> Result<(), StoreError> {
    let domain_id: i64 = conn
        .query_row("SELECT id FROM domains WHERE name = ?1", params![domain], |r| r.get(0))
        .optional()
        .db()?
        .ok_or_else(|| StoreError::NoSuchDomain(domain.clone()))?;
    if let Some(at) = retire_at {
        conn.execute(
            "UPDATE dkim_keys SET retire_at = ?2 WHERE domain_id = ?1 AND retire_at IS NULL",
            params![domain_id, at],
        )
        .db()?;
    }
    let created = now();
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO dkim_keys(domain_id, selector, algorithm, private_pkcs8, created, active_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(domain_id, selector) DO NOTHING",
        )
        .db()?;
    for key in keys {
        let added = insert
            .execute(params![
                domain_id,
                key.selector,
                key.algorithm.as_str(),
                key.private_pkcs8,
                created,
                key.active_from
            ])
            .db()?;
        if added == 0 {
            return Err(StoreError::DkimSelectorExists(format!("{}._domainkey.{domain}", key.selector)));
        }
    }
    bump_generation(conn)
}

fn list(conn: &Connection, domain: Option<String>) -> Result<Vec<DkimKey>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.name, k.selector, k.algorithm, k.private_pkcs8, k.created, k.active_from, k.retire_at
           FROM dkim_keys k JOIN domains d ON d.id = k.domain_id
          WHERE ?1 IS NULL OR d.name = ?1
          ORDER BY d.name, k.active_from, k.created, k.selector",
        )
        .db()?;
    let rows = stmt
        .query_map(params![domain], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    rows.into_iter()
        .map(|(domain, selector, algorithm, private_pkcs8, created, active_from, retire_at)| {
            let algorithm = DkimAlgorithm::parse(&algorithm).ok_or_else(|| {
                StoreError::Backend(format!("DKIM key {selector} of {domain}: unknown algorithm {algorithm:?}"))
            })?;
            Ok(DkimKey { domain, selector, algorithm, private_pkcs8, created, active_from, retire_at })
        })
        .collect()
}

#[async_trait]
impl DkimKeyStore for SqliteStore {
    async fn add_dkim_keys(
        &self,
        domain: &str,
        keys: Vec<NewDkimKey>,
        retire_current_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let domain = normalize_domain(domain).ok_or_else(|| StoreError::InvalidDomain(domain.to_string()))?;
        self.write(move |conn| add(conn, domain, keys, retire_current_at)).await
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>, StoreError> {
        let domain = match domain {
            Some(d) => Some(normalize_domain(d).ok_or_else(|| StoreError::InvalidDomain(d.to_string()))?),
            None => None,
        };
        self.read(move |conn| list(conn, domain)).await
    }

    async fn dkim_keys_generation(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM meta WHERE key = 'dkim_keys_generation'")
                .db()?
                .query_row([], |r| r.get(0))
                .optional()
                .db()?
                .unwrap_or(0))
        })
        .await
    }
}
