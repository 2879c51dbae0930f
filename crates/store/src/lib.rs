//! The store (DESIGN §2, "one store model"): domains, accounts, and mailboxes of messages with
//! UIDVALIDITY, UIDNEXT, per-message UID, flags and MODSEQ, shaped by IMAP. SMTP delivers into
//! it, POP3 reads INBOX through it.
//!
//! [`Store`] is a trait so that PostgreSQL can serve several nodes later; [`SqliteStore`] serves
//! one machine now. Everything that several nodes would have to share lives behind the trait,
//! including the POP3 maildrop lock.
#![forbid(unsafe_code)]

mod address;
mod sqlite;

pub use address::{normalize_address, normalize_domain};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

pub type AccountId = i64;
pub type MailboxId = i64;

/// The mailboxes every new account gets, with their RFC 6154 special-use roles.
pub const DEFAULT_MAILBOXES: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

/// An account's storage allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Whatever `store.default_quota` says.
    Default,
    Unlimited,
    Bytes(u64),
}

/// What authentication needs to know about an account.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub account: AccountId,
    pub address: String,
    pub password_hash: String,
}

/// A local account as delivery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub address: String,
    /// The allowance in effect (the default already applied); `None` is unlimited.
    pub quota: Option<u64>,
    pub used: u64,
}

impl Account {
    /// Whether `size` more bytes still fit.
    pub fn has_room_for(&self, size: u64) -> bool {
        self.quota.is_none_or(|q| self.used.saturating_add(size) <= q)
    }
}

/// An account as `account list` shows it.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub address: String,
    pub quota: Quota,
    pub used: u64,
    pub messages: u64,
    /// Seconds since the Unix epoch.
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct Mailbox {
    pub id: MailboxId,
    pub name: String,
    pub special_use: Option<String>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
}

/// One message for one or more local accounts, each receiving it in its INBOX.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub recipients: Vec<AccountId>,
    pub raw: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    #[error("domain {0} already exists")]
    DomainExists(String),
    #[error("domain {0} still has accounts")]
    DomainInUse(String),
    #[error("account {0} does not exist")]
    NoSuchAccount(String),
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("\"{0}\" is not a valid address")]
    InvalidAddress(String),
    #[error("\"{0}\" is not a valid domain name")]
    InvalidDomain(String),
    #[error("the database failed: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The message would take this account over its allowance; nothing was stored for anyone.
    #[error("mailbox of {0} is full")]
    QuotaExceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DeliveryError {
    fn from(e: rusqlite::Error) -> Self {
        DeliveryError::Store(e.into())
    }
}

/// Held while a POP3 session has a maildrop open; dropping it releases the maildrop.
pub struct MaildropLock {
    _release: Box<dyn Send + Sync>,
}

impl MaildropLock {
    pub fn new(release: Box<dyn Send + Sync>) -> Self {
        MaildropLock { _release: release }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError>;
    /// Refuses while the domain has accounts.
    async fn remove_domain(&self, name: &str) -> Result<(), StoreError>;
    async fn domains(&self) -> Result<Vec<String>, StoreError>;
    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError>;

    /// Creates the account with its default mailboxes.
    async fn add_account(&self, address: &str, password_hash: &str, quota: Quota) -> Result<AccountId, StoreError>;
    /// Removes the account and all its mail.
    async fn remove_account(&self, address: &str) -> Result<(), StoreError>;
    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError>;
    async fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<(), StoreError>;
    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError>;
    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError>;
    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError>;

    /// Stores the message in every recipient's INBOX in one transaction that is durable on
    /// disk when this returns `Ok`; on any error nothing was stored.
    async fn deliver(&self, delivery: Delivery) -> Result<(), DeliveryError>;

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError>;
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>, StoreError>;
    /// The messages of a mailbox in UID order.
    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError>;
    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes the messages with these UIDs (missing ones are ignored), atomically.
    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<(), StoreError>;

    /// Exclusive access to an account's maildrop for a POP3 session (RFC 1939 §8);
    /// `None` when another session holds it.
    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError>;

    /// Finishes every queued write and releases the database; later calls fail.
    fn close(&self);
}
