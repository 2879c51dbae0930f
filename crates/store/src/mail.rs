//! Mailboxes and messages: what SMTP delivers into, IMAP serves and POP3 reads.

use async_trait::async_trait;

use crate::*;

/// Mailboxes and messages: delivery, IMAP's mailboxes and messages, POP3's maildrop.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
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
    /// changes since then; never stale (see the SQLite backend's index cache).
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
}
