//! Aliases (issue 15): more addresses for an account. Mail to an alias is delivered to its
//! account, and the account may send from it (envelope sender and header From:). An alias's
//! domain must be one of ours, and an address is either an account or an alias, never both.
//! A trait of its own ([`AliasStore`]), apart from [`crate::Store`]: its consumers are the
//! recipient and sender checks of SMTP, the CLI and the admin API.

use async_trait::async_trait;

use crate::StoreError;

/// One alias and the account it leads to, both normalized (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub address: String,
    pub account: String,
    /// Unix seconds.
    pub created: i64,
}

#[async_trait]
pub trait AliasStore: Send + Sync + 'static {
    /// Makes `address` an alias of `account`. Refused when the alias's domain is not local
    /// ([`StoreError::NoSuchDomain`]), the account does not exist, or the address is already
    /// an account or an alias ([`StoreError::AliasExists`]).
    async fn add_alias(&self, address: &str, account: &str) -> Result<(), StoreError>;

    /// Removes an alias ([`StoreError::NoSuchAlias`] when there is none).
    async fn remove_alias(&self, address: &str) -> Result<(), StoreError>;

    /// Every alias, or those of one account, by address.
    async fn aliases(&self, account: Option<&str>) -> Result<Vec<Alias>, StoreError>;

    /// The account an address is an alias of, if it is one.
    async fn alias_target(&self, address: &str) -> Result<Option<String>, StoreError>;

    /// The account mail to `address` goes to: the account of that address, or the account it
    /// is an alias of (an address is never both); `None` when it is neither. What
    /// [`AliasStore::alias_target`] and then `DirectoryStore::account` answer, in one lookup:
    /// SMTP asks it for every recipient, and on a database server each lookup is a round trip.
    async fn recipient(&self, address: &str) -> Result<Option<crate::Account>, StoreError>;
}
