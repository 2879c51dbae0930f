//! The outbound queue in SQLite (see `crate::queue`): writes through the writer thread, so a
//! queued message (with the local copies of its submission) and an attempt's record (with its
//! notice) are each one durable transaction.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::ops::summarize;
use super::{messages, SqliteStore};
use crate::Db;
use portcullis_store::{
    domain_of, AttemptUpdate, LeaseHolder, MessageState, NewQueued, QueueId, QueuePage, QueueSelection, QueueStore,
    QueueTotals, QueuedMessage, QueuedPage, QueuedRecipient, RecipientState,
};
use portcullis_store::{Delivery, DeliveryError, MailboxChange, StoreError};

const MESSAGE_COLUMNS: &str = "id, sender, ret, envid, smtputf8, eight_bit, length(content), queued_at, next_attempt, \
     attempts, delay_notice_sent, held, requiretls";
/// The column after [`MESSAGE_COLUMNS`] when a query adds the content.
const CONTENT_COLUMN: usize = 13;

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: r.get(0)?,
        sender: r.get(1)?,
        recipients: Vec::new(),
        ret: r.get(2)?,
        envid: r.get(3)?,
        smtputf8: r.get::<_, i64>(4)? != 0,
        eight_bit: r.get::<_, i64>(5)? != 0,
        content: Vec::new(),
        size: r.get::<_, i64>(6)?.max(0) as u64,
        queued_at: r.get(7)?,
        next_attempt: r.get(8)?,
        attempts: r.get::<_, i64>(9)?.clamp(0, u32::MAX as i64) as u32,
        delay_notice_sent: r.get::<_, i64>(10)? != 0,
        held: r.get::<_, i64>(11)? != 0,
        requiretls: r.get::<_, i64>(12)? != 0,
    })
}

fn recipients(conn: &Connection, id: QueueId) -> Result<Vec<QueuedRecipient>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT address, notify, orcpt, state, last_reply FROM queue_recipients WHERE queue_id = ?1 ORDER BY position",
    ).db()?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?))
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    rows.into_iter()
        .map(|(address, notify, orcpt, state, last_reply)| {
            let state = RecipientState::parse(&state).ok_or_else(|| {
                StoreError::Backend(format!("queued message {id}: unknown recipient state {state:?}"))
            })?;
            Ok(QueuedRecipient { address, notify, orcpt, state, last_reply })
        })
        .collect()
}

fn insert(conn: &Connection, m: &NewQueued) -> Result<QueueId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO queue(sender, ret, envid, smtputf8, eight_bit, content, queued_at, next_attempt, requiretls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
    )
    .db()?
    .execute(params![
        m.sender,
        m.ret,
        m.envid,
        m.smtputf8 as i64,
        m.eight_bit as i64,
        m.content,
        m.queued_at,
        m.requiretls as i64
    ])
    .db()?;
    let id = conn.last_insert_rowid();
    let mut add = conn
        .prepare_cached(
            "INSERT INTO queue_recipients(queue_id, position, address, notify, orcpt) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .db()?;
    for (position, r) in m.recipients.iter().enumerate() {
        add.execute(params![id, position as i64, r.address, r.notify, r.orcpt]).db()?;
    }
    Ok(id)
}

/// A local delivery inside the current transaction (summary computed beforehand).
type LocalCopy = Option<(Delivery, Vec<u8>, portcullis_mime::Summary)>;

async fn prepare_local(local: Option<Delivery>) -> Result<LocalCopy, StoreError> {
    match local {
        Some(mut delivery) => {
            let (raw, summary) = summarize(std::mem::take(&mut delivery.raw)).await?;
            Ok(Some((delivery, raw, summary)))
        }
        None => Ok(None),
    }
}

fn deliver_local(
    conn: &Connection,
    local: LocalCopy,
    default_quota: Option<u64>,
) -> Result<Vec<MailboxChange>, DeliveryError> {
    match local {
        Some((delivery, raw, summary)) if !delivery.recipients.is_empty() => {
            messages::deliver(conn, delivery.recipients, &raw, &summary, delivery.internal_date, default_quota)
        }
        _ => Ok(Vec::new()),
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue(&self, message: NewQueued, local: Option<Delivery>) -> Result<QueueId, DeliveryError> {
        if message.recipients.is_empty() {
            return Err(StoreError::Backend("a queued message needs at least one recipient".into()).into());
        }
        let default_quota = self.default_quota;
        let local = prepare_local(local).await?;
        self.write_announcing(move |conn| {
            let changes = deliver_local(conn, local, default_quota)?;
            let id = insert(conn, &message)?;
            Ok((id, changes))
        })
        .await
    }

    async fn claim_due(
        &self,
        holder: &LeaseHolder,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let holder = holder.clone();
        self.write(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS}, content FROM queue WHERE next_attempt <= ?1 AND held = 0
                  ORDER BY next_attempt, id LIMIT ?2"
                ))
                .db()?;
            let mut due = stmt
                .query_map(params![now, limit as i64], |r| {
                    let mut m = message_row(r)?;
                    m.content = r.get(CONTENT_COLUMN)?;
                    Ok(m)
                })
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            let mut lease = conn
                .prepare_cached("UPDATE queue SET next_attempt = ?2, lease_node = ?3, lease_run = ?4 WHERE id = ?1")
                .db()?;
            for m in &mut due {
                lease.execute(params![m.id, lease_until, holder.node, holder.run]).db()?;
                m.recipients = recipients(conn, m.id)?;
            }
            Ok(due)
        })
        .await
    }

    async fn record_attempt(&self, update: AttemptUpdate) -> Result<bool, DeliveryError> {
        let default_quota = self.default_quota;
        let notice = prepare_local(update.notice).await?;
        let (id, outcomes, next, delay_sent) =
            (update.id, update.recipients, update.next_attempt, update.delay_notice_sent);
        self.write_announcing(move |conn| {
            let exists = conn
                .prepare_cached("SELECT 1 FROM queue WHERE id = ?1")
                .db()?
                .query_row(params![id], |_| Ok(()))
                .optional()
                .db()?
                .is_some();
            if !exists {
                return Ok((false, Vec::new()));
            }
            let changes = deliver_local(conn, notice, default_quota)?;
            let mut set = conn
                .prepare_cached(
                    "UPDATE queue_recipients SET state = ?3, last_reply = ?4
                  WHERE queue_id = ?1 AND address = ?2 AND state = 'pending'",
                )
                .db()?;
            for o in &outcomes {
                set.execute(params![id, o.address, o.state.as_str(), o.reply]).db()?;
            }
            let pending: i64 = conn
                .query_row(
                    "SELECT count(*) FROM queue_recipients WHERE queue_id = ?1 AND state = 'pending'",
                    params![id],
                    |r| r.get(0),
                )
                .db()?;
            if pending == 0 {
                conn.execute("DELETE FROM queue WHERE id = ?1", params![id]).db()?;
            } else {
                conn.execute(
                    "UPDATE queue SET attempts = attempts + 1, next_attempt = ?2,
                            delay_notice_sent = delay_notice_sent OR ?3, lease_node = NULL, lease_run = NULL
                      WHERE id = ?1",
                    params![id, next, delay_sent as i64],
                )
                .db()?;
            }
            Ok((true, changes))
        })
        .await
    }

    async fn release_claim(&self, id: QueueId, next_attempt: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE queue SET next_attempt = ?2, lease_node = NULL, lease_run = NULL WHERE id = ?1",
                params![id, next_attempt],
            )
            .db()?;
            Ok(())
        })
        .await
    }

    async fn take_back_leases(&self, holder: &LeaseHolder, now: i64) -> Result<usize, StoreError> {
        let holder = holder.clone();
        self.write(move |conn| {
            conn.execute(
                "UPDATE queue SET next_attempt = min(next_attempt, ?2), lease_node = NULL, lease_run = NULL
                  WHERE lease_node = ?1 AND lease_run IS NOT ?3",
                params![holder.node, now, holder.run],
            )
            .db()
        })
        .await
    }

    async fn queued(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM queue ORDER BY id")).db()?;
            let mut all = stmt.query_map([], message_row).db()?.collect::<Result<Vec<_>, _>>().db()?;
            for m in &mut all {
                m.recipients = recipients(conn, m.id)?;
            }
            Ok(all)
        })
        .await
    }

    async fn queued_page(&self, page: QueuePage) -> Result<QueuedPage, StoreError> {
        self.read(move |conn| {
            // The domain as `domain_of` has it, matched against the end of the address the same
            // way (lower case, final dots dropped); LIKE's own wildcards in it are escaped.
            let domain = page.domain.map(|d| {
                let d = domain_of(&format!("@{d}"));
                format!("%@{}", d.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
            });
            let state = page.state.map(|s| match s {
                MessageState::Held => 0,
                MessageState::New => 1,
                MessageState::Deferred => 2,
            });
            // One row more than the page: whether there is a next page, without counting.
            let fetch = i64::try_from(page.limit).unwrap_or(i64::MAX).saturating_add(1);
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM queue
                  WHERE id > ?1
                    AND (?2 IS NULL OR ?2 = CASE WHEN held != 0 THEN 0 WHEN attempts = 0 THEN 1 ELSE 2 END)
                    AND (?3 IS NULL OR EXISTS (SELECT 1 FROM queue_recipients r
                          WHERE r.queue_id = queue.id AND r.state = 'pending'
                            AND lower(rtrim(trim(r.address), '.')) LIKE ?3 ESCAPE '\\'))
                  ORDER BY id LIMIT ?4"
                ))
                .db()?;
            let mut messages = stmt
                .query_map(params![page.after.unwrap_or(0), state, domain, fetch], message_row)
                .db()?
                .collect::<Result<Vec<_>, _>>()
                .db()?;
            let more = messages.len() > page.limit;
            messages.truncate(page.limit);
            for m in &mut messages {
                m.recipients = recipients(conn, m.id)?;
            }
            let next_after = if more { messages.last().map(|m| m.id) } else { None };
            Ok(QueuedPage { messages, next_after })
        })
        .await
    }

    async fn queue_totals(&self) -> Result<QueueTotals, StoreError> {
        self.read(|conn| {
            // length() of a BLOB reads its size from the record, not the bytes themselves.
            let totals = conn.query_row(
                "SELECT count(*), coalesce(sum(held), 0), coalesce(sum(length(content)), 0), min(queued_at) FROM queue",
                [],
                |r| {
                    Ok(QueueTotals {
                        messages: r.get::<_, i64>(0)?.max(0) as usize,
                        held: r.get::<_, i64>(1)?.max(0) as usize,
                        bytes: r.get::<_, i64>(2)?.max(0) as u64,
                        oldest_queued_at: r.get(3)?,
                    })
                },
            ).db()?;
            Ok(totals)
        })
        .await
    }

    async fn queued_message(&self, id: QueueId) -> Result<Option<QueuedMessage>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {MESSAGE_COLUMNS}, content FROM queue WHERE id = ?1")).db()?;
            let found = stmt
                .query_row(params![id], |r| {
                    let mut m = message_row(r)?;
                    m.content = r.get(CONTENT_COLUMN)?;
                    Ok(m)
                })
                .optional()
                .db()?;
            match found {
                Some(mut m) => {
                    m.recipients = recipients(conn, id)?;
                    Ok(Some(m))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn retry_queued(&self, selection: QueueSelection, now: i64) -> Result<usize, StoreError> {
        self.write(move |conn| {
            // min(): a message already due keeps its place in the order of claims. A live lease
            // (a runner's attempt under way, until `next_attempt`) is left alone: made due, the
            // message would be claimed again and delivered twice.
            let mut due = conn
                .prepare_cached(
                    "UPDATE queue SET next_attempt = min(next_attempt, ?2)
                  WHERE id = ?1 AND held = 0 AND (lease_node IS NULL OR next_attempt <= ?2)",
                )
                .db()?;
            Ok(match selection {
                QueueSelection::All => conn
                    .execute(
                        "UPDATE queue SET next_attempt = min(next_attempt, ?1)
                          WHERE held = 0 AND (lease_node IS NULL OR next_attempt <= ?1)",
                        params![now],
                    )
                    .db()?,
                QueueSelection::Message(id) => due.execute(params![id, now]).db()?,
                QueueSelection::Domain(domain) => {
                    // The domain is the part after the last '@', which SQL cannot find simply.
                    let domain = domain_of(&format!("@{domain}"));
                    let mut pending = conn
                        .prepare_cached(
                            "SELECT DISTINCT queue_id, address FROM queue_recipients WHERE state = 'pending'",
                        )
                        .db()?;
                    let mut ids: Vec<QueueId> = pending
                        .query_map([], |r| Ok((r.get::<_, QueueId>(0)?, r.get::<_, String>(1)?)))
                        .db()?
                        .filter_map(|row| match row {
                            Ok((id, address)) if domain_of(&address) == domain => Some(Ok(id)),
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                        .collect::<Result<_, _>>()
                        .db()?;
                    ids.sort_unstable();
                    ids.dedup();
                    let mut made_due = 0;
                    for id in ids {
                        made_due += due.execute(params![id, now]).db()?;
                    }
                    made_due
                }
            })
        })
        .await
    }

    async fn set_held(&self, id: QueueId, held: bool) -> Result<bool, StoreError> {
        self.write(move |conn| {
            Ok(conn.execute("UPDATE queue SET held = ?2 WHERE id = ?1", params![id, held as i64]).db()? > 0)
        })
        .await
    }

    async fn remove_queued(&self, id: QueueId) -> Result<bool, StoreError> {
        self.write(move |conn| Ok(conn.execute("DELETE FROM queue WHERE id = ?1", params![id]).db()? > 0)).await
    }
}
