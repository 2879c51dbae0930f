//! [`MailStore`] on PostgreSQL, with the SQLite backend's behaviour (`portcullis_store`'s
//! `sqlite/{ops,messages,mailboxes,keywords}.rs`) on a database several nodes write at once.
//!
//! Every write is one transaction that answers `Ok` only after its COMMIT returned. Local
//! deliveries share theirs: concurrent ones run in one transaction, one savepoint each, and
//! one COMMIT answers them all (group commit, see [`batch`]). A STORE naming no keyword is
//! one call of a SQL function, its own implicit transaction, taking the same locks in the same
//! order as the others (see [`flags`]). What SQLite
//! gets from its single writer, PostgreSQL gets from row locks, always taken in one order so
//! that two writers never wait for each other in a cycle (see [`locks`]):
//! 1. the rows of the accounts whose messages or mailboxes the write adds or removes, by id;
//! 2. then mailbox rows: UIDs and MODSEQs come from `UPDATE mailboxes … RETURNING`, whose lock
//!    lasts until commit, so two nodes never hand out the same UID and a mailbox's MODSEQs are
//!    committed in the order they were allocated;
//! 3. a mailbox's keyword list only under that mailbox's lock.
//!
//! A write that reads messages and acts on what it read (STORE, EXPUNGE, MOVE) takes the
//! mailbox's lock before reading. Only writes holding account locks take more than one
//! mailbox lock, so two of them on the same mailboxes meet at the account lock first.
//!
//! Changes are announced to IDLE sessions on every node through `coordination`: a NOTIFY sent
//! inside the transaction for the other nodes (PostgreSQL delivers it only when, and if, its
//! transaction commits, so a session never hears of a change it cannot read yet), and to this
//! node's sessions right after the commit.
//!
//! Reads that return several things (SELECT, STATUS, changes since a MODSEQ) see one snapshot:
//! one statement where one can say it all (a statement needs no BEGIN and ROLLBACK around it),
//! a REPEATABLE READ transaction otherwise. SELECT keeps recently selected lists in memory as
//! SQLite's backend does (`portcullis_store::index_cache`), brought forward from the
//! database's MODSEQs (see `changes`).

pub(crate) mod batch;
mod bodies;
mod changes;
mod content;
mod copy;
pub(crate) mod deliver;
mod flags;
mod locks;
mod mailboxes;
mod quota;

// What account management (`directory`) shares with the mail store.
pub(crate) use mailboxes::next_uidvalidity;
pub(crate) use quota::effective_quota;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use portcullis_store::*;
use tokio_postgres::IsolationLevel;

use crate::{Db, PgStore};

/// A set of UIDs for a query: sorted, each once; `None` means every UID of the mailbox.
pub(super) struct Uids(Option<Vec<i64>>);

impl Uids {
    fn new(uids: &[u32]) -> Uids {
        let mut list: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
        list.sort_unstable();
        list.dedup();
        Uids(Some(list))
    }

    fn all() -> Uids {
        Uids(None)
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_some_and(Vec::is_empty)
    }

    /// The UIDs, `None` for every UID of the mailbox.
    fn listed(&self) -> Option<&[i64]> {
        self.0.as_deref()
    }

    /// `sql` with `{uids}` replaced by the condition on `uid` (parameter `$2` when there is
    /// one; `uid >= 1`, true of every UID, for all), and its parameters after the mailbox id.
    /// A `{uids}` may follow a table alias (`m.{uids}`). Two spellings rather than
    /// `$2 IS NULL OR …`, which would keep a prepared statement from using the UID index.
    fn query<'a>(
        &'a self,
        sql: &str,
        mailbox: &'a MailboxId,
    ) -> (String, Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>) {
        match &self.0 {
            Some(list) => (sql.replace("{uids}", "uid = ANY($2)"), vec![mailbox, list]),
            None => (sql.replace("{uids}", "uid >= 1"), vec![mailbox]),
        }
    }
}

impl PgStore {
    /// At most `max` mailboxes per account, and as many subscriptions, as
    /// `SqliteStore::with_max_mailboxes`: CREATE and RENAME that would make more (parents
    /// included) fail with [`MailboxError::TooManyMailboxes`], a subscription more with
    /// [`MailboxError::TooManySubscriptions`]. Counted under the account's row lock, so two
    /// nodes creating at once cannot both take the last place.
    pub fn with_max_mailboxes(mut self, max: usize) -> PgStore {
        self.max_mailboxes = Some(max);
        self
    }

    /// A connection for a read that must see one snapshot across several statements.
    async fn snapshot<'a>(client: &'a mut deadpool_postgres::Client) -> Result<Transaction<'a>, StoreError> {
        client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await.db()
    }
}

#[async_trait]
impl MailStore for PgStore {
    async fn deliver(&self, delivery: Delivery) -> Result<(), DeliveryError> {
        // Summarized before it queues: parsing must not hold a batch's row locks.
        let (raw, summary) = deliver::summarize(delivery.raw).await?;
        let job = batch::Job { recipients: delivery.recipients, raw, summary, internal_date: delivery.internal_date };
        // `Ok` only once the batch holding this delivery has committed (see `batch`).
        self.deliveries.deliver(job).await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError> {
        let Ok(name) = normalize_mailbox_name(name) else { return Ok(None) };
        let client = self.client().await?;
        mailboxes::find(&client, account, &name).await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>, StoreError> {
        let client = self.client().await?;
        mailboxes::list(&client, account).await
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
        let client = self.client().await?;
        content::messages(&client, mailbox).await
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.client().await?;
        Ok(bodies::whole_messages(&mut client, mailbox, &[uid]).await?.pop().map(|(_, raw)| raw))
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<(), StoreError> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let changes = copy::expunge(&tx, mailbox, uids).await?;
        self.coordination.commit_announcing(tx, &changes).await
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxId, MailboxError> {
        let name = normalize_mailbox_name(name)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (id, changes) = mailboxes::create(&tx, account, &name, special_use, self.max_mailboxes).await?;
        self.coordination.commit_announcing(tx, &changes).await?;
        Ok(id)
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<(), MailboxError> {
        let name = normalize_mailbox_name(name)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let changes = mailboxes::delete(&tx, account, &name).await?;
        Ok(self.coordination.commit_announcing(tx, &changes).await?)
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<(), MailboxError> {
        let (from, to) = (normalize_mailbox_name(from)?, normalize_mailbox_name(to)?);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let changes = mailboxes::rename(&tx, account, &from, &to, self.max_mailboxes).await?;
        Ok(self.coordination.commit_announcing(tx, &changes).await?)
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        mailboxes::subscriptions(&client, account).await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<(), MailboxError> {
        let name = normalize_mailbox_name(name)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        mailboxes::set_subscribed(&tx, account, &name, subscribed, self.max_mailboxes).await?;
        Ok(tx.commit().await.db()?)
    }

    async fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus, StoreError> {
        let client = self.client().await?;
        mailboxes::status(&client, mailbox).await
    }

    async fn quota(&self, account: AccountId) -> Result<(u64, Option<u64>), StoreError> {
        let client = self.client().await?;
        quota::usage(&client, account, self.default_quota).await
    }

    async fn select_mailbox(&self, account: AccountId, name: &str) -> Result<Option<SelectedMailbox>, StoreError> {
        let Ok(name) = normalize_mailbox_name(name) else { return Ok(None) };
        let mut client = self.client().await?;
        changes::select(&mut client, &self.index, account, &name).await
    }

    async fn message_records(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageRecord>, StoreError> {
        let client = self.client().await?;
        content::message_records(&client, mailbox, &Uids::new(uids)).await
    }

    async fn message_headers(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        content::message_headers(&client, mailbox, uids).await
    }

    async fn message_header_caches(&self, mailbox: MailboxId, uids: &[u32]) -> Result<HeaderCaches, StoreError> {
        let client = self.client().await?;
        content::header_caches(&client, mailbox, &Uids::new(uids)).await
    }

    async fn message_raws(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let mut client = self.client().await?;
        bodies::whole_messages(&mut client, mailbox, uids).await
    }

    async fn message_bytes(
        &self,
        mailbox: MailboxId,
        uid: u32,
        start: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        content::message_bytes(&client, mailbox, uid, start, len).await
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate, StoreError> {
        let uids = Uids::new(uids);
        if let (false, Some(listed)) = (flags::names_keywords(flags), uids.listed()) {
            // One statement (see `flags`): its commit, and the NOTIFY, done when it returns.
            let client = self.client().await?;
            let target = self.coordination.notify_target();
            let (update, change) =
                flags::store_system_flags(&client, mailbox, listed, op, flags.system, unchanged_since, target).await?;
            if let Some(change) = change {
                self.coordination.announce_committed(&[change]);
            }
            return Ok(update);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (update, changes) = flags::store_flags(&tx, mailbox, &uids, op, flags, unchanged_since).await?;
        match changes {
            Some(changes) => self.coordination.commit_announcing(tx, &changes).await?,
            // Nothing to keep, the MODSEQ taken as the lock included.
            None => tx.rollback().await.db()?,
        }
        Ok(update)
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Flags,
        internal_date: i64,
    ) -> Result<u32, DeliveryError> {
        let (raw, summary) = deliver::summarize(raw).await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (uid, change) =
            deliver::append(&tx, mailbox, &raw, &summary, &flags, internal_date, self.default_quota).await?;
        self.coordination.commit_announcing(tx, &[change]).await?;
        Ok(uid)
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>, DeliveryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (pairs, changes) = copy::copy(&tx, from, &Uids::new(uids), to, self.default_quota).await?;
        self.coordination.commit_announcing(tx, &changes).await?;
        Ok(pairs)
    }

    async fn move_messages(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (pairs, changes) = copy::move_messages(&tx, from, &Uids::new(uids), to).await?;
        self.coordination.commit_announcing(tx, &changes).await?;
        Ok(pairs)
    }

    async fn expunge_deleted(&self, mailbox: MailboxId, uids: Option<&[u32]>) -> Result<Vec<u32>, StoreError> {
        let uids = uids.map_or_else(Uids::all, Uids::new);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let (removed, changes) = copy::expunge_deleted(&tx, mailbox, &uids).await?;
        self.coordination.commit_announcing(tx, &changes).await?;
        Ok(removed)
    }

    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes, StoreError> {
        let client = self.client().await?;
        changes::changes_since(&client, mailbox, modseq).await
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Option<(u32, u32)>, StoreError> {
        let client = self.client().await?;
        mailboxes::claim_recent(&client, mailbox).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_sorted_once_each_and_spell_their_condition() {
        let uids = Uids::new(&[5, 1, 5, 3]);
        assert_eq!(uids.0.as_deref(), Some(&[1i64, 3, 5][..]));
        let mailbox: MailboxId = 9;
        let (sql, params) = uids.query("SELECT uid FROM messages WHERE mailbox_id = $1 AND {uids}", &mailbox);
        assert_eq!(sql, "SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2)");
        assert_eq!(params.len(), 2);
        let all = Uids::all();
        let (sql, params) = all.query("SELECT uid FROM messages WHERE mailbox_id = $1 AND {uids}", &mailbox);
        assert_eq!(sql, "SELECT uid FROM messages WHERE mailbox_id = $1 AND uid >= 1");
        assert_eq!(params.len(), 1);
        assert!(Uids::new(&[]).is_empty() && !all.is_empty());
    }
}
