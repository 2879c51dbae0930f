//! The queue runner (issue 15): the task that hands queued mail on. Every tick (and at once
//! when a submission queued something, or a delivery ended) it claims due messages from the
//! store, groups each message's pending recipients by domain, and gathers the parts due for one
//! domain into one batch, so one connection carries several messages. A batch starts when the
//! per-destination [`Limiter`] lets its domain be tried and fewer than `[queue] max_parallel`
//! deliveries are running, so a slow or greylisting domain holds up only its own few slots (and a
//! domain paused after a connection failure has its other due mail deferred for that reason,
//! as Postfix does, rather than read again and again). The
//! [`Courier`] (MX routing, TLS policy, the SMTP client: `portcullis-delivery`) delivers each
//! batch in a task of its own; once every domain of a message has answered, the outcomes are
//! recorded: delivered and failed recipients are settled, the others retried by the
//! [`RetrySchedule`]; a failure or delay notice (`portcullis_queue::notice`) goes to the
//! sender's own mailbox in the same transaction as the record. Never to the null sender:
//! `notice` returns nothing for it.
//!
//! Claims are leased to this node and this run of it ([`LeaseHolder`]); at start the runner
//! takes back what an earlier run on this node held (killed mid-attempt), so that mail is
//! tried again at once instead of after the lease. A message that a killed run had already
//! handed over but not recorded may reach its destination twice: RFC 5321 §6.1's accepted
//! risk, the same as for any MTA that dies between the `250` and its own record.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_delivery::{
    AttemptOutcome, Batch, BatchReport, Courier, DeliverySettings, IpPreference, RecipientReport, Relay, RemoteCourier,
    TrustRoots,
};
use portcullis_events::Event;
use portcullis_queue::{notice, DestinationLimits, Limiter, NextStep, NoticeSettings, Original, RecipientStatus};
use portcullis_queue::{Admission, ReportAction, RetrySchedule};
use portcullis_smtp_client::{
    Credentials, Disposition, Message, MessageParams, Notify, OriginalRecipient, Recipient, Ret,
};
use portcullis_store::{
    AttemptUpdate, Delivery, DeliveryError, LeaseHolder, QueueId, QueuedMessage, RecipientState, RecipientUpdate,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::outbound_labels;
use crate::state::Shared;
use crate::tls_reports::TlsReportBook;

/// How often the queue is looked at when nothing wakes the runner.
const TICK: Duration = Duration::from_secs(1);
/// How long a claimed message is the runner's: longer than any one attempt can take (the
/// waits of RFC 5321 §4.5.3.2 over a few exchangers), so no other runner takes it meanwhile.
const LEASE: Duration = Duration::from_secs(3600);
/// Messages claimed at once: one store transaction reads this many.
const CLAIM: usize = 200;
/// Claimed messages held in memory (their content with them) at most, in count and in bytes:
/// enough to fill `max_parallel` batches, bounded whatever the queue's length.
const MAX_OPEN: usize = 2000;
const MAX_OPEN_BYTES: u64 = 128 << 20;
/// Messages in one batch, so one connection: Postfix's `smtp_destination_recipient_limit`
/// is 50 recipients per delivery; a session of 50 messages stays short.
const BATCH: usize = 50;
/// A domain the limiter holds back is looked at again this soon.
const HELD_BACK: Duration = Duration::from_secs(5);

pub struct QueueRunner {
    shared: Arc<Shared>,
    courier: Arc<dyn Courier>,
    schedule: RetrySchedule,
    recorder: Arc<Recorder>,
    /// Attempts ended and claims to give back, not written yet.
    settled: Vec<Settled>,
    limits: DestinationLimits,
    limiter: Limiter<String>,
    /// Domains paused after a connection-level failure, until when, and the report that
    /// failure gave (what their other mail is deferred with meanwhile).
    suspended: HashMap<String, (Instant, RecipientReport)>,
    max_parallel: usize,
    /// Whose the claims are: this node, this run.
    holder: LeaseHolder,
    /// Claimed messages whose attempt is not recorded yet, and their size in bytes.
    open: HashMap<QueueId, Attempt>,
    open_bytes: u64,
    /// Parts waiting for a connection, by domain, in the order they were claimed.
    waiting: BTreeMap<String, VecDeque<Part>>,
    /// Batches with the courier.
    running: JoinSet<Delivered>,
    /// Where each attempt's connections are counted for TLS reports (`[tls_rpt]`).
    tls_reports: Option<Arc<TlsReportBook>>,
}

/// One claimed message while its domains are tried: what the attempt learnt so far, recorded
/// once every domain has answered or was held back.
struct Attempt {
    /// As claimed, its content moved to `content`.
    queued: QueuedMessage,
    content: Arc<[u8]>,
    params: MessageParams,
    /// When the attempt began (a notice's Last-Attempt-Date).
    now: SystemTime,
    queued_at: SystemTime,
    failed_attempts: u32,
    give_up: bool,
    updates: Vec<RecipientUpdate>,
    statuses: Vec<RecipientStatus>,
    next: Option<SystemTime>,
    /// Domains not settled yet.
    parts_left: usize,
    /// A domain went to the courier; if none did, the claim is only released.
    tried: bool,
}

/// What records attempts: shared with the tasks that write several at once.
struct Recorder {
    shared: Arc<Shared>,
    schedule: RetrySchedule,
    notices: NoticeSettings,
}

/// A claimed message done with.
enum Settled {
    /// Tried: its outcomes (and notice) to record.
    Record(Box<Attempt>),
    /// Not tried: the claim to give back, due again at this Unix time.
    Release(QueueId, i64),
}

/// One message's pending recipients at one domain.
struct Part {
    id: QueueId,
    recipients: Vec<Recipient>,
}

/// A batch back from the courier.
struct Delivered {
    domain: String,
    parts: Vec<Part>,
    report: BatchReport,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn system_time(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}

fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("").trim_end_matches('.').to_ascii_lowercase()
}

/// This node's name in leases, kept in `data_dir/node-id` from its first start: the same
/// across restarts (unlike a pid), and different on each machine of several sharing one
/// database (unlike the configured host name, which they share).
fn node_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    loop {
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => return Err(std::io::Error::other("the file is empty")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let id = format!("{:032x}", rand::random::<u128>());
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(format!("{id}\n").as_bytes())?;
                file.sync_all()?;
                return Ok(id);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue, // read what won
            Err(e) => return Err(e),
        }
    }
}

fn retry(at: SystemTime, next: &mut Option<SystemTime>) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

impl QueueRunner {
    pub fn new(shared: Arc<Shared>, courier: Arc<dyn Courier>) -> QueueRunner {
        let schedule = shared.config.queue;
        let max_parallel = shared.config.queue_runner.max_parallel;
        let limits = shared.config.queue_runner.destination;
        let notices = NoticeSettings { reporting_mta: shared.config.hostname.clone(), ..NoticeSettings::default() };
        let run = format!("{:016x}", rand::random::<u64>());
        let node = node_id(&shared.config.data_dir).unwrap_or_else(|e| {
            // Without a lasting name, this run's leases are only ever given back by their end.
            let what = format!("the node id in {} could not be kept: {e}", shared.config.data_dir.display());
            shared.events.emit(Event::InternalError { conn: None, what });
            format!("run-{run}")
        });
        let recorder = Arc::new(Recorder { shared: shared.clone(), schedule, notices });
        QueueRunner {
            shared,
            courier,
            schedule,
            recorder,
            settled: Vec::new(),
            limits,
            limiter: Limiter::new(limits),
            suspended: HashMap::new(),
            max_parallel,
            holder: LeaseHolder { node, run },
            open: HashMap::new(),
            open_bytes: 0,
            waiting: BTreeMap::new(),
            running: JoinSet::new(),
            tls_reports: None,
        }
    }

    /// Counts every attempt's connections in `book` for TLS reports.
    pub fn with_tls_reports(mut self, book: Arc<TlsReportBook>) -> QueueRunner {
        self.tls_reports = Some(book);
        self
    }

    /// Runs until the server stops accepting (shutdown), then lets the batches already with
    /// the courier finish and records them; the server waits for that within its shutdown
    /// grace, and a message whose record never came is claimed again after a restart.
    pub async fn run(mut self) {
        let shared = self.shared.clone();
        // One runner per node: a lease of an earlier run here is a killed run's, so its mail is
        // due now (the store leaves other nodes' leases alone).
        if let Err(e) = shared.queue.take_back_leases(&self.holder, unix(SystemTime::now())).await {
            let what = format!("taking back the leases of an earlier run failed: {e}");
            shared.events.emit(Event::InternalError { conn: None, what });
        }
        loop {
            self.claim().await;
            self.dispatch().await;
            self.write_settled().await;
            tokio::select! {
                _ = shared.stop_accepting.cancelled() => break,
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    self.finished(done).await;
                    self.write_settled().await;
                }
                _ = shared.queue_wakeup.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        // Nothing new starts: what waits goes back to the queue, due at once.
        let now = SystemTime::now();
        for (_, parts) in std::mem::take(&mut self.waiting) {
            for part in parts {
                self.part_settled(part.id, |a| retry(now, &mut a.next));
            }
        }
        self.write_settled().await;
        while let Some(done) = self.running.join_next().await {
            self.finished(done).await;
            self.write_settled().await;
        }
    }

    /// Claims due messages while there is room for them (in memory, and a free delivery slot
    /// to start on): a long queue is read in bounded slices, never at once.
    async fn claim(&mut self) {
        while self.running.len() < self.max_parallel && self.open.len() < MAX_OPEN && self.open_bytes < MAX_OPEN_BYTES {
            let now = SystemTime::now();
            let limit = CLAIM.min(MAX_OPEN - self.open.len());
            let due = match self.shared.queue.claim_due(&self.holder, unix(now), unix(now + LEASE), limit).await {
                Ok(due) => due,
                Err(e) => {
                    let what = format!("queue read failed: {e}");
                    self.shared.events.emit(Event::InternalError { conn: None, what });
                    return;
                }
            };
            let all_due_read = due.len() < limit;
            for message in due {
                if let Some(settled) = self.open_message(message, now) {
                    self.settled.push(Settled::Record(Box::new(settled)));
                }
            }
            if all_due_read {
                return;
            }
        }
    }

    /// A claimed message: its attempt opened, its recipients waiting by domain. One with no
    /// recipient pending (none should be queued) is handed back, for a record that removes it.
    fn open_message(&mut self, mut queued: QueuedMessage, now: SystemTime) -> Option<Attempt> {
        let content: Arc<[u8]> = Arc::from(std::mem::take(&mut queued.content));
        let mut by_domain: BTreeMap<String, Vec<Recipient>> = BTreeMap::new();
        for r in queued.recipients.iter().filter(|r| r.state == RecipientState::Pending) {
            by_domain.entry(domain_of(&r.address)).or_default().push(Recipient {
                address: r.address.clone(),
                notify: r.notify.as_deref().and_then(|n| Notify::parse(n).ok()),
                original: r.orcpt.as_deref().and_then(|o| OriginalRecipient::parse(o).ok()),
            });
        }
        let params = MessageParams {
            ret: queued.ret.as_deref().and_then(|r| Ret::parse(r).ok()),
            envid: queued.envid.clone(),
            requiretls: queued.requiretls,
            smtputf8: queued.smtputf8,
            eight_bit: queued.eight_bit,
        };
        let queued_at = system_time(queued.queued_at);
        let failed_attempts = queued.attempts + 1;
        let give_up = self.schedule.after_temporary_failure(queued_at, failed_attempts, now) == NextStep::GiveUp;
        let id = queued.id;
        let parts_left = by_domain.len();
        let attempt = Attempt {
            queued,
            content,
            params,
            now,
            queued_at,
            failed_attempts,
            give_up,
            updates: Vec::new(),
            statuses: Vec::new(),
            next: None,
            parts_left,
            tried: parts_left == 0,
        };
        if parts_left == 0 {
            return Some(attempt);
        }
        for (domain, recipients) in by_domain {
            self.waiting.entry(domain).or_default().push_back(Part { id, recipients });
        }
        self.open_bytes += attempt.content.len() as u64;
        self.open.insert(id, attempt);
        None
    }

    /// Starts a batch for every domain the limiter lets be tried, up to `max_parallel`.
    async fn dispatch(&mut self) {
        let domains: Vec<String> = self.waiting.keys().cloned().collect();
        for domain in domains {
            while self.running.len() < self.max_parallel {
                let Some(parts) = self.waiting.get_mut(&domain).filter(|p| !p.is_empty()) else { break };
                match self.limiter.try_start(&domain, Instant::now()) {
                    Admission::Go => {}
                    // Its slots are taken: the parts wait for the next free one.
                    Admission::Busy => break,
                    Admission::NotBefore(at) => {
                        let parts: Vec<Part> = parts.drain(..).collect();
                        self.not_before(&domain, parts, at).await;
                        break;
                    }
                }
                let take = parts.len().min(BATCH);
                let batch: Vec<Part> = parts.drain(..take).collect();
                let messages = batch
                    .iter()
                    .filter_map(|part| {
                        let a = self.open.get_mut(&part.id)?;
                        a.tried = true;
                        Some(Message {
                            sender: a.queued.sender.clone(),
                            recipients: part.recipients.clone(),
                            params: a.params.clone(),
                            content: a.content.clone(),
                        })
                    })
                    .collect();
                let courier = self.courier.clone();
                let name = domain.clone();
                self.running.spawn(async move {
                    let report = courier.deliver(Batch { domain: name.clone(), messages }).await;
                    Delivered { domain: name, parts: batch, report }
                });
            }
            if self.waiting.get(&domain).is_some_and(|p| p.is_empty()) {
                self.waiting.remove(&domain);
            }
        }
        self.unclog().await;
    }

    /// Parts for a domain the limiter holds back until `at`. After a connection-level failure
    /// (the domain is suspended) they count as deferred for that same reason, and wait out the
    /// retry schedule, as Postfix defers a dead destination's mail at once: a long queue for a
    /// dead domain is then read once per retry, not once per pause. Held back by the rate
    /// alone, they are given back untried, due at `at`.
    async fn not_before(&mut self, domain: &str, parts: Vec<Part>, at: Instant) {
        let now = Instant::now();
        self.suspended.retain(|_, (until, _)| *until > now);
        match self.suspended.get(domain).map(|(_, why)| why.clone()) {
            Some(why) => {
                for part in parts {
                    let reports = part
                        .recipients
                        .iter()
                        .map(|r| RecipientReport { address: r.address.clone(), ..why.clone() })
                        .collect();
                    if let Some(mut attempt) = self.open.remove(&part.id) {
                        attempt.tried = true;
                        self.domain_outcome(&mut attempt, domain, &part.recipients, reports, &[]);
                        self.open.insert(part.id, attempt);
                    }
                    self.part_settled(part.id, |_| {});
                }
            }
            None => {
                let until = SystemTime::now() + at.saturating_duration_since(now).max(HELD_BACK);
                for part in parts {
                    self.part_settled(part.id, |a| retry(until, &mut a.next));
                }
            }
        }
    }

    /// With every claimed message in memory waiting for busy domains while delivery slots are
    /// free, the parts beyond one batch per domain go back to the queue (due again soon), so
    /// that a slow domain's backlog cannot keep the other domains' mail from being claimed.
    async fn unclog(&mut self) {
        let full = self.open.len() >= MAX_OPEN || self.open_bytes >= MAX_OPEN_BYTES;
        if !full || self.running.len() >= self.max_parallel {
            return;
        }
        let until = SystemTime::now() + HELD_BACK;
        let mut back = Vec::new();
        for parts in self.waiting.values_mut() {
            if parts.len() > BATCH {
                back.extend(parts.drain(BATCH..));
            }
        }
        for part in back {
            self.part_settled(part.id, |a| retry(until, &mut a.next));
        }
    }

    /// A batch came back: the limiter's slot freed, each message's outcomes at that domain
    /// taken into its attempt.
    async fn finished(&mut self, done: Result<Delivered, tokio::task::JoinError>) {
        let Delivered { domain, parts, report } = match done {
            Ok(done) => done,
            Err(e) => {
                // A panic in the courier: its messages stay leased until a restart takes
                // them back; say so rather than lose track silently.
                let what = format!("a delivery task ended abnormally: {e}");
                self.shared.events.emit(Event::InternalError { conn: None, what });
                return;
            }
        };
        if let Some(book) = &self.tls_reports {
            book.record(&report.attempts);
        }
        let connected = report.attempts.iter().any(|a| matches!(a.outcome, AttemptOutcome::Completed));
        let connect_failed =
            !connected && report.attempts.iter().any(|a| matches!(a.outcome, AttemptOutcome::ConnectFailed(_)));
        self.limiter.finish(&domain, connect_failed, Instant::now());
        if connect_failed {
            // While the limiter pauses the domain, its other mail is deferred for this reason.
            let why = report.messages.iter().flatten().find(|r| r.disposition == Disposition::Temporary);
            if let Some(why) = why {
                self.suspended.insert(domain.clone(), (Instant::now() + self.limits.backoff, why.clone()));
            }
        }
        let mut reports = report.messages.into_iter();
        for part in parts {
            let reports = reports.next().unwrap_or_default();
            let id = part.id;
            if let Some(mut attempt) = self.open.remove(&id) {
                self.domain_outcome(&mut attempt, &domain, &part.recipients, reports, &report.attempts);
                self.open.insert(id, attempt);
            }
            self.part_settled(id, |_| {});
        }
    }

    /// One domain's answer about one message's recipients: each recipient's new state, its
    /// line for a notice, the `delivery_attempt` event, and when to try the rest again.
    fn domain_outcome(
        &self,
        attempt: &mut Attempt,
        domain: &str,
        recipients: &[Recipient],
        reports: Vec<RecipientReport>,
        attempts: &[portcullis_delivery::AttemptRecord],
    ) {
        let Attempt { queued, now, queued_at, failed_attempts, give_up, updates, statuses, next, .. } = attempt;
        let (now, queued_at, failed_attempts, give_up) = (*now, *queued_at, *failed_attempts, *give_up);
        let (mut delivered, mut deferred, mut failed) = (0, 0, 0);
        let mut reason = None;
        let mut tally = outbound_labels::Tally::default();
        for r in &reports {
            let original = recipients.iter().find(|x| x.address == r.address);
            let (state, action) = match r.disposition {
                // RFC 3461 §4.1: a server that offers DSN took NOTIFY along and reports
                // success itself; one that does not leaves us to say "relayed" (sent only
                // to a recipient whose NOTIFY asks for SUCCESS: `notice` checks).
                Disposition::Delivered if r.peer_offers_dsn => (RecipientState::Delivered, None),
                Disposition::Delivered => (RecipientState::Delivered, Some(ReportAction::Relayed)),
                Disposition::Permanent => (RecipientState::Failed, Some(ReportAction::Failed)),
                Disposition::Temporary if give_up => (RecipientState::Failed, Some(ReportAction::Failed)),
                Disposition::Temporary => (RecipientState::Pending, None),
            };
            tally.add(outbound_labels::recipient(r.disposition, &r.why, give_up));
            match state {
                RecipientState::Delivered => delivered += 1,
                RecipientState::Pending => deferred += 1,
                RecipientState::Failed => failed += 1,
            }
            if state != RecipientState::Delivered && reason.is_none() {
                reason = Some(r.why.to_string());
            }
            updates.push(RecipientUpdate { address: r.address.clone(), state, reply: Some(r.why.to_string()) });
            let status = |action: ReportAction| RecipientStatus {
                address: r.address.clone(),
                original: original.and_then(|o| o.original.clone()),
                notify: original.and_then(|o| o.notify),
                action,
                status: r.status,
                remote_mta: r.remote_mta.clone(),
                reply: r.why.reply().cloned(),
                explanation: r.why.reply().is_none().then(|| r.why.to_string()),
                last_attempt: Some(now),
                will_retry_until: (action == ReportAction::Delayed).then(|| self.schedule.expires_at(queued_at)),
            };
            if let Some(action) = action {
                statuses.push(status(action));
            } else if state == RecipientState::Pending {
                statuses.push(status(ReportAction::Delayed));
            }
        }
        let last = attempts.iter().rev().find(|a| a.address.is_some()).or(attempts.last());
        self.shared.events.emit(Event::DeliveryAttempt {
            queue_id: queued.id,
            domain: domain.to_string(),
            host: last.map(|a| a.host.clone()).unwrap_or_default(),
            address: last.and_then(|a| a.address),
            tls_version: last.and_then(|a| a.tls.as_ref()).map(|t| t.version.clone()),
            tls_cipher: last.and_then(|a| a.tls.as_ref()).map(|t| t.cipher.clone()),
            tls_failure: last.and_then(|a| a.tls_failure).map(|f| f.to_string()),
            delivered,
            deferred,
            failed,
            reason,
            expired: give_up && failed > 0,
            outcomes: tally.outcomes(),
            tls_policy: last.map(|a| outbound_labels::tls(a).0),
            tls_result: last.map(|a| outbound_labels::tls(a).1),
        });
        if deferred > 0 {
            if let NextStep::RetryAt(at) = self.schedule.after_temporary_failure(queued_at, failed_attempts, now) {
                retry(at, next);
            }
        }
    }

    /// One of a message's domains is settled (`how` notes what became of it); after the last
    /// one the attempt is to be recorded, or the claim released if nothing was tried.
    fn part_settled(&mut self, id: QueueId, how: impl FnOnce(&mut Attempt)) {
        let Some(attempt) = self.open.get_mut(&id) else { return };
        how(attempt);
        attempt.parts_left = attempt.parts_left.saturating_sub(1);
        if attempt.parts_left > 0 {
            return;
        }
        let attempt = self.open.remove(&id).expect("present above");
        self.open_bytes = self.open_bytes.saturating_sub(attempt.content.len() as u64);
        if attempt.tried {
            self.settled.push(Settled::Record(Box::new(attempt)));
        } else {
            let at = unix(attempt.next.unwrap_or_else(|| SystemTime::now() + HELD_BACK));
            self.settled.push(Settled::Release(id, at));
        }
    }

    /// Writes what was settled, all at once: the store's writer commits the records that wait
    /// together (group commit), where one after the other each would wait for its own sync.
    async fn write_settled(&mut self) {
        if self.settled.is_empty() {
            return;
        }
        let mut writes = JoinSet::new();
        for settled in self.settled.drain(..) {
            let recorder = self.recorder.clone();
            writes.spawn(async move { recorder.write(settled).await });
        }
        while writes.join_next().await.is_some() {}
    }
}

impl Recorder {
    async fn write(&self, settled: Settled) {
        match settled {
            Settled::Record(attempt) => self.record(*attempt).await,
            Settled::Release(id, at) => {
                if let Err(e) = self.shared.queue.release_claim(id, at).await {
                    let what = format!("releasing queued message {id} failed: {e}");
                    self.shared.events.emit(Event::InternalError { conn: None, what });
                }
            }
        }
    }

    /// One notice for what this attempt settled, and the delay of the rest if it is due; then
    /// the record, with the notice in the same transaction.
    async fn record(&self, attempt: Attempt) {
        let Attempt { queued, content, params, now, queued_at, failed_attempts, updates, mut statuses, next, .. } =
            attempt;
        let bounced = updates.iter().filter(|u| u.state == RecipientState::Failed).count();
        crate::anomalies::permanent_failures(&self.shared, &queued.sender, bounced);
        // Failures, and successes asked for, and the delay of the rest if it is due; each
        // recipient's NOTIFY picks among them.
        let delay_due = self.schedule.delay_notice_due(queued_at, now, queued.delay_notice_sent);
        statuses.retain(|s| s.action != ReportAction::Delayed || delay_due);
        let original = Original {
            sender: &queued.sender,
            envid: queued.envid.as_deref(),
            ret: params.ret,
            arrival: queued_at,
            content: &content,
        };
        let unique = format!("{}.{}.{}", queued.id, failed_attempts, unix(now));
        let notice = notice(&self.notices, &original, &statuses, now, &unique);
        let delay_notice_sent =
            notice.as_ref().is_some_and(|n| n.reported.iter().any(|(_, a)| *a == ReportAction::Delayed));
        let notice = match notice {
            Some(n) => self.notice_delivery(n.recipient, n.content).await,
            None => None,
        };
        let update = AttemptUpdate {
            id: queued.id,
            recipients: updates,
            next_attempt: unix(next.unwrap_or(now + HELD_BACK)),
            delay_notice_sent,
            notice,
        };
        let mut result = self.shared.queue.record_attempt(update.clone()).await;
        if let Err(DeliveryError::QuotaExceeded(who)) = &result {
            // The sender's mailbox is full: the record must not wait for it.
            let what = format!("a delivery notice for {who} was dropped: the mailbox is full");
            self.shared.events.emit(Event::InternalError { conn: None, what });
            result = self.shared.queue.record_attempt(AttemptUpdate { notice: None, ..update }).await;
        }
        if let Err(e) = result {
            self.shared.events.emit(Event::InternalError {
                conn: None,
                what: format!("recording a delivery attempt of queued message {} failed: {e}", queued.id),
            });
        }
    }

    /// The notice as a local delivery to the sender's mailbox; the sender of submitted mail is
    /// always a local account or one of its aliases (the session checks it), so a missing one
    /// is an error to report.
    async fn notice_delivery(&self, to: String, content: Vec<u8>) -> Option<Delivery> {
        match self.shared.aliases.recipient(&to).await {
            Ok(Some(account)) => {
                // From the null sender, delivered here: Return-Path: <> (RFC 5321 §4.4).
                let raw = portcullis_proto_smtp::with_return_path("", &content);
                Some(Delivery { recipients: vec![account.id], raw, internal_date: unix(SystemTime::now()) })
            }
            Ok(None) => {
                let what = format!("a delivery notice for {to} was dropped: no such local account");
                self.shared.events.emit(Event::InternalError { conn: None, what });
                None
            }
            Err(e) => {
                let what = format!("a delivery notice for {to} was dropped: {e}");
                self.shared.events.emit(Event::InternalError { conn: None, what });
                None
            }
        }
    }
}

/// The remote courier from `[delivery]`, `[relay]`, `[mta_sts]` and `[dane]`, on the server's
/// one resolver, trusting the Web PKI roots and `delivery.trust_roots`. Files it names (the
/// extra roots, the smart host's password) are read here, once, at start: a missing or
/// unreadable one stops the start with a sentence naming the key.
pub fn courier(
    config: &portcullis_config::Config,
    resolver: portcullis_dns::Resolver,
) -> Result<RemoteCourier, String> {
    let d = &config.delivery;
    let mut settings = DeliverySettings::new(&config.hostname);
    settings.port = d.port;
    settings.ip_preference = match d.ip_preference {
        portcullis_config::IpPreference::Ipv4Only => IpPreference::Ipv4Only,
        portcullis_config::IpPreference::Ipv6Only => IpPreference::Ipv6Only,
        portcullis_config::IpPreference::PreferIpv4 => IpPreference::PreferIpv4,
        portcullis_config::IpPreference::PreferIpv6 => IpPreference::PreferIpv6,
    };
    settings.source_ipv4 = d.source_ipv4;
    settings.source_ipv6 = d.source_ipv6;
    if let Some(limit) = d.reply_timeout {
        settings.timeouts = settings.timeouts.capped(limit);
        settings.mta_sts_timeout = settings.mta_sts_timeout.min(limit);
    }
    settings.attempt_timeout = d.attempt_timeout;
    settings.mta_sts = config.mta_sts.enabled;
    settings.mta_sts_port = config.mta_sts.port;
    settings.dane = config.dane.enabled;
    settings.relay = match &config.relay {
        Some(relay) => Some(Relay {
            host: relay.host.clone(),
            port: relay.port,
            implicit_tls: relay.tls == portcullis_config::RelayTls::Implicit,
            credentials: match &relay.login {
                Some(login) => Some(Credentials {
                    username: login.username.clone(),
                    password: read_password(&login.password_file)?,
                }),
                None => None,
            },
        }),
        None => None,
    };
    let extra = match &d.trust_roots {
        Some(path) => read_roots(path)?,
        None => Vec::new(),
    };
    let roots = TrustRoots::new(&extra).map_err(|e| format!("delivery.trust_roots: {e}"))?;
    Ok(RemoteCourier::new(settings, resolver, roots))
}

/// The first line of the smart host's password file.
fn read_password(path: &std::path::Path) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("relay.password_file: cannot read {}: {e}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(format!("relay.password_file: {} holds no password on its first line", path.display()));
    }
    Ok(Zeroizing::new(line.to_string()))
}

/// Every certificate of a PEM file, for `delivery.trust_roots`.
fn read_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("delivery.trust_roots: cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("delivery.trust_roots: {} is not PEM certificates: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!("delivery.trust_roots: {} holds no certificate", path.display()));
    }
    Ok(roots)
}
