//! The store (docs/architecture.md §6, "one store model"): domains, accounts, and mailboxes of messages with
//! UIDVALIDITY, UIDNEXT, per-message UID, flags and MODSEQ, shaped by IMAP. SMTP delivers into
//! it, POP3 reads INBOX through it.
//!
//! [`Store`] is a trait so that PostgreSQL can serve several nodes later; [`SqliteStore`] serves
//! one machine now. Everything that several nodes would have to share lives behind the trait,
//! including the POP3 maildrop lock.
#![forbid(unsafe_code)]

mod address;
mod aliases;
mod dkim;
mod flags;
mod index;
mod names;
mod queue;
mod sqlite;
mod watch;

pub use address::{normalize_address, normalize_domain};
pub use aliases::{Alias, AliasStore};
pub use dkim::{key_states, DkimAlgorithm, DkimKey, DkimKeyState, DkimKeyStore, NewDkimKey};
pub use flags::{FlagOp, Flags};
pub use index::{MessageList, MessageRef};
pub use names::{normalize_mailbox_name, HIERARCHY_DELIMITER, MAX_MAILBOX_NAME};
pub use queue::{
    domain_of, AttemptUpdate, DomainBacklog, LeaseHolder, MessageState, NewQueued, NewRecipient, QueueId, QueuePage,
    QueueSelection, QueueStore, QueueSummary, QueueTotals, QueuedMessage, QueuedPage, QueuedRecipient, RecipientState,
    RecipientUpdate,
};
pub use sqlite::{CheckReport, SqliteStore};

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
    /// Its state at `now` (Unix seconds): a revocation outranks an expiry.
    pub fn state(&self, now: i64) -> AppPasswordState {
        if self.revoked {
            AppPasswordState::Revoked
        } else if self.expires.is_some_and(|e| e <= now) {
            AppPasswordState::Expired
        } else {
            AppPasswordState::Active
        }
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
    /// [`Store::claim_recent`]).
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

/// (UID, header cache) of messages, as `Store::message_header_caches` reads them.
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
    /// The account has as many mailboxes as it may have (see
    /// [`SqliteStore::with_max_mailboxes`]); nothing was created.
    #[error("an account may have at most {0} mailboxes")]
    TooManyMailboxes(usize),
    /// The account has as many subscriptions as it may have (as many as mailboxes).
    #[error("an account may have at most {0} subscriptions")]
    TooManySubscriptions(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for MailboxError {
    fn from(e: rusqlite::Error) -> Self {
        MailboxError::Store(e.into())
    }
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

/// One of a bounded number of concurrent IMAP sessions of an account; dropping it frees the slot.
pub struct SessionSlot {
    _release: Box<dyn Send + Sync>,
}

impl SessionSlot {
    pub fn new(release: Box<dyn Send + Sync>) -> Self {
        SessionSlot { _release: release }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError>;
    /// Refuses while the domain has accounts or aliases.
    async fn remove_domain(&self, name: &str) -> Result<(), StoreError>;
    async fn domains(&self) -> Result<Vec<String>, StoreError>;
    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError>;

    /// Creates the account with its default mailboxes, subscribed to them.
    async fn add_account(
        &self,
        address: &str,
        secrets: &PasswordSecrets,
        quota: Quota,
    ) -> Result<AccountId, StoreError>;
    /// Removes the account and all its mail.
    async fn remove_account(&self, address: &str) -> Result<(), StoreError>;
    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError>;
    /// Sets the argon2id hash and the SCRAM keys together.
    async fn set_password(&self, address: &str, secrets: &PasswordSecrets) -> Result<(), StoreError>;
    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError>;
    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError>;
    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError>;

    /// Stores the message in every recipient's INBOX (with its summary, computed once) in one
    /// transaction that is durable on disk when this returns `Ok`; on any error nothing was
    /// stored.
    async fn deliver(&self, delivery: Delivery) -> Result<(), DeliveryError>;

    /// The mailbox called `name` ("INBOX" in any case).
    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError>;
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>, StoreError>;
    /// The messages of a mailbox in UID order.
    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError>;
    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes the messages with these UIDs (missing ones are ignored), atomically: POP3's
    /// deletion. The UIDs are recorded as expunged for IMAP sessions (QRESYNC).
    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<(), StoreError>;

    // ---- IMAP: mailboxes. Names are UTF-8 with "/" as hierarchy delimiter; "INBOX" (as a
    // whole name or a first level) is matched case-insensitively; see [`normalize_mailbox_name`].

    /// Creates the mailbox and any missing parents ("a/b/c" also creates "a" and "a/b"), each
    /// with a fresh UIDVALIDITY.
    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxId, MailboxError>;
    /// Deletes a mailbox without children, with its messages. Subscriptions stay (RFC 9051 §6.3.9).
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<(), MailboxError>;
    /// Renames the mailbox and its children (keeping their UIDVALIDITY and UIDs), creating
    /// missing parents of `to`, and moves subscriptions along. Renaming INBOX moves its
    /// messages into a new mailbox `to` (new UIDs) and leaves INBOX empty (RFC 9051 §6.3.6).
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<(), MailboxError>;
    /// Subscribed names in name order; they may name mailboxes that no longer exist.
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>, StoreError>;
    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<(), MailboxError>;
    /// STATUS; an error if the mailbox does not exist (any more).
    async fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus, StoreError>;
    /// The account's storage: (bytes used, allowance in effect; `None` is unlimited).
    async fn quota(&self, account: AccountId) -> Result<(u64, Option<u64>), StoreError>;

    // ---- IMAP: messages. UID lists may be in any order and name missing UIDs, which are
    // skipped.

    /// The mailbox called `name` with its keywords and messages: what SELECT loads. Served
    /// from memory when nothing changed since the last SELECT of it, and otherwise from the
    /// changes since then; never stale (see `SqliteStore`'s index cache).
    async fn select_mailbox(&self, account: AccountId, name: &str) -> Result<Option<SelectedMailbox>, StoreError>;
    /// The messages with these UIDs, in UID order.
    async fn message_records(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageRecord>, StoreError>;
    /// The header sections of these messages, read without reading their bodies, in the
    /// order asked (missing UIDs omitted). One call for many, so that FETCH and SEARCH over
    /// a large mailbox do not pay a round trip per message.
    async fn message_headers(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError>;
    /// For SEARCH on header fields: each message's header cache (see
    /// `portcullis_mime::header_cache`; `None` for a message stored without one), in UID
    /// order (missing UIDs omitted). A few hundred bytes per message instead of its header.
    async fn message_header_caches(&self, mailbox: MailboxId, uids: &[u32]) -> Result<HeaderCaches, StoreError>;
    /// The raw bytes of these messages, in the order asked (missing UIDs omitted).
    async fn message_raws(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError>;
    /// Up to `len` bytes of a message from offset `start` (fewer at its end, none past it),
    /// read without reading the rest: FETCH sends a large body a piece at a time rather than
    /// holding it. `None` if the message is gone.
    async fn message_bytes(
        &self,
        mailbox: MailboxId,
        uid: u32,
        start: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Changes the flags of these messages. Every message whose flags change gets the same
    /// new MODSEQ (one per command); messages already as requested keep theirs. With
    /// `unchanged_since`, messages whose MODSEQ is above it are left alone and reported.
    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate, StoreError>;
    /// Stores a message in a mailbox under the account's quota; returns its UID. A mailbox
    /// deleted meanwhile is a `DeliveryError::Store` error.
    async fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Flags,
        internal_date: i64,
    ) -> Result<u32, DeliveryError>;
    /// Copies messages (sharing their bodies) with their flags and internal dates, under the
    /// target account's quota. Returns (source UID, new UID) in source UID order.
    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>, DeliveryError>;
    /// Copies and expunges from the source in one transaction (RFC 6851).
    async fn move_messages(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>, StoreError>;
    /// Removes the messages flagged \Deleted (only those among `uids` when given); returns
    /// their UIDs ascending.
    async fn expunge_deleted(&self, mailbox: MailboxId, uids: Option<&[u32]>) -> Result<Vec<u32>, StoreError>;
    /// Messages changed and UIDs expunged after `modseq`.
    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes, StoreError>;
    /// \Recent (RFC 3501 §2.3.2): the messages of a mailbox that no session has seen yet go to
    /// the session calling this, and to no other. Atomically moves the mailbox's
    /// `recent_from` up to its UIDNEXT and returns the UIDs claimed, `from..to` (`to`
    /// excluded), or `None` when there was nothing to claim. Atomic in the database, so
    /// several server processes sharing it never claim the same message twice.
    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Option<(u32, u32)>, StoreError>;

    /// Changes to the account's mailboxes, announced after they commit. A receiver that
    /// lags gets `RecvError::Lagged`, which means "something changed": writers never wait.
    fn watch(&self, account: AccountId) -> tokio::sync::broadcast::Receiver<MailboxChange>;
    /// A slot among at most `max` concurrent IMAP sessions of the account; `None` when all
    /// are taken.
    async fn acquire_session(&self, account: AccountId, max: usize) -> Result<Option<SessionSlot>, StoreError>;

    /// Exclusive access to an account's maildrop for a POP3 session (RFC 1939 §8);
    /// `None` when another session holds it.
    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError>;

    /// Every ban the store holds, active or expired (the offence history).
    async fn bans(&self) -> Result<Vec<StoredBan>, StoreError>;
    /// What a server following the bans needs: with `after` `None`, every ban (as
    /// [`Store::bans`]); with `Some(n)`, only the bans added or changed and the networks lifted
    /// after change number `n`. Either way with the last change number, for the next call.
    async fn ban_changes(&self, after: Option<i64>) -> Result<BanChanges, StoreError>;
    /// Adds or replaces the ban on `ban.network` (a new change number).
    async fn put_ban(&self, ban: StoredBan) -> Result<(), StoreError>;
    /// Removes the ban on exactly `network` (a new change number); whether there was one.
    async fn delete_ban(&self, network: &str) -> Result<bool, StoreError>;
    /// Remembers that `account` logged in successfully from `source` at `when`.
    async fn record_login(&self, account: AccountId, source: &str, when: i64) -> Result<(), StoreError>;
    /// Whether the account with this address logged in successfully from `source` at or
    /// after `since` (false for unknown addresses).
    async fn login_known(&self, address: &str, source: &str, since: i64) -> Result<bool, StoreError>;
    /// The sources (as [`Store::record_login`] took them) any account logged in from
    /// successfully at or after `since`, each with the latest such time.
    async fn known_sources(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// Forgets known logins older than `logins_before` and bans that ended (or were lifted)
    /// before `bans_before`.
    async fn prune_guard_history(&self, logins_before: i64, bans_before: i64) -> Result<(), StoreError>;

    /// What SCRAM needs about the account (its keys, if it has them yet); `None` without an
    /// account.
    async fn scram_keys(&self, address: &str) -> Result<Option<ScramCredentials>, StoreError>;
    /// The credentials generation of each of `accounts` that still exists (see
    /// [`Credentials::generation`]): an account missing from the answer is gone.
    async fn credentials_generations(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>, StoreError>;

    async fn add_app_password(
        &self,
        address: &str,
        name: &str,
        digest: &[u8],
        scopes: u8,
        expires: Option<i64>,
    ) -> Result<AppPassword, StoreError>;
    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, StoreError>;
    /// Revokes by name; whether there was one.
    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<bool, StoreError>;
    /// The app password of the account `address` with this digest, revoked or not.
    async fn find_app_password(&self, address: &str, digest: &[u8]) -> Result<Option<AppPassword>, StoreError>;
    async fn app_password_used(&self, id: i64, when: i64, ip: &str) -> Result<(), StoreError>;
    /// Which of `ids` no longer open anything at `now`: revoked, expired, or gone with their
    /// account (so that sessions opened with them can be closed).
    async fn unusable_app_passwords(&self, ids: &[i64], now: i64) -> Result<Vec<i64>, StoreError>;

    async fn totp(&self, address: &str) -> Result<Option<Totp>, StoreError>;
    /// Stores a secret (enabled or pending confirmation), or clears TOTP with `None`; also
    /// replaces the recovery codes (digests).
    async fn set_totp(
        &self,
        address: &str,
        secret: Option<&[u8]>,
        enabled: bool,
        recovery: &[Vec<u8>],
    ) -> Result<(), StoreError>;
    /// Accepts time step `step` once: false if a step at or after it was already used.
    async fn use_totp_step(&self, account: AccountId, step: i64) -> Result<bool, StoreError>;
    /// Uses up a recovery code; false if it is not one (or was used).
    async fn use_recovery_code(&self, account: AccountId, digest: &[u8]) -> Result<bool, StoreError>;
    /// Counts a wrong code; the account's TOTP locks when the count reaches `lock_at`.
    /// Whether this very failure locked it.
    async fn totp_failed(&self, account: AccountId, lock_at: u32) -> Result<bool, StoreError>;
    /// Clears the wrong codes and the lock (a right code, a recovery code, the operator);
    /// whether it was locked.
    async fn totp_unlock(&self, account: AccountId) -> Result<bool, StoreError>;

    /// The server's secret called `name`, created from `fresh` the first time it is asked
    /// for, and the same ever after (across restarts, and for every node of one store).
    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Finishes every queued write and releases the database; later calls fail.
    fn close(&self);
}

/// Bans changed since a change number (see [`Store::ban_changes`]).
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
