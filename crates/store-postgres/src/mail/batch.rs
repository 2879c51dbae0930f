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
//! Jobs queued while a batch runs whose every recipient's account the batch has locked join it
//! before its COMMIT (a round trip for each such round, bounded by [`MAX_JOBS`] and
//! [`MAX_BYTES`]): they would otherwise wait for the whole batch and then for the next one's,
//! each holding those same locks through a WAL flush. With one account taking every delivery,
//! that halves the commits. Jobs for other accounts stay queued for the next batch: locking
//! more rows now would break the ascending order below.
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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use futures_util::future::join_all;
use portcullis_store::{delivery_recipients, AccountId, DeliveryError, MailboxChange, StoreError};
use tokio::sync::oneshot;

use super::deliver::{count_usage, plan_copies, store_copies};
use super::locks::{lock_for_delivery, LockedAccount};
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
        let (answers, results) = shared.run_batch(jobs, answers).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A caller that went away (its connection dropped) does not need the answer.
            let _ = answer.send(result);
        }
    }
}

/// A caller's answer channel.
type Answer = oneshot::Sender<Result<(), DeliveryError>>;
/// What a job ended with: the changes its copies made, or its error.
type Outcome = Option<Result<Vec<MailboxChange>, DeliveryError>>;

/// The jobs of one batch with their callers, recipients and outcomes, index for index; jobs
/// that join while it runs are pushed at the end.
struct Batch {
    jobs: Vec<Job>,
    answers: Vec<Answer>,
    recipients: Vec<Vec<AccountId>>,
    outcomes: Vec<Outcome>,
}

impl Batch {
    fn push(&mut self, job: Job, answer: Answer) {
        let recipients = delivery_recipients(job.recipients.clone());
        // A body nobody's message refers to would never be removed: nothing to store.
        self.outcomes.push(recipients.is_empty().then(|| Ok(Vec::new())));
        self.recipients.push(recipients);
        self.jobs.push(job);
        self.answers.push(answer);
    }
}

impl Shared {
    /// Runs one batch; one result per caller, in order (callers who joined it while it ran
    /// included). `Ok` only for jobs whose copies committed.
    async fn run_batch(&self, jobs: Vec<Job>, answers: Vec<Answer>) -> (Vec<Answer>, Vec<Result<(), DeliveryError>>) {
        let mut batch = Batch { jobs: Vec::new(), answers: Vec::new(), recipients: Vec::new(), outcomes: Vec::new() };
        for (job, answer) in jobs.into_iter().zip(answers) {
            batch.push(job, answer);
        }
        let result = self.run_transaction(&mut batch).await;
        let results = match result {
            Ok(()) => batch.outcomes.into_iter().map(|o| o.map_or(Ok(()), |r| r.map(drop))).collect(),
            // The transaction did not commit: the jobs that had failed on their own keep their
            // error, every other one gets the batch's.
            Err(e) => batch
                .outcomes
                .into_iter()
                .map(|o| match o {
                    Some(Err(own)) => Err(own),
                    _ => Err(DeliveryError::Store(StoreError::Backend(format!("the delivery was not stored: {e}")))),
                })
                .collect(),
        };
        (batch.answers, results)
    }

    /// The batch's transaction, tried again without the job that failed until one commits:
    /// fills the outcomes job by job, commits and announces. `Err`: nothing committed.
    async fn run_transaction(&self, batch: &mut Batch) -> Result<(), StoreError> {
        if batch.outcomes.iter().all(Option::is_some) {
            return Ok(());
        }
        let client =
            self.pool.get().await.map_err(|e| StoreError::Backend(format!("cannot reach the database: {e}")))?;
        // Prepared before the pipelined COMMIT (see `attempt`).
        self.announcer.prepare(&client).await?;
        loop {
            match self.attempt(&client, batch).await {
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

    /// Takes the queued jobs whose every recipient's account `locked` holds, as long as the
    /// batch stays within its bounds: they can join a transaction that already holds their
    /// locks without taking another (so without any risk of waiting in a cycle). Others stay
    /// queued, in their order.
    fn take_joining(&self, batch: &Batch, locked: &HashMap<AccountId, LockedAccount>) -> Vec<Waiting> {
        let mut queue = self.lock();
        let mut bytes: usize = batch.jobs.iter().map(|j| j.raw.len()).sum();
        let (mut joining, mut staying) = (Vec::new(), VecDeque::new());
        while let Some(waiting) = queue.jobs.pop_front() {
            let size = waiting.job.raw.len();
            let fits = batch.jobs.len() + joining.len() < MAX_JOBS && bytes + size <= MAX_BYTES;
            let held = !waiting.job.recipients.is_empty()
                && waiting.job.recipients.iter().all(|account| locked.contains_key(account));
            if fits && held {
                bytes += size;
                joining.push(waiting);
            } else {
                staying.push_back(waiting);
            }
        }
        queue.jobs = staying;
        joining
    }

    /// One try at the jobs without an outcome, in one transaction of three round trips:
    /// BEGIN with the lock; every job's storing statement at once; the NOTIFY with COMMIT.
    /// Jobs queued meanwhile whose accounts the transaction holds join it before COMMIT (a
    /// round trip for each such round).
    async fn attempt(&self, client: &deadpool_postgres::Client, batch: &mut Batch) -> Result<Attempt, StoreError> {
        let pending: Vec<usize> = (0..batch.jobs.len()).filter(|&i| batch.outcomes[i].is_none()).collect();
        if pending.is_empty() {
            return Ok(Attempt::Committed(Vec::new()));
        }
        // Every account of the batch, ascending, before any mailbox row (see the module doc).
        // Pipelined: BEGIN goes out first (its future is polled first), the lock right behind.
        let everyone: Vec<AccountId> = pending.iter().flat_map(|&i| batch.recipients[i].iter().copied()).collect();
        let (begun, locked) =
            tokio::join!(client.batch_execute("BEGIN"), lock_for_delivery(client, &everyone, self.default_quota));
        begun.db()?;
        let mut accounts = locked?;
        let mut changes = Vec::new();
        // Refused in memory during this try: the usage they were refused on counted jobs that a
        // rollback may undo, so a retry decides on them afresh.
        let mut refused = Vec::new();
        let mut round = pending;
        loop {
            if let Some(failed) =
                self.store_round(client, batch, &round, &mut accounts, &mut changes, &mut refused).await?
            {
                // The first failure is this job's own (those after it only met the aborted
                // transaction, or were not checked yet): its caller alone hears of it.
                client.batch_execute("ROLLBACK").await.db()?;
                for i in refused {
                    batch.outcomes[i] = None;
                }
                batch.outcomes[failed.0] = Some(Err(failed.1));
                return Ok(Attempt::RolledBack);
            }
            let joining = self.take_joining(batch, &accounts);
            if joining.is_empty() {
                break;
            }
            let first = batch.jobs.len();
            for waiting in joining {
                batch.push(waiting.job, waiting.answer);
            }
            round = (first..batch.jobs.len()).filter(|&i| batch.outcomes[i].is_none()).collect();
        }
        let all: Vec<MailboxChange> =
            changes.iter().flat_map(|(_, c): &(usize, Vec<MailboxChange>)| c.iter().copied()).collect();
        // Pipelined too. A NOTIFY that fails aborts the transaction, and COMMIT then rolls it
        // back without an error: both answers decide.
        let (notified, committed) =
            tokio::join!(self.announcer.notify_in(client, &all), client.batch_execute("COMMIT"));
        notified?;
        committed.db()?;
        for (i, stored) in changes {
            batch.outcomes[i] = Some(Ok(stored));
        }
        Ok(Attempt::Committed(all))
    }

    /// Stores the jobs `round` names inside the open transaction: quotas in memory, in order
    /// (a job refused here sends nothing, and is listed in `refused`), then every storing
    /// statement at once.
    /// `Some((job, error))`: that job's statement failed and the transaction is aborted.
    async fn store_round(
        &self,
        client: &deadpool_postgres::Client,
        batch: &mut Batch,
        round: &[usize],
        accounts: &mut HashMap<AccountId, LockedAccount>,
        changes: &mut Vec<(usize, Vec<MailboxChange>)>,
        refused: &mut Vec<usize>,
    ) -> Result<Option<(usize, DeliveryError)>, StoreError> {
        let mut planned = Vec::with_capacity(round.len());
        for &i in round {
            let size = batch.jobs[i].raw.len() as u64;
            match plan_copies(accounts, &batch.recipients[i], size) {
                Ok(inboxes) => {
                    count_usage(accounts, &batch.recipients[i], size);
                    planned.push((i, inboxes));
                }
                Err(refusal) => {
                    batch.outcomes[i] = Some(Err(refusal));
                    refused.push(i);
                }
            }
        }
        // Pipelined: every statement goes out before the first answer comes back, and
        // PostgreSQL runs them in order. No savepoints: a job that fails aborts the transaction
        // (the statements after it fail as well), and the batch is tried again without it.
        let stored = join_all(planned.iter().map(|(i, inboxes)| {
            let job = &batch.jobs[*i];
            store_copies(client, &job.raw, &job.summary, job.internal_date, inboxes)
        }))
        .await;
        for ((i, _), result) in planned.iter().zip(stored) {
            match result {
                Ok(stored) => changes.push((*i, stored)),
                Err(e) => return Ok(Some((*i, e.into()))),
            }
        }
        Ok(None)
    }
}

/// How one try at a batch ended.
enum Attempt {
    /// Every job still in it stored and committed, with these changes.
    Committed(Vec<MailboxChange>),
    /// A job failed on its own and has its outcome; the transaction was rolled back.
    RolledBack,
}
