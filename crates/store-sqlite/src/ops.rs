//! The [`Store`] operations: each a write on the writer thread or a read on the pool, running
//! the SQL of `accounts`, `mailboxes`, `messages` and `keywords`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use tokio::sync::broadcast;

use super::accounts::{self, split};
use super::guard;
use super::messages::UidSet;
use super::secrets;
use super::{index_cache, keywords, mailboxes, messages, SqliteStore};
use crate::Db;
use portcullis_store::credential_rules::app_password_state;
use portcullis_store::normalize_domain;
use portcullis_store::*;

/// Summarizes a message on a blocking thread: parsing a large message must not stall the
/// runtime, nor the writer thread that everybody's commits wait on.
pub(super) async fn summarize(raw: Vec<u8>) -> Result<(Vec<u8>, portcullis_mime::Summary), StoreError> {
    tokio::task::spawn_blocking(move || {
        let summary = portcullis_mime::summarize(&raw);
        (raw, summary)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("summarizing a message failed: {e}")))
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn add_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        self.write(move |conn| accounts::add_domain(conn, name)).await
    }

    async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let name = normalize_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        self.write(move |conn| accounts::remove_domain(conn, name)).await
    }

    async fn domains(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM domains ORDER BY name").db()?;
            let names = stmt.query_map([], |r| r.get(0)).db()?.collect::<Result<Vec<String>, _>>().db()?;
            Ok(names)
        })
        .await
    }

    async fn is_local_domain(&self, name: &str) -> Result<bool, StoreError> {
        let Some(name) = normalize_domain(name) else { return Ok(false) };
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM domains WHERE name = ?1").db()?;
            stmt.exists(params![name]).db()
        })
        .await
    }

    async fn add_account(
        &self,
        address: &str,
        secrets: &PasswordSecrets,
        quota: Quota,
    ) -> Result<AccountId, StoreError> {
        let (local, domain) = split(address)?;
        let secrets = secrets.clone();
        self.write(move |conn| accounts::add_account(conn, local, domain, secrets, quota)).await
    }

    async fn remove_account(&self, address: &str) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let account = format!("{local}@{domain}");
        self.write(move |conn| accounts::remove_account(conn, local, domain)).await?;
        self.signals.deliver(NodeSignal::CredentialsChanged { account });
        Ok(())
    }

    async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        self.read(accounts::accounts).await
    }

    async fn set_password(&self, address: &str, secrets: &PasswordSecrets) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let secrets = secrets.clone();
        let account = format!("{local}@{domain}");
        self.write(move |conn| accounts::set_password(conn, local, domain, secrets)).await?;
        self.signals.deliver(NodeSignal::CredentialsChanged { account });
        Ok(())
    }

    async fn set_quota(&self, address: &str, quota: Quota) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        self.write(move |conn| accounts::set_quota(conn, local, domain, quota)).await
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(accounts::ACCOUNT_BY_ADDRESS).db()?;
            let mut rows = stmt.query(params![domain, local]).db()?;
            Ok(match rows.next().db()? {
                Some(r) => Some(Credentials {
                    account: r.get(0).db()?,
                    address: format!("{local}@{domain}"),
                    password_hash: r.get(1).db()?,
                    totp_enabled: r.get::<_, i64>(4).db()? != 0,
                    generation: r.get(5).db()?,
                }),
                None => None,
            })
        })
        .await
    }

    async fn account(&self, address: &str) -> Result<Option<Account>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let default_quota = self.default_quota;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(accounts::ACCOUNT_BY_ADDRESS).db()?;
            let mut rows = stmt.query(params![domain, local]).db()?;
            Ok(match rows.next().db()? {
                Some(r) => Some(Account {
                    id: r.get(0).db()?,
                    address: format!("{local}@{domain}"),
                    quota: accounts::effective_quota(r.get(2).db()?, default_quota),
                    used: r.get::<_, i64>(3).db()?.max(0) as u64,
                }),
                None => None,
            })
        })
        .await
    }

    async fn scram_keys(&self, address: &str) -> Result<Option<ScramCredentials>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        self.read(move |conn| secrets::scram_keys(conn, &local, &domain)).await
    }

    async fn credentials_generations(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>, StoreError> {
        let accounts = accounts.to_vec();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT credentials_generation FROM accounts WHERE id = ?1").db()?;
            let mut found = Vec::with_capacity(accounts.len());
            for account in accounts {
                if let Some(generation) = stmt.query_row(params![account], |r| r.get(0)).optional().db()? {
                    found.push((account, generation));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn add_app_password(
        &self,
        address: &str,
        name: &str,
        digest: &[u8],
        scopes: u8,
        expires: Option<i64>,
    ) -> Result<AppPassword, StoreError> {
        let (local, domain) = split(address)?;
        let (name, digest) = (name.to_string(), digest.to_vec());
        self.write(move |conn| secrets::add_app_password(conn, &local, &domain, &name, &digest, scopes, expires)).await
    }

    async fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, StoreError> {
        let (local, domain) = split(address)?;
        self.read(move |conn| secrets::app_passwords(conn, &local, &domain, None)).await
    }

    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<bool, StoreError> {
        let (local, domain) = split(address)?;
        let name = name.to_string();
        let account = format!("{local}@{domain}");
        let revoked = self.write(move |conn| secrets::revoke_app_password(conn, &local, &domain, &name)).await?;
        if revoked {
            self.signals.deliver(NodeSignal::AppPasswordRevoked { account });
        }
        Ok(revoked)
    }

    async fn find_app_password(&self, address: &str, digest: &[u8]) -> Result<Option<AppPassword>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        let digest = digest.to_vec();
        self.read(move |conn| Ok(secrets::app_passwords(conn, &local, &domain, Some(&digest))?.pop())).await
    }

    async fn app_password_used(&self, id: i64, when: i64, ip: &str) -> Result<(), StoreError> {
        let ip = ip.to_string();
        self.write(move |conn| {
            conn.execute("UPDATE app_passwords SET last_used = ?2, last_ip = ?3 WHERE id = ?1", params![id, when, ip])
                .db()?;
            Ok(())
        })
        .await
    }

    async fn unusable_app_passwords(&self, ids: &[i64], now: i64) -> Result<Vec<i64>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT revoked, expires FROM app_passwords WHERE id = ?1").db()?;
            let mut unusable = Vec::new();
            for id in ids {
                let row = stmt
                    .query_row(params![id], |r| Ok((r.get::<_, i64>(0)? != 0, r.get::<_, Option<i64>>(1)?)))
                    .optional()
                    .db()?;
                // Gone with its account, or no longer active.
                let usable = row.is_some_and(|(revoked, expires)| {
                    app_password_state(revoked, expires, now) == AppPasswordState::Active
                });
                if !usable {
                    unusable.push(id);
                }
            }
            Ok(unusable)
        })
        .await
    }

    async fn totp(&self, address: &str) -> Result<Option<Totp>, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(None) };
        self.read(move |conn| secrets::totp(conn, &local, &domain)).await
    }

    async fn set_totp(
        &self,
        address: &str,
        secret: Option<&[u8]>,
        enabled: bool,
        recovery: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let (local, domain) = split(address)?;
        let secret = secret.map(<[u8]>::to_vec);
        let recovery = recovery.to_vec();
        let account = format!("{local}@{domain}");
        self.write(move |conn| secrets::set_totp(conn, &local, &domain, secret.as_deref(), enabled, &recovery)).await?;
        self.signals.deliver(NodeSignal::CredentialsChanged { account });
        Ok(())
    }

    async fn use_totp_step(&self, account: AccountId, step: i64) -> Result<bool, StoreError> {
        // credential_rules::totp_step_fresh, checked and recorded in one statement.
        self.write(move |conn| {
            Ok(conn
                .execute(
                    "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                    params![account, step],
                )
                .db()?
                > 0)
        })
        .await
    }

    async fn use_recovery_code(&self, account: AccountId, digest: &[u8]) -> Result<bool, StoreError> {
        let digest = digest.to_vec();
        self.write(move |conn| {
            Ok(conn
                .execute("DELETE FROM recovery_codes WHERE account_id = ?1 AND digest = ?2", params![account, digest])
                .db()?
                > 0)
        })
        .await
    }

    async fn totp_failed(&self, account: AccountId, lock_at: u32) -> Result<bool, StoreError> {
        self.write(move |conn| secrets::totp_failed(conn, account, lock_at)).await
    }

    async fn totp_unlock(&self, account: AccountId) -> Result<bool, StoreError> {
        self.write(move |conn| secrets::totp_unlock(conn, account)).await
    }

    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, fresh) = (name.to_string(), fresh.to_vec());
        self.write(move |conn| secrets::server_secret(conn, &name, &fresh)).await
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn deliver(&self, delivery: Delivery) -> Result<(), DeliveryError> {
        let default_quota = self.default_quota;
        let (raw, summary) = summarize(delivery.raw).await?;
        self.write_announcing(move |conn| {
            let changes =
                messages::deliver(conn, delivery.recipients, &raw, &summary, delivery.internal_date, default_quota)?;
            Ok(((), changes))
        })
        .await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>, StoreError> {
        let Ok(name) = normalize_mailbox_name(name) else { return Ok(None) };
        self.read(move |conn| mailboxes::find(conn, account, &name)).await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>, StoreError> {
        self.read(move |conn| mailboxes::list(conn, account)).await
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT uid, size, internal_date FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
                .db()?;
            let rows = stmt
                .query_map(params![mailbox], |r| {
                    Ok(MessageMeta {
                        uid: r.get::<_, i64>(0)? as u32,
                        size: r.get::<_, i64>(1)? as u64,
                        internal_date: r.get(2)?,
                    })
                })
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            Ok(rows)
        })
        .await
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
                  WHERE m.mailbox_id = ?1 AND m.uid = ?2",
                )
                .db()?;
            let mut rows = stmt.query(params![mailbox, uid]).db()?;
            Ok(match rows.next().db()? {
                Some(r) => Some(r.get(0).db()?),
                None => None,
            })
        })
        .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<(), StoreError> {
        if uids.is_empty() {
            return Ok(());
        }
        let uids = uids.to_vec();
        self.write_announcing(move |conn| {
            let removed = messages::remove(conn, mailbox, &uids)?;
            Ok(((), removed.map(|(_, change)| change).into_iter().collect()))
        })
        .await
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxId, MailboxError> {
        let name = normalize_mailbox_name(name)?;
        let special_use = special_use.map(String::from);
        let limit = self.max_mailboxes;
        self.write_announcing(move |conn| mailboxes::create(conn, account, &name, special_use.as_deref(), limit)).await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<(), MailboxError> {
        let name = normalize_mailbox_name(name)?;
        self.write_announcing(move |conn| Ok(((), mailboxes::delete(conn, account, &name)?))).await
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<(), MailboxError> {
        let (from, to) = (normalize_mailbox_name(from)?, normalize_mailbox_name(to)?);
        let limit = self.max_mailboxes;
        self.write_announcing(move |conn| Ok(((), mailboxes::rename(conn, account, &from, &to, limit)?))).await
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| mailboxes::subscriptions(conn, account)).await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<(), MailboxError> {
        let name = normalize_mailbox_name(name)?;
        let limit = self.max_mailboxes;
        self.write(move |conn| mailboxes::set_subscribed(conn, account, &name, subscribed, limit)).await
    }

    async fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus, StoreError> {
        self.read(move |conn| mailboxes::status(conn, mailbox)).await
    }

    async fn quota(&self, account: AccountId) -> Result<(u64, Option<u64>), StoreError> {
        let default_quota = self.default_quota;
        self.read(move |conn| accounts::usage(conn, account, default_quota)).await
    }

    async fn select_mailbox(&self, account: AccountId, name: &str) -> Result<Option<SelectedMailbox>, StoreError> {
        let Ok(name) = normalize_mailbox_name(name) else { return Ok(None) };
        let index = self.index.clone();
        self.read(move |conn| {
            // One snapshot for the row, the keywords and the messages.
            let tx = conn.unchecked_transaction().db()?;
            let Some(mailbox) = mailboxes::find(&tx, account, &name)? else { return Ok(None) };
            let keywords = keywords::mailbox_keywords(&tx, mailbox.id)?;
            let (messages, _) = index_cache::messages(&index, &tx, &mailbox)?;
            Ok(Some(SelectedMailbox { mailbox, keywords, messages }))
        })
        .await
    }

    async fn message_records(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<MessageRecord>, StoreError> {
        let uids = UidSet::new(uids);
        self.read(move |conn| messages::message_records(conn, mailbox, &uids)).await
    }

    async fn message_headers(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let uids = uids.to_vec();
        self.read(move |conn| messages::message_contents(conn, mailbox, &uids, true)).await
    }

    async fn message_header_caches(&self, mailbox: MailboxId, uids: &[u32]) -> Result<HeaderCaches, StoreError> {
        let uids = UidSet::new(uids);
        self.read(move |conn| messages::header_caches(conn, mailbox, &uids)).await
    }

    async fn message_raws(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let uids = uids.to_vec();
        self.read(move |conn| messages::message_contents(conn, mailbox, &uids, false)).await
    }

    async fn message_bytes(
        &self,
        mailbox: MailboxId,
        uid: u32,
        start: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| messages::message_bytes(conn, mailbox, uid, start, len)).await
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate, StoreError> {
        let uids = UidSet::new(uids);
        let flags = flags.clone();
        self.write_announcing(move |conn| keywords::store_flags(conn, mailbox, &uids, op, &flags, unchanged_since))
            .await
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Flags,
        internal_date: i64,
    ) -> Result<u32, DeliveryError> {
        let default_quota = self.default_quota;
        let (raw, summary) = summarize(raw).await?;
        self.write_announcing(move |conn| {
            let (uid, change) = messages::append(conn, mailbox, &raw, &summary, &flags, internal_date, default_quota)?;
            Ok((uid, vec![change]))
        })
        .await
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
    ) -> Result<Vec<(u32, u32)>, DeliveryError> {
        let uids = UidSet::new(uids);
        let default_quota = self.default_quota;
        self.write_announcing(move |conn| messages::copy(conn, from, &uids, to, default_quota)).await
    }

    async fn move_messages(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>, StoreError> {
        let uids = UidSet::new(uids);
        self.write_announcing(move |conn| messages::move_messages(conn, from, &uids, to)).await
    }

    async fn expunge_deleted(&self, mailbox: MailboxId, uids: Option<&[u32]>) -> Result<Vec<u32>, StoreError> {
        let uids = uids.map_or_else(UidSet::all, UidSet::new);
        self.write_announcing(move |conn| messages::expunge_deleted(conn, mailbox, &uids)).await
    }

    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes, StoreError> {
        self.read(move |conn| messages::changes_since(conn, mailbox, modseq)).await
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Option<(u32, u32)>, StoreError> {
        self.write(move |conn| mailboxes::claim_recent(conn, mailbox)).await
    }
}

#[async_trait]
impl CoordinationStore for SqliteStore {
    fn watch(&self, account: AccountId) -> broadcast::Receiver<MailboxChange> {
        self.watchers.subscribe(account)
    }

    fn node(&self) -> &str {
        &self.node
    }

    /// Delivered at once: there is nothing to commit, and no other node to reach.
    async fn publish(&self, signal: NodeSignal) -> Result<(), StoreError> {
        self.signals.deliver(signal);
        Ok(())
    }

    fn signals(&self) -> broadcast::Receiver<NodeSignal> {
        self.signals.subscribe()
    }

    async fn acquire_session(&self, account: AccountId, max: usize) -> Result<Option<SessionSlot>, StoreError> {
        struct Release(Arc<Mutex<HashMap<i64, usize>>>, i64);
        impl Drop for Release {
            fn drop(&mut self) {
                let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = held.get_mut(&self.1) {
                    *count -= 1;
                    if *count == 0 {
                        held.remove(&self.1);
                    }
                }
            }
        }
        let mut held = self.sessions.lock().map_err(|_| StoreError::Backend("session count poisoned".into()))?;
        let count = held.entry(account).or_insert(0);
        if *count >= max {
            if *count == 0 {
                held.remove(&account);
            }
            return Ok(None);
        }
        *count += 1;
        Ok(Some(SessionSlot::new(Box::new(Release(self.sessions.clone(), account)))))
    }

    async fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>, StoreError> {
        struct Release(Arc<Mutex<HashSet<i64>>>, i64);
        impl Drop for Release {
            fn drop(&mut self) {
                if let Ok(mut held) = self.0.lock() {
                    held.remove(&self.1);
                }
            }
        }
        let mut held = self.maildrops.lock().map_err(|_| StoreError::Backend("maildrop lock poisoned".into()))?;
        if !held.insert(account) {
            return Ok(None);
        }
        Ok(Some(MaildropLock::new(Box::new(Release(self.maildrops.clone(), account)))))
    }

    fn close(&self) {
        self.stop_writer();
    }
}

#[async_trait]
impl GuardStore for SqliteStore {
    async fn bans(&self) -> Result<Vec<StoredBan>, StoreError> {
        self.read(guard::bans).await
    }

    async fn ban_changes(&self, after: Option<i64>) -> Result<BanChanges, StoreError> {
        self.read(move |conn| guard::ban_changes(conn, after)).await
    }

    async fn known_sources(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(move |conn| guard::known_sources(conn, since)).await
    }

    async fn put_ban(&self, ban: StoredBan) -> Result<(), StoreError> {
        self.write(move |conn| guard::put_ban(conn, &ban)).await?;
        self.signals.deliver(NodeSignal::BansChanged);
        Ok(())
    }

    async fn delete_ban(&self, network: &str) -> Result<bool, StoreError> {
        let network = network.to_string();
        let lifted = self.write(move |conn| guard::delete_ban(conn, &network)).await?;
        if lifted {
            self.signals.deliver(NodeSignal::BansChanged);
        }
        Ok(lifted)
    }

    async fn record_login(&self, account: AccountId, source: &str, when: i64) -> Result<(), StoreError> {
        let source = source.to_string();
        self.write(move |conn| guard::record_login(conn, account, &source, when)).await
    }

    async fn login_known(&self, address: &str, source: &str, since: i64) -> Result<bool, StoreError> {
        let Ok((local, domain)) = super::accounts::split(address) else { return Ok(false) };
        let source = source.to_string();
        self.read(move |conn| guard::login_known(conn, &local, &domain, &source, since)).await
    }

    // The counts are in memory (see `SqliteStore::counts`): no I/O, answered at once.
    async fn add_sent(
        &self,
        account: AccountId,
        minute: i64,
        messages: i64,
        recipients: i64,
        since: i64,
    ) -> Result<SentCounts, StoreError> {
        Ok(self.counts.add_sent(account, minute, messages, recipients, since))
    }

    async fn add_auth_failure(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        since: i64,
    ) -> Result<u32, StoreError> {
        Ok(self.counts.add_auth_failure(source, account, minute, since))
    }

    async fn add_auth_attempt(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        attempts: i64,
        since: i64,
    ) -> Result<AttemptCounts, StoreError> {
        Ok(self.counts.add_auth_attempt(source, account, minute, attempts, since))
    }

    async fn forget_auth_failures(&self, source: &str) -> Result<(), StoreError> {
        self.counts.forget_auth_failures(source);
        Ok(())
    }

    async fn take_account_failures(&self, account: &str) -> Result<u32, StoreError> {
        Ok(self.counts.take_account_failures(account))
    }

    async fn prune_guard_history(
        &self,
        logins_before: i64,
        bans_before: i64,
        counts_before: i64,
    ) -> Result<(), StoreError> {
        self.counts.prune(counts_before);
        self.write(move |conn| guard::prune(conn, logins_before, bans_before)).await
    }
}
