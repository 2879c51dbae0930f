//! Group commit for local deliveries: concurrent `MailStore::deliver` calls of one node share
//! one transaction and so one COMMIT (one WAL flush), as SQLite's single writer batches its
//! writes. Without it, deliveries to one account go one fsync at a time: each holds the
//! account's row lock through its own COMMIT.
//!
//! A call queues its job and waits for its answer. One task per store runs batches: it takes
//! every waiting job (at most [`MAX_JOBS`] and about [`MAX_BYTES`]), runs them in ONE
//! transaction, commits once, then answers every caller. No delay when idle: the first job
//! starts a batch at once, and jobs arriving while a batch runs or commits form the next one.
//! The task ends when nobody waits and the next job starts a new one.
//!
//! Three round trips a batch, whatever its size, because each is pipelined (the statements go
//! out together and PostgreSQL runs them in order): BEGIN with the lock (quotas, usage and
//! INBOX ids); every job's storing statement; the NOTIFY with COMMIT. Quotas are checked in
//! memory against the usage read under the lock plus what earlier jobs of the batch stored. On
//! a machine where a round trip costs a context switch on both sides, a round trip per job
//! (as with a SAVEPOINT and a statement per job) made the batch's row locks last as long as
//! its statements' CPU again (issue 17's benchmark).
//!
//! Answers: a job refused in memory (over quota, a recipient without INBOX) sends nothing and
//! its caller alone gets its error. A job whose statement fails (a mailbox out of UIDs, a
//! statement error) aborts the transaction, whose later statements then fail as well: the
//! batch is rolled back and tried again without it, and its caller alone gets its error. No
//! savepoints: each would be a subtransaction, and failures are rare; every retry ends one
//! job, so a batch is tried at most as many times as it has jobs. A caller hears `Ok` only
//! after COMMIT returned, that is once its message is durable (synchronous_commit on): SMTP's
//! 250 keeps its meaning. If anything of the batch as a whole fails (the connection, the lock,
//! the NOTIFY, the COMMIT), every job still in it gets an error and none is stored.
//!
//! Lock order across jobs: before any job runs, the batch locks the UNION of its jobs' account
//! rows in one statement, ascending (`locks::lock_for_delivery`), then the jobs lock INBOX rows
//! as they allocate UIDs. The whole transaction thus takes account rows first, ascending, then
//! mailbox rows: the order every writer of the `mail` module follows, so a batch of this node
//! and a batch (or any write) of another node never wait for each other in a cycle. Locking per
//! job instead would take accounts in the jobs' arrival order (job 1 account 7, job 2 account
//! 3), and two nodes' batches could then deadlock. The union is locked even for jobs that turn
//! out over quota: a few more rows held for one commit, against a second round trip.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use futures_util::future::join_all;
use portcullis_store::{delivery_recipients, AccountId, DeliveryError, MailboxChange, StoreError};
use tokio::sync::oneshot;

use super::deliver::{count_usage, plan_copies, store_copies};
use super::locks::lock_for_delivery;
use crate::coordination::Announcer;
use crate::Db;

/// Jobs in one transaction at most: a batch's statements and messages are in flight together,
/// and a job failing late makes the others run again.
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

    /// The batch's transaction, tried again without the job that failed until one commits:
    /// fills `outcomes` job by job, commits and announces. `Err`: nothing committed.
    async fn run_transaction(
        &self,
        jobs: &[Job],
        outcomes: &mut [Option<Result<Vec<MailboxChange>, DeliveryError>>],
    ) -> Result<(), StoreError> {
        let recipients: Vec<Vec<AccountId>> = jobs.iter().map(|j| delivery_recipients(j.recipients.clone())).collect();
        for (outcome, recipients) in outcomes.iter_mut().zip(&recipients) {
            if recipients.is_empty() {
                // A body nobody's message refers to would never be removed: nothing to store.
                *outcome = Some(Ok(Vec::new()));
            }
        }
        if outcomes.iter().all(Option::is_some) {
            return Ok(());
        }
        let client =
            self.pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
        // Prepared before the pipelined COMMIT (see `attempt`).
        self.announcer.prepare(&client).await?;
        loop {
            match self.attempt(&client, jobs, &recipients, outcomes).await {
                Ok(Attempt::Committed(changes)) => {
                    // Durable from here: only now may any caller hear `Ok`.
                    self.announcer.announce_committed(&changes);
                    return Ok(());
                }
                // One job fewer (it has its outcome): every attempt ends one, so this ends.
                Ok(Attempt::RolledBack) => continue,
                Err(e) => {
                    // The connection may still be inside the failed transaction: it must never
                    // go back to the pool like that (its next user would write into it).
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(deadpool_postgres::Object::take(client));
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One try at the jobs without an outcome, in one transaction of three round trips:
    /// BEGIN with the lock; every job's storing statement at once; the NOTIFY with COMMIT.
    async fn attempt(
        &self,
        client: &deadpool_postgres::Client,
        jobs: &[Job],
        recipients: &[Vec<AccountId>],
        outcomes: &mut [Option<Result<Vec<MailboxChange>, DeliveryError>>],
    ) -> Result<Attempt, StoreError> {
        let pending: Vec<usize> = (0..jobs.len()).filter(|&i| outcomes[i].is_none()).collect();
        if pending.is_empty() {
            return Ok(Attempt::Committed(Vec::new()));
        }
        // Every account of the batch, ascending, before any mailbox row (see the module doc).
        // Pipelined: BEGIN goes out first (its future is polled first), the lock right behind.
        let everyone: Vec<AccountId> = pending.iter().flat_map(|&i| recipients[i].iter().copied()).collect();
        let (begun, locked) =
            tokio::join!(client.batch_execute("BEGIN"), lock_for_delivery(client, &everyone, self.default_quota));
        begun.db()?;
        let mut accounts = locked?;
        // Quotas in memory, in arrival order: a job refused here sends nothing and is done.
        let mut planned = Vec::with_capacity(pending.len());
        for &i in &pending {
            let size = jobs[i].raw.len() as u64;
            match plan_copies(&accounts, &recipients[i], size) {
                Ok(inboxes) => {
                    count_usage(&mut accounts, &recipients[i], size);
                    planned.push((i, inboxes));
                }
                Err(refused) => outcomes[i] = Some(Err(refused)),
            }
        }
        // Pipelined: every statement goes out before the first answer comes back, and
        // PostgreSQL runs them in order. No savepoints: a job that fails aborts the transaction
        // (the statements after it fail as well), and the batch is tried again without it.
        let stored = join_all(planned.iter().map(|(i, inboxes)| {
            let job = &jobs[*i];
            store_copies(client, &job.raw, &job.summary, job.internal_date, inboxes)
        }))
        .await;
        let mut changes = Vec::new();
        for ((i, _), result) in planned.iter().zip(stored) {
            match result {
                Ok(stored) => changes.push((*i, stored)),
                Err(e) => {
                    // The first failure is this job's own (those after it only met the aborted
                    // transaction, or were not checked yet): its caller alone hears of it.
                    client.batch_execute("ROLLBACK").await.db()?;
                    outcomes[*i] = Some(Err(e.into()));
                    return Ok(Attempt::RolledBack);
                }
            }
        }
        let all: Vec<MailboxChange> = changes.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        // Pipelined too. A NOTIFY that fails aborts the transaction, and COMMIT then rolls it
        // back without an error: both answers decide.
        let (notified, committed) =
            tokio::join!(self.announcer.notify_in(client, &all), client.batch_execute("COMMIT"));
        notified?;
        committed.db()?;
        for (i, stored) in changes {
            outcomes[i] = Some(Ok(stored));
        }
        Ok(Attempt::Committed(all))
    }
}

/// How one try at a batch ended.
enum Attempt {
    /// Every job still in it stored and committed, with these changes.
    Committed(Vec<MailboxChange>),
    /// A job failed on its own and has its outcome; the transaction was rolled back.
    RolledBack,
}
