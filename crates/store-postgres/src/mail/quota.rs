//! Storage allowances: what an account uses (kept by the message triggers in
//! `accounts.used_bytes`) against what it may use.

use deadpool_postgres::GenericClient;
use portcullis_store::{AccountId, DeliveryError, StoreError};

use crate::Db;

/// The allowance in effect: the account's own (`NULL` the default, negative unlimited), or
/// the configured default.
pub(crate) fn effective_quota(stored: Option<i64>, default_quota: Option<u64>) -> Option<u64> {
    match stored {
        None => default_quota,
        Some(n) if n < 0 => None,
        Some(n) => Some(n as u64),
    }
}

/// (bytes used, allowance in effect).
pub(super) async fn usage(
    db: &impl GenericClient,
    account: AccountId,
    default_quota: Option<u64>,
) -> Result<(u64, Option<u64>), StoreError> {
    let stmt = db.prepare_cached("SELECT quota, used_bytes FROM accounts WHERE id = $1").await.db()?;
    let row =
        db.query_opt(&stmt, &[&account]).await.db()?.ok_or_else(|| StoreError::NoSuchAccount(format!("#{account}")))?;
    let (quota, used): (Option<i64>, i64) = (row.get(0), row.get(1));
    Ok((used.max(0) as u64, effective_quota(quota, default_quota)))
}

/// `QuotaExceeded` unless `size` more bytes fit in the account's allowance. Exact only under
/// the account's row lock (`locks::lock_accounts`), which every caller holds.
pub(super) async fn check_room(
    db: &impl GenericClient,
    account: AccountId,
    size: u64,
    default_quota: Option<u64>,
) -> Result<(), DeliveryError> {
    let (used, limit) = usage(db, account, default_quota).await?;
    if !portcullis_store::has_room(used, limit, size) {
        let stmt = db
            .prepare_cached(
                "SELECT a.localpart || '@' || d.name FROM accounts a JOIN domains d ON d.id = a.domain_id
                  WHERE a.id = $1",
            )
            .await
            .db()?;
        let address: String = db.query_one(&stmt, &[&account]).await.db()?.get(0);
        return Err(DeliveryError::QuotaExceeded(address));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_quota_or_the_default() {
        assert_eq!(effective_quota(None, Some(10)), Some(10));
        assert_eq!(effective_quota(None, None), None);
        assert_eq!(effective_quota(Some(-1), Some(10)), None);
        assert_eq!(effective_quota(Some(5), None), Some(5));
    }
}
