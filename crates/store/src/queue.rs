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
    /// Empty in listings ([`QueueStore::queued`]), the message in [`QueueStore::claim_due`].
    pub content: Vec<u8>,
    pub size: u64,
    /// Unix seconds.
    pub queued_at: i64,
    pub next_attempt: i64,
    /// Attempts made so far.
    pub attempts: u32,
    pub delay_notice_sent: bool,
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

    /// Makes every queued message due now, except those a runner holds (their attempt is under
    /// way: making them due would deliver them twice); how many.
    async fn flush_queue(&self, now: i64) -> Result<usize, StoreError>;

    /// Removes a queued message without notice; whether there was one.
    async fn remove_queued(&self, id: QueueId) -> Result<bool, StoreError>;
}
