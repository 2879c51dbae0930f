//! The outbound queue on PostgreSQL (see `portcullis_store::QueueStore`), behaving as SQLite's
//! backend does, for several nodes whose runners share one queue.
//!
//! Claims: `claim_due` locks the due rows it takes with `FOR UPDATE SKIP LOCKED` and moves
//! their `next_attempt` to the lease's end in the same statement, so two runners claiming at
//! once take disjoint messages (one skips what the other has locked; a row the other claimed
//! and committed meanwhile is re-checked against `next_attempt <= now` and dropped). A node that
//! dies holding claims leaves them leased until `lease_until`, then they are due again for any
//! node: nothing else has to notice the death.
//!
//! Writes with local copies (`enqueue`'s local recipients, `record_attempt`'s notice) are one
//! transaction with them (`mail::deliver::deliver` inside the queue's transaction), durable when
//! COMMIT returns, and announced like every other mailbox change.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use portcullis_store::{
    domain_of, AttemptUpdate, Delivery, DeliveryError, LeaseHolder, MessageState, NewQueued, QueueId, QueuePage,
    QueueSelection, QueueStore, QueueTotals, QueuedMessage, QueuedPage, QueuedRecipient, RecipientState, StoreError,
};
use tokio_postgres::{IsolationLevel, Row};

use crate::mail::deliver::{deliver, summarize};
use crate::{Db, PgStore};

const MESSAGE_COLUMNS: &str = "q.id, q.sender, q.ret, q.envid, q.smtputf8, q.eight_bit, \
     octet_length(q.content)::bigint, q.queued_at, q.next_attempt, q.attempts, q.delay_notice_sent, q.held, \
     q.requiretls";
/// The column after [`MESSAGE_COLUMNS`] when a query adds the content.
const CONTENT_COLUMN: usize = 13;

/// A recipient's address as its domain is matched (`LIKE '%@domain'`): trimmed, final dots
/// dropped, ASCII letters lowered (`domain_of` lowers only ASCII; PostgreSQL's `lower()`
/// would lower other letters too, by the database's locale).
const MATCHED_ADDRESS: &str =
    "translate(rtrim(btrim(r.address), '.'), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')";

fn message_row(r: &Row) -> QueuedMessage {
    QueuedMessage {
        id: r.get(0),
        sender: r.get(1),
        recipients: Vec::new(),
        ret: r.get(2),
        envid: r.get(3),
        smtputf8: r.get(4),
        eight_bit: r.get(5),
        content: Vec::new(),
        size: r.get::<_, i64>(6).max(0) as u64,
        queued_at: r.get(7),
        next_attempt: r.get(8),
        attempts: r.get::<_, i64>(9).clamp(0, u32::MAX as i64) as u32,
        delay_notice_sent: r.get(10),
        held: r.get(11),
        requiretls: r.get(12),
    }
}

/// The `LIKE` pattern of the addresses at `domain` (as [`domain_of`] names it), with LIKE's
/// own wildcards escaped.
fn domain_pattern(domain: &str) -> String {
    let d = domain_of(&format!("@{domain}"));
    format!("%@{}", d.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// Fills in the recipients of `messages`, in one query.
async fn add_recipients(client: &Transaction<'_>, messages: &mut [QueuedMessage]) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<QueueId> = messages.iter().map(|m| m.id).collect();
    let rows = client
        .query(
            "SELECT queue_id, address, notify, orcpt, state, last_reply FROM queue_recipients
              WHERE queue_id = ANY($1) ORDER BY queue_id, position",
            &[&ids],
        )
        .await
        .db()?;
    let mut by_message: HashMap<QueueId, Vec<QueuedRecipient>> = HashMap::new();
    for r in rows {
        let id: QueueId = r.get(0);
        let state: String = r.get(4);
        let state = RecipientState::parse(&state)
            .ok_or_else(|| StoreError::Backend(format!("queued message {id}: unknown recipient state {state:?}")))?;
        by_message.entry(id).or_default().push(QueuedRecipient {
            address: r.get(1),
            notify: r.get(2),
            orcpt: r.get(3),
            state,
            last_reply: r.get(5),
        });
    }
    for m in messages {
        m.recipients = by_message.remove(&m.id).unwrap_or_default();
    }
    Ok(())
}

async fn insert(tx: &Transaction<'_>, m: &NewQueued) -> Result<QueueId, StoreError> {
    let id: QueueId = tx
        .query_one(
            "INSERT INTO queue(sender, ret, envid, smtputf8, eight_bit, content, queued_at, next_attempt, requiretls)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING id",
            &[&m.sender, &m.ret, &m.envid, &m.smtputf8, &m.eight_bit, &m.content, &m.queued_at, &m.requiretls],
        )
        .await
        .db()?
        .get(0);
    let add = tx
        .prepare("INSERT INTO queue_recipients(queue_id, position, address, notify, orcpt) VALUES ($1, $2, $3, $4, $5)")
        .await
        .db()?;
    for (position, r) in m.recipients.iter().enumerate() {
        tx.execute(&add, &[&id, &(position as i64), &r.address, &r.notify, &r.orcpt]).await.db()?;
    }
    Ok(id)
}

impl PgStore {
    /// A transaction that reads one snapshot (the messages and their recipients agree).
    async fn read_snapshot<T>(
        &self,
        read: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .db()?;
        let out = read(&tx).await?;
        tx.commit().await.db()?;
        Ok(out)
    }

    /// Stores `notice` (if any) and runs `write` in one transaction.
    async fn write_with_delivery<T>(
        &self,
        local: Option<Delivery>,
        write: impl AsyncFnOnce(&Transaction<'_>) -> Result<Option<T>, DeliveryError>,
    ) -> Result<Option<T>, DeliveryError> {
        // Summarized before the transaction: parsing a large message must not hold row locks.
        let local = match local {
            Some(d) => Some((d.recipients, summarize(d.raw).await?, d.internal_date)),
            None => None,
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let Some(out) = write(&tx).await? else {
            // Nothing to write (the message left the queue meanwhile): no copy either.
            tx.rollback().await.db()?;
            return Ok(None);
        };
        let changes = match local {
            Some((recipients, (raw, summary), date)) => {
                deliver(&tx, recipients, &raw, &summary, date, self.default_quota()).await?
            }
            None => Vec::new(),
        };
        self.coordination.commit_announcing(tx, &changes).await?;
        Ok(Some(out))
    }
}

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue(&self, message: NewQueued, local: Option<Delivery>) -> Result<QueueId, DeliveryError> {
        if message.recipients.is_empty() {
            return Err(StoreError::Backend("a queued message needs at least one recipient".into()).into());
        }
        let id = self.write_with_delivery(local, async |tx| Ok(Some(insert(tx, &message).await?))).await?;
        id.ok_or_else(|| StoreError::Backend("the queued message was not stored".into()).into())
    }

    async fn claim_due(
        &self,
        holder: &LeaseHolder,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        // `due.was`: the message as it was before the lease moved its next attempt, as SQLite's
        // backend returns it.
        let rows = tx
            .query(
                &format!(
                    "WITH due AS (
                         SELECT id, next_attempt AS was FROM queue
                          WHERE next_attempt <= $1 AND NOT held
                          ORDER BY next_attempt, id LIMIT $2
                            FOR UPDATE SKIP LOCKED)
                     UPDATE queue q SET next_attempt = $3, lease_node = $4, lease_run = $5
                       FROM due WHERE q.id = due.id
                     RETURNING {MESSAGE_COLUMNS}, q.content, due.was"
                ),
                &[&now, &limit, &lease_until, &holder.node, &holder.run],
            )
            .await
            .db()?;
        let mut due: Vec<QueuedMessage> = rows
            .iter()
            .map(|r| {
                let mut m = message_row(r);
                m.content = r.get(CONTENT_COLUMN);
                m.next_attempt = r.get(CONTENT_COLUMN + 1);
                m
            })
            .collect();
        // RETURNING has no order: oldest due first, as promised.
        due.sort_by_key(|m| (m.next_attempt, m.id));
        add_recipients(&tx, &mut due).await?;
        tx.commit().await.db()?;
        Ok(due)
    }

    async fn take_back_leases(&self, holder: &LeaseHolder, now: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let taken = client
            .execute(
                "UPDATE queue SET next_attempt = LEAST(next_attempt, $2), lease_node = NULL, lease_run = NULL
                  WHERE lease_node = $1 AND lease_run IS DISTINCT FROM $3",
                &[&holder.node, &now, &holder.run],
            )
            .await
            .db()?;
        Ok(taken as usize)
    }

    async fn record_attempt(&self, update: AttemptUpdate) -> Result<bool, DeliveryError> {
        let AttemptUpdate { id, recipients: outcomes, next_attempt, delay_notice_sent, notice } = update;
        let recorded = self
            .write_with_delivery(notice, async |tx| {
                // Locked until commit: an operator's removal waits for this record, or wins
                // before it and then nothing is stored (no notice for a removed message).
                if tx.query_opt("SELECT 1 FROM queue WHERE id = $1 FOR UPDATE", &[&id]).await.db()?.is_none() {
                    return Ok(None);
                }
                let set = tx
                    .prepare(
                        "UPDATE queue_recipients SET state = $3, last_reply = $4
                          WHERE queue_id = $1 AND address = $2 AND state = 'pending'",
                    )
                    .await
                    .db()?;
                for o in &outcomes {
                    tx.execute(&set, &[&id, &o.address, &o.state.as_str(), &o.reply]).await.db()?;
                }
                let pending: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM queue_recipients WHERE queue_id = $1 AND state = 'pending'",
                        &[&id],
                    )
                    .await
                    .db()?
                    .get(0);
                if pending == 0 {
                    tx.execute("DELETE FROM queue WHERE id = $1", &[&id]).await.db()?;
                } else {
                    tx.execute(
                        "UPDATE queue SET attempts = attempts + 1, next_attempt = $2,
                                delay_notice_sent = delay_notice_sent OR $3, lease_node = NULL, lease_run = NULL
                          WHERE id = $1",
                        &[&id, &next_attempt, &delay_notice_sent],
                    )
                    .await
                    .db()?;
                }
                Ok(Some(()))
            })
            .await?;
        Ok(recorded.is_some())
    }

    async fn release_claim(&self, id: QueueId, next_attempt: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE queue SET next_attempt = $2, lease_node = NULL, lease_run = NULL WHERE id = $1",
                &[&id, &next_attempt],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn queued(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        self.read_snapshot(async |tx| {
            let rows = tx.query(&format!("SELECT {MESSAGE_COLUMNS} FROM queue q ORDER BY q.id"), &[]).await.db()?;
            let mut all: Vec<QueuedMessage> = rows.iter().map(message_row).collect();
            add_recipients(tx, &mut all).await?;
            Ok(all)
        })
        .await
    }

    async fn queued_page(&self, page: QueuePage) -> Result<QueuedPage, StoreError> {
        let domain = page.domain.as_deref().map(domain_pattern);
        let state: Option<i32> = page.state.map(|s| match s {
            MessageState::Held => 0,
            MessageState::New => 1,
            MessageState::Deferred => 2,
        });
        // One row more than the page: whether there is a next page, without counting.
        let fetch = i64::try_from(page.limit).unwrap_or(i64::MAX).saturating_add(1);
        let after = page.after.unwrap_or(0);
        self.read_snapshot(async |tx| {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM queue q
                          WHERE q.id > $1
                            AND ($2::int IS NULL
                                 OR $2 = CASE WHEN q.held THEN 0 WHEN q.attempts = 0 THEN 1 ELSE 2 END)
                            AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM queue_recipients r
                                  WHERE r.queue_id = q.id AND r.state = 'pending'
                                    AND {MATCHED_ADDRESS} LIKE $3 ESCAPE '\\'))
                          ORDER BY q.id LIMIT $4"
                    ),
                    &[&after, &state, &domain, &fetch],
                )
                .await
                .db()?;
            let mut messages: Vec<QueuedMessage> = rows.iter().map(message_row).collect();
            let more = messages.len() > page.limit;
            messages.truncate(page.limit);
            add_recipients(tx, &mut messages).await?;
            let next_after = if more { messages.last().map(|m| m.id) } else { None };
            Ok(QueuedPage { messages, next_after })
        })
        .await
    }

    async fn queue_totals(&self) -> Result<QueueTotals, StoreError> {
        let client = self.client().await?;
        // octet_length() of a TOASTed value reads its stored size, not the bytes themselves.
        let r = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE held), coalesce(sum(octet_length(content)), 0)::bigint,
                        min(queued_at)
                   FROM queue",
                &[],
            )
            .await
            .db()?;
        Ok(QueueTotals {
            messages: r.get::<_, i64>(0).max(0) as usize,
            held: r.get::<_, i64>(1).max(0) as usize,
            bytes: r.get::<_, i64>(2).max(0) as u64,
            oldest_queued_at: r.get(3),
        })
    }

    async fn queued_message(&self, id: QueueId) -> Result<Option<QueuedMessage>, StoreError> {
        self.read_snapshot(async |tx| {
            let row = tx
                .query_opt(&format!("SELECT {MESSAGE_COLUMNS}, q.content FROM queue q WHERE q.id = $1"), &[&id])
                .await
                .db()?;
            let Some(row) = row else { return Ok(None) };
            let mut m = message_row(&row);
            m.content = row.get(CONTENT_COLUMN);
            add_recipients(tx, std::slice::from_mut(&mut m)).await?;
            Ok(Some(m))
        })
        .await
    }

    async fn retry_queued(&self, selection: QueueSelection, now: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        // LEAST(): a message already due keeps its place in the order of claims. A live lease
        // (a runner's attempt under way, until `next_attempt`) is left alone: made due, the
        // message would be claimed again and delivered twice.
        const DUE: &str = "UPDATE queue q SET next_attempt = LEAST(q.next_attempt, $1)
              WHERE NOT q.held AND (q.lease_node IS NULL OR q.next_attempt <= $1)";
        let made_due = match selection {
            QueueSelection::All => client.execute(DUE, &[&now]).await.db()?,
            QueueSelection::Message(id) => client.execute(&format!("{DUE} AND q.id = $2"), &[&now, &id]).await.db()?,
            QueueSelection::Domain(domain) => {
                let pattern = domain_pattern(&domain);
                client
                    .execute(
                        &format!(
                            "{DUE} AND EXISTS (SELECT 1 FROM queue_recipients r
                                WHERE r.queue_id = q.id AND r.state = 'pending'
                                  AND {MATCHED_ADDRESS} LIKE $2 ESCAPE '\\')"
                        ),
                        &[&now, &pattern],
                    )
                    .await
                    .db()?
            }
        };
        Ok(made_due as usize)
    }

    async fn set_held(&self, id: QueueId, held: bool) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("UPDATE queue SET held = $2 WHERE id = $1", &[&id, &held]).await.db()? > 0)
    }

    async fn remove_queued(&self, id: QueueId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM queue WHERE id = $1", &[&id]).await.db()? > 0)
    }
}
