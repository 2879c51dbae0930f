//! Group commit for local deliveries: concurrent `MailStore::deliver` calls of one node share
//! one transaction and so one COMMIT (one WAL flush), as SQLite's single writer batches its
//! writes. Without it, deliveries to one account go one fsync at a time: each holds the
//! account's row lock through its own COMMIT.
//!
//! A call queues its job and waits for its answer. One task per store runs batches: it takes
//! every waiting job (at most [`MAX_JOBS`] and about [`MAX_BYTES`]), runs them in ONE
//! transaction, each inside a SAVEPOINT, commits once, then answers every caller. No delay
//! when idle: the first job starts a batch at once, and jobs arriving while a batch runs or
//! commits form the next one. The task ends when nobody waits and the next job starts a new one.
//!
//! Answers: a job that fails (over quota, a recipient without INBOX, a mailbox out of UIDs, a
//! statement error) is rolled back to its savepoint and its caller alone gets its error; the
//! others are stored. A caller hears `Ok` only after COMMIT returned, that is once its message
//! is durable (synchronous_commit on): SMTP's 250 keeps its meaning. If anything of the batch
//! as a whole fails (the connection, the lock, the NOTIFY, the COMMIT), every job of the batch
//! gets an error and none is stored (the transaction rolls back, or never committed).
//!
//! Lock order across jobs: before any job runs, the batch locks the UNION of its jobs' account
//! rows in one statement, ascending (`locks::lock_for_delivery`), then the jobs lock INBOX rows
//! as they allocate UIDs. The whole transaction thus takes account rows first, ascending, then
//! mailbox rows: the order every writer of the `mail` module follows, so a batch of this node
//! and a batch (or any write) of another node never wait for each other in a cycle. Locking per
//! job instead would take accounts in the jobs' arrival order (job 1 account 7, job 2 account
//! 3), and two nodes' batches could then deadlock. The union is locked even for jobs that turn
//! out over quota: a few more rows held for one commit, against a second round trip.
//!
//! Round trips: BEGIN, the lock (with quotas, usage and INBOX ids), per job one (SAVEPOINT and
//! the storing statement pipelined), one NOTIFY for the whole batch, COMMIT. Quotas are checked
//! in memory against the usage read under the lock plus what earlier jobs of the batch stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Pool, Transaction};
use portcullis_store::{delivery_recipients, AccountId, DeliveryError, MailboxChange, StoreError};
use tokio::sync::oneshot;

use super::deliver::{count_usage, plan_copies, store_copies};
use super::locks::{lock_for_delivery, LockedAccount};
use crate::coordination::Announcer;
use crate::Db;

/// Jobs in one transaction at most. Each job's savepoint that wrote is a subtransaction, and
/// PostgreSQL caches 64 of them per backend before other sessions' snapshots slow down
/// (PGPROC_MAX_CACHED_SUBXIDS): stay well below.
const MAX_JOBS: usize = 32;
/// Bytes of messages one batch takes before it stops taking more (a job larger than this is
/// a batch of its own): a batch's messages are all in memory until its commit.
const MAX_BYTES: usize = 16 << 20;

/// One caller's delivery, summarized already (parsing must not hold row locks).
pub(crate) struct Job {
    pub recipients: Vec<AccountId>,
    pub raw: Vec<u8>,
    pub summary: portcullis_mime::Summary,
    pub internal_date: i64,
}

struct Waiting {
    job: Job,
    answer: oneshot::Sender<Result<(), DeliveryError>>,
}

/// The batcher of one store (one node): the queue of waiting jobs and what its task needs.
pub(crate) struct DeliveryBatcher {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    announcer: Announcer,
    default_quota: Option<u64>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Waiting>,
    /// Whether a task is running batches (it takes what is queued before it ends).
    running: bool,
}

impl DeliveryBatcher {
    pub(crate) fn new(pool: Pool, announcer: Announcer, default_quota: Option<u64>) -> DeliveryBatcher {
        DeliveryBatcher { shared: Arc::new(Shared { pool, announcer, default_quota, queue: Mutex::default() }) }
    }

    /// Delivers `job` in the next batch; returns once its batch has committed (`Ok`: durable)
    /// or failed.
    pub(crate) async fn deliver(&self, job: Job) -> Result<(), DeliveryError> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.shared.lock();
            queue.jobs.push_back(Waiting { job, answer });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(run(self.shared.clone()));
        }
        answered.await.map_err(|_| StoreError::Backend("the delivery task stopped before answering".into()))?
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch: the oldest jobs up to the bounds (at least one); empty when none waits,
    /// in which case the task is marked stopped under the same lock (a job queued after this
    /// starts a new task).
    fn next_batch(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while let Some(next) = queue.jobs.front() {
            let size = next.job.raw.len();
            if batch.len() == MAX_JOBS || (!batch.is_empty() && bytes + size > MAX_BYTES) {
                break;
            }
            bytes += size;
            batch.extend(queue.jobs.pop_front());
        }
        if batch.is_empty() {
            queue.running = false;
        }
        batch
    }
}

/// The task: batches until nobody waits.
async fn run(shared: Arc<Shared>) {
    // Should the task end otherwise (a panic), the jobs it had taken are answered by their
    // dropped senders; this answers those still queued and lets the next call start a task.
    struct Stopped {
        shared: Arc<Shared>,
        normally: bool,
    }
    impl Drop for Stopped {
        fn drop(&mut self) {
            if self.normally {
                // `next_batch` cleared `running` with the queue empty; a job queued since may
                // already have started the next task.
                return;
            }
            let mut queue = self.shared.lock();
            queue.running = false;
            for waiting in queue.jobs.drain(..) {
                let _ = waiting.answer.send(Err(StoreError::Backend("the delivery task stopped".into()).into()));
            }
        }
    }
    let mut stopped = Stopped { shared: shared.clone(), normally: false };
    loop {
        let batch = shared.next_batch();
        if batch.is_empty() {
            stopped.normally = true;
            return;
        }
        let (jobs, answers): (Vec<Job>, Vec<_>) = batch.into_iter().map(|w| (w.job, w.answer)).unzip();
        let results = shared.run_batch(jobs).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A caller that went away (its connection dropped) does not need the answer.
            let _ = answer.send(result);
        }
    }
}

impl Shared {
    /// Runs one batch; one result per job, in order. `Ok` only for jobs whose copies committed.
    async fn run_batch(&self, jobs: Vec<Job>) -> Vec<Result<(), DeliveryError>> {
        let mut outcomes: Vec<Option<Result<Vec<MailboxChange>, DeliveryError>>> = Vec::new();
        outcomes.resize_with(jobs.len(), || None);
        match self.run_transaction(&jobs, &mut outcomes).await {
            Ok(()) => outcomes.into_iter().map(|o| o.map_or(Ok(()), |r| r.map(drop))).collect(),
            // The transaction did not commit: the jobs that had failed on their own keep their
            // error, every other one gets the batch's.
            Err(e) => outcomes
                .into_iter()
                .map(|o| match o {
                    Some(Err(own)) => Err(own),
                    _ => Err(DeliveryError::Store(StoreError::Backend(format!("the delivery was not stored: {e}")))),
                })
                .collect(),
        }
    }

    /// The transaction of one batch: fills `outcomes` job by job, commits and announces.
    /// `Err`: nothing committed.
    async fn run_transaction(
        &self,
        jobs: &[Job],
        outcomes: &mut [Option<Result<Vec<MailboxChange>, DeliveryError>>],
    ) -> Result<(), StoreError> {
        let recipients: Vec<Vec<AccountId>> = jobs.iter().map(|j| delivery_recipients(j.recipients.clone())).collect();
        let everyone: Vec<AccountId> = recipients.iter().flatten().copied().collect();
        if everyone.is_empty() {
            // Deliveries to nobody store nothing (see `run_job`): no transaction at all.
            return Ok(());
        }
        let mut client =
            self.pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
        let tx = client.transaction().await.db()?;
        // Every account of the batch, ascending, before any mailbox row (see the module doc).
        let mut accounts = lock_for_delivery(&tx, &everyone, self.default_quota).await?;
        let mut changes = Vec::new();
        for ((job, recipients), outcome) in jobs.iter().zip(&recipients).zip(outcomes.iter_mut()) {
            let result = run_job(&tx, &mut accounts, job, recipients).await?;
            if let Ok(stored) = &result {
                changes.extend_from_slice(stored);
            }
            *outcome = Some(result);
        }
        self.announcer.notify_in(&tx, &changes).await?;
        tx.commit().await.db()?;
        // Durable from here: only now may any caller hear `Ok`.
        self.announcer.announce_committed(&changes);
        Ok(())
    }
}

/// One job inside the batch's transaction. The outer `Err` fails the whole batch (the
/// transaction can no longer go on); the inner one is this job's own failure, rolled back to
/// its savepoint.
async fn run_job(
    tx: &Transaction<'_>,
    accounts: &mut HashMap<AccountId, LockedAccount>,
    job: &Job,
    recipients: &[AccountId],
) -> Result<Result<Vec<MailboxChange>, DeliveryError>, StoreError> {
    if recipients.is_empty() {
        // A body nobody's message refers to would never be removed: nothing to store.
        return Ok(Ok(Vec::new()));
    }
    let size = job.raw.len() as u64;
    // Refused in memory (quota, unknown account, no INBOX): nothing was sent, nothing to undo.
    let inboxes = match plan_copies(accounts, recipients, size) {
        Ok(inboxes) => inboxes,
        Err(refused) => return Ok(Err(refused)),
    };
    // Pipelined: the SAVEPOINT goes out first (its future is polled first), the storing
    // statement right behind it, in one round trip.
    let (savepoint, stored) = tokio::join!(
        tx.batch_execute("SAVEPOINT delivery"),
        store_copies(tx, &job.raw, &job.summary, job.internal_date, &inboxes)
    );
    // Without its savepoint the job cannot be undone alone: the batch fails.
    savepoint.db()?;
    match stored {
        Ok(stored) => {
            // RELEASE would not free the subtransaction before commit: the savepoint stays
            // (the next job's SAVEPOINT of the same name shadows it).
            count_usage(accounts, recipients, size);
            Ok(Ok(stored))
        }
        Err(e) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT delivery").await.db()?;
            Ok(Err(e.into()))
        }
    }
}
