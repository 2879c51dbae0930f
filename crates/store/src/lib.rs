//! The store (docs/architecture.md §6, "one store model"): domains, accounts, and mailboxes of messages with
//! UIDVALIDITY, UIDNEXT, per-message UID, flags and MODSEQ, shaped by IMAP. SMTP delivers into
//! it, POP3 reads INBOX through it.
//!
//! This crate names no backend: it holds the traits, the types they speak in and the pure
//! helpers every backend shares (names, flags, the message index, the change hub).
//! `portcullis-store-sqlite` serves one machine, a PostgreSQL backend several nodes, and
//! `portcullis-store-backends` opens whichever `store.url` names. Everything that several nodes
//! would have to share lives behind the trait, including the POP3 maildrop lock.
#![forbid(unsafe_code)]

mod address;
mod aliases;
mod allowance;
mod check;
mod coordination;
pub mod counts;
pub mod credential_rules;
mod directory;
mod dkim;
mod flags;
mod guard;
mod index;
pub mod index_cache;
mod mail;
mod names;
mod queue;
mod signal;
pub mod transfer;
mod watch;

pub use address::{normalize_address, normalize_domain};
pub use aliases::{Alias, AliasStore};
// The rules of a delivery every backend applies (who gets a copy, the all-or-nothing allowance).
pub use allowance::{delivery_recipients, first_without_room, has_room};
pub use check::{CheckReport, CHECK_LIST_AT_MOST};
pub use coordination::CoordinationStore;
pub use directory::DirectoryStore;
pub use dkim::{key_states, DkimAlgorithm, DkimKey, DkimKeyState, DkimKeyStore, NewDkimKey};
// The keyword helpers and the name helpers below are for backends: one definition of the
// stored keyword form and of the hierarchy, whatever the database.
pub use flags::{decode_keywords, encode_keywords, is_valid_keyword, sort_keywords, FlagOp, Flags};
pub use guard::{AttemptCounts, GuardStore, SentCounts};
pub use index::{MessageList, MessageRef};
pub use mail::MailStore;
pub use names::{descendant_range, is_inbox, normalize_mailbox_name, parents, HIERARCHY_DELIMITER, MAX_MAILBOX_NAME};
pub use queue::{
    domain_of, AttemptUpdate, DomainBacklog, LeaseHolder, MessageState, NewQueued, NewRecipient, QueueId, QueuePage,
    QueueSelection, QueueStore, QueueSummary, QueueTotals, QueuedMessage, QueuedPage, QueuedRecipient, RecipientState,
    RecipientUpdate,
};
pub use signal::{new_node_id, NodeSignal, Signals};
pub use watch::Watchers;

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
    /// With TOTP on, the main password no longer opens the mail protocols.
    pub totp_enabled: bool,
    /// Grows whenever what opened a session may stop opening it (a new password, TOTP turned
    /// on): sessions opened under an older generation are closed.
    pub generation: i64,
}

/// What a SCRAM exchange needs to know about an account.
#[derive(Debug, Clone)]
pub struct ScramCredentials {
    pub account: AccountId,
    /// `None` until the password is next set (SCRAM cannot work from an argon2 hash).
    pub scram: Option<StoredScram>,
    pub totp_enabled: bool,
    /// See [`Credentials::generation`].
    pub generation: i64,
}

/// SCRAM-SHA-256 keys as stored (see portcullis_sasl::ScramKeys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScram {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Everything derived from a password when it is set.
#[derive(Debug, Clone)]
pub struct PasswordSecrets {
    pub hash: String,
    pub scram: Option<StoredScram>,
}

impl PasswordSecrets {
    /// Only an argon2id hash (no SCRAM): for tests and imports.
    pub fn hash_only(hash: &str) -> PasswordSecrets {
        PasswordSecrets { hash: hash.to_string(), scram: None }
    }
}

pub const SCOPE_IMAP: u8 = 1;
pub const SCOPE_POP3: u8 = 2;
pub const SCOPE_SMTP: u8 = 4;
/// The scopes by the names the CLI and the admin API give them, in the order they are shown.
pub const SCOPE_NAMES: [(&str, u8); 3] = [("imap", SCOPE_IMAP), ("pop3", SCOPE_POP3), ("smtp", SCOPE_SMTP)];

/// An app password as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub account: AccountId,
    pub name: String,
    /// Bit set of [`SCOPE_IMAP`], [`SCOPE_POP3`], [`SCOPE_SMTP`].
    pub scopes: u8,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
    pub last_ip: Option<String>,
    pub revoked: bool,
}

/// Whether an app password still opens anything, as listings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppPasswordState {
    Active,
    /// Past its expiry (it may still be revoked for the record, but need not be).
    Expired,
    Revoked,
}

impl AppPasswordState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppPasswordState::Active => "active",
            AppPasswordState::Expired => "expired",
            AppPasswordState::Revoked => "revoked",
        }
    }
}

impl AppPassword {
    /// Its state at `now` (Unix seconds): see [`credential_rules::app_password_state`].
    pub fn state(&self, now: i64) -> AppPasswordState {
        credential_rules::app_password_state(self.revoked, self.expires, now)
    }

    /// The names of the protocols it opens (see [`SCOPE_NAMES`]).
    pub fn scope_names(&self) -> Vec<&'static str> {
        SCOPE_NAMES.iter().filter(|(_, bit)| self.scopes & bit != 0).map(|(name, _)| *name).collect()
    }
}

/// An account's TOTP state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    pub account: AccountId,
    pub secret: Vec<u8>,
    pub enabled: bool,
    pub last_step: i64,
    /// Wrong codes given (with the right password) since the last right one.
    pub failures: u32,
    /// Too many wrong codes: no TOTP code is accepted until a recovery code is used or the
    /// operator unlocks it.
    pub locked: bool,
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
    /// The first UID no session has yet been told of as \Recent (RFC 3501 §2.3.2): messages
    /// from here on are recent for the next IMAP4rev1 session that selects the mailbox (see
    /// [`MailStore::claim_recent`]).
    pub recent_from: u32,
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

/// A message as SELECT loads it: what a session keeps in memory for every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIndex {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
}

/// What SELECT and EXAMINE need, read in one snapshot: `messages` and `keywords` are as of
/// `mailbox.highestmodseq`.
#[derive(Debug, Clone)]
pub struct SelectedMailbox {
    pub mailbox: Mailbox,
    /// Every keyword ever used in the mailbox (FLAGS, PERMANENTFLAGS), in name order.
    pub keywords: Vec<String>,
    /// Every message in UID order, shared with other sessions until changed (see
    /// [`MessageList`]).
    pub messages: MessageList,
}

/// (UID, header cache) of messages, as `MailStore::message_header_caches` reads them.
pub type HeaderCaches = Vec<(u32, Option<Vec<u8>>)>;

/// A message with its per-content summary: everything FETCH answers without the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub internal_date: i64,
    /// The IMAP ENVELOPE, BODYSTRUCTURE and BODY, serialised (see `portcullis_mime::Summary`).
    pub envelope: Vec<u8>,
    pub bodystructure: Vec<u8>,
    pub body: Vec<u8>,
    /// Bytes of the header section, including the blank line that ends it.
    pub header_len: u64,
    /// The `Date:` header's date and time in its own zone, as seconds since 1970-01-01 00:00
    /// (SEARCH SENTBEFORE etc. compare its day; see `portcullis_mime::Summary::sent_date`).
    pub sent_date: Option<i64>,
}

/// STATUS (RFC 9051 §6.3.11, with STATUS=SIZE and CONDSTORE's HIGHESTMODSEQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    /// Sum of the message sizes.
    pub size: u64,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    /// Messages no session has claimed as \Recent yet (RFC 3501 STATUS RECENT).
    pub recent: u32,
}

/// What changed in a mailbox since a MODSEQ (CONDSTORE CHANGEDSINCE, QRESYNC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Messages whose MODSEQ is above the one asked about, in UID order.
    pub changed: Vec<MessageIndex>,
    /// UIDs removed with a MODSEQ above the one asked about, ascending (QRESYNC VANISHED).
    pub expunged: Vec<u32>,
    pub highestmodseq: u64,
    /// The mailbox's [`Mailbox::recent_from`] in the same snapshot: new messages at or above
    /// it are still unclaimed, so a session seeing them claims them.
    pub recent_from: u32,
}

/// The result of STORE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsUpdate {
    /// Messages whose flags changed, with their new flags and MODSEQ, in UID order.
    pub updated: Vec<MessageIndex>,
    /// Messages left alone because their MODSEQ was above UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub modified: Vec<u32>,
}

/// Announced after a write that changed a mailbox has committed. `modseq` is the mailbox's
/// HIGHESTMODSEQ after the change. A session that sees one re-reads what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxChange {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub modseq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("the mailbox does not exist")]
    NoSuchMailbox,
    #[error("the mailbox already exists")]
    AlreadyExists,
    #[error("the mailbox has children")]
    HasChildren,
    #[error("INBOX cannot be deleted")]
    InboxCannotBeDeleted,
    #[error("invalid mailbox name")]
    InvalidName,
    /// The account has as many mailboxes as it may have (the backend's limit, set from
    /// `limits.max_mailboxes_per_account`); nothing was created.
    #[error("an account may have at most {0} mailboxes")]
    TooManyMailboxes(usize),
    /// The account has as many subscriptions as it may have (as many as mailboxes).
    #[error("an account may have at most {0} subscriptions")]
    TooManySubscriptions(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    #[error("{0} is already an account or an alias")]
    AliasExists(String),
    #[error("there is no alias {0}")]
    NoSuchAlias(String),
    #[error("an app password named {0} already exists")]
    AppPasswordExists(String),
    #[error("\"{0}\" is not a valid address")]
    InvalidAddress(String),
    #[error("\"{0}\" is not a valid domain name")]
    InvalidDomain(String),
    /// A DKIM key of the domain already has this selector (`SELECTOR._domainkey.DOMAIN`).
    #[error("a DKIM key {0} already exists")]
    DkimSelectorExists(String),
    #[error("the database failed: {0}")]
    Backend(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The message would take this account over its allowance; nothing was stored for anyone.
    #[error("mailbox of {0} is full")]
    QuotaExceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// One of a bounded number of concurrent IMAP sessions of an account; dropping it frees the slot.
pub struct SessionSlot {
    _release: Box<dyn Send + Sync>,
}

impl SessionSlot {
    pub fn new(release: Box<dyn Send + Sync>) -> Self {
        SessionSlot { _release: release }
    }
}

/// Everything a node needs of its store, whatever the backend: one trait per concern, so a
/// part of the server can ask for only what it uses.
pub trait Store:
    MailStore + DirectoryStore + GuardStore + CoordinationStore + QueueStore + DkimKeyStore + AliasStore
{
}

impl<T> Store for T where
    T: MailStore + DirectoryStore + GuardStore + CoordinationStore + QueueStore + DkimKeyStore + AliasStore + ?Sized
{
}

/// Bans changed since a change number (see [`GuardStore::ban_changes`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BanChanges {
    /// Added or changed (each the whole ban as it is now).
    pub bans: Vec<StoredBan>,
    /// Networks whose ban was lifted.
    pub lifted: Vec<String>,
    /// The last change number included: pass it as `after` next time.
    pub seq: i64,
}

/// A ban as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBan {
    /// A network in CIDR form ("192.0.2.7/32", "2001:db8:1:2::/64").
    pub network: String,
    /// Unix seconds; `None` is permanent.
    pub until: Option<i64>,
    pub reason: String,
    pub offence: u32,
    pub manual: bool,
    pub created: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_passwords_state_and_scopes_as_listed() {
        let mut a = AppPassword {
            id: 1,
            account: 1,
            name: "phone".into(),
            scopes: SCOPE_IMAP | SCOPE_SMTP,
            created: 100,
            expires: Some(200),
            last_used: None,
            last_ip: None,
            revoked: false,
        };
        assert_eq!(a.scope_names(), ["imap", "smtp"]);
        assert_eq!(a.state(199), AppPasswordState::Active);
        assert_eq!(a.state(200), AppPasswordState::Expired);
        a.revoked = true;
        assert_eq!(a.state(150).as_str(), "revoked");
        assert_eq!(a.state(300), AppPasswordState::Revoked, "a revocation outranks an expiry");
    }
}
