//! The guard's memory ([`GuardStore`]) shared by every node: bans numbered in the order they
//! change, so a node re-reads only what changed since its last look, and the addresses
//! accounts logged in from; and the counts every node shares (sending per account, failed
//! logins and login attempts per source and account), each counted and summed in one statement, one round trip.
//!
//! Change numbers come from the `ban_seq` row of `meta`, bumped by an UPDATE whose row lock
//! lasts until commit: writers on different nodes take turns, so numbers are handed out in
//! commit order and a reader never sees a number before a smaller one that commits later (a
//! sequence would allow exactly that, and the follower would miss the smaller one for good).
//!
//! The counts commit without waiting for the disk (`commit_without_waiting!`); bans, known
//! addresses and everything else here commit as mail does.

use async_trait::async_trait;
use tokio_postgres::{GenericClient, IsolationLevel, Row};

use portcullis_store::*;

use crate::coordination::notify_signal;
use crate::directory::split;
use crate::{now, Db, PgStore};

const BAN_COLUMNS: &str = "network, until, reason, offence, manual, created";
/// The bans changed after a number (schema test: it must use `bans_by_seq`).
pub(crate) const BANS_CHANGED: &str =
    "SELECT network, until, reason, offence, manual, created FROM bans WHERE seq > $1 ORDER BY seq";
/// The bans lifted after a number (schema test: it must use `lifted_bans_by_seq`).
pub(crate) const BANS_LIFTED: &str = "SELECT network FROM lifted_bans WHERE seq > $1 ORDER BY seq";

/// An extra output column for the guard's count statements that makes the statement's own
/// (implicit) transaction commit without waiting for its WAL to reach the disk, as
/// `SET LOCAL synchronous_commit = off` would in an explicit one: the setting is read at
/// commit, so setting it while the statement runs is enough, and it ends with the transaction.
///
/// Why a count may: it is evidence for a rate limit, not mail. A crash of PostgreSQL loses at
/// most the last fraction of a second of counts (the WAL writer flushes every 200 ms by
/// default, and any later durable commit flushes them too), which lets through at most a few
/// more messages or guesses than the limit, once; SQLite's node keeps the same counts in memory
/// only, and loses them all at a restart. What waiting would cost: the sending count is taken
/// for every message before it is stored (a commit of its own), and with the account's minute
/// row locked until that commit is durable, every client of the account queues behind one
/// disk flush per message: half of one node's submission latency on PostgreSQL (issue 17's
/// benchmark). Done in SQL rather than by a `SET LOCAL` so it stays one round trip.
macro_rules! commit_without_waiting {
    () => {
        "set_config('synchronous_commit', 'off', true)"
    };
}

fn ban(r: &Row) -> StoredBan {
    StoredBan {
        network: r.get(0),
        until: r.get(1),
        reason: r.get(2),
        offence: r.get::<_, i64>(3).clamp(0, u32::MAX as i64) as u32,
        manual: r.get(4),
        created: r.get(5),
    }
}

async fn all_bans(client: &impl GenericClient) -> Result<Vec<StoredBan>, StoreError> {
    let rows =
        client.query(&format!("SELECT {BAN_COLUMNS} FROM bans ORDER BY network COLLATE \"C\""), &[]).await.db()?;
    Ok(rows.iter().map(ban).collect())
}

/// The next ban change number; the `ban_seq` row stays locked until the transaction ends.
async fn next_ban_seq(client: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(client
        .query_one("UPDATE meta SET value = value + 1 WHERE key = 'ban_seq' RETURNING value", &[])
        .await
        .db()?
        .get(0))
}

#[async_trait]
impl GuardStore for PgStore {
    async fn bans(&self) -> Result<Vec<StoredBan>, StoreError> {
        let client = self.client().await?;
        all_bans(&**client).await
    }

    async fn ban_changes(&self, after: Option<i64>) -> Result<BanChanges, StoreError> {
        let mut client = self.client().await?;
        // One snapshot for the number and the rows: a change committed between the two reads
        // would otherwise be counted as seen without being read.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let seq: i64 = tx.query_one("SELECT value FROM meta WHERE key = 'ban_seq'", &[]).await.db()?.get(0);
        let (bans, lifted) = match after {
            None => (all_bans(&*tx).await?, Vec::new()),
            Some(after) => {
                let bans = tx.query(BANS_CHANGED, &[&after]).await.db()?;
                let lifted = tx.query(BANS_LIFTED, &[&after]).await.db()?;
                (bans.iter().map(ban).collect(), lifted.iter().map(|r| r.get(0)).collect())
            }
        };
        tx.commit().await.db()?;
        Ok(BanChanges { bans, lifted, seq })
    }

    async fn put_ban(&self, ban: StoredBan) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let seq = next_ban_seq(&*tx).await?;
        tx.execute(
            "INSERT INTO bans(network, until, reason, offence, manual, created, seq) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (network) DO UPDATE SET until = excluded.until, reason = excluded.reason,
                 offence = excluded.offence, manual = excluded.manual, created = excluded.created, seq = excluded.seq",
            &[&ban.network, &ban.until, &ban.reason, &(ban.offence as i64), &ban.manual, &ban.created, &seq],
        )
        .await
        .db()?;
        tx.execute("DELETE FROM lifted_bans WHERE network = $1", &[&ban.network]).await.db()?;
        notify_signal(&tx, &NodeSignal::BansChanged).await?;
        tx.commit().await.db()
    }

    async fn delete_ban(&self, network: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // The counter's row first, as put_ban takes it, then the ban's: in the other order a
        // lift and a ban of one network at once would deadlock.
        tx.execute("SELECT value FROM meta WHERE key = 'ban_seq' FOR UPDATE", &[]).await.db()?;
        if tx.execute("DELETE FROM bans WHERE network = $1", &[&network]).await.db()? == 0 {
            return Ok(false);
        }
        let seq = next_ban_seq(&*tx).await?;
        tx.execute(
            "INSERT INTO lifted_bans(network, seq, lifted) VALUES ($1, $2, $3)
             ON CONFLICT (network) DO UPDATE SET seq = excluded.seq, lifted = excluded.lifted",
            &[&network, &seq, &now()],
        )
        .await
        .db()?;
        notify_signal(&tx, &NodeSignal::BansChanged).await?;
        tx.commit().await.db()?;
        Ok(true)
    }

    async fn record_login(&self, account: AccountId, source: &str, when: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO known_logins(account_id, source, last_success) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, source)
                 DO UPDATE SET last_success = greatest(known_logins.last_success, excluded.last_success)",
            )
            .await
            .db()?;
        client.execute(&statement, &[&account, &source, &when]).await.db()?;
        Ok(())
    }

    async fn login_known(&self, address: &str, source: &str, since: i64) -> Result<bool, StoreError> {
        let Ok((local, domain)) = split(address) else { return Ok(false) };
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT 1 FROM known_logins k JOIN accounts a ON a.id = k.account_id JOIN domains d ON d.id = a.domain_id
                  WHERE d.name = $1 AND a.localpart = $2 AND k.source = $3 AND k.last_success >= $4",
            )
            .await
            .db()?;
        Ok(client.query_opt(&statement, &[&domain, &local, &source, &since]).await.db()?.is_some())
    }

    async fn known_sources(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT source, max(last_success) FROM known_logins WHERE last_success >= $1 GROUP BY source",
                &[&since],
            )
            .await
            .db()?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn add_sent(
        &self,
        account: AccountId,
        minute: i64,
        messages: i64,
        recipients: i64,
        since: i64,
    ) -> Result<SentCounts, StoreError> {
        let client = self.client().await?;
        // The minute's row comes from the upsert (a node adding at once waits for this one's
        // commit and then adds to what it committed); the older buckets no longer change.
        let statement = client
            .prepare_cached(concat!(
                "WITH counted AS (
                     INSERT INTO sent_counts(account_id, minute, messages, recipients) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (account_id, minute) DO UPDATE
                         SET messages = sent_counts.messages + excluded.messages,
                             recipients = sent_counts.recipients + excluded.recipients
                     RETURNING messages, recipients)
                 SELECT counted.messages + coalesce(earlier.messages, 0)::BIGINT,
                        counted.recipients + coalesce(earlier.recipients, 0)::BIGINT, ",
                commit_without_waiting!(),
                "
                   FROM counted,
                        (SELECT sum(messages) AS messages, sum(recipients) AS recipients FROM sent_counts
                          WHERE account_id = $1 AND minute >= $5 AND minute <> $2) earlier",
            ))
            .await
            .db()?;
        let row = client.query_one(&statement, &[&account, &minute, &messages, &recipients, &since]).await.db()?;
        Ok(SentCounts { messages: row.get(0), recipients: row.get(1) })
    }

    async fn add_auth_failure(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        since: i64,
    ) -> Result<u32, StoreError> {
        let client = self.client().await?;
        // The source's row, then the account's: every statement takes them in this order.
        let statement = client
            .prepare_cached(concat!(
                "WITH counted AS (
                     INSERT INTO auth_failures(source, minute, failures) VALUES ($1, $2, 1)
                     ON CONFLICT (source, minute) DO UPDATE SET failures = auth_failures.failures + 1
                     RETURNING failures),
                 against_account AS (
                     INSERT INTO account_failures(account, minute, failures)
                     SELECT $3::TEXT, $2, 1 WHERE $3::TEXT IS NOT NULL
                     ON CONFLICT (account, minute) DO UPDATE SET failures = account_failures.failures + 1)
                 SELECT counted.failures + coalesce((SELECT sum(failures) FROM auth_failures
                                                      WHERE source = $1 AND minute >= $4 AND minute <> $2), 0)::BIGINT, ",
                commit_without_waiting!(),
                "
                   FROM counted",
            ))
            .await
            .db()?;
        let row = client.query_one(&statement, &[&source, &minute, &account, &since]).await.db()?;
        Ok(row.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32)
    }

    async fn add_auth_attempt(
        &self,
        source: &str,
        account: Option<&str>,
        minute: i64,
        attempts: i64,
        since: i64,
    ) -> Result<AttemptCounts, StoreError> {
        let client = self.client().await?;
        // One statement, one round trip: both minutes' rows come from their upserts (the
        // source's, then the account's, as every statement takes them), the older buckets
        // no longer change.
        let statement = client
            .prepare_cached(concat!(
                "WITH by_source AS (
                     INSERT INTO auth_attempts(source, minute, attempts) VALUES ($1, $2, $4)
                     ON CONFLICT (source, minute) DO UPDATE SET attempts = auth_attempts.attempts + excluded.attempts
                     RETURNING attempts),
                 by_account AS (
                     INSERT INTO account_attempts(account, minute, attempts)
                     SELECT $3::TEXT, $2, $4 WHERE $3::TEXT IS NOT NULL
                     ON CONFLICT (account, minute)
                     DO UPDATE SET attempts = account_attempts.attempts + excluded.attempts
                     RETURNING attempts)
                 SELECT by_source.attempts + coalesce((SELECT sum(attempts) FROM auth_attempts
                                                        WHERE source = $1 AND minute >= $5 AND minute <> $2), 0)::BIGINT,
                        coalesce((SELECT attempts FROM by_account), 0)
                          + coalesce((SELECT sum(attempts) FROM account_attempts
                                       WHERE account = $3::TEXT AND minute >= $5 AND minute <> $2), 0)::BIGINT, ",
                commit_without_waiting!(),
                "
                   FROM by_source",
            ))
            .await
            .db()?;
        let row = client.query_one(&statement, &[&source, &minute, &account, &attempts, &since]).await.db()?;
        let count = |i: usize| row.get::<_, i64>(i).clamp(0, u32::MAX as i64) as u32;
        Ok(AttemptCounts { source: count(0), account: count(1) })
    }

    async fn forget_auth_failures(&self, source: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        // One round trip for both tables.
        client
            .execute(
                "WITH attempts AS (DELETE FROM auth_attempts WHERE source = $1)
                 DELETE FROM auth_failures WHERE source = $1",
                &[&source],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn take_account_failures(&self, account: &str) -> Result<u32, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH taken AS (DELETE FROM account_failures WHERE account = $1 RETURNING failures)
                 SELECT coalesce(sum(failures), 0)::BIGINT FROM taken",
                &[&account],
            )
            .await
            .db()?;
        Ok(row.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32)
    }

    async fn prune_guard_history(
        &self,
        logins_before: i64,
        bans_before: i64,
        counts_before: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        tx.execute("DELETE FROM known_logins WHERE last_success < $1", &[&logins_before]).await.db()?;
        for table in ["sent_counts", "auth_failures", "account_failures", "auth_attempts", "account_attempts"] {
            tx.execute(&format!("DELETE FROM {table} WHERE minute < $1"), &[&counts_before]).await.db()?;
        }
        tx.execute("DELETE FROM bans WHERE until IS NOT NULL AND until < $1", &[&bans_before]).await.db()?;
        tx.execute("DELETE FROM lifted_bans WHERE lifted < $1", &[&bans_before]).await.db()?;
        tx.commit().await.db()
    }
}
