//! IMAP session slots and POP3 maildrop locks across nodes, as rows with an owner and an
//! expiry (tables `session_slots` and `maildrop_locks`, see `schema`).
//!
//! Why rows and not `pg_try_advisory_lock`: a session-level advisory lock lives on one
//! database connection. One connection per open POP3 session would exhaust the pool (and the
//! server's max_connections) with a few hundred idle sessions; one shared dedicated connection
//! would not do either, since advisory locks are re-entrant within a connection (two POP3
//! sessions of one node would both get the lock) and all of them vanish at once, unnoticed by
//! the sessions that think they hold them, if that connection drops. A row costs a pooled
//! connection only for the statement that takes or frees it.
//!
//! Expiry: a row counts while its `expires` (Unix seconds, by the database's clock, so that
//! nodes' clocks need not agree) is ahead. The node's heartbeat renews the rows of its live
//! slots and locks every [`HEARTBEAT`] to [`TTL`] ahead, so a node that dies (SIGKILL, power
//! cut) stops counting within [`TTL`]. Dropping a slot or lock deletes its row at once when
//! a runtime is there to run the DELETE, and otherwise leaves it to expire (it is no longer
//! renewed: the live sets below are what the heartbeat renews). Until that DELETE has run, this
//! node counts a dropped slot as free already (as SQLite's backend does the moment it is
//! dropped); the heartbeat deletes any a failed DELETE left behind.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use portcullis_store::{AccountId, MaildropLock, SessionSlot, StoreError};
use tokio_postgres::error::SqlState;

use super::Coordinator;
use crate::{backend, Db};

/// How long a row counts without being renewed.
pub(crate) const TTL: i64 = 60;
/// How often a node renews its rows (well inside [`TTL`], so a slow heartbeat or two does not
/// let a live session's slot lapse).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The database's time in Unix seconds (`clock_timestamp()`, not the transaction's start).
const DB_NOW: &str = "extract(epoch FROM clock_timestamp())::bigint";

/// Advisory lock class (the two-key form, whose key space is apart from the one-key form the
/// migrations use) serialising slot counts per account: with PostgreSQL's default READ
/// COMMITTED, two nodes counting at once would otherwise both see room for one more.
const SESSION_COUNT_LOCK: i32 = 0x7063_7373; // "pcss"

/// The slots and locks this node holds now: what the heartbeat renews.
#[derive(Default)]
pub(crate) struct Live {
    slots: Mutex<HashSet<i64>>,
    /// Maildrop lock tokens.
    locks: Mutex<HashSet<i64>>,
    /// Slots dropped whose rows may not be deleted yet: not counted by this node.
    released: Mutex<HashSet<i64>>,
    next_token: AtomicI64,
}

impl Live {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locks(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn released(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.released.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Renews this node's live rows (its slots and locks here, its row among the live nodes in
/// `nodes` once it answers signals), and clears rows that expired (a dead node's), forever.
pub(crate) async fn heartbeat(pool: Pool, node: String, live: Arc<Live>, answering: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // A failure (database unreachable) is retried at the next tick; rows lapse only if
        // the database stays unreachable for TTL, and then nobody can count them anyway.
        let _ = renew(&pool, &node, &live).await;
        if answering.load(Ordering::Relaxed) {
            let _ = super::nodes::renew(&pool, &node).await;
        }
    }
}

async fn renew(pool: &Pool, node: &str, live: &Live) -> Result<(), StoreError> {
    let slots: Vec<i64> = live.slots().iter().copied().collect();
    let locks: Vec<i64> = live.locks().iter().copied().collect();
    let released: Vec<i64> = live.released().iter().copied().collect();
    let client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    if !released.is_empty() {
        client.execute("DELETE FROM session_slots WHERE id = ANY($1)", &[&released]).await.db()?;
        let mut still = live.released();
        for id in released {
            still.remove(&id);
        }
    }
    client
        .execute(&format!("UPDATE session_slots SET expires = {DB_NOW} + {TTL} WHERE id = ANY($1)"), &[&slots])
        .await
        .db()?;
    client
        .execute(
            &format!("UPDATE maildrop_locks SET expires = {DB_NOW} + {TTL} WHERE node = $1 AND token = ANY($2)"),
            &[&node, &locks],
        )
        .await
        .db()?;
    client.execute(&format!("DELETE FROM session_slots WHERE expires <= {DB_NOW}"), &[]).await.db()?;
    Ok(())
}

/// A row of this node's to delete.
enum Held {
    Slot(i64),
    Lock { account: AccountId, node: String, token: i64 },
}

/// Deletes `held`'s row on the runtime if there is one; without, the row is left to expire
/// (a slot's to the heartbeat's DELETE, since it stays in `live.released`).
fn spawn_delete(pool: Pool, live: Arc<Live>, held: Held) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let Ok(client) = pool.get().await else { return };
        // A failure leaves the row to expire: it is no longer renewed.
        let _ = match held {
            Held::Slot(id) => {
                let deleted = client.execute("DELETE FROM session_slots WHERE id = $1", &[&id]).await;
                if deleted.is_ok() {
                    live.released().remove(&id);
                }
                deleted
            }
            Held::Lock { account, node, token } => {
                client
                    .execute(
                        "DELETE FROM maildrop_locks WHERE account_id = $1 AND node = $2 AND token = $3",
                        &[&account, &node, &token],
                    )
                    .await
            }
        };
    });
}

fn no_such_account(e: &tokio_postgres::Error, account: AccountId) -> StoreError {
    match e.as_db_error() {
        Some(db) if db.code() == &SqlState::FOREIGN_KEY_VIOLATION => StoreError::NoSuchAccount(format!("#{account}")),
        _ => backend(e),
    }
}

pub(crate) async fn acquire_session(
    pool: &Pool,
    coordination: &Coordinator,
    account: AccountId,
    max: usize,
) -> Result<Option<SessionSlot>, StoreError> {
    struct Release {
        pool: Pool,
        live: Arc<Live>,
        id: i64,
    }
    impl Drop for Release {
        fn drop(&mut self) {
            self.live.slots().remove(&self.id);
            self.live.released().insert(self.id);
            spawn_delete(self.pool.clone(), self.live.clone(), Held::Slot(self.id));
        }
    }

    let mut client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    let tx = client.transaction().await.db()?;
    // Accounts share a lock only when their ids agree in the low 31 bits: harmless waiting.
    let key = (account & 0x7fff_ffff) as i32;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&SESSION_COUNT_LOCK, &key]).await.db()?;
    let released: Vec<i64> = coordination.live.released().iter().copied().collect();
    let taken: i64 = tx
        .query_one(
            &format!(
                "SELECT count(*) FROM session_slots
                  WHERE account_id = $1 AND expires > {DB_NOW} AND NOT (id = ANY($2))"
            ),
            &[&account, &released],
        )
        .await
        .db()?
        .get(0);
    if taken as u64 >= max as u64 {
        tx.commit().await.db()?;
        return Ok(None);
    }
    let id: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO session_slots(account_id, node, expires) VALUES ($1, $2, {DB_NOW} + {TTL}) RETURNING id"
            ),
            &[&account, &coordination.node()],
        )
        .await
        .map_err(|e| no_such_account(&e, account))?
        .get(0);
    // Live before the commit: the heartbeat renewing a row not yet committed does no harm.
    coordination.live.slots().insert(id);
    let release = Release { pool: pool.clone(), live: coordination.live.clone(), id };
    tx.commit().await.db()?;
    Ok(Some(SessionSlot::new(Box::new(release))))
}

pub(crate) async fn lock_maildrop(
    pool: &Pool,
    coordination: &Coordinator,
    account: AccountId,
) -> Result<Option<MaildropLock>, StoreError> {
    struct Release {
        pool: Pool,
        live: Arc<Live>,
        account: AccountId,
        node: String,
        token: i64,
    }
    impl Drop for Release {
        fn drop(&mut self) {
            self.live.locks().remove(&self.token);
            let held = Held::Lock { account: self.account, node: self.node.clone(), token: self.token };
            spawn_delete(self.pool.clone(), self.live.clone(), held);
        }
    }

    let live = &coordination.live;
    let token = live.next_token.fetch_add(1, Ordering::Relaxed);
    let node = coordination.node().to_string();
    // Live before the row exists, so that the heartbeat never misses it; forgotten below if
    // the lock is not ours after all.
    live.locks().insert(token);
    let taken = try_lock(pool, account, &node, token).await;
    if !matches!(taken, Ok(true)) {
        live.locks().remove(&token);
    }
    if !taken? {
        return Ok(None);
    }
    let release = Release { pool: pool.clone(), live: live.clone(), account, node, token };
    Ok(Some(MaildropLock::new(Box::new(release))))
}

/// Takes the maildrop lock row for (`node`, `token`) unless another live one holds it.
async fn try_lock(pool: &Pool, account: AccountId, node: &str, token: i64) -> Result<bool, StoreError> {
    let client = pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
    // One statement, atomic against another node's at the same moment: a free account gets a
    // row, an expired row (its node died) is taken over, a live one is left alone.
    let taken = client
        .query_opt(
            &format!(
                "INSERT INTO maildrop_locks(account_id, node, token, expires) VALUES ($1, $2, $3, {DB_NOW} + {TTL})
                 ON CONFLICT (account_id) DO UPDATE
                    SET node = EXCLUDED.node, token = EXCLUDED.token, expires = EXCLUDED.expires
                  WHERE maildrop_locks.expires <= {DB_NOW}
                 RETURNING token"
            ),
            &[&account, &node, &token],
        )
        .await
        .map_err(|e| no_such_account(&e, account))?;
    Ok(taken.is_some())
}
