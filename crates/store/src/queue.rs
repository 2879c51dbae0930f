//! The outbound queue as the store keeps it (issue 15): messages waiting for remote
//! recipients, their envelope with the RFC 3461 parameters, and each recipient's state. A
//! trait of its own ([`QueueStore`]), apart from [`crate::Store`], because its one consumer is
//! the queue runner (and the CLI), not the protocol sessions.
//!
//! The same durability as local delivery: [`QueueStore::enqueue`] stores the queued message
//! and the local copies of a submission in one transaction, durable before it returns, so the
//! client hears `250` only once both are on disk; [`QueueStore::record_attempt`] stores an
//! attempt's outcomes together with the notice it produced (a local delivery to the sender),
//! so a crash never loses a notice nor sends it twice. The parameters are kept in their ESMTP
//! text forms ("SUCCESS,FAILURE", "rfc822;a@b", "FULL"), so the store needs no SMTP types.
//!
//! The operator's side (`portcullis queue …`, the admin API, the dashboard): one message with
//! its content ([`QueueStore::queued_message`]), retries made due now by message, destination
//! domain or all ([`QueueSelection`]), holding a message back from the runner, and the
//! [`QueueSummary`] that the CLI, the API and the metrics all compute the same way.

use async_trait::async_trait;

use crate::{Delivery, DeliveryError, StoreError};

/// Id of a queued message.
pub type QueueId = i64;

/// A recipient as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY value, as written in RCPT TO.
    pub notify: Option<String>,
    /// RFC 3461 ORCPT value ("rfc822;xtext").
    pub orcpt: Option<String>,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueued {
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    /// RFC 3461 RET value ("FULL" or "HDRS").
    pub ret: Option<String>,
    /// RFC 3461 ENVID, decoded.
    pub envid: Option<String>,
    /// RFC 6531: the envelope or header holds UTF-8.
    pub smtputf8: bool,
    /// RFC 6152 BODY=8BITMIME.
    pub eight_bit: bool,
    /// RFC 8689 REQUIRETLS: handed on only over validated TLS to servers that offer it.
    pub requiretls: bool,
    /// The message, stored once whatever the number of recipients.
    pub content: Vec<u8>,
    /// Unix seconds.
    pub queued_at: i64,
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Still to be delivered (never tried, or failed temporarily).
    Pending,
    Delivered,
    /// Failed for good (a permanent refusal, or the queue lifetime ended).
    Failed,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RecipientState> {
        match text {
            "pending" => Some(RecipientState::Pending),
            "delivered" => Some(RecipientState::Delivered),
            "failed" => Some(RecipientState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
    pub state: RecipientState,
    /// The last answer about it (a remote reply, or what went wrong), for `queue list` and
    /// notices.
    pub last_reply: Option<String>,
}

/// A queued message as the runner and the CLI read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub sender: String,
    pub recipients: Vec<QueuedRecipient>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// RFC 8689 REQUIRETLS.
    pub requiretls: bool,
    /// Empty in listings ([`QueueStore::queued`]), the message in [`QueueStore::claim_due`].
    pub content: Vec<u8>,
    pub size: u64,
    /// Unix seconds.
    pub queued_at: i64,
    pub next_attempt: i64,
    /// Attempts made so far.
    pub attempts: u32,
    pub delay_notice_sent: bool,
    /// Held by an operator: the runner leaves it alone until it is released.
    pub held: bool,
}

impl QueuedMessage {
    /// Where the message stands, as listings show it and filter by.
    pub fn state(&self) -> MessageState {
        if self.held {
            MessageState::Held
        } else if self.attempts == 0 {
            MessageState::New
        } else {
            MessageState::Deferred
        }
    }

    /// Whether a recipient still pending is at `domain` (compared without case).
    pub fn pending_at(&self, domain: &str) -> bool {
        let domain = normalize_domain(domain);
        self.recipients.iter().any(|r| r.state == RecipientState::Pending && domain_of(&r.address) == domain)
    }
}

/// A queued message's state for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Never tried yet.
    New,
    /// Tried, and some recipient is waiting for a retry.
    Deferred,
    /// Held by an operator.
    Held,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::New => "new",
            MessageState::Deferred => "deferred",
            MessageState::Held => "held",
        }
    }

    pub fn parse(text: &str) -> Option<MessageState> {
        [MessageState::New, MessageState::Deferred, MessageState::Held].into_iter().find(|s| s.as_str() == text)
    }
}

/// The domain of an address (after its last `@`), lower case, without a final dot: how the
/// runner groups recipients, and how the operator names a destination.
pub fn domain_of(address: &str) -> String {
    normalize_domain(address.rsplit_once('@').map(|(_, d)| d).unwrap_or(""))
}

fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Which page of the queue listing [`QueueStore::queued_page`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePage {
    /// The page starts after this id (the previous page's [`QueuedPage::next_after`]).
    pub after: Option<QueueId>,
    /// At most this many messages.
    pub limit: usize,
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// Only messages with a recipient still pending at this domain (compared as
    /// [`domain_of`] does).
    pub domain: Option<String>,
}

/// A page of the queue listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPage {
    pub messages: Vec<QueuedMessage>,
    /// Where the next page starts; `None` on the last page.
    pub next_after: Option<QueueId>,
}

/// Which queued messages a retry makes due now. Held messages are never among them: an
/// operator releases those first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelection {
    All,
    Message(QueueId),
    /// Every message with a recipient still pending at this domain.
    Domain(String),
}

/// The queue's size without its messages: what the metrics read at every scrape, in one
/// query however long the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueTotals {
    /// Messages, held ones included.
    pub messages: usize,
    pub held: usize,
    pub bytes: u64,
    /// When the oldest message was queued (Unix seconds); `None` for an empty queue.
    pub oldest_queued_at: Option<i64>,
}

/// One destination domain's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainBacklog {
    pub domain: String,
    /// Messages with a recipient pending there.
    pub messages: usize,
    /// Recipients pending there.
    pub recipients: usize,
    /// The last answer about a pending recipient there: that of the newest message that has
    /// one (a remote reply, or what went wrong before one).
    pub last_error: Option<String>,
}

/// The queue at a glance: for `queue list`, the API's summary, the dashboard and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    /// Messages in the queue, held ones included.
    pub messages: usize,
    pub held: usize,
    /// Bytes of the queued messages.
    pub size: u64,
    /// When the oldest message was queued (Unix seconds); `None` for an empty queue.
    pub oldest_queued_at: Option<i64>,
    /// By pending recipients, the largest backlog first.
    pub domains: Vec<DomainBacklog>,
}

impl QueueSummary {
    pub fn of(queued: &[QueuedMessage]) -> QueueSummary {
        let mut domains: std::collections::BTreeMap<String, (DomainBacklog, QueueId)> = Default::default();
        for m in queued {
            let mut seen = std::collections::BTreeSet::new();
            for r in m.recipients.iter().filter(|r| r.state == RecipientState::Pending) {
                let domain = domain_of(&r.address);
                let (backlog, reply_from) = domains.entry(domain.clone()).or_insert_with(|| {
                    let backlog =
                        DomainBacklog { domain: domain.clone(), messages: 0, recipients: 0, last_error: None };
                    (backlog, QueueId::MIN)
                });
                backlog.recipients += 1;
                if seen.insert(domain) {
                    backlog.messages += 1;
                }
                if let Some(reply) = &r.last_reply {
                    if m.id >= *reply_from {
                        backlog.last_error = Some(reply.clone());
                        *reply_from = m.id;
                    }
                }
            }
        }
        let mut domains: Vec<DomainBacklog> = domains.into_values().map(|(b, _)| b).collect();
        domains.sort_by(|a, b| b.recipients.cmp(&a.recipients).then_with(|| a.domain.cmp(&b.domain)));
        QueueSummary {
            messages: queued.len(),
            held: queued.iter().filter(|m| m.held).count(),
            size: queued.iter().map(|m| m.size).sum(),
            oldest_queued_at: queued.iter().map(|m| m.queued_at).min(),
            domains,
        }
    }
}

/// Who holds the lease of a claimed message: the node (a machine, the same across restarts)
/// and the run (one start of the server on it). The node tells a restarted runner which leases
/// were its own predecessors' (see [`QueueStore::take_back_leases`]); the run tells them apart
/// from its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub node: String,
    pub run: String,
}

/// One recipient's outcome in an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientUpdate {
    pub address: String,
    pub state: RecipientState,
    pub reply: Option<String>,
}

/// What an attempt changed.
#[derive(Debug, Clone)]
pub struct AttemptUpdate {
    pub id: QueueId,
    pub recipients: Vec<RecipientUpdate>,
    /// When to try the pending recipients again (Unix seconds); ignored when none is pending,
    /// in which case the message leaves the queue.
    pub next_attempt: i64,
    /// A delay notice went out with this update.
    pub delay_notice_sent: bool,
    /// The notice to the sender this attempt produced, delivered in the same transaction.
    pub notice: Option<Delivery>,
}

#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Queues `message` (due at once) and, in the same transaction, stores `local` (the copies
    /// for local recipients of the same submission); durable when this returns `Ok`, and on
    /// any error nothing was stored.
    async fn enqueue(&self, message: NewQueued, local: Option<Delivery>) -> Result<QueueId, DeliveryError>;

    /// Up to `limit` messages due at `now` (Unix seconds), oldest due first, each with its
    /// content; each is leased to `holder` until `lease_until` (its next attempt moved there),
    /// so another runner takes it again only if the attempt never recorded and the lease ran
    /// out, or (the same node restarted) [`QueueStore::take_back_leases`] gave it back.
    async fn claim_due(
        &self,
        holder: &LeaseHolder,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError>;

    /// At a runner's start: makes due at `now` every message leased by an earlier run of
    /// `holder.node` (that run is gone: one runner runs per node), and how many. Leases of other
    /// nodes are left to run out: with several nodes on one database (PostgreSQL), another
    /// node's lease may belong to a runner alive and delivering, and only the lease's end says
    /// it is not; a liveness record per node (a heartbeat row) would let the others take over
    /// sooner, and is the place to add that.
    async fn take_back_leases(&self, holder: &LeaseHolder, now: i64) -> Result<usize, StoreError>;

    /// Records an attempt (see [`AttemptUpdate`]); a message with no pending recipient left
    /// leaves the queue. Whether the message was still queued (an operator may have removed
    /// it meanwhile: then nothing is stored).
    async fn record_attempt(&self, update: AttemptUpdate) -> Result<bool, DeliveryError>;

    /// Gives back a claimed message untried (the runner held it back, or is stopping): due
    /// again at `next_attempt`, with no attempt counted, so a destination that was only busy
    /// does not stretch the message's retry schedule.
    async fn release_claim(&self, id: QueueId, next_attempt: i64) -> Result<(), StoreError>;

    /// Every queued message, without content, in queue order.
    async fn queued(&self) -> Result<Vec<QueuedMessage>, StoreError>;

    /// One page of the queue in id order, filtered in the query and limited there, so a long
    /// queue is never read whole (the admin API's listing).
    async fn queued_page(&self, page: QueuePage) -> Result<QueuedPage, StoreError>;

    /// The queue's size, held messages, bytes and oldest entry (see [`QueueTotals`]).
    async fn queue_totals(&self) -> Result<QueueTotals, StoreError>;

    /// One queued message with its content, if it is still queued.
    async fn queued_message(&self, id: QueueId) -> Result<Option<QueuedMessage>, StoreError>;

    /// Makes the selected messages due at `now` (Unix seconds), whatever their retry time, except
    /// those an operator holds and those a runner has claimed (their attempt is under way: making
    /// them due would deliver them twice); how many.
    async fn retry_queued(&self, selection: QueueSelection, now: i64) -> Result<usize, StoreError>;

    /// Holds a queued message back from the runner (`held`), or releases it; whether there was
    /// such a message. A released message is due at its retry time (at once if that passed).
    async fn set_held(&self, id: QueueId, held: bool) -> Result<bool, StoreError>;

    /// Removes a queued message without notice; whether there was one.
    async fn remove_queued(&self, id: QueueId) -> Result<bool, StoreError>;
}
